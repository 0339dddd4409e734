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

using detail::Clock;
using detail::fmt;
using detail::ms_between;
using detail::Request;
using detail::StageRecorder;

constexpr size_t kMaxScheduledQueries = 50'000'000;
constexpr size_t kMaxBatchedQueries = 4096;  // queries one batched request may carry

}  // namespace

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

struct Plan {
  const char* scenario;
  std::vector<double> schedule;  // arrival of each query, ms from t0
  size_t requests_per_query;
  double target_qps;
  double bound_ms;
  bool truncated;  // max_duration_ms cut the schedule short of the minimums
  size_t max_batch = 1;   // queries one request may carry (server batching)
  double hold_ms = 0;     // how long the batcher holds the oldest query for more (RunSettings.max_queue_delay_ms)
};

// Keeps the host's cores awake between requests (RunSettings.keep_warm_threads): each thread spins while no
// request is in flight and sleeps while one is, so the engine's own threads get the cores when they run.
class CoreWarmer {
 public:
  explicit CoreWarmer(size_t threads) {
    for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { spin(); });
  }
  ~CoreWarmer() { stop(); }
  CoreWarmer(const CoreWarmer&) = delete;
  CoreWarmer& operator=(const CoreWarmer&) = delete;

  // Before Engine::start: the spinners step aside before the engine's threads need the cores.
  void request_started() { inflight_.fetch_add(1, std::memory_order_acq_rel); }
  // After Engine::wait returned (or start failed).
  void request_done() {
    if (inflight_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      cv_.notify_all();
    }
  }
  // Stops and joins the spinners; returns the time they spent spinning, summed over threads (ms).
  double stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_.store(true, std::memory_order_release);
      cv_.notify_all();
    }
    for (auto& t : threads_)
      if (t.joinable()) t.join();
    return spun_ms_.load();
  }

 private:
  void spin() {
    double spun = 0;
    while (!stop_.load(std::memory_order_acquire)) {
      if (inflight_.load(std::memory_order_acquire) > 0) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return inflight_.load(std::memory_order_acquire) == 0 || stop_.load(); });
        continue;
      }
      const auto from = Clock::now();
      for (int k = 0; k < 256 && inflight_.load(std::memory_order_relaxed) == 0; ++k) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      spun += ms_between(from, Clock::now());
    }
    double prev = spun_ms_.load();
    while (!spun_ms_.compare_exchange_weak(prev, prev + spun)) {
    }
  }

  std::atomic<int> inflight_{0};
  std::atomic<bool> stop_{false};
  std::atomic<double> spun_ms_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
};

// Shared state of a scheduled run: the request slots (over all lanes), which of them are free, and the
// per-request / per-query records. `mu` guards everything.
struct Scheduled {
  std::vector<Request> slots;
  size_t query_bytes = 0;   // input bytes of one query (one reader batch)
  size_t request_rows = 0;  // rows the engines are prepared for: batch_size * max_batch
  size_t query_rows = 0;    // rows of one query: batch_size
  std::vector<bool> lane_per_request;              // Engine::batch_per_request of each lane
  std::vector<std::vector<size_t>> lane_batches;   // its offered batch sizes (empty: any)
  std::mutex mu;
  std::condition_variable free_cv;               // scheduler: a slot became free, or an error
  std::vector<std::condition_variable> start_cv;  // waiter i: its slot was started, or stop
  std::deque<size_t> free_slots;                  // idle longest first
  std::vector<int64_t> slot_request;              // request running on a slot, -1 = none
  std::vector<Clock::time_point> slot_free_at;    // when the slot's last request completed
  bool stop = false;
  std::exception_ptr error;
  CoreWarmer* warmer = nullptr;  // RunSettings.keep_warm_threads > 0
  // per request (issue order): the queries it carries are req_query .. req_query + req_queries - 1
  std::vector<Clock::time_point> req_issued, req_done;
  std::vector<StageTimes> req_stage;
  std::vector<size_t> req_rows;         // valid rows of its queries
  std::vector<size_t> req_engine_rows;  // rows the engine ran
  std::vector<uint32_t> req_lane;
  std::vector<size_t> req_query, req_queries;
  size_t requests_done = 0;
  // per query
  std::vector<uint32_t> query_pending;
  std::vector<size_t> query_request;  // its first request
  std::vector<Clock::time_point> query_done;

