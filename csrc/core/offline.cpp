// The offline / single-stream loop, for one engine (run_benchmark) and for several devices on one clock
// (run_devices): one loop per lane, requests back to back (round-robin over the lane's slots when several
// are in flight). Timestamps come from std::chrono::steady_clock (monotonic, unlike msame's gettimeofday);
// nothing is allocated inside the timed loop except the sample vectors' growth.
#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "core/errors.h"
#include "core/limits.h"
#include "core/runner.h"
#include "core/runner_internal.h"
#include "core/scenarios.h"

namespace pymfn {

namespace {

using detail::Clock;
using detail::fmt;
using detail::ms_between;
using detail::Request;
using detail::StageRecorder;

// What one lane measured. Time points are absolute; the result puts them on the common origin.
struct LaneRecord {
  std::vector<double> latency_ms;
  std::vector<Clock::time_point> starts;
  StageRecorder stages;
  size_t samples = 0;
  size_t warm_done = 0;
  bool have_first = false;
  Clock::time_point first_start{}, last_end{};

  void add(Clock::time_point start, Clock::time_point end, size_t rows, const StageTimes& t) {
    if (!have_first || start < first_start) first_start = start;
    have_first = true;
    latency_ms.push_back(ms_between(start, end));
    starts.push_back(start);
    last_end = std::max(last_end, end);
    samples += rows;
    stages.add(t);
  }
};

// State every lane of one run shares: the reader, the switch from warm-up to measurement, the measured
// count and wall time the minimums are judged on, and why the run ended.
class OfflineRun {
 public:
  OfflineRun(const detail::RunLimits& limits, BatchReader& reader, size_t lanes, const char* what)
      : limits_(limits), reader_(reader), lanes_(lanes), what_(what) {}

  // Before a lane starts a request: false once the run is over (minimums met, interrupted, capped, or
  // another lane failed). A lane that has become warm says so here; the last lane to get warm starts
  // measurement for every lane at that instant.
  bool go_on(bool* lane_warm, size_t warm_done) {
    if (stop_.load(std::memory_order_acquire)) return false;
    const auto now = Clock::now();
    if (const auto why = limits_.forced(now)) {
      const auto lk = guard(mu_);
      end_locked(*why);
      return false;
    }
    if (!*lane_warm && limits_.warm(warm_done, now)) {
      *lane_warm = true;
      const auto lk = guard(mu_);
      if (++lanes_warm_ == lanes_) measuring_.store(true, std::memory_order_release);
    }
    return true;
  }

  bool measuring() const { return measuring_.load(std::memory_order_acquire); }

  // The reader's next batch into `r` (under a lock: every lane reads from it).
  void feed(Request* r) {
    const auto lk = guard(reader_mu_);
    detail::bind_input(r, detail::next_batch(reader_, what_));
  }

  // After a measured completion: ends the run once the minimums are met over all lanes, the reported wall
  // time (first measured start to last completion) being what min_duration_ms bounds, or when forced.
  void measured(Clock::time_point start, Clock::time_point end) {
    const auto lk = guard(mu_);
    ++measured_;
    if (!have_first_ || start < first_start_) first_start_ = start;
    have_first_ = true;
    last_end_ = std::max(last_end_, end);
    if (stop_reason_) return;
    if (const auto why = limits_.measured(measured_, ms_between(first_start_, last_end_), end)) end_locked(*why);
  }

  void fail(std::exception_ptr e) {
    const auto lk = guard(mu_);
    if (!error_) error_ = e;
    stop_.store(true, std::memory_order_release);
  }

  std::exception_ptr error() const { return error_; }
  StopReason stop_reason() const { return stop_reason_.value_or(StopReason::kMinimumsMet); }

 private:
  // A lock on `mu`, taken only when several lanes run (one lane runs on the calling thread alone, and its
  // loop stays as lean as a loop of its own would be).
  std::unique_lock<std::mutex> guard(std::mutex& mu) {
    return lanes_ > 1 ? std::unique_lock<std::mutex>(mu) : std::unique_lock<std::mutex>(mu, std::defer_lock);
  }

  // The first reason wins. Caller holds mu_ (when shared).
  void end_locked(StopReason why) {
    if (!stop_reason_) stop_reason_ = why;
    stop_.store(true, std::memory_order_release);
  }

