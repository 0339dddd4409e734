// The one offline loop behind run_benchmark (one engine) and run_devices (several devices on one clock):
// both entry points count, stop and warn the same way. Assertions on time are lower bounds the loop itself
// guarantees (it stops only once they hold), never upper bounds a loaded machine could break.
#include <algorithm>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "core/runner.h"
#include "core/scenarios.h"
#include "engines/simulated/simulated_engine.h"
#include "tests/check.h"
#include "tests/fake_engine.h"

using pymfn::Lane;
using pymfn::RunSettings;
using pymfn::StopReason;
using pymfn_test::FakeEngine;
using pymfn_test::MemoryReader;

namespace {

constexpr size_t kWidth = 4;

RunSettings counted(size_t warmup, size_t min_iterations, size_t inflight = 1) {
  RunSettings st;
  st.batch_size = 4;
  st.warmup_iterations = warmup;
  st.warmup_ms = 0;
  st.min_iterations = min_iterations;
  st.min_duration_ms = 0;
  st.max_duration_ms = 0;
  st.inflight = inflight;
  return st;
}

FakeEngine::Options fake(size_t slots = 1, double sleep_ms = 0) {
  FakeEngine::Options o;
  o.width = kWidth;
  o.slots = slots;
  o.sleep_ms = sleep_ms;
  return o;
}

size_t count_containing(const std::vector<std::string>& warnings, const std::string& text) {
  return static_cast<size_t>(std::count_if(warnings.begin(), warnings.end(),
                                            [&](const std::string& w) { return w.find(text) != std::string::npos; }));
}

}  // namespace

TEST(one_device_through_run_devices_is_run_benchmark) {
  for (size_t inflight : {size_t{1}, size_t{3}}) {
    MemoryReader r1(10, kWidth, 4), r2(10, kWidth, 4);
    FakeEngine a(fake(3)), b(fake(3));
    RunSettings st = counted(5, 20, inflight);
    st.cv_warning_threshold = 1e9;  // no noisy-run warning: its figures differ from run to run
    const pymfn::RunResult single = pymfn::run_benchmark(a, r1, st);
    const pymfn::RunResult device = pymfn::run_devices({Lane{&b, "only"}}, r2, st);
    // The same loop: the same requests in the same order, counted the same way.
    CHECK_EQ(single.iterations, device.iterations);
    CHECK_EQ(single.warmup_iterations, device.warmup_iterations);
    CHECK_EQ(single.samples_processed, device.samples_processed);
    CHECK(a.first_values() == b.first_values());
    CHECK(single.stop_reason == StopReason::kMinimumsMet);
    CHECK(device.stop_reason == StopReason::kMinimumsMet);
    // run_benchmark reports no devices; run_devices reports its one device with the aggregate's figures.
    CHECK(single.devices.empty() && single.sample_devices.empty());
    CHECK_EQ(device.devices.size(), size_t{1});
    CHECK_EQ(device.devices[0].name, std::string("only"));
    CHECK_EQ(device.devices[0].iterations, device.iterations);
    CHECK_EQ(device.devices[0].first_start_ms, 0.0);
    CHECK_EQ(device.devices[0].wall_ms, device.wall_ms);
    CHECK(device.sample_devices == std::vector<uint32_t>(device.iterations, 0));
    CHECK_EQ(device.start_skew_ms, 0.0);
    CHECK_EQ(device.end_skew_ms, 0.0);
    CHECK(single.warnings.empty() && device.warnings.empty());
  }
}

TEST(warm_up_counts_per_request_and_measurement_starts_once_every_device_is_warm) {
  // Synchronous, one lane: exactly warmup_iterations untimed requests, then measurement.
  MemoryReader reader(10, kWidth, 4);
  FakeEngine engine(fake());
  const pymfn::RunResult r = pymfn::run_benchmark(engine, reader, counted(7, 11));
  CHECK_EQ(r.warmup_iterations, size_t{7});
  CHECK_EQ(r.iterations, size_t{11});
  CHECK_EQ(engine.requests(), size_t{18});
  // Two lanes: each lane runs at least its own warm-up before anything is measured.
  MemoryReader shared(10, kWidth, 4);
  FakeEngine a(fake()), b(fake());
  const pymfn::RunResult d = pymfn::run_devices({Lane{&a, "a"}, Lane{&b, "b"}}, shared, counted(5, 40));
  CHECK(d.warmup_iterations >= 10);
  CHECK(d.iterations >= 40);
  CHECK_EQ(a.requests() + b.requests(), d.warmup_iterations + d.iterations);
}

