"""pymfn embed --ray on a local 2-node Ray cluster (ray.cluster_utils.Cluster): the same bytes as one process,
and a node removed mid-run still gives every shard exactly once. Skipped when Ray is not installed."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (extra pymfn[ray])")

from pymfn.embed import ray_pipeline, shards  # noqa: E402
from tests.test_embed import make_conv_ir, make_tree  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    # 3 logical CPUs on the head: after the other node is removed it must hold both engine actors (1 CPU each)
    # and still run read tasks (0.5 CPU)
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 3, "include_dashboard": False})
    c.add_node(num_cpus=2)
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    t = tmp_path_factory.mktemp("ray")
    tree = make_tree(t / "tree", 12, 10, seed=7)
    model = make_conv_ir(t / "tiny.xml")
    settings = shards.EmbedSettings(model=str(model), shard_rows=4, threads=1, batch=4)
    single = t / "single"
    shards.embed(tree, single, settings)
    shards.merge(single)
    return {"tree": tree, "settings": settings, "single": single, "tmp": t}


def _check_complete(out: Path, single: Path) -> None:
    v = shards.verify(out)
    assert v.complete, v.problems
    shards.merge(out)
    assert (out / "embeddings.npy").read_bytes() == (single / "embeddings.npy").read_bytes()
    records = [f for f in out.iterdir() if f.name.startswith("shard-") and f.suffix == ".json"]
    assert len(records) == 30 and not [p for p in out.iterdir() if p.name.startswith(".")]


def test_two_node_cluster_gives_single_process_bytes(cluster, data) -> None:
    out = data["tmp"] / "ray"
    run = ray_pipeline.embed_on_ray(data["tree"], out, data["settings"], actors=2, init=False)
    assert sorted(r.spec.index for r in run.shards) == list(range(30))
    assert len({r.spec.index for r in run.shards}) == 30
    _check_complete(out, data["single"])


def test_node_removed_mid_run_loses_and_duplicates_nothing(cluster, data) -> None:
    out = data["tmp"] / "ray_killed"
    worker = [n for n in cluster.worker_nodes][0]
    removed = threading.Event()

    def kill_after_first_shard() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(out.glob("shard-*.json")):
            time.sleep(0.01)
        cluster.remove_node(worker)  # its raylet, read tasks and engine actor die
        removed.set()

    killer = threading.Thread(target=kill_after_first_shard, daemon=True)
    killer.start()
    run = ray_pipeline.embed_on_ray(data["tree"], out, data["settings"], actors=2, init=False)
    killer.join(timeout=60)
    assert removed.is_set()
    done = sorted(r.spec.index for r in run.shards)
    assert done == list(range(30)), done  # each shard once in the run's account
    _check_complete(out, data["single"])
    cluster.add_node(num_cpus=2)  # for later tests


def test_an_actor_opens_its_engine_beside_the_first_read_and_reports_a_failed_open_on_first_call(data) -> None:
    # Constructed like Ray Data constructs it (no Ray needed): the constructor returns at once and never raises
    plan = {"decoded_images": True, "batch": 4}
    bad = ray_pipeline.ShardEmbedder(data["settings"], str(data["tmp"] / "missing.xml"), plan)
    with pytest.raises(Exception, match="missing.xml"):
        bad({"index": [0], "rows": [], "input_sha256": []})
    good = ray_pipeline.ShardEmbedder(data["settings"], str(data["settings"].model), plan)
    good.opening.join()
    assert good.error is None and good.opened.batch == 4
