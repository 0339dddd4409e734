"""The built-in default model that `python -m pymfn.bench` runs when no `--model` is given.

With the pretrained sirius-ai weights in the shared folder it is MobileFaceNet frozen from the imported
TFLite weights (so accuracy figures mean something); without them it is a seeded random-initialised
MobileFaceNet, which is fine for latency but not for accuracy. Either is built once and cached under
``$XDG_CACHE_HOME/pymfn/models`` so later runs start instantly.

Beside each cached ``.pb`` a record (``<name>.pb.sha256.json``) holds its size and sha256; a cached model
is reused only while it matches (``reusable``), else it is rebuilt and the reason is printed in one line.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from pymfn import __version__, config
from pymfn.files import hashes as _hashes
from pymfn.files.atomic import Transaction, atomic_write, hold

RECORD_SUFFIX = ".sha256.json"
# How long a process waits for another that is building the same cached model.
CACHE_WAIT_S = 1800.0


@dataclass(frozen=True)
class DefaultModel:
    path: Path
    pretrained: bool
    description: str


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
    """True when the cached ``pb`` exists and still matches the size and sha256 recorded when it was built.

    An entry without a record (made by an older pymfn, or interrupted between model and record) is
    rebuilt like a missing one; an entry that differs from its record is rebuilt with a warning.
    """
    if not pb.exists():
        return False
    recorded = _hashes.read_json(record_path(pb))
    if recorded is None:
        return False
    why = _hashes.file_mismatch(pb, recorded)
    if why is None:
        return True
    if warn:
        print(f"pymfn: warning: the cached default model {pb} {why}; rebuilding it", file=sys.stderr)
    return False


def _record(pb: Path) -> None:
    with atomic_write(record_path(pb), "w") as f:
        json.dump(_hashes.file_record(pb), f)


def default_model(fp16_output: bool = False, quiet: bool = False) -> DefaultModel:
    """Return the cached default frozen .pb, building it on first use."""
    models = config.cache_dir() / "models"
    models.mkdir(parents=True, exist_ok=True)
    suffix = "-fp16out" if fp16_output else ""
    tflite = config.sirius_tflite_path()
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
