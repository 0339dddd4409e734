"""Post-training INT8 quantization of a frozen MobileFaceNet with NNCF, OpenVINO's own quantizer.

Why: on CPUs with VNNI or AMX-INT8 (and on Ascend 310, whose INT8 rate is twice its fp16 rate) INT8 is the
precision a deployer weighs against accuracy. NNCF runs a calibration set through the float model, records
activation ranges and writes an OpenVINO IR whose FakeQuantize operations OpenVINO's CPU plugin turns into
int8 kernels (``python -m pymfn.bench ... --precision int8`` then reports which layers really ran in int8).

Calibration uses images only, never labels: a seeded random choice of ``count`` images (default 300) from an
image folder (default: ``$PYMFN_SHARED/data/lfw_train_112``) or an ``lfw.bin``-style file, preprocessed the
way pymfn feeds the model (RGB, ``(x - 127.5) * 0.0078125``). ``lfw_train_112`` holds the LFW identities
with at least 5 images, so the calibration faces belong to people LFW evaluates; the record says so.

Defaults (measured on the sirius weights, ``README.md`` "Precision"): the *performance* preset (symmetric
int8 activations and weights) quantizes every convolution together with its BatchNorm/PReLU/residual-add
neighbours, so OpenVINO fuses each into one int8 kernel with no reorders left between them; full bias
correction (not NNCF's fast variant) keeps LFW accuracy at the f32 figure.

Beside ``OUT.xml``/``OUT.bin`` the command writes ``OUT.quantization.json``: the source model (sha256),
calibration set (source, every chosen file, seed, preprocessing), preset, ignored scopes, bias correction,
tool versions and the overlap statement. ``--save-calibration DIR`` also writes the chosen samples as
float32 ``.bin`` files (msame / AMCT ``--data_dir`` layout) so the same set can calibrate AMCT on a CANN machine.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pymfn import __version__, config
from pymfn.files import hashes as _hashes
from pymfn.files.atomic import Transaction, atomic_dir, hold, json_bytes, refuse_overlap
from pymfn.errors import CommandError
from pymfn.files.outputs import check_output_dir, check_output_path
from pymfn._quiet import native_stderr_hidden
from pymfn.export.default_model import default_model

DEFAULT_COUNT = 300
DEFAULT_SEED = 0
PRESETS = ("performance", "mixed")
DEFAULT_PRESET = "performance"
RECORD_SUFFIX = ".quantization.json"
CALIBRATION_MARKER = ".calibration.json"  # inside a --save-calibration folder: written by this command
SCALE = 0.0078125  # the reference normalisation (x - 127.5) * 1/128
# A bigger calibration set buys nothing measurable and NNCF keeps every sample in memory.
MAX_COUNT = 10_000
# How long a process waits for another that is building the same cached INT8 model.
CACHE_WAIT_S = 3600.0


class QuantizeError(CommandError):
    """A quantization input or option is unusable; the message names it and says what was expected."""


# ---------------------------------------------------------------- calibration set

@dataclass
class CalibrationSet:
    """The images NNCF calibrates on, and everything needed to say exactly which they were."""

    source: Path
    kind: str                    # "folder" or "lfw.bin"
    available: int               # images the source holds
    seed: int
    color: str                   # channel order fed to the model: "rgb" or "bgr"
    names: list[str]             # chosen images: relative paths (folder) or "#<index>" (lfw.bin)
    images: np.ndarray = field(repr=False)  # uint8 [N, H, W, 3]

    def samples(self) -> np.ndarray:
        """float32 NHWC model inputs, ``(x - 127.5) * 0.0078125`` (exact in float32)."""
        out = self.images.astype(np.float32)
        out -= np.float32(127.5)
        out *= np.float32(SCALE)
        return out

    def digest(self) -> str:
        """sha256 of the preprocessed samples: identical digests mean identical calibration."""
        return hashlib.sha256(self.samples().tobytes()).hexdigest()


def overlap_note(source: Path) -> str:
    """What the calibration images are, relative to LFW, in one sentence for reports."""
    resolved = source.resolve()
    if resolved == config.lfw_train_dir().resolve():
        return ("lfw_train_112 holds the LFW identities with at least 5 images, so these calibration faces belong to "
                "people LFW evaluates (no labels are used: only activation ranges are taken from them)")
    if resolved == config.lfw_bin_path().resolve():
        return ("the calibration images ARE LFW test images (no labels are used, but LFW accuracy of this model is "
                "not a held-out figure)")
    return "no labels are used; pymfn cannot tell whether these faces overlap the set you evaluate on"


def load_calibration(source: str | os.PathLike, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED,
                     color: str = "rgb", size: int = 112) -> CalibrationSet:
    """A seeded random choice of ``count`` images of an image folder or an ``lfw.bin``-style file.

    Never fewer than asked: a source with fewer than ``count`` images is an error, not a smaller set.
    Images must already be ``size`` x ``size`` face crops (nothing is resized).
    """
    from pymfn.inputs.image2bin import IMAGE_EXTENSIONS, list_images
    from pymfn.inputs.lfw_bin import decode_images, read_lfw_bin

    path = Path(source)
    _check_count(count)
    if color not in ("rgb", "bgr"):
        raise QuantizeError(f"color {color!r}: expected rgb or bgr")
    if not path.exists():
        raise QuantizeError(f"--calibration {path}: no such image folder or lfw.bin file")
    if path.is_dir():
        files = list_images(path)
        kind, available = "folder", len(files)
        if available == 0:
            raise QuantizeError(f"--calibration {path}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
    elif path.is_file():
        bins, _issame = read_lfw_bin(path)  # labels are read by the format but never used
        kind, available = "lfw.bin", len(bins)
    else:
        raise QuantizeError(f"--calibration {path}: not a regular file or folder")
    if available < count:
        raise QuantizeError(f"--calibration {path}: holds {available} images but --count asks for {count}; "
                            "give a smaller --count or a larger set")
    chosen = np.sort(np.random.default_rng(seed).choice(available, size=count, replace=False))
    if kind == "folder":
        from pymfn.files.readfile import read_regular_file
        from pymfn.inputs.pack import MAX_IMAGE_FILE_BYTES

        picked = [files[i] for i in chosen]
        data = [read_regular_file(f, "an image file", max_bytes=MAX_IMAGE_FILE_BYTES) for f in picked]
        names = [f.relative_to(path).as_posix() for f in picked]
        images = decode_images(data, color=color, size=size, source=[str(f) for f in picked])
    else:
        names = [f"#{i}" for i in chosen]
        images = decode_images([bins[i] for i in chosen], color=color, size=size, source=str(path))
    return CalibrationSet(path, kind, available, seed, color, names, images)


def _check_count(count: int) -> None:
    if not 1 <= count <= MAX_COUNT:
        raise QuantizeError(f"--count {count}: expected 1..{MAX_COUNT} calibration images")


def default_calibration_source() -> Path:
    """``$PYMFN_SHARED/data/lfw_train_112``, the default calibration folder."""
    return config.lfw_train_dir()


# ---------------------------------------------------------------- the float model

def read_float_model(model_path: Path) -> Any:
    """The OpenVINO model of a frozen ``.pb`` (or ``.onnx`` / IR ``.xml``), its batch made dynamic.

    A model that is already quantized is refused: quantizing twice would stack FakeQuantize operations.
    """
    import openvino as ov

    if not model_path.exists():
        raise QuantizeError(f"{model_path}: model file not found (expected a frozen .pb, .onnx or OpenVINO .xml)")
    if not model_path.is_file():  # a FIFO or device would block or flood the reader
        raise QuantizeError(f"{model_path}: not a regular file (expected a frozen .pb, .onnx or OpenVINO .xml)")
    suffix = model_path.suffix.lower()
    if suffix not in (".pb", ".onnx", ".xml"):
        raise QuantizeError(f"{model_path}: cannot quantize a '{suffix}' file (expected a frozen .pb, .onnx or .xml)")
    try:
        with native_stderr_hidden():
            model = ov.convert_model(str(model_path)) if suffix == ".pb" else ov.Core().read_model(str(model_path))
    except Exception as exc:  # OpenVINO raises its own types for unreadable models
        raise QuantizeError(f"{model_path}: OpenVINO could not read the model ({type(exc).__name__}: "
                            f"{str(exc).strip().splitlines()[0] if str(exc).strip() else exc})") from None
    if len(model.inputs) != 1:
        raise QuantizeError(f"{model_path}: the model has {len(model.inputs)} inputs; pymfn quantizes one-input models")
    fq = count_fake_quantize(model)
    if fq:
        raise QuantizeError(f"{model_path}: already quantized ({fq} FakeQuantize operations); quantize the float model")
    shape = model.input(0).get_partial_shape()
    if shape.rank.is_dynamic or shape.rank.get_length() != 4 or any(d.is_dynamic for d in list(shape)[1:]):
        raise QuantizeError(f"{model_path}: input {shape} is not NHWC [batch, H, W, 3]; pymfn quantizes image models")
    dims = [d.get_length() for d in list(shape)[1:]]
    if dims[0] != dims[1] or dims[2] != 3:
        raise QuantizeError(f"{model_path}: input {shape} is not a square 3-channel NHWC image input")
    model.reshape({model.input(0): ov.PartialShape([-1, *dims])})
    return model


def count_fake_quantize(model: Any) -> int:
    """FakeQuantize operations in an OpenVINO model: > 0 means its quantized layers run in int8."""
    return sum(1 for op in model.get_ordered_ops() if op.get_type_name() == "FakeQuantize")


def model_input_size(model: Any) -> int:
    return int(model.input(0).get_partial_shape()[1].get_length())


# ---------------------------------------------------------------- quantization

@dataclass
class QuantizeSettings:
    """How NNCF quantizes; every field lands in the record."""

    preset: str = DEFAULT_PRESET
    fast_bias_correction: bool = False
    ignored_types: list[str] = field(default_factory=list)
    ignored_names: list[str] = field(default_factory=list)

    def check(self) -> None:
        if self.preset not in PRESETS:
            raise QuantizeError(f"--preset {self.preset!r}: expected one of {', '.join(PRESETS)}")


def run_nncf(model: Any, calibration: CalibrationSet, settings: QuantizeSettings) -> Any:
    """The quantized OpenVINO model (NNCF post-training quantization over every calibration sample)."""
    import nncf

    settings.check()
    samples = calibration.samples()
    dataset = nncf.Dataset([samples[i:i + 1] for i in range(len(samples))])
    preset = nncf.QuantizationPreset.PERFORMANCE if settings.preset == "performance" else nncf.QuantizationPreset.MIXED
    kwargs: dict[str, Any] = {"preset": preset, "subset_size": len(samples),
                              "fast_bias_correction": settings.fast_bias_correction}
    if settings.ignored_types or settings.ignored_names:
        kwargs["ignored_scope"] = nncf.IgnoredScope(types=list(settings.ignored_types),
                                                    names=list(settings.ignored_names))
    try:
        return nncf.quantize(model, dataset, **kwargs)
    except nncf.ValidationError as exc:  # an ignored scope that matches nothing in the model
        raise QuantizeError(f"--ignore-type/--ignore-name: {' '.join(str(exc).split())}") from None


def tool_versions() -> dict[str, str]:
    import nncf
    import openvino as ov

    return {"pymfn": __version__, "nncf": nncf.__version__, "openvino": ov.get_version(), "numpy": np.__version__,
            "python": platform.python_version()}


def file_sha256(path: Path) -> str:
    return _hashes.file_sha256(path)


def record_path(out_xml: Path) -> Path:
    """Where the quantization record of ``out_xml`` lives: ``OUT.quantization.json``."""
    return out_xml.with_name(out_xml.stem + RECORD_SUFFIX)


def read_record(out_xml: str | os.PathLike) -> dict[str, Any] | None:
    """The record written beside a quantized IR, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(record_path(Path(out_xml)).read_text())
    except (OSError, ValueError):
        return None


