"""Fleet throughput (pymfn.bench.fleet) on a local 2-node Ray cluster of emulated hosts, each with 2 emulated
Ascend devices: one runner per node, the aggregate on the coordinator's clock, Ctrl-C keeps what was measured.
Skipped when Ray is not installed (extra pymfn[ray])."""
from __future__ import annotations

import _thread
import json
import math
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (extra pymfn[ray])")

import pymfn.bench as b  # noqa: E402
from pymfn.bench.fleet import FleetResult, FleetSettings, HostRunner, fleet_throughput  # noqa: E402
from pymfn.errors import CommandError  # noqa: E402

pytestmark = pytest.mark.slow

EXEC_MS = 20  # the emulator's device timing model: each execute of a device lasts at least this long


@pytest.fixture(scope="module")
def om(core, tmp_path_factory):
    if not hasattr(core, "AclEngine") or core.build_info()["acl"] != "emulated":
        pytest.skip("this build has no ACL emulator")
    from tests.test_acl_client import write_om

    return write_om(tmp_path_factory.mktemp("fleet") / "tiny.om", "f32", None)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture
def emulated_devices(monkeypatch):
    # forwarded to the runners through their runtime environment (FORWARDED_ENV_PREFIXES)
    monkeypatch.setenv("PYMFN_ACL_EMU_DEVICES", "2")
    monkeypatch.setenv("PYMFN_ACL_EMU_EXEC_MS", str(EXEC_MS))


def _runner_processes_end(wait_s: float = 60.0) -> bool:
    """No runner process (title ``ray::HostRunner``) is left: each exits soon after the run kills it."""
    deadline = time.monotonic() + wait_s
    while True:
        left = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and (proc / "cmdline").read_bytes().startswith(b"ray::HostRunner") and \
                        " Z " not in (proc / "stat").read_text().split(")", 1)[1][:4]:
                    left.append(proc.name)
            except OSError:
                continue
        if not left or time.monotonic() > deadline:
            return not left
        time.sleep(0.5)


def _settings(**kw) -> b.RunSettings:
    base = dict(devices=(0, 1), inflight=1, min_duration_s=1.0, min_iterations=20, warmup_iterations=2,
                max_duration_s=60.0)
    return b.RunSettings(**{**base, **kw})