  // Slot order interleaves lanes (lane 0 slot 0, lane 1 slot 0, ...) so an idle run spreads over devices.
  Scheduled(const std::vector<Lane>& lanes, const RunSettings& st, const Plan& plan, size_t bytes_per_query)
      : query_bytes(bytes_per_query), request_rows(st.batch_size * plan.max_batch), query_rows(st.batch_size) {
    for (const Lane& l : lanes) {
      lane_per_request.push_back(l.engine->batch_per_request());
      lane_batches.push_back(l.engine->supported_batches());
    }
    slots.resize(lanes.size() * st.inflight);
    for (size_t i = 0; i < st.inflight; ++i)
      for (size_t l = 0; l < lanes.size(); ++l) {
        Request& r = slots[i * lanes.size() + l];
        r.lane = l;
        r.engine = lanes[l].engine;
        r.slot = i;
        // Always a copy: several slots are fed from one reader, and a request may carry several queries.
        detail::make_request(&r, r.engine->outputs(), request_rows, query_bytes * plan.max_batch, true);
      }
    const size_t ns = slots.size(), nq = plan.schedule.size(), nreq = nq * plan.requests_per_query;
    start_cv = std::vector<std::condition_variable>(ns);
    slot_request.assign(ns, -1);
    slot_free_at.assign(ns, Clock::time_point{});
    req_issued.resize(nreq);
    req_done.resize(nreq);
    req_stage.resize(nreq);
    req_rows.assign(nreq, 0);
    req_engine_rows.assign(nreq, 0);
    req_lane.assign(nreq, 0);
    req_query.assign(nreq, 0);
    req_queries.assign(nreq, 0);
    query_pending.assign(nq, static_cast<uint32_t>(plan.requests_per_query));
    query_request.assign(nq, 0);
    query_done.resize(nq);
  }

  // Rows the engine of `lane` runs for a request of `queries` queries: the smallest offered batch that holds
  // them when it chooses per request, else the prepared size (the rest is padding).
  size_t engine_rows(size_t lane, size_t queries) const {
    const size_t need = queries * query_rows;
    if (!lane_per_request[lane]) return request_rows;
    for (size_t b : lane_batches[lane])  // offered sizes are ascending; request_rows is one of them
      if (b >= need && b <= request_rows) return b;
    return lane_batches[lane].empty() ? need : request_rows;
  }

  // Puts query batch `v` at query position `pos` of the request's input (position 0 also sets its view).
  void bind_query(Request& r, size_t pos, const BatchView& v) const {
    if (pos == 0) r.view = v;
    std::memcpy(static_cast<uint8_t*>(r.input_copy->data()) + pos * query_bytes, v.data, query_bytes);
  }

  void fail_locked(std::exception_ptr e) {
    if (!error) error = e;
    free_cv.notify_all();
  }
};

