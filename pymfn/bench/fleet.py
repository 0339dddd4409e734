"""Throughput of a fleet of hosts on one clock, each host's runner a Ray actor (optional extra ``pymfn[ray]``).

:func:`fleet_throughput` places one runner per Ray node (``NodeAffinitySchedulingStrategy``): the runner opens
the model (shipped through Ray's object store, checked by sha256) on its host's devices and runs the same
native multi-device throughput loop as ``pymfn bench throughput --device``. The coordinator (the driver)

1. estimates each host's clock offset from a few round trips (the one with the shortest round trip; its half
   is the offset's uncertainty),
2. warms every runner up, then asks all of them to start at one instant of its own clock (converted to each
   host's clock),
3. places each host's measured window -- from entering its run to returning from it, a superset of its first
   measured start .. last completion -- on its own clock, and reports the aggregate as all samples over the
   common wall time from the earliest window start to the latest window end.

The aggregate is never a sum of per-host rates: a host that starts late or stops early widens the common
window instead of inflating the figure. Per-host figures, their devices and the start/end skews are reported
beside it.
"""
from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

from pymfn.bench import report
from pymfn.bench.perf import THROUGHPUT_DEFAULTS, DocumentResult, Log
from pymfn.bench.settings import RunSettings, SettingError, check_int, check_number
from pymfn.errors import CommandError
from pymfn.bench.target import InputLike, ModelLike, check_batch, choose_batch, model_source

#: Environment variables forwarded to the runners (the ACL emulator's device model and faults, OpenVINO's ISA cap).
FORWARDED_ENV_PREFIXES = ("PYMFN_ACL_EMU_", "ONEDNN_")


@dataclass(frozen=True)
class FleetSettings:
    """Where the fleet is and how its runners are placed.

    >>> FleetSettings(hosts=2).hosts
    2
    >>> FleetSettings(local_nodes=0)
    Traceback (most recent call last):
    ...
    pymfn.bench.settings.SettingError: `local_nodes` must be an integer in 1..16, got 0
    """

    #: a Ray cluster address ("auto", "ray://head:10001", "10.0.0.1:6379"); None: a Ray started on this machine
    address: str | None = None
    #: use this many of the cluster's alive nodes (None: every alive node)
    hosts: int | None = None
    #: without ``address``: start a local cluster of this many Ray nodes on this machine
    #: (``ray.cluster_utils.Cluster``; emulated hosts for trying the fleet path without one)
    local_nodes: int | None = None
    #: CPUs each runner reserves on its node, and custom resources (e.g. {"NPU": 1} on Ascend hosts)
    actor_cpus: float = 1.0
    actor_resources: dict[str, float] = field(default_factory=dict)
    #: the coordinated start is at least this far ahead of the moment it is announced
    start_margin_s: float = 1.0
    #: round trips per host for the clock-offset estimate
    clock_pings: int = 8
    #: every runner must have opened its model within this long
    start_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.hosts is not None:
            check_int("hosts", self.hosts, 1, 1024)
        if self.local_nodes is not None:
            check_int("local_nodes", self.local_nodes, 1, 16)
            if self.address not in (None, "local"):
                raise SettingError("`local_nodes` starts a cluster on this machine; it cannot go with `address`")
        check_number("actor_cpus", self.actor_cpus, 0.0)
        for name, value in self.actor_resources.items():
            if not name or not isinstance(value, (int, float)) or not value > 0:
                raise SettingError(f"`actor_resources` needs NAME: N > 0, got {name!r}: {value!r}")
        check_number("start_margin_s", self.start_margin_s, 0.05, high=600.0)
        check_int("clock_pings", self.clock_pings, 1, 1000)
        check_number("start_timeout_s", self.start_timeout_s, 0.0, low_open=True)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise CommandError("the fleet runs on Ray, which is not installed (pip install 'pymfn[ray]')") from None
    return ray


def _model_files(path: Path) -> dict[str, bytes]:
    """The files a model consists of, by name: an OpenVINO .xml brings its .bin."""
    files = {path.name: path.read_bytes()}
    if path.suffix.lower() == ".xml" and path.with_suffix(".bin").exists():
        files[path.with_suffix(".bin").name] = path.with_suffix(".bin").read_bytes()
    return files


