"""A small randomized kill campaign (bench/kill_campaign.py): kill -9 / SIGTERM at random points of the
cheap writers (image2bin --packed and into a folder, pack, eval --json; 16 kills), alternating two variants of the output; every
output is afterwards the complete old set, the complete new set or a commit the next writer completes,
and the next run removes the killed run's temps and says so. The full campaign over every writer
(>= 200 kills) is run by hand: see docs/robustness.md."""
from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SEED = 20


@pytest.fixture(scope="module")
def kc():
    spec = importlib.util.spec_from_file_location("kill_campaign", ROOT / "bench" / "kill_campaign.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["kill_campaign"] = module
    spec.loader.exec_module(module)
    module.FACES = {"A": (160, 1), "B": (80, 2)}  # small sources: a run takes about a second
    module.EVAL_PAIRS = 1500
    module._BASE_ENV["PYMFN_SHARED"] = os.environ.get("PYMFN_SHARED", str(ROOT.parent / "shared"))
    return module


@pytest.mark.parametrize("name, kills", [("image2bin-packed", 6), ("image2bin-folder", 3), ("pack", 4),
                                         ("eval-json", 3)])
def test_random_kills_leave_old_or_new_and_no_temps(kc, tmp_path, name, kills):
    writer = next(w for w in kc.writers(Path(kc._BASE_ENV["PYMFN_SHARED"])) if w.name == name)
    writer.prepare(tmp_path)
    kc.reference_runs(writer, tmp_path)
    summary = kc.campaign(writer, tmp_path, kills, random.Random(f"{SEED}-{name}"), log=print)
    assert summary["kills"] == kills
    assert summary["failures"] == []
    assert kc.leftovers([tmp_path]) == []
