// The benchmark runner: times an Engine over batches from a BatchReader. Like LoadGen, it knows
// nothing about the model or the data; every knob is in RunSettings.
#pragma once
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

// Every setting of a run. Defaults mirror benchmark_app / trtexec habits.
struct RunSettings {
  // Batch size handed to Engine::prepare(); the reader must yield batches of this size.
  size_t batch_size = 1;
  // Untimed iterations before measurement starts; warm-up continues until both the count and the
  // duration are reached.
  size_t warmup_iterations = 10;
  double warmup_ms = 0;
  // Measurement runs until both minimums are met, or until max_duration_ms (0 = no cap) is hit.
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
};

// Latency statistics in milliseconds. Percentiles use linear interpolation between closest ranks
// (numpy's default "linear" method): p = x[floor(h)] + (h - floor(h)) * (x[floor(h)+1] - x[floor(h)]),
// h = (n - 1) * q. std is the population standard deviation; cv = std / mean.
struct LatencyStats {
  size_t count = 0;
  double min = 0, mean = 0, median = 0, p90 = 0, p95 = 0, p99 = 0, p999 = 0, max = 0, std = 0, cv = 0;
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
  bool stopped_on_max_duration = false;
  std::vector<std::string> warnings;
};

// Runs the benchmark. Throws InvalidArgument on inconsistent settings (batch size the engine does not
// support, reader batch size != settings.batch_size, inflight > engine->max_inflight(), buffers larger
// than this machine's memory) and ShapeMismatch, before anything executes, when the reader's samples
// are not what the engine's input takes: bytes per sample, element type, or shape when both sides
// state a layout (SampleSpec vs TensorInfo; the message names the dataset and the model input).
RunResult run_benchmark(Engine& engine, BatchReader& reader, const RunSettings& settings);

// One pass over the reader, returning outputs of the valid rows only (padding dropped), one buffer
// per model output, concatenated in dataset order. Used for accuracy runs. `inflight` > 1 keeps that
// many requests running (Engine::start/wait, round-robin so order is kept); each then gets its own
// copy of the input batch. Validates the reader against the engine exactly as run_benchmark does.
std::vector<std::vector<uint8_t>> infer_all(Engine& engine, BatchReader& reader, size_t inflight = 1);

// Stats over arbitrary samples (exposed for tests).
LatencyStats compute_stats(std::vector<double> samples_ms);

}  // namespace pymfn
