// The scheduled scenarios and multi-device runs (core/scenarios.h) with fake engines: arrival schedules,
// query and request accounting, validity. Latency bounds are far beyond anything a loaded host or an
// emulated CPU produces, so only broken accounting can fail these checks.
#include <cmath>
#include <cstddef>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/scenarios.h"
#include "tests/check.h"
#include "tests/fake_engine.h"

using pymfn::Lane;
using pymfn::RunSettings;
using pymfn_test::FakeEngine;
using pymfn_test::MemoryReader;

namespace {

constexpr size_t kWidth = 4;

FakeEngine::Options fake(size_t slots) {
  FakeEngine::Options o;
  o.width = kWidth;
  o.slots = slots;
  return o;
}

RunSettings scheduled(size_t batch) {
  RunSettings st;
  st.batch_size = batch;
  st.warmup_iterations = 2;
  st.warmup_ms = 0;
  st.min_duration_ms = 10;
  st.max_duration_ms = 0;
  st.min_query_count = 64;
  st.latency_bound_ms = 60000;  // VALID unless the accounting is wrong
  return st;
}

void check_query_times(const pymfn::ScenarioResult& r) {
  CHECK_EQ(r.scheduled_ms.size(), r.queries);
  CHECK_EQ(r.issued_ms.size(), r.queries);
  CHECK_EQ(r.completed_ms.size(), r.queries);
  CHECK_EQ(r.latency.count, r.queries);
  for (size_t i = 0; i < r.queries && i < r.scheduled_ms.size(); ++i) {
    CHECK(r.issued_ms[i] >= r.scheduled_ms[i]);  // never issued before its arrival
    CHECK(r.completed_ms[i] >= r.issued_ms[i]);
    if (i > 0) CHECK(r.scheduled_ms[i] >= r.scheduled_ms[i - 1]);
  }
}

}  // namespace

TEST(poisson_schedule_is_deterministic_sorted_and_long_enough) {
  const std::vector<double> a = pymfn::poisson_schedule(500, 100, 1000, 0, 7);
  const std::vector<double> b = pymfn::poisson_schedule(500, 100, 1000, 0, 7);
  const std::vector<double> c = pymfn::poisson_schedule(500, 100, 1000, 0, 8);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a.size() >= 100);
  CHECK(a.back() >= 1000);
  for (size_t i = 1; i < a.size(); ++i) CHECK(a[i] > a[i - 1]);
  CHECK(a.front() > 0);
}

TEST(poisson_schedule_has_the_asked_mean_rate) {
  // 20,000 exponential gaps at 250 QPS: mean 4 ms, standard error 0.7 %. Fixed seed: no flakiness.
  const std::vector<double> t = pymfn::poisson_schedule(250, 20000, 0, 0, 12345);
  CHECK_EQ(t.size(), size_t{20000});
  const double mean_gap = t.back() / static_cast<double>(t.size());
  CHECK_NEAR(mean_gap, 4.0, 0.2);
  // Exponential gaps: the share of gaps shorter than the mean is 1 - 1/e = 63.2 %.
  size_t short_gaps = 0;
  for (size_t i = 1; i < t.size(); ++i) short_gaps += (t[i] - t[i - 1] < 4.0) ? 1 : 0;
  CHECK_NEAR(static_cast<double>(short_gaps) / static_cast<double>(t.size() - 1), 1 - std::exp(-1.0), 0.02);
}

TEST(poisson_schedule_respects_the_cap_and_refuses_bad_rates) {
  const std::vector<double> t = pymfn::poisson_schedule(1000, 100000, 0, 50, 1);
  CHECK(!t.empty());
  CHECK(t.back() <= 50);
  CHECK(t.size() < 100000);
  CHECK_THROWS(pymfn::poisson_schedule(0, 10, 0, 0, 1), pymfn::InvalidArgument, "target_qps");
  CHECK_THROWS(pymfn::poisson_schedule(-5, 10, 0, 0, 1), pymfn::InvalidArgument, "target_qps");
  CHECK_THROWS(pymfn::poisson_schedule(NAN, 10, 0, 0, 1), pymfn::InvalidArgument, "target_qps");
  CHECK_THROWS(pymfn::poisson_schedule(INFINITY, 10, 0, 0, 1), pymfn::InvalidArgument, "target_qps");
}

