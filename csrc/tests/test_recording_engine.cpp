// RecordingEngine: a wrapper that keeps the inputs and outputs of a seeded sample of requests. The sample
// is checked against in_recording_sample (the one definition of it), the bytes against the fake engine's
// row sums, and the numbering under start()/wait() from several threads at once.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/errors.h"
#include "core/runner.h"
#include "engines/recording/recording_engine.h"
#include "tests/check.h"
#include "tests/fake_engine.h"

using pymfn::IoBinding;
using pymfn::RecordingEngine;
using pymfn::RecordingPlan;
using pymfn_test::FakeEngine;
using pymfn_test::MemoryReader;

namespace {

constexpr size_t kWidth = 4;
constexpr size_t kRows = 2;

std::shared_ptr<FakeEngine> fake(size_t slots, size_t fail_at_request = SIZE_MAX) {
  FakeEngine::Options o;
  o.width = kWidth;
  o.slots = slots;
  o.fail_at_request = fail_at_request;
  return std::make_shared<FakeEngine>(o);
}

RecordingPlan plan(double fraction, size_t max_records = 1000000, uint64_t seed = 0, size_t skip = 0) {
  RecordingPlan p;
  p.fraction = fraction;
  p.max_records = max_records;
  p.seed = seed;
  p.skip = skip;
  return p;
}

// One batch of kRows x kWidth float32 whose values start at `first`, and room for its row sums.
struct Batch {
  std::vector<float> in, out;
  IoBinding binding;
  explicit Batch(float first) : in(kRows * kWidth), out(kRows) {
    for (size_t k = 0; k < in.size(); ++k) in[k] = first + static_cast<float>(k);
    binding.inputs = {in.data()};
    binding.outputs = {out.data()};
    binding.batch_rows = kRows;
  }
};

std::vector<float> floats(const std::vector<uint8_t>& bytes) {
  std::vector<float> v(bytes.size() / sizeof(float));
  if (!v.empty()) std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

// The record holds one input and one output, and the output is the row sums of the input.
bool outputs_are_row_sums(const RecordingEngine::Record& r) {
  if (r.inputs.size() != 1 || r.outputs.size() != 1) return false;
  const std::vector<float> in = floats(r.inputs[0]), out = floats(r.outputs[0]);
  if (in.size() != r.rows * kWidth || out.size() != r.rows) return false;
  for (size_t row = 0; row < r.rows; ++row) {
    float sum = 0;
    for (size_t j = 0; j < kWidth; ++j) sum += in[row * kWidth + j];
    if (sum != out[row]) return false;
  }
  return true;
}

std::vector<size_t> sample_numbers(const RecordingPlan& p, size_t requests) {
  std::vector<size_t> n;
  for (size_t i = 0; i < requests; ++i)
    if (pymfn::in_recording_sample(p, i)) n.push_back(i);
  return n;
}

std::vector<size_t> recorded_numbers(const RecordingEngine& e) {
  std::vector<size_t> n;
  for (const auto& r : e.records()) n.push_back(r.request);
  return n;
}

}  // namespace

TEST(the_sample_is_seeded_and_has_the_asked_share) {
  const RecordingPlan quarter = plan(0.25);
  const std::vector<size_t> a = sample_numbers(quarter, 4000);
  CHECK(a == sample_numbers(quarter, 4000));
  CHECK(a != sample_numbers(plan(0.25, 1000000, 1), 4000));
  CHECK(a.size() >= 800 && a.size() <= 1200);
  CHECK_EQ(sample_numbers(plan(1.0), 100).size(), size_t{100});
  const std::vector<size_t> skipped = sample_numbers(plan(0.25, 1000000, 0, 1000), 4000);
  CHECK(!skipped.empty() && skipped.front() >= 1000);
  // Past skip, the same requests as without it.
  CHECK(skipped == std::vector<size_t>(std::lower_bound(a.begin(), a.end(), size_t{1000}), a.end()));
}

TEST(execute_records_the_sample_up_to_max_records) {
  for (size_t max_records : {size_t{1000000}, size_t{10}}) {
    const RecordingPlan p = plan(0.25, max_records, 7, 50);
    RecordingEngine e(fake(1), p);
    e.prepare(kRows);
    for (size_t i = 0; i < 4000; ++i) {
      Batch b(static_cast<float>(i));
      e.execute(b.binding);
    }
    CHECK_EQ(e.requests_seen(), size_t{4000});
    std::vector<size_t> want = sample_numbers(p, 4000);
    if (want.size() > max_records) want.resize(max_records);
    CHECK(recorded_numbers(e) == want);
    for (const auto& r : e.records()) {
      CHECK_EQ(r.rows, kRows);
      CHECK(outputs_are_row_sums(r));
      const float first = floats(r.inputs[0]).at(0);
      CHECK_EQ(first, static_cast<float>(r.request));  // request i's own batch
    }
  }
}

TEST(start_and_wait_record_each_slot_s_own_batch) {
  auto inner = fake(3);
  RecordingEngine e(inner, plan(1.0));
  e.prepare(kRows);
  Batch b0(0), b1(100), b2(200);
  e.start(0, b0.binding);
  e.start(1, b1.binding);
  e.start(2, b2.binding);
  e.wait(2);
  e.wait(0);
  e.wait(1);
  const auto records = e.records();
  CHECK_EQ(records.size(), size_t{3});
  CHECK(recorded_numbers(e) == (std::vector<size_t>{2, 0, 1}));  // in order of completion
  for (const auto& r : records) {
    const Batch& b = r.request == 0 ? b0 : r.request == 1 ? b1 : b2;
    CHECK(floats(r.inputs[0]) == b.in);
    CHECK(floats(r.outputs[0]) == b.out);
  }
  CHECK_EQ(inner->protocol_errors(), size_t{0});
}

TEST(concurrent_slots_lose_and_repeat_no_request_number) {
  constexpr size_t kThreads = 4, kEach = 500;
  const RecordingPlan p = plan(0.5, 1000000, 3);
  auto inner = fake(kThreads);
  RecordingEngine e(inner, p);
  e.prepare(kRows);
  std::vector<std::thread> threads;
  for (size_t slot = 0; slot < kThreads; ++slot)
    threads.emplace_back([&e, slot] {
      for (size_t i = 0; i < kEach; ++i) {
        Batch b(static_cast<float>(slot * 10000 + i));
        e.start(slot, b.binding);
        e.wait(slot);
      }
    });
  for (auto& t : threads) t.join();
  CHECK_EQ(e.requests_seen(), kThreads * kEach);
  std::vector<size_t> got = recorded_numbers(e);
  CHECK_EQ(std::set<size_t>(got.begin(), got.end()).size(), got.size());
  std::sort(got.begin(), got.end());
  CHECK(got == sample_numbers(p, kThreads * kEach));
  for (const auto& r : e.records()) CHECK(outputs_are_row_sums(r));
  CHECK_EQ(inner->protocol_errors(), size_t{0});
}

TEST(a_failed_request_is_not_recorded_and_frees_its_place) {
  RecordingEngine e(fake(1, 1), plan(1.0, 2));
  e.prepare(kRows);
  Batch b(0);
  e.execute(b.binding);
  CHECK_THROWS(e.execute(b.binding), pymfn::EngineError, "injected failure");
  e.start(0, b.binding);
  e.wait(0);
  e.execute(b.binding);
  CHECK(recorded_numbers(e) == (std::vector<size_t>{0, 2}));
}

TEST(a_run_through_the_runner_records_what_the_engine_computed) {
  for (size_t inflight : {size_t{1}, size_t{2}}) {
    RecordingEngine e(fake(2), plan(0.5, 8));
    pymfn::RunSettings st;
    st.batch_size = kRows;
    st.warmup_iterations = 2;
    st.min_iterations = 40;
    st.min_duration_ms = 0;
    st.max_duration_ms = 0;
    st.inflight = inflight;
    MemoryReader reader(6, kWidth, kRows);
    const pymfn::RunResult r = pymfn::run_benchmark(e, reader, st);
    CHECK_EQ(e.requests_seen(), r.warmup_iterations + r.iterations);
    CHECK_EQ(e.records().size(), size_t{8});
    for (const auto& rec : e.records()) CHECK(outputs_are_row_sums(rec));
  }
}

TEST(facts_are_the_wrapped_engine_s_and_clear_starts_over) {
  auto inner = fake(3);
  RecordingEngine e(inner, plan(0.25, 5, 9, 2));
  CHECK_EQ(e.kind(), inner->kind());
  CHECK_EQ(e.model_path(), inner->model_path());
  CHECK_EQ(e.max_inflight(), size_t{3});
  CHECK(e.slots_thread_safe());
  // CHECK_EQ binds references, so parts of returned temporaries are named first.
  const auto inputs = e.inputs(), inner_inputs = inner->inputs();
  const auto properties = e.properties();
  CHECK_EQ(inputs.at(0).sample_bytes, inner_inputs.at(0).sample_bytes);
  CHECK_EQ(properties.at("recording"), std::string("fraction 0.25, max 5 records, seed 9, skip 2"));
  CHECK_EQ(properties.at("kind"), std::string("fake"));
  e.prepare(kRows);
  CHECK_EQ(inner->prepares(), size_t{1});
  Batch b(0);
  for (int i = 0; i < 100; ++i) e.execute(b.binding);
  const std::vector<size_t> first = recorded_numbers(e);
  CHECK_EQ(first.size(), size_t{5});
  e.clear();
  CHECK_EQ(e.requests_seen(), size_t{0});
  CHECK(e.records().empty());
  for (int i = 0; i < 100; ++i) e.execute(b.binding);
  CHECK(recorded_numbers(e) == first);
}

TEST(bad_plans_and_a_missing_engine_are_refused) {
  CHECK_THROWS(RecordingEngine(nullptr, RecordingPlan{}), pymfn::InvalidArgument, "missing");
  for (double bad : {0.0, -0.1, 1.5, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    CHECK_THROWS(RecordingEngine(fake(1), plan(bad)), pymfn::InvalidArgument, "fraction must be in (0, 1]");
  for (size_t bad : {size_t{0}, size_t{1000001}})
    CHECK_THROWS(RecordingEngine(fake(1), plan(0.5, bad)), pymfn::InvalidArgument, "max_records must be in [1, 1000000]");
  RecordingEngine edge(fake(1), plan(1.0, 1000000, UINT64_MAX, SIZE_MAX));
  CHECK_EQ(edge.plan().max_records, size_t{1000000});
  CHECK_THROWS(edge.start(1, Batch(0).binding), pymfn::InvalidArgument, "slot 1 out of range");
}
