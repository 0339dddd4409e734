"""Bad-input probes over every command line: each probe runs `python -m pymfn <cmd>` or
`python -m pymfn.bench <cmd>` as a subprocess with one user mistake and asserts what a user must see:

* a non-zero exit that is not a signal (no crash), within a timeout (no hang);
* stderr is ONE line, `pymfn <cmd>: error: ...` (argparse usage errors: exit 2 and the usual usage text
  ending in one `error:` line), naming the file or argument at fault, and never a traceback;
* nothing half-written: the folder used as "an existing directory" is untouched afterwards.

Kinds of mistakes: missing file, empty file, truncated file, garbage bytes, wrong size, wrong dtype, a
directory where a file belongs, a FIFO (would block a naive reader forever), an unreadable file (skipped
as root, who reads everything), bad numbers (0, -1, huge, NaN) and outputs to a read-only place (/proc)
or an existing directory.

Cheap probes (the command fails before TensorFlow is imported or a model is run) are in the default run;
probes that need TensorFlow or a real model are marked slow. A probe that fails because of code another
part of the project owns stays here as xfail(strict=True) with the owner in the reason, so the fix turns
it into an XPASS failure that asks for the mark to be removed.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import re
import signal
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

CHEAP_TIMEOUT = 90.0  # seconds; a cheap probe takes 0.5-2 s, more on a loaded 2-core machine
SLOW_TIMEOUT = 400.0
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
ONE_LINE_ERROR = re.compile(r"^pymfn( bench)? [\w-]+: (error|internal error)")

B = "datasets/engines (helper B)"
C = "helper C"


@dataclass(frozen=True)
class Probe:
    """One user mistake: ``argv`` after ``python -m`` with {placeholders} from the ``inputs`` fixture."""

    name: str
    argv: tuple[str, ...]
    needle: str  # must appear in the error line (the file or option at fault); may hold {placeholders}
    code: int = 1  # 2 = argparse usage error
    slow: bool = False
    xfail: str | None = None
    needs: tuple[str, ...] = field(default=())  # extra fixtures (slow inputs)
    nonroot: bool = False  # permission probes: meaningless as root
    timeout: float | None = None  # default: CHEAP_TIMEOUT or SLOW_TIMEOUT


def P(name: str, argv: str, needle: str, **kw) -> Probe:
    return Probe(name, tuple(argv.split()), needle, **kw)


PROBES: list[Probe] = [
    # ----------------------------------------------------------------------------- data tfrecord
    P("data-missing-source", "pymfn data tfrecord --from {missing} --out {fresh}", "{missing}"),
    P("data-empty-rec", "pymfn data tfrecord --from {empty_rec_dir} --out {fresh}", "train.idx"),
    P("data-truncated-rec", "pymfn data tfrecord --from {trunc_rec_dir} --out {fresh}", "train.rec", slow=True),
    P("data-garbage-rec", "pymfn data tfrecord --from {garbage_rec_dir} --out {fresh}", "train.rec"),
    P("data-fifo-rec", "pymfn data tfrecord --from {fifo_rec_dir} --out {fresh}", "train.rec", timeout=30),
    P("data-corrupt-jpeg", "pymfn data tfrecord --from {tree_bad_jpg} --out {fresh}", "bad.jpg", slow=True),
    P("data-out-existing-dir", "pymfn data tfrecord --from {tree_bad_jpg} --out {adir}", "--out {adir}"),
    P("data-out-readonly", "pymfn data tfrecord --from {tree_bad_jpg} --out {ro}", "--out {ro}"),
    P("data-out-is-file", "pymfn data tfrecord --from {tree_bad_jpg} --out {garbage}", "--out {garbage}"),
    P("data-shards-0", "pymfn data tfrecord --from {tree_bad_jpg} --out {fresh} --shards 0", "--shards"),
    P("data-shards-text", "pymfn data tfrecord --from {tree_bad_jpg} --out {fresh} --shards lots", "--shards", code=2),
    P("data-seed-huge", "pymfn data tfrecord --from {tree_bad_jpg} --out {fresh} --seed 99999999999", "--seed"),
    P("data-image-size-neg", "pymfn data tfrecord --from {tree_bad_jpg} --out {fresh} --image-size -5",
      "--image-size"),
    # ----------------------------------------------------------------------------------- train
    P("train-missing-data", "pymfn train --data {missing} --ckpt-dir {fresh}", "{missing}"),
    P("train-empty-dir", "pymfn train --data {emptydir} --ckpt-dir {fresh}", "{emptydir}"),
    P("train-data-is-file", "pymfn train --data {garbage} --ckpt-dir {fresh}", "{garbage}"),
    P("train-ckpt-dir-is-file", "pymfn train --data {missing} --ckpt-dir {garbage}", "--ckpt-dir {garbage}"),
    P("train-ckpt-dir-readonly", "pymfn train --data {missing} --ckpt-dir {ro}", "--ckpt-dir {ro}"),
    P("train-batch-0", "pymfn train --data {missing} --ckpt-dir {fresh} --train-batch-size 0", "--train-batch-size"),
    P("train-lr-nan", "pymfn train --data {missing} --ckpt-dir {fresh} --lr nan", "--lr"),
    P("train-lr-inf", "pymfn train --data {missing} --ckpt-dir {fresh} --lr inf", "--lr"),
    P("train-embedding-huge", "pymfn train --data {missing} --ckpt-dir {fresh} --embedding-size 1000000000",
      "--embedding-size"),
    P("train-threads-neg", "pymfn train --data {missing} --ckpt-dir {fresh} --threads -1", "--threads"),
    P("train-margin-too-big", "pymfn train --data {missing} --ckpt-dir {fresh} --arcface-m 2", "--arcface-m"),
    P("train-corrupt-meta", "pymfn train --data {corrupt_meta_dir} --ckpt-dir {fresh}", "pymfn_data.json"),
    P("train-shard-cut", "pymfn train --data {tfr_short_shard} --ckpt-dir {fresh}", "truncated shard"),
    P("train-one-identity", "pymfn train --data {tfr_one_class} --ckpt-dir {fresh} --train-batch-size 2",
      "--data {tfr_one_class}"),
    P("train-classes-huge", "pymfn train --data {tfr_huge_classes} --ckpt-dir {fresh} --train-batch-size 2",
      "--data {tfr_huge_classes}"),
    P("train-batch-more-than-images", "pymfn train --data {tfr_meta} --ckpt-dir {fresh} --train-batch-size 1000000000",
      "--train-batch-size"),
    P("train-truncated-shard", "pymfn train --data {tfr_trunc} --ckpt-dir {fresh} --train-batch-size 2 "
      "--no-progress", "truncated", slow=True, needs=("tfr_trunc",)),
    P("train-corrupt-shard", "pymfn train --data {tfr_corrupt} --ckpt-dir {fresh} --train-batch-size 2 "
      "--no-progress", "truncated or corrupt", slow=True, needs=("tfr_corrupt",)),
    P("train-eval-lfw-garbage", "pymfn train --data {tfr_meta} --ckpt-dir {fresh} --train-batch-size 2 "
      "--eval-lfw {garbage_lfw}", "{garbage_lfw}", slow=True),
    # ---------------------------------------------------------------------------------- freeze
    P("freeze-missing-ckpt", "pymfn freeze --ckpt {missing} --out {fresh}.pb", "{missing}"),
    P("freeze-fifo-ckpt", "pymfn freeze --ckpt {fifo} --out {fresh}.pb", "{fifo}", timeout=30),
    # imports TensorFlow (several lines of C++ start-up chatter on fd 2 unless pymfn._quiet hides them)
    P("freeze-empty-ckpt-dir", "pymfn freeze --ckpt {emptydir} --out {fresh}.pb", "{emptydir}"),
    P("freeze-corrupt-ckpt", "pymfn freeze --ckpt {corrupt_ckpt} --out {fresh}.pb", "{corrupt_ckpt}", slow=True),
    P("freeze-truncated-ckpt-data", "pymfn freeze --ckpt {ckpt_cut} --out {fresh}.pb", "truncated or corrupt",
      slow=True, needs=("ckpt_cut",)),
    P("freeze-out-existing-dir", "pymfn freeze --random --out {adir}", "--out {adir}"),
    P("freeze-out-readonly", "pymfn freeze --random --out {ro}.pb", "--out {ro}.pb"),
    P("freeze-embedding-0", "pymfn freeze --random --out {fresh}.pb --embedding-size 0", "--embedding-size"),
    P("freeze-embedding-huge", "pymfn freeze --random --out {fresh}.pb --embedding-size 99999999999",
      "--embedding-size"),
    P("freeze-no-source", "pymfn freeze --out {fresh}.pb", "--ckpt", code=2),
    # -------------------------------------------------------------------------- import-weights
    P("weights-missing", "pymfn import-weights --from {missing} --out {fresh}", "{missing}"),
    P("weights-empty", "pymfn import-weights --from {empty_tflite} --out {fresh}", "{empty_tflite}"),
    P("weights-truncated-tflite", "pymfn import-weights --from {trunc_tflite} --out {fresh}", "{trunc_tflite}"),
    P("weights-garbage", "pymfn import-weights --from {garbage} --out {fresh}", "{garbage}"),
    P("weights-garbage-json", "pymfn import-weights --from {garbage_json} --out {fresh}", "{garbage_json}"),
    P("weights-tfjs-missing-shard", "pymfn import-weights --from {tfjs_no_shard} --out {fresh}", "{tfjs_no_shard}"),
    P("weights-fifo", "pymfn import-weights --from {fifo_tflite} --out {fresh}", "{fifo_tflite}", timeout=30),
    P("weights-directory", "pymfn import-weights --from {adir} --out {fresh}", "{adir}"),
    P("weights-unreadable", "pymfn import-weights --from {unreadable} --out {fresh}", "{unreadable}", nonroot=True),
    P("weights-out-existing-dir", "pymfn import-weights --from {trunc_tflite} --out {adir}", "--out {adir}"),
    P("weights-out-readonly", "pymfn import-weights --from {trunc_tflite} --out {ro}", "--out {ro}"),
    P("weights-embedding-neg", "pymfn import-weights --from {trunc_tflite} --out {fresh} --embedding-size -1",
      "--embedding-size"),
    # --------------------------------------------------------------------------------- convert
    P("convert-missing", "pymfn convert {missing} --target om-emu --output {fresh}.om", "{missing}"),
    P("convert-empty-openvino", "pymfn convert {empty_pb} --target openvino --output {fresh}.xml", "{empty_pb}"),
    P("convert-garbage-om-emu", "pymfn convert {garbage_pb} --target om-emu --output {fresh}.om", "{garbage_pb}"),
    P("convert-truncated-onnx", "pymfn convert {trunc_pb} --target onnx --output {fresh}.onnx", "{trunc_pb}",
      slow=True),
    P("convert-fifo", "pymfn convert {fifo_pb} --target openvino --output {fresh}.xml", "{fifo_pb}", timeout=30),
    P("convert-directory", "pymfn convert {adir} --target onnx --output {fresh}.onnx", "{adir}"),
    P("convert-out-existing-dir", "pymfn convert {garbage_pb} --target onnx --output {adir}", "--output {adir}"),
    P("convert-out-readonly", "pymfn convert {garbage_pb} --target openvino --output {ro}.xml", "--output {ro}.xml"),
    P("convert-shape-zero", "pymfn convert {garbage_pb} --target om-emu --input-shape 0,112,112,3", "--input-shape"),
    P("convert-shape-text", "pymfn convert {garbage_pb} --target om-emu --input-shape a,b", "--input-shape"),
    P("convert-dynbatch-huge", "pymfn convert {garbage_pb} --dynamic-batch 1,99999 --dry-run", "--dynamic-batch"),
    P("convert-opset-low", "pymfn convert {garbage_pb} --target onnx --opset 5", "--opset"),
    P("convert-no-atc", "pymfn convert {garbage_pb} --target om --output {fresh} --atc {missing}", "atc"),
    # -------------------------------------------------------------------------------- quantize
    P("quantize-missing", "pymfn quantize {missing} --output {fresh}.xml", "{missing}"),
    P("quantize-garbage", "pymfn quantize {garbage_pb} --output {fresh}.xml", "{garbage_pb}"),
    P("quantize-fifo", "pymfn quantize {fifo_pb} --output {fresh}.xml", "{fifo_pb}", timeout=30),
    P("quantize-out-existing-dir", "pymfn quantize {garbage_pb} --output {adir}", "--output {adir}"),
    P("quantize-out-readonly", "pymfn quantize {garbage_pb} --output {ro}.xml", "--output {ro}.xml"),
    P("quantize-count-0", "pymfn quantize {garbage_pb} --output {fresh}.xml --count 0", "--count"),
    P("quantize-calibration-missing", "pymfn quantize {tiny_pb} --output {fresh}.xml --calibration {missing}",
      "{missing}", slow=True, needs=("tiny_pb",)),
    # ------------------------------------------------------------------------------- image2bin
    P("image2bin-missing", "pymfn image2bin {missing} {fresh}", "{missing}"),
    P("image2bin-empty", "pymfn image2bin {empty_lfw} {fresh}", "{empty_lfw}"),
    P("image2bin-truncated", "pymfn image2bin {trunc_lfw} {fresh}", "{trunc_lfw}"),
    P("image2bin-garbage", "pymfn image2bin {garbage_lfw} {fresh}", "{garbage_lfw}"),
    P("image2bin-fifo", "pymfn image2bin {fifo_lfw} {fresh}", "{fifo_lfw}", timeout=30),
    P("image2bin-empty-folder", "pymfn image2bin {emptydir} {fresh}", "{emptydir}"),
    P("image2bin-out-readonly", "pymfn image2bin {lfw} {ro}", "{ro}"),
    P("image2bin-packed-existing-dir", "pymfn image2bin {lfw} --packed {adir}", "{adir}"),
    P("image2bin-limit-neg", "pymfn image2bin {lfw} {fresh} --limit -1", "--limit"),
    P("image2bin-limit-odd", "pymfn image2bin {lfw} {fresh} --limit 3", "--limit"),
    # decoding fails after the progress bar was set up: the bar must not reach a non-terminal stderr
    P("image2bin-corrupt-jpeg", "pymfn image2bin {lfw_bad_jpeg} {fresh}", "{lfw_bad_jpeg}"),
    P("image2bin-packed-corrupt-jpeg", "pymfn image2bin {lfw_bad_jpeg} --packed {fresh}.pack", "{lfw_bad_jpeg}"),
    # ------------------------------------------------------------------------------------ eval
    P("eval-missing", "pymfn eval {missing} --issame {issame}", "{missing}"),
    P("eval-empty-npy", "pymfn eval {empty_npy} --issame {issame}", "{empty_npy}"),
    P("eval-truncated-npy", "pymfn eval {trunc_npy} --issame {issame}", "{trunc_npy}"),
    # eval names its positional argument ("embeddings: ...") rather than the file: accepted
    P("eval-string-dtype", "pymfn eval {emb_str} --issame {issame}", "embeddings"),
    P("eval-1d", "pymfn eval {emb_1d} --issame {issame}", "embeddings"),
    P("eval-nan", "pymfn eval {emb_nan} --issame {issame}", "embeddings"),
    P("eval-issame-count", "pymfn eval {emb} --issame {issame_wrong}", "3 pairs"),
    P("eval-issame-garbage", "pymfn eval {emb} --issame {garbage_npy}", "{garbage_npy}"),
    P("eval-fifo", "pymfn eval {fifo_npy} --issame {issame}", "{fifo_npy}", timeout=10),
    P("eval-flip-fifo", "pymfn eval {emb} --flip {fifo_npy} --issame {issame}", "--flip {fifo_npy}", timeout=10),
    P("eval-directory", "pymfn eval {adir} --issame {issame}", "{adir}"),
    P("eval-folds-0", "pymfn eval {emb} --issame {issame} --folds 0", "--folds"),
    P("eval-folds-more-than-pairs", "pymfn eval {emb} --issame {issame} --folds 3", "--folds"),
    P("eval-json-existing-dir", "pymfn eval {emb} --issame {issame} --json {adir}", "--json {adir}"),
    P("eval-roc-readonly", "pymfn eval {emb} --issame {issame} --roc {ro}.png", "{ro}.png"),
    # ----------------------------------------------------------------------------------- msame
    P("msame-read-missing", "pymfn msame read {missing} --out {fresh}.npy", "{missing}"),
    P("msame-read-empty-folder", "pymfn msame read {emptydir} --out {fresh}.npy", "{emptydir}"),
    P("msame-read-out-readonly", "pymfn msame read {msame_out} --out {ro}.npy", "--out {ro}.npy"),
    P("msame-read-out-existing-dir", "pymfn msame read {msame_out} --out {adir}", "--out {adir}"),
    P("msame-read-count-neg", "pymfn msame read {msame_out} --out {fresh}.npy --count -1", "--count"),
    P("msame-read-output-index-neg", "pymfn msame read {msame_out} --out {fresh}.npy --output-index -1",
      "--output-index"),
    P("msame-read-output-index-big", "pymfn msame read {msame_out} --out {fresh}.npy --output-index 3",
      "--output-index"),
    P("msame-read-dtype-text", "pymfn msame read {msame_out} --out {fresh}.npy --dtype str", "--dtype"),
    P("msame-log-garbage", "pymfn msame log {garbage}", "{garbage}"),
    P("msame-log-fifo", "pymfn msame log {fifo}", "{fifo}", timeout=30),
    P("msame-run-no-msame", "pymfn msame run {garbage} --output {fresh} --msame {missing}", "{missing}"),
    P("msame-run-loop-0", "pymfn msame run {garbage} --output {fresh} --loop 0", "--loop"),
    # --------------------------------------------------------------------------------- acl-config
    P("acl-config-unknown-flag", "pymfn acl-config --bogus", "--bogus", code=2),
    # ------------------------------------------------------------------------------------ pack
    P("pack-missing", "pymfn pack --from {missing} --out {fresh}.pack", "{missing}"),
    P("pack-empty-folder", "pymfn pack --from {emptydir} --out {fresh}.pack", "{emptydir}"),
    P("pack-wrong-size", "pymfn pack --from {bins_wrong_size} --out {fresh}.pack", "0.bin"),
    P("pack-fifo-bin", "pymfn pack --from {bins_with_fifo} --out {fresh}.pack", "1.bin", timeout=30),
    P("pack-out-existing-dir", "pymfn pack --from {bins_wrong_size} --out {adir}", "{adir}"),
    P("pack-out-readonly", "pymfn pack --from {bins_wrong_size} --out {ro}.pack", "{ro}.pack"),
    P("pack-shape-zero", "pymfn pack --from {bins_wrong_size} --out {fresh}.pack --shape 0,3", "--shape", code=2),
    P("pack-shape-huge", "pymfn pack --from {bins_wrong_size} --out {fresh}.pack --shape 100000,100000,100000",
      "0.bin"),
    # ------------------------------------------------------------------------- bench latency
    P("latency-missing-model", "pymfn.bench latency --model {missing}", "{missing}"),
    P("latency-empty-model", "pymfn.bench latency --model {empty_pb}", "{empty_pb}"),
    P("latency-garbage-model", "pymfn.bench latency --model {garbage_pb}", "{garbage_pb}"),
    P("latency-truncated-om", "pymfn.bench latency --model {trunc_om}", "{trunc_om}"),
    P("latency-garbage-om", "pymfn.bench latency --model {garbage_om}", "{garbage_om}"),
    P("latency-model-directory", "pymfn.bench latency --model {adir}", "{adir}"),
    P("latency-model-fifo", "pymfn.bench latency --model {fifo_pb}", "{fifo_pb}", timeout=30),
    P("latency-batch-0", "pymfn.bench latency --batch 0", "--batch"),
    P("latency-inflight-neg", "pymfn.bench latency --inflight -1", "--inflight"),
    P("latency-min-duration-nan", "pymfn.bench latency --model {garbage_pb} --min-duration nan", "--min-duration"),
    P("latency-max-duration-neg", "pymfn.bench latency --model {garbage_pb} --max-duration -1", "--max-duration"),
    P("latency-warmup-neg", "pymfn.bench latency --model {garbage_pb} --warmup -5", "--warmup"),
    P("latency-threads-neg", "pymfn.bench latency --model {garbage_pb} --threads -2", "--threads"),
    P("latency-prefetch-neg", "pymfn.bench latency --model {garbage_pb} --prefetch -1", "--prefetch"),
    P("latency-json-existing-dir", "pymfn.bench latency --json {adir}", "--json {adir}"),
    P("latency-plot-readonly", "pymfn.bench latency --plot {ro}.png", "--plot {ro}.png"),
    P("latency-input-wrong-size", "pymfn.bench latency --model {tiny_pb} --input {bins_wrong_size}", "0.bin",
      slow=True, needs=("tiny_pb",)),
    P("latency-input-fifo", "pymfn.bench latency --model {tiny_pb} --input {fifo}", "{fifo}",
      slow=True, needs=("tiny_pb",)),
    P("latency-input-truncated-pack", "pymfn.bench latency --model {tiny_pb} --input {trunc_pack}", "{trunc_pack}",
      slow=True, needs=("tiny_pb",)),
    P("throughput-batch-huge", "pymfn.bench throughput --model {tiny_pb} --batch 1000000000", "--batch",
      slow=True, needs=("tiny_pb",)),
    # ------------------------------------------------------------- bench server / multistream / sweep / regress
    P("server-qps-neg", "pymfn.bench server --qps -1 --p99-ms 5", "--qps"),
    P("server-json-readonly", "pymfn.bench server --qps 10 --p99-ms 5 --json {ro}.json", "--json {ro}.json"),
    P("server-peak-plot-existing-dir", "pymfn.bench server --find-peak --p99-ms 5 --plot {adir}", "--plot {adir}"),
    P("multistream-samples-0", "pymfn.bench multistream --samples-per-query 0", "--samples-per-query"),
    P("multistream-interval-nan", "pymfn.bench multistream --interval-ms nan", "--interval-ms"),
    P("sweep-missing-data", "pymfn.bench sweep --data {missing}", "{missing}"),
    P("sweep-json-existing-dir", "pymfn.bench sweep --json {adir}", "--json {adir}"),
    P("sweep-rounds-0", "pymfn.bench sweep --rounds 0", "--rounds"),
    P("regress-unknown-baseline", "pymfn.bench regress --baseline {missing}", "{missing}"),
    P("regress-unknown-benchmark", "pymfn.bench regress --baseline HEAD --benchmarks nosuch", "--benchmarks"),
    # ------------------------------------------------------------------------ bench accuracy
    P("accuracy-missing-data", "pymfn.bench accuracy --data {missing}", "{missing}"),
    P("accuracy-empty-data", "pymfn.bench accuracy --data {empty_lfw}", "{empty_lfw}"),
    P("accuracy-truncated-lfw", "pymfn.bench accuracy --data {trunc_lfw}", "{trunc_lfw}"),
    P("accuracy-garbage-lfw", "pymfn.bench accuracy --data {garbage_lfw}", "{garbage_lfw}"),
    P("accuracy-fifo-data", "pymfn.bench accuracy --data {fifo_lfw}", "{fifo_lfw}", timeout=30),
    P("accuracy-issame-garbage", "pymfn.bench accuracy --data {msame_out} --issame {garbage_npy}", "{garbage_npy}"),
    P("accuracy-batch-0", "pymfn.bench accuracy --data {lfw} --batch 0", "--batch"),
    P("accuracy-json-readonly", "pymfn.bench accuracy --data {lfw} --json {ro}.json", "--json {ro}.json"),
    P("accuracy-plot-existing-dir", "pymfn.bench accuracy --data {lfw} --plot {adir}", "--plot {adir}"),
    # --------------------------------------------------------------------------- bench msame
    P("bench-msame-missing-log", "pymfn.bench msame --log {missing}", "{missing}"),
    P("bench-msame-garbage-log", "pymfn.bench msame --log {garbage}", "{garbage}"),
    P("bench-msame-json-existing-dir", "pymfn.bench msame --log {garbage} --json {adir}", "--json {adir}"),
]

# ------------------------------------------------------------- outputs that are inputs (the output transaction)
# Refused before any work, even with --force, naming the output as typed and the input it would destroy.
PROBES += [
    P("image2bin-packed-over-its-source", "pymfn image2bin {lfw} --packed {lfw} --force",
      "--packed {lfw}: is also the input {lfw}"),
    P("image2bin-folder-over-its-source", "pymfn image2bin {tree_bad_jpg} {tree_bad_jpg} --force",
      "OUT {tree_bad_jpg}: is also the input {tree_bad_jpg}"),
    P("image2bin-folder-inside-its-source", "pymfn image2bin {tree_bad_jpg} {tree_bad_jpg}/bins",
      "OUT {tree_bad_jpg}/bins: lies inside the input {tree_bad_jpg}"),
    P("pack-manifest-over-the-pack", "pymfn pack --from {bins_wrong_size} --out {fresh}.pack --manifest {fresh}.pack",
      "--manifest {fresh}.pack: is also written as --out {fresh}.pack"),
    P("pack-manifest-over-the-labels", "pymfn pack --from {bins_wrong_size} --out {fresh}.pack "
      "--manifest {fresh}.pack.issame.npy", "--manifest {fresh}.pack.issame.npy: is also written as"),
    P("convert-output-over-the-model", "pymfn convert {garbage_pb} --target om-emu --output {garbage_pb}",
      "--output {garbage_pb}: is also the input {garbage_pb}"),
    P("convert-openvino-output-not-xml", "pymfn convert {garbage_pb} --target openvino --output {fresh}.model",
      "--output {fresh}.model: expected an OpenVINO IR name ending in .xml"),
    P("data-out-over-the-source", "pymfn data tfrecord --from {tree_bad_jpg} --out {tree_bad_jpg}",
      "--out {tree_bad_jpg}: is also the input --from {tree_bad_jpg}"),
    P("import-weights-out-holds-the-source", "pymfn import-weights --from {garbage_json} --out {tmp}",
      "--out {tmp}: holds the input --from {garbage_json}"),
    P("eval-json-over-the-embeddings", "pymfn eval {emb} --issame {issame} --json {emb}",
      "--json {emb}: is also the input {emb}"),
    P("eval-roc-over-the-labels", "pymfn eval {emb} --issame {issame} --roc {issame}",
      "--roc {issame}: is also the input --issame {issame}"),
]


# ------------------------------------------------------------------------------------------ embed
# The source and the output folder are checked before a model is opened: these probes need none.
PROBES += [
    P("embed-missing-source", "pymfn embed {missing} --out {fresh}", "SOURCE {missing}"),
    P("embed-no-source", "pymfn embed --out {fresh}", "SOURCE"),
    P("embed-no-out", "pymfn embed {tree_bad_jpg}", "--out"),
    P("embed-fifo-source", "pymfn embed {fifo_lfw} --out {fresh}", "SOURCE {fifo_lfw}", timeout=30),
    P("embed-truncated-lfw", "pymfn embed {trunc_lfw} --out {fresh}", "{trunc_lfw}"),
    P("embed-garbage-source", "pymfn embed {garbage} --out {fresh}", "SOURCE {garbage}"),
    P("embed-truncated-pack", "pymfn embed {trunc_pack} --out {fresh}", "{trunc_pack}"),
    P("embed-empty-tree", "pymfn embed {emptydir} --out {fresh}", "SOURCE {emptydir}"),
    P("embed-out-existing-dir", "pymfn embed {tree_bad_jpg} --out {adir}", "--out {adir}"),
    P("embed-out-is-file", "pymfn embed {tree_bad_jpg} --out {garbage}", "--out {garbage}"),
    P("embed-out-readonly", "pymfn embed {tree_bad_jpg} --out {ro}", "--out {ro}"),
    P("embed-out-inside-source", "pymfn embed {tree_bad_jpg} --out {tree_bad_jpg}/emb",
      "--out {tree_bad_jpg}/emb: lies inside the input SOURCE {tree_bad_jpg}"),
    P("embed-model-garbage", "pymfn embed {tree_bad_jpg} --out {fresh} --model {garbage_pb}", "{garbage_pb}"),
    P("embed-shard-out-of-range", "pymfn embed {tree_bad_jpg} --out {fresh} --shard 2/2", "--shard 2/2"),
    P("embed-shard-text", "pymfn embed {tree_bad_jpg} --out {fresh} --shard half", "--shard half"),
    P("embed-shard-rows-0", "pymfn embed {tree_bad_jpg} --out {fresh} --shard-rows 0", "--shard-rows 0"),
    P("embed-batch-negative", "pymfn embed {tree_bad_jpg} --out {fresh} --batch -1", "--batch -1"),
    P("embed-shard-and-ray", "pymfn embed {tree_bad_jpg} --out {fresh} --shard 0/2 --ray", "--shard"),
    P("embed-verify-missing", "pymfn embed --verify {missing}", "--verify {missing}"),
    P("embed-verify-not-an-output", "pymfn embed --verify {adir}", "--verify {adir}: no manifest.json"),
    P("embed-merge-empty-dir", "pymfn embed --merge {emptydir}", "--merge {emptydir}"),
    P("embed-merge-with-source", "pymfn embed {lfw} --merge {adir}", "--merge"),
    P("embed-corrupt-jpeg", "pymfn embed {tree_bad_jpg} --out {fresh}", "bad.jpg", slow=True),
    # ------------------------------------------------------------------------------------------ verify
    P("verify-missing", "pymfn verify {missing}", "EMB {missing}"),
    P("verify-not-an-embed-folder", "pymfn verify {adir}", "EMB {adir}: no manifest.json"),
    P("verify-garbage-npy", "pymfn verify {garbage_npy} --labels {labels4}", "EMB {garbage_npy}"),
    P("verify-no-labels", "pymfn verify {emb}", "--labels"),
    P("verify-labels-not-integers", "pymfn verify {emb} --labels {issame}", "--labels {issame}"),
    P("verify-labels-missing", "pymfn verify {emb} --labels {missing}", "--labels {missing}"),
    P("verify-nan-embeddings", "pymfn verify {emb_nan} --labels {labels4}", "{emb_nan}: row 0 is not finite"),
    P("verify-far-out-of-range", "pymfn verify {emb} --labels {labels4} --far 2", "--far 2"),
    P("verify-far-text", "pymfn verify {emb} --labels {labels4} --far low", "--far", code=2),
    P("verify-block-0", "pymfn verify {emb} --labels {labels4} --block 0", "--block 0"),
    P("verify-compare-other-rows", "pymfn verify {emb} --labels {labels4} --compare {emb_1d}", "--compare {emb_1d}"),
    P("verify-json-existing-dir", "pymfn verify {emb} --labels {labels4} --json {adir}", "--json {adir}"),
    P("verify-json-over-the-embeddings", "pymfn verify {emb} --labels {labels4} --json {emb}",
      "--json {emb}: is also the input EMB {emb}"),
]


# ------------------------------------------------------------------------------------------ inputs


def _jpeg(seed: int, size: int = 112) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return str(path)


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


def _graphdef_bytes() -> bytes:
    """A serialized GraphDef (protobuf wire format by hand: node { name: "Placeholder" op: "Placeholder" })."""
    name = b"Placeholder"
    node = b"\x0a" + bytes([len(name)]) + name + b"\x12" + bytes([len(name)]) + name
    return b"\x0a" + bytes([len(node)]) + node


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Every bad input the probes name, built once (small: the whole set is a few hundred KB)."""
    t = tmp_path_factory.mktemp("bad")
    rng = np.random.default_rng(11)
    garbage = rng.integers(0, 256, 4099, dtype=np.uint8).tobytes()
    paths: dict[str, str] = {"tmp": str(t), "missing": str(t / "missing" / "nothing.bin"), "ro": "/proc/pymfn-probe"}

    paths["adir"] = str(t / "adir")
    _write(t / "adir" / "keep.txt", b"must survive every probe\n")
    (t / "emptydir").mkdir()
    paths["emptydir"] = str(t / "emptydir")
    for key, name in [("garbage", "garbage.bin"), ("garbage_pb", "garbage.pb"), ("garbage_npy", "garbage.npy"),
                      ("garbage_om", "garbage.om"), ("garbage_lfw", "garbage_lfw.bin")]:
        paths[key] = _write(t / name, garbage)
    paths["garbage_json"] = _write(t / "garbage.json", b"{ not json at all" + garbage[:100])
    for key, name in [("empty_pb", "empty.pb"), ("empty_tflite", "empty.tflite"), ("empty_npy", "empty.npy"),
                      ("empty_lfw", "empty_lfw.bin")]:
        paths[key] = _write(t / name, b"")
    for key, name in [("fifo", "fifo.bin"), ("fifo_pb", "fifo.pb"), ("fifo_tflite", "fifo.tflite"),
                      ("fifo_npy", "fifo.npy"), ("fifo_lfw", "fifo_lfw.bin")]:
        paths[key] = _fifo(t / name)
    unreadable = Path(_write(t / "unreadable.tflite", b"\0\0\0\0TFL3" + bytes(32)))
    unreadable.chmod(0)
    paths["unreadable"] = str(unreadable)

    # TFLite: identifier right, root table offset pointing past the end (what `head -c` leaves)
    paths["trunc_tflite"] = _write(t / "trunc.tflite", struct.pack("<I", 4096) + b"TFL3" + bytes(24))
    paths["trunc_pb"] = _write(t / "trunc.pb", _graphdef_bytes()[:-5])
    tfjs = t / "tfjs" / "model.json"
    _write(tfjs, b'{"modelTopology": {"node": []}, "weightsManifest": [{"paths": ["absent.bin"], "weights": []}]}')
    paths["tfjs_no_shard"] = str(tfjs)

    # om: a valid emulator header announcing more payload than follows
    from pymfn.export import om

    header = om.OmHeader(length=4096, name="probe")
    header.userdefineinfo = om.EMULATOR_MARKER.ljust(32, b"\0")
    paths["trunc_om"] = _write(t / "trunc.om", header.to_bytes() + bytes(100))

    # lfw.bin: a real little (bins, issame) pickle of 2 pairs, and a truncated copy
    lfw = pickle.dumps(([_jpeg(i) for i in range(4)], [True, False]), protocol=2)
    paths["lfw"] = _write(t / "lfw.bin", lfw)
    paths["trunc_lfw"] = _write(t / "trunc_lfw.bin", lfw[: len(lfw) // 2])
    paths["lfw_bad_jpeg"] = _write(t / "lfw_bad_jpeg.bin",
                                   pickle.dumps(([_jpeg(0), _jpeg(1), _jpeg(2), garbage[:500]], [True, False]), protocol=2))

    # embeddings for eval: 2 pairs
    emb = rng.normal(size=(4, 128)).astype(np.float32)
    for key, arr in [("emb", emb), ("emb_1d", emb.ravel()), ("emb_nan", np.full((4, 128), np.nan, np.float32)),
                     ("emb_str", np.array([["a"] * 128] * 4))]:
        paths[key] = str(t / f"{key}.npy")
        np.save(paths[key], arr)
    paths["labels4"] = str(t / "labels4.npy")  # identities of the 4 rows of emb (verify)
    np.save(paths["labels4"], np.array([0, 0, 1, 1]))
    paths["issame"] = str(t / "issame.npy")
    np.save(paths["issame"], np.array([True, False]))
    paths["issame_wrong"] = str(t / "issame_wrong.npy")
    np.save(paths["issame_wrong"], np.array([True, False, True]))
    buf = io.BytesIO()
    np.save(buf, emb)
    paths["trunc_npy"] = _write(t / "trunc.npy", buf.getvalue()[:300])

    # bins folders
    paths["bins_wrong_size"] = str(t / "bins_wrong")
    _write(t / "bins_wrong" / "0.bin", bytes(10))
    _write(t / "bins_wrong" / "1.bin", bytes(150528))
    paths["bins_with_fifo"] = str(t / "bins_fifo")
    _write(t / "bins_fifo" / "0.bin", bytes(150528))
    _fifo(t / "bins_fifo" / "1.bin")

    # msame output folder with one good fp16 embedding file (for output-path probes)
    run = t / "msame_out" / "20240101_000000"
    _write(run / "0_output_0.bin", np.zeros(128, np.float16).tobytes())
    paths["msame_out"] = str(t / "msame_out")

    # packed file: a good one made by the pack command, then cut short
    good = t / "good.pack"
    _write(t / "pk" / "0.bin", bytes(150528))
    _write(t / "pk" / "1.bin", bytes(150528))
    proc = subprocess.run([sys.executable, "-m", "pymfn", "pack", "--from", str(t / "pk"), "--out", str(good),
                           "--quiet"], capture_output=True, text=True, timeout=CHEAP_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    paths["trunc_pack"] = _write(t / "trunc.pack", good.read_bytes()[:1000])

    # RecordIO sets: empty, truncated, garbage, FIFO
    from pymfn.training import recordio

    src = t / "rec_good"
    src.mkdir()
    recordio.write_insightface_rec(src / "train.rec", src / "train.idx", [(_jpeg(i), i % 2) for i in range(4)])
    for key, rec_bytes in [("empty_rec_dir", b""), ("trunc_rec_dir", (src / "train.rec").read_bytes()[:3000]),
                           ("garbage_rec_dir", garbage)]:
        d = t / key
        _write(d / "train.rec", rec_bytes)
        _write(d / "train.idx", b"" if key == "empty_rec_dir" else (src / "train.idx").read_bytes())
        paths[key] = str(d)
    d = t / "fifo_rec_dir"
    d.mkdir()
    _fifo(d / "train.rec")
    _write(d / "train.idx", (src / "train.idx").read_bytes())
    paths["fifo_rec_dir"] = str(d)

    # image tree with one corrupt JPEG; TFRecord dir whose metadata is garbage
    for i in range(2):
        _write(t / "tree" / "alice" / f"{i}.jpg", _jpeg(i))
    _write(t / "tree" / "bob" / "bad.jpg", garbage)
    paths["tree_bad_jpg"] = str(t / "tree")
    _write(t / "badmeta" / "pymfn_data.json", b'{"num_classes": "many"')
    paths["corrupt_meta_dir"] = str(t / "badmeta")

    # TFRecord dirs whose metadata is wrong for training (no TensorFlow needed: the checks come first)
    shard = "train-00000-of-00001.tfrecord"
    good_meta = {"num_classes": 2, "num_images": 4, "shards": [shard], "shard_counts": [4], "shard_bytes": [400],
                 "image_size": 112}
    for key, meta, size in [("tfr_meta", good_meta, 400), ("tfr_short_shard", good_meta, 200),
                            ("tfr_one_class", dict(good_meta, num_classes=1), 400),
                            ("tfr_huge_classes", dict(good_meta, num_classes=10**13), 400)]:
        _write(t / key / shard, bytes(size))
        _write(t / key / "pymfn_data.json", json.dumps(meta).encode())
        paths[key] = str(t / key)

    # checkpoint dir whose index is garbage
    ck = t / "ck_corrupt"
    _write(ck / "checkpoint", b'model_checkpoint_path: "model.ckpt"\n')
    _write(ck / "model.ckpt.index", garbage)
    _write(ck / "model.ckpt.data-00000-of-00001", garbage)
    paths["corrupt_ckpt"] = str(ck)
    return paths


@pytest.fixture(scope="module")
def tfr_trunc(inputs, tmp_path_factory) -> str:
    """TFRecord shards of a small image tree, one shard cut in the middle of a record (slow probes only)."""
    from pymfn.training import tfrecords as data

    t = tmp_path_factory.mktemp("tfr")
    for c in range(2):
        for i in range(4):
            _write(t / "tree" / f"id{c}" / f"{i}.jpg", _jpeg(10 * c + i))
    data.tfrecords_from_tree(t / "tree", t / "tfr", num_shards=2)
    shard = sorted((t / "tfr").glob("*.tfrecord"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    return str(t / "tfr")


@pytest.fixture(scope="module")
def tfr_corrupt(tmp_path_factory) -> str:
    """TFRecord shards with one byte of one record's data flipped: same size, a CRC mismatch."""
    from pymfn.training import tfrecords as data

    t = tmp_path_factory.mktemp("tfrc")
    for c in range(2):
        for i in range(4):
            _write(t / "tree" / f"id{c}" / f"{i}.jpg", _jpeg(20 * c + i))
    data.tfrecords_from_tree(t / "tree", t / "tfr", num_shards=2)
    shard = sorted((t / "tfr").glob("*.tfrecord"))[0]
    raw = bytearray(shard.read_bytes())
    raw[300] ^= 0x55
    shard.write_bytes(bytes(raw))
    return str(t / "tfr")


@pytest.fixture(scope="module")
def ckpt_cut(tmp_path_factory) -> str:
    """A real checkpoint whose .data file is cut to 1000 bytes."""
    from pymfn.export import freeze

    t = tmp_path_factory.mktemp("ckcut")
    good = freeze.make_random_checkpoint(t / "good", 128, seed=0)
    for f in good.iterdir():
        raw = f.read_bytes()
        _write(t / "cut" / f.name, raw[:1000] if ".data-" in f.name else raw)
    return str(t / "cut")


@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> str:
    """A random-weight MobileFaceNet frozen .pb (slow probes that need a model that loads)."""
    from pymfn.export import freeze

    out = tmp_path_factory.mktemp("pb") / "mfn.pb"
    freeze.freeze_random(out, embedding_size=128, seed=0)
    return str(out)


# ------------------------------------------------------------------------------------------- probe


def _params() -> list:
    params = []
    for probe in PROBES:
        marks = []
        if probe.slow:
            marks.append(pytest.mark.slow)
        if probe.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=probe.xfail))
        if probe.nonroot:
            marks.append(pytest.mark.skipif(IS_ROOT, reason="root reads unreadable files: no permission error to probe"))
        params.append(pytest.param(probe, id=probe.name, marks=marks))
    return params


def _adir_listing(inputs: dict[str, str]) -> list[str]:
    return sorted(p.name for p in Path(inputs["adir"]).iterdir())


@pytest.mark.parametrize("probe", _params())
def test_bad_input(probe: Probe, inputs: dict[str, str], request) -> None:
    values = dict(inputs)
    for name in probe.needs:
        values[name] = request.getfixturevalue(name)
    values["fresh"] = str(Path(inputs["tmp"]) / "fresh" / probe.name)
    argv = [a.format(**values) for a in probe.argv]
    needle = probe.needle.format(**values)
    env = {k: v for k, v in os.environ.items() if k != "PYMFN_DEBUG"}
    timeout = probe.timeout or (SLOW_TIMEOUT if probe.slow else CHEAP_TIMEOUT)
    try:
        proc = subprocess.run([sys.executable, "-m", *argv], capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"hang: `python -m {' '.join(argv)}` still running after {timeout} s")
    where = f"`python -m {' '.join(argv)}` -> exit {proc.returncode}\nstderr:\n{proc.stderr}"
    assert proc.returncode >= 0, f"killed by signal {signal.Signals(-proc.returncode).name}: {where}"
    assert proc.returncode == probe.code, where
    assert "Traceback" not in proc.stderr, where
    lines = proc.stderr.rstrip("\n").split("\n")
    if probe.code == 2:  # argparse: usage text, then one error line
        assert lines[0].startswith("usage:") and ": error: " in lines[-1], where
    else:
        assert len(lines) == 1, f"stderr is not one line: {where}"
        assert ONE_LINE_ERROR.match(lines[0]), f"not 'pymfn <cmd>: error: ...': {where}"
    assert needle in lines[-1], f"error does not name {needle!r}: {where}"
    assert _adir_listing(inputs) == ["keep.txt"], f"the existing folder was modified: {where}"


def test_every_command_is_probed() -> None:
    """Each `python -m pymfn` command and each bench command has probes here."""
    from pymfn.cli import BENCH_COMMANDS, COMMANDS

    probed = {p.argv[1] for p in PROBES if p.argv[0] == "pymfn"}
    assert probed == set(COMMANDS), set(COMMANDS) ^ probed
    bench = {p.argv[1] for p in PROBES if p.argv[0] == "pymfn.bench"}
    assert bench == set(BENCH_COMMANDS), set(BENCH_COMMANDS) ^ bench


def test_debug_flag_reaches_the_command(inputs) -> None:
    """`python -m pymfn --debug <cmd>` prints the traceback before the same one-line error (the command runs
    its own run_command, so the dispatcher passes the flag on through PYMFN_DEBUG), and hides nothing."""
    proc = subprocess.run([sys.executable, "-m", "pymfn", "--debug", "freeze", "--ckpt", inputs["emptydir"],
                           "--out", str(Path(inputs["tmp"]) / "debug.pb")], capture_output=True, text=True,
                          timeout=CHEAP_TIMEOUT, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and len(proc.stderr.splitlines()) > 3
    assert proc.stderr.rstrip().splitlines()[-1].startswith("pymfn freeze: error: ")


# ================================================================================================================
# Metrics that refuse nonsense, verified caches, and one-line errors for the rest (helper block "metrics").
# Each numbered reproduction of the hardening list is a probe here (or a test in its module's test file:
# import-weights onto a full disk in test_weights.py, regress builds in test_regress.py).
# ================================================================================================================


def _ir_with_constant_output(path: Path, fill: float) -> str:
    """An OpenVINO IR taking [N, 112, 112, 3] float32 whose 128-d output is ``x * 0 + fill`` per row: a model
    that ignores its input (fill 0: zero embeddings; NaN: what a broken conversion can give)."""
    import openvino as ov
    from openvino import opset13 as ops

    x = ops.parameter([-1, 112, 112, 3], np.float32, name="Placeholder")
    pooled = ops.reduce_mean(x, np.array([1, 2], np.int64), keep_dims=False)
    weights = np.zeros((3, 128), np.float32)
    out = ops.add(ops.matmul(pooled, weights, False, False), np.full((1, 128), fill, np.float32))
    out.output(0).get_tensor().set_names({"embeddings"})
    ov.save_model(ov.Model([out], [x], "constant"), str(path), compress_to_fp16=False)
    return str(path)


@pytest.fixture(scope="module")
def metrics_inputs(inputs) -> dict[str, str]:
    t = Path(inputs["tmp"]) / "metrics"
    t.mkdir()
    rng = np.random.default_rng(20)
    paths: dict[str, str] = {}
    emb = rng.normal(size=(1200, 128)).astype(np.float32)
    nan = emb.copy()
    nan[5, 3] = np.nan
    for key, arr in [("zero_npy", np.zeros((1200, 128), np.float32)), ("same_npy", np.tile(emb[:1], (1200, 1))),
                     ("nan_npy", nan)]:
        paths[key] = str(t / f"{key}.npy")
        np.save(paths[key], arr)
    paths["issame600"] = str(t / "issame600.npy")
    np.save(paths["issame600"], rng.random(600) < 0.5)
    paths["zero_xml"] = _ir_with_constant_output(t / "zero.xml", 0.0)
    paths["nan_xml"] = _ir_with_constant_output(t / "nan.xml", float("nan"))
    # image trees with one entry that has an image name but is no image file (20 of 21 images were written)
    for key, make in [("tree_fifo", lambda p: os.mkfifo(p)), ("tree_dangling", lambda p: p.symlink_to(t / "gone.jpg")),
                      ("tree_dir", lambda p: p.mkdir())]:
        for i in range(2):
            _write(t / key / "alice" / f"{i}.jpg", _jpeg(i))
        _write(t / key / "bob" / "0.jpg", _jpeg(2))
        make(t / key / "bob" / "odd.jpg")
        paths[key] = str(t / key)
    # an InsightFace RecordIO folder whose train.rec is missing
    _write(t / "rec_no_rec" / "train.idx", b"1\t0\n")
    _write(t / "rec_no_rec" / "property", b"2,112,112\n")
    paths["rec_no_rec"] = str(t / "rec_no_rec")
    return paths


def M(name: str, argv: str, needle: str, **kw) -> Probe:
    return Probe(name, tuple(argv.split()), needle, needs=("metrics_inputs",), **kw)


METRICS_PROBES: list[Probe] = [
    # 7: degenerate embeddings are refused naming their source, never a plain 50%
    M("eval-all-zero-rows", "pymfn eval {metrics_inputs[zero_npy]} --issame {metrics_inputs[issame600]}",
      "embeddings {metrics_inputs[zero_npy]}: all 1200 rows are zeros"),
    M("eval-identical-rows", "pymfn eval {metrics_inputs[same_npy]} --issame {metrics_inputs[issame600]}",
      "embeddings {metrics_inputs[same_npy]}: all 1200 rows point the same way"),
    # 13: NaN in embeddings names the file (eval) or --data and the model (bench accuracy)
    M("eval-nan-names-the-file", "pymfn eval {metrics_inputs[nan_npy]} --issame {metrics_inputs[issame600]}",
      "embeddings {metrics_inputs[nan_npy]}: row 5 contains NaN"),
    M("accuracy-zero-model", "pymfn.bench accuracy --data {lfw} --model {metrics_inputs[zero_xml]} --quiet",
      "--data {lfw} embedded by {metrics_inputs[zero_xml]}: all 4 rows are zeros"),
    M("accuracy-nan-model", "pymfn.bench accuracy --data {lfw} --model {metrics_inputs[nan_xml]} --quiet",
      "--data {lfw} embedded by {metrics_inputs[nan_xml]}: row 0 contains NaN"),
    # 11: data tfrecord refuses what the other commands refuse
    M("data-tree-fifo", "pymfn data tfrecord --from {metrics_inputs[tree_fifo]} --out {fresh}",
      "{metrics_inputs[tree_fifo]}/bob/odd.jpg: is a FIFO", timeout=30),
    M("data-tree-dangling-link", "pymfn data tfrecord --from {metrics_inputs[tree_dangling]} --out {fresh}",
      "{metrics_inputs[tree_dangling]}/bob/odd.jpg: dangling symbolic link"),
    M("data-tree-folder-named-jpg", "pymfn data tfrecord --from {metrics_inputs[tree_dir]} --out {fresh}",
      "{metrics_inputs[tree_dir]}/bob/odd.jpg: is a directory"),
    # 13: a RecordIO folder without train.rec says so
    M("data-recordio-without-rec", "pymfn data tfrecord --from {metrics_inputs[rec_no_rec]} --out {fresh}",
      "train.rec is missing"),
    # 12: option values pybind cannot hold are named by option, not an internal TypeError
    M("latency-device-beyond-int32", "pymfn.bench latency --model {garbage_om} --device 4294967296",
      "--device 4294967296: not an AscendCL device id"),
    # 14: the tf engine range-checks --threads like the other engines (100000 threads never finished starting)
    M("latency-tf-threads-huge", "pymfn.bench latency --model {garbage_pb} --engine tf --threads 100000",
      "--threads 100000: the tf engine takes 0"),
    # 13: --output that OpenVINO cannot write is refused before the work, by option name
    M("convert-openvino-output-not-xml", "pymfn convert {garbage_pb} --target openvino --output {fresh}.model",
      "--output {fresh}.model: expected an OpenVINO IR name ending in .xml"),
    # 13: a path with a newline gives one line, the newline escaped
    Probe("eval-path-with-newline", ("pymfn", "eval", "{tmp}/a\nb.npy", "--issame", "{issame}"), "{tmp}/a\\nb.npy"),
    Probe("latency-path-with-newline", ("pymfn.bench", "latency", "--model", "{tmp}/x\ny.pb"), "{tmp}/x\\ny.pb"),
]


@pytest.mark.parametrize("probe", [pytest.param(p, id=p.name) for p in METRICS_PROBES])
def test_metrics_probe(probe: Probe, inputs: dict[str, str], request) -> None:
    test_bad_input(probe, inputs, request)


def test_int8_cache_is_verified_before_reuse(tmp_path, monkeypatch, capsys) -> None:
    """10: `convert --int8` reused a cached INT8 IR whose .bin had a flipped bit (91% instead of 99%, exit 0):
    the record beside it held the hashes but nothing checked them. (NNCF is replaced by a writer of a fixed
    IR here: what is under test is the reuse decision; test_quantize.py covers the real quantization.)"""
    from pymfn.export import quantize as q

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(q, "tool_versions", lambda: {"pymfn": "test"})
    built: list[Path] = []

    def fake_quantize_model(model_path, out_xml, calibration, settings=None, model=None):
        out_xml = Path(out_xml)
        out_xml.parent.mkdir(parents=True, exist_ok=True)
        out_xml.write_text("<net name='q'/>\n")
        out_xml.with_suffix(".bin").write_bytes(bytes(range(256)) * 64)
        record = {"output": {"xml_sha256": q.file_sha256(out_xml),
                             "bin_sha256": q.file_sha256(out_xml.with_suffix(".bin"))}}
        q.record_path(out_xml).write_text(json.dumps(record))
        built.append(out_xml)
        return record

    monkeypatch.setattr(q, "quantize_model", fake_quantize_model)
    model = tmp_path / "m.pb"
    model.write_bytes(b"float model")
    calibration = q.CalibrationSet(tmp_path, "folder", 2, 0, "rgb", ["a.jpg", "b.jpg"],
                                   np.zeros((2, 112, 112, 3), np.uint8))
    out = q.cached_quantized(model, calibration, quiet=True)
    assert built == [out]
    assert q.cached_quantized(model, calibration, quiet=True) == out and len(built) == 1  # intact: reused
    assert capsys.readouterr().err == ""

    weights = out.with_suffix(".bin")
    raw = bytearray(weights.read_bytes())
    raw[1000] ^= 0x04  # one bit, same size
    weights.write_bytes(bytes(raw))
    assert q.cached_quantized(model, calibration, quiet=True) == out and len(built) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pymfn: warning: the cached INT8 IR {weights} has sha256 ")
    assert err.endswith("recorded; quantizing again\n")
    assert weights.read_bytes() == bytes(range(256)) * 64

    out.write_text("<net name='edited'/>\n")  # the xml is checked too
    q.cached_quantized(model, calibration, quiet=True)
    assert len(built) == 3 and f"the cached INT8 IR {out} has sha256 " in capsys.readouterr().err
    q.record_path(out).write_text("{")  # an unreadable record: rebuilt like a missing entry
    q.cached_quantized(model, calibration, quiet=True)
    assert len(built) == 4


def test_default_model_cache_is_verified_before_reuse(tmp_path, monkeypatch, capsys) -> None:
    """10: the cached default model is reused only while it matches the size and sha256 recorded when it
    was built. (freeze_random is replaced by a writer of fixed bytes: the reuse decision is under test.)"""
    from pymfn import config
    from pymfn.export import default_model
    from pymfn.export import freeze

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(config, "sirius_tflite_path", lambda: tmp_path / "absent.tflite")
    built: list[Path] = []

    def fake_freeze_random(out, embedding_size=128, seed=0, fp16_output=False):
        Path(out).write_bytes(b"graph" * 1000)
        built.append(Path(out))

    monkeypatch.setattr(freeze, "freeze_random", fake_freeze_random)
    pb = default_model.default_model(quiet=True).path
    assert built == [pb] and json.loads(default_model.record_path(pb).read_text())["bytes"] == 5000
    assert default_model.default_model(quiet=True).path == pb and len(built) == 1
    assert capsys.readouterr().err == ""

    pb.write_bytes(b"graph" * 999 + b"grapH")  # same size, other bytes
    assert default_model.default_model(quiet=True).path == pb and len(built) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pymfn: warning: the cached default model {pb} has sha256 ")
    assert pb.read_bytes() == b"graph" * 1000

    pb.write_bytes(b"cut")  # a different size is found without reading the file
    default_model.default_model(quiet=True)
    assert len(built) == 3 and "is 3 bytes, 5000 recorded; rebuilding it" in capsys.readouterr().err
    default_model.record_path(pb).unlink()  # no record (an older pymfn's entry): rebuilt, no warning
    default_model.default_model(quiet=True)
    assert len(built) == 4 and capsys.readouterr().err == ""
