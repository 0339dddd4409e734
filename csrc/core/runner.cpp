// The benchmark runner. Timestamps come from std::chrono::steady_clock (monotonic, unlike msame's
// gettimeofday); nothing is allocated inside the timed loop except the sample vectors' growth.
#include "core/runner.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <set>
#include <sstream>

#include "core/errors.h"
#include "core/limits.h"
#include "core/runner_internal.h"

namespace pymfn {

namespace detail {

const char* const kStageNames[3] = {"h2d_ms", "compute_ms", "d2h_ms"};

AlignedBuffer::AlignedBuffer(size_t bytes) : size_(bytes) {
  const size_t alloc = std::max<size_t>(64, (bytes + 63) / 64 * 64);
  ptr_ = std::aligned_alloc(64, alloc);
  if (!ptr_) throw Error("out of memory allocating " + std::to_string(alloc) + " bytes of I/O buffer");
}

AlignedBuffer::~AlignedBuffer() { std::free(ptr_); }

std::string fmt(double v, int prec) {
  std::ostringstream os;
  os.setf(std::ios::fixed);
  os.precision(prec);
  os << v;
  return os.str();
}

namespace {

// Elements of `shape`, or 0 when a dimension is unknown (< 0) or the product overflows.
size_t known_elements(const std::vector<int64_t>& shape) {
  size_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || (d > 0 && n > SIZE_MAX / static_cast<size_t>(d))) return 0;
    n *= static_cast<size_t>(d);
  }
  return n;
}

// A per-sample shape that says how the sample's bytes are laid out: at least two dimensions (a flat
// vector says nothing about layout) that account for exactly `bytes` of `dtype`.
bool layout_known(const std::vector<int64_t>& shape, DType dtype, size_t bytes) {
  const size_t n = known_elements(shape);
  return shape.size() >= 2 && n != 0 && n <= SIZE_MAX / dtype_size(dtype) && n * dtype_size(dtype) == bytes;
}

}  // namespace

std::string engine_name(Engine& engine) {
  std::string kind = "engine", path = "(unnamed)";
  try {
    kind = engine.kind();
  } catch (...) {
  }
  try {
    path = engine.model_path();
  } catch (...) {
  }
  return kind + " model " + path;
}

// The one check of a reader against the engine, shared by run_benchmark and infer_all: the model has
// exactly one input, the batch size is one the model offers, and the reader's samples are exactly
// what that input takes (bytes per sample, element type, and layout when both sides state one).
// Anything else would make the engine read past the batch buffer or compute garbage, so it is refused
// before prepare() and the first execute, naming both sides.
void check_reader_fits_engine(Engine& engine, const BatchReader& reader, size_t batch, const char* what) {
  const auto ins = engine.inputs();
  if (ins.size() != 1)
    throw InvalidArgument(std::string(what) + ": the engine's model has " + std::to_string(ins.size()) +
                          " inputs; a BatchReader feeds exactly one");
  const auto supported = engine.supported_batches();
  if (!supported.empty() && std::find(supported.begin(), supported.end(), batch) == supported.end()) {
    std::string list;
    for (size_t b : supported) list += (list.empty() ? "" : ", ") + std::to_string(b);
    throw InvalidArgument(std::string(what) + ": batch size " + std::to_string(batch) + " is not supported by " +
                          engine_name(engine) + " (supported: " + list + ")");
  }
  const TensorInfo& in = ins[0];
  const SampleSpec& spec = reader.sample_spec();
  if (in.sample_bytes == 0)
    throw InvalidArgument(std::string(what) + ": " + engine_name(engine) + " input '" + in.name +
                          "' reports 0 bytes per sample");
  const std::vector<int64_t> model_sample(in.shape.begin() + (in.shape.empty() ? 0 : 1), in.shape.end());
  const char* differs = nullptr;
  if (spec.bytes != in.sample_bytes)
    differs = "the sample sizes differ";
  else if (spec.dtype != in.dtype)
    differs = "the element types differ";
  else if (layout_known(spec.shape, spec.dtype, spec.bytes) && layout_known(model_sample, in.dtype, in.sample_bytes) &&
           spec.shape != model_sample)
    differs = "the sample shapes differ";
  if (differs == nullptr) return;
  const std::string path = spec.path.empty() ? spec.origin : spec.path;
  throw ShapeMismatch(path,
                      std::string(what) + ": dataset " + spec.origin + ": " + std::to_string(spec.bytes) +
                          " bytes per sample (" + dtype_name(spec.dtype) + " " + shape_str(spec.shape) + ") but " +
                          engine_name(engine) + " input '" + in.name + "' expects " +
                          std::to_string(in.sample_bytes) + " bytes (" + dtype_name(in.dtype) + " " +
                          shape_str(model_sample) + "): " + differs,
                      InputError::WholeMessage{});
}