TEST(server_completes_every_scheduled_query_once) {
  MemoryReader reader(10, kWidth, 4);
  FakeEngine engine(fake(2));
  RunSettings st = scheduled(4);
  st.target_qps = 2000;
  st.inflight = 2;
  const pymfn::ScenarioResult r = pymfn::run_server({Lane{&engine, "fake lane"}}, reader, st);
  CHECK_EQ(r.scenario, std::string("server"));
  CHECK(r.queries_scheduled >= 64);
  CHECK_EQ(r.queries, r.queries_scheduled);
  CHECK_EQ(r.requests, r.queries);
  CHECK_EQ(engine.requests(), r.warmup_iterations + r.requests);
  CHECK_EQ(engine.busy_now(), size_t{0});
  CHECK_EQ(engine.protocol_errors(), size_t{0});
  CHECK(r.valid);
  CHECK(r.invalid_reasons.empty());
  check_query_times(r);
  // Rows served during the schedule: the reader's batches in order, padding rows not counted.
  const std::vector<float> firsts = engine.first_values();
  size_t rows = 0;
  for (size_t i = r.warmup_iterations; i < firsts.size(); ++i) rows += firsts[i] == 32.0f ? 2 : 4;
  CHECK_EQ(r.samples_processed, rows);
}

TEST(server_is_invalid_when_the_bound_is_missed) {
  MemoryReader reader(10, kWidth, 4);
  FakeEngine engine(fake(1));
  RunSettings st = scheduled(4);
  st.target_qps = 2000;
  st.latency_bound_ms = 1e-9;  // no real completion is this fast
  const pymfn::ScenarioResult r = pymfn::run_server({Lane{&engine, "fake lane"}}, reader, st);
  CHECK_EQ(r.queries, r.queries_scheduled);
  CHECK(!r.valid);
  CHECK_EQ(r.invalid_reasons.size(), size_t{1});
  CHECK(r.latency_at_percentile > st.latency_bound_ms);
}

// A server run whose arrivals outpace the engine (2,000 QPS against 2 ms requests) so queries queue and
// the batcher has several to merge.
RunSettings batched(size_t max_batch) {
  RunSettings st = scheduled(1);
  st.target_qps = 2000;
  st.min_query_count = 200;
  st.max_batch = max_batch;
  st.warmup_iterations = 8;
  return st;
}

FakeEngine::Options slow_fake(std::vector<size_t> batches, bool per_request) {
  FakeEngine::Options o = fake(1);
  o.batches = std::move(batches);
  o.per_request = per_request;
  o.sleep_ms = 2;
  return o;
}

TEST(server_batching_carries_every_query_once_in_order) {
  MemoryReader reader(100, kWidth, 1);
  FakeEngine engine(slow_fake({1, 2, 4, 8}, true));
  const pymfn::ScenarioResult r = pymfn::run_server({Lane{&engine, "fake lane"}}, reader, batched(8));
  CHECK_EQ(r.queries, r.queries_scheduled);
  CHECK_EQ(r.max_batch, size_t{8});
  CHECK_EQ(engine.protocol_errors(), size_t{0});
  CHECK_EQ(engine.requests(), r.warmup_iterations + r.requests);
  CHECK_EQ(r.request_queries.size(), r.requests);
  size_t carried = 0, padding = 0;
  for (size_t i = 0; i < r.requests; ++i) {
    const size_t q = r.request_queries[i], rows = r.request_rows[i];
    CHECK(q >= 1 && q <= 8);
    // the smallest offered size that holds the request's queries
    const size_t want = q <= 1 ? 1 : q <= 2 ? 2 : q <= 4 ? 4 : 8;
    CHECK_EQ(rows, want);
    carried += q;
    padding += rows - q;
  }
  CHECK_EQ(carried, r.queries);
  CHECK_EQ(r.padding_rows, padding);
  CHECK_EQ(r.samples_processed, r.queries);
  CHECK(r.requests < r.queries);  // queries queued behind 2 ms requests were merged
  CHECK_NEAR(r.mean_queries_per_request, static_cast<double>(r.queries) / static_cast<double>(r.requests), 1e-9);
  // The queries the engine saw, in order, are the reader's samples in order, each once: sample i has
  // element 0 = i * width, and the reader cycles over 100 samples.
  const auto rows = engine.row_values();
  std::vector<float> seen;
  for (size_t w = 0; w < r.warmup_iterations; ++w) {
    const size_t q = w % 8 + 1;  // warm-up cycles through the request sizes
    seen.insert(seen.end(), rows[w].begin(), rows[w].begin() + static_cast<std::ptrdiff_t>(q));
  }
  for (size_t i = 0; i < r.requests; ++i) {
    const auto& req = rows[r.warmup_iterations + i];
    seen.insert(seen.end(), req.begin(), req.begin() + static_cast<std::ptrdiff_t>(r.request_queries[i]));
  }
  for (size_t k = 0; k < seen.size(); ++k) CHECK_EQ(seen[k], static_cast<float>((k % 100) * kWidth));
  check_query_times(r);
  // A query leaves with its request: every query of request i was issued at the request's issue time.
  size_t q = 0;
  for (size_t i = 0; i < r.requests; ++i)
    for (size_t k = 0; k < r.request_queries[i]; ++k, ++q) CHECK_EQ(r.issued_ms[q], r.request_issued_ms[i]);
}

