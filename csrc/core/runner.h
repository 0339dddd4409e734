// The benchmark runner: times an Engine over batches from a BatchReader. Like LoadGen, it knows
// nothing about the model or the data; every knob is in RunSettings.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "core/engine.h"

namespace pymfn {

enum class TimingScope {
  // Only Engine::execute() (or start()+wait()) is inside the timed region: the scope msame and
  // ais_bench report. Batches are fetched before the clock starts.
  kCompute = 0,
  // Batch fetch from the reader + execute + output fetch: what an application sees.
  kEndToEnd = 1,
};

// Why a run ended.
enum class StopReason {
  // It ran as asked: min_iterations and min_duration_ms reached (run_benchmark, run_devices), or every
  // query of the schedule issued (run_server, run_multistream).
  kMinimumsMet = 0,
  // max_duration_ms, which caps the whole run from its start (warm-up included), ran out first.
  kMaxDuration = 1,
  // A StopFlag was raised (Ctrl-C): the result holds everything measured until then.
  kInterrupted = 2,
};

// "minimums met", "max duration", "interrupted": for reports and JSON.
const char* stop_reason_name(StopReason reason);

// A request to end a run early. request() is a lock-free atomic store, safe from a signal handler or
// any thread. A run handed the flag looks at it before every request and, while it waits (for an
// arrival, a free request slot, other devices), at least every kStopPollMs; once it sees the flag it
// issues nothing more, waits for the requests in flight, and returns what it measured with
// StopReason::kInterrupted. The flag stays raised until clear().
class StopFlag {
 public:
  void request() noexcept { requested_.store(true, std::memory_order_release); }
  void clear() noexcept { requested_.store(false, std::memory_order_release); }
  bool requested() const noexcept { return requested_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> requested_{false};
  static_assert(std::atomic<bool>::is_always_lock_free, "StopFlag::request() must be async-signal-safe");
};

// Longest time a waiting run goes without looking at its StopFlag.
constexpr double kStopPollMs = 20.0;

// Every setting of a run. Defaults mirror benchmark_app / trtexec habits.
struct RunSettings {
  // Batch size handed to Engine::prepare(); the reader must yield batches of this size.
  size_t batch_size = 1;
  // Untimed iterations before measurement starts; warm-up continues until both the count and the
  // duration are reached.
  size_t warmup_iterations = 10;
  double warmup_ms = 0;
  // Measurement runs until both minimums are met, or until max_duration_ms (0 = no cap) is hit. The cap
  // counts from the start of the run: warm-up, measurement and (scenarios) the schedule all fit in it, so
  // warmup_ms + min_duration_ms must not exceed it.
  size_t min_iterations = 100;
  double min_duration_ms = 1000;
  double max_duration_ms = 60000;
  // Requests in flight. 1 = synchronous execute(); >1 uses Engine::start()/wait() round-robin and
  // each sample is the latency of one request (start to wait return).
  size_t inflight = 1;
  TimingScope scope = TimingScope::kCompute;
  // Keep every per-iteration latency in RunResult::samples_ms.
  bool keep_samples = true;
  // Coefficient of variation above which the result carries a "noisy run" warning.
  double cv_warning_threshold = 0.05;

