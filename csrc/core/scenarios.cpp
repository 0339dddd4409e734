// Multi-device and scheduled scenarios (see scenarios.h for what each one measures). Timestamps come
// from std::chrono::steady_clock, like the runner's.
#include "core/scenarios.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "core/errors.h"
#include "core/limits.h"
#include "core/runner_internal.h"

namespace pymfn {

namespace {

using detail::AlignedBuffer;
using detail::Clock;
using detail::fmt;
using detail::ms_between;
using detail::StageRecorder;

constexpr size_t kMaxScheduledQueries = 50'000'000;

// One request slot of one lane: its buffers and the binding pointing at them. The input is always a
// copy: several slots are fed from one reader, whose batch is only valid until its next next().
struct Request {
  size_t lane = 0;
  Engine* engine = nullptr;
  size_t slot = 0;
  std::vector<std::unique_ptr<AlignedBuffer>> outputs;
  std::unique_ptr<AlignedBuffer> input;
  IoBinding binding;
  size_t valid_rows = 0;
};

void make_request(Request* r, const std::vector<TensorInfo>& outs, size_t batch, size_t input_bytes) {
  r->binding.batch_rows = batch;
  r->binding.outputs.clear();
  for (const auto& o : outs) {
    r->outputs.push_back(std::make_unique<AlignedBuffer>(o.sample_bytes * batch));
    r->binding.outputs.push_back(r->outputs.back()->data());
  }
  r->input = std::make_unique<AlignedBuffer>(input_bytes);
  r->binding.inputs.assign(1, r->input->data());
}

// Next batch of the shared reader (a new pass when one ends) copied into `r`. Caller holds the
// reader's lock when several threads feed from it.
void feed(BatchReader& reader, Request* r, size_t input_bytes, const char* what) {
  BatchView v;
  if (!reader.next(&v)) {
    reader.rewind();
    if (!reader.next(&v)) throw InvalidArgument("the reader yields no batches (empty dataset)");
  }
  detail::check_view(v, reader.batch_size(), what);
  std::memcpy(r->input->data(), v.data, input_bytes);
  r->valid_rows = v.valid_rows;
}

// The checks every multi-lane entry point makes before anything runs, then prepare() on every engine.
void check_and_prepare(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                       const char* what, bool scheduled) {
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
  detail::check_common_settings(st, engines, reader, what);
  if (scheduled && st.inflight > 1)
    for (const Lane& l : lanes)
      if (!l.engine->slots_thread_safe())
        throw InvalidArgument(std::string(what) + ": RunSettings.inflight = " + std::to_string(st.inflight) +
                              " but the " + l.engine->kind() +
                              " engine's request slots cannot be started and awaited from different threads at "
                              "once; use one engine per lane (several devices) with inflight 1");
  for (Engine* e : engines) detail::check_reader_fits_engine(*e, reader, st.batch_size, what);
  for (Engine* e : engines) {
    e->prepare(st.batch_size);
    detail::check_reader_fits_engine(*e, reader, st.batch_size, what);
    detail::check_output_sizes(e->outputs(), st.batch_size, st.inflight, what);
  }
  checked_buffer_bytes(std::string(what) + ": request slots", lanes.size(), "devices", st.inflight);
}

void add_noisy_warning(std::vector<std::string>* warnings, const LatencyStats& s, double threshold) {
  if (s.cv > threshold)
    warnings->push_back("noisy run: latency cv = " + fmt(s.cv, 4) + " > threshold " + fmt(threshold, 4) + " (std " +
                        fmt(s.std) + " ms, mean " + fmt(s.mean) + " ms); close other programs, pin threads or run longer");
}

// ------------------------------------------------------------------------------------------ run_devices

// What one lane measured. Time points are absolute; the caller puts them on the common origin.
struct LaneRecord {
  std::vector<double> latency_ms;
  std::vector<Clock::time_point> starts;
  StageRecorder stages;
  size_t samples = 0;
  size_t warm_done = 0;
  bool have_first = false;
  Clock::time_point first_start{}, last_end{};
};

// Shared state of one run_devices call.
struct DeviceRun {
  const RunSettings& st;
  const detail::RunLimits& limits;
  BatchReader& reader;
  size_t input_bytes;
  std::mutex reader_mu;  // the one reader feeds every lane
  std::mutex mu;         // guards the fields below
  std::condition_variable cv;
  size_t lanes_warm = 0;
  Clock::time_point meas_begin{};
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<size_t> measured{0};
  std::optional<StopReason> stop_reason;  // set once, by whatever ended the run first
  std::exception_ptr error;