  const detail::RunLimits& limits_;
  BatchReader& reader_;
  const size_t lanes_;
  const char* what_;
  std::mutex reader_mu_;
  std::mutex mu_;  // guards everything below but the atomics
  size_t lanes_warm_ = 0;
  size_t measured_ = 0;
  bool have_first_ = false;
  Clock::time_point first_start_{}, last_end_{};
  std::optional<StopReason> stop_reason_;
  std::exception_ptr error_;
  std::atomic<bool> measuring_{false};
  std::atomic<bool> stop_{false};
};

// One lane's loop: warm-up until the run measures, then measured requests until it stops. One request in
// flight uses Engine::execute(); several go round-robin through start()/wait(), each sample being one
// request's start-to-wait latency. Requests started during measurement count, late warm-up ones do not.
void lane_loop(OfflineRun& run, Engine& engine, std::vector<Request>& slots, LaneRecord& rec, TimingScope scope) {
  const bool e2e = scope == TimingScope::kEndToEnd;
  const size_t k = slots.size();
  std::vector<bool> busy(k, false);
  std::vector<bool> measured(k, false);
  std::vector<Clock::time_point> started(k);
  bool warm = false;

  auto go_on = [&] { return run.go_on(&warm, rec.warm_done); };
  auto launch = [&](size_t i) {
    measured[i] = run.measuring();
    if (e2e) started[i] = Clock::now();
    run.feed(&slots[i]);
    if (!e2e) started[i] = Clock::now();
  };
  auto record = [&](size_t i, Clock::time_point end, const StageTimes& t) {
    if (!measured[i]) {
      ++rec.warm_done;
      return;
    }
    rec.add(started[i], end, slots[i].view.valid_rows, t);
    run.measured(started[i], end);
  };

  if (k == 1) {
    while (go_on()) {
      launch(0);
      const StageTimes t = engine.execute(slots[0].binding);
      record(0, Clock::now(), t);
    }
    return;
  }
  try {
    for (size_t i = 0; i < k && go_on(); ++i) {
      launch(i);
      engine.start(i, slots[i].binding);
      busy[i] = true;
    }
    for (size_t next = 0; busy[next]; next = (next + 1) % k) {
      const StageTimes t = engine.wait(next);
      busy[next] = false;
      record(next, Clock::now(), t);
      if (go_on()) {
        launch(next);
        engine.start(next, slots[next].binding);
        busy[next] = true;
      }
    }
    // Slots behind `next` that were never relaunched are idle; any still busy are drained here.
    for (size_t i = 0; i < k; ++i)
      if (busy[i]) {
        const StageTimes t = engine.wait(i);
        busy[i] = false;
        record(i, Clock::now(), t);
      }
  } catch (...) {
    detail::wait_quietly(engine, busy);
    throw;
  }
}

DeviceStats device_stats(const std::string& name, const LaneRecord& rec, Clock::time_point origin) {
  DeviceStats d;
  d.name = name;
  d.iterations = rec.latency_ms.size();
  d.samples_processed = rec.samples;
  if (rec.have_first) {
    d.first_start_ms = ms_between(origin, rec.first_start);
    d.last_end_ms = ms_between(origin, rec.last_end);
    d.wall_ms = d.last_end_ms - d.first_start_ms;
  }
  d.throughput_per_s = d.wall_ms > 0 ? static_cast<double>(d.samples_processed) * 1000.0 / d.wall_ms : 0.0;
  d.latency = compute_stats(rec.latency_ms);
  d.stage_means_ms = rec.stages.means();
  return d;
}

// The aggregate of every lane's records on one clock (origin: the first measured start of any lane).
RunResult combine(const std::vector<Lane>& lanes, const std::vector<LaneRecord>& recs, const RunSettings& st,
                  const detail::RunLimits& limits, StopReason stop_reason) {
  RunResult r;
  Clock::time_point first{}, last{};
  bool any = false;
  for (const auto& rec : recs) {
    if (!rec.have_first) continue;
    if (!any || rec.first_start < first) first = rec.first_start;
    if (!any || rec.last_end > last) last = rec.last_end;
    any = true;
  }
  // Every request, in start order, with its lane.
  struct Item {
    Clock::time_point start;
    uint32_t lane;
    size_t index;
  };
  std::vector<Item> items;
  for (size_t l = 0; l < recs.size(); ++l)
    for (size_t i = 0; i < recs[l].starts.size(); ++i) items.push_back({recs[l].starts[i], static_cast<uint32_t>(l), i});
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.start < b.start; });
  std::vector<double> lat;
  std::vector<double> starts;
  StageRecorder stages;
  lat.reserve(items.size());
  starts.reserve(items.size());
  stages.reserve(items.size());
  for (const Item& it : items) {
    lat.push_back(recs[it.lane].latency_ms[it.index]);
    starts.push_back(ms_between(first, it.start));
    r.sample_devices.push_back(it.lane);
    stages.add(recs[it.lane].stages.at(it.index));
  }
  for (size_t l = 0; l < lanes.size(); ++l) {
    r.devices.push_back(device_stats(lanes[l].name, recs[l], first));
    r.samples_processed += recs[l].samples;
    r.warmup_iterations += recs[l].warm_done;
  }
  r.iterations = lat.size();
  r.wall_ms = any ? ms_between(first, last) : 0.0;
  r.throughput_per_s = r.wall_ms > 0 ? static_cast<double>(r.samples_processed) * 1000.0 / r.wall_ms : 0.0;
  r.latency = compute_stats(lat);
  r.stage_means_ms = stages.means();
  double min_first = 0, max_first = 0, min_last = 0, max_last = 0;
  bool seen = false;
  for (const auto& d : r.devices) {
    if (d.iterations == 0) {
      // With one device the stop warning below already says that nothing was measured.
      if (lanes.size() > 1)
        r.warnings.push_back("device '" + d.name + "' completed no measured request: its figures are empty");
      continue;
    }
    if (!seen) {
      min_first = max_first = d.first_start_ms;
      min_last = max_last = d.last_end_ms;
      seen = true;
    }
    min_first = std::min(min_first, d.first_start_ms);
    max_first = std::max(max_first, d.first_start_ms);
    min_last = std::min(min_last, d.last_end_ms);
    max_last = std::max(max_last, d.last_end_ms);
  }
  r.start_skew_ms = max_first - min_first;
  r.end_skew_ms = max_last - min_last;
  r.stop_reason = stop_reason;
  const std::string stopped = limits.warning(r.stop_reason, r.iterations, r.warmup_iterations);
  if (!stopped.empty()) r.warnings.push_back(stopped);
  detail::add_noisy_warning(&r.warnings, r.latency, st.cv_warning_threshold);
  if (st.keep_samples) {
    r.samples_ms = std::move(lat);
    r.start_offsets_ms = std::move(starts);
    detail::add_stage_samples(&r.stage_samples_ms, &r.warnings, stages);
  } else {
    r.sample_devices.clear();
  }
  return r;
}

