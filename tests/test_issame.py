"""One pair-label rule for every command: booleans or 0/1, one per pair, from .npy, lfw.bin or text."""
from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest

from pymfn.inputs.pairs import IssameError, as_issame, load_issame


def test_arange_is_refused_not_cast_to_bool(tmp_path):
    """`bench accuracy --issame x.npy` used to cast np.arange(20) to bool (19 'same' pairs) and report 90%."""
    np.save(tmp_path / "x.npy", np.arange(20))
    with pytest.raises(IssameError, match=r"x.npy: label 2 is 2 \(18 labels are not 0/1\); expected booleans or 0/1"):
        load_issame(tmp_path / "x.npy")


@pytest.mark.parametrize("values", [[True, False, True], [1, 0, 1], np.array([1, 0, 1], np.uint8),
                                    np.array([True, False, True]), (np.bool_(True), 0, 1)])
def test_accepted_forms(values):
    assert as_issame(values, "x").tolist() == [True, False, True]


@pytest.mark.parametrize("values,fragment", [
    (np.array([0.0, 1.0]), "labels are float64"),
    (np.zeros((2, 2), bool), "shape (2, 2)"),
    ([True, 2], "label 1 is 2"),
    ([True, [True]], "label 1 is [True]"),
    ([], "no labels"),
    (np.array(["1", "0"]), "labels are <U1"),
    ("1010", "labels are a str"),
])
def test_refused_forms(values, fragment):
    with pytest.raises(IssameError) as ei:
        as_issame(values, "src")
    assert fragment in str(ei.value) and str(ei.value).startswith("src: ")


def test_length_must_equal_pairs():
    with pytest.raises(IssameError, match="3 labels but there are 4 pairs"):
        as_issame([1, 0, 1], "x", pairs=4)


def test_file_formats_recognised_by_content(tmp_path):
    want = [True, False, False, True]
    np.save(tmp_path / "a.npy", np.array(want))
    (tmp_path / "b.txt").write_text("1\n0\nfalse\nTRUE\n\n")
    (tmp_path / "noext").write_text("1\n0\n0\n1\n")
    with open(tmp_path / "c.bin", "wb") as f:  # a .npy whatever the suffix says
        np.save(f, np.array(want, np.int64))
    with open(tmp_path / "lfw.bin", "wb") as f:
        pickle.dump(([b"x"] * 8, want), f, protocol=4)
    for name in ("a.npy", "b.txt", "noext", "c.bin", "lfw.bin"):
        assert load_issame(tmp_path / name, pairs=4).tolist() == want, name


def test_text_errors_name_the_line(tmp_path):
    (tmp_path / "l.txt").write_text("1\n0\nyes\n")
    with pytest.raises(IssameError, match=r"l.txt: line 3 is 'yes'; expected one label per line: 0, 1, true or false"):
        load_issame(tmp_path / "l.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(IssameError, match="bin.txt: not a .npy, lfw.bin or text label file"):
        load_issame(tmp_path / "bin.txt")


def test_npy_with_pickles_or_a_lying_header_is_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([True, None], dtype=object), allow_pickle=True)
    with pytest.raises(IssameError, match=r"obj.npy: not a readable .npy file .*allow_pickle"):
        load_issame(tmp_path / "obj.npy")
    # a header claiming 2**40 booleans over 10 bytes of data: refused before numpy allocates anything
    buf = io.BytesIO()
    np.save(buf, np.zeros(10, bool))
    head = buf.getvalue()
    header_len = int.from_bytes(head[8:10], "little")
    text = head[10:10 + header_len].decode("latin-1").replace("(10,)", "(1099511627776,)")
    text = text.rstrip("\n").rstrip(" ")
    text = text + " " * (header_len - 1 - len(text)) + "\n"
    assert len(text) == header_len
    raw = head[:10] + text.encode("latin-1") + head[10 + header_len:]
    (tmp_path / "huge.npy").write_bytes(raw)
    with pytest.raises(IssameError, match=r"huge.npy: not a readable .npy file .*1099511627776 bytes of data"):
        load_issame(tmp_path / "huge.npy")


def test_missing_directory_and_fifo(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npy: pair label file not found"):
        load_issame(tmp_path / "nope.npy")
    with pytest.raises(ValueError, match="is a directory, not a regular file"):
        load_issame(tmp_path)
    os.mkfifo(tmp_path / "fifo.npy")
    with pytest.raises(ValueError, match=r"fifo.npy: is a FIFO \(named pipe\), not a regular file"):
        load_issame(tmp_path / "fifo.npy")


def test_eval_cli_and_bench_accuracy_apply_the_same_rule(tmp_path, capsys):
    """Before: `pymfn eval` rejected np.arange(20) while `bench accuracy` took it (90.00%)."""
    from pymfn.__main__ import main as pymfn_main
    from pymfn.bench.__main__ import main as bench_main

    rng = np.random.default_rng(0)
    emb = rng.standard_normal((40, 128)).astype(np.float16)
    run = tmp_path / "om" / "20240101_120000"
    run.mkdir(parents=True)
    for i, row in enumerate(emb):
        row.tofile(run / f"{i}_output_0.bin")
    np.save(tmp_path / "x.npy", np.arange(20))
    assert pymfn_main(["eval", "--msame-dir", str(tmp_path / "om"), "--issame", str(tmp_path / "x.npy")]) == 1
    eval_err = capsys.readouterr().err
    assert bench_main(["accuracy", "--data", str(tmp_path / "om"), "--issame", str(tmp_path / "x.npy"),
                       "--json", str(tmp_path / "a.json")]) == 1
    bench_err = capsys.readouterr().err
    for err in (eval_err, bench_err):
        assert err.count("\n") == 1 and "x.npy: label 2 is 2" in err, err
    assert not (tmp_path / "a.json").exists()
    np.save(tmp_path / "ok.npy", np.arange(20) % 2)
    assert bench_main(["accuracy", "--data", str(tmp_path / "om"), "--issame", str(tmp_path / "ok.npy"),
                       "--json", str(tmp_path / "a.json"), "--quiet"]) == 0
    assert json.loads((tmp_path / "a.json").read_text())["pairs"] == 20