def _sha256(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


class HostRunner:
    """One host's runner (a Ray actor; plain class here so it can be tested without Ray).

    Opening the model never raises out of the constructor: the failure is kept and reported by :meth:`host`
    (an actor whose constructor raises is torn down by Ray's own exit path, which can leave the worker process
    spinning after the cluster is gone)."""

    def __init__(self, model_name: str, files: dict[str, bytes], sha256: str, *, engine: str | None, precision: str,
                 batch: int, input: InputLike, settings: RunSettings) -> None:
        self.settings = settings
        self.stop_flag: Any = None
        self.lock = threading.Lock()
        self.stopped = False
        self.target: Any = None
        self.error: str | None = None
        try:
            self._open(model_name, files, sha256, engine, precision, batch, input)
        except Exception as exc:  # noqa: BLE001 - reported by host()
            from pymfn.errors import one_line

            self.error = one_line(exc)

    def _open(self, model_name: str, files: dict[str, bytes], sha256: str, engine: str | None, precision: str,
              batch: int, input: InputLike) -> None:
        from pymfn.bench.target import open_target

        if _sha256(files) != sha256:
            raise RuntimeError(f"the model {model_name} arrived on {socket.gethostname()} with other bytes (sha256)")
        self.folder = tempfile.TemporaryDirectory(prefix="pymfn-fleet-")
        for name, data in files.items():
            (Path(self.folder.name) / name).write_bytes(data)
        self.model_path = Path(self.folder.name) / model_name
        self.target = open_target(str(self.model_path), engine=engine, precision=precision, input=input,
                                  settings=self.settings, batch_for=lambda e: choose_batch(e, batch))

    def host(self) -> dict[str, Any]:
        """Who this runner is: node id, host name, pid, devices and batch; ``error`` when it could not open."""
        try:
            import ray

            node_id = ray.get_runtime_context().get_node_id()
        except Exception:  # noqa: BLE001 - outside Ray
            node_id = None
        opened = self.target is not None
        return {"node_id": node_id, "hostname": socket.gethostname(), "pid": os.getpid(), "error": self.error,
                "devices": self.target.names if opened else [], "batch": self.target.batch if opened else None}

    def clock(self) -> float:
        return time.time()

    def warm_up(self) -> int:
        """The warm-up the measured run leaves out (so every host measures from the common start)."""
        st = self.settings
        if st.warmup_iterations == 0 and st.warmup_ms == 0:
            return 0
        native = st.to_core(self.target.core, self.target.batch)
        native.min_iterations = max(1, st.warmup_iterations)
        native.min_duration_ms = st.warmup_ms
        native.warmup_iterations, native.warmup_ms = 0, 0.0
        result = self._run(native)
        return int(result.iterations)

    def measure(self, start_at: float) -> dict[str, Any]:
        """Wait until ``start_at`` (this host's clock), run the measured window, return it and its document."""
        from pymfn.bench.target import run_meta

        while True:
            left = start_at - time.time()
            if left <= 0 or self.stopped:
                break
            time.sleep(min(left, 0.05) if left > 0.002 else 0)
        native = self.settings.to_core(self.target.core, self.target.batch)
        native.warmup_iterations, native.warmup_ms = 0, 0.0
        entered = time.time()
        result = self._run(native)
        returned = time.time()
        doc = report.result_to_json(result, run_meta(self.target, "throughput"))
        return {"entered": entered, "returned": returned, "late_s": entered - start_at, "document": doc}

    def _run(self, native: Any) -> Any:
        core = self.target.core
        with self.lock:
            self.stop_flag = core.StopFlag()
            if self.stopped:
                self.stop_flag.request()
        try:
            return core.run_devices(self.target.engines, self.target.reader(), native, names=self.target.names,
                                    stop=self.stop_flag)
        except core.RunInterrupted as exc:  # stopped by the coordinator: keep what was measured
            if exc.result is None:
                raise
            return exc.result

    def stop(self) -> None:
        """Ends a running window early (the coordinator's Ctrl-C); the window returns what it measured."""
        with self.lock:
            self.stopped = True
            if self.stop_flag is not None:
                self.stop_flag.request()


@dataclass
class FleetResult(DocumentResult):
    """Aggregate throughput of several hosts on the coordinator's clock, with each host's own figures."""

    document: dict[str, Any]
    settings: RunSettings
    kind: ClassVar[str] = "fleet throughput"

    @property
    def throughput_per_s(self) -> float:
        """All samples of all hosts over the common wall time (never a sum of per-host rates)."""
        return float(self.document["throughput_per_s"])

    @property
    def hosts(self) -> list[dict[str, Any]]:
        return list(self.document["hosts"])

    @property
    def start_skew_ms(self) -> float:
        return float(self.document["start_skew_ms"])

    @property
    def end_skew_ms(self) -> float:
        return float(self.document["end_skew_ms"])

    @property
    def samples_processed(self) -> int:
        return int(self.document["samples_processed"])

    def report(self) -> str:
        d = self.document
        title = (f"pymfn throughput on a fleet: {d['engine']} engine, batch {d['batch']}, {d['precision']}, "
                 f"{len(d['hosts'])} host(s) x {len(d['hosts'][0]['devices']) if d['hosts'] else 0} device(s)")
        lines = ["=" * len(title), title, "=" * len(title),
                 f"Model                 {d['model']} ({d['model_description']}, sha256 {d['model_sha256'][:12]})",
                 f"Aggregate             {d['throughput_per_s']:.1f} samples/s = {d['samples_processed']} samples / "
                 f"{d['wall_ms'] / 1000:.3f} s common wall (coordinator's clock)",
                 f"Skew                  start {d['start_skew_ms']:.1f} ms, end {d['end_skew_ms']:.1f} ms; clock "
                 f"offsets known to +/- {d['clock_uncertainty_ms']:.2f} ms",
                 "", "Hosts:"]
        width = max((len(h["hostname"]) for h in d["hosts"]), default=4)
        for i, h in enumerate(d["hosts"]):
            lat = h["latency_ms"]
            lines.append(f"  [{i}] {h['hostname']:<{width}}  {h['throughput_per_s']:9.1f} samples/s over its own "
                         f"{h['wall_ms'] / 1000:.3f} s  ({h['samples_processed']} samples, median {lat['median']:.3f} ms, "
                         f"p99 {lat['p99']:.3f} ms; window {h['window_start_ms']:+.1f} .. {h['window_end_ms']:.1f} ms; "
                         f"clock offset {h['clock_offset_ms']:+.2f} ms)")
            for dev in h.get("devices_detail", []):
                lines.append(f"        {dev['name']}: {dev['throughput_per_s']:.1f} samples/s, {dev['iterations']} "
                             f"requests")
        lines += ["", "Metrics:"]
        lines += [f"  {name:<20}  {text}" for name, text in FLEET_METRICS]
        for w in d.get("warnings", []):
            lines.append(f"[W] {w}")
        return "\n".join(lines)

    def csv_rows(self) -> list[dict[str, Any]]:
        """One row per host, then the aggregate (host "all")."""
        rows = []
        for i, h in enumerate(self.document["hosts"]):
            rows.append({"host": i, "hostname": h["hostname"], "devices": len(h["devices"]),
                         "samples_processed": h["samples_processed"], "wall_ms": h["wall_ms"],
                         "throughput_per_s": h["throughput_per_s"], "window_start_ms": h["window_start_ms"],
                         "window_end_ms": h["window_end_ms"], "clock_offset_ms": h["clock_offset_ms"],
                         **{f"latency_{k}_ms": v for k, v in h["latency_ms"].items()}})
        d = self.document
        rows.append({"host": "all", "hostname": "", "devices": sum(len(h["devices"]) for h in d["hosts"]),
                     "samples_processed": d["samples_processed"], "wall_ms": d["wall_ms"],
                     "throughput_per_s": d["throughput_per_s"], "start_skew_ms": d["start_skew_ms"],
                     "end_skew_ms": d["end_skew_ms"]})
        return rows


FLEET_METRICS = [
    ("aggregate", "all samples of all hosts / the common wall time from the earliest host's window start to the "
                  "latest host's window end, on the coordinator's clock; never a sum of per-host rates"),
    ("window", "a host's measured run from entering it to returning from it (ms from the common start), on the "
               "coordinator's clock after the host's clock offset is removed"),
    ("per host", "each host's samples over its own runner wall time (first measured start .. last completion)"),
    ("skew", "start: spread of the hosts' window starts; end: spread of their window ends"),
    ("clock offset", "host clock - coordinator clock from the round trip with the shortest time; uncertainty is "
                     "half that round trip"),
]


def _estimate_offset(ray: Any, runner: Any, pings: int) -> tuple[float, float]:
    """(offset s = host clock - coordinator clock, uncertainty s) from the shortest of ``pings`` round trips."""
    best: tuple[float, float] | None = None
    for _ in range(pings):
        sent = time.time()
        remote = ray.get(runner.clock.remote())
        back = time.time()
        rtt = back - sent
        if best is None or rtt < best[1]:
            best = (remote - (sent + back) / 2, rtt)
    assert best is not None
    return best[0], best[1] / 2


def _start_ray(ray: Any, fleet: FleetSettings) -> tuple[Any, Any]:
    """Connect to (or start) Ray; returns (cluster to shut down or None, whether we initialised Ray)."""
    import logging

    if ray.is_initialized():
        return None, False
    if fleet.local_nodes:
        from ray.cluster_utils import Cluster

        cpus = max(1.0, fleet.actor_cpus)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
        for _ in range(fleet.local_nodes - 1):
            cluster.add_node(num_cpus=cpus)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.WARNING)
        return cluster, True
    ray.init(address=None if fleet.address in (None, "local") else fleet.address, log_to_driver=False,
             include_dashboard=False, logging_level=logging.WARNING)
    return None, True


