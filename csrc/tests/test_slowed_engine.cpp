// SlowedEngine: a wrapper that makes any engine slower by a known amount. Every time assertion is a lower
// bound the pause guarantees, never an upper bound a loaded machine could break.
#include <limits>
#include <memory>
#include <string>

#include "core/errors.h"
#include "core/runner.h"
#include "engines/slowed/slowed_engine.h"
#include "tests/check.h"
#include "tests/fake_engine.h"

using pymfn::RunSettings;
using pymfn::SlowedEngine;
using pymfn::Slowdown;
using pymfn_test::FakeEngine;
using pymfn_test::MemoryReader;

namespace {

std::shared_ptr<FakeEngine> fake(size_t slots, double sleep_ms) {
  FakeEngine::Options o;
  o.width = 4;
  o.slots = slots;
  o.sleep_ms = sleep_ms;
  return std::make_shared<FakeEngine>(o);
}

RunSettings settings(size_t inflight) {
  RunSettings st;
  st.batch_size = 2;
  st.warmup_iterations = 2;
  st.min_iterations = 10;
  st.min_duration_ms = 0;
  st.max_duration_ms = 0;
  st.inflight = inflight;
  return st;
}

}  // namespace

TEST(a_fixed_pause_is_added_to_every_request_sync_and_async) {
  for (size_t inflight : {size_t{1}, size_t{2}}) {
    auto inner = fake(2, 0);
    SlowedEngine slowed(inner, Slowdown{0, 3.0});
    MemoryReader reader(6, 4, 2);
    const pymfn::RunResult r = pymfn::run_benchmark(slowed, reader, settings(inflight));
    CHECK(r.iterations >= 10);
    CHECK(r.latency.min >= 3.0);
    CHECK_EQ(inner->requests(), r.warmup_iterations + r.iterations);  // every request reached the wrapped engine
    CHECK_EQ(inner->busy_now(), size_t{0});
  }
}

TEST(a_proportional_pause_follows_the_request_own_time) {
  // Each request sleeps at least 2 ms inside the engine; fraction 1 doubles it: at least 4 ms.
  SlowedEngine slowed(fake(1, 2.0), Slowdown{1.0, 0});
  MemoryReader reader(6, 4, 2);
  const pymfn::RunResult r = pymfn::run_benchmark(slowed, reader, settings(1));
  CHECK(r.latency.min >= 4.0);
}

TEST(outputs_and_facts_are_the_wrapped_engine_s) {
  auto inner = fake(3, 0);
  SlowedEngine slowed(inner, Slowdown{0.5, 0});
  CHECK_EQ(slowed.kind(), inner->kind());
  CHECK_EQ(slowed.model_path(), inner->model_path());
  CHECK_EQ(slowed.max_inflight(), size_t{3});
  CHECK_EQ(slowed.inputs()[0].sample_bytes, inner->inputs()[0].sample_bytes);
  CHECK_EQ(slowed.properties().at("slowdown"), std::string("fraction 0.500, extra 0.000 ms"));
  CHECK_EQ(slowed.properties().at("kind"), std::string("fake"));
  MemoryReader reader(6, 4, 2);
  const auto out = pymfn::infer_all(slowed, reader, 2);
  CHECK_EQ(out.size(), size_t{1});
  CHECK_EQ(out[0].size(), 6 * sizeof(float));
}

TEST(bad_slowdowns_and_a_missing_engine_are_refused) {
  CHECK_THROWS(SlowedEngine(nullptr, Slowdown{}), pymfn::InvalidArgument, "missing");
  for (double bad : {-0.1, 10.5, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    CHECK_THROWS(SlowedEngine(fake(1, 0), Slowdown{bad, 0}), pymfn::InvalidArgument, "fraction must be in [0, 10]");
  CHECK_THROWS(SlowedEngine(fake(1, 0), Slowdown{0, -1}), pymfn::InvalidArgument, "extra_ms must be in [0, 10000]");
  SlowedEngine edge(fake(1, 0), Slowdown{10, 10000});
  CHECK_EQ(edge.slowdown().fraction, 10.0);
}