// Output buffers: every declared output needs a size, and batch x size x requests must be allocatable.
void check_output_sizes(const std::vector<TensorInfo>& outs, size_t batch, size_t slots, const char* what) {
  for (const auto& o : outs) {
    const std::string label = std::string(what) + ": model output '" + o.name + "'";
    if (o.sample_bytes == 0) throw InvalidArgument(label + " reports 0 bytes per sample");
    const size_t per_slot = checked_buffer_bytes(label, batch, "rows", o.sample_bytes);
    checked_buffer_bytes(label, slots, "requests in flight", per_slot);
  }
}

// A batch a reader handed out must have the geometry the engine was prepared for: exactly `batch`
// rows of sample_spec().bytes each, at a real address. Readers guarantee it; the runner still refuses
// anything else rather than let an engine read past a buffer.
void check_view(const BatchView& v, size_t batch, const char* what) {
  if (v.data == nullptr || v.batch_rows != batch || v.valid_rows == 0 || v.valid_rows > v.batch_rows)
    throw Error(std::string(what) + ": the reader returned a batch of " + std::to_string(v.batch_rows) + " rows (" +
                std::to_string(v.valid_rows) + " valid" + (v.data == nullptr ? ", no data" : "") +
                "), expected " + std::to_string(batch));
}

void check_common_settings(const RunSettings& st, const std::vector<Engine*>& engines, const BatchReader& reader,
                           const char* what) {
  const std::string w = std::string(what) + ": ";
  if (st.batch_size < 1) throw InvalidArgument("RunSettings.batch_size must be >= 1");
  if (st.min_iterations < 1) throw InvalidArgument("RunSettings.min_iterations must be >= 1");
  const std::pair<const char*, double> durations[] = {
      {"warmup_ms", st.warmup_ms}, {"min_duration_ms", st.min_duration_ms}, {"max_duration_ms", st.max_duration_ms}};
  for (const auto& d : durations)
    if (!(d.second >= 0) || !std::isfinite(d.second))
      throw InvalidArgument(std::string("RunSettings.") + d.first + " must be a finite number >= 0, got " +
                            fmt(d.second, 1));
  // The cap counts from the start of the run: warm-up and the minimum measurement must both fit in it.
  if (st.max_duration_ms > 0 && st.warmup_ms >= st.max_duration_ms)
    throw InvalidArgument("RunSettings.warmup_ms (" + fmt(st.warmup_ms, 1) + ") is not below max_duration_ms (" +
                          fmt(st.max_duration_ms, 1) + "), which caps the whole run, warm-up included; "
                          "nothing would be measured");
  if (st.max_duration_ms > 0 && st.max_duration_ms < st.min_duration_ms + st.warmup_ms)
    throw InvalidArgument("RunSettings.max_duration_ms (" + fmt(st.max_duration_ms, 1) +
                          ") is below min_duration_ms (" + fmt(st.min_duration_ms, 1) + ") + warmup_ms (" +
                          fmt(st.warmup_ms, 1) + "): the cap covers the whole run, warm-up included; use 0 for no cap");
  if (!(st.cv_warning_threshold >= 0)) throw InvalidArgument("RunSettings.cv_warning_threshold must be >= 0");
  if (st.inflight < 1) throw InvalidArgument("RunSettings.inflight must be >= 1");
  for (Engine* e : engines) {
    if (e == nullptr) throw InvalidArgument(w + "an engine is missing (null)");
    if (st.inflight > e->max_inflight())
      throw InvalidArgument("RunSettings.inflight = " + std::to_string(st.inflight) + " but the " + e->kind() +
                            " engine offers at most " + std::to_string(e->max_inflight()) +
                            " requests in flight (open it with more requests)");
  }
  if (st.scope != TimingScope::kCompute && st.scope != TimingScope::kEndToEnd)
    throw InvalidArgument("RunSettings.scope is not a valid TimingScope");
  if (reader.batch_size() != st.batch_size)
    throw InvalidArgument("the reader yields batches of " + std::to_string(reader.batch_size()) +
                          " rows but RunSettings.batch_size = " + std::to_string(st.batch_size));
  if (reader.num_batches() == 0) throw InvalidArgument("the reader yields no batches (empty dataset)");
}

