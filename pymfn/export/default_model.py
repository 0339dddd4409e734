"""The built-in default model that `pymfn bench` runs when no `--model` is given.

With the pretrained sirius-ai weights in the shared folder it is MobileFaceNet built from the TFLite
weights (so accuracy figures mean something); without them it is a seeded random-initialised
MobileFaceNet, which is fine for latency but not for accuracy. Either is built once and cached under
``$XDG_CACHE_HOME/pymfn/models`` so later runs start instantly.

How it is built depends on what is installed:

* with TensorFlow (``pip install 'pymfn[train]'``): the weights are imported into a checkpoint and frozen
  into a ``.pb``, the graph every deployment path (atc, ONNX, OpenVINO) consumes;
* without TensorFlow (the base install): OpenVINO reads the TFLite file itself; the model gets a dynamic
  batch, the L2-normalised output of the frozen graph and its input/output names, and is saved as an
  OpenVINO IR ``.xml`` + ``.bin`` (same embeddings within float32 rounding; tests/test_default_model.py);
* with neither TensorFlow nor the weights there is nothing to build it from: a one-line error names the
  extra to install.

Beside each cached model a record (``<name>.pb.sha256.json`` / ``<name>.xml.sha256.json``) holds the size
and sha256 of its files; a cached model is reused only while it matches (``reusable``), else it is rebuilt
and the reason is printed in one line.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pymfn import __version__, config
from pymfn.errors import CommandError
from pymfn.files import hashes as _hashes
from pymfn.files.atomic import Transaction, atomic_write, hold

RECORD_SUFFIX = ".sha256.json"
# How long a process waits for another that is building the same cached model.
CACHE_WAIT_S = 1800.0


# Names of pymfn's frozen graphs (pymfn.export.freeze), given to the IR built without TensorFlow too.
INPUT_NAME = "Placeholder"
OUTPUT_NAME = "embeddings"
FP16_OUTPUT_NAME = "the_outputs"
# tf.nn.l2_normalize's epsilon in the frozen graph: x / sqrt(max(sum(x^2), eps))
L2_EPSILON = 1e-10


@dataclass(frozen=True)
class DefaultModel:
    path: Path
    pretrained: bool
    description: str


def tensorflow_available() -> bool:
    """Whether TensorFlow can be imported (without importing it: that takes seconds)."""
    return importlib.util.find_spec("tensorflow") is not None


def _cache_key(*inputs: Path) -> str:
    """Cache key: the bytes of ``inputs`` plus the code that turns weights into a graph.

    Content rather than path/mtime keeps one cached model per real change (a moved checkout or a fresh
    CI clone reuses it); hashing model.py/weights.py/freeze.py rebuilds it whenever the graph changes.
    """
    here = Path(__file__).resolve().parent
    h = hashlib.sha256(__version__.encode())
    for f in (*inputs, here.parent / "training" / "model.py", here / "weights.py", here / "freeze.py"):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def record_path(pb: Path) -> Path:
    return pb.with_name(pb.name + RECORD_SUFFIX)


def reusable(pb: Path, warn: bool = True) -> bool:
    """True when the cached model ``pb`` (a ``.pb``, or an IR ``.xml`` whose record also covers its ``.bin``)
    exists and still matches the sizes and sha256 recorded when it was built.

    An entry without a record (made by an older pymfn, or interrupted between model and record) is
    rebuilt like a missing one; an entry that differs from its record is rebuilt with a warning.
    """
    if not pb.exists():
        return False
    recorded = _hashes.read_json(record_path(pb))
    if recorded is None:
        return False
    why = _hashes.file_mismatch(pb, recorded)
    if why is None and pb.suffix == ".xml":
        weights = pb.with_suffix(".bin")
        bin_why = _hashes.file_mismatch(weights, recorded.get("bin") if isinstance(recorded, dict) else None)
        why = None if bin_why is None else f"has weights {weights.name} that {bin_why.replace('has ', '', 1)}"
    if why is None:
        return True
    if warn:
        print(f"pymfn: warning: the cached default model {pb} {why}; rebuilding it", file=sys.stderr)
    return False


def _record(pb: Path) -> None:
    with atomic_write(record_path(pb), "w") as f:
        json.dump(_hashes.file_record(pb), f)


# ------------------------------------------------------------------------ without TensorFlow: OpenVINO IR

def _ir_cache_key(tflite: Path) -> str:
    """Cache key of the IR: the TFLite bytes, this module (the graph edits) and the OpenVINO release."""
    import openvino as ov

    h = hashlib.sha256(f"{__version__} {ov.get_version()}".encode())
    h.update(tflite.read_bytes())
    h.update(Path(__file__).read_bytes())
    return h.hexdigest()[:12]


def _dynamic_batch(model: Any, batch: int) -> None:
    """Give ``model`` a dynamic batch: the TFLite file fixes it (input ``[2,112,112,3]``), also inside the
    Reshape that flattens the embedding (target shape ``[2, 192]``), which is rewritten to ``[-1, 192]``."""
    import openvino as ov

    for op in model.get_ops():
        if op.get_type_name() != "Reshape":
            continue
        target = op.input_value(1).get_node()
        if target.get_type_name() != "Constant":
            continue
        dims = target.get_data()
        if dims.ndim == 1 and dims.size >= 1 and int(dims[0]) == batch:
            flexible = np.array([-1, *dims[1:]], dtype=np.int64)
            op.input(1).replace_source_output(ov.opset13.constant(flexible).output(0))
    model.reshape({model.input(): ov.PartialShape([-1, *model.input().get_partial_shape()[1:]])})
    model.validate_nodes_and_infer_types()


def tflite_to_ir_model(tflite: Path, fp16_output: bool = False) -> Any:
    """The sirius TFLite MobileFaceNet as an ``openvino.Model`` with the frozen graph's interface: input
    ``Placeholder`` float32 ``[?, 112, 112, 3]`` (already normalised), output ``embeddings`` = the
    L2-normalised embedding (or its float16 cast ``the_outputs`` with ``fp16_output``)."""
    import openvino as ov

    from pymfn.export.weights import WeightsFormatError

    try:
        model = ov.Core().read_model(str(tflite))
    except RuntimeError as e:
        raise WeightsFormatError(f"{tflite}: OpenVINO cannot read this TFLite file "
                                 f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from e
    if len(model.inputs) != 1 or len(model.outputs) != 1 or model.input().get_partial_shape().rank.get_length() != 4:
        raise WeightsFormatError(f"{tflite}: not the pretrained MobileFaceNet (expected one 4-D image input and one "
                                 f"embedding output, found {len(model.inputs)} inputs, {len(model.outputs)} outputs)")
    batch = model.input().get_partial_shape()[0]
    _dynamic_batch(model, batch.get_length() if batch.is_static else -1)
    param = model.get_parameters()[0]
    param.set_friendly_name(INPUT_NAME)
    param.output(0).set_names({INPUT_NAME})
    raw = model.output().get_node().input_value(0)
    emb = ov.opset13.normalize_l2(raw, ov.opset13.constant(np.array([1], dtype=np.int64)), L2_EPSILON, "max")
    out = ov.opset13.convert(emb, ov.Type.f16) if fp16_output else emb
    name = FP16_OUTPUT_NAME if fp16_output else OUTPUT_NAME
    out.set_friendly_name(name)
    out.output(0).set_names({name})
    return ov.Model([ov.opset13.result(out)], [param], "mobilefacenet")


def _build_ir(tflite: Path, xml: Path, fp16_output: bool) -> None:
    """Write ``xml`` + ``.bin`` + record as one set (record last), float32 weights as in the TFLite file."""
    import openvino as ov

    model = tflite_to_ir_model(tflite, fp16_output)
    weights, record = xml.with_suffix(".bin"), record_path(xml)
    with Transaction(xml, also=[weights, record]) as tx:
        tmp_xml = tx.scratch() / xml.name
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        tx.adopt(weights, tmp_xml.with_suffix(".bin"))
        tx.adopt(xml, tmp_xml)
        xml_tmp, weights_tmp = tx.temp_of(xml), tx.temp_of(weights)
        assert xml_tmp is not None and weights_tmp is not None  # both adopted just above
        doc = {**_hashes.file_record(xml_tmp), "bin": _hashes.file_record(weights_tmp)}
        tx.write_bytes(record, json.dumps(doc), last=True)


def _pretrained_ir(tflite: Path, models: Path, suffix: str, fp16_output: bool, quiet: bool) -> DefaultModel:
    xml = models / f"mobilefacenet-sirius-ov-{_ir_cache_key(tflite)}{suffix}.xml"
    desc = f"MobileFaceNet, pretrained sirius-ai weights read by OpenVINO from {tflite}"
    if not reusable(xml, warn=False):
        with hold([xml], wait=CACHE_WAIT_S):
            if not reusable(xml):
                if not quiet:
                    print(f"pymfn: building the default model once ({desc}; TensorFlow is not installed) -> {xml}")
                _build_ir(tflite, xml, fp16_output)
    return DefaultModel(xml, True, desc)


def default_model(fp16_output: bool = False, quiet: bool = False) -> DefaultModel:
    """Return the cached default model, building it on first use: a frozen ``.pb`` where TensorFlow is
    installed, else (from the pretrained weights) an OpenVINO IR ``.xml``."""
    tflite = config.sirius_tflite_path()
    have_tf = tensorflow_available()
    if not have_tf and not tflite.exists():
        raise CommandError(f"the built-in default model needs TensorFlow (pip install 'pymfn[train]') or the "
                           f"pretrained weights {tflite} (set PYMFN_SHARED); or pass --model with an "
                           ".xml/.onnx/.om model")
    models = config.cache_dir() / "models"
    models.mkdir(parents=True, exist_ok=True)
    suffix = "-fp16out" if fp16_output else ""
    if not have_tf:
        return _pretrained_ir(tflite, models, suffix, fp16_output, quiet)
    if tflite.exists():
        pb = models / f"mobilefacenet-sirius-{_cache_key(tflite)}{suffix}.pb"
        desc = f"MobileFaceNet, pretrained sirius-ai weights imported from {tflite}"
        if not reusable(pb, warn=False):
            # under the lock: a second process building the same model waits, then finds it built
            with hold([pb], wait=CACHE_WAIT_S):
                if not reusable(pb):
                    if not quiet:
                        print(f"pymfn: building the default model once ({desc}) -> {pb}")
                    from pymfn.export import freeze
                    from pymfn.export import weights

                    with Transaction(pb) as tx:  # the imported checkpoint in a scratch folder beside the model
                        ckpt = weights.import_weights(tflite, tx.scratch() / "ckpt")
                        freeze.freeze_checkpoint(ckpt, pb, fp16_output=fp16_output)
                    _record(pb)
        return DefaultModel(pb, True, desc)

    pb = models / f"mobilefacenet-random-seed0-{_cache_key()}{suffix}.pb"
    desc = "MobileFaceNet, random weights (seed 0): fine for latency, accuracy needs the pretrained weights"
    if not reusable(pb, warn=False):
        with hold([pb], wait=CACHE_WAIT_S):
            if not reusable(pb):
                if not quiet:
                    print(f"pymfn: pretrained weights not found at {tflite}; building a random-weight model -> {pb}")
                from pymfn.export import freeze

                freeze.freeze_random(pb, embedding_size=128, seed=0, fp16_output=fp16_output)
                _record(pb)
    return DefaultModel(pb, False, desc)


def clear_cache() -> None:
    shutil.rmtree(config.cache_dir() / "models", ignore_errors=True)