// What the scheduler did: per query, when its first request went out and when it could have (ready: the
// later of its arrival and the completion that freed the slot it got, ms from t0).
struct Issued {
  size_t warmup_requests = 0;
  bool warmup_stopped = false;  // the run ended before the schedule started
  size_t queries = 0, requests = 0;
  std::vector<Clock::time_point> query_issued;
  std::vector<double> query_ready_ms;
  std::optional<StopReason> stop_why;
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
    if (S.warmer) S.warmer->request_done();
    std::lock_guard<std::mutex> lk(S.mu);
    const auto r = static_cast<size_t>(req);
    S.req_done[r] = done;
    S.req_stage[r] = t;
    for (size_t q = S.req_query[r]; q < S.req_query[r] + S.req_queries[r]; ++q)
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

// Warm-up on the calling thread, every slot in turn, before the waiters exist. With batching it cycles
// through the request sizes the batcher can send, so none of them runs for the first time while measured.
void warm_up(Scheduled& S, BatchReader& reader, const detail::RunLimits& limits, const Plan& plan, Issued* out) {
  while (!limits.warm(out->warmup_requests, Clock::now())) {
    if ((out->stop_why = limits.forced(Clock::now()))) break;
    Request& r = S.slots[out->warmup_requests % S.slots.size()];
    const size_t queries = out->warmup_requests / S.slots.size() % plan.max_batch + 1;
    for (size_t k = 0; k < queries; ++k) S.bind_query(r, k, detail::next_batch(reader, plan.scenario));
    r.binding.batch_rows = S.engine_rows(r.lane, queries);
    r.engine->start(r.slot, r.binding);
    r.engine->wait(r.slot);
    ++out->warmup_requests;
  }
  out->warmup_stopped = out->stop_why.has_value();
}

// The scheduler (calling thread): issues every query of the plan at its arrival, its requests on the free
// slots idle longest, until the plan ends, the run is forced to end or an engine fails; then waits until
// everything issued has completed. With batching (plan.max_batch > 1, one request per query), a request
// leaving at query q's arrival also carries the queries that have arrived by then, and waits up to
// plan.hold_ms past q's arrival for more, up to max_batch. Caller holds `lk` on S.mu.
void issue_schedule(Scheduled& S, std::unique_lock<std::mutex>& lk, BatchReader& reader, const RunSettings& st,
                    const Plan& plan, const detail::RunLimits& limits, Clock::time_point t0, Issued* out) {
  const auto spin = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double, std::milli>(std::max(0.0, st.scheduler_spin_ms)));
  // Rounded up: a query is never issued before its scheduled time, not even by a clock tick.
  auto at = [&](double ms) { return t0 + std::chrono::ceil<Clock::duration>(std::chrono::duration<double, std::milli>(ms)); };
  auto& stop_why = out->stop_why;
  // Runs `step` without the lock; an exception it throws fails the run (false).
  auto unlocked = [&](auto&& step) {
    std::exception_ptr err;
    lk.unlock();
    try {
      step();
    } catch (...) {
      err = std::current_exception();
    }
    lk.lock();
    if (err) S.fail_locked(err);
    return err == nullptr;
  };
  const size_t nq = plan.schedule.size();
  // Adds to request `r` (holding query q) the queries after q that arrive in time, adding their valid rows to
  // `valid`; returns how many queries it holds.
  auto gather = [&](Request& r, size_t q, size_t* valid) {
    size_t n = 1;
    const auto hold_until = at(plan.schedule[q] + plan.hold_ms);
    while (n < plan.max_batch && q + n < nq && !S.error) {
      const auto next = at(plan.schedule[q + n]);
      if (next > limits.deadline()) break;
      if (next > Clock::now()) {
        // Not arrived: a batcher cannot know when it will, so it holds the request until the delay is up.
        if (next > hold_until) {
          if (hold_until > Clock::now()) wait_until(S, lk, hold_until, spin, limits);
          break;
        }
        if (!wait_until(S, lk, next, spin, limits)) break;
      }
      BatchView v;
      if (!unlocked([&] {
            v = detail::next_batch(reader, plan.scenario);
            S.bind_query(r, n, v);
          }))
        break;
      *valid += v.valid_rows;
      ++n;
    }
    return n;
  };
  for (size_t q = 0; q < nq && !S.error && !stop_why;) {
    const auto sched = at(plan.schedule[q]);
    // An arrival beyond the cap is never issued: the run stops issuing now.
    if (sched > limits.deadline()) {
      stop_why = StopReason::kMaxDuration;
      break;
    }
    size_t carried = 1;  // queries in this query's (last) request
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
      if (!unlocked([&] { S.bind_query(r, 0, detail::next_batch(reader, plan.scenario)); })) {
        S.free_slots.push_front(i);
        break;
      }
      double ready_ms = 0;
      size_t valid = r.view.valid_rows;
      if (k == 0) {
        if (!wait_until(S, lk, sched, spin, limits)) {
          S.free_slots.push_front(i);
          if (!S.error) stop_why = limits.forced(Clock::now());
          break;
        }
        ready_ms = std::max(free_ms, plan.schedule[q]);
        if (plan.max_batch > 1) {
          carried = gather(r, q, &valid);
          if (S.error) {
            S.free_slots.push_front(i);
            break;
          }
          // Time the batcher held the request for more queries counts as queueing, not as harness delay.
          ready_ms = std::max(ready_ms, std::min(ms_between(t0, Clock::now()), plan.schedule[q] + plan.hold_ms));
          ready_ms = std::max(ready_ms, plan.schedule[q + carried - 1]);
        }
      }
      r.binding.batch_rows = S.engine_rows(r.lane, carried);
      const size_t req = out->requests;
      Clock::time_point issued;
      if (!unlocked([&] {
            if (S.warmer) S.warmer->request_started();
            issued = Clock::now();
            try {
              r.engine->start(r.slot, r.binding);
            } catch (...) {
              if (S.warmer) S.warmer->request_done();
              throw;
            }
          })) {
        S.free_slots.push_front(i);
        break;
      }
      if (k == 0)
        for (size_t j = q; j < q + carried; ++j) {
          out->query_issued[j] = issued;
          out->query_ready_ms[j] = std::max(ready_ms, plan.schedule[j]);
          S.query_request[j] = req;
        }
      S.req_rows[req] = valid;
      S.req_engine_rows[req] = r.binding.batch_rows;
      S.req_lane[req] = static_cast<uint32_t>(r.lane);
      S.req_issued[req] = issued;
      S.req_query[req] = q;
      S.req_queries[req] = carried;
      S.slot_request[i] = static_cast<int64_t>(req);
      ++out->requests;
      S.start_cv[i].notify_one();
    }
    if (stop_why || S.error) break;
    out->queries += carried;
    q += carried;
  }
  // Everything issued completes (or fails) before the waiters are told to stop.
  S.free_cv.wait(lk, [&] { return S.requests_done == out->requests; });
  S.stop = true;
  for (auto& cv : S.start_cv) cv.notify_all();
}

