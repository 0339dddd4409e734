"""Print the compiler / linker flags that build an AscendCL program against pymfn's ACL emulator (headers
laid out like CANN's acl/acl.h; libascendcl.so; an rpath so it runs with no environment set by hand)."""
from __future__ import annotations

import argparse

from pymfn.runtime.acl_config import OUTPUTS, acl_config


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = ("examples: g++ main.cpp $(pymfn acl-config --cflags --libs) -o main\n"
                "          source \"$(pymfn acl-config --toolkit-root)/set_env.sh\" && ./build.sh")
    p.add_argument("--cflags", action="store_true", help="-I<include folder> (it holds acl/acl.h)")
    p.add_argument("--libs", action="store_true", help="-L<libdir> -Wl,-rpath,<libdir> -lascendcl")
    p.add_argument("--include", action="store_true", help="the include folder alone (for CMake's include_directories)")
    p.add_argument("--libdir", action="store_true",
                   help="the folder of libascendcl.so, libacl_cblas.so and libacl_dvpp.so (for CMake's link_directories)")
    p.add_argument("--toolkit-root", action="store_true",
                   help="a CANN-shaped toolkit root (runtime/include, runtime/lib64, set_env.sh) for programs whose "
                        "build files expect CANN: source <root>/set_env.sh, then build them as on CANN")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not any(getattr(args, name) for name in OUTPUTS):
        parser.error("give at least one of --cflags, --libs, --include, --libdir, --toolkit-root")


def run(args: argparse.Namespace) -> int:
    print(acl_config([name for name in OUTPUTS if getattr(args, name)]))
    return 0
