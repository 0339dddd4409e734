"""Freeze a MobileFaceNet checkpoint into an inference GraphDef (.pb) for ATC, ONNX and OpenVINO.

The frozen graph is what every deployment path consumes, so it follows the reference pipeline exactly:
input ``Placeholder`` (float32 ``[?, 112, 112, 3]``, dynamic batch, already normalised), BatchNorm in
inference mode (no tf.cond, no training branches), output the L2-normalised embedding
(``tf.nn.l2_normalize(prelogits, 1, 1e-10)``) named ``embeddings``; with ``--fp16-output`` the output is
cast to float16 and named ``the_outputs`` like the reference om model.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pymfn.files.atomic import Transaction, atomic_dir, atomic_write, hold, refuse_overlap
from pymfn._lazy import lazy_module
from pymfn.errors import CommandError
from pymfn.files.outputs import check_output_path

# Imported on first use: `pymfn freeze` rejects bad arguments before TensorFlow's seconds-long import.
tf = lazy_module("tensorflow.compat.v1")
mfn = lazy_module("pymfn.training.model")

DEFAULT_INPUT = "Placeholder"
DEFAULT_OUTPUT = "embeddings"
DEFAULT_FP16_OUTPUT = "the_outputs"
# Far above any face-embedding size (128..512); a bigger one is a typo whose graph would exhaust memory.
MAX_EMBEDDING_SIZE = 65536


class CheckpointError(ValueError):
    """Checkpoint missing pieces or unreadable (message names the path)."""


class FrozenGraphError(ValueError):
    """A .pb that is not a frozen pymfn-style GraphDef (message names the file)."""


def resolve_checkpoint(ckpt: str | Path) -> tuple[Path, str]:
    """(directory, checkpoint prefix) from a checkpoint directory or a prefix like ``dir/model.ckpt-100``."""
    ckpt = Path(ckpt)
    if ckpt.is_dir():
        prefix = tf.train.latest_checkpoint(str(ckpt))
        if prefix is None:  # no/odd 'checkpoint' state file: take the newest *.index
            indexes = sorted(ckpt.glob("*.index"), key=lambda p: p.stat().st_mtime)
            if not indexes:
                raise FileNotFoundError(f"{ckpt}: no TensorFlow checkpoint in this directory "
                                        "(no 'checkpoint' file and no *.index)")
            prefix = str(indexes[-1].with_suffix(""))
        return ckpt, prefix
    if Path(str(ckpt) + ".index").is_file():
        return ckpt.parent, str(ckpt)
    raise FileNotFoundError(f"{ckpt}: not a checkpoint directory or checkpoint prefix (no {ckpt.name}.index)")


def _checkpoint_shapes(prefix: str) -> dict[str, list[int]]:
    try:
        return dict(tf.train.list_variables(prefix))
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"{prefix}: corrupt or unreadable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e


def infer_embedding_size(ckpt: str | Path, scope: str | None = None) -> int:
    """Embedding size recorded next to the checkpoint, else read from the embedding layer's shape
    (``scope`` defaults to the model's)."""
    scope = scope or mfn.DEFAULT_SCOPE
    ckpt_dir, prefix = resolve_checkpoint(ckpt)
    info = mfn.read_model_info(ckpt_dir)
    shapes = _checkpoint_shapes(prefix)
    key = f"{scope}/embedding/bn/beta"
    from_ckpt = shapes.get(key, [None])[0]
    if info is not None:
        if from_ckpt is not None and from_ckpt != info["embedding_size"]:
            raise CheckpointError(f"{ckpt_dir / mfn.MODEL_INFO_FILE} says embedding size "
                                  f"{info['embedding_size']} but {prefix} holds {from_ckpt}")
        return int(info["embedding_size"])
    if from_ckpt is None:
        raise CheckpointError(f"{prefix}: no variable '{key}'; not a pymfn MobileFaceNet checkpoint")
    return int(from_ckpt)


def build_inference_graph(embedding_size: int, input_name: str = DEFAULT_INPUT, output_name: str | None = None,
                          fp16_output: bool = False, custom_getter=None) -> tuple[tf.Graph, tf.Tensor, tf.Tensor]:
    """A fresh graph with the placeholder, the network in inference mode and the named output.

    Without ``custom_getter`` the weights are variables (restore them with a Saver); freezing passes a
    getter that returns constants instead.
    """
    graph = tf.Graph()
    with graph.as_default():
        # An unnamed placeholder is called 'Placeholder'; naming it explicitly gives the same default.
        x = tf.placeholder(tf.float32, [None, mfn.INPUT_SIZE, mfn.INPUT_SIZE, mfn.INPUT_CHANNELS],
                           name=input_name)
        with tf.variable_scope(tf.get_variable_scope(), custom_getter=custom_getter):
            prelogits = mfn.mobilefacenet(x, is_training=False, embedding_size=embedding_size, weight_decay=0.0)
        if fp16_output:
            emb = tf.nn.l2_normalize(prelogits, 1, 1e-10, name="embeddings_fp32")
            out = tf.cast(emb, tf.float16, name=output_name or DEFAULT_FP16_OUTPUT)
        else:
            out = tf.nn.l2_normalize(prelogits, 1, 1e-10, name=output_name or DEFAULT_OUTPUT)
    if x.op.name != input_name:
        raise ValueError(f"input name {input_name!r} is not usable as a node name (TF made {x.op.name!r})")
    if out.op.name != (output_name or (DEFAULT_FP16_OUTPUT if fp16_output else DEFAULT_OUTPUT)):
        raise ValueError(f"output name {output_name!r} clashes with a graph node (TF made {out.op.name!r})")
    return graph, x, out


def _constant_getter(prefix: str):
    """A custom getter that turns every model variable into a Const holding its checkpoint value.

    This is what freezing means (variables -> constants), done while building the graph, so no session,
    no variable ops and no conversion pass are needed; names stay those of the variables.
    """
    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise CheckpointError(f"{prefix}: corrupt or unreadable checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''})") from e

    def constant_getter(getter, name, shape=None, dtype=tf.float32, **kwargs):
        if name not in shapes:
            raise CheckpointError(f"{prefix}: variable '{name}' missing; not a pymfn MobileFaceNet checkpoint "
                                  "(or a different scope/architecture)")
        if list(shapes[name]) != [int(d) for d in shape]:
            raise CheckpointError(f"{prefix}: '{name}' is {list(shapes[name])} in the checkpoint but "
                                  f"{list(shape)} in the model")
        try:
            value = reader.get_tensor(name)
        except (tf.errors.OpError, ValueError, IndexError) as e:  # IndexError: a data file cut short
            from pymfn.training.tfrecords import tf_error_text

            raise CheckpointError(f"{prefix}: cannot read '{name}': truncated or corrupt checkpoint data "
                                  f"({tf_error_text(e)})") from e
        if value.dtype != np.float32:
            raise CheckpointError(f"{prefix}: '{name}' is {value.dtype}, expected float32")
        return tf.constant(value, name=name.rsplit("/", 1)[-1])

    return constant_getter


def _prune(graph_def: tf.GraphDef, output: str) -> tf.GraphDef:
    """Keep only the nodes ``output`` depends on (tf.graph_util.extract_sub_graph is deprecated in TF2)."""
    by_name = {n.name: n for n in graph_def.node}
    keep, todo = set(), [output]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep.add(name)
        todo.extend(i.lstrip("^").split(":")[0] for i in by_name[name].input)
    pruned = tf.GraphDef()
    pruned.versions.CopyFrom(graph_def.versions)
    pruned.library.CopyFrom(graph_def.library)
    pruned.node.extend(n for n in graph_def.node if n.name in keep)  # original (topological) order
    return pruned


def freeze_checkpoint(ckpt_dir: str | Path, out_pb: str | Path, input_name: str = DEFAULT_INPUT,
                      output_name: str | None = None, fp16_output: bool = False,
                      embedding_size: int | None = None) -> Path:
    """Freeze ``ckpt_dir`` (directory or checkpoint prefix) into ``out_pb``; returns the .pb path.

    ``embedding_size`` defaults to what the checkpoint records; giving a different one is an error.
    """
    _, prefix = resolve_checkpoint(ckpt_dir)
    recorded = infer_embedding_size(ckpt_dir)
    if embedding_size is not None and int(embedding_size) != recorded:
        raise CheckpointError(f"{prefix}: holds a {recorded}-d embedding, but embedding size "
                              f"{embedding_size} was requested")
    graph, _, out = build_inference_graph(recorded, input_name, output_name, fp16_output,
                                          custom_getter=_constant_getter(prefix))
    frozen = _prune(graph.as_graph_def(), out.op.name)
    out_pb = Path(out_pb)
    with atomic_write(out_pb) as f:
        f.write(frozen.SerializeToString())
    return out_pb


def make_random_checkpoint(out_dir: str | Path, embedding_size: int = 128, seed: int = 0) -> Path:
    """Write a seeded random-init checkpoint (with model info) whose BN statistics are calibrated.

    Untrained BN statistics (mean 0, variance 1) let activations grow by orders of magnitude over 50
    layers, which would make fp16 and engine-parity comparisons meaningless; so the moving statistics are
    set from one training-mode pass over a seeded batch of noise images (each layer's statistics as BN
    sees them, i.e. exactly the batch statistics of that pass).
    """
    rng = np.random.RandomState(seed)
    batch = ((rng.uniform(0, 255, (16, mfn.INPUT_SIZE, mfn.INPUT_SIZE, mfn.INPUT_CHANNELS)) - 127.5)
             / 128.0).astype(np.float32)
    out_dir = Path(out_dir)
    with tf.Graph().as_default():
        tf.set_random_seed(seed)
        x = tf.placeholder(tf.float32, [None, mfn.INPUT_SIZE, mfn.INPUT_SIZE, mfn.INPUT_CHANNELS])
        mfn.mobilefacenet(x, is_training=True, embedding_size=embedding_size, bn_decay=0.0)
        updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        saver = tf.train.Saver(mfn.model_variables(), save_relative_paths=True)
        with tf.Session() as sess, atomic_dir(out_dir) as tmp:
            sess.run(tf.global_variables_initializer())
            sess.run(updates, {x: batch})
            saver.save(sess, str(tmp / "model.ckpt"), write_meta_graph=False)
            mfn.write_model_info(tmp, embedding_size, source=f"random init, seed {seed}")
    return out_dir


def freeze_random(out_pb: str | Path, embedding_size: int = 128, seed: int = 0,
                  fp16_output: bool = False) -> Path:
    """Freeze a seeded random-init MobileFaceNet (BN statistics calibrated, see
    :func:`make_random_checkpoint`), for benchmarks and conversion tests without weights."""
    with Transaction(out_pb) as tx:  # the throw-away checkpoint in a scratch folder beside the output
        ckpt = make_random_checkpoint(tx.scratch() / "ckpt", embedding_size, seed)
        return freeze_checkpoint(ckpt, out_pb, fp16_output=fp16_output)


def load_frozen(pb_path: str | Path) -> tuple[tf.GraphDef, str, str]:
    """Read a frozen .pb back: (GraphDef, input tensor name, output tensor name), e.g. 'Placeholder:0'.

    The input is the single Placeholder; the output the single node nothing else consumes.
    """
    pb_path = Path(pb_path)
    if not pb_path.is_file():
        raise FileNotFoundError(f"{pb_path}: no such file")
    graph_def = tf.GraphDef()
    try:
        graph_def.ParseFromString(pb_path.read_bytes())
    except Exception as e:  # protobuf raises DecodeError (not exported the same way in every version)
        raise FrozenGraphError(f"{pb_path}: not a TensorFlow GraphDef ({type(e).__name__}: {e})") from e
    nodes = list(graph_def.node)
    if not nodes:
        raise FrozenGraphError(f"{pb_path}: not a TensorFlow GraphDef (no nodes)")
    names = {n.name for n in nodes}
    consumed = set()
    for n in nodes:
        for inp in n.input:
            src = inp.lstrip("^").split(":")[0]
            if src not in names:
                raise FrozenGraphError(f"{pb_path}: not a valid GraphDef (node {n.name!r} reads missing {src!r})")
            consumed.add(src)
    placeholders = [n.name for n in nodes if n.op == "Placeholder"]
    if len(placeholders) != 1:
        raise FrozenGraphError(f"{pb_path}: expected exactly one Placeholder input, found {placeholders}")
    if any(n.op in ("VariableV2", "VarHandleOp", "Variable") for n in nodes):
        raise FrozenGraphError(f"{pb_path}: graph still has variables; it is not frozen")
    outputs = [n.name for n in nodes if n.name not in consumed and n.op not in ("Const", "NoOp")]
    if len(outputs) != 1:
        raise FrozenGraphError(f"{pb_path}: expected exactly one output node, found {outputs[:5]}")
    return graph_def, f"{placeholders[0]}:0", f"{outputs[0]}:0"


def run_frozen(pb_path: str | Path, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Embeddings of normalised ``images`` ``[N,112,112,3]`` through a frozen .pb (TF session, CPU)."""
    graph_def, inp, out = load_frozen(pb_path)
    images = np.asarray(images, np.float32)
    with tf.Graph().as_default() as graph:
        tf.import_graph_def(graph_def, name="")
        x, y = graph.get_tensor_by_name(inp), graph.get_tensor_by_name(out)
        with tf.Session(graph=graph) as sess:
            parts = [sess.run(y, {x: images[i:i + batch_size]}) for i in range(0, len(images), batch_size)]
    return np.concatenate(parts) if parts else np.zeros((0, int(y.shape[-1])), y.dtype.as_numpy_dtype)


def freeze(out: str | Path, *, ckpt: str | Path | None = None, seed: int = 0, input_name: str = DEFAULT_INPUT,
           output_name: str | None = None, fp16_output: bool = False, embedding_size: int | None = None) -> Path:
    """Freeze the checkpoint ``ckpt`` (a directory or prefix), or with ``ckpt=None`` a seeded random-init
    model, into the .pb ``out``, with the checks of ``pymfn freeze``: values in range, ``out`` writable and
    not one of the checkpoint's files, one writer per ``out`` at a time. Returns the written path."""
    if embedding_size is not None and not 1 <= embedding_size <= MAX_EMBEDDING_SIZE:
        raise CommandError(f"--embedding-size must be 1..{MAX_EMBEDDING_SIZE}, got {embedding_size}")
    if not 0 <= seed < 2**32:
        raise CommandError(f"--seed must be 0..2**32-1, got {seed}")
    if ckpt is None and (input_name != DEFAULT_INPUT or output_name):
        raise CommandError("--random uses the default input/output names")
    check_output_path(out, "--out")
    inputs: list[tuple[str, Path]] = []
    ckpt_path = Path(ckpt) if ckpt else None
    if ckpt_path is not None and ckpt_path.is_dir():  # the checkpoint's files (a .pb written beside them is fine)
        inputs = [(f"--ckpt {ckpt} ({f.name})", f) for f in sorted(ckpt_path.iterdir()) if f.is_file()]
    elif ckpt_path is not None and Path(f"{ckpt_path}.index").is_file():
        inputs = [(f"--ckpt {ckpt} ({f.name})", f) for f in sorted(ckpt_path.parent.iterdir())
                  if f.is_file() and (f.name.startswith(ckpt_path.name + ".")
                                      or f.name in ("checkpoint", mfn.MODEL_INFO_FILE))]
    refuse_overlap([(f"--out {out}", Path(out))], inputs)
    with hold([out], option="--out"):  # a second freeze into the same --out is refused now
        if ckpt is None:
            return freeze_random(out, embedding_size or 128, seed, fp16_output)
        return freeze_checkpoint(ckpt, out, input_name, output_name, fp16_output, embedding_size)