def ir_set(out_xml: str | os.PathLike) -> list[Path]:
    """The files of one quantized model: ``OUT.xml``, ``OUT.bin`` and the record (written last)."""
    out_xml = Path(out_xml)
    return [out_xml, out_xml.with_suffix(".bin"), record_path(out_xml)]


def check_ir_set(out_xml: str | os.PathLike) -> str | None:
    """None when ``OUT.xml``/``OUT.bin`` are the files the record was written with; else what is wrong."""
    out_xml = Path(out_xml)
    record = read_record(out_xml)
    if record is None:
        return f"{record_path(out_xml).name} is missing or unreadable"
    try:
        want = record["output"]
        for path, key in ((out_xml, "xml_sha256"), (out_xml.with_suffix(".bin"), "bin_sha256")):
            if file_sha256(path) != want[key]:
                return f"{path.name} is not the file {record_path(out_xml).name} was written with"
    except (OSError, KeyError, TypeError) as exc:
        return f"{record_path(out_xml).name} does not describe this model ({exc})"
    return None


def build_record(model_path: Path, out_xml: Path, calibration: CalibrationSet, settings: QuantizeSettings,
                 quantized: Any, seconds: float, xml_file: Path | None = None, bin_file: Path | None = None
                 ) -> dict[str, Any]:
    """Everything that decides the quantized model, so it can be rebuilt and audited.

    ``xml_file``/``bin_file``: where the IR's bytes are now (its temps before the commit), if not at
    ``out_xml``.
    """
    return {
        "format": "pymfn-quantization/1",
        "model": {"path": str(model_path), "sha256": file_sha256(model_path)},
        "output": {"xml": str(out_xml), "xml_sha256": file_sha256(xml_file or out_xml),
                   "bin_sha256": file_sha256(bin_file or out_xml.with_suffix(".bin")),
                   "fake_quantize_ops": count_fake_quantize(quantized)},
        "calibration": {
            "source": str(calibration.source), "kind": calibration.kind, "available": calibration.available,
            "count": len(calibration.names), "seed": calibration.seed,
            "selection": "numpy.random.default_rng(seed).choice(available, count, replace=False), sorted; folder "
                         "images in sorted relative-path order, lfw.bin images by index",
            "preprocessing": f"{calibration.color.upper()}, (x - 127.5) * 0.0078125, float32 NHWC "
                             f"{list(calibration.images.shape[1:])}",
            "labels_used": False, "overlap": overlap_note(calibration.source),
            "samples_sha256": calibration.digest(), "images": calibration.names,
        },
        "nncf": {"preset": settings.preset, "subset_size": len(calibration.names),
                 "fast_bias_correction": settings.fast_bias_correction,
                 "bias_correction": "fast" if settings.fast_bias_correction else "full",
                 "ignored_scope": {"types": list(settings.ignored_types), "names": list(settings.ignored_names)}},
        "tool_versions": tool_versions(),
        "seconds": round(seconds, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def stage_ir(tx: Transaction, model: Any, out_xml: Path) -> tuple[Path, Path]:
    """Save an OpenVINO model into ``tx`` as ``out_xml`` + ``.bin`` (weights, then the xml); returns their
    temps. OpenVINO writes both files of a name into a scratch folder beside the output."""
    import openvino as ov

    tmp_xml = tx.scratch() / out_xml.name
    ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
    tx.adopt(out_xml.with_suffix(".bin"), tmp_xml.with_suffix(".bin"))
    tx.adopt(out_xml, tmp_xml)
    return tx.temp_of(out_xml), tx.temp_of(out_xml.with_suffix(".bin"))  # type: ignore[return-value]


def quantize_model(model_path: str | os.PathLike, out_xml: str | os.PathLike, calibration: CalibrationSet,
                   settings: QuantizeSettings | None = None, model: Any = None) -> dict[str, Any]:
    """Quantize ``model_path`` into the OpenVINO IR ``out_xml`` (+ ``.bin`` + record); returns the record.

    ``model`` is ``read_float_model(model_path)`` when the caller has read it already.
    """
    settings = settings or QuantizeSettings()
    settings.check()
    model_path, out_xml = Path(model_path), Path(out_xml)
    t0 = time.perf_counter()
    if model is None:
        model = read_float_model(model_path)
    size = model_input_size(model)
    if calibration.images.shape[1:3] != (size, size):
        raise QuantizeError(f"--calibration {calibration.source}: images are {calibration.images.shape[1:3]}, the model "
                            f"wants {size}x{size}")
    quantized = run_nncf(model, calibration, settings)
    # one set: the IR and its record, the record (which names the IR by hash) committed last
    with Transaction(out_xml, also=ir_set(out_xml)[1:]) as tx:
        xml_file, bin_file = stage_ir(tx, quantized, out_xml)
        record = build_record(model_path, out_xml, calibration, settings, quantized, time.perf_counter() - t0,
                              xml_file, bin_file)
        tx.write_bytes(record_path(out_xml), json_bytes(record, indent=1), last=True)
    return record


def save_calibration_bins(calibration: CalibrationSet, folder: Path) -> None:
    """The chosen samples as ``{i}.bin`` float32 NHWC files (msame / AMCT ``--data_dir`` layout) + an index."""
    samples = calibration.samples()
    with atomic_dir(folder) as tmp:
        for i, sample in enumerate(samples):
            sample.tofile(tmp / f"{i}.bin")
        (tmp / ".index.txt").write_text("".join(f"{i}\t{n}\n" for i, n in enumerate(calibration.names)))
        (tmp / CALIBRATION_MARKER).write_bytes(json_bytes({
            "source": str(calibration.source), "seed": calibration.seed, "count": len(samples),
            "dtype": "float32", "shape": list(samples.shape[1:]), "color": calibration.color,
            "overlap": overlap_note(calibration.source), "samples_sha256": calibration.digest()}, indent=1))


# ---------------------------------------------------------------- cached default INT8 model

def cached_ir_reusable(out_xml: Path) -> bool:
    """True when the cached IR ``out_xml`` and its ``.bin`` still hash to what its record says.

    An entry with no (readable) record is rebuilt like a missing one; one whose files differ from the
    record is rebuilt with a one-line warning naming the file and the difference.
    """
    if not out_xml.is_file():
        return False
    record = read_record(out_xml)
    output = record.get("output") if isinstance(record, dict) else None
    if not isinstance(output, dict):
        return False
    for path, key in ((out_xml, "xml_sha256"), (out_xml.with_suffix(".bin"), "bin_sha256")):
        why = _hashes.file_mismatch(path, {"sha256": output.get(key)})
        if why is not None:
            print(f"pymfn: warning: the cached INT8 IR {path} {why}; quantizing again", file=sys.stderr, flush=True)
            return False
    return True


def cached_quantized(model_path: str | os.PathLike, calibration: CalibrationSet | None = None,
                     settings: QuantizeSettings | None = None, quiet: bool = False) -> Path:
    """The INT8 IR of ``model_path`` with the default calibration, built once into the cache.

    Keyed by the model's bytes, the calibration samples, the settings, this module and the tool versions,
    so any change rebuilds it and an unchanged setup (the sweep, the tests) reuses it.
    """
    model_path = Path(model_path)
    settings = settings or QuantizeSettings()
    if calibration is None:
        source = default_calibration_source()
        if not source.is_dir():
            raise QuantizeError(f"no calibration set: the default {source} is absent (set PYMFN_SHARED, or quantize "
                                "with `python -m pymfn quantize --calibration DIR`)")
        calibration = load_calibration(source)
    h = hashlib.sha256()
    for part in (file_sha256(model_path), calibration.digest(), json.dumps(settings.__dict__, sort_keys=True),
                 json.dumps(tool_versions(), sort_keys=True), file_sha256(Path(__file__))):
        h.update(part.encode())
    folder = config.cache_dir() / "models"
    out = folder / f"{model_path.stem}-int8-{h.hexdigest()[:12]}.xml"
    # Under the lock: a second process building the same entry waits and then reuses it (after checking its
    # files against the hashes its record holds).
    with hold(ir_set(out), wait=CACHE_WAIT_S):
        if cached_ir_reusable(out):
            return out
        if not quiet:
            print(f"pymfn: quantizing {model_path.name} once ({len(calibration.names)} calibration images from "
                  f"{calibration.source}) -> {out}", flush=True)
        quantize_model(model_path, out, calibration, settings)
    return out


# ---------------------------------------------------------------- `pymfn quantize`

def _outputs(output: Path, save_calibration: Path | None) -> dict[Path, str]:
    """Every output path -> how messages name it (the option as typed)."""
    labels = {p: f"--output {output}" + ("" if p == output else f" ({p.name})") for p in ir_set(output)}
    if save_calibration is not None:
        labels[save_calibration] = f"--save-calibration {save_calibration}"
    return labels


def _inputs(model: Path | None, calibration: Path) -> list[tuple[str, Path | None]]:
    found: list[tuple[str, Path | None]] = [(str(model), model)]
    if model is not None and model.suffix.lower() == ".xml":
        found.append((f"{model} (its weights {model.with_suffix('.bin').name})", model.with_suffix(".bin")))
    found.append((f"--calibration {calibration}", calibration))
    return found


def _check_outputs(out: Path, save_calibration: Path | None) -> None:
    if out.suffix.lower() != ".xml":
        raise QuantizeError(f"--output {out}: expected an OpenVINO IR name ending in .xml")
    for path in ir_set(out):
        check_output_path(path, "--output")
    if save_calibration is not None:
        check_output_dir(save_calibration, "--save-calibration", marker=CALIBRATION_MARKER)


def _resolve_model(model: Path | None, quiet: bool) -> Path:
    if model is None:
        dm = default_model(quiet=quiet)
        if not dm.pretrained and not quiet:
            print("note: no pretrained weights under PYMFN_SHARED: quantizing the random-weight default model")
        return dm.path
    if not model.exists():
        raise QuantizeError(f"{model}: model file not found (expected a frozen .pb, .onnx or OpenVINO .xml)")
    return model


def quantize(model: str | os.PathLike | None, output: str | os.PathLike, *,
             calibration: str | os.PathLike | None = None, count: int = DEFAULT_COUNT, seed: int = DEFAULT_SEED,
             color: str = "rgb", settings: QuantizeSettings | None = None,
             save_calibration: str | os.PathLike | None = None, quiet: bool = False) -> dict[str, Any]:
    """Quantize ``model`` (a frozen .pb, .onnx or OpenVINO .xml; None = pymfn's default model) into the
    OpenVINO IR ``output`` (+ .bin + record), calibrated on ``count`` images of ``calibration`` (default
    :func:`default_calibration_source`) chosen with ``seed``; returns the record.

    The checks of ``pymfn quantize`` come first (values, outputs writable and distinct from the inputs, one
    writer per output at a time); ``save_calibration`` also writes the chosen samples as .bin files.
    Progress lines go to stdout unless ``quiet``.
    """
    settings = settings or QuantizeSettings()
    _check_count(count)
    if seed < 0:
        raise QuantizeError(f"--seed {seed}: expected a non-negative integer")
    out = Path(output)
    if out.suffix.lower() != ".xml":
        raise QuantizeError(f"--output {output}: expected an OpenVINO IR name ending in .xml")
    model_path = Path(model) if model is not None else None
    saved = Path(save_calibration) if save_calibration else None
    source = Path(calibration) if calibration else default_calibration_source()
    labels = _outputs(out, saved)
    refuse_overlap([(label, p) for p, label in labels.items()], _inputs(model_path, source))
    # the locks first: a second quantize into the same output is refused now, not after minutes of work
    with hold(list(labels), labels=labels):
        _check_outputs(out, saved)  # before minutes of work
        model_path = _resolve_model(model_path, quiet)
        if calibration is None and not source.is_dir():
            raise QuantizeError(f"--calibration: the default {source} is absent (set PYMFN_SHARED or give --calibration)")
        float_model = read_float_model(model_path)
        chosen = load_calibration(source, count, seed, color=color, size=model_input_size(float_model))
        if not quiet:
            print(f"calibration: {len(chosen.names)} of {chosen.available} images of {source} (seed "
                  f"{seed}, {chosen.color.upper()}); {overlap_note(source)}", flush=True)
        if saved is not None:
            save_calibration_bins(chosen, saved)
            print(f"wrote the {len(chosen.names)} calibration samples to {save_calibration}")
        return quantize_model(model_path, out, chosen, settings, model=float_model)
