// Pieces the runner (runner.cpp) and the scenarios (scenarios.cpp) share. Internal: not part of the
// core's interface, no binding uses it directly.
#pragma once
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "core/engine.h"
#include "core/runner.h"

namespace pymfn {
namespace detail {

using Clock = std::chrono::steady_clock;

inline double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// When a run must end: the one rule every loop of the runner and the scenarios applies (warm-up,
// measurement, scheduling, waiting for devices). max_duration_ms caps the whole run, counted from the
// construction of this object (the start of the run, warm-up included); a raised StopFlag ends it at
// the next look; measurement also ends once its minimums are met.
class RunLimits {
 public:
  RunLimits(const RunSettings& st, const StopFlag* stop);

  Clock::time_point begin() const { return begin_; }
  // Clock::time_point::max() without a cap.
  Clock::time_point deadline() const { return deadline_; }
  bool interrupted() const { return stop_ != nullptr && stop_->requested(); }
  // Why the run must end now whatever its minimums (an interruption before the cap), or nothing.
  std::optional<StopReason> forced(Clock::time_point now) const;
  // During measurement: kMinimumsMet once `measured` requests over `measured_ms` reach both minimums
  // (checked first: a run that met them is complete even at the cap), else forced(now).
  std::optional<StopReason> measured(size_t measured, double measured_ms, Clock::time_point now) const;
  // Warm-up is over once `done` requests ran and warmup_ms passed since begin().
  bool warm(size_t done, Clock::time_point now) const;

  // Waits on `cv` (with `lk` held) until pred() holds, `until` passes or the run is forced to end, looking at
  // the StopFlag at least every kStopPollMs. Returns pred().
  template <typename Pred>
  bool wait(std::condition_variable& cv, std::unique_lock<std::mutex>& lk, Clock::time_point until, Pred pred) const {
    while (!pred()) {
      const auto now = Clock::now();
      if (now >= until || forced(now)) return pred();
      cv.wait_until(lk, std::min({until, deadline_, now + poll_}));
    }
    return true;
  }

  // The warning a result carries when it ended for another reason than its minimums; empty otherwise.
  // `measured` / `warmup_done`: requests completed in each phase.
  std::string warning(StopReason reason, size_t measured, size_t warmup_done) const;
  // How a forced end reads in messages: "interrupted" or "stopped on max_duration_ms = ... (the cap includes
  // warm-up)".
  std::string cause(StopReason reason) const;

 private:
  const RunSettings& st_;
  const StopFlag* stop_;
  Clock::time_point begin_, deadline_;
  Clock::duration poll_;
};

// Host buffer aligned for SIMD loads (64 bytes covers AVX-512 and cache lines).
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t bytes);
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  void* data() const { return ptr_; }
  size_t size() const { return size_; }

 private:
  void* ptr_ = nullptr;
  size_t size_ = 0;
};

// One request slot of an engine: its output buffers, the binding the engine is handed, the batch it holds
// and, when that batch cannot be used in place, a copy of its input. A reader's batch is only valid until
// its next next(), so a request copies whenever another request may read before it is done (several in
// flight, or several lanes fed from one reader).
struct Request {
  size_t lane = 0;
  Engine* engine = nullptr;
  size_t slot = 0;  // the engine's request slot (Engine::start / wait)
  std::vector<std::unique_ptr<AlignedBuffer>> outputs;
  std::unique_ptr<AlignedBuffer> input_copy;
  size_t input_bytes = 0;
  IoBinding binding;
  BatchView view;  // the batch it holds (view.data is the reader's memory, even when copied)
};

// Output buffers for `outs` at `batch` rows, and an input copy of `input_bytes` when `copy_input`.
void make_request(Request* r, const std::vector<TensorInfo>& outs, size_t batch, size_t input_bytes, bool copy_input);

// Makes `v` the request's batch: copied into its input buffer when it has one, else used in place.
void bind_input(Request* r, const BatchView& v);

// The reader's next batch, starting a new pass when one ends; its geometry is checked (check_view).
BatchView next_batch(BatchReader& reader, const char* what);

// Waits for every request still marked busy, ignoring their errors: called while an exception is already
// propagating, so the caller never returns while an engine may still write into its buffers.
void wait_quietly(Engine& engine, std::vector<bool>& busy);

// The q-quantile of sorted samples, numpy's "linear" method (see LatencyStats); 0 when empty.
double percentile_of_sorted(const std::vector<double>& sorted, double q);

// The warnings every result may carry, worded once.
// "noisy run: latency cv = ..." when s.cv > threshold; nothing otherwise.
void add_noisy_warning(std::vector<std::string>* warnings, const LatencyStats& s, double threshold);

// Fixed-point text of a number for messages.
std::string fmt(double v, int prec = 3);

// "openvino model /x/mfn.pb": for messages only, so an engine that cannot name itself still gets one.
std::string engine_name(Engine& engine);

// The one check of a reader against an engine (single input, batch offered, sample bytes / type /
// layout equal); throws InvalidArgument or ShapeMismatch naming both sides. `what` prefixes messages.
void check_reader_fits_engine(Engine& engine, const BatchReader& reader, size_t batch, const char* what);

// Every declared output has a size, and batch x size x slots is allocatable.
void check_output_sizes(const std::vector<TensorInfo>& outs, size_t batch, size_t slots, const char* what);

// A batch a reader handed out has exactly `batch` rows, at a real address.
void check_view(const BatchView& v, size_t batch, const char* what);

// The settings checks every runner shares: batch, iterations, durations, inflight vs each engine,
// scope, reader batch size and a non-empty reader. `what` names the entry point in messages.
void check_common_settings(const RunSettings& st, const std::vector<Engine*>& engines, const BatchReader& reader,
                           const char* what);

// The checks every lane-based entry point (run_benchmark, run_devices, the scheduled scenarios) makes
// before anything runs: lanes present and distinct, check_common_settings, the reader against every engine;
// then prepare() on every engine and the checks that need it. `scheduled`: slots are started and awaited
// from different threads, which several requests in flight then need the engine to allow. `engine_batch`:
// the rows engines are prepared for when a request carries several reader batches (0 = st.batch_size).
void check_lanes_and_prepare(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                             const char* what, bool scheduled, size_t engine_batch = 0);

// Per-iteration stage times: what an engine reported for each measured request.
class StageRecorder {
 public:
  void reserve(size_t n);
  void add(const StageTimes& t);
  // Means of the stages reported at least once (keys h2d_ms, compute_ms, d2h_ms).
  std::map<std::string, double> means() const;
  // The stages reported on every recorded request, one value per request; `partial` receives the
  // names of stages reported on some requests only (their samples are left out).
  std::map<std::string, std::vector<double>> complete_samples(std::vector<std::string>* partial) const;
  size_t size() const { return values_[0].size(); }
  // What was recorded for request i (negative fields: not reported).
  StageTimes at(size_t i) const;

 private:
  std::vector<double> values_[3];  // -1 where the engine did not report the stage
};

extern const char* const kStageNames[3];

// Fills `samples` from `stages` (one value per measured request); a stage reported on only some requests
// is left out with a warning saying so.
void add_stage_samples(std::map<std::string, std::vector<double>>* samples, std::vector<std::string>* warnings,
                       const StageRecorder& stages);

}  // namespace detail
}  // namespace pymfn