// Per-query times and their statistics, over the queries whose every request was issued and completed;
// returns the requests of those queries in issue order.
std::vector<size_t> summarize_queries(ScenarioResult* res, const Scheduled& S, const Plan& plan, const Issued& is,
                                      const RunSettings& st, Clock::time_point t0, std::vector<double>* lat) {
  std::vector<double> delay, queue, lateness;
  std::vector<size_t> req_order;
  Clock::time_point last_done = t0;
  for (size_t q = 0; q < res->queries; ++q) {
    const double sched = plan.schedule[q];
    // issued >= ready >= sched by construction; max() only absorbs sub-nanosecond rounding of the ms values.
    const double ready = is.query_ready_ms[q];
    const double issued = std::max(ms_between(t0, is.query_issued[q]), ready);
    const double done = ms_between(t0, S.query_done[q]);
    last_done = std::max(last_done, S.query_done[q]);
    res->scheduled_ms.push_back(sched);
    res->issued_ms.push_back(issued);
    res->ready_ms.push_back(ready);
    res->completed_ms.push_back(done);
    lat->push_back(done - sched);
    delay.push_back(issued - sched);
    queue.push_back(ready - sched);
    lateness.push_back(issued - ready);
    if (issued - sched > st.late_threshold_ms) ++res->late_issues;
    const size_t first_req = S.query_request[q];
    res->query_devices.push_back(S.req_lane[first_req]);
    for (size_t k = 0; k < plan.requests_per_query; ++k) {
      const size_t r = first_req + k;
      if (S.req_query[r] != q) continue;  // a batched request is listed under its first query
      req_order.push_back(r);
      res->samples_processed += S.req_rows[r];
    }
  }
  res->duration_ms = ms_between(t0, last_done);
  res->achieved_qps = res->duration_ms > 0 ? static_cast<double>(res->queries) * 1000.0 / res->duration_ms : 0.0;
  res->latency = compute_stats(*lat);
  res->issue_delay = compute_stats(delay);
  res->queue_wait = compute_stats(queue);
  res->scheduler_lateness = compute_stats(lateness);
  std::vector<double> sorted = *lat;
  std::sort(sorted.begin(), sorted.end());
  res->latency_at_percentile = detail::percentile_of_sorted(sorted, st.bound_percentile);
  // Per request: what it carried and ran.
  res->max_batch = plan.max_batch;
  size_t carried = 0;
  for (size_t r : req_order) {
    carried += S.req_queries[r];
    res->padding_rows += S.req_engine_rows[r] - std::min(S.req_engine_rows[r], S.req_queries[r] * S.query_rows);
    res->request_issued_ms.push_back(ms_between(t0, S.req_issued[r]));
    res->request_completed_ms.push_back(ms_between(t0, S.req_done[r]));
    res->request_queries.push_back(static_cast<uint32_t>(S.req_queries[r]));
    res->request_rows.push_back(static_cast<uint32_t>(S.req_engine_rows[r]));
  }
  res->mean_queries_per_request =
      req_order.empty() ? 0.0 : static_cast<double>(carried) / static_cast<double>(req_order.size());
  return req_order;
}

// Per device: the requests it ran, the queries it started.
void add_device_breakdown(ScenarioResult* res, const std::vector<Lane>& lanes, const Scheduled& S,
                          const std::vector<size_t>& req_order, const std::vector<double>& lat, Clock::time_point t0) {
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
    for (size_t q = 0; q < res->queries; ++q)
      if (res->query_devices[q] == l) dl.push_back(lat[q]);
    if (any) {
      d.first_start_ms = ms_between(t0, first);
      d.last_end_ms = ms_between(t0, last);
      d.wall_ms = d.last_end_ms - d.first_start_ms;
      d.throughput_per_s = d.wall_ms > 0 ? static_cast<double>(d.samples_processed) * 1000.0 / d.wall_ms : 0.0;
    }
    d.latency = compute_stats(dl);
    d.stage_means_ms = ds.means();
    res->devices.push_back(d);
  }
}