void check_lanes_and_prepare(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                             const char* what, bool scheduled, size_t engine_batch) {
  const size_t batch = engine_batch == 0 ? st.batch_size : engine_batch;
  if (lanes.empty()) throw InvalidArgument(std::string(what) + ": no devices (lanes) to run on");
  std::vector<Engine*> engines;
  std::set<Engine*> seen;
  for (const Lane& l : lanes) {
    if (l.engine == nullptr) throw InvalidArgument(std::string(what) + ": device '" + l.name + "' has no engine");
    if (!seen.insert(l.engine).second)
      throw InvalidArgument(std::string(what) + ": device '" + l.name +
                            "' uses the same engine object as another device; open one engine per device");
    engines.push_back(l.engine);
  }
  check_common_settings(st, engines, reader, what);
  if (scheduled && st.inflight > 1)
    for (const Lane& l : lanes)
      if (!l.engine->slots_thread_safe())
        throw InvalidArgument(std::string(what) + ": RunSettings.inflight = " + std::to_string(st.inflight) +
                              " but the " + l.engine->kind() +
                              " engine's request slots cannot be started and awaited from different threads at "
                              "once; use one engine per lane (several devices) with inflight 1");
  for (Engine* e : engines) check_reader_fits_engine(*e, reader, batch, what);
  for (Engine* e : engines) {
    if (engine_batch != 0)
      e->prepare_up_to(batch);
    else
      e->prepare(batch);
    // Again after prepare(): an engine may only know its final shapes then (Python engines cache them there).
    check_reader_fits_engine(*e, reader, batch, what);
    check_output_sizes(e->outputs(), batch, st.inflight, what);
  }
  checked_buffer_bytes(std::string(what) + ": request slots", lanes.size(), "devices", st.inflight);
}

void StageRecorder::reserve(size_t n) {
  for (auto& v : values_) v.reserve(n);
}

void StageRecorder::add(const StageTimes& t) {
  values_[0].push_back(t.h2d_ms);
  values_[1].push_back(t.compute_ms);
  values_[2].push_back(t.d2h_ms);
}

std::map<std::string, double> StageRecorder::means() const {
  std::map<std::string, double> out;
  for (int i = 0; i < 3; ++i) {
    double sum = 0;
    size_t n = 0;
    for (double v : values_[i])
      if (v >= 0) {
        sum += v;
        ++n;
      }
    if (n > 0) out[kStageNames[i]] = sum / static_cast<double>(n);
  }
  return out;
}

std::map<std::string, std::vector<double>> StageRecorder::complete_samples(std::vector<std::string>* partial) const {
  std::map<std::string, std::vector<double>> out;
  for (int i = 0; i < 3; ++i) {
    const auto& v = values_[i];
    const auto reported = static_cast<size_t>(std::count_if(v.begin(), v.end(), [](double x) { return x >= 0; }));
    if (reported == 0) continue;
    if (reported == v.size())
      out[kStageNames[i]] = v;
    else if (partial)
      partial->push_back(std::string(kStageNames[i]) + " (reported on " + std::to_string(reported) + " of " +
                         std::to_string(v.size()) + " requests)");
  }
  return out;
}

StageTimes StageRecorder::at(size_t i) const {
  StageTimes t;
  t.h2d_ms = values_[0].at(i);
  t.compute_ms = values_[1].at(i);
  t.d2h_ms = values_[2].at(i);
  return t;
}

void add_stage_samples(std::map<std::string, std::vector<double>>* samples, std::vector<std::string>* warnings,
                       const StageRecorder& stages) {
  std::vector<std::string> partial;
  *samples = stages.complete_samples(&partial);
  for (const auto& p : partial)
    warnings->push_back("engine stage " + p + ": its per-request samples are left out (the mean keeps them)");
}

void add_noisy_warning(std::vector<std::string>* warnings, const LatencyStats& s, double threshold) {
  if (s.cv > threshold)
    warnings->push_back("noisy run: latency cv = " + fmt(s.cv, 4) + " > threshold " + fmt(threshold, 4) + " (std " +
                        fmt(s.std) + " ms, mean " + fmt(s.mean) + " ms); close other programs, pin threads or run longer");
}