def test_two_hosts_two_devices_on_one_clock(cluster, om, emulated_devices, tmp_path):
    r = fleet_throughput(om, batch=1, settings=_settings())
    d = r.to_dict()
    assert isinstance(r, FleetResult) and not r.interrupted and d["stop_reason"] == "minimums met"
    hosts = r.hosts
    assert len(hosts) == 2 and len({h["node_id"] for h in hosts}) == 2  # one runner per node
    assert {h["node_id"] for h in hosts} == {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    for h in hosts:
        assert h["devices"] == ["acl device 0", "acl device 1"] and len(h["devices_detail"]) == 2
        assert sum(dev["samples_processed"] for dev in h["devices_detail"]) == h["samples_processed"]
        assert len(h["samples_ms"]) == h["iterations"] >= 20
        # the timing model reached the runner (forwarded environment): no execute shorter than it, so no
        # device exceeds 1000 / EXEC_MS samples/s (a loaded machine can only be slower)
        assert min(h["samples_ms"]) >= EXEC_MS * 0.999
        assert all(dev["throughput_per_s"] <= 1000.0 / EXEC_MS * 1.01 for dev in h["devices_detail"])
        # the window encloses the runner's own measured wall time
        assert h["window_end_ms"] - h["window_start_ms"] >= h["wall_ms"]
        assert abs(h["clock_offset_ms"]) < 1000.0 and h["clock_uncertainty_ms"] >= 0
    assert "each at least 20 ms" in d["engine_properties"]["emulator_device_model"]
    # the aggregate: all samples over the common window -- never the sum of the hosts' rates
    assert d["samples_processed"] == sum(h["samples_processed"] for h in hosts)
    starts, ends = [h["window_start_ms"] for h in hosts], [h["window_end_ms"] for h in hosts]
    assert d["wall_ms"] == pytest.approx(max(ends) - min(starts))
    assert r.throughput_per_s == pytest.approx(d["samples_processed"] * 1000.0 / d["wall_ms"])
    assert r.throughput_per_s <= sum(h["throughput_per_s"] for h in hosts) * 1.0001
    assert r.start_skew_ms == pytest.approx(max(starts) - min(starts))
    assert r.end_skew_ms == pytest.approx(max(ends) - min(ends))
    # renders itself
    text = r.report()
    assert "Aggregate" in text and "2 host(s) x 2 device(s)" in text and "never a sum of per-host rates" in text
    doc = json.loads(r.to_json(tmp_path / "fleet.json"))
    assert doc["hosts"][0]["samples_ms"] and all(math.isfinite(x) for x in doc["hosts"][1]["samples_ms"])
    rows = r.to_csv().splitlines()
    assert len(rows) == 4 and rows[-1].startswith("all,")
    assert _runner_processes_end()


def test_hosts_limits_the_runners_and_too_many_is_refused(cluster, om, emulated_devices):
    r = fleet_throughput(om, batch=1, settings=_settings(devices=(1,), min_duration_s=0.3),
                         fleet=FleetSettings(hosts=1))
    assert len(r.hosts) == 1 and r.hosts[0]["devices"] == ["acl device 1"]
    with pytest.raises(b.SettingError, match=r"`hosts` 3: the cluster has 2 alive node\(s\) with a runner's"):
        fleet_throughput(om, batch=1, settings=_settings(), fleet=FleetSettings(hosts=3))


def test_nodes_without_the_runner_resources_get_no_runner(cluster, om, emulated_devices):
    lines: list[str] = []
    with pytest.raises(b.SettingError, match="no alive node has CPU=1, NPU=1"):
        fleet_throughput(om, batch=1, settings=_settings(), fleet=FleetSettings(actor_resources={"NPU": 1}),
                         log=lines.append)
    assert any("2 of 2 node(s) lack a runner's resources" in line for line in lines)


def test_a_runner_that_cannot_open_its_device_is_one_clear_error(cluster, om, monkeypatch):
    monkeypatch.setenv("PYMFN_ACL_EMU_DEVICES", "1")
    with pytest.raises(CommandError) as err:
        fleet_throughput(om, batch=1, settings=_settings(devices=(0, 1)))
    message = str(err.value)
    assert message.startswith("the fleet runner on ") and "could not open the model" in message
    assert "device 1 does not exist" in message and "\n" not in message
    assert _runner_processes_end()  # killed, not left behind as worker processes


def test_ctrl_c_stops_every_host_and_keeps_what_was_measured(cluster, om, emulated_devices):
    """Ctrl-C during the measured windows: every runner stops early, the partial figures come back."""
    measuring = threading.Event()

    def log(line: str) -> None:
        if "common start" in line:
            measuring.set()

    def interrupt() -> None:
        if measuring.wait(120):
            threading.Event().wait(1.5)  # into the windows (the common start is ~1 s after the line)
            _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()
    r = fleet_throughput(om, batch=1, settings=_settings(min_duration_s=50.0), log=log)
    assert r.interrupted and r.to_dict()["stop_reason"] == "interrupted"
    assert len(r.hosts) == 2 and all(h["iterations"] > 0 for h in r.hosts)
    assert r.to_dict()["wall_ms"] < 40_000  # stopped, not run to its 50 s minimum


def test_runner_checks_the_model_bytes_it_was_sent(om):
    files = {om.name: om.read_bytes()}
    runner = HostRunner(om.name, files, "0" * 64, engine=None, precision="f32", batch=1, input=None,
                        settings=_settings())
    assert "with other bytes (sha256)" in runner.host()["error"]


def test_fleet_settings_are_checked():
    with pytest.raises(b.SettingError, match="`local_nodes`"):
        FleetSettings(address="ray://head:10001", local_nodes=2)
    with pytest.raises(b.SettingError, match="`actor_resources`"):
        FleetSettings(actor_resources={"NPU": 0})