// The one offline run: every lane loops on its own thread (the first on the calling thread), all fed from
// one reader and timed on one clock.
RunResult run_offline(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st, const StopFlag* stop,
                      const char* what) {
  detail::check_lanes_and_prepare(lanes, reader, st, what, false);
  const size_t input_bytes = reader.sample_spec().bytes * st.batch_size;
  // A batch is used in place only when nothing else reads from the reader before its request is done.
  const bool copy_input = lanes.size() > 1 || st.inflight > 1;
  std::vector<std::vector<Request>> slots(lanes.size());
  for (size_t l = 0; l < lanes.size(); ++l) {
    slots[l].resize(st.inflight);
    const auto outs = lanes[l].engine->outputs();
    for (size_t i = 0; i < st.inflight; ++i) {
      Request& rq = slots[l][i];
      rq.lane = l;
      rq.engine = lanes[l].engine;
      rq.slot = i;
      detail::make_request(&rq, outs, st.batch_size, input_bytes, copy_input);
    }
  }
  std::vector<LaneRecord> recs(lanes.size());
  const size_t reserve = std::min<size_t>(st.min_iterations * 2 / lanes.size() + 16, size_t(1) << 22);
  for (auto& r : recs) {
    r.latency_ms.reserve(reserve);
    r.starts.reserve(reserve);
    r.stages.reserve(reserve);
  }

  reader.rewind();
  // The run's clock (and its max_duration_ms cap) starts here, with warm-up.
  const detail::RunLimits limits(st, stop);
  OfflineRun run(limits, reader, lanes.size(), what);
  auto drive = [&](size_t l) {
    try {
      lane_loop(run, *lanes[l].engine, slots[l], recs[l], st.scope);
    } catch (...) {
      run.fail(std::current_exception());
    }
  };
  std::vector<std::thread> threads;
  for (size_t l = 1; l < lanes.size(); ++l) threads.emplace_back(drive, l);
  drive(0);
  for (auto& t : threads) t.join();
  reader.rewind();
  if (run.error()) std::rethrow_exception(run.error());
  return combine(lanes, recs, st, limits, run.stop_reason());
}

}  // namespace

RunResult run_benchmark(Engine& engine, BatchReader& reader, const RunSettings& st, const StopFlag* stop) {
  RunResult r = run_offline({Lane{&engine, ""}}, reader, st, stop, "run_benchmark");
  // One engine: the aggregate is the device's own figures.
  r.devices.clear();
  r.sample_devices.clear();
  return r;
}

RunResult run_devices(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st, const StopFlag* stop) {
  return run_offline(lanes, reader, st, stop, "run_devices");
}

}  // namespace pymfn
