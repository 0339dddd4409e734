"""``python -m pymfn.cli.bench.msame_folder_run``: the process ``pymfn bench msame`` times as pymfn's whole-process
run, doing msame's work (see pymfn.bench.msame_comparison.folder_run_child). Internal: started by the comparison."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pymfn.bench.msame_comparison import folder_run_child
from pymfn.cli.common import run_command


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pymfn.cli.bench.msame_folder_run")
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--summary", required=True)
    args = ap.parse_args(argv)
    return run_command("pymfn folder run", lambda: folder_run_child(Path(args.model), Path(args.input),
                                                                      Path(args.output), Path(args.summary)))


if __name__ == "__main__":
    sys.exit(main())
