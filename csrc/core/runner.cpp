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

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

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

void add_stage_samples(RunResult* r, const StageRecorder& stages) {
  std::vector<std::string> partial;
  r->stage_samples_ms = stages.complete_samples(&partial);
  for (const auto& p : partial)
    r->warnings.push_back("engine stage " + p + ": its per-request samples are left out (the mean keeps them)");
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

std::string RunLimits::warning(StopReason reason, size_t measured, size_t warmup_done) const {
  if (reason == StopReason::kMinimumsMet) return "";
  const std::string asked = "(min_iterations = " + std::to_string(st_.min_iterations) +
                            ", min_duration_ms = " + fmt(st_.min_duration_ms, 1) + ")";
  const std::string why = reason == StopReason::kInterrupted
                              ? std::string("interrupted")
                              : "stopped on max_duration_ms = " + fmt(st_.max_duration_ms, 1) +
                                    " (the cap includes warm-up)";
  if (measured == 0)
    return why + " during warm-up, after " + std::to_string(warmup_done) + " warm-up requests: nothing was measured " +
           asked;
  return why + " after " + std::to_string(measured) + " iterations " + asked +
         ": statistics rest on fewer samples than asked for";
}

}  // namespace detail

namespace {

using detail::AlignedBuffer;
using detail::Clock;
using detail::ms_between;
using detail::check_output_sizes;
using detail::check_reader_fits_engine;
using detail::check_view;
using detail::fmt;
using detail::StageRecorder;

// Per-slot memory: output buffers always; an input copy only when several requests are in flight,
// because a reader's batch is only valid until its next next() call.
struct Slot {
  std::vector<std::unique_ptr<AlignedBuffer>> outputs;
  std::unique_ptr<AlignedBuffer> input_copy;
  IoBinding binding;
  BatchView view;
  Clock::time_point started;
  bool measured = false;  // started after measurement began
};

// Fetches the next batch, starting a new pass when the current one is over.
void fetch(BatchReader& reader, BatchView* view) {
  if (!reader.next(view)) {
    reader.rewind();
    if (!reader.next(view)) throw InvalidArgument("the reader yields no batches (empty dataset)");
  }
  check_view(*view, reader.batch_size(), "run_benchmark");
}

void make_slot(Slot* slot, const std::vector<TensorInfo>& outs, size_t batch, size_t input_bytes, bool copy_input) {
  slot->binding.batch_rows = batch;
  slot->binding.inputs.assign(1, nullptr);
  slot->binding.outputs.clear();
  for (const auto& o : outs) {
    slot->outputs.push_back(std::make_unique<AlignedBuffer>(o.sample_bytes * batch));
    slot->binding.outputs.push_back(slot->outputs.back()->data());
  }
  if (copy_input) slot->input_copy = std::make_unique<AlignedBuffer>(input_bytes);
}

void point_input(Slot* slot, size_t input_bytes) {
  if (slot->input_copy) {
    std::memcpy(slot->input_copy->data(), slot->view.data, input_bytes);
    slot->binding.inputs[0] = slot->input_copy->data();
  } else {
    slot->binding.inputs[0] = slot->view.data;
  }
}

// Waits for every request still marked busy, ignoring their errors: called while an exception is
// already propagating, so the caller never returns while the engine may still write into its buffers.
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

}  // namespace

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
  // numpy "linear": h = (n-1) q, interpolate between floor(h) and floor(h)+1.
  auto pct = [&](double q) {
    const double h = (static_cast<double>(n) - 1.0) * q;
    const size_t lo = static_cast<size_t>(std::floor(h));
    const size_t hi = std::min(lo + 1, n - 1);
    return samples[lo] + (h - static_cast<double>(lo)) * (samples[hi] - samples[lo]);
  };
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