def fleet_throughput(model: ModelLike, *, batch: int = 16, precision: str = "f32", engine: str | None = None,
                     input: InputLike = None, settings: RunSettings | None = None, fleet: FleetSettings | None = None,
                     log: Log | None = None) -> FleetResult:
    """Throughput of every host of a Ray cluster at once, on the coordinator's clock.

    Each host runs ``settings`` (its ``devices`` are each host's devices, e.g. ``(0, 1)`` for two Ascend 310
    chips per host) with ``batch`` samples per request; ``fleet`` says where the cluster is. The model is sent
    to every host; ``input`` (a path) must exist on every host. Ctrl-C stops every host's window and returns
    what was measured (``interrupted``).
    """
    check_batch(batch)
    fleet = fleet or FleetSettings()
    st = (settings or RunSettings()).with_defaults(**THROUGHPUT_DEFAULTS)
    if st.devices is None:
        st = replace(st, devices=(0,))
    ray = _import_ray()
    path, description, pretrained = model_source(model)
    files = _model_files(path)
    sha = _sha256(files)
    say = log or (lambda _m: None)
    cluster, initialised = _start_ray(ray, fleet)
    try:
        return _run_fleet(ray, fleet, st, path, description, pretrained, files, sha, engine, precision, batch, input,
                          say)
    finally:
        if initialised:
            ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def _run_fleet(ray: Any, fleet: FleetSettings, st: RunSettings, path: Path, description: str, pretrained: bool,
               files: dict[str, bytes], sha: str, engine: str | None, precision: str, batch: int,
               input: InputLike, say: Log) -> FleetResult:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    alive = sorted((n for n in ray.nodes() if n.get("Alive")), key=lambda n: n["NodeID"])
    wanted = {"CPU": fleet.actor_cpus, **fleet.actor_resources}
    nodes = [n for n in alive if all(n.get("Resources", {}).get(k, 0.0) >= v for k, v in wanted.items() if v > 0)]
    if len(nodes) < len(alive):
        say(f"fleet: {len(alive) - len(nodes)} of {len(alive)} node(s) lack a runner's resources "
            f"({', '.join(f'{k}={v:g}' for k, v in wanted.items())}) and get no runner")
    if fleet.hosts is not None and fleet.hosts > len(nodes):
        raise SettingError(f"`hosts` {fleet.hosts}: the cluster has {len(nodes)} alive node(s) with a runner's "
                           "resources")
    if not nodes:
        raise SettingError(f"`actor_resources`: no alive node has {', '.join(f'{k}={v:g}' for k, v in wanted.items())}")
    nodes = nodes[:fleet.hosts]
    env = {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV_PREFIXES)}
    actor_class = ray.remote(HostRunner)
    files_ref = ray.put(files)
    runners = [actor_class.options(
        num_cpus=fleet.actor_cpus, resources=dict(fleet.actor_resources) or None, max_concurrency=2,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n["NodeID"], soft=False),
        runtime_env={"env_vars": env} if env else None,
    ).remote(path.name, files_ref, sha, engine=engine, precision=precision, batch=batch, input=input, settings=st)
        for n in nodes]
    try:
        try:
            hosts = ray.get([r.host.remote() for r in runners], timeout=fleet.start_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise CommandError(f"the fleet's runners did not start within {fleet.start_timeout_s:g} s (engine load "
                               "on every host; see `ray status` for pending actors)") from None
        for h in hosts:
            if h["error"]:
                raise CommandError(f"the fleet runner on {h['hostname']} (node {str(h['node_id'])[:8]}) could not "
                                   f"open the model: {h['error']}")
        say(f"fleet: {len(runners)} host(s): " + ", ".join(f"{h['hostname']} ({len(h['devices'])} device(s))"
                                                           for h in hosts))
        offsets = [_estimate_offset(ray, r, fleet.clock_pings) for r in runners]
        ray.get([r.warm_up.remote() for r in runners])
        start_at = time.time() + fleet.start_margin_s + 4 * max(u for _, u in offsets)
        say(f"fleet: warmed up; common start in {start_at - time.time():.2f} s, each host measures >= "
            f"{st.min_duration_s:g} s")
        refs = [r.measure.remote(start_at + off) for r, (off, _) in zip(runners, offsets)]
        interrupted = False
        try:
            windows = ray.get(refs)
        except KeyboardInterrupt:
            interrupted = True
            ray.get([r.stop.remote() for r in runners])
            windows = ray.get(refs)
    except ray.exceptions.RayActorError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise CommandError(f"a fleet runner failed: {lines[-1] if lines else type(exc).__name__}") from None
    finally:
        for r in runners:
            ray.kill(r)
    return FleetResult(_fleet_document(hosts, offsets, windows, start_at, path, description, pretrained, sha,
                                       interrupted), st)


def _fleet_document(hosts: list[dict[str, Any]], offsets: list[tuple[float, float]], windows: list[dict[str, Any]],
                    start_at: float, path: Path, description: str, pretrained: bool, sha: str,
                    interrupted: bool) -> dict[str, Any]:
    per_host = []
    for h, (off, unc), w in zip(hosts, offsets, windows):
        doc = w["document"]
        start = (w["entered"] - off - start_at) * 1000.0
        end = (w["returned"] - off - start_at) * 1000.0
        per_host.append({
            **h, "clock_offset_ms": off * 1000.0, "clock_uncertainty_ms": unc * 1000.0,
            "window_start_ms": start, "window_end_ms": end,
            "iterations": doc["iterations"], "samples_processed": doc["samples_processed"], "wall_ms": doc["wall_ms"],
            "throughput_per_s": doc["throughput_per_s"], "latency_ms": doc["latency_ms"],
            "devices_detail": doc.get("devices", []), "device_start_skew_ms": doc.get("start_skew_ms", 0.0),
            "device_end_skew_ms": doc.get("end_skew_ms", 0.0), "stop_reason": doc["stop_reason"],
            "warnings": doc.get("warnings", []), "samples_ms": doc["samples_ms"],
            "start_offsets_ms": doc["start_offsets_ms"], "host_info": doc["host"],
        })
    first = windows[0]["document"]
    starts = [h["window_start_ms"] for h in per_host]
    ends = [h["window_end_ms"] for h in per_host]
    wall = max(ends) - min(starts)
    samples = sum(int(h["samples_processed"]) for h in per_host)
    warnings = [f"host {i} ({h['hostname']}): {w}" for i, h in enumerate(per_host) for w in h["warnings"]]
    uncertainty = max(h["clock_uncertainty_ms"] for h in per_host)
    if uncertainty > 0.01 * wall:
        warnings.append(f"clock offsets are known to +/- {uncertainty:.1f} ms, over 1% of the {wall:.0f} ms common "
                        "wall: run longer (--min-duration) for an aggregate this uncertainty cannot move")
    start_skew = max(starts) - min(starts)
    if start_skew > 0.05 * wall:
        warnings.append(f"the hosts started {start_skew:.0f} ms apart, over 5% of the common wall: the aggregate "
                        "counts that time as idle for the late host(s)")
    return {
        "mode": "throughput", "fleet": True, "engine": first["engine"], "model": str(path),
        "model_description": description, "pretrained": pretrained, "model_sha256": sha, "batch": first["batch"],
        "precision": first["precision"], "precision_report": first.get("precision_report"), "scope": first["scope"],
        "inflight": first["inflight"], "input": first["input"], "engine_properties": first["engine_properties"],
        "samples_processed": samples, "wall_ms": wall, "throughput_per_s": samples * 1000.0 / wall if wall > 0 else 0.0,
        "start_skew_ms": start_skew, "end_skew_ms": max(ends) - min(ends), "clock_uncertainty_ms": uncertainty,
        "aggregate": ("throughput_per_s = samples_processed / wall_ms, wall_ms from the earliest host window start "
                      "to the latest window end on the coordinator's clock; hosts[i].throughput_per_s is each "
                      "host's own and is not summed"),
        "hosts": per_host, "interrupted": interrupted, "stop_reason": "interrupted" if interrupted else
        ("max duration" if any(h["stop_reason"] == "max duration" for h in per_host) else "minimums met"),
        "warnings": warnings, "metrics": dict(FLEET_METRICS),
    }