TEST(min_duration_bounds_the_reported_wall_time_for_one_and_several_devices) {
  RunSettings st = counted(0, 1);
  st.min_duration_ms = 25;
  MemoryReader r1(10, kWidth, 4);
  FakeEngine one(fake(1, 1.0));
  const pymfn::RunResult single = pymfn::run_benchmark(one, r1, st);
  CHECK(single.stop_reason == StopReason::kMinimumsMet);
  CHECK(single.wall_ms >= 25.0);
  MemoryReader r2(10, kWidth, 4);
  FakeEngine a(fake(2, 1.0)), b(fake(2, 1.0));
  st.inflight = 2;
  const pymfn::RunResult multi = pymfn::run_devices({Lane{&a, "a"}, Lane{&b, "b"}}, r2, st);
  CHECK(multi.stop_reason == StopReason::kMinimumsMet);
  CHECK(multi.wall_ms >= 25.0);
  CHECK(multi.devices[0].iterations > 0 && multi.devices[1].iterations > 0);
}

TEST(every_warning_is_given_once) {
  // A stall makes the run noisy beyond a threshold of 0; the cap ends it before min_iterations.
  pymfn::SimulatedEngineOptions o;
  o.width = kWidth;
  o.slots = 2;
  o.stalls_ms = {{3, 4.0}};
  RunSettings st = counted(0, 1000000);
  st.cv_warning_threshold = 0;
  st.min_duration_ms = 20;
  st.max_duration_ms = 40;
  for (size_t lanes : {size_t{0}, size_t{1}, size_t{2}}) {  // 0: run_benchmark
    pymfn::SimulatedEngine e0(o), e1(o);
    MemoryReader reader(10, kWidth, 4);
    const pymfn::RunResult r =
        lanes == 0 ? pymfn::run_benchmark(e0, reader, st)
                   : pymfn::run_devices(lanes == 1 ? std::vector<Lane>{Lane{&e0, "a"}}
                                                   : std::vector<Lane>{Lane{&e0, "a"}, Lane{&e1, "b"}},
                                        reader, st);
    CHECK(r.stop_reason == StopReason::kMaxDuration);
    CHECK_EQ(count_containing(r.warnings, "noisy run: latency cv"), size_t{1});
    CHECK_EQ(count_containing(r.warnings, "stopped on max_duration_ms = 40.0"), size_t{1});
    CHECK_EQ(r.warnings.size(), size_t{2});
  }
}

TEST(an_interrupted_warm_up_measures_nothing_and_says_so_once) {
  pymfn::StopFlag stop;
  stop.request();
  for (size_t lanes : {size_t{1}, size_t{2}}) {
    FakeEngine a(fake()), b(fake());
    MemoryReader reader(10, kWidth, 4);
    std::vector<Lane> ls{Lane{&a, "a"}};
    if (lanes == 2) ls.push_back(Lane{&b, "b"});
    const pymfn::RunResult r = pymfn::run_devices(ls, reader, counted(3, 10), &stop);
    CHECK(r.stop_reason == StopReason::kInterrupted);
    CHECK_EQ(r.iterations, size_t{0});
    CHECK_EQ(a.requests() + b.requests(), size_t{0});
    CHECK_EQ(count_containing(r.warnings, "interrupted during warm-up"), size_t{1});
    // With several devices each empty device is named; one device is the whole run.
    CHECK_EQ(count_containing(r.warnings, "completed no measured request"), lanes == 1 ? size_t{0} : size_t{2});
  }
}
