"""`pymfn bench msame`: its options, over pymfn.bench.msame_comparison (whose docstring is the --help description)."""
from __future__ import annotations

import argparse

from pymfn.bench import report
from pymfn.bench.msame_comparison import msame_compare
from pymfn.bench.naming import option_names
from pymfn.cli.bench._options import run_checked
from pymfn.errors import CommandError
from pymfn.cli.bench._csv import save_csv
from pymfn.files.outputs import check_output_path, save_output

from pymfn.bench import msame_comparison as _library

DESCRIPTION = _library.__doc__

PROG = "pymfn bench msame"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log", help="an msame log from an earlier run (its 'Inference time' and 'Inference average time' "
                                 "lines are parsed)")
    p.add_argument("--msame-output", help="msame's --output folder: with --run-msame where msame writes (created when "
                                          "missing, kept); otherwise an earlier run's outputs to compare with")
    p.add_argument("--run-msame", action="store_true",
                   help="run msame (on PATH, $PYMFN_MSAME or --msame) over --input with --model first")
    p.add_argument("--msame", help="the msame executable (default: $PYMFN_MSAME, else msame on PATH)")
    p.add_argument("--model", help="the .om both tools run")
    p.add_argument("--input", help="the folder of .bin inputs both tools read, in msame's lexicographic order")
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed pymfn executes before its timing pass (default 1, ais_bench's default; msame has none)")
    p.add_argument("--passes", type=int, default=1,
                   help="timed passes over the folder, every file once per pass (default 1: exactly msame's run)")
    p.add_argument("--folder-run", action=argparse.BooleanOptionalAction, default=None,
                   help="also time pymfn as one whole process that writes msame-layout outputs, like msame's own "
                        "wall time (default: on with --run-msame)")
    p.add_argument("--pymfn-output", help="where the folder run writes its msame-layout outputs (default: a temporary "
                                          "folder, removed at the end)")
    p.add_argument("--keep-outputs", action="store_true",
                   help="keep the temporary output folders (msame's and the folder run's) and print where they are")
    p.add_argument("--json", help="write every figure, scope, warning and raw per-execute time as JSON")
    p.add_argument("--csv", metavar="PATH", help="write the comparison table as CSV (figure, msame, pymfn) (columns: docs/exports.md)")


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "msame", _run)


def _run(args: argparse.Namespace) -> int:
    check_output_path(args.json, "--json")
    check_output_path(args.csv, "--csv")
    with option_names():
        result = msame_compare(args.model, args.input, log=args.log, msame_output=args.msame_output,
                               run_msame=args.run_msame, msame=args.msame, warmup=args.warmup, passes=args.passes,
                               folder_run=args.folder_run, pymfn_output=args.pymfn_output,
                               keep_outputs=args.keep_outputs)
    print(result.report())
    doc = result.to_dict()
    if args.json and (where := save_output(args.json, lambda p: report.write_json(doc, p), "--json", PROG)):
        print(f"JSON written to {where}")
    save_csv(args.csv, result, PROG)
    for path in result.kept_temporaries:
        print(f"kept temporary output folder {path}")
    if result.error:
        raise CommandError(result.error)
    return 0