  // ---- Scheduled scenarios (run_server, run_multistream in core/scenarios.h). Queries arrive on a
  // schedule made before the run starts; a query's latency runs from its SCHEDULED arrival to its
  // completion, so time a query spends queued behind a slow one counts (no coordinated omission).
  // Warm-up (warmup_iterations / warmup_ms) runs before the schedule starts; min_duration_ms and
  // min_query_count size the schedule; max_duration_ms (0 = no cap, counted from the run's start,
  // warm-up included) stops issuing.
  // Server: mean arrival rate of the Poisson process, queries per second (one query = one request of
  // batch_size rows).
  double target_qps = 0;
  // Seed of the arrival schedule: the same seed gives the same schedule.
  uint64_t schedule_seed = 0;
  // Server: dynamic batching (LoadGen's server_coalesce_queries, Triton's dynamic batcher). One request
  // carries up to max_batch queued queries; the engine is prepared for max_batch * batch_size rows, which it
  // must offer. Engines that choose the batch per request (Engine::batch_per_request) run each request at
  // the smallest offered size that holds its queries; others run the prepared size, padded. When a request
  // slot is free and fewer than max_batch queries have arrived, the batcher holds the oldest for up to
  // max_queue_delay_ms after its arrival while more arrive (0 = send what has arrived at once). 1 = one
  // query per request.
  size_t max_batch = 1;
  double max_queue_delay_ms = 0;
  // Scheduled scenarios: this many threads spin (a pause loop) whenever no request is in flight and sleep
  // while one is, so a query arriving at an idle engine finds the host's cores awake instead of parked or
  // halted (a VM's idle vCPU exits to the hypervisor). Costs that many cores of CPU time while idle
  // (ScenarioResult.keep_warm_cpu_ms). 0 = off.
  size_t keep_warm_threads = 0;
  // Multi-stream: samples in one query (split into samples_per_query / batch_size requests; must
  // divide evenly) and the fixed time between query arrivals.
  size_t samples_per_query = 8;
  double query_interval_ms = 50;
  // LoadGen-style validity: the bound_percentile of query latency must be <= latency_bound_ms (server:
  // required; multi-stream: 0 means query_interval_ms, i.e. a query must finish before the next is
  // due), and the run must last min_duration_ms with at least min_query_count queries.
  double latency_bound_ms = 0;
  double bound_percentile = 0.99;
  size_t min_query_count = 100;
  // A query counts as "issued late" when it reached the engine more than this after its scheduled
  // arrival (for whatever reason: waiting for a free request, or the harness itself).
  double late_threshold_ms = 0.1;
  // The scheduler sleeps until this long before an arrival, then spins on the clock: precision of
  // the issue time against CPU time of one thread. 0 = sleep only.
  double scheduler_spin_ms = 0.2;
};

// Latency statistics in milliseconds. Percentiles use linear interpolation between closest ranks
// (numpy's default "linear" method): p = x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]),
// h = (n - 1) * q. std is the population standard deviation; cv = std / mean.
struct LatencyStats {
  size_t count = 0;
  double min = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0, std = 0, cv = 0;
};

// One device (lane) of a multi-device run: its own share of the work, timed on the run's common clock.
struct DeviceStats {
  std::string name;             // lane name: "acl device 1", "openvino lane 0", ...
  size_t iterations = 0;        // measured requests this device completed
  size_t samples_processed = 0; // valid rows among them
  double first_start_ms = 0;    // its first measured start, relative to the run's first measured start
  double last_end_ms = 0;       // its last measured completion, same origin
  double wall_ms = 0;           // last_end_ms - first_start_ms
  double throughput_per_s = 0;  // samples_processed / its own wall_ms (for comparing devices; never summed)
  LatencyStats latency;         // latency of its requests (run_devices) or of the queries it served
  std::map<std::string, double> stage_means_ms;
};

struct RunResult {
  size_t iterations = 0;          // measured iterations (requests)
  size_t warmup_iterations = 0;   // untimed iterations actually run
  size_t samples_processed = 0;   // valid rows processed during measurement
  double wall_ms = 0;             // first measured start to last measured finish
  double throughput_per_s = 0;    // samples_processed / wall time (not derived from the mean)
  LatencyStats latency;
  std::vector<double> samples_ms;        // one per measured iteration, in completion order
  std::vector<double> start_offsets_ms;  // start of each measured iteration relative to the first
  // Mean of each StageTimes field the engine reported (keys "h2d_ms", "compute_ms", "d2h_ms").
  std::map<std::string, double> stage_means_ms;
  // The same stages per measured iteration, aligned with samples_ms (kept when keep_samples). A stage
  // appears only when the engine reported it for every measured iteration: for the ACL engine,
  // "compute_ms" is the synchronous aclmdlExecute alone, msame's exact scope.
  std::map<std::string, std::vector<double>> stage_samples_ms;
  // Why the run ended. Anything but kMinimumsMet also adds a warning saying what the figures rest on.
  StopReason stop_reason = StopReason::kMinimumsMet;
  std::vector<std::string> warnings;
  // Multi-device runs (run_devices): every figure above is the aggregate on ONE clock (throughput_per_s
  // = all samples / the common wall time from the first device's first start to the last device's last
  // completion; never a sum of per-device rates); `devices` holds each device's own figures,
  // sample_devices[i] the device of samples_ms[i] (samples sorted by start time), and the skews how far
  // apart the devices' first starts and last completions were. Single-engine runs leave these empty / 0.
  std::vector<DeviceStats> devices;
  std::vector<uint32_t> sample_devices;
  double start_skew_ms = 0;
  double end_skew_ms = 0;
};

// One device of a multi-device run (core/scenarios.h): an engine driven as a unit through its request
// slots 0..RunSettings.inflight-1. Lanes must hold distinct engine objects.
struct Lane {
  Engine* engine = nullptr;
  std::string name;  // how reports name the device: "acl device 1", "openvino lane 0"
};

// Runs the benchmark. Throws InvalidArgument on inconsistent settings (batch size the engine does not
// support, reader batch size != settings.batch_size, inflight > engine->max_inflight(), buffers larger
// than this machine's memory, durations that are not finite or do not fit in max_duration_ms) and
// ShapeMismatch, before anything executes, when the reader's samples are not what the engine's input
// takes: bytes per sample, element type, or shape when both sides state a layout (SampleSpec vs
// TensorInfo; the message names the dataset and the model input). `stop` (optional) ends the run early,
// keeping what was measured (StopReason::kInterrupted).
RunResult run_benchmark(Engine& engine, BatchReader& reader, const RunSettings& settings,
                        const StopFlag* stop = nullptr);

// One pass over the reader, returning outputs of the valid rows only (padding dropped), one buffer
// per model output, concatenated in dataset order. Used for accuracy runs. `inflight` > 1 keeps that
// many requests running (Engine::start/wait, round-robin so order is kept); each then gets its own
// copy of the input batch. Validates the reader against the engine exactly as run_benchmark does.
// A raised `stop` ends the pass after the requests in flight with Interrupted (a partial pass has no use).
std::vector<std::vector<uint8_t>> infer_all(Engine& engine, BatchReader& reader, size_t inflight = 1,
                                            const StopFlag* stop = nullptr);

// Stats over arbitrary samples (exposed for tests).
LatencyStats compute_stats(std::vector<double> samples_ms);

}  // namespace pymfn
