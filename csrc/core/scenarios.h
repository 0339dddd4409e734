// LoadGen-style scenarios beyond single-stream (run_benchmark, inflight 1) and offline (run_benchmark,
// inflight > 1): several devices on one clock (run_devices), queries arriving on a schedule (run_server,
// Poisson arrivals) and fixed-interval multi-sample queries (run_multistream).
//
// Like the runner, none of this knows the model or the data: engines and readers are interfaces, and
// every knob is a RunSettings field (core/runner.h).
//
// Threads and engines. run_devices drives each lane (device) from its own thread; an engine is only ever
// called from that thread. The scheduled scenarios call Engine::start() from the scheduler thread and
// Engine::wait() for each request slot from a waiter thread of its own (so a completion is timed when it
// happens, not when the scheduler next looks): an engine used there must accept start() and wait() of
// DIFFERENT slots from different threads at the same time (calls on one slot never overlap; the runner
// orders them). AclEngine, OpenVINOEngine, SimulatedEngine and Python engines do (Engine::slots_thread_safe()).
// A run called from Python executes on a worker thread of the binding (so Ctrl-C reaches it, see
// bind_runner.cpp); engines must not rely on being called from the thread that created them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "core/engine.h"
#include "core/runner.h"

namespace pymfn {

// Offline / single-stream over several devices at once, fed from ONE reader (batches are handed to
// whichever device asks next, under a lock, and copied into that device's request buffer), timed on ONE
// clock. Warm-up runs on every device; measurement starts for all devices at the same instant once all
// are warm, and stops for all when the minimums (counted over all devices) are met, max_duration_ms (from
// the start of warm-up) is hit or `stop` is raised. The aggregate figures in the RunResult are samples /
// common wall time (see RunResult::devices). One lane is exactly run_benchmark(). Throws like
// run_benchmark, and InvalidArgument for no lanes or a shared engine.
RunResult run_devices(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& settings,
                      const StopFlag* stop = nullptr);

// Outcome of a scheduled scenario. Times are milliseconds from the schedule's start (t = 0; warm-up
// happened before it).
struct ScenarioResult {
  std::string scenario;            // "server" or "multi-stream"
  size_t queries_scheduled = 0;    // queries in the schedule
  size_t queries = 0;              // queries completed (all scheduled ones unless the run stopped issuing early)
  size_t requests = 0;             // engine requests completed (multi-stream: several per query)
  size_t samples_per_query = 0;    // rows asked for per query (server: batch_size)
  size_t samples_processed = 0;    // valid rows processed (a padded last batch of a pass counts its valid rows)
  size_t warmup_iterations = 0;    // untimed requests before the schedule started
  double target_qps = 0;           // server: as asked; multi-stream: 1000 / query_interval_ms
  double scheduled_qps = 0;        // the schedule's own rate: queries_scheduled / last scheduled arrival
  double achieved_qps = 0;         // queries / duration_ms (completed queries per second of the run)
  double duration_ms = 0;          // schedule start to the last completion
  LatencyStats latency;            // per query: completed - scheduled
  LatencyStats issue_delay;        // per query: issued - scheduled (first request of the query)
  LatencyStats queue_wait;         // ready - scheduled: waiting for a free request slot (ready = the later of the
                                   // arrival and the completion that freed the slot the query got)
  LatencyStats scheduler_lateness; // issued - ready: the harness's own delay (waking up, copying the input)
  size_t late_issues = 0;          // queries with issue_delay > late_threshold_ms
  double late_threshold_ms = 0;
  double latency_bound_ms = 0;     // the bound validity is judged against
  double bound_percentile = 0.99;
  double latency_at_percentile = 0;  // the bound_percentile of `latency`
  bool valid = false;
  std::vector<std::string> invalid_reasons;  // empty when valid
  // kMinimumsMet: every scheduled query was issued; kMaxDuration / kInterrupted: issuing stopped early (the
  // run is then INVALID, and invalid_reasons says how many queries were never issued).
  StopReason stop_reason = StopReason::kMinimumsMet;
  // Raw per-query times (ms from the schedule start), in schedule order; only completed queries.
  std::vector<double> scheduled_ms, issued_ms, completed_ms, ready_ms;  // ready: see queue_wait
  std::vector<uint32_t> query_devices;  // lane of each query's first request
  // Server batching (RunSettings.max_batch): the most queries one request could carry, the mean it did,
  // and the rows the engine ran that carried no query (padding up to an offered batch size).
  size_t max_batch = 1;
  double mean_queries_per_request = 0;
  size_t padding_rows = 0;
  // Raw per-request records (kept with keep_samples), in issue order: when it reached the engine and
  // completed (ms from t0), the queries it carried and the rows the engine ran.
  std::vector<double> request_issued_ms, request_completed_ms;
  std::vector<uint32_t> request_queries, request_rows;
  // RunSettings.keep_warm_threads: CPU time its spinning threads used (ms, summed over threads) and the
  // schedule's wall time they covered.
  size_t keep_warm_threads = 0;
  double keep_warm_cpu_ms = 0;
  // Engine-reported stage times per request (completion order per query order), as RunResult's.
  std::map<std::string, double> stage_means_ms;
  std::map<std::string, std::vector<double>> stage_samples_ms;
  std::vector<DeviceStats> devices;     // per lane: requests, samples, latency of the queries it started
  std::vector<std::string> warnings;
};

// Poisson arrivals at `qps` (exponential gaps, std::mt19937_64 seeded with `seed`): arrival times in ms
// from 0, generated until at least `min_count` arrivals AND the last at or after min_duration_ms; with
// max_duration_ms > 0, no arrival lies beyond it (the schedule may then be shorter than asked: the
// scenario says so). Deterministic for a seed. Throws InvalidArgument for qps <= 0 or a schedule larger
// than the runner holds (50 million queries).
std::vector<double> poisson_schedule(double qps, size_t min_count, double min_duration_ms, double max_duration_ms,
                                     uint64_t seed);

// Server scenario: one query = batch_size rows, one request each (or, with RunSettings.max_batch > 1, up
// to max_batch queued queries in one request); Poisson arrivals at target_qps from schedule_seed; VALID when the bound_percentile latency <= latency_bound_ms (required > 0), the run
// lasted min_duration_ms, and min_query_count queries completed. Requests go to the free slot that has
// been idle longest, over all lanes (devices). A raised `stop` ends issuing (StopReason::kInterrupted);
// the queries already issued complete and are reported.
ScenarioResult run_server(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& settings,
                          const StopFlag* stop = nullptr);

// Multi-stream scenario: one query = samples_per_query rows, issued as samples_per_query / batch_size
// requests; queries due every query_interval_ms; a query completes when its last request does.
ScenarioResult run_multistream(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& settings,
                               const StopFlag* stop = nullptr);

}  // namespace pymfn