// LoadGen-style validity: every reason the run is INVALID, and the harness's own lateness as a warning.
void judge_validity(ScenarioResult* res, const Plan& plan, const RunSettings& st, const detail::RunLimits& limits,
                    const Issued& is) {
  const size_t nq = plan.schedule.size();
  auto pct_name = [&] { return "p" + fmt(st.bound_percentile * 100.0, st.bound_percentile * 100.0 == std::floor(st.bound_percentile * 100.0) ? 0 : 1); };
  if (res->queries == 0) res->invalid_reasons.push_back("no query completed");
  if (res->queries > 0 && res->latency_at_percentile > plan.bound_ms)
    res->invalid_reasons.push_back(pct_name() + " latency " + fmt(res->latency_at_percentile) + " ms > bound " +
                                   fmt(plan.bound_ms) + " ms");
  if (res->queries < st.min_query_count)
    res->invalid_reasons.push_back(std::to_string(res->queries) + " queries < min_query_count " +
                                   std::to_string(st.min_query_count));
  if (res->duration_ms < st.min_duration_ms)
    res->invalid_reasons.push_back("ran " + fmt(res->duration_ms, 1) + " ms < min_duration_ms " + fmt(st.min_duration_ms, 1));
  if (plan.truncated)
    res->invalid_reasons.push_back("max_duration_ms = " + fmt(st.max_duration_ms, 1) +
                                   " cut the schedule short of min_duration_ms / min_query_count");
  const std::string never_issued = std::to_string(nq - res->queries) + " of " + std::to_string(nq) +
                                   " scheduled queries were never issued";
  if (is.warmup_stopped)
    res->invalid_reasons.push_back(limits.cause(res->stop_reason) + " during warm-up, after " +
                                   std::to_string(is.warmup_requests) + " warm-up requests: " + never_issued);
  else if (res->stop_reason == StopReason::kMaxDuration)
    res->invalid_reasons.push_back("stopped issuing at max_duration_ms = " + fmt(st.max_duration_ms, 1) +
                                   " (counted from the start of the run, warm-up included): " + never_issued +
                                   " (the engine fell behind the schedule, or warm-up took the time)");
  else if (res->stop_reason == StopReason::kInterrupted)
    res->invalid_reasons.push_back("interrupted: " + never_issued);
  res->valid = res->invalid_reasons.empty();
  if (res->scheduler_lateness.p99 > std::max(1.0, 10 * st.late_threshold_ms))
    res->warnings.push_back("the harness itself issued late: p99 of its own issue lateness is " +
                            fmt(res->scheduler_lateness.p99) + " ms (the machine is loaded, or scheduler_spin_ms = " +
                            fmt(st.scheduler_spin_ms) + " is too short); latencies include it");
}