TEST(server_batching_pads_when_the_engine_cannot_choose_per_request) {
  MemoryReader reader(100, kWidth, 1);
  FakeEngine engine(slow_fake({8}, false));
  const pymfn::ScenarioResult r = pymfn::run_server({Lane{&engine, "fake lane"}}, reader, batched(8));
  CHECK_EQ(engine.protocol_errors(), size_t{0});
  size_t carried = 0;
  for (size_t i = 0; i < r.requests; ++i) {
    CHECK_EQ(r.request_rows[i], size_t{8});
    carried += r.request_queries[i];
  }
  CHECK_EQ(carried, r.queries);
  CHECK_EQ(r.padding_rows, 8 * r.requests - r.queries);
}

TEST(server_batching_holds_for_more_queries_up_to_the_delay) {
  // 200 QPS (5 ms apart on average) against a 2 ms engine: without a delay most requests carry one query;
  // holding each request up to 30 ms gathers several. The seeded schedule makes this deterministic
  // apart from host timing, which only makes the held requests carry more.
  MemoryReader reader(100, kWidth, 1);
  RunSettings st = batched(8);
  st.target_qps = 200;
  st.min_query_count = 100;
  FakeEngine eager(slow_fake({}, true));
  const pymfn::ScenarioResult now = pymfn::run_server({Lane{&eager, "fake lane"}}, reader, st);
  st.max_queue_delay_ms = 30;
  FakeEngine patient(slow_fake({}, true));
  const pymfn::ScenarioResult held = pymfn::run_server({Lane{&patient, "fake lane"}}, reader, st);
  CHECK(held.mean_queries_per_request > 2.0);
  CHECK(held.mean_queries_per_request > now.mean_queries_per_request);
  // A held query waited in the queue, not in the harness: ready = when its request closed.
  for (size_t i = 0; i < held.queries; ++i) CHECK(held.ready_ms[i] <= held.issued_ms[i]);
  CHECK_EQ(held.padding_rows, size_t{0});  // any batch size is offered
}

TEST(keep_warm_threads_spin_only_between_requests_and_leave_the_accounting_alone) {
  MemoryReader reader(100, kWidth, 1);
  FakeEngine engine(slow_fake({}, false));
  RunSettings st = scheduled(1);
  st.target_qps = 200;
  st.min_query_count = 100;
  st.keep_warm_threads = 2;
  const pymfn::ScenarioResult r = pymfn::run_server({Lane{&engine, "fake lane"}}, reader, st);
  CHECK_EQ(r.queries, r.queries_scheduled);
  CHECK_EQ(engine.protocol_errors(), size_t{0});
  CHECK_EQ(r.keep_warm_threads, size_t{2});
  // 200 QPS against 2 ms requests leaves the engine idle most of the time: the spinners ran then, and never
  // longer than two threads over the whole run.
  CHECK(r.keep_warm_cpu_ms > 0);
  CHECK(r.keep_warm_cpu_ms <= 2 * (r.duration_ms + 1000));
  check_query_times(r);
  st.keep_warm_threads = 999;
  CHECK_THROWS(pymfn::run_server({Lane{&engine, "fake lane"}}, reader, st), pymfn::InvalidArgument,
               "keep_warm_threads must be in 0..256");
}

