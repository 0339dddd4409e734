"""Build driver: runs CMake (CMakeLists.txt is the only place that lists native sources).

`pip install .` and `pip install -e .` both end up here. The CMake build writes `_core*.so` (and, without
CANN, the ACL emulator `libascendcl.so` with its CANN-shaped toolkit root `toolkit/`) straight into the
extension's output folder. A regular install copies that folder's tree into the wheel (the toolkit's relative
symlinks become copies); an editable install copies it back into the source tree, symlinks kept.

``PYMFN_PREBUILT_DIR=<folder>`` packages the native libraries already built there (``_core``, the emulator
libraries, ``toolkit/``; e.g. ``pymfn/`` after an editable install, or a ``cmake -DPYMFN_OUTPUT_DIR`` build)
instead of running CMake. They must come from these sources and the openvino release pinned below: CI's
light-install step uses it to install the editable build's libraries into a second venv without a rebuild.

An editable install records a fingerprint of what it built from (``pymfn/.native-build.json``: the native
sources, the Python, pybind11 and openvino versions, the build options); the next editable install with the
same fingerprint reuses the libraries in ``pymfn/`` instead of rebuilding them (``pip install -e ".[dev]"``
after ``pip install -e .``). ``PYMFN_REBUILD=1`` forces the build.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
PREBUILT_ENV = "PYMFN_PREBUILT_DIR"
# Shared libraries the CMake build writes beside _core (regular installs ship them from build_lib).
NATIVE_LIBRARIES = ("libascendcl.so*", "libacl_cblas.so*", "libacl_dvpp.so*")
# The emulator's toolkit root, written beside them (`python -m pymfn acl-config --toolkit-root`).
TOOLKIT_DIR = "toolkit"


STAMP = ROOT / "pymfn" / ".native-build.json"


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def native_fingerprint(cfg: str) -> str:
    """What an editable build's libraries depend on: native sources, interpreter, build requirements, options."""
    h = hashlib.sha256()
    files = [ROOT / "CMakeLists.txt", *sorted((ROOT / "csrc").rglob("*")), *sorted((ROOT / "cmake").rglob("*"))]
    for f in files:
        if f.is_file():
            h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    for item in (sys.version, _version("pybind11"), _version("openvino"), cfg,
                 os.environ.get("PYMFN_WERROR", ""), os.environ.get("PYMFN_CMAKE_ARGS", ""),
                 os.environ.get("CXX", ""), os.environ.get("CC", "")):
        h.update(item.encode() + b"\0")
    return h.hexdigest()


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        prebuilt = os.environ.get(PREBUILT_ENV, "")
        if prebuilt:
            self.copy_prebuilt(ext, Path(prebuilt).resolve(), out_dir)
            return
        cfg = "Debug" if self.debug else "Release"
        if self.reusable_editable_build(ext, cfg):
            print(f"pymfn: native sources unchanged since the last editable build ({STAMP.name}); reusing pymfn/"
                  f"{Path(self.get_ext_filename(ext.name)).name} (PYMFN_REBUILD=1 rebuilds)")
            self.copy_prebuilt(ext, ROOT / "pymfn", out_dir)
            return
        build_dir = Path(self.build_temp).resolve() / "cmake"
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            f"-DPYMFN_OUTPUT_DIR={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={cfg}",
        ]
        if os.environ.get("PYMFN_WERROR", "") not in ("", "0"):
            args.append("-DPYMFN_WERROR=ON")
        args += [a for a in os.environ.get("PYMFN_CMAKE_ARGS", "").split() if a]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", jobs], check=True)

    def editable(self) -> bool:
        return bool(getattr(self, "editable_mode", False) or self.inplace)

    def reusable_editable_build(self, ext: Extension, cfg: str) -> bool:
        if not self.editable() or os.environ.get("PYMFN_REBUILD", "") not in ("", "0"):
            return False
        if not (ROOT / "pymfn" / Path(self.get_ext_filename(ext.name)).name).is_file():
            return False
        try:
            recorded = json.loads(STAMP.read_text())
        except (OSError, ValueError):
            return False
        return recorded.get("fingerprint") == native_fingerprint(cfg)

    def copy_prebuilt(self, ext: Extension, prebuilt: Path, out_dir: Path) -> None:
        module = Path(self.get_ext_filename(ext.name)).name
        if not (prebuilt / module).is_file():
            raise SystemExit(f"{PREBUILT_ENV}={prebuilt}: no {module} there (build it first, or unset {PREBUILT_ENV} "
                             "to build with CMake)")
        out_dir.mkdir(parents=True, exist_ok=True)
        if prebuilt == out_dir:
            return
        shutil.copy2(prebuilt / module, out_dir / module)
        for pattern in NATIVE_LIBRARIES:
            for lib in prebuilt.glob(pattern):
                shutil.copy2(lib, out_dir / lib.name, follow_symlinks=False)
        if (prebuilt / TOOLKIT_DIR).is_dir():
            shutil.rmtree(out_dir / TOOLKIT_DIR, ignore_errors=True)
            shutil.copytree(prebuilt / TOOLKIT_DIR, out_dir / TOOLKIT_DIR, symlinks=True)

    def copy_extensions_to_source(self) -> None:
        # Editable installs (and build_ext --inplace) copy only the extension module back into the source
        # tree; the ACL emulator library and its acl_cblas/acl_dvpp stand-ins built beside it must travel with
        # it (the engine and `acl-config --libdir` look next to _core).
        super().copy_extensions_to_source()
        for ext in self.extensions:
            built_dir = Path(self.build_lib).resolve() / Path(*ext.name.split(".")[:-1])
            for pattern in NATIVE_LIBRARIES:
                for lib in built_dir.glob(pattern):
                    shutil.copy2(lib, ROOT / "pymfn" / lib.name)
            toolkit = built_dir / TOOLKIT_DIR
            if toolkit.is_dir():
                # relative symlinks (to the libraries copied above) stay symlinks; nothing stale survives
                shutil.rmtree(ROOT / "pymfn" / TOOLKIT_DIR, ignore_errors=True)
                shutil.copytree(toolkit, ROOT / "pymfn" / TOOLKIT_DIR, symlinks=True)
        if self.editable() and not os.environ.get(PREBUILT_ENV, ""):
            STAMP.write_text(json.dumps({"fingerprint": native_fingerprint("Debug" if self.debug else "Release")}) + "\n")


setup(ext_modules=[CMakeExtension("pymfn._core")], cmdclass={"build_ext": CMakeBuild})
