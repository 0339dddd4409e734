"""One-line errors and output paths checked before work (pymfn/errors.py, pymfn/cli/common.py, pymfn/files/outputs.py), and the bench CLI's use of them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pymfn import errors
from pymfn.cli import common
from pymfn.files import outputs


def test_user_error_is_one_line(capsys):
    def body():
        raise ValueError("x.bin: 10 bytes, expected 150528\nsecond line")

    assert common.run_command("prog", body) == common.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prog: error: x.bin: 10 bytes")
    assert "Traceback" not in err


def test_debug_adds_traceback(capsys, monkeypatch):
    monkeypatch.setenv(errors.DEBUG_ENV, "1")
    assert common.run_command("prog", lambda: (_ for _ in ()).throw(OSError("disk gone"))) == common.EXIT_ERROR
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("prog: error: disk gone")


def test_internal_error_names_itself(capsys):
    def body():
        raise ZeroDivisionError("division by zero")

    assert common.run_command("prog", body) == common.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error (ZeroDivisionError)" in err and "--debug" in err and "Traceback" not in err


def test_system_exit_message_gets_prefix(capsys):
    assert common.run_command("prog", lambda: (_ for _ in ()).throw(SystemExit("--batch must be >= 1"))) == 1
    assert capsys.readouterr().err == "prog: error: --batch must be >= 1\n"


def test_check_output_path(tmp_path):
    assert outputs.check_output_path(None, "--json") is None
    assert outputs.check_output_path(tmp_path / "new" / "deeper" / "r.json", "--json") is not None
    assert not (tmp_path / "new").exists(), "the check must not create folders"
    with pytest.raises(errors.CommandError, match="existing directory"):
        outputs.check_output_path(tmp_path, "--json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(errors.CommandError, match="not a directory"):
        outputs.check_output_path(tmp_path / "file" / "r.json", "--plot")
    if os.geteuid() != 0:  # root writes anywhere; /proc refuses everyone
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(errors.CommandError, match="cannot write"):
            outputs.check_output_path(ro / "r.json", "--json")
    with pytest.raises(errors.CommandError, match="cannot write"):
        outputs.check_output_path("/proc/r.json", "--json")
    assert list(tmp_path.glob(".*probe")) == []


def test_save_output_falls_back(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(outputs.tempfile, "gettempdir", lambda: str(tmp_path))
    calls = []

    def write(p: Path) -> None:
        calls.append(p)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")
        p.write_text("result")

    where = outputs.save_output("/nowhere/r.json", write, "--json", "prog")
    assert where is not None and where.parent == tmp_path and where.read_text() == "result"
    assert f"saved to {where}" in capsys.readouterr().err


def test_bench_rejects_bad_json_path_before_measuring(tmp_path):
    # The directory check fires before the model is built or opened: fast, one line, exit 1.
    r = subprocess.run([sys.executable, "-m", "pymfn.bench", "latency", "--json", str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip() == f"pymfn bench latency: error: --json {tmp_path}: is an existing directory; give a file name"
    assert r.stdout == ""


def test_bench_missing_model_one_line():
    r = subprocess.run([sys.executable, "-m", "pymfn.bench", "latency", "--model", "/no/such.om"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "/no/such.om does not exist" in r.stderr


def test_control_characters_from_the_command_line_are_escaped(capsys, monkeypatch):
    """A path holding a newline split the error over two lines (bench's SystemExit messages) or was
    mangled into 'a | b.npy'; it is shown escaped, as the user can type it again."""
    monkeypatch.setattr(sys, "argv", ["prog", "--model", "dir/x\ny.pb", "--tab", "a\tb"])

    def body():
        raise SystemExit("--model: dir/x\ny.pb does not exist")

    assert common.run_command("prog", body) == common.EXIT_ERROR
    assert capsys.readouterr().err == "prog: error: --model: dir/x\\ny.pb does not exist\n"

    def derived():  # a path derived from the argument (other suffix) keeps the escape; the tab too
        raise FileNotFoundError("dir/x\ny.bin: not found beside a\tb\nnative detail")

    assert common.run_command("prog", derived) == common.EXIT_ERROR
    assert capsys.readouterr().err == "prog: error: dir/x\\ny.bin: not found beside a\\tb | native detail\n"
    assert errors.escape_user_text("plain\ntext", ["no-control"]) == "plain\ntext"


_SIGTERM_WHILE_INSTALLING = """
import os, signal
from pymfn.cli import common
real = signal.signal
def signal_then_term(sig, handler):
    old = real(sig, handler)
    if sig == signal.SIGTERM and handler is common._terminate:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the handlers are being changed
    return old
signal.signal = signal_then_term
print("status", common.run_command("prog", lambda: 0))
"""


def test_sigterm_while_the_stop_handlers_are_installed_is_one_line_and_143():
    """A SIGTERM that arrives in the middle of installing the handlers (a kill right at start-up) ends the
    command like any other SIGTERM: one line, exit 128 + 15, no traceback."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_WHILE_INSTALLING], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["status", "143"]
    assert proc.stderr.strip() == "prog: terminated by SIGTERM" and "Traceback" not in proc.stderr