  DeviceRun(const RunSettings& s, const detail::RunLimits& l, BatchReader& r, size_t bytes)
      : st(s), limits(l), reader(r), input_bytes(bytes) {}

  void feed_locked(Request* r) {
    std::lock_guard<std::mutex> lk(reader_mu);
    feed(reader, r, input_bytes, "run_devices");
  }

  // Stops every lane (caller holds mu); the first reason wins.
  void end_locked(StopReason why) {
    if (!stop_reason) stop_reason = why;
    stop.store(true);
    cv.notify_all();
  }

  // After a measured completion: stop every lane once the minimums (over all lanes) are met, or the run
  // is forced to end.
  void check_stop(Clock::time_point now) {
    const size_t n = measured.fetch_add(1) + 1;
    std::lock_guard<std::mutex> lk(mu);
    if (stop_reason) return;
    if (const auto why = limits.measured(n, ms_between(meas_begin, now), now)) end_locked(*why);
  }

  // Before a lane starts a request: false once the run is over (an interruption or the cap included).
  bool go_on() {
    if (stop.load()) return false;
    const auto why = limits.forced(Clock::now());
    if (!why) return true;
    std::lock_guard<std::mutex> lk(mu);
    end_locked(*why);
    return false;
  }

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lk(mu);
    if (!error) error = e;
    stop.store(true);
    cv.notify_all();
  }
};

// One lane's loop: requests back to back (round-robin over its slots when inflight > 1), warm-up until
// the run starts measuring, then measured until the run stops.
void lane_loop(DeviceRun& run, Engine& engine, std::vector<Request>& slots, LaneRecord& rec) {
  const RunSettings& st = run.st;
  const bool e2e = st.scope == TimingScope::kEndToEnd;
  const size_t k = slots.size();
  std::vector<bool> busy(k, false);
  std::vector<bool> measured(k, false);
  std::vector<Clock::time_point> started(k);
  bool reported_warm = false;

  auto report_warm = [&](Clock::time_point now) {
    if (reported_warm || !run.limits.warm(rec.warm_done, now)) return;
    reported_warm = true;
    std::lock_guard<std::mutex> lk(run.mu);
    ++run.lanes_warm;
    run.cv.notify_all();
  };
  auto launch = [&](size_t i) {
    measured[i] = run.measuring.load();
    if (e2e) started[i] = Clock::now();
    run.feed_locked(&slots[i]);
    if (!e2e) started[i] = Clock::now();
  };
  auto record = [&](size_t i, Clock::time_point end, const StageTimes& t) {
    if (!measured[i]) {
      ++rec.warm_done;
      report_warm(end);
      return;
    }
    if (!rec.have_first || started[i] < rec.first_start) rec.first_start = started[i];
    rec.have_first = true;
    rec.latency_ms.push_back(ms_between(started[i], end));
    rec.starts.push_back(started[i]);
    rec.last_end = std::max(rec.last_end, end);
    rec.samples += slots[i].valid_rows;
    rec.stages.add(t);
    run.check_stop(end);
  };

  report_warm(Clock::now());
  try {
    if (k == 1) {
      while (run.go_on()) {
        launch(0);
        const StageTimes t = engine.execute(slots[0].binding);
        record(0, Clock::now(), t);
      }
      return;
    }
    for (size_t i = 0; i < k && run.go_on(); ++i) {
      launch(i);
      engine.start(i, slots[i].binding);
      busy[i] = true;
    }
    for (size_t next = 0; busy[next]; next = (next + 1) % k) {
      const StageTimes t = engine.wait(next);
      busy[next] = false;
      record(next, Clock::now(), t);
      if (run.go_on()) {
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
    for (size_t j = 0; j < k; ++j)
      if (busy[j]) {
        try {
          engine.wait(j);
        } catch (...) {
        }
      }
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

// The single-lane case is run_benchmark; its result gets the one-device entry the multi-lane case has.
RunResult one_device(const Lane& lane, BatchReader& reader, const RunSettings& st, const StopFlag* stop) {
  if (lane.engine == nullptr) throw InvalidArgument("run_devices: device '" + lane.name + "' has no engine");
  RunResult r = run_benchmark(*lane.engine, reader, st, stop);
  DeviceStats d;
  d.name = lane.name;
  d.iterations = r.iterations;
  d.samples_processed = r.samples_processed;
  d.last_end_ms = d.wall_ms = r.wall_ms;
  d.throughput_per_s = r.throughput_per_s;
  d.latency = r.latency;
  d.stage_means_ms = r.stage_means_ms;
  r.devices.push_back(d);
  if (st.keep_samples) r.sample_devices.assign(r.samples_ms.size(), 0);
  return r;
}

}  // namespace

RunResult run_devices(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st, const StopFlag* stop) {
  if (lanes.size() == 1) return one_device(lanes[0], reader, st, stop);
  check_and_prepare(lanes, reader, st, "run_devices", false);
  const size_t input_bytes = reader.sample_spec().bytes * st.batch_size;
  std::vector<std::vector<Request>> slots(lanes.size());
  for (size_t l = 0; l < lanes.size(); ++l) {
    slots[l].resize(st.inflight);
    for (size_t i = 0; i < st.inflight; ++i) make_request(&slots[l][i], lanes[l].engine->outputs(), st.batch_size, input_bytes);
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
  DeviceRun run(st, limits, reader, input_bytes);
  std::vector<std::thread> threads;
  for (size_t l = 0; l < lanes.size(); ++l) {
    threads.emplace_back([&, l] {
      try {
        lane_loop(run, *lanes[l].engine, slots[l], recs[l]);
      } catch (...) {
        run.fail(std::current_exception());
      }
    });
  }
  {
    // Measurement starts for every lane at once, when the last one is warm.
    std::unique_lock<std::mutex> lk(run.mu);
    const bool all_warm = limits.wait(run.cv, lk, Clock::time_point::max(), [&] {
      return run.lanes_warm == lanes.size() || run.error != nullptr || run.stop.load();
    });
    if (!all_warm) {
      if (const auto why = limits.forced(Clock::now())) run.end_locked(*why);
    } else if (!run.stop.load()) {
      run.meas_begin = Clock::now();
      run.measuring.store(true);
    }
  }
  for (auto& t : threads) t.join();
  reader.rewind();
  if (run.error) std::rethrow_exception(run.error);

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
  r.stop_reason = run.stop_reason.value_or(StopReason::kMinimumsMet);
  const std::string stopped = limits.warning(r.stop_reason, r.iterations, r.warmup_iterations);
  if (!stopped.empty()) r.warnings.push_back(stopped);
  add_noisy_warning(&r.warnings, r.latency, st.cv_warning_threshold);
  if (st.keep_samples) {
    r.samples_ms = std::move(lat);
    r.start_offsets_ms = std::move(starts);
    detail::add_stage_samples(&r, stages);
  } else {
    r.sample_devices.clear();
  }
  return r;
}

// ------------------------------------------------------------------------------------------ schedules

std::vector<double> poisson_schedule(double qps, size_t min_count, double min_duration_ms, double max_duration_ms,
                                     uint64_t seed) {
  if (!(qps > 0) || !std::isfinite(qps))
    throw InvalidArgument("RunSettings.target_qps must be a positive number, got " + fmt(qps, 3));
  if (!(min_duration_ms >= 0) || !(max_duration_ms >= 0))
    throw InvalidArgument("poisson_schedule: durations must be >= 0");
  const double expected = std::max(static_cast<double>(min_count), qps * min_duration_ms / 1000.0);
  if (expected > static_cast<double>(kMaxScheduledQueries))
    throw InvalidArgument("the schedule would hold about " + fmt(expected, 0) + " queries (target_qps " + fmt(qps, 1) +
                          ", min_duration_ms " + fmt(min_duration_ms, 0) + ", min_query_count " +
                          std::to_string(min_count) + "); the runner holds at most " +
                          std::to_string(kMaxScheduledQueries));
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(qps / 1000.0);  // per ms
  std::vector<double> t;
  t.reserve(static_cast<size_t>(expected * 1.1) + 16);
  double now = 0;
  while (t.size() < min_count || now < min_duration_ms) {
    now += gap(rng);
    if (max_duration_ms > 0 && now > max_duration_ms) break;
    if (t.size() >= kMaxScheduledQueries) break;
    t.push_back(now);
  }
  return t;
}

namespace {

std::vector<double> fixed_schedule(double interval_ms, size_t min_count, double min_duration_ms,
                                   double max_duration_ms) {
  if (!(interval_ms > 0) || !std::isfinite(interval_ms))
    throw InvalidArgument("RunSettings.query_interval_ms must be a positive number, got " + fmt(interval_ms, 3));
  const double expected = std::max(static_cast<double>(min_count), min_duration_ms / interval_ms + 1);
  if (expected > static_cast<double>(kMaxScheduledQueries))
    throw InvalidArgument("the schedule would hold " + fmt(expected, 0) + " queries; the runner holds at most " +
                          std::to_string(kMaxScheduledQueries));
  std::vector<double> t;
  for (size_t i = 0;; ++i) {
    const double at = static_cast<double>(i) * interval_ms;
    if (t.size() >= min_count && (t.empty() ? 0.0 : t.back()) >= min_duration_ms) break;
    if (max_duration_ms > 0 && at > max_duration_ms) break;
    t.push_back(at);
  }
  return t;
}

// ------------------------------------------------------------------------------------------ scheduled runs

// Shared state of a scheduled run: the request slots (over all lanes), which of them are free, and the
// per-request / per-query records. `mu` guards everything but the atomics.
struct Scheduled {
  std::vector<Request> slots;
  std::mutex mu;
  std::condition_variable free_cv;               // scheduler: a slot became free, or an error
  std::vector<std::condition_variable> start_cv;  // waiter i: its slot was started, or stop
  std::deque<size_t> free_slots;                  // idle longest first
  std::vector<int64_t> slot_request;              // request running on a slot, -1 = none
  std::vector<Clock::time_point> slot_free_at;    // when the slot's last request completed
  bool stop = false;
  std::exception_ptr error;
  // per request
  std::vector<Clock::time_point> req_issued, req_done;
  std::vector<StageTimes> req_stage;
  std::vector<size_t> req_rows;
  std::vector<uint32_t> req_lane;
  std::vector<size_t> req_query;
  size_t requests_done = 0;
  // per query
  std::vector<uint32_t> query_pending;
  std::vector<Clock::time_point> query_done;

  void fail_locked(std::exception_ptr e) {
    if (!error) error = e;
    free_cv.notify_all();
  }
};

void waiter_loop(Scheduled& S, size_t i) {
  Request& rq = S.slots[i];
  for (;;) {
    int64_t req;
    {
      std::unique_lock<std::mutex> lk(S.mu);
      S.start_cv[i].wait(lk, [&] { return S.slot_request[i] >= 0 || S.stop; });
      if (S.slot_request[i] < 0) return;  // stop, nothing in flight
      req = S.slot_request[i];
    }
    StageTimes t;
    std::exception_ptr err;
    try {
      t = rq.engine->wait(rq.slot);
    } catch (...) {
      err = std::current_exception();
    }
    const auto done = Clock::now();
    std::lock_guard<std::mutex> lk(S.mu);
    const auto r = static_cast<size_t>(req);
    S.req_done[r] = done;
    S.req_stage[r] = t;
    const size_t q = S.req_query[r];
    if (--S.query_pending[q] == 0) S.query_done[q] = done;
    ++S.requests_done;
    S.slot_request[i] = -1;
    S.slot_free_at[i] = done;
    S.free_slots.push_back(i);
    if (err) S.fail_locked(err);
    S.free_cv.notify_all();
  }
}

// Sleeps (on free_cv, so an error wakes it; looking at the StopFlag) until `spin` before `tp`, then spins
// on the clock. False when an error or the end of the run came first.
bool wait_until(Scheduled& S, std::unique_lock<std::mutex>& lk, Clock::time_point tp, Clock::duration spin,
                const detail::RunLimits& limits) {
  limits.wait(S.free_cv, lk, tp - spin, [&] { return S.error != nullptr; });
  if (S.error || limits.forced(Clock::now())) return false;
  lk.unlock();
  while (Clock::now() < tp) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
  lk.lock();
  return true;
}

struct Plan {
  const char* scenario;
  std::vector<double> schedule;  // arrival of each query, ms from t0
  size_t requests_per_query;
  double target_qps;
  double bound_ms;
  bool truncated;  // max_duration_ms cut the schedule short of the minimums
};

ScenarioResult run_scheduled(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                             const Plan& plan, const StopFlag* stop) {
  const char* what = plan.scenario;
  check_and_prepare(lanes, reader, st, what, true);
  const size_t input_bytes = reader.sample_spec().bytes * st.batch_size;
  const size_t nq = plan.schedule.size();
  const size_t nreq = nq * plan.requests_per_query;

  Scheduled S;
  S.slots.resize(lanes.size() * st.inflight);
  // Slot order interleaves lanes (lane 0 slot 0, lane 1 slot 0, ...) so an idle run spreads over devices.
  for (size_t i = 0; i < st.inflight; ++i)
    for (size_t l = 0; l < lanes.size(); ++l) {
      Request& r = S.slots[i * lanes.size() + l];
      r.lane = l;
      r.engine = lanes[l].engine;
      r.slot = i;
      make_request(&r, r.engine->outputs(), st.batch_size, input_bytes);
    }
  const size_t ns = S.slots.size();
  S.start_cv = std::vector<std::condition_variable>(ns);
  S.slot_request.assign(ns, -1);
  S.slot_free_at.assign(ns, Clock::time_point{});
  S.req_issued.resize(nreq);
  S.req_done.resize(nreq);
  S.req_stage.resize(nreq);
  S.req_rows.assign(nreq, 0);
  S.req_lane.assign(nreq, 0);
  S.req_query.resize(nreq);
  S.query_pending.assign(nq, static_cast<uint32_t>(plan.requests_per_query));
  S.query_done.resize(nq);
  for (size_t r = 0; r < nreq; ++r) S.req_query[r] = r / plan.requests_per_query;
  std::vector<Clock::time_point> q_issued(nq);
  std::vector<double> q_ready_ms(nq, 0.0);

  // ---- warm-up on the calling thread, every slot in turn, before the waiters exist. The run's clock (and
  // its max_duration_ms cap) starts here.
  reader.rewind();
  const detail::RunLimits limits(st, stop);
  std::optional<StopReason> stop_why;
  size_t warm = 0;
  while (!limits.warm(warm, Clock::now())) {
    if ((stop_why = limits.forced(Clock::now()))) break;
    Request& r = S.slots[warm % ns];
    feed(reader, &r, input_bytes, what);
    r.engine->start(r.slot, r.binding);
    r.engine->wait(r.slot);
    ++warm;
  }
  for (size_t i = 0; i < ns; ++i) S.free_slots.push_back(i);

  std::vector<std::thread> waiters;
  for (size_t i = 0; i < ns; ++i) waiters.emplace_back(waiter_loop, std::ref(S), i);
  const auto spin = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(std::max(0.0, st.scheduler_spin_ms)));
  const auto t0 = Clock::now();
  // Rounded up: a query is never issued before its scheduled time, not even by a clock tick.
  auto at = [&](double ms) { return t0 + std::chrono::ceil<Clock::duration>(std::chrono::duration<double, std::milli>(ms)); };
  const bool warmup_stopped = stop_why.has_value();

  size_t issued_queries = 0, issued_requests = 0;
  {
    std::unique_lock<std::mutex> lk(S.mu);
    for (size_t q = 0; q < nq && !S.error && !stop_why; ++q) {
      const auto sched = at(plan.schedule[q]);
      // An arrival beyond the cap is never issued: the run stops issuing now.
      if (sched > limits.deadline()) {
        stop_why = StopReason::kMaxDuration;
        break;
      }
      for (size_t k = 0; k < plan.requests_per_query && !S.error; ++k) {
        // A free slot, with its input in place, before the arrival when one is free by then.
        limits.wait(S.free_cv, lk, Clock::time_point::max(), [&] { return !S.free_slots.empty() || S.error; });
        if (S.error) break;
        if ((stop_why = limits.forced(Clock::now()))) break;
        const size_t i = S.free_slots.front();
        S.free_slots.pop_front();
        // The query could have gone out once both it had arrived and the slot was free; anything after
        // that is the harness's own delay (waking up, copying the input).
        const double free_ms = S.slot_free_at[i] > t0 ? ms_between(t0, S.slot_free_at[i]) : 0.0;
        Request& r = S.slots[i];
        lk.unlock();
        std::exception_ptr err;
        try {
          feed(reader, &r, input_bytes, what);
        } catch (...) {
          err = std::current_exception();
        }
        lk.lock();
        if (err) {
          S.fail_locked(err);
          S.free_slots.push_front(i);
          break;
        }
        if (k == 0) {
          if (!wait_until(S, lk, sched, spin, limits)) {
            S.free_slots.push_front(i);
            if (!S.error) stop_why = limits.forced(Clock::now());
            break;
          }
          q_ready_ms[q] = std::max(free_ms, plan.schedule[q]);
        }
        const size_t req = issued_requests;
        lk.unlock();
        const auto issued = Clock::now();
        try {
          r.engine->start(r.slot, r.binding);
        } catch (...) {
          err = std::current_exception();
        }
        lk.lock();
        if (err) {
          S.fail_locked(err);
          S.free_slots.push_front(i);
          break;
        }
        if (k == 0) q_issued[q] = issued;
        S.req_rows[req] = r.valid_rows;
        S.req_lane[req] = static_cast<uint32_t>(r.lane);
        S.req_issued[req] = issued;
        S.slot_request[i] = static_cast<int64_t>(req);
        ++issued_requests;
        S.start_cv[i].notify_one();
      }
      if (stop_why || S.error) break;
      ++issued_queries;
    }
    // Everything issued completes (or fails) before the waiters are told to stop.
    S.free_cv.wait(lk, [&] { return S.requests_done == issued_requests; });
    S.stop = true;
    for (auto& cv : S.start_cv) cv.notify_all();
  }
  for (auto& t : waiters) t.join();
  reader.rewind();
  if (S.error) std::rethrow_exception(S.error);

  // ---- results: only queries whose every request was issued and completed.
  ScenarioResult res;
  res.scenario = plan.scenario;
  res.queries_scheduled = nq;
  res.queries = issued_queries;
  res.requests = issued_queries * plan.requests_per_query;
  res.samples_per_query = st.batch_size * plan.requests_per_query;
  res.warmup_iterations = warm;
  res.target_qps = plan.target_qps;
  res.late_threshold_ms = st.late_threshold_ms;
  res.latency_bound_ms = plan.bound_ms;
  res.bound_percentile = st.bound_percentile;
  res.stop_reason = stop_why.value_or(StopReason::kMinimumsMet);
  res.scheduled_qps = nq > 0 && plan.schedule.back() > 0 ? static_cast<double>(nq) * 1000.0 / plan.schedule.back() : 0.0;
  std::vector<double> lat, delay, queue, lateness;
  std::vector<size_t> req_order;
  Clock::time_point last_done = t0;
  for (size_t q = 0; q < res.queries; ++q) {
    const double sched = plan.schedule[q];
    // issued >= ready >= sched by construction; max() only absorbs sub-nanosecond rounding of the ms values.
    const double ready = q_ready_ms[q];
    const double issued = std::max(ms_between(t0, q_issued[q]), ready);
    const double done = ms_between(t0, S.query_done[q]);
    last_done = std::max(last_done, S.query_done[q]);
    res.scheduled_ms.push_back(sched);
    res.issued_ms.push_back(issued);
    res.ready_ms.push_back(ready);
    res.completed_ms.push_back(done);
    lat.push_back(done - sched);
    delay.push_back(issued - sched);
    queue.push_back(ready - sched);
    lateness.push_back(issued - ready);
    if (issued - sched > st.late_threshold_ms) ++res.late_issues;
    const size_t first_req = q * plan.requests_per_query;
    res.query_devices.push_back(S.req_lane[first_req]);
    for (size_t k = 0; k < plan.requests_per_query; ++k) {
      req_order.push_back(first_req + k);
      res.samples_processed += S.req_rows[first_req + k];
    }
  }
  res.duration_ms = ms_between(t0, last_done);
  res.achieved_qps = res.duration_ms > 0 ? static_cast<double>(res.queries) * 1000.0 / res.duration_ms : 0.0;
  res.latency = compute_stats(lat);
  res.issue_delay = compute_stats(delay);
  res.queue_wait = compute_stats(queue);
  res.scheduler_lateness = compute_stats(lateness);
  if (!lat.empty()) {
    // The same interpolation as compute_stats, at the bound's percentile.
    std::vector<double> sorted = lat;
    std::sort(sorted.begin(), sorted.end());
    const double h = (static_cast<double>(sorted.size()) - 1.0) * st.bound_percentile;
    const auto lo = static_cast<size_t>(std::floor(h));
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    res.latency_at_percentile = sorted[lo] + (h - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
  }
  StageRecorder stages;
  for (size_t r : req_order) stages.add(S.req_stage[r]);
  res.stage_means_ms = stages.means();
  if (st.keep_samples) {
    std::vector<std::string> partial;
    res.stage_samples_ms = stages.complete_samples(&partial);
    for (const auto& p : partial)
      res.warnings.push_back("engine stage " + p + ": its per-request samples are left out (the mean keeps them)");
  }

  // Per device: the requests it ran, the queries it started.
  for (size_t l = 0; l < lanes.size(); ++l) {
    DeviceStats d;
    d.name = lanes[l].name;
    std::vector<double> dl;
    bool any = false;
    Clock::time_point first{}, last{};
    StageRecorder ds;
    for (size_t r : req_order) {
      if (S.req_lane[r] != l) continue;
      ++d.iterations;
      d.samples_processed += S.req_rows[r];
      ds.add(S.req_stage[r]);
      if (!any || S.req_issued[r] < first) first = S.req_issued[r];
      if (!any || S.req_done[r] > last) last = S.req_done[r];
      any = true;
    }
    for (size_t q = 0; q < res.queries; ++q)
      if (res.query_devices[q] == l) dl.push_back(lat[q]);
    if (any) {
      d.first_start_ms = ms_between(t0, first);
      d.last_end_ms = ms_between(t0, last);
      d.wall_ms = d.last_end_ms - d.first_start_ms;
      d.throughput_per_s = d.wall_ms > 0 ? static_cast<double>(d.samples_processed) * 1000.0 / d.wall_ms : 0.0;
    }
    d.latency = compute_stats(dl);
    d.stage_means_ms = ds.means();
    res.devices.push_back(d);
  }

  // ---- LoadGen-style validity.
  auto pct_name = [&] { return "p" + fmt(st.bound_percentile * 100.0, st.bound_percentile * 100.0 == std::floor(st.bound_percentile * 100.0) ? 0 : 1); };
  if (res.queries == 0) res.invalid_reasons.push_back("no query completed");
  if (!lat.empty() && res.latency_at_percentile > plan.bound_ms)
    res.invalid_reasons.push_back(pct_name() + " latency " + fmt(res.latency_at_percentile) + " ms > bound " +
                                  fmt(plan.bound_ms) + " ms");
  if (res.queries < st.min_query_count)
    res.invalid_reasons.push_back(std::to_string(res.queries) + " queries < min_query_count " +
                                  std::to_string(st.min_query_count));
  if (res.duration_ms < st.min_duration_ms)
    res.invalid_reasons.push_back("ran " + fmt(res.duration_ms, 1) + " ms < min_duration_ms " + fmt(st.min_duration_ms, 1));
  if (plan.truncated)
    res.invalid_reasons.push_back("max_duration_ms = " + fmt(st.max_duration_ms, 1) +
                                  " cut the schedule short of min_duration_ms / min_query_count");
  const std::string never_issued = std::to_string(nq - res.queries) + " of " + std::to_string(nq) +
                                   " scheduled queries were never issued";
  if (warmup_stopped)
    res.invalid_reasons.push_back(
        (res.stop_reason == StopReason::kInterrupted
             ? std::string("interrupted")
             : "stopped on max_duration_ms = " + fmt(st.max_duration_ms, 1) + " (the cap includes warm-up)") +
        " during warm-up, after " + std::to_string(warm) + " warm-up requests: " + never_issued);
  else if (res.stop_reason == StopReason::kMaxDuration)
    res.invalid_reasons.push_back("stopped issuing at max_duration_ms = " + fmt(st.max_duration_ms, 1) +
                                  " (counted from the start of the run, warm-up included): " + never_issued +
                                  " (the engine fell behind the schedule, or warm-up took the time)");
  else if (res.stop_reason == StopReason::kInterrupted)
    res.invalid_reasons.push_back("interrupted: " + never_issued);
  res.valid = res.invalid_reasons.empty();
  if (res.scheduler_lateness.p99 > std::max(1.0, 10 * st.late_threshold_ms))
    res.warnings.push_back("the harness itself issued late: p99 of its own issue lateness is " +
                           fmt(res.scheduler_lateness.p99) + " ms (the machine is loaded, or scheduler_spin_ms = " +
                           fmt(st.scheduler_spin_ms) + " is too short); latencies include it");
  if (!st.keep_samples) {
    res.scheduled_ms.clear();
    res.issued_ms.clear();
    res.completed_ms.clear();
    res.ready_ms.clear();
    res.query_devices.clear();
  }
  return res;
}

void check_validity_settings(const RunSettings& st) {
  if (!(st.bound_percentile > 0 && st.bound_percentile < 1))
    throw InvalidArgument("RunSettings.bound_percentile must be in (0, 1), got " + fmt(st.bound_percentile, 4));
  if (!(st.latency_bound_ms >= 0) || !std::isfinite(st.latency_bound_ms))
    throw InvalidArgument("RunSettings.latency_bound_ms must be >= 0, got " + fmt(st.latency_bound_ms));
  if (!(st.late_threshold_ms >= 0) || !std::isfinite(st.late_threshold_ms))
    throw InvalidArgument("RunSettings.late_threshold_ms must be >= 0");
  if (!(st.scheduler_spin_ms >= 0) || !(st.scheduler_spin_ms <= 1000))
    throw InvalidArgument("RunSettings.scheduler_spin_ms must be in 0..1000, got " + fmt(st.scheduler_spin_ms));
}

bool schedule_truncated(const std::vector<double>& t, const RunSettings& st) {
  return t.size() < st.min_query_count || (t.empty() ? 0.0 : t.back()) < st.min_duration_ms;
}

}  // namespace

ScenarioResult run_server(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                          const StopFlag* stop) {
  check_validity_settings(st);
  if (!(st.latency_bound_ms > 0))
    throw InvalidArgument("run_server: RunSettings.latency_bound_ms must be > 0 (the p99 bound a VALID run meets)");
  Plan plan{"server", {}, 1, st.target_qps, st.latency_bound_ms, false};
  plan.schedule = poisson_schedule(st.target_qps, st.min_query_count, st.min_duration_ms, st.max_duration_ms,
                                   st.schedule_seed);
  plan.truncated = schedule_truncated(plan.schedule, st);
  if (plan.schedule.empty())
    throw InvalidArgument("run_server: max_duration_ms = " + fmt(st.max_duration_ms, 1) +
                          " leaves no room for a single arrival at target_qps " + fmt(st.target_qps, 1));
  return run_scheduled(lanes, reader, st, plan, stop);
}

ScenarioResult run_multistream(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                               const StopFlag* stop) {
  check_validity_settings(st);
  if (st.samples_per_query < 1) throw InvalidArgument("RunSettings.samples_per_query must be >= 1");
  if (st.batch_size < 1) throw InvalidArgument("RunSettings.batch_size must be >= 1");
  if (st.samples_per_query % st.batch_size != 0)
    throw InvalidArgument("RunSettings.samples_per_query = " + std::to_string(st.samples_per_query) +
                          " is not a multiple of batch_size = " + std::to_string(st.batch_size) +
                          " (a query is split into whole batches; pymfn does not pad queries)");
  const double bound = st.latency_bound_ms > 0 ? st.latency_bound_ms : st.query_interval_ms;
  Plan plan{"multi-stream", {}, st.samples_per_query / st.batch_size, 0, bound, false};
  plan.schedule = fixed_schedule(st.query_interval_ms, st.min_query_count, st.min_duration_ms, st.max_duration_ms);
  plan.target_qps = 1000.0 / st.query_interval_ms;
  plan.truncated = schedule_truncated(plan.schedule, st);
  return run_scheduled(lanes, reader, st, plan, stop);
}

}  // namespace pymfn
