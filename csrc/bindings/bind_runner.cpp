// Python face of the runner: RunSettings, TimingScope, StopReason, StopFlag, LatencyStats, RunResult,
// DeviceStats, ScenarioResult, RunInterrupted, run_benchmark, run_devices, run_server, run_multistream,
// poisson_schedule, infer_all and compute_stats. Every blocking call releases the GIL and honours Ctrl-C
// (see run_watched); arrays handed back are views of C++-owned memory (no copies).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "bindings/bindings.h"
#include "core/dtype.h"
#include "core/errors.h"
#include "core/runner.h"
#include "core/scenarios.h"

namespace pymfn_bindings {

namespace {

using pymfn::DeviceStats;
using pymfn::LatencyStats;
using pymfn::RunResult;
using pymfn::ScenarioResult;
using pymfn::RunSettings;
using pymfn::StopFlag;
using pymfn::StopReason;
using pymfn::TimingScope;

TimingScope scope_from(const py::object& v) {
  if (py::isinstance<py::str>(v)) {
    const std::string s = v.cast<std::string>();
    if (s == "compute") return TimingScope::kCompute;
    if (s == "end-to-end" || s == "end_to_end" || s == "e2e") return TimingScope::kEndToEnd;
    throw pymfn::InvalidArgument("scope '" + s + "' is not valid (expected 'compute' or 'end-to-end')");
  }
  return v.cast<TimingScope>();
}

const char* scope_name(TimingScope s) { return s == TimingScope::kCompute ? "compute" : "end-to-end"; }

template <typename T>
T non_negative(const py::object& v, const char* field) {
  // Catch negative values with a clear message instead of pybind11's generic TypeError.
  if (py::isinstance<py::int_>(v) && v.cast<long long>() < 0)
    throw pymfn::InvalidArgument(std::string("RunSettings.") + field + " must be >= 0, got " + std::string(py::str(v)));
  if (py::isinstance<py::float_>(v) && v.cast<double>() < 0)
    throw pymfn::InvalidArgument(std::string("RunSettings.") + field + " must be >= 0, got " + std::string(py::str(v)));
  return v.cast<T>();
}

// numpy view of a vector owned by a Python object (`owner` keeps it alive).
py::array_t<double> view_of(const std::vector<double>& v, py::handle owner) {
  return py::array_t<double>({static_cast<py::ssize_t>(v.size())}, {static_cast<py::ssize_t>(sizeof(double))}, v.data(), owner);
}

template <typename T>
py::array_t<T> view_of_t(const std::vector<T>& v, py::handle owner) {
  return py::array_t<T>({static_cast<py::ssize_t>(v.size())}, {static_cast<py::ssize_t>(sizeof(T))}, v.data(), owner);
}

// {stage name: numpy view} of a map owned by `owner`.
py::dict stage_views(const std::map<std::string, std::vector<double>>& m, py::handle owner) {
  py::dict d;
  for (const auto& kv : m) d[py::str(kv.first)] = view_of(kv.second, owner);
  return d;
}

// Lanes from engines (and optional names): the engines stay referenced by the caller's list for the
// whole (GIL-released) run.
std::vector<pymfn::Lane> lanes_from(const py::object& obj, const py::object& names) {
  py::list engines;
  if (py::isinstance<pymfn::Engine>(obj)) {
    engines.append(obj);
  } else {
    if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
      throw py::type_error("engines must be an Engine or a list of Engines");
    for (auto item : py::reinterpret_borrow<py::sequence>(obj)) engines.append(item);
  }
  std::vector<pymfn::Lane> lanes;
  std::vector<std::string> labels;
  if (!names.is_none()) labels = names.cast<std::vector<std::string>>();
  if (!labels.empty() && labels.size() != static_cast<size_t>(py::len(engines)))
    throw pymfn::InvalidArgument("names: " + std::to_string(labels.size()) + " names for " +
                                 std::to_string(py::len(engines)) + " engines");
  for (size_t i = 0; i < static_cast<size_t>(py::len(engines)); ++i) {
    pymfn::Lane l;
    if (!py::isinstance<pymfn::Engine>(engines[i]))
      throw py::type_error("engines[" + std::to_string(i) + "] is not an Engine");
    l.engine = engines[i].cast<pymfn::Engine*>();
    if (l.engine == nullptr) throw pymfn::InvalidArgument("engines[" + std::to_string(i) + "] is None");
    l.name = labels.empty() ? l.engine->kind() + " " + std::to_string(i) : labels[i];
    lanes.push_back(l);
  }
  return lanes;
}

py::dict stats_dict(const LatencyStats& s) {
  py::dict d;
  d["count"] = s.count;
  d["min"] = s.min;
  d["mean"] = s.mean;
  d["median"] = s.median;
  d["p90"] = s.p90;
  d["p95"] = s.p95;
  d["p99"] = s.p99;
  d["p999"] = s.p999;
  d["max"] = s.max;
  d["std"] = s.std;
  d["cv"] = s.cv;
  return d;
}

// ------------------------------------------------------------------------------------ Ctrl-C during a run
//
// CPython runs signal handlers only on the main thread, between bytecodes: a run that released the GIL
// on the main thread would hold SIGINT back until it returns. So a run called from the main thread goes
// to a worker thread, and the main thread waits for it, calling PyErr_CheckSignals() every
// kSignalPollMs (under the GIL; with a C++ engine nobody else wants it). When a handler raises
// (KeyboardInterrupt for Ctrl-C), the run's StopFlag is raised; the run issues nothing more, finishes the
// requests in flight and returns what it measured, which RunInterrupted (a KeyboardInterrupt) carries
// to the caller. Python engines run on the worker thread, where no signal handler ever runs, so a
// KeyboardInterrupt never cuts one of their calls in half. Called from any other thread, a run stays
// on that thread (the main thread gets the signal; stop such a run with a StopFlag).

constexpr auto kSignalPoll = std::chrono::milliseconds(50);

// pymfn._core.RunInterrupted, made by bind_runner().
PyObject* g_run_interrupted = nullptr;

bool on_main_thread() {
  py::module_ threading = py::module_::import("threading");
  return threading.attr("current_thread")().is(threading.attr("main_thread")());
}

std::string partial_summary(const RunResult& r) {
  return "the partial result (" + std::to_string(r.iterations) + " measured requests after " +
         std::to_string(r.warmup_iterations) + " warm-up requests) is in .result";
}

std::string partial_summary(const ScenarioResult& r) {
  return "the partial result (" + std::to_string(r.queries) + " of " + std::to_string(r.queries_scheduled) +
         " scheduled queries completed) is in .result";
}

using Outputs = std::vector<std::vector<uint8_t>>;

// What an interruption hands the caller: the partial result and how to describe it.
template <typename R>
std::pair<py::object, std::string> partial_of(const std::shared_ptr<R>& r) {
  return {py::cast(r), partial_summary(*r)};
}

std::pair<py::object, std::string> partial_of(const std::shared_ptr<Outputs>&) {
  return {py::none(), "the pass had just ended; its outputs are dropped"};
}

// Raises the exception a signal handler raised during a run, holding the run's partial result: a
// KeyboardInterrupt becomes RunInterrupted(.result = partial); anything else keeps its type and gets a
// .partial_result attribute when it takes one.
[[noreturn]] void raise_interrupted(const py::object& raised, const py::object& partial, const std::string& summary) {
  py::object exc = raised;
  if (PyObject_IsInstance(raised.ptr(), PyExc_KeyboardInterrupt) == 1) {
    exc = py::reinterpret_borrow<py::object>(g_run_interrupted)(py::str("interrupted; " + summary));
    exc.attr("result") = partial;
    PyException_SetContext(exc.ptr(), raised.inc_ref().ptr());  // steals the reference
  } else if (PyObject_SetAttrString(raised.ptr(), "partial_result", partial.ptr()) != 0) {
    PyErr_Clear();
  }
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw py::error_already_set();
}

// Runs body(stop) with the GIL released, Ctrl-C honoured as above. `stop` is the caller's StopFlag or a
// fresh one. Returns the result, or raises RunInterrupted holding it.
template <typename R, typename Body>
std::shared_ptr<R> run_watched(Body body, std::shared_ptr<StopFlag> stop) {
  if (!stop) stop = std::make_shared<StopFlag>();
  if (!on_main_thread()) {
    py::gil_scoped_release release;
    return std::make_shared<R>(body(stop.get()));
  }
  std::shared_ptr<R> result;
  std::exception_ptr failure;
  py::object raised;  // what a signal handler raised while the run was in flight
  {
    py::gil_scoped_release release;
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread worker([&] {
      try {
        result = std::make_shared<R>(body(stop.get()));
      } catch (...) {
        failure = std::current_exception();
      }
      std::lock_guard<std::mutex> lk(mu);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lk(mu);
    while (!cv.wait_for(lk, kSignalPoll, [&] { return done; })) {
      if (raised) continue;  // stop already asked for: wait for the requests in flight
      lk.unlock();
      {
        py::gil_scoped_acquire gil;
        if (PyErr_CheckSignals() != 0) {
          py::error_already_set pending;  // takes the exception the handler raised
          raised = pending.value();
        }
      }
      if (raised) stop->request();
      lk.lock();
    }
    lk.unlock();
    worker.join();
  }
  if (failure) {
    if (!raised) std::rethrow_exception(failure);
    try {
      std::rethrow_exception(failure);
    } catch (const pymfn::Interrupted& e) {  // a call with no partial result (infer_all)
      raise_interrupted(raised, py::none(), e.what());
    }
  }
  if (raised) {
    const auto partial = partial_of(result);
    raise_interrupted(raised, partial.first, partial.second);
  }
  return result;
}

std::shared_ptr<StopFlag> stop_from(const py::object& v) {
  if (v.is_none()) return nullptr;
  if (!py::isinstance<StopFlag>(v)) throw py::type_error("stop must be a StopFlag or None");
  return v.cast<std::shared_ptr<StopFlag>>();
}

}  // namespace

void bind_runner(py::module_& m) {
  py::enum_<TimingScope>(m, "TimingScope", "What the timed region of one iteration contains.")
      .value("kCompute", TimingScope::kCompute,
             "only the engine's execute (or start..wait); the batch is fetched before the clock starts "
             "(msame / ais_bench scope)")
      .value("kEndToEnd", TimingScope::kEndToEnd, "reader.next() + execute + output fetch: what an application sees");

  py::enum_<StopReason>(m, "StopReason", "Why a run ended (RunResult.stop_reason, ScenarioResult.stop_reason).")
      .value("kMinimumsMet", StopReason::kMinimumsMet,
             "it ran as asked: min_iterations and min_duration_ms reached, or every scheduled query issued")
      .value("kMaxDuration", StopReason::kMaxDuration,
             "max_duration_ms, counted from the start of the run (warm-up included), ran out first")
      .value("kInterrupted", StopReason::kInterrupted,
             "a StopFlag was raised (Ctrl-C): the result holds what was measured until then");
  m.def("stop_reason_name", &pymfn::stop_reason_name, py::arg("reason"),
        "'minimums met', 'max duration' or 'interrupted': how reports name a StopReason.");

  py::class_<StopFlag, std::shared_ptr<StopFlag>>(m, "StopFlag", R"doc(
Ends a run early from another thread (or from inside a Python engine): pass it as run_*(..., stop=flag) and
call flag.request(). The run issues nothing more, waits for its requests in flight and returns what it
measured with stop_reason StopReason.kInterrupted (no exception). The flag stays raised until clear().
Ctrl-C during a run raises it too (and then RunInterrupted carries the partial result).)doc")
      .def(py::init<>())
      .def("request", &StopFlag::request, "ask every run holding this flag to stop")
      .def("clear", &StopFlag::clear, "lower the flag again")
      .def_property_readonly("requested", &StopFlag::requested)
      .def("__repr__", [](const StopFlag& f) { return std::string("StopFlag(requested=") + (f.requested() ? "True" : "False") + ")"; });

  {
    const char* doc =
        "Ctrl-C (or any signal whose handler raised KeyboardInterrupt) during a run: the run stopped issuing, "
        "finished its requests in flight, and .result holds what it measured (a RunResult / ScenarioResult marked "
        "stop_reason kInterrupted; None for infer_all). A KeyboardInterrupt, so code that does not look for it "
        "stops as on any Ctrl-C.";
    g_run_interrupted = PyErr_NewExceptionWithDoc("pymfn._core.RunInterrupted", doc, PyExc_KeyboardInterrupt, nullptr);
    if (g_run_interrupted == nullptr) throw py::error_already_set();
    m.attr("RunInterrupted") = py::handle(g_run_interrupted);  // the module keeps a reference; ours is never dropped
  }

#define PYMFN_SIZE_FIELD(field, doc)                                                                      \
  def_property(                                                                                           \
      #field, [](const RunSettings& s) { return s.field; },                                               \
      [](RunSettings& s, const py::object& v) { s.field = non_negative<size_t>(v, #field); }, doc)
#define PYMFN_MS_FIELD(field, doc)                                                                        \
  def_property(                                                                                           \
      #field, [](const RunSettings& s) { return s.field; },                                               \
      [](RunSettings& s, const py::object& v) { s.field = non_negative<double>(v, #field); }, doc)

  py::class_<RunSettings>(m, "RunSettings", R"doc(
Every knob of a benchmark run (defaults follow benchmark_app / trtexec habits). Values are checked again by
run_benchmark, which raises InvalidArgument naming the field for inconsistent combinations.)doc")
      .def(py::init([](py::kwargs kw) {
             RunSettings s;
             py::object obj = py::cast(s);
             for (auto item : kw) {
               const std::string key = py::str(item.first);
               if (!py::hasattr(obj, key.c_str()) || key.rfind("_", 0) == 0)
                 throw py::type_error("RunSettings has no field '" + key + "'");
               obj.attr(key.c_str()) = item.second;
             }
             return obj.cast<RunSettings>();
           }),
           "RunSettings(**fields): any field below as a keyword argument")
      .PYMFN_SIZE_FIELD(batch_size, "batch size handed to Engine.prepare(); the reader must yield batches of this size")
      .PYMFN_SIZE_FIELD(warmup_iterations, "untimed iterations before measuring (default 10)")
      .PYMFN_MS_FIELD(warmup_ms, "and keep warming up for at least this many ms (default 0)")
      .PYMFN_SIZE_FIELD(min_iterations, "measure at least this many iterations (default 100)")
      .PYMFN_MS_FIELD(min_duration_ms, "and for at least this many ms (default 1000)")
      .PYMFN_MS_FIELD(max_duration_ms,
                      "cap on the whole run, counted from its start (warm-up included): stop after this many ms "
                      "even if the minimums are not met (a warning says so; warmup_ms + min_duration_ms must fit "
                      "in it); 0 = no cap (default 60000)")
      .PYMFN_SIZE_FIELD(inflight,
                        "requests in flight: 1 = synchronous execute(); >1 = start()/wait() round-robin, each "
                        "sample is one request's start-to-completion latency (default 1)")
      .def_property(
          "scope", [](const RunSettings& s) { return s.scope; },
          [](RunSettings& s, const py::object& v) { s.scope = scope_from(v); },
          "TimingScope.kCompute (default) or kEndToEnd; the strings 'compute' / 'end-to-end' are accepted too")
      .def_readwrite("keep_samples", &RunSettings::keep_samples,
                     "return every per-iteration latency in RunResult.samples_ms (default True)")
      .PYMFN_MS_FIELD(cv_warning_threshold, "coefficient of variation above which the result warns 'noisy run' (default 0.05)")
      .PYMFN_MS_FIELD(target_qps, "server: mean Poisson arrival rate, queries per second (one query = one request of "
                                  "batch_size rows)")
      .def_property(
          "schedule_seed", [](const RunSettings& s) { return s.schedule_seed; },
          [](RunSettings& s, const py::object& v) { s.schedule_seed = non_negative<uint64_t>(v, "schedule_seed"); },
          "seed of the server's arrival schedule (same seed, same schedule; default 0)")
      .PYMFN_SIZE_FIELD(max_batch, "server: most queued queries one request carries (dynamic batching; the engine "
                                   "must offer batch_size * max_batch rows; default 1 = one query per request)")
      .PYMFN_MS_FIELD(max_queue_delay_ms, "server batching: how long the oldest query may be held for more to arrive "
                                          "(default 0 = send what has arrived)")
      .PYMFN_SIZE_FIELD(keep_warm_threads, "scheduled scenarios: threads that spin while no request is in flight "
                                           "(keeping the cores awake between queries; costs that much CPU while "
                                           "idle); default 0 = off")
      .PYMFN_SIZE_FIELD(samples_per_query, "multi-stream: samples per query, split into requests of batch_size rows "
                                           "(must be a multiple of it; default 8)")
      .PYMFN_MS_FIELD(query_interval_ms, "multi-stream: time between query arrivals (default 50)")
      .PYMFN_MS_FIELD(latency_bound_ms, "VALID only if the bound_percentile of query latency is <= this (server: "
                                        "required; multi-stream: 0 = query_interval_ms)")
      .PYMFN_MS_FIELD(bound_percentile, "the percentile the bound applies to, in (0, 1) (default 0.99)")
      .PYMFN_SIZE_FIELD(min_query_count, "scheduled scenarios: at least this many queries for a VALID run (default 100)")
      .PYMFN_MS_FIELD(late_threshold_ms, "a query reaching the engine more than this after its scheduled arrival counts "
                                         "as issued late (default 0.1)")
      .PYMFN_MS_FIELD(scheduler_spin_ms, "the scheduler sleeps until this long before an arrival, then spins on the "
                                         "clock (default 0.2; 0 = sleep only)")
      .def("__repr__", [](const RunSettings& s) {
        std::ostringstream os;
        os << "RunSettings(batch_size=" << s.batch_size << ", warmup_iterations=" << s.warmup_iterations
           << ", warmup_ms=" << s.warmup_ms << ", min_iterations=" << s.min_iterations
           << ", min_duration_ms=" << s.min_duration_ms << ", max_duration_ms=" << s.max_duration_ms
           << ", inflight=" << s.inflight << ", scope='" << scope_name(s.scope) << "', keep_samples="
           << (s.keep_samples ? "True" : "False") << ", cv_warning_threshold=" << s.cv_warning_threshold
           << ", target_qps=" << s.target_qps << ", schedule_seed=" << s.schedule_seed
           << ", samples_per_query=" << s.samples_per_query << ", query_interval_ms=" << s.query_interval_ms
           << ", latency_bound_ms=" << s.latency_bound_ms << ", bound_percentile=" << s.bound_percentile
           << ", min_query_count=" << s.min_query_count << ", late_threshold_ms=" << s.late_threshold_ms
           << ", scheduler_spin_ms=" << s.scheduler_spin_ms << ", max_batch=" << s.max_batch
           << ", max_queue_delay_ms=" << s.max_queue_delay_ms << ", keep_warm_threads=" << s.keep_warm_threads << ")";
        return os.str();
      });
#undef PYMFN_SIZE_FIELD
#undef PYMFN_MS_FIELD

  py::class_<LatencyStats>(m, "LatencyStats", R"doc(
Latency statistics in ms. Percentiles: numpy's default 'linear' method (h = (n-1)*q, interpolate between
closest ranks). std is the population standard deviation; cv = std / mean.)doc")
      .def_readonly("count", &LatencyStats::count)
      .def_readonly("min", &LatencyStats::min)
      .def_readonly("mean", &LatencyStats::mean)
      .def_readonly("median", &LatencyStats::median)
      .def_readonly("p90", &LatencyStats::p90)
      .def_readonly("p95", &LatencyStats::p95)
      .def_readonly("p99", &LatencyStats::p99)
      .def_readonly("p999", &LatencyStats::p999)
      .def_readonly("max", &LatencyStats::max)
      .def_readonly("std", &LatencyStats::std)
      .def_readonly("cv", &LatencyStats::cv)
      .def("to_dict", &stats_dict)
      .def("__repr__", [](const LatencyStats& s) {
        std::ostringstream os;
        os.precision(4);
        os << "LatencyStats(count=" << s.count << ", min=" << s.min << ", median=" << s.median << ", mean=" << s.mean
           << ", p99=" << s.p99 << ", max=" << s.max << ", cv=" << s.cv << ")";
        return os.str();
      });

  py::class_<DeviceStats>(m, "DeviceStats", R"doc(
One device of a multi-device run, timed on the run's common clock (ms from its first measured start).
throughput_per_s is this device's samples over its own wall time: for comparing devices, never for
adding up (the aggregate is RunResult.throughput_per_s: all samples over the common wall time).)doc")
      .def_readonly("name", &DeviceStats::name)
      .def_readonly("iterations", &DeviceStats::iterations)
      .def_readonly("samples_processed", &DeviceStats::samples_processed)
      .def_readonly("first_start_ms", &DeviceStats::first_start_ms)
      .def_readonly("last_end_ms", &DeviceStats::last_end_ms)
      .def_readonly("wall_ms", &DeviceStats::wall_ms)
      .def_readonly("throughput_per_s", &DeviceStats::throughput_per_s)
      .def_readonly("latency", &DeviceStats::latency)
      .def_readonly("stage_means_ms", &DeviceStats::stage_means_ms)
      .def("__repr__", [](const DeviceStats& d) {
        std::ostringstream os;
        os.precision(4);
        os << "DeviceStats(name='" << d.name << "', iterations=" << d.iterations << ", throughput_per_s="
           << d.throughput_per_s << ", median_ms=" << d.latency.median << ")";
        return os.str();
      });

  py::class_<RunResult, std::shared_ptr<RunResult>>(m, "RunResult", "Outcome of run_benchmark() / run_devices().")
      .def_readonly("iterations", &RunResult::iterations, "measured iterations (requests)")
      .def_readonly("warmup_iterations", &RunResult::warmup_iterations, "untimed iterations actually run")
      .def_readonly("samples_processed", &RunResult::samples_processed, "valid rows processed while measuring")
      .def_readonly("wall_ms", &RunResult::wall_ms, "first measured start to last measured finish")
      .def_readonly("throughput_per_s", &RunResult::throughput_per_s,
                    "samples_processed / wall time (not derived from the mean latency)")
      .def_readonly("latency", &RunResult::latency)
      .def_property_readonly(
          "samples_ms", [](py::object self) { return view_of(self.cast<RunResult&>().samples_ms, self); },
          "per-iteration latencies (ms) in completion order, as a float64 numpy view")
      .def_property_readonly(
          "start_offsets_ms", [](py::object self) { return view_of(self.cast<RunResult&>().start_offsets_ms, self); },
          "start of each measured iteration relative to the first (ms), numpy view")
      .def_readonly("stage_means_ms", &RunResult::stage_means_ms,
                    "mean of each stage the engine reported: h2d_ms, compute_ms, d2h_ms")
      .def_property_readonly(
          "stage_samples_ms", [](py::object self) { return stage_views(self.cast<RunResult&>().stage_samples_ms, self); },
          "{stage: float64 numpy view} per measured iteration, aligned with samples_ms; only stages the engine "
          "reported on every iteration (ACL: compute_ms = aclmdlExecute alone, msame's scope)")
      .def_readonly("devices", &RunResult::devices,
                    "run_devices: one DeviceStats per device (run_benchmark: empty)")
      .def_property_readonly(
          "sample_devices", [](py::object self) { return view_of_t(self.cast<RunResult&>().sample_devices, self); },
          "run_devices: device index of each entry of samples_ms (uint32 numpy view)")
      .def_readonly("start_skew_ms", &RunResult::start_skew_ms, "spread of the devices' first measured starts")
      .def_readonly("end_skew_ms", &RunResult::end_skew_ms, "spread of the devices' last measured completions")
      .def_readonly("stop_reason", &RunResult::stop_reason, "why the run ended (StopReason)")
      .def_property_readonly(
          "stopped_on_max_duration", [](const RunResult& r) { return r.stop_reason == StopReason::kMaxDuration; },
          "max_duration_ms ran out before the minimums were met")
      .def_property_readonly(
          "interrupted", [](const RunResult& r) { return r.stop_reason == StopReason::kInterrupted; },
          "a StopFlag (Ctrl-C) ended the run: the figures are what was measured until then")
      .def_readonly("warnings", &RunResult::warnings)
      .def("__repr__", [](const RunResult& r) {
        std::ostringstream os;
        os.precision(4);
        os << "RunResult(iterations=" << r.iterations << ", median_ms=" << r.latency.median
           << ", throughput_per_s=" << r.throughput_per_s << ", warnings=" << r.warnings.size() << ")";
        return os.str();
      });

  m.def(
      "run_benchmark",
      [](pymfn::Engine& engine, pymfn::BatchReader& reader, const RunSettings& settings, const py::object& stop) {
        return run_watched<RunResult>(
            [&](const StopFlag* flag) { return pymfn::run_benchmark(engine, reader, settings, flag); }, stop_from(stop));
      },
      py::arg("engine"), py::arg("reader"), py::arg("settings"), py::arg("stop") = py::none(),
      "run_benchmark(engine: Engine, reader: BatchReader, settings: RunSettings, stop: StopFlag | None = None) "
      "-> RunResult\n\n"
      "Times `engine` over batches from `reader` (wrapping around at the end of a pass) as `settings` says. "
      "The GIL is released for the whole run; Python-implemented engines re-acquire it per call. Raises "
      "InvalidArgument for inconsistent settings (reader batch != batch_size, unsupported batch, inflight > "
      "engine.max_inflight(), durations that do not fit in max_duration_ms). A raised `stop` ends the run with "
      "what it measured (stop_reason kInterrupted); Ctrl-C raises RunInterrupted whose .result holds it.");

  py::class_<ScenarioResult, std::shared_ptr<ScenarioResult>>(m, "ScenarioResult", R"doc(
Outcome of run_server() / run_multistream(). Times are ms from the schedule's start. A query's latency
runs from its SCHEDULED arrival to its completion (queueing behind a slow query counts: no coordinated
omission); issue_delay = issued - scheduled = queue_wait (no free request slot) + scheduler_lateness (the
harness itself). valid / invalid_reasons: LoadGen-style verdict (latency bound at bound_percentile,
min_duration_ms, min_query_count, nothing cut off by max_duration_ms).)doc")
      .def_readonly("scenario", &ScenarioResult::scenario)
      .def_readonly("queries_scheduled", &ScenarioResult::queries_scheduled)
      .def_readonly("queries", &ScenarioResult::queries, "queries completed")
      .def_readonly("requests", &ScenarioResult::requests)
      .def_readonly("samples_per_query", &ScenarioResult::samples_per_query)
      .def_readonly("samples_processed", &ScenarioResult::samples_processed)
      .def_readonly("warmup_iterations", &ScenarioResult::warmup_iterations)
      .def_readonly("target_qps", &ScenarioResult::target_qps)
      .def_readonly("scheduled_qps", &ScenarioResult::scheduled_qps, "the generated schedule's own rate")
      .def_readonly("achieved_qps", &ScenarioResult::achieved_qps, "queries / duration_ms")
      .def_readonly("duration_ms", &ScenarioResult::duration_ms, "schedule start to the last completion")
      .def_readonly("latency", &ScenarioResult::latency)
      .def_readonly("issue_delay", &ScenarioResult::issue_delay)
      .def_readonly("queue_wait", &ScenarioResult::queue_wait)
      .def_readonly("scheduler_lateness", &ScenarioResult::scheduler_lateness)
      .def_readonly("late_issues", &ScenarioResult::late_issues)
      .def_readonly("late_threshold_ms", &ScenarioResult::late_threshold_ms)
      .def_readonly("latency_bound_ms", &ScenarioResult::latency_bound_ms)
      .def_readonly("bound_percentile", &ScenarioResult::bound_percentile)
      .def_readonly("latency_at_percentile", &ScenarioResult::latency_at_percentile)
      .def_readonly("valid", &ScenarioResult::valid)
      .def_readonly("invalid_reasons", &ScenarioResult::invalid_reasons)
      .def_readonly("stop_reason", &ScenarioResult::stop_reason,
                    "why issuing ended: kMinimumsMet = the whole schedule was issued")
      .def_property_readonly(
          "stopped_on_max_duration", [](const ScenarioResult& r) { return r.stop_reason == StopReason::kMaxDuration; },
          "max_duration_ms stopped issuing before the schedule's end")
      .def_property_readonly(
          "interrupted", [](const ScenarioResult& r) { return r.stop_reason == StopReason::kInterrupted; },
          "a StopFlag (Ctrl-C) stopped issuing: the figures cover the queries that completed")
      .def_property_readonly("scheduled_ms", [](py::object self) { return view_of(self.cast<ScenarioResult&>().scheduled_ms, self); })
      .def_property_readonly("issued_ms", [](py::object self) { return view_of(self.cast<ScenarioResult&>().issued_ms, self); })
      .def_property_readonly("ready_ms", [](py::object self) { return view_of(self.cast<ScenarioResult&>().ready_ms, self); },
                             "when a request slot was free for the query (max of scheduled and slot free)")
      .def_property_readonly("completed_ms", [](py::object self) { return view_of(self.cast<ScenarioResult&>().completed_ms, self); })
      .def_property_readonly("query_devices", [](py::object self) { return view_of_t(self.cast<ScenarioResult&>().query_devices, self); })
      .def_readonly("max_batch", &ScenarioResult::max_batch, "the most queries one request could carry")
      .def_readonly("keep_warm_threads", &ScenarioResult::keep_warm_threads)
      .def_readonly("keep_warm_cpu_ms", &ScenarioResult::keep_warm_cpu_ms,
                    "CPU time the keep-warm threads spent spinning, summed over threads")
      .def_readonly("mean_queries_per_request", &ScenarioResult::mean_queries_per_request)
      .def_readonly("padding_rows", &ScenarioResult::padding_rows,
                    "rows the engine ran that carried no query (padding up to an offered batch size)")
      .def_property_readonly("request_issued_ms", [](py::object self) { return view_of(self.cast<ScenarioResult&>().request_issued_ms, self); },
                             "per request, in issue order: when it reached the engine")
      .def_property_readonly("request_completed_ms", [](py::object self) { return view_of(self.cast<ScenarioResult&>().request_completed_ms, self); })
      .def_property_readonly("request_queries", [](py::object self) { return view_of_t(self.cast<ScenarioResult&>().request_queries, self); },
                             "queries each request carried")
      .def_property_readonly("request_rows", [](py::object self) { return view_of_t(self.cast<ScenarioResult&>().request_rows, self); },
                             "rows the engine ran for each request")
      .def_readonly("stage_means_ms", &ScenarioResult::stage_means_ms)
      .def_property_readonly(
          "stage_samples_ms", [](py::object self) { return stage_views(self.cast<ScenarioResult&>().stage_samples_ms, self); },
          "{stage: numpy view} per request, in issue order")
      .def_readonly("devices", &ScenarioResult::devices)
      .def_readonly("warnings", &ScenarioResult::warnings)
      .def("__repr__", [](const ScenarioResult& r) {
        std::ostringstream os;
        os.precision(4);
        os << "ScenarioResult(scenario='" << r.scenario << "', queries=" << r.queries << ", achieved_qps="
           << r.achieved_qps << ", p99_ms=" << r.latency.p99 << ", valid=" << (r.valid ? "True" : "False") << ")";
        return os.str();
      });

  m.def(
      "run_devices",
      [](const py::object& engines, pymfn::BatchReader& reader, const RunSettings& settings, const py::object& names,
         const py::object& stop) {
        auto lanes = lanes_from(engines, names);
        return run_watched<RunResult>(
            [&](const StopFlag* flag) { return pymfn::run_devices(lanes, reader, settings, flag); }, stop_from(stop));
      },
      py::arg("engines"), py::arg("reader"), py::arg("settings"), py::arg("names") = py::none(),
      py::arg("stop") = py::none(),
      "run_devices(engines: list[Engine], reader, settings, names=None, stop=None) -> RunResult\n\n"
      "Offline / single-stream on several devices at once: one engine per device (distinct objects), each "
      "driven from its own thread with settings.inflight requests, all fed from the one reader and timed on "
      "one clock. The result's figures are the aggregate (samples / common wall time); .devices holds each "
      "device's own, .start_skew_ms / .end_skew_ms how far apart they started and finished. One engine = "
      "run_benchmark. GIL released.");

  m.def(
      "run_server",
      [](const py::object& engines, pymfn::BatchReader& reader, const RunSettings& settings, const py::object& names,
         const py::object& stop) {
        auto lanes = lanes_from(engines, names);
        return run_watched<ScenarioResult>(
            [&](const StopFlag* flag) { return pymfn::run_server(lanes, reader, settings, flag); }, stop_from(stop));
      },
      py::arg("engines"), py::arg("reader"), py::arg("settings"), py::arg("names") = py::none(),
      py::arg("stop") = py::none(),
      "run_server(engines: Engine | list[Engine], reader, settings, names=None, stop=None) -> ScenarioResult\n\n"
      "LoadGen server scenario: Poisson arrivals at settings.target_qps (seeded, generated before the run), "
      "each query one request of batch_size rows sent to the free request slot idle longest (over every "
      "engine = device); latency from the scheduled arrival; VALID against settings.latency_bound_ms at "
      "bound_percentile, min_duration_ms and min_query_count. GIL released.");

  m.def(
      "run_multistream",
      [](const py::object& engines, pymfn::BatchReader& reader, const RunSettings& settings, const py::object& names,
         const py::object& stop) {
        auto lanes = lanes_from(engines, names);
        return run_watched<ScenarioResult>(
            [&](const StopFlag* flag) { return pymfn::run_multistream(lanes, reader, settings, flag); }, stop_from(stop));
      },
      py::arg("engines"), py::arg("reader"), py::arg("settings"), py::arg("names") = py::none(),
      py::arg("stop") = py::none(),
      "run_multistream(engines, reader, settings, names=None, stop=None) -> ScenarioResult\n\n"
      "LoadGen multi-stream scenario: a query of settings.samples_per_query samples (split into requests of "
      "batch_size rows) every query_interval_ms; a query's latency runs from its scheduled time to its last "
      "request's completion; VALID when its bound_percentile is <= latency_bound_ms (0: the interval).");

  m.def("poisson_schedule", &pymfn::poisson_schedule, py::arg("qps"), py::arg("min_count"),
        py::arg("min_duration_ms"), py::arg("max_duration_ms") = 0.0, py::arg("seed") = 0,
        "The server scenario's arrival times (ms), exactly as run_server generates them for these settings.");

  m.def(
      "infer_all",
      [](pymfn::Engine& engine, pymfn::BatchReader& reader, size_t inflight) {
        Outputs raw = std::move(*run_watched<Outputs>(
            [&](const StopFlag* flag) { return pymfn::infer_all(engine, reader, inflight, flag); }, nullptr));
        std::vector<pymfn::TensorInfo> outs;
        {
          py::gil_scoped_release release;
          outs = engine.outputs();
        }
        py::list result;
        for (size_t i = 0; i < raw.size(); ++i) {
          const auto& o = outs[i];
          auto* owned = new std::vector<uint8_t>(std::move(raw[i]));
          py::capsule owner(owned, [](void* p) { delete static_cast<std::vector<uint8_t>*>(p); });
          std::vector<py::ssize_t> shape{static_cast<py::ssize_t>(owned->size() / o.sample_bytes)};
          bool known = true;
          for (size_t d = 1; d < o.shape.size(); ++d) known = known && o.shape[d] >= 0;
          if (known && o.shape.size() >= 1) {
            for (size_t d = 1; d < o.shape.size(); ++d) shape.push_back(static_cast<py::ssize_t>(o.shape[d]));
          } else {
            shape.push_back(static_cast<py::ssize_t>(o.sample_bytes / pymfn::dtype_size(o.dtype)));
          }
          result.append(py::array(py::dtype(pymfn::dtype_name(o.dtype)), shape, owned->data(), owner));
        }
        return result;
      },
      py::arg("engine"), py::arg("reader"), py::arg("inflight") = 1,
      "infer_all(engine: Engine, reader: BatchReader, inflight: int = 1) -> list[np.ndarray]\n\n"
      "One pass over `reader`: one array per model output, shape [n_valid, *output_shape[1:]], in dataset "
      "order, padding rows of the last batch dropped. `inflight` > 1 keeps that many asynchronous requests "
      "running (the engine must offer them: max_inflight()). GIL released while running.");

  m.def(
      "compute_stats", [](std::vector<double> samples) { return pymfn::compute_stats(std::move(samples)); },
      py::arg("samples"),
      "compute_stats(samples: Sequence[float]) -> LatencyStats: the runner's statistics over any samples (ms).");
}

}  // namespace pymfn_bindings