ScenarioResult run_scheduled(const std::vector<Lane>& lanes, BatchReader& reader, const RunSettings& st,
                             const Plan& plan, const StopFlag* stop) {
  detail::check_lanes_and_prepare(lanes, reader, st, plan.scenario, true, st.batch_size * plan.max_batch);
  const size_t nq = plan.schedule.size();
  Scheduled S(lanes, st, plan, reader.sample_spec().bytes * st.batch_size);
  Issued is;
  is.query_issued.resize(nq);
  is.query_ready_ms.assign(nq, 0.0);

  // The run's clock (and its max_duration_ms cap) starts with warm-up.
  reader.rewind();
  const detail::RunLimits limits(st, stop);
  warm_up(S, reader, limits, plan, &is);
  for (size_t i = 0; i < S.slots.size(); ++i) S.free_slots.push_back(i);
  std::vector<std::thread> waiters;
  for (size_t i = 0; i < S.slots.size(); ++i) waiters.emplace_back(waiter_loop, std::ref(S), i);
  std::optional<CoreWarmer> warmer;
  if (st.keep_warm_threads > 0) S.warmer = &warmer.emplace(st.keep_warm_threads);
  const auto t0 = Clock::now();
  {
    std::unique_lock<std::mutex> lk(S.mu);
    issue_schedule(S, lk, reader, st, plan, limits, t0, &is);
  }
  for (auto& t : waiters) t.join();
  const double warm_cpu_ms = warmer ? warmer->stop() : 0.0;
  reader.rewind();
  if (S.error) std::rethrow_exception(S.error);

  ScenarioResult res;
  res.scenario = plan.scenario;
  res.keep_warm_threads = st.keep_warm_threads;
  res.keep_warm_cpu_ms = warm_cpu_ms;
  res.queries_scheduled = nq;
  res.queries = is.queries;
  res.samples_per_query = st.batch_size * plan.requests_per_query;
  res.warmup_iterations = is.warmup_requests;
  res.target_qps = plan.target_qps;
  res.late_threshold_ms = st.late_threshold_ms;
  res.latency_bound_ms = plan.bound_ms;
  res.bound_percentile = st.bound_percentile;
  res.stop_reason = is.stop_why.value_or(StopReason::kMinimumsMet);
  res.scheduled_qps = nq > 0 && plan.schedule.back() > 0 ? static_cast<double>(nq) * 1000.0 / plan.schedule.back() : 0.0;
  std::vector<double> lat;
  const std::vector<size_t> req_order = summarize_queries(&res, S, plan, is, st, t0, &lat);
  res.requests = req_order.size();
  StageRecorder stages;
  for (size_t r : req_order) stages.add(S.req_stage[r]);
  res.stage_means_ms = stages.means();
  if (st.keep_samples) detail::add_stage_samples(&res.stage_samples_ms, &res.warnings, stages);
  add_device_breakdown(&res, lanes, S, req_order, lat, t0);
  judge_validity(&res, plan, st, limits, is);
  if (!st.keep_samples) {
    res.scheduled_ms.clear();
    res.issued_ms.clear();
    res.completed_ms.clear();
    res.ready_ms.clear();
    res.query_devices.clear();
    res.request_issued_ms.clear();
    res.request_completed_ms.clear();
    res.request_queries.clear();
    res.request_rows.clear();
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
  if (st.keep_warm_threads > 256)
    throw InvalidArgument("RunSettings.keep_warm_threads must be in 0..256, got " + std::to_string(st.keep_warm_threads));
  if (st.max_batch < 1 || st.max_batch > kMaxBatchedQueries)
    throw InvalidArgument("RunSettings.max_batch must be in 1.." + std::to_string(kMaxBatchedQueries) + ", got " +
                          std::to_string(st.max_batch));
  if (!(st.max_queue_delay_ms >= 0) || !(st.max_queue_delay_ms <= 60000))
    throw InvalidArgument("RunSettings.max_queue_delay_ms must be in 0..60000, got " + fmt(st.max_queue_delay_ms));
}

// Batching needs every engine to offer the full request size (batch_size * max_batch rows).
void check_batching(const std::vector<Lane>& lanes, const RunSettings& st) {
  if (st.max_batch <= 1) return;
  const size_t rows = st.batch_size * st.max_batch;
  for (const Lane& l : lanes) {
    if (l.engine == nullptr) continue;  // named by the common checks
    const auto offered = l.engine->supported_batches();
    if (offered.empty() || std::find(offered.begin(), offered.end(), rows) != offered.end()) continue;
    std::string list;
    for (size_t b : offered) list += (list.empty() ? "" : ",") + std::to_string(b);
    throw InvalidArgument("RunSettings.max_batch = " + std::to_string(st.max_batch) + " needs requests of " +
                          std::to_string(rows) + " rows (batch_size " + std::to_string(st.batch_size) +
                          " x max_batch), which " + detail::engine_name(*l.engine) + " does not offer (batch sizes " +
                          list + ")");
  }
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
  check_batching(lanes, st);
  Plan plan{"server", {}, 1, st.target_qps, st.latency_bound_ms, false, st.max_batch, st.max_queue_delay_ms};
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
  if (st.max_batch != 1)
    throw InvalidArgument("RunSettings.max_batch = " + std::to_string(st.max_batch) +
                          ": batching queries applies to the server scenario; multi-stream queries are already "
                          "batches (samples_per_query)");
  const double bound = st.latency_bound_ms > 0 ? st.latency_bound_ms : st.query_interval_ms;
  Plan plan{"multi-stream", {}, st.samples_per_query / st.batch_size, 0, bound, false};
  plan.schedule = fixed_schedule(st.query_interval_ms, st.min_query_count, st.min_duration_ms, st.max_duration_ms);
  plan.target_qps = 1000.0 / st.query_interval_ms;
  plan.truncated = schedule_truncated(plan.schedule, st);
  return run_scheduled(lanes, reader, st, plan, stop);
}

}  // namespace pymfn
