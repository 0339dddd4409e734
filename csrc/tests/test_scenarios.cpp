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
