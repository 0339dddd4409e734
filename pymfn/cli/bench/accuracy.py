"""LFW accuracy (InsightFace protocol) from lfw.bin, a folder of bins, a packed file or msame outputs."""
from __future__ import annotations

import argparse

from pymfn.bench.accuracy import add_accuracy_arguments, main_accuracy
from pymfn.cli.bench._options import run_checked


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_accuracy_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_checked(args, "accuracy", main_accuracy)
