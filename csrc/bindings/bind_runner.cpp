// Python face of the runner: RunSettings, TimingScope, LatencyStats, RunResult, run_benchmark,
// infer_all and compute_stats. Every blocking call releases the GIL; arrays handed back are views of
// C++-owned memory (no copies).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <sstream>
#include <vector>

#include "bindings/bindings.h"
#include "core/dtype.h"
#include "core/errors.h"
#include "core/runner.h"

namespace pymfn_bindings {

namespace {

using pymfn::LatencyStats;
using pymfn::RunResult;
using pymfn::RunSettings;
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

}  // namespace

void bind_runner(py::module_& m) {
  py::enum_<TimingScope>(m, "TimingScope", "What the timed region of one iteration contains.")
      .value("kCompute", TimingScope::kCompute,
             "only the engine's execute (or start..wait); the batch is fetched before the clock starts "
             "(msame / ais_bench scope)")
      .value("kEndToEnd", TimingScope::kEndToEnd, "reader.next() + execute + output fetch: what an application sees");

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
                      "stop measuring after this many ms even if the minimums are not met (a warning says so); "
                      "0 = no cap (default 60000)")
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
      .def("__repr__", [](const RunSettings& s) {
        std::ostringstream os;
        os << "RunSettings(batch_size=" << s.batch_size << ", warmup_iterations=" << s.warmup_iterations
           << ", warmup_ms=" << s.warmup_ms << ", min_iterations=" << s.min_iterations
           << ", min_duration_ms=" << s.min_duration_ms << ", max_duration_ms=" << s.max_duration_ms
           << ", inflight=" << s.inflight << ", scope='" << scope_name(s.scope) << "', keep_samples="
           << (s.keep_samples ? "True" : "False") << ", cv_warning_threshold=" << s.cv_warning_threshold << ")";
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

  py::class_<RunResult, std::shared_ptr<RunResult>>(m, "RunResult", "Outcome of run_benchmark().")
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
      .def_readonly("stopped_on_max_duration", &RunResult::stopped_on_max_duration)
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
      [](pymfn::Engine& engine, pymfn::BatchReader& reader, const RunSettings& settings) {
        std::shared_ptr<RunResult> r;
        {
          py::gil_scoped_release release;
          r = std::make_shared<RunResult>(pymfn::run_benchmark(engine, reader, settings));
        }
        return r;
      },
      py::arg("engine"), py::arg("reader"), py::arg("settings"),
      "run_benchmark(engine: Engine, reader: BatchReader, settings: RunSettings) -> RunResult\n\n"
      "Times `engine` over batches from `reader` (wrapping around at the end of a pass) as `settings` says. "
      "The GIL is released for the whole run; Python-implemented engines re-acquire it per call. Raises "
      "InvalidArgument for inconsistent settings (reader batch != batch_size, unsupported batch, inflight > "
      "engine.max_inflight()).");

  m.def(
      "infer_all",
      [](pymfn::Engine& engine, pymfn::BatchReader& reader, size_t inflight) {
        std::vector<std::vector<uint8_t>> raw;
        std::vector<pymfn::TensorInfo> outs;
        {
          py::gil_scoped_release release;
          raw = pymfn::infer_all(engine, reader, inflight);
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