double percentile_of_sorted(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0.0;
  // numpy "linear": h = (n-1) q, interpolate between floor(h) and floor(h)+1.
  const double h = (static_cast<double>(sorted.size()) - 1.0) * q;
  const auto lo = static_cast<size_t>(std::floor(h));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

void make_request(Request* r, const std::vector<TensorInfo>& outs, size_t batch, size_t input_bytes, bool copy_input) {
  r->binding.batch_rows = batch;
  r->binding.outputs.clear();
  r->outputs.clear();
  for (const auto& o : outs) {
    r->outputs.push_back(std::make_unique<AlignedBuffer>(o.sample_bytes * batch));
    r->binding.outputs.push_back(r->outputs.back()->data());
  }
  r->input_bytes = input_bytes;
  r->input_copy = copy_input ? std::make_unique<AlignedBuffer>(input_bytes) : nullptr;
  // Rows a request runs without data (padding up to the engine's batch) hold zeros or an earlier query's
  // data, never uninitialised memory.
  if (r->input_copy) std::memset(r->input_copy->data(), 0, input_bytes);
  r->binding.inputs.assign(1, r->input_copy ? r->input_copy->data() : nullptr);
}

void bind_input(Request* r, const BatchView& v) {
  r->view = v;
  if (r->input_copy) {
    std::memcpy(r->input_copy->data(), v.data, r->input_bytes);
  } else {
    r->binding.inputs[0] = v.data;
  }
}

BatchView next_batch(BatchReader& reader, const char* what) {
  BatchView v;
  if (!reader.next(&v)) {
    reader.rewind();
    if (!reader.next(&v)) throw InvalidArgument("the reader yields no batches (empty dataset)");
  }
  check_view(v, reader.batch_size(), what);
  return v;
}

void wait_quietly(Engine& engine, std::vector<bool>& busy) {
  for (size_t j = 0; j < busy.size(); ++j)
    if (busy[j]) {
      try {
        engine.wait(j);
      } catch (...) {
      }
      busy[j] = false;
    }
}

RunLimits::RunLimits(const RunSettings& st, const StopFlag* stop)
    : st_(st), stop_(stop), begin_(Clock::now()), deadline_(Clock::time_point::max()),
      poll_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(kStopPollMs))) {
  if (st.max_duration_ms > 0)
    deadline_ = begin_ + std::chrono::duration_cast<Clock::duration>(
                             std::chrono::duration<double, std::milli>(st.max_duration_ms));
}

std::optional<StopReason> RunLimits::forced(Clock::time_point now) const {
  if (interrupted()) return StopReason::kInterrupted;
  if (now >= deadline_) return StopReason::kMaxDuration;
  return std::nullopt;
}

std::optional<StopReason> RunLimits::measured(size_t measured, double measured_ms, Clock::time_point now) const {
  if (measured >= st_.min_iterations && measured_ms >= st_.min_duration_ms) return StopReason::kMinimumsMet;
  return forced(now);
}

bool RunLimits::warm(size_t done, Clock::time_point now) const {
  return done >= st_.warmup_iterations && ms_between(begin_, now) >= st_.warmup_ms;
}

std::string RunLimits::cause(StopReason reason) const {
  return reason == StopReason::kInterrupted
             ? std::string("interrupted")
             : "stopped on max_duration_ms = " + fmt(st_.max_duration_ms, 1) + " (the cap includes warm-up)";
}

std::string RunLimits::warning(StopReason reason, size_t measured, size_t warmup_done) const {
  if (reason == StopReason::kMinimumsMet) return "";
  const std::string asked = "(min_iterations = " + std::to_string(st_.min_iterations) +
                            ", min_duration_ms = " + fmt(st_.min_duration_ms, 1) + ")";
  const std::string why = cause(reason);
  if (measured == 0)
    return why + " during warm-up, after " + std::to_string(warmup_done) + " warm-up requests: nothing was measured " +
           asked;
  return why + " after " + std::to_string(measured) + " iterations " + asked +
         ": statistics rest on fewer samples than asked for";
}

}  // namespace detail

using detail::check_output_sizes;
using detail::check_reader_fits_engine;
using detail::check_view;
using detail::Request;

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kMinimumsMet:
      return "minimums met";
    case StopReason::kMaxDuration:
      return "max duration";
    case StopReason::kInterrupted:
      return "interrupted";
  }
  return "unknown";
}

