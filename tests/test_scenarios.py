"""LoadGen-style scenarios of the C++ runner: the server scenario's seeded Poisson schedule and
its accounting from the SCHEDULED arrival, multi-stream, several devices on one clock, per-request engine
stage samples, and the CLI commands built on them.

The accounting is checked with SimulatedEngine, whose service time is a sleep the test chooses, so every
check below is a consequence of the schedule and the sleeps (lower bounds, identities, counts), not of how
fast this machine is. Where a check is about speed (the null-engine scheduler issuing on time, devices
running side by side) it compares with a peer measured in the same run or counts events, so a loaded
machine slows both sides alike.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pymfn import config
from test_openvino_engine import write_tiny_pb
from pymfn.cli import main as cli_main

SIZE = 16


def _reader(core, batch: int = 1, rows: int = 16, width: int = 4):
    data = np.arange(rows * width, dtype=np.float32).reshape(rows, width)
    return core.ArrayDataset(data).reader(batch)


def _server_settings(core, **kw):
    base = dict(target_qps=100.0, latency_bound_ms=50.0, min_query_count=10, min_duration_ms=1000.0,
                max_duration_ms=30000.0, warmup_iterations=0, schedule_seed=3)
    base.update(kw)
    return core.RunSettings(**base)


# ------------------------------------------------------------------------------------------ the schedule
def test_poisson_schedule_is_seeded_and_has_the_asked_rate(core):
    a = np.asarray(core.poisson_schedule(500.0, 20000, 0.0, 0.0, 7))
    assert np.array_equal(a, np.asarray(core.poisson_schedule(500.0, 20000, 0.0, 0.0, 7)))
    assert not np.array_equal(a[:100], np.asarray(core.poisson_schedule(500.0, 20000, 0.0, 0.0, 8))[:100])
    gaps = np.diff(np.concatenate([[0.0], a]))
    assert (gaps > 0).all() and len(a) == 20000
    # exponential gaps: mean 1000/qps ms, coefficient of variation 1 (20,000 draws: within 3%)
    assert gaps.mean() == pytest.approx(2.0, rel=0.03)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)


def test_poisson_schedule_minimums_and_cap(core):
    t = np.asarray(core.poisson_schedule(100.0, 10, 2000.0, 0.0, 1))
    assert t[-1] >= 2000.0 and t[-2] < 2000.0  # stops at the first arrival past min_duration
    t = np.asarray(core.poisson_schedule(100.0, 1000, 0.0, 0.0, 1))
    assert len(t) == 1000
    t = np.asarray(core.poisson_schedule(100.0, 1000, 0.0, 500.0, 1))
    assert t[-1] <= 500.0 and len(t) < 1000  # capped by max_duration
    with pytest.raises(core.InvalidArgument, match="target_qps"):
        core.poisson_schedule(0.0, 10, 0.0)
    with pytest.raises(core.InvalidArgument, match="at most"):
        core.poisson_schedule(1e9, 10, 1e6)


# ------------------------------------------------------------------------------------------ server
def test_server_stall_counts_in_every_query_queued_behind_it(core):
    """One request stalls 100 ms: each query scheduled during the stall waits for it, and its latency,
    measured from its scheduled arrival, says so. A runner that timed from the issue would not see it."""
    service, stall, k = 2.0, 100.0, 40
    eng = core.SimulatedEngine(service_ms=service, stalls_ms={k: stall})
    st = _server_settings(core, min_duration_ms=1500.0)
    r = core.run_server(eng, _reader(core), st)
    sched, issued, ready, done = (np.asarray(x) for x in (r.scheduled_ms, r.issued_ms, r.ready_ms, r.completed_ms))
    n = r.queries
    assert n == r.queries_scheduled == len(sched) and eng.requests == n  # warm-up 0: request k is query k
    assert np.array_equal(sched, np.asarray(core.poisson_schedule(100.0, 10, 1500.0, 30000.0, 3)))
    lat = done - sched
    # the stalled query itself
    assert done[k] - issued[k] >= service + stall
    behind = np.flatnonzero((np.arange(n) > k) & (sched < done[k]))
    assert len(behind) >= 3  # 100 QPS x 100 ms: the schedule puts several arrivals inside the stall
    for j in behind:
        assert ready[j] >= done[k] and issued[j] >= done[k]  # one slot: nothing starts before it frees
        assert lat[j] >= done[k] - sched[j] + service
        # what an issue-time runner would miss for this query: all of its wait
        assert lat[j] - (done[j] - issued[j]) >= done[k] - sched[j]
    # the stall shows in the tail: every query that waited >= 50 ms is counted
    waited_50 = [j for j in behind if done[k] - sched[j] >= 50.0]
    assert np.count_nonzero(lat >= 50.0) >= len(waited_50) + 1 >= 2
    assert r.latency.p99 >= 50.0 and r.latency.max >= service + stall
    # lateness: issue delay = queue wait + harness lateness, and those queued count as issued late
    assert np.allclose(issued - sched, (ready - sched) + (issued - ready))
    assert (issued >= ready).all() and (ready >= sched).all()
    assert r.late_issues >= len(behind)
    assert r.queue_wait.max >= done[k] - sched[behind[0]] - 1e-9
    # rates are what they say
    assert r.duration_ms == pytest.approx(done.max())
    assert r.achieved_qps == pytest.approx(n * 1000.0 / done.max())
    assert r.scheduled_qps == pytest.approx(n * 1000.0 / sched[-1])
    assert r.achieved_qps <= r.scheduled_qps
    # LoadGen verdict against the 50 ms p99 bound
    assert not r.valid and any("p99 latency" in x and "> bound 50.000 ms" in x for x in r.invalid_reasons)
    assert r.latency_at_percentile == pytest.approx(np.percentile(lat, 99))


def test_server_without_stall_is_valid_and_counts_samples(core):
    eng = core.SimulatedEngine(service_ms=1.0)
    r = core.run_server(eng, _reader(core, batch=2, rows=7), _server_settings(core, batch_size=2, min_duration_ms=600,
                                                                              warmup_iterations=3))
    assert r.warmup_iterations == 3 and eng.requests == r.queries + 3
    assert r.samples_per_query == 2
    # 7 rows in batches of 2: every 4th batch of a pass has 1 valid row; the run starts after 3 warm-up batches
    valid = [2, 2, 2, 1] * (r.queries // 4 + 3)
    assert r.samples_processed == sum(valid[3:3 + r.queries])
    assert r.valid, r.invalid_reasons
    assert list(r.devices[0].name for _ in [0]) == ["simulated 0"] and r.devices[0].iterations == r.queries
    assert set(r.stage_samples_ms) == {"compute_ms"} and len(r.stage_samples_ms["compute_ms"]) == r.queries
    assert (np.asarray(r.stage_samples_ms["compute_ms"]) >= 1.0).all()


def test_null_engine_scheduler_issues_on_time(core):
    """Nothing to wait for: every query is issued at (never before) its scheduled time. How late is judged
    against peers, not a wall-clock constant: (1) lateness must not accumulate -- a scheduler that waits each
    gap from the previous issue or completion is late by the sum of its overheads, so its lateness never
    falls from one query to the next, while an on-time one recovers after every hiccup; (2) its median
    lateness is at most a Python thread's median oversleep measured at the same time (a thread that has to
    wake up from a 0.5 ms sleep and take the GIL), plus 0.5 ms, so a scheduler that sleeps in whole time
    slices (ms) fails on an idle machine and a loaded machine delays both alike."""
    eng = core.SimulatedEngine(service_ms=0.0, slots=4, serial=False)
    st = _server_settings(core, target_qps=1000.0, min_duration_ms=1000.0, inflight=4, late_threshold_ms=0.1)
    oversleep, running = [], threading.Event()

    def peer():
        while running.is_set():
            t0 = time.perf_counter()
            time.sleep(0.0005)
            oversleep.append((time.perf_counter() - t0) * 1000.0 - 0.5)

    running.set()
    thread = threading.Thread(target=peer, daemon=True)
    thread.start()
    try:
        r = core.run_server(eng, _reader(core), st)
    finally:
        running.clear()
        thread.join()
    sched, issued = np.asarray(r.scheduled_ms), np.asarray(r.issued_ms)
    late = issued - sched
    assert r.queries == r.queries_scheduled >= 900
    assert (issued >= sched).all()  # never early
    assert np.count_nonzero(np.diff(late) < 0) >= 0.2 * len(late), "lateness accumulates: issued relative to the last"
    assert len(oversleep) >= 20
    assert np.median(late) <= np.median(oversleep) + 0.5, (np.median(late), np.median(oversleep))
    assert r.issue_delay.median == pytest.approx(np.median(late))
    assert r.late_issues == int(np.count_nonzero(late > 0.1))


def test_server_settings_are_checked(core):
    eng = core.SimulatedEngine()
    with pytest.raises(core.InvalidArgument, match="latency_bound_ms must be > 0"):
        core.run_server(eng, _reader(core), _server_settings(core, latency_bound_ms=0.0))
    with pytest.raises(core.InvalidArgument, match="target_qps"):
        core.run_server(eng, _reader(core), _server_settings(core, target_qps=0.0))
    with pytest.raises(core.InvalidArgument, match="bound_percentile"):
        core.run_server(eng, _reader(core), _server_settings(core, bound_percentile=1.0))
    with pytest.raises(core.InvalidArgument, match="at most 1 requests in flight"):
        core.run_server(eng, _reader(core), _server_settings(core, inflight=2))
    with pytest.raises(core.InvalidArgument, match="same engine object"):
        core.run_server([eng, eng], _reader(core), _server_settings(core))
    with pytest.raises(core.InvalidArgument, match="no devices"):
        core.run_server([], _reader(core), _server_settings(core))
    with pytest.raises(TypeError, match="not an Engine"):
        core.run_server([eng, "x"], _reader(core), _server_settings(core))


def test_server_stops_issuing_at_max_duration_and_says_so(core):
    # 10 ms per query at 400 QPS: hopelessly behind; max_duration stops issuing after 300 ms
    eng = core.SimulatedEngine(service_ms=10.0)
    st = _server_settings(core, target_qps=400.0, min_duration_ms=300.0, max_duration_ms=300.0, min_query_count=1)
    r = core.run_server(eng, _reader(core), st)
    assert r.stopped_on_max_duration and not r.valid
    assert r.queries < r.queries_scheduled
    assert any("never issued" in x for x in r.invalid_reasons)


def test_server_spreads_queries_over_devices(core):
    engines = [core.SimulatedEngine(service_ms=4.0) for _ in range(2)]
    st = _server_settings(core, target_qps=300.0, min_duration_ms=600.0)
    r = core.run_server(engines, _reader(core), st, names=["dev a", "dev b"])
    dev = np.asarray(r.query_devices)
    assert [d.name for d in r.devices] == ["dev a", "dev b"]
    assert sum(d.iterations for d in r.devices) == r.queries == len(dev)
    assert set(dev.tolist()) == {0, 1} and engines[0].requests + engines[1].requests == r.queries


# ------------------------------------------------------------------------------------------ stopping early
class _StopsAt:
    """A Python engine that raises a StopFlag inside its n-th call (warm-up included), so a stop lands at a
    known request and every count is exact. Past 5,000 calls more than that it fails: a runner that ignored
    the flag ends with an error instead of running for ever."""

    def __new__(cls, core, flag, at: int, service_s: float = 0.0):
        class Engine(core.Engine):
            kind, model_path = "stops-at", "<stops at>"

            def __init__(self):
                super().__init__()
                self.calls = 0

            def inputs(self):
                return [core.TensorInfo("x", "float32", [-1, 4])]

            def outputs(self):
                return [core.TensorInfo("y", "float32", [-1, 1])]

            def execute(self, inputs):
                self.calls += 1
                if self.calls == at:
                    flag.request()
                if self.calls > min(at, 10_000) + 5_000:
                    raise RuntimeError("the run went on after its StopFlag was raised")
                if service_s:
                    time.sleep(service_s)
                return [inputs[0].sum(axis=1, keepdims=True)]

        return Engine()


def test_server_stop_flag_keeps_the_queries_already_issued(core):
    flag = core.StopFlag()
    eng = _StopsAt(core, flag, at=3 + 40)
    st = _server_settings(core, target_qps=500.0, min_duration_ms=0.0, min_query_count=10**6,
                          max_duration_ms=0.0, warmup_iterations=3)
    r = core.run_server(eng, _reader(core), st, stop=flag)
    assert r.interrupted and r.stop_reason == core.StopReason.kInterrupted and not r.stopped_on_max_duration
    assert r.warmup_iterations == 3 and r.queries == 40 == eng.calls - 3 and len(r.completed_ms) == 40
    assert not r.valid and any(x.startswith(f"interrupted: {r.queries_scheduled - 40} of ") for x in r.invalid_reasons)


def test_server_stop_flag_wakes_a_scheduler_waiting_for_a_far_arrival(core):
    """At 0.01 QPS the first arrival of this schedule is minutes away; a raised flag must end the wait at its
    next look (every 20 ms), not at the arrival. 30 s is a bound for a loaded machine; the arrival is later."""
    first = core.poisson_schedule(0.01, 2, 0.0, 0.0, 5)[0]
    assert first > 60_000.0
    flag = core.StopFlag()
    eng = core.SimulatedEngine()
    st = _server_settings(core, target_qps=0.01, min_query_count=2, min_duration_ms=0.0, max_duration_ms=0.0,
                          schedule_seed=5)
    threading.Timer(0.2, flag.request).start()
    t0 = time.monotonic()
    r = core.run_server(eng, _reader(core), st, stop=flag)
    assert time.monotonic() - t0 < 30.0
    assert r.interrupted and r.queries == 0 and eng.requests == 0
    assert any("interrupted: 2 of 2 scheduled queries were never issued" in x for x in r.invalid_reasons)


def test_stop_flag_ends_warmup_of_scenarios_and_devices(core):
    flag = core.StopFlag()
    eng = _StopsAt(core, flag, at=5)
    st = _server_settings(core, warmup_iterations=10**9)
    r = core.run_server(eng, _reader(core), st, stop=flag)
    assert r.interrupted and r.warmup_iterations == 5 == eng.calls and r.queries == 0
    assert any("interrupted during warm-up, after 5 warm-up requests" in x for x in r.invalid_reasons)
    flag.clear()
    eng = _StopsAt(core, flag, at=5)
    st = core.RunSettings(samples_per_query=1, query_interval_ms=10.0, min_query_count=10, warmup_iterations=10**9)
    r = core.run_multistream(eng, _reader(core), st, stop=flag)
    assert r.interrupted and r.warmup_iterations == 5 == eng.calls and r.queries == 0
    # several devices: one lane raises the flag, every lane stops; nothing was measured yet
    flag.clear()
    lanes = [_StopsAt(core, flag, at=6, service_s=0.001), _StopsAt(core, flag, at=10**9, service_s=0.001)]
    r = core.run_devices(lanes, _reader(core), core.RunSettings(warmup_iterations=10**9, max_duration_ms=0), stop=flag)
    assert r.interrupted and r.iterations == 0 and r.warmup_iterations == sum(e.calls for e in lanes) >= 6
    assert any("interrupted during warm-up" in w for w in r.warnings)


def test_run_devices_stop_flag_during_measurement(core):
    flag = core.StopFlag()
    lanes = [_StopsAt(core, flag, at=30, service_s=0.001), _StopsAt(core, flag, at=10**9, service_s=0.001)]
    st = core.RunSettings(warmup_iterations=2, min_iterations=10**9, min_duration_ms=0, max_duration_ms=0)
    r = core.run_devices(lanes, _reader(core), st, stop=flag)
    assert r.interrupted and r.iterations >= 1
    assert r.iterations + r.warmup_iterations == sum(e.calls for e in lanes)  # every request kept
    assert r.iterations == len(r.samples_ms) == sum(d.iterations for d in r.devices)


def test_server_max_duration_counts_warmup(core):
    """The cap runs from the start of warm-up: 10 warm-up requests of >= 20 ms in a 300 ms cap leave the
    schedule at most 100 ms, so a 250 ms schedule stops issuing early, and says so. Exact whatever the load:
    warm-up only gets longer, and no arrival beyond the cap is issued."""
    eng = core.SimulatedEngine(service_ms=20.0)
    st = _server_settings(core, target_qps=200.0, min_duration_ms=250.0, min_query_count=1, max_duration_ms=300.0,
                          warmup_iterations=10)
    r = core.run_server(eng, _reader(core), st)
    assert r.warmup_iterations == 10 and r.stopped_on_max_duration and not r.valid
    assert r.queries < r.queries_scheduled and (np.asarray(r.scheduled_ms) <= 100.0).all()
    assert any("counted from the start of the run, warm-up included" in x for x in r.invalid_reasons)


# ------------------------------------------------------------------------------------------ multi-stream
def test_multistream_queries_split_into_requests(core):
    eng = core.SimulatedEngine(service_ms=3.0, slots=2, serial=False)
    st = core.RunSettings(samples_per_query=4, batch_size=2, inflight=2, query_interval_ms=20.0, min_query_count=20,
                          min_duration_ms=400.0, warmup_iterations=0)
    r = core.run_multistream(eng, _reader(core, batch=2), st)
    sched = np.asarray(r.scheduled_ms)
    assert r.scenario == "multi-stream" and np.allclose(sched, np.arange(r.queries) * 20.0)
    assert r.requests == 2 * r.queries == eng.requests and r.samples_processed == 4 * r.queries
    assert r.latency_bound_ms == 20.0  # default: the interval
    assert (np.asarray(r.completed_ms) - sched >= 3.0).all()
    assert r.target_qps == pytest.approx(50.0)


def test_multistream_stall_makes_the_run_invalid(core):
    eng = core.SimulatedEngine(service_ms=2.0, stalls_ms={10: 100.0})
    st = core.RunSettings(samples_per_query=1, query_interval_ms=10.0, min_query_count=50, min_duration_ms=0,
                          warmup_iterations=0)
    r = core.run_multistream(eng, _reader(core), st)
    lat = np.asarray(r.completed_ms) - np.asarray(r.scheduled_ms)
    assert (lat[11:20] >= 100.0 - (np.arange(11, 20) - 10) * 10.0).all()  # queued behind the stall
    assert not r.valid and any("p99 latency" in x for x in r.invalid_reasons)


def test_multistream_refuses_a_query_that_does_not_split(core):
    st = core.RunSettings(samples_per_query=3, batch_size=2)
    with pytest.raises(core.InvalidArgument, match="not a multiple of batch_size"):
        core.run_multistream(core.SimulatedEngine(), _reader(core, batch=2), st)


# ------------------------------------------------------------------------------------------ devices
def test_run_devices_one_clock_and_per_device_figures(core):
    engines = [core.SimulatedEngine(service_ms=5.0), core.SimulatedEngine(service_ms=10.0)]
    st = core.RunSettings(min_iterations=30, min_duration_ms=400.0, warmup_iterations=2)
    r = core.run_devices(engines, _reader(core), st, names=["fast", "slow"])
    fast, slow = r.devices
    assert (fast.name, slow.name) == ("fast", "slow")
    assert fast.iterations + slow.iterations == r.iterations == len(r.samples_ms) == len(r.sample_devices)
    assert r.samples_processed == fast.samples_processed + slow.samples_processed
    # one clock: the common wall runs from the earliest first start to the latest last completion
    assert min(fast.first_start_ms, slow.first_start_ms) == 0.0
    assert r.wall_ms == pytest.approx(max(fast.last_end_ms, slow.last_end_ms))
    assert r.throughput_per_s == pytest.approx(r.samples_processed * 1000.0 / r.wall_ms)
    assert r.start_skew_ms == pytest.approx(abs(fast.first_start_ms - slow.first_start_ms))
    assert r.end_skew_ms == pytest.approx(abs(fast.last_end_ms - slow.last_end_ms))
    assert fast.latency.min >= 5.0 and slow.latency.min >= 10.0
    dev = np.asarray(r.sample_devices)
    assert np.count_nonzero(dev == 0) == fast.iterations and np.count_nonzero(dev == 1) == slow.iterations
    assert np.all(np.diff(np.asarray(r.start_offsets_ms)) >= 0)  # merged in start order
    assert len(r.stage_samples_ms["compute_ms"]) == r.iterations


def test_run_devices_aggregate_follows_real_concurrency(core):
    """Independent devices run side by side; devices that in truth take turns do not, however many there are;
    either way the aggregate is samples / the common wall time. Checked by what the engines recorded, not by
    comparing throughputs: each call notes when it held its device (a 5 ms sleep, under a lock it may share
    with the other device). Two free devices must overlap (the runner drives them at once); two devices that
    take turns cannot, so their common wall time is at least the sum of their service times, which bounds
    the aggregate at 1 sample per 5 ms whatever the load."""

    class Locked(core.Engine):
        """A Python device that runs only while holding a lock it may share with another."""

        kind = "locked"
        model_path = "<locked>"

        def __init__(self, lock):
            super().__init__()
            self.lock = lock
            self.held: list[tuple[float, float]] = []

        def inputs(self):
            return [core.TensorInfo("x", "float32", [-1, 4])]

        def outputs(self):
            return [core.TensorInfo("y", "float32", [-1, 1])]

        def execute(self, inputs):
            with self.lock:
                t0 = time.perf_counter()
                time.sleep(0.005)
                self.held.append((t0, time.perf_counter()))
            return [inputs[0].sum(axis=1, keepdims=True)]

    def overlapping(a, b):
        """Calls of device a that overlapped a call of device b."""
        return sum(any(s0 < e1 and s1 < e0 for s1, e1 in b.held) for s0, e0 in a.held)

    st = core.RunSettings(min_iterations=20, min_duration_ms=300.0, warmup_iterations=1)
    free = [Locked(threading.Lock()), Locked(threading.Lock())]
    two_free = core.run_devices(free, _reader(core), st)
    shared = threading.Lock()
    turns = [Locked(shared), Locked(shared)]
    two_turns = core.run_devices(turns, _reader(core), st)
    assert overlapping(*free) >= 1  # side by side (a runner that drove devices one at a time: 0)
    assert overlapping(*turns) == 0  # the shared lock serialises them
    # taking turns: every measured request held the one lock for >= 5 ms inside the common wall time
    assert two_turns.wall_ms >= 5.0 * two_turns.iterations
    assert two_turns.throughput_per_s <= 200.0 * (1 + 1e-9)
    assert two_free.throughput_per_s <= 2 * 200.0 * (1 + 1e-9)
    for r, devices in ((two_free, free), (two_turns, turns)):
        assert r.throughput_per_s == pytest.approx(r.samples_processed * 1000.0 / r.wall_ms)
        assert r.iterations + r.warmup_iterations == sum(len(d.held) for d in devices)


def test_run_devices_rejects_a_shared_engine(core):
    eng = core.SimulatedEngine()
    with pytest.raises(core.InvalidArgument, match="same engine object"):
        core.run_devices([eng, eng], _reader(core), core.RunSettings())
    r = core.run_devices([eng], _reader(core), core.RunSettings(min_iterations=5, min_duration_ms=0, warmup_iterations=0))
    assert len(r.devices) == 1 and r.devices[0].iterations == r.iterations and r.start_skew_ms == 0


def test_run_benchmark_keeps_engine_stage_samples(core):
    r = core.run_benchmark(core.SimulatedEngine(service_ms=1.0), _reader(core),
                           core.RunSettings(min_iterations=10, min_duration_ms=0, warmup_iterations=1))
    comp = np.asarray(r.stage_samples_ms["compute_ms"])
    assert comp.shape == (r.iterations,) and (comp >= 1.0).all()
    assert r.stage_means_ms["compute_ms"] == pytest.approx(comp.mean())
    r = core.run_benchmark(core.SimulatedEngine(), _reader(core),
                           core.RunSettings(min_iterations=3, min_duration_ms=0, keep_samples=False))
    assert dict(r.stage_samples_ms) == {}


def test_simulated_engine_computes_row_sums(core):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = core.SimulatedEngine(service_ms=0.0).execute([x])[0]
    assert np.array_equal(y[:, 0], x.sum(axis=1))
    with pytest.raises(core.InvalidArgument, match="slots"):
        core.SimulatedEngine(slots=0)


# ------------------------------------------------------------------------------------------ the ACL emulator
@pytest.fixture(scope="module")
def acl_models(core, tmp_path_factory):
    if not hasattr(core, "AclEngine") or core.build_info()["acl"] != "emulated":
        pytest.skip("this build has no ACL emulator")

    d = tmp_path_factory.mktemp("scen")
    pb = write_tiny_pb(d / "tiny.pb", size=SIZE)
    out = {"pb": pb}
    for name, extra in (("static", []), ("dynamic", ["--dynamic-batch", "1,2,4,8"])):
        om = d / f"tiny_{name}.om"
        assert cli_main(["convert", str(pb), "--target", "om-emu", "--output", str(om), f"--input-shape=1,{SIZE},{SIZE},3",
                             "--precision-mode", "must_keep_origin_dtype", *extra]) == 0
        out[name] = om
    return out


def _bench(args: list[str], env: dict[str, str] | None = None, timeout: int = 180) -> subprocess.CompletedProcess:
    full = dict(os.environ)
    full["PYTHONPATH"] = os.pathsep.join([str(config.PROJECT_ROOT), full.get("PYTHONPATH", "")])
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "pymfn.bench", *args], capture_output=True, text=True, env=full,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_emulator_devices_scale_and_report_one_clock(acl_models, tmp_path):
    """--device 0,1 on the emulator (device timing model: 8 ms per execute): the aggregate comes from one
    clock, each device has its own figures, and two devices really do twice the work of one."""
    env = {"PYMFN_ACL_EMU_DEVICES": "4", "PYMFN_ACL_EMU_EXEC_MS": "8"}
    docs = {}
    for devices in ("0", "0,1"):
        out = tmp_path / f"thr_{devices.replace(',', '')}.json"
        proc = _bench(["throughput", "--model", str(acl_models["static"]), "--batch", "1", "--inflight", "1",
                       "--device", devices, "--min-duration", "0.8", "--min-iterations", "20", "--warmup", "2",
                       "--json", str(out)], env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        docs[devices] = json.loads(out.read_text())
    two = docs["0,1"]
    assert [d["name"] for d in two["devices"]] == ["acl device 0", "acl device 1"]
    assert two["throughput_per_s"] == pytest.approx(two["samples_processed"] * 1000.0 / two["wall_ms"])
    assert two["wall_ms"] == pytest.approx(max(d["last_end_ms"] for d in two["devices"]))
    assert sum(d["samples_processed"] for d in two["devices"]) == two["samples_processed"]
    assert len(two["sample_devices"]) == len(two["samples_ms"]) == two["iterations"]
    assert "one execute at a time per device, each at least 8 ms" in two["engine_properties"]["emulator_device_model"]
    assert all(d["latency_ms"]["min"] >= 8.0 for d in two["devices"])
    # 8 ms per execute is slept, not computed: two devices do about twice one device's work
    assert two["throughput_per_s"] > 1.5 * docs["0"]["throughput_per_s"]
    assert "compute_ms" in two["stage_stats_ms"]


def test_emulator_bad_device_settings_are_one_line_errors(acl_models):
    proc = _bench(["latency", "--model", str(acl_models["static"]), "--min-duration", "0.1"],
                  {"PYMFN_ACL_EMU_EXEC_MS": "fast"})
    assert proc.returncode == 1 and "PYMFN_ACL_EMU_EXEC_MS='fast'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = _bench(["latency", "--model", str(acl_models["static"]), "--device", "0,3", "--min-duration", "0.1"],
                  {"PYMFN_ACL_EMU_DEVICES": "2"})
    assert proc.returncode == 1 and "device 3 does not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_latency_on_an_om_reports_msame_scope_per_request(acl_models, tmp_path):
    out = tmp_path / "lat.json"
    proc = _bench(["latency", "--model", str(acl_models["static"]), "--min-duration", "0.2", "--min-iterations", "30",
                   "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    comp = doc["stage_samples_ms"]["compute_ms"]
    assert len(comp) == doc["iterations"] and set(doc["stage_samples_ms"]) == {"h2d_ms", "compute_ms", "d2h_ms"}
    assert doc["stage_stats_ms"]["compute_ms"]["median"] == pytest.approx(float(np.median(comp)))
    assert "Stage compute" in proc.stdout


def test_multistream_cli_on_a_dynamic_batch_om(acl_models, tmp_path):
    out = tmp_path / "ms.json"
    proc = _bench(["multistream", "--model", str(acl_models["dynamic"]), "--samples-per-query", "4",
                   "--interval-ms", "20", "--min-duration", "0.5", "--min-queries", "10", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["scenario"] == "multi-stream" and doc["batch"] == 4 and doc["samples_per_query"] == 4
    assert doc["requests"] == doc["queries"] and doc["latency_bound_ms"] == 20.0
    raw = doc["queries_raw"]
    assert len(raw["scheduled_ms"]) == len(raw["completed_ms"]) == doc["queries"]
    assert "RESULT:" in proc.stdout


# ------------------------------------------------------------------------------------------ CLI (host engine)
@pytest.fixture(scope="module")
def tiny_pb(tmp_path_factory) -> Path:
    return write_tiny_pb(tmp_path_factory.mktemp("scen_pb") / "tiny.pb", size=SIZE)


def test_server_with_two_openvino_requests_in_flight(tiny_pb, tmp_path):
    """The server scenario starts requests on its scheduler thread and awaits each slot on its own thread:
    OpenVINOEngine's slots must be usable that way (each slot its own byte of bookkeeping). Every scheduled
    query completes, and each result is the model's output for its own sample."""
    out = tmp_path / "s2.json"
    proc = _bench(["server", "--model", str(tiny_pb), "--qps", "400", "--p99-ms", "100", "--min-duration", "0.5",
                   "--min-queries", "100", "--threads", "1", "--inflight", "2", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]  # a run's VALID/INVALID is reported, not an exit code
    doc = json.loads(out.read_text())
    assert doc["queries"] >= 100 and len(doc["queries_raw"]["completed_ms"]) == doc["queries"]


def test_server_cli_json_has_raw_query_times(tiny_pb, tmp_path):
    out, plot = tmp_path / "s.json", tmp_path / "s.png"
    proc = _bench(["server", "--model", str(tiny_pb), "--qps", "200", "--p99-ms", "50", "--min-duration", "0.5",
                   "--min-queries", "50", "--threads", "1", "--json", str(out), "--plot", str(plot)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    raw = doc["queries_raw"]
    n = doc["queries"]
    assert n >= 50 and all(len(raw[k]) == n for k in ("scheduled_ms", "issued_ms", "ready_ms", "completed_ms", "device"))
    lat = np.asarray(raw["completed_ms"]) - np.asarray(raw["scheduled_ms"])
    assert doc["latency_ms"]["p99"] == pytest.approx(float(np.percentile(lat, 99)))
    assert doc["result"] in ("VALID", "INVALID") and doc["settings"]["target_qps"] == 200.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "RESULT:" in proc.stdout and "issue delay" in proc.stdout


@pytest.mark.slow
def test_server_find_peak_prints_a_valid_peak_and_its_curve(tiny_pb, tmp_path):
    out, plot = tmp_path / "peak.json", tmp_path / "peak.png"
    proc = _bench(["server", "--find-peak", "--model", str(tiny_pb), "--p99-ms", "30", "--probe-duration", "0.4",
                   "--min-duration", "1", "--min-queries", "50", "--peak-runs", "1", "--peak-tolerance", "0.1",
                   "--threads", "1", "--json", str(out), "--plot", str(plot)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert doc["peak_qps"] > 0 and doc["result"] == "VALID"
    confirms = [c for c in doc["curve"] if c["role"] == "confirm"]
    assert confirms[-1]["valid"] and confirms[-1]["target_qps"] == doc["peak_qps"]
    assert {c["role"] for c in doc["curve"]} >= {"probe", "confirm"}
    assert doc["peak_run"]["valid"] and doc["peak_run"]["target_qps"] == doc["peak_qps"]
    assert "PEAK:" in proc.stdout and "VALID" in proc.stdout
    # the M/G/c ceiling from the peak run's own service times: that run met the bound, so its service times
    # alone do too and some rate > 0 meets it; no single-stream run (--p99-ms given): no back-to-back ceiling
    ceilings = doc["ceilings"]
    run = ceilings["peak_run_service"]
    assert ceilings["servers"] == 1 and run["bound_ms"] == 30 and run["service_percentile_ms"] <= 30
    assert run["qps"] > 0 and run["peak_over_ceiling"] == pytest.approx(doc["peak_qps"] / run["qps"])
    assert "back_to_back_service" not in ceilings
    assert "M/G/1 ceilings at the bound" in proc.stdout and "the peak is" in proc.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_find_peak_confirmations_end_at_early_stopping_when_it_decides(tiny_pb, tmp_path):
    """A confirmation first runs early stopping's minimum of queries (44 at p90, under --min-queries 300) and
    counts as VALID only when early stopping decides the bound holds; an undecided one is redone in full."""
    out = tmp_path / "peak.json"
    proc = _bench(["server", "--find-peak", "--model", str(tiny_pb), "--p99-ms", "50", "--percentile", "90",
                   "--probe-duration", "0.4", "--min-duration", "0.02", "--min-queries", "300", "--peak-runs", "1",
                   "--peak-tolerance", "0.2", "--threads", "1", "--json", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    confirms = [c for c in doc["curve"] if c["role"] == "confirm"]
    assert confirms and all(c["queries"] >= 44 for c in confirms)
    lines = [line for line in doc["progress"] if "] confirm " in line]
    assert len(lines) == len(confirms)
    run = doc["peak_run"]
    es = run["early_stopping"]
    if "decided by early stopping" in lines[-1]:  # ended early, with none or few queries over the bound
        assert es["decided"] and es["needed_queries"] <= run["queries"]
        assert "decided by early stopping" in proc.stdout
    else:  # undecided after the short run: the full run confirmed it
        assert any("undecided by early stopping" in line for line in lines) and run["queries"] >= 300


def test_host_lanes_with_device_option(tiny_pb, tmp_path):
    out = tmp_path / "lanes.json"
    proc = _bench(["throughput", "--model", str(tiny_pb), "--batch", "2", "--inflight", "1", "--device", "0,1",
                   "--min-duration", "0.3", "--min-iterations", "20", "--json", str(out)])
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(out.read_text())
    assert [d["name"] for d in doc["devices"]] == ["openvino lane 0 (1 thread)", "openvino lane 1 (1 thread)"] or \
        all(d["name"].startswith("openvino lane") for d in doc["devices"])
    assert doc["throughput_per_s"] == pytest.approx(doc["samples_processed"] * 1000.0 / doc["wall_ms"])
    assert "Devices (2, one clock)" in proc.stdout


@pytest.mark.parametrize("argv, needle", [
    (["server", "--p99-ms", "10"], "--qps and --p99-ms are required"),
    (["server", "--qps", "10", "--p99-ms", "0"], "--p99-ms must be > 0"),
    (["server", "--qps", "nan", "--p99-ms", "5"], "--qps must be > 0"),
    (["server", "--qps", "10", "--p99-ms", "5", "--percentile", "100"], "--percentile must be in (0, 100)"),
    (["server", "--qps", "10", "--p99-ms", "5", "--min-queries", "0"], "--min-queries must be >= 1"),
    (["server", "--qps", "10", "--p99-ms", "5", "--device", "0,0"], "--device 0,0: a device is listed twice"),
    (["server", "--qps", "10", "--p99-ms", "5", "--device", "a"], "--device a: expected device ids"),
    (["server", "--qps", "10", "--p99-ms", "5", "--find-peak", "--peak-tolerance", "0.9"], "--peak-tolerance"),
    (["multistream", "--interval-ms", "-1"], "--interval-ms must be > 0"),
    (["multistream", "--samples-per-query", "3", "--batch", "2"], "is not a multiple of it"),
    (["latency", "--engine", "tf", "--device", "0,1"], "the tf engine has no devices"),
])
def test_scenario_options_are_one_line_errors(tiny_pb, argv, needle, capsys):
    from pymfn.bench.__main__ import main as bench_main

    rc = bench_main([*argv, "--model", str(tiny_pb), "--min-duration", "0.1"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(lines) == 1, lines
    assert lines[0].startswith("pymfn bench ") and needle in lines[0], lines[0]


def test_server_batching_on_a_dynamic_batch_om(acl_models, tmp_path):
    """Device timing model, 20 ms per execute whatever the batch: one query per request serves at most 50 QPS, so
    at 120 QPS the unbatched server falls behind while up to 8 queries per request keep up. What is asserted is
    structural (a loaded host only makes requests slower, which merges more queries): queries are carried once
    each, requests run an offered batch size, the batched run merges queries and its p99 is far below the
    unbatched one's."""
    env = {"PYMFN_ACL_EMU_EXEC_MS": "20"}
    docs = {}
    for max_batch in (1, 8):
        out = tmp_path / f"server_{max_batch}.json"
        proc = _bench(["server", "--model", str(acl_models["dynamic"]), "--qps", "120", "--p99-ms", "150",
                       "--min-duration", "2", "--min-queries", "150", "--max-batch", str(max_batch),
                       "--json", str(out), "--csv", str(tmp_path / f"server_{max_batch}.csv")], env)
        assert proc.returncode in (0, 2), proc.stderr[-2000:]  # 2: INVALID
        docs[max_batch] = json.loads(out.read_text())
    plain, batched = docs[1], docs[8]
    assert "batching" not in plain and plain["requests"] == plain["queries"]
    b, raw = batched["batching"], batched["requests_raw"]
    assert b["max_batch"] == 8 and b["mean_queries_per_request"] > 1.5
    assert sum(raw["queries"]) == batched["queries"] and len(raw["queries"]) == batched["requests"]
    assert all(1 <= q <= rows <= 8 and rows in (1, 2, 4, 8) and (rows == 1 or rows // 2 < q)
               for q, rows in zip(raw["queries"], raw["rows"]))  # the smallest offered size holding the queries
    assert b["padding_rows"] == sum(raw["rows"]) - sum(raw["queries"])
    assert batched["samples_processed"] == batched["queries"]
    assert batched["latency_ms"]["p99"] < plain["latency_ms"]["p99"] / 3
    header = (tmp_path / "server_8.csv").read_text().splitlines()[0].split(",")
    assert {"max_batch", "mean_queries_per_request", "padding_rows"} <= set(header)
    assert batched["settings"]["max_batch"] == 8


def test_server_batching_options_are_checked(acl_models):
    base = ["server", "--model", str(acl_models["dynamic"]), "--qps", "50", "--p99-ms", "100", "--min-duration", "0.2",
            "--min-queries", "10"]
    for extra, needle in ((["--max-batch", "3"], "--max-batch = 3 needs requests of 3 rows"),
                          (["--max-batch", "0"], "--max-batch must be in 1..4096"),
                          (["--max-queue-delay-ms", "-1"], "--max-queue-delay-ms must be in 0.0..60000.0"),
                          (["--max-batch", "2", "--harness", "loadgen"], "--max-batch is not available with --harness loadgen"),
                          (["--keep-warm", "300"], "--keep-warm must be in 0..256")):
        proc = _bench(base + extra)
        assert proc.returncode == 1 and needle in proc.stderr, (extra, proc.stderr[-1500:])
        assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_find_peak_with_batching_prints_its_ceiling_and_verdict(acl_models, monkeypatch):
    """find-peak with up to 8 queries per request on a dynamic-batch om (device timing model 20 ms per execute,
    whatever the batch): the offline capacity is that of 8-query requests, the peak comes with the batched
    M/G/1 ceiling, and the verdict says batching helped because a full request serves 8 queries in the time of
    one. Every figure compared is a ratio of work the timing model fixes, not a timing of the host."""
    import pymfn.bench as b

    monkeypatch.setenv("PYMFN_ACL_EMU_EXEC_MS", "20")
    peak = b.find_peak(acl_models["dynamic"], p99_ms=150.0, budget_s=120.0,
                       settings=b.ScenarioSettings(min_duration_s=1.5, min_queries=100, max_batch=8),
                       search=b.PeakSearchSettings(peak_runs=1, probe_duration_s=1.0))
    doc = peak.document
    assert peak.peak_qps, peak.stop_reason
    verdict = doc["batching"]
    # one-query requests back to back: <= 50 QPS; requests of 8: up to 8x that
    assert verdict["batch_speedup"] > 4 and verdict["one_query_capacity_qps"] <= 1000.0 / 20 * 1.01
    assert verdict["helped"] and peak.peak_qps > 2 * verdict["unbatched_ceiling_qps"]
    ceilings = doc["ceilings"]
    assert ceilings["max_batch"] == 8 and ceilings["peak_run_service"]["qps"] > verdict["unbatched_ceiling_qps"]
    report = peak.report()
    assert "batching helped" in report and "batched, from the peak run's requests" in report
    assert doc["peak_run"]["batching"]["mean_queries_per_request"] > 1


def test_server_batching_on_openvino_runs_each_request_at_its_own_row_count(core, tmp_path):
    """A dynamic-batch model on OpenVINO, batched by the server: compiled once for 1..8 rows, each request runs
    exactly the queries it carries (no padding), and every recorded request's outputs equal a static-batch
    engine's on the same rows."""
    pb = write_tiny_pb(tmp_path / "tiny.pb", size=SIZE)
    inner = core.OpenVINOEngine(str(pb), threads=1)
    rec = core.RecordingEngine(inner, fraction=1.0, max_records=4096)
    images = np.random.default_rng(3).uniform(-1, 1, (40, SIZE, SIZE, 3)).astype(np.float32)
    st = core.RunSettings(target_qps=2000.0, latency_bound_ms=60000.0, min_query_count=200, min_duration_ms=0.0,
                          warmup_iterations=8, max_batch=8)
    r = core.run_server(rec, core.ArrayDataset(images).reader(1), st)
    assert inner.batch_per_request and inner.properties()["batch_per_request"] == "1..8"
    rows = np.asarray(r.request_rows)
    assert (rows == np.asarray(r.request_queries)).all() and r.padding_rows == 0
    assert sum(np.asarray(r.request_queries)) == r.queries == r.samples_processed
    records = rec.records()
    assert {int(x["rows"]) for x in records} > {8}  # several row counts ran, not only the full one
    static = core.OpenVINOEngine(str(pb), threads=1)
    for x in records:
        (want,) = static.execute([np.ascontiguousarray(x["inputs"][0])])
        np.testing.assert_allclose(x["outputs"][0], want, rtol=1e-5, atol=1e-5)
