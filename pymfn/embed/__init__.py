"""Embeddings at scale: sharded, resumable embedding of an image source (``shards``), its sources
(``sources``) and the same shards on a Ray cluster (``ray_pipeline``, optional extra ``pymfn[ray]``)."""