LatencyStats compute_stats(std::vector<double> samples) {
  LatencyStats s;
  s.count = samples.size();
  if (samples.empty()) return s;
  for (double v : samples)
    if (!std::isfinite(v)) throw InvalidArgument("compute_stats: samples must be finite numbers");
  std::sort(samples.begin(), samples.end());
  const size_t n = samples.size();
  auto pct = [&](double q) { return detail::percentile_of_sorted(samples, q); };
  s.min = samples.front();
  s.max = samples.back();
  s.median = pct(0.5);
  s.p90 = pct(0.90);
  s.p95 = pct(0.95);
  s.p99 = pct(0.99);
  s.p999 = pct(0.999);
  // Two-pass mean/variance: samples are small positive numbers, so this is exact enough and stable.
  const double sum = std::accumulate(samples.begin(), samples.end(), 0.0);
  s.mean = sum / static_cast<double>(n);
  double ss = 0;
  for (double v : samples) ss += (v - s.mean) * (v - s.mean);
  s.std = std::sqrt(ss / static_cast<double>(n));
  s.cv = s.mean > 0 ? s.std / s.mean : 0.0;
  return s;
}

std::vector<std::vector<uint8_t>> infer_all(Engine& engine, BatchReader& reader, size_t inflight, const StopFlag* stop) {
  const size_t batch = reader.batch_size();
  if (batch < 1) throw InvalidArgument("infer_all: the reader's batch size is 0");
  if (inflight < 1) throw InvalidArgument("infer_all: inflight must be >= 1");
  if (inflight > engine.max_inflight())
    throw InvalidArgument("infer_all: inflight = " + std::to_string(inflight) + " but the " + engine.kind() +
                          " engine offers at most " + std::to_string(engine.max_inflight()) +
                          " requests in flight (open it with more requests)");
  check_reader_fits_engine(engine, reader, batch, "infer_all");
  engine.prepare(batch);
  check_reader_fits_engine(engine, reader, batch, "infer_all");
  const auto outs = engine.outputs();
  const size_t k = inflight;
  const bool async = k > 1;
  check_output_sizes(outs, batch, k, "infer_all");
  const size_t input_bytes = reader.sample_spec().bytes * batch;

  std::vector<Request> slots(k);
  for (auto& s : slots) detail::make_request(&s, outs, batch, input_bytes, async);
  std::vector<std::vector<uint8_t>> result(outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    const size_t rows = checked_buffer_bytes("infer_all: " + reader.sample_spec().origin, reader.num_batches(),
                                             "batches", batch);
    result[i].reserve(checked_buffer_bytes("infer_all: model output '" + outs[i].name + "'", rows, "samples",
                                           outs[i].sample_bytes));
  }

  size_t rows_fetched = 0;
  // Next batch into `s`; false at the end of the pass.
  auto take = [&](Request& s) {
    BatchView v;
    if (!reader.next(&v)) return false;
    check_view(v, batch, "infer_all");
    if (v.first_sample != rows_fetched)
      throw Error("infer_all: reader returned sample " + std::to_string(v.first_sample) + " where " +
                  std::to_string(rows_fetched) + " was expected (outputs must stay in dataset order)");
    rows_fetched += v.valid_rows;
    detail::bind_input(&s, v);  // copies when async: a view lives only until the next next()
    return true;
  };
  auto keep = [&](const Request& s) {
    for (size_t i = 0; i < outs.size(); ++i) {
      const auto* p = static_cast<const uint8_t*>(s.binding.outputs[i]);
      result[i].insert(result[i].end(), p, p + s.view.valid_rows * outs[i].sample_bytes);
    }
  };

  // Before each batch: a raised StopFlag ends the pass (the caller learns how far it got).
  auto check_stop = [&] {
    if (stop != nullptr && stop->requested())
      throw Interrupted("infer_all: interrupted after " + std::to_string(rows_fetched) + " samples (" +
                        std::to_string(reader.num_batches()) + " batches in a pass)");
  };

  reader.rewind();
  if (!async) {
    Request& s = slots[0];
    while ((check_stop(), take(s))) {
      engine.execute(s.binding);
      keep(s);
    }
  } else {
    // Requests are started and collected round-robin, so outputs come back in dataset order.
    std::vector<bool> busy(k, false);
    try {
      size_t launched = 0;
      for (; launched < k && (check_stop(), take(slots[launched])); ++launched) {
        engine.start(launched, slots[launched].binding);
        busy[launched] = true;
      }
      for (size_t next = 0; busy[next]; next = (next + 1) % k) {
        engine.wait(next);
        busy[next] = false;
        keep(slots[next]);
        check_stop();
        if (take(slots[next])) {
          engine.start(next, slots[next].binding);
          busy[next] = true;
        }
      }
    } catch (...) {
      detail::wait_quietly(engine, busy);
      throw;
    }
  }
  reader.rewind();
  return result;
}

}  // namespace pymfn
