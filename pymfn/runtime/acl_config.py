"""Flags (printed by ``pymfn acl-config``) to build an AscendCL program against pymfn's ACL emulator.

Why: a team with an Ascend inference program should be able to build and run it unchanged on any x86 host.
pymfn ships the runtime (``libascendcl.so``, the emulator, with empty ``libacl_cblas.so`` / ``libacl_dvpp.so``
stand-ins) and the headers (``include/acl/acl.h`` and friends, laid out like CANN's). This command says
where they are, pkg-config style, so a Makefile or CMakeLists needs no path written by hand:

    g++ main.cpp $(pymfn acl-config --cflags --libs) -o main && ./main

``--libs`` adds an rpath: the program finds ``libascendcl.so``, and the emulator finds OpenVINO, with no
``LD_LIBRARY_PATH``. Several flags print their values on one line, in the order cflags, libs, include, libdir,
toolkit-root.

``--toolkit-root`` prints a CANN-shaped toolkit root (``runtime/include/acl``, ``runtime/lib64[/stub]``,
``set_env.sh``), the build writes it beside the libraries as ``toolkit/``. A program whose own build files
expect CANN (``DDK_PATH``, ``NPU_HOST_LIB``, ``ASCEND_TOOLKIT_HOME``, ``-DCMAKE_SKIP_RPATH=TRUE``) then builds
and runs unchanged after ``source "$(pymfn acl-config --toolkit-root)/set_env.sh"``
(docs/acl-emulator.md).
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Sequence

import pymfn
from pymfn.errors import CommandError

EMULATOR_LIB = "libascendcl.so"
HEADER = Path("acl") / "acl.h"
OUTPUTS = ("cflags", "libs", "include", "libdir", "toolkit_root")
TOOLKIT_DIR = "toolkit"
# What a toolkit root must hold to be usable: its environment script, headers and runtime library.
TOOLKIT_FILES = (Path("set_env.sh"), Path("runtime") / "include" / HEADER, Path("runtime") / "lib64" / EMULATOR_LIB,
                 Path("runtime") / "lib64" / "stub" / EMULATOR_LIB)


def include_dir() -> Path:
    """The folder to put on the include path (it holds ``acl/acl.h``); installed with the package."""
    return Path(pymfn.__file__).resolve().parent / "include"


def lib_dir() -> Path:
    """The folder holding ``libascendcl.so``: beside ``pymfn._core`` (``PYMFN_CORE_DIR`` for developer builds)."""
    return pymfn.native_dir()


def toolkit_root() -> Path:
    """The CANN-shaped toolkit root the build writes beside ``libascendcl.so`` (``<package>/toolkit``)."""
    return lib_dir() / TOOLKIT_DIR


def check_toolkit(root: Path) -> None:
    """Refuse to print a toolkit root that is incomplete (a build without the emulator, or a stale one)."""
    for rel in TOOLKIT_FILES:
        if not (root / rel).is_file():  # follows the toolkit's symlinks: a dangling one is missing too
            raise CommandError(f"{root / rel}: not found; this pymfn build has no complete ACL toolkit root (rebuild "
                               "pymfn: the emulator build writes it)")


def check_installation(inc: Path, lib: Path) -> None:
    """Refuse to print flags that would not build: the headers or the emulator library are missing."""
    if not (inc / HEADER).is_file():
        raise CommandError(f"{inc / HEADER}: not found; this pymfn installation lacks its ACL headers (reinstall pymfn)")
    if not (lib / EMULATOR_LIB).is_file():
        where = f" ({pymfn.CORE_DIR_ENV} names {lib})" if os.environ.get(pymfn.CORE_DIR_ENV) else ""
        raise CommandError(f"{lib / EMULATOR_LIB}: not found{where}; this pymfn build has no ACL emulator (it is built only "
                           "when CANN is absent and OpenVINO present: see build_info()['acl']); with CANN installed, "
                           "build against $ASCEND_TOOLKIT_HOME/runtime/include and runtime/lib64 instead")


def flag_text(name: str, inc: Path, lib: Path) -> str:
    """One output of the command, shell-quoted where it is a flag."""
    q = shlex.quote
    return {
        "cflags": f"-I{q(str(inc))}",
        "libs": f"-L{q(str(lib))} -Wl,-rpath,{q(str(lib))} -lascendcl",
        "include": str(inc),
        "libdir": str(lib),
        "toolkit_root": str(toolkit_root()),
    }[name]


def acl_config(wanted: Sequence[str]) -> str:
    """The line ``pymfn acl-config`` prints for the outputs ``wanted`` (names of OUTPUTS, in that order),
    after checking that the headers, the emulator and (when asked for) the toolkit root are present."""
    unknown = [name for name in wanted if name not in OUTPUTS]
    if unknown:
        raise ValueError(f"unknown acl-config output(s) {', '.join(unknown)} (expected {', '.join(OUTPUTS)})")
    inc, lib = include_dir(), lib_dir()
    check_installation(inc, lib)
    if "toolkit_root" in wanted:
        check_toolkit(toolkit_root())
    return " ".join(flag_text(name, inc, lib) for name in wanted)