RunResult run_benchmark(Engine& engine, BatchReader& reader, const RunSettings& st, const StopFlag* stop) {
  // ---- validation: every message names the setting and the value.
  detail::check_common_settings(st, {&engine}, reader, "run_benchmark");
  check_reader_fits_engine(engine, reader, st.batch_size, "run_benchmark");

  engine.prepare(st.batch_size);
  // Again after prepare(): an engine may only know its final shapes then (Python engines cache them there).
  check_reader_fits_engine(engine, reader, st.batch_size, "run_benchmark");
  const auto outs = engine.outputs();
  const size_t k = st.inflight;
  const bool async = k > 1;
  check_output_sizes(outs, st.batch_size, k, "run_benchmark");
  // The reader's sample size (equal to the engine's, checked above) bounds every batch buffer.
  const size_t input_bytes = reader.sample_spec().bytes * st.batch_size;
  const bool e2e = st.scope == TimingScope::kEndToEnd;

  std::vector<Slot> slots(k);
  for (auto& s : slots) make_slot(&s, outs, st.batch_size, input_bytes, async);

  RunResult r;
  const size_t reserve = std::min<size_t>(st.min_iterations * 2 + 16, size_t(1) << 22);
  std::vector<double> lat;
  std::vector<double> starts;
  lat.reserve(reserve);
  starts.reserve(reserve);
  StageRecorder stages;
  stages.reserve(reserve);

  bool measuring = false;
  Clock::time_point first_start{}, last_end{};
  bool have_first = false;
  size_t warm_done = 0;

  auto record = [&](Slot& s, Clock::time_point end, const StageTimes& t) {
    if (!s.measured) {
      ++warm_done;
      return;
    }
    if (!have_first) {
      first_start = s.started;
      have_first = true;
    }
    lat.push_back(ms_between(s.started, end));
    starts.push_back(ms_between(first_start, s.started));
    last_end = std::max(last_end, end);
    r.samples_processed += s.view.valid_rows;
    stages.add(t);
  };

  reader.rewind();
  // The run's clock (and its max_duration_ms cap) starts here, with warm-up.
  const detail::RunLimits limits(st, stop);
  std::optional<StopReason> stop_why;
  // Before every request: end the run (true), or go on, moving from warm-up to measurement when it is due.
  auto must_stop = [&](Clock::time_point now) {
    if (!measuring) {
      stop_why = limits.forced(now);
      if (stop_why || !limits.warm(warm_done, now)) return stop_why.has_value();
      measuring = true;
    }
    // the reported wall time (first measured start to last end) is what min_duration_ms bounds
    stop_why = limits.measured(lat.size(), have_first ? ms_between(first_start, last_end) : 0.0, now);
    return stop_why.has_value();
  };

  if (!async) {
    Slot& s = slots[0];
    while (!must_stop(Clock::now())) {
      s.measured = measuring;
      if (e2e) s.started = Clock::now();
      fetch(reader, &s.view);
      point_input(&s, input_bytes);
      if (!e2e) s.started = Clock::now();
      const StageTimes t = engine.execute(s.binding);
      record(s, Clock::now(), t);
    }
  } else {
    // Round-robin over k requests: sample = one request's start-to-wait latency.
    auto launch = [&](Slot& s) {
      s.measured = measuring;
      if (e2e) s.started = Clock::now();
      fetch(reader, &s.view);
      point_input(&s, input_bytes);
      if (!e2e) s.started = Clock::now();
      engine.start(static_cast<size_t>(&s - slots.data()), s.binding);
    };
    std::vector<bool> inflight(k, false);
    size_t next = 0;
    try {
      for (size_t i = 0; i < k && !must_stop(Clock::now()); ++i) {
        launch(slots[i]);
        inflight[i] = true;
      }
      while (!stop_why) {
        Slot& s = slots[next];
        const StageTimes t = engine.wait(next);
        inflight[next] = false;
        record(s, Clock::now(), t);
        if (must_stop(Clock::now())) break;
        launch(s);
        inflight[next] = true;
        next = (next + 1) % k;
      }
      // Drain: requests started during measurement count; late warm-up ones do not.
      for (size_t i = 0; i < k; ++i) {
        const size_t j = (next + i) % k;
        if (!inflight[j]) continue;
        const StageTimes t = engine.wait(j);
        inflight[j] = false;
        record(slots[j], Clock::now(), t);
      }
    } catch (...) {
      wait_quietly(engine, inflight);
      throw;
    }
  }
  reader.rewind();

  r.iterations = lat.size();
  r.warmup_iterations = warm_done;
  r.wall_ms = have_first ? ms_between(first_start, last_end) : 0.0;
  r.throughput_per_s = r.wall_ms > 0 ? static_cast<double>(r.samples_processed) * 1000.0 / r.wall_ms : 0.0;
  r.latency = compute_stats(lat);
  r.stage_means_ms = stages.means();
  r.stop_reason = stop_why.value_or(StopReason::kMinimumsMet);
  const std::string stopped = limits.warning(r.stop_reason, r.iterations, warm_done);
  if (!stopped.empty()) r.warnings.push_back(stopped);
  if (r.latency.cv > st.cv_warning_threshold) {
    r.warnings.push_back("noisy run: latency cv = " + fmt(r.latency.cv, 4) + " > threshold " +
                         fmt(st.cv_warning_threshold, 4) + " (std " + fmt(r.latency.std) + " ms, mean " +
                         fmt(r.latency.mean) + " ms); close other programs, pin threads or run longer");
  }
  if (st.keep_samples) {
    r.samples_ms = std::move(lat);
    r.start_offsets_ms = std::move(starts);
    detail::add_stage_samples(&r, stages);
  }
  return r;
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

  std::vector<Slot> slots(k);
  for (auto& s : slots) make_slot(&s, outs, batch, input_bytes, async);
  std::vector<std::vector<uint8_t>> result(outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    const size_t rows = checked_buffer_bytes("infer_all: " + reader.sample_spec().origin, reader.num_batches(),
                                             "batches", batch);
    result[i].reserve(checked_buffer_bytes("infer_all: model output '" + outs[i].name + "'", rows, "samples",
                                           outs[i].sample_bytes));
  }

  size_t rows_fetched = 0;
  // Next batch into `s`; false at the end of the pass.
  auto take = [&](Slot& s) {
    if (!reader.next(&s.view)) return false;
    const BatchView& v = s.view;
    check_view(v, batch, "infer_all");
    if (v.first_sample != rows_fetched)
      throw Error("infer_all: reader returned sample " + std::to_string(v.first_sample) + " where " +
                  std::to_string(rows_fetched) + " was expected (outputs must stay in dataset order)");
    rows_fetched += v.valid_rows;
    point_input(&s, input_bytes);  // copies when async: a view lives only until the next next()
    return true;
  };
  auto keep = [&](const Slot& s) {
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
    Slot& s = slots[0];
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
      wait_quietly(engine, busy);
      throw;
    }
  }
  reader.rewind();
  return result;
}

}  // namespace pymfn
