"""Settings of the timed benchmarks: every knob of a run in one frozen dataclass, checked when it is made.

``RunSettings`` mirrors the native ``pymfn._core.RunSettings`` (warm-up, run window, requests in flight, timing
scope) and adds where the run happens (threads, streams, devices) and what feeds it (prefetch, random-input seed,
folder order and I/O). ``ScenarioSettings`` adds the LoadGen rules of the scheduled scenarios (server,
multi-stream); ``PeakSearchSettings`` the knobs of the peak-QPS search. Durations carry their unit in the name
(``_s`` seconds, ``_ms`` milliseconds).

A field left ``None`` takes the default of the benchmark it is passed to (``latency`` measures at least 3 s,
``throughput`` 5 s with 2 requests in flight, the scenarios 10 s capped at 300 s, ...). An out-of-range value
raises :class:`SettingError`, a ``ValueError`` whose message names the field in backquotes (`` `inflight` ``), so a
command line can name its own option instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Sequence

# The most request slots an engine offers, and the most devices one run drives.
MAX_INFLIGHT = 64
MAX_DEVICES = 64
# The most queries one scheduled run holds (the runner's limit).
MAX_SCHEDULED_QUERIES = 50_000_000
SCOPES = ("compute", "end-to-end")
FOLDER_ORDERS = ("natural", "lexicographic")
FOLDER_IO = ("mmap", "pread")


class SettingError(ValueError):
    """A setting or argument out of range, or one the model cannot honour; names it in backquotes."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    """``value`` is an int in low..high (high None: no upper bound), else SettingError naming ``name``."""
    if not _is_int(value) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in {low}..{high}"
        raise SettingError(f"`{name}` must be an integer {bound}, got {value!r}")


def check_number(name: str, value: Any, low: float, *, low_open: bool = False, high: float = math.inf,
                 high_open: bool = False) -> None:
    """``value`` is a finite number in the interval (NaN fails every comparison), else SettingError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok = ok and (value > low if low_open else value >= low)
    ok = ok and (value < high if high_open else value <= high)
    if not ok:
        if high == math.inf:
            bound = f"> {low:g}" if low_open else f">= {low:g}"
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise SettingError(f"`{name}` must be a finite number {bound}, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise SettingError(f"`{name}` must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class RunSettings:
    """How a timed run goes: warm-up, the measurement window, requests in flight, where it runs, what feeds it.

    >>> from pymfn.bench import RunSettings
    >>> RunSettings(min_duration_s=0.5, inflight=2).inflight
    2
    >>> RunSettings(inflight=0)
    Traceback (most recent call last):
    ...
    pymfn.bench.settings.SettingError: `inflight` must be an integer in 1..64, got 0
    """

    #: untimed requests before measuring; warm-up lasts until both this count and ``warmup_ms`` are reached
    warmup_iterations: int = 10
    warmup_ms: float = 0.0
    #: measure at least this many requests and for at least ``min_duration_s`` (None: the benchmark's default)
    min_iterations: int = 100
    min_duration_s: float | None = None
    #: cap on the whole run, warm-up included (None: the benchmark's default); a capped run says so
    max_duration_s: float | None = None
    #: requests in flight per device (None: the benchmark's default); > 1 uses the engine's asynchronous path
    inflight: int | None = None
    #: "compute" times the engine's execute only (msame's scope); "end-to-end" adds input fetch and output copy
    scope: str = "compute"
    #: keep every per-request latency (``samples_ms``); False keeps only the statistics
    keep_samples: bool = True
    #: coefficient of variation above which the result carries a "noisy run" warning
    cv_warning_threshold: float = 0.05
    #: inference threads (0: the engine's default; with ``devices`` on the host: per lane) and OpenVINO streams
    threads: int = 0
    streams: int = 0
    #: run on several devices at once (acl: device ids; openvino: one single-stream lane each); None: one engine
    devices: tuple[int, ...] | None = None
    #: batches a folder loader prepares ahead; seed of the random input; order and I/O of a .bin folder
    prefetch: int = 2
    seed: int = 0
    order: str = "natural"
    folder_io: str = "mmap"

    def __post_init__(self) -> None:
        if self.devices is not None and not isinstance(self.devices, tuple):
            object.__setattr__(self, "devices", tuple(self.devices))
        check_int("warmup_iterations", self.warmup_iterations, 0)
        check_number("warmup_ms", self.warmup_ms, 0.0)
        check_int("min_iterations", self.min_iterations, 1)
        if self.min_duration_s is not None:
            check_number("min_duration_s", self.min_duration_s, 0.0)
        if self.max_duration_s is not None:
            check_number("max_duration_s", self.max_duration_s, 0.0, low_open=True)
        if self.inflight is not None:
            check_int("inflight", self.inflight, 1, MAX_INFLIGHT)
        check_choice("scope", self.scope, SCOPES)
        if not isinstance(self.keep_samples, bool):
            raise SettingError(f"`keep_samples` must be True or False, got {self.keep_samples!r}")
        check_number("cv_warning_threshold", self.cv_warning_threshold, 0.0)
        check_int("threads", self.threads, 0)
        check_int("streams", self.streams, 0)
        check_devices(self.devices)
        check_int("prefetch", self.prefetch, 0)
        check_int("seed", self.seed, 0)
        check_choice("order", self.order, FOLDER_ORDERS)
        check_choice("folder_io", self.folder_io, FOLDER_IO)
        check_time_window(self)

    def with_defaults(self, **defaults: Any) -> RunSettings:
        """A copy whose ``None`` fields take ``defaults`` (the benchmark's own)."""
        return replace(self, **{k: v for k, v in defaults.items() if getattr(self, k) is None})

    def to_core(self, core: Any, batch: int) -> Any:
        """The native ``RunSettings`` of a run with ``batch`` samples per request (None fields must be filled)."""
        st = core.RunSettings()
        st.batch_size = batch
        st.warmup_iterations = self.warmup_iterations
        st.warmup_ms = self.warmup_ms
        st.min_iterations = self.min_iterations
        st.min_duration_ms = self.min_duration_s * 1000.0
        st.max_duration_ms = self.max_duration_s * 1000.0
        st.inflight = self.inflight
        st.scope = core.TimingScope.kEndToEnd if self.scope == "end-to-end" else core.TimingScope.kCompute
        st.keep_samples = self.keep_samples
        st.cv_warning_threshold = self.cv_warning_threshold
        return st


def check_devices(devices: tuple[int, ...] | None) -> None:
    if devices is None:
        return
    if not devices or not all(_is_int(d) and d >= 0 for d in devices):
        raise SettingError(f"`devices` {list(devices)}: expected one or more device ids >= 0")
    if len(set(devices)) != len(devices):
        raise SettingError(f"`devices` {list(devices)}: a device is listed twice")
    if len(devices) > MAX_DEVICES:
        raise SettingError(f"`devices`: at most {MAX_DEVICES} devices, got {len(devices)}")


def check_time_window(st: RunSettings, *, probe_duration_s: float | None = None) -> None:
    """Warm-up and the minimum measurement fit in ``max_duration_s``, which caps the whole run, warm-up included
    (else the run could never finish as asked). Fields still None are not checked."""
    cap = st.max_duration_s
    if cap is None:
        return
    warmup_s = st.warmup_ms / 1000.0
    if warmup_s >= cap:
        raise SettingError(f"`warmup_ms` {st.warmup_ms:g} ({warmup_s:g} s) does not fit in `max_duration_s` {cap:g} s, "
                           "which caps the whole run, warm-up included; raise `max_duration_s` or shorten the warm-up")
    durations = [("min_duration_s", st.min_duration_s)]
    if probe_duration_s is not None:
        durations.append(("probe_duration_s", probe_duration_s))
    for name, seconds in durations:
        if seconds is not None and seconds + warmup_s > cap:
            plus = f" plus `warmup_ms` {st.warmup_ms:g}" if warmup_s else ""
            raise SettingError(f"`{name}` {seconds:g} s{plus} is more than `max_duration_s` {cap:g} s, which caps "
                               "the whole run, warm-up included")


@dataclass(frozen=True)
class ScenarioSettings(RunSettings):
    """A scheduled run (server, multi-stream): the run settings plus LoadGen's validity rules.

    A run is VALID when the ``percentile`` of query latency stays under the bound, the schedule lasted
    ``min_duration_s`` and ``min_queries`` completed, and nothing was cut off by ``max_duration_s``.

    >>> from pymfn.bench import ScenarioSettings
    >>> ScenarioSettings(min_duration_s=2, min_queries=50).percentile
    99.0
    """

    #: the latency percentile the bound applies to, in (0, 100)
    percentile: float = 99.0
    #: the schedule holds at least this many queries (None: the scenario's default, 1024 server / 100 multi-stream)
    min_queries: int | None = None
    #: seed of the arrival schedule: the same seed gives the same schedule
    schedule_seed: int = 0
    #: a query issued more than this after its scheduled arrival counts as late
    late_ms: float = 0.1
    #: the scheduler spins on the clock for the last this-many ms before an arrival (0: sleep only)
    spin_ms: float = 0.2
    #: server: dynamic batching, the most queued queries one request carries (the model must offer batch x this
    #: rows; a dynamic-batch om runs each request at the smallest size that holds its queries); 1 = none
    max_batch: int = 1
    #: server batching: how long the oldest query may be held for more to arrive (0: send what has arrived)
    max_queue_delay_ms: float = 0.0
    #: threads that spin while no request is in flight, keeping the host's cores awake between queries (their CPU
    #: time is reported); 0 = off
    keep_warm_threads: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number("percentile", self.percentile, 0.0, low_open=True, high=100.0, high_open=True)
        if self.min_queries is not None:
            check_int("min_queries", self.min_queries, 1)
        check_int("schedule_seed", self.schedule_seed, 0, 2**64 - 1)
        check_number("late_ms", self.late_ms, 0.0)
        check_number("spin_ms", self.spin_ms, 0.0, high=1000.0)
        check_int("max_batch", self.max_batch, 1, 4096)
        check_number("max_queue_delay_ms", self.max_queue_delay_ms, 0.0, high=60000.0)
        check_int("keep_warm_threads", self.keep_warm_threads, 0, 256)

    def to_core(self, core: Any, batch: int) -> Any:
        st = super().to_core(core, batch)
        st.min_query_count = self.min_queries
        st.bound_percentile = self.percentile / 100.0
        st.late_threshold_ms = self.late_ms
        st.scheduler_spin_ms = self.spin_ms
        st.schedule_seed = self.schedule_seed
        st.max_batch = self.max_batch
        st.max_queue_delay_ms = self.max_queue_delay_ms
        st.keep_warm_threads = self.keep_warm_threads
        return st


def check_schedule_fits(st: ScenarioSettings, *, qps: float | None = None, interval_ms: float | None = None) -> None:
    """A schedule that cannot hold ``min_queries`` within ``max_duration_s`` (warm-up included) would only ever give
    an INVALID run, and one beyond what the runner holds would fail: both are refused before any model loads."""
    cap, warmup_s = st.max_duration_s, st.warmup_ms / 1000.0
    if qps is not None:
        name, rate = f"`qps` {qps:g}", qps
        length = st.min_queries / qps
        what = f"`min_queries` {st.min_queries} queries at {qps:g} QPS take about {length:.3g} s"
    elif interval_ms is not None:
        name, rate = f"`interval_ms` {interval_ms:g}", 1000.0 / interval_ms
        length = (st.min_queries - 1) * interval_ms / 1000.0
        what = f"`min_queries` {st.min_queries} queries every {interval_ms:g} ms take {length:.3g} s"
    else:
        return
    queries = rate * max(length, st.min_duration_s)
    if queries > MAX_SCHEDULED_QUERIES:
        raise SettingError(f"{name}: the schedule would hold about {queries:.3g} queries; a run holds at most "
                           f"{MAX_SCHEDULED_QUERIES:,}")
    if length + warmup_s > cap:
        plus = f" plus `warmup_ms` {st.warmup_ms:g}" if warmup_s else ""
        raise SettingError(f"{name}: {what}{plus}, more than `max_duration_s` {cap:g} s (the cap covers the whole "
                           "run, warm-up included): the run could never be VALID")


@dataclass(frozen=True)
class PeakSearchSettings:
    """The search for the highest QPS whose server runs stay VALID (see :func:`pymfn.bench.find_peak`).

    >>> from pymfn.bench import PeakSearchSettings
    >>> PeakSearchSettings(peak_runs=1, probe_duration_s=0.5).peak_tolerance
    0.05
    """

    #: full-length VALID runs (different schedules) that must confirm the peak
    peak_runs: int = 2
    #: relative precision of the search; a failed confirmation steps down by twice this, in (0, 0.5)
    peak_tolerance: float = 0.05
    #: seconds of each probe, of the offline capacity run and of the single-stream median run
    probe_duration_s: float = 3.0
    #: without a bound, the bound is this many single-stream medians
    bound_x_median: float = 4.0

    def __post_init__(self) -> None:
        check_int("peak_runs", self.peak_runs, 1)
        check_number("peak_tolerance", self.peak_tolerance, 0.0, low_open=True, high=0.5, high_open=True)
        check_number("probe_duration_s", self.probe_duration_s, 0.0, low_open=True)
        check_number("bound_x_median", self.bound_x_median, 0.0, low_open=True)


def check_search_fits(st: ScenarioSettings, search: PeakSearchSettings, budget_s: float) -> None:
    """The budget holds at least the offline run, one probe and the confirmations."""
    warmup_s = st.warmup_ms / 1000.0
    floor_s = search.peak_runs * (st.min_duration_s + warmup_s) + 2 * (search.probe_duration_s + warmup_s)
    if budget_s < floor_s:
        raise SettingError(f"`budget_s` {budget_s:g} s cannot hold a search: the offline run and one probe "
                           f"(`probe_duration_s` {search.probe_duration_s:g} s each) and `peak_runs` {search.peak_runs} "
                           f"confirmations (`min_duration_s` {st.min_duration_s:g} s each) need at least {floor_s:g} s")
