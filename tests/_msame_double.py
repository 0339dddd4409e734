"""Build and run tests/msame_double.cpp, the msame work-alike linked against pymfn's ACL emulator.

The double is compiled once per test session into a folder the caller gives (pytest's session temp dir),
with the project's warning flags, so a test of ``bench msame --run-msame`` drives a real executable that
computes real outputs through the same emulator library pymfn's ACL engine loads.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SOURCE = HERE / "msame_double.cpp"


def include_dirs() -> list[Path]:
    """csrc (engines/acl/acl_api.h) plus pymfn/include when acl_api.h takes its declarations from there."""
    dirs = [ROOT / "csrc"]
    if (ROOT / "pymfn" / "include" / "acl" / "acl.h").is_file():
        dirs.append(ROOT / "pymfn" / "include")
    return dirs


def openvino_libs() -> Path:
    import openvino

    return Path(openvino.__file__).parent / "libs"


def build(out_dir: Path, emulator: Path) -> Path:
    """Compile the double into ``out_dir/msame``; raises RuntimeError with the compiler's output on failure."""
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    if cxx is None:
        raise RuntimeError("no C++ compiler (g++ or c++) on PATH")
    exe = out_dir / "msame"
    lib_dir = emulator.parent
    cmd = [cxx, "-std=c++17", "-O1", "-Wall", "-Wextra", "-Wpedantic", "-Werror",
           *(f"-I{d}" for d in include_dirs()), str(SOURCE), "-o", str(exe),
           f"-L{lib_dir}", "-lascendcl", f"-Wl,-rpath,{lib_dir}",
           f"-Wl,-rpath-link,{openvino_libs()}", f"-Wl,-rpath,{openvino_libs()}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the msame double failed:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}")
    return exe


def environment(run_mode: str = "host") -> dict[str, str]:
    """Environment for running the double (and pymfn's ACL engine) on the emulator in ``run_mode``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYMFN_ACL_EMU_")}
    env["PYMFN_ACL_EMU_RUN_MODE"] = run_mode
    # libascendcl.so's own dependency on libopenvino is not covered by the double's RUNPATH
    env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(openvino_libs()), env.get("LD_LIBRARY_PATH", "")]))
    return env