TEST(server_batching_settings_are_checked) {
  MemoryReader reader(100, kWidth, 1);
  FakeEngine engine(slow_fake({1, 2, 4, 8}, true));
  CHECK_THROWS(pymfn::run_server({Lane{&engine, "fake lane"}}, reader, batched(3)), pymfn::InvalidArgument,
               "max_batch = 3 needs requests of 3 rows");
  CHECK_THROWS(pymfn::run_server({Lane{&engine, "fake lane"}}, reader, batched(0)), pymfn::InvalidArgument,
               "max_batch must be in 1..");
  RunSettings st = batched(2);
  st.max_queue_delay_ms = -1;
  CHECK_THROWS(pymfn::run_server({Lane{&engine, "fake lane"}}, reader, st), pymfn::InvalidArgument,
               "max_queue_delay_ms");
  st = scheduled(1);
  st.max_batch = 2;
  CHECK_THROWS(pymfn::run_multistream({Lane{&engine, "fake lane"}}, reader, st), pymfn::InvalidArgument,
               "applies to the server scenario");
}

TEST(multistream_splits_each_query_into_whole_batches) {
  MemoryReader reader(10, kWidth, 4);
  FakeEngine engine(fake(2));
  RunSettings st = scheduled(4);
  st.samples_per_query = 8;
  st.query_interval_ms = 1;
  st.min_query_count = 20;
  st.min_duration_ms = 0;
  st.inflight = 2;
  const pymfn::ScenarioResult r = pymfn::run_multistream({Lane{&engine, "fake lane"}}, reader, st);
  CHECK_EQ(r.scenario, std::string("multi-stream"));
  CHECK_EQ(r.samples_per_query, size_t{8});
  CHECK_EQ(r.queries, r.queries_scheduled);
  CHECK(r.queries >= 20);
  CHECK_EQ(r.requests, 2 * r.queries);
  CHECK_EQ(engine.requests(), r.warmup_iterations + r.requests);
  for (size_t i = 0; i < r.scheduled_ms.size(); ++i) CHECK_EQ(r.scheduled_ms[i], static_cast<double>(i));
  check_query_times(r);
  CHECK_THROWS(
      [&] {
        RunSettings odd = st;
        odd.samples_per_query = 6;
        pymfn::run_multistream({Lane{&engine, "fake lane"}}, reader, odd);
      }(),
      pymfn::InvalidArgument, "not a multiple of batch_size");
}

TEST(devices_share_one_reader_and_one_count) {
  MemoryReader reader(10, kWidth, 4);
  FakeEngine first(fake(1)), second(fake(1));
  RunSettings st = scheduled(4);
  st.min_iterations = 30;
  st.min_duration_ms = 0;
  const pymfn::RunResult r = pymfn::run_devices({Lane{&first, "lane 0"}, Lane{&second, "lane 1"}}, reader, st);
  CHECK(r.iterations >= 30);
  CHECK_EQ(r.devices.size(), size_t{2});
  size_t per_device = 0, rows = 0;
  for (const auto& d : r.devices) {
    per_device += d.iterations;
    rows += d.samples_processed;
  }
  CHECK_EQ(per_device, r.iterations);
  CHECK_EQ(rows, r.samples_processed);
  CHECK_EQ(r.sample_devices.size(), r.iterations);
  CHECK_EQ(r.samples_ms.size(), r.iterations);
  CHECK(first.requests() + second.requests() >= r.warmup_iterations + r.iterations);
  CHECK_EQ(first.busy_now() + second.busy_now(), size_t{0});
  CHECK_EQ(r.devices[0].name, std::string("lane 0"));
}

TEST(lanes_must_exist_and_hold_distinct_engines) {
  MemoryReader reader(10, kWidth, 4);
  FakeEngine engine(fake(1));
  RunSettings st = scheduled(4);
  CHECK_THROWS(pymfn::run_devices({}, reader, st), pymfn::InvalidArgument, "no devices");
  CHECK_THROWS(pymfn::run_devices({Lane{&engine, "a"}, Lane{&engine, "b"}}, reader, st), pymfn::InvalidArgument,
               "same engine object");
  st.target_qps = 100;
  CHECK_THROWS(pymfn::run_server({Lane{nullptr, "none"}}, reader, st), pymfn::InvalidArgument, "has no engine");
  CHECK_EQ(engine.requests(), size_t{0});
}
