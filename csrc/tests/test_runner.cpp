// The runner (core/runner.h) driven by a fake engine over in-memory samples: what it counts, what it
// hands the engine, and what it refuses before the first request. No assertion depends on wall time.
#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/runner.h"
#include "data/array_dataset.h"
#include "tests/check.h"
#include "tests/fake_engine.h"

using pymfn::RunSettings;
using pymfn_test::FakeEngine;
using pymfn_test::MemoryReader;

namespace {

constexpr size_t kWidth = 4;

// 10 samples of 4 float32 (sample i element j = 4i + j): batches of 4 are 4, 4 and 2 valid rows.
std::unique_ptr<pymfn::ArrayDataset> ten_samples() {
  auto values = std::make_shared<std::vector<float>>();
  for (size_t i = 0; i < 10 * kWidth; ++i) values->push_back(static_cast<float>(i));
  return std::make_unique<pymfn::ArrayDataset>(values, values->data(), 10, pymfn::DType::kFloat32,
                                               std::vector<int64_t>{static_cast<int64_t>(kWidth)}, "ten samples");
}

RunSettings counted(size_t warmup, size_t min_iterations) {
  RunSettings st;
  st.batch_size = 4;
  st.warmup_iterations = warmup;
  st.warmup_ms = 0;
  st.min_iterations = min_iterations;
  st.min_duration_ms = 0;
  st.max_duration_ms = 0;  // no cap: the counts alone end the run
  return st;
}

FakeEngine::Options fake(size_t slots = 1) {
  FakeEngine::Options o;
  o.width = kWidth;
  o.slots = slots;
  return o;
}

// Valid rows of the batch whose first element is `first_value` (batches start at samples 0, 4, 8).
size_t valid_rows_of(float first_value) { return first_value == 32.0f ? 2 : 4; }

void check_consistent(const pymfn::RunResult& r) {
  CHECK_EQ(r.samples_ms.size(), r.iterations);
  CHECK_EQ(r.start_offsets_ms.size(), r.iterations);
  CHECK_EQ(r.latency.count, r.iterations);
  for (double v : r.samples_ms) CHECK(v >= 0);
  CHECK(r.latency.min <= r.latency.median && r.latency.median <= r.latency.p99 && r.latency.p99 <= r.latency.max);
  if (!r.start_offsets_ms.empty()) CHECK_EQ(r.start_offsets_ms.front(), 0.0);
}

}  // namespace

TEST(synchronous_run_counts_warmup_and_measured_requests) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine engine(fake());
  const pymfn::RunResult r = pymfn::run_benchmark(engine, *reader, counted(3, 25));
  CHECK_EQ(r.warmup_iterations, size_t{3});
  CHECK(r.iterations >= 25);
  CHECK(r.iterations < 25 + 4);  // the counts are met: the run stops instead of going on
  CHECK_EQ(engine.requests(), r.warmup_iterations + r.iterations);
  CHECK_EQ(engine.prepares(), size_t{1});
  check_consistent(r);
  // Requests cycle through the three batches in order, passes after passes, warm-up first.
  const std::vector<float> firsts = engine.first_values();
  size_t measured_rows = 0;
  for (size_t i = 0; i < firsts.size(); ++i) {
    CHECK_EQ(firsts[i], static_cast<float>((i % 3) * 16));
    if (i >= r.warmup_iterations) measured_rows += valid_rows_of(firsts[i]);
  }
  CHECK_EQ(r.samples_processed, measured_rows);  // padding rows never count
}

TEST(end_to_end_scope_counts_the_same_way) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine engine(fake());
  RunSettings st = counted(0, 7);
  st.scope = pymfn::TimingScope::kEndToEnd;
  const pymfn::RunResult r = pymfn::run_benchmark(engine, *reader, st);
  CHECK_EQ(r.warmup_iterations, size_t{0});
  CHECK(r.iterations >= 7);
  CHECK_EQ(engine.requests(), r.iterations);
  check_consistent(r);
}

TEST(min_iterations_is_respected_with_a_duration_minimum_too) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine engine(fake());
  RunSettings st = counted(0, 40);
  st.min_duration_ms = 5;  // both minimums must be met
  const pymfn::RunResult r = pymfn::run_benchmark(engine, *reader, st);
  CHECK(r.iterations >= 40);
  CHECK(r.wall_ms > 0);
  check_consistent(r);
}

TEST(requests_in_flight_overlap_and_all_are_collected) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine engine(fake(3));
  RunSettings st = counted(2, 30);
  st.inflight = 3;
  const pymfn::RunResult r = pymfn::run_benchmark(engine, *reader, st);
  CHECK(r.iterations >= 30);
  CHECK(r.warmup_iterations >= 2);
  CHECK_EQ(engine.peak_busy(), size_t{3});  // three requests were in flight at once
  CHECK_EQ(engine.busy_now(), size_t{0});   // and every one was waited for before returning
  CHECK_EQ(engine.protocol_errors(), size_t{0});
  CHECK_EQ(engine.requests(), r.warmup_iterations + r.iterations);
  check_consistent(r);
}

TEST(max_duration_ends_a_run_whose_minimums_cannot_be_met) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine::Options slow = fake();
  slow.sleep_ms = 1;  // 1000 requests take at least 1 s, far beyond the cap
  FakeEngine engine(slow);
  RunSettings st = counted(0, 1000);
  st.max_duration_ms = 20;
  const pymfn::RunResult r = pymfn::run_benchmark(engine, *reader, st);
  CHECK(r.iterations >= 1);
  CHECK(r.iterations < st.min_iterations);
  check_consistent(r);
}

TEST(mismatched_readers_and_settings_are_refused_before_any_request) {
  auto ds = ten_samples();
  auto reader4 = ds->reader(4, 0);
  auto refused_by = [&](FakeEngine::Options o, RunSettings st, pymfn::BatchReader& reader) {
    FakeEngine engine(std::move(o));
    try {
      pymfn::run_benchmark(engine, reader, st);
    } catch (...) {
      CHECK_EQ(engine.requests(), size_t{0});
      throw;
    }
  };
  RunSettings st = counted(0, 5);

  RunSettings wrong_batch = st;
  wrong_batch.batch_size = 2;
  CHECK_THROWS(refused_by(fake(), wrong_batch, *reader4), pymfn::InvalidArgument,
               "the reader yields batches of 4 rows but RunSettings.batch_size = 2");

  FakeEngine::Options wide = fake();
  wide.width = 5;
  CHECK_THROWS(refused_by(wide, st, *reader4), pymfn::ShapeMismatch, "the sample sizes differ");
  try {
    refused_by(wide, st, *reader4);
  } catch (const pymfn::ShapeMismatch& e) {
    const std::string msg = e.what();
    CHECK(msg.find("dataset ten samples") != std::string::npos);  // names the data...
    CHECK(msg.find("fake model <fake model> input 'x' expects 20 bytes") != std::string::npos);  // ...and the model
  }

  FakeEngine::Options ints = fake();
  ints.input_dtype = pymfn::DType::kInt32;  // same 16 bytes, other element type
  CHECK_THROWS(refused_by(ints, st, *reader4), pymfn::ShapeMismatch, "the element types differ");

  auto square = std::make_shared<std::vector<float>>(10 * 4, 0.0f);
  pymfn::ArrayDataset square_ds(square, square->data(), 10, pymfn::DType::kFloat32, {2, 2}, "2x2 samples");
  auto square_reader = square_ds.reader(4, 0);
  FakeEngine::Options flat = fake();
  flat.input_sample_shape = {1, 4};  // same bytes and type, another layout
  CHECK_THROWS(refused_by(flat, st, *square_reader), pymfn::ShapeMismatch, "the sample shapes differ");

  FakeEngine::Options two_inputs = fake();
  two_inputs.inputs = 2;
  CHECK_THROWS(refused_by(two_inputs, st, *reader4), pymfn::InvalidArgument, "2 inputs");

  FakeEngine::Options fixed = fake();
  fixed.batches = {1, 8};
  CHECK_THROWS(refused_by(fixed, st, *reader4), pymfn::InvalidArgument, "batch size 4 is not supported");

  RunSettings too_many = st;
  too_many.inflight = 3;
  CHECK_THROWS(refused_by(fake(2), too_many, *reader4), pymfn::InvalidArgument, "at most 2 requests in flight");

  RunSettings no_iterations = st;
  no_iterations.min_iterations = 0;
  CHECK_THROWS(refused_by(fake(), no_iterations, *reader4), pymfn::InvalidArgument, "min_iterations");

  RunSettings cap_below_min = st;
  cap_below_min.min_duration_ms = 100;
  cap_below_min.max_duration_ms = 50;
  CHECK_THROWS(refused_by(fake(), cap_below_min, *reader4), pymfn::InvalidArgument, "max_duration_ms");

  MemoryReader empty(0, kWidth, 4);
  CHECK_THROWS(refused_by(fake(), st, empty), pymfn::InvalidArgument, "no batches");
}

TEST(a_reader_that_hands_out_the_wrong_rows_is_stopped) {
  MemoryReader liar(10, kWidth, 4, /*bad_rows=*/8);  // claims 8 rows in a buffer of 4
  FakeEngine engine(fake());
  CHECK_THROWS(pymfn::run_benchmark(engine, liar, counted(0, 5)), pymfn::Error, "the reader returned a batch of 8 rows");
  CHECK_EQ(engine.requests(), size_t{0});
}

TEST(an_engine_failure_propagates_after_in_flight_requests_are_collected) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine::Options o = fake(3);
  o.fail_at_request = 12;
  FakeEngine engine(o);
  RunSettings st = counted(2, 100);
  st.inflight = 3;
  CHECK_THROWS(pymfn::run_benchmark(engine, *reader, st), pymfn::EngineError, "injected failure of request 12");
  CHECK_EQ(engine.busy_now(), size_t{0});  // no request left running into the runner's freed buffers

  FakeEngine sync_engine([] {
    FakeEngine::Options s = fake();
    s.fail_at_request = 4;
    return s;
  }());
  auto reader2 = ds->reader(4, 0);
  CHECK_THROWS(pymfn::run_benchmark(sync_engine, *reader2, counted(2, 100)), pymfn::EngineError, "request 4");
}

TEST(infer_all_returns_valid_rows_in_dataset_order) {
  auto ds = ten_samples();
  for (size_t inflight : {size_t{1}, size_t{3}}) {
    auto reader = ds->reader(4, 0);
    FakeEngine engine(fake(3));
    const auto outputs = pymfn::infer_all(engine, *reader, inflight);
    CHECK_EQ(outputs.size(), size_t{1});
    CHECK_EQ(outputs[0].size(), 10 * sizeof(float));  // the two padding rows are dropped
    for (size_t i = 0; i < 10 && outputs[0].size() == 10 * sizeof(float); ++i) {
      float v;
      std::memcpy(&v, outputs[0].data() + i * sizeof(float), sizeof v);
      CHECK_EQ(v, static_cast<float>(16 * i + 6));  // sum of 4i .. 4i+3
    }
    CHECK_EQ(engine.requests(), size_t{3});
    CHECK_EQ(engine.busy_now(), size_t{0});
  }
}

TEST(infer_all_refuses_the_same_mismatches) {
  auto ds = ten_samples();
  auto reader = ds->reader(4, 0);
  FakeEngine::Options wide = fake();
  wide.width = 8;
  FakeEngine engine(wide);
  CHECK_THROWS(pymfn::infer_all(engine, *reader, 1), pymfn::ShapeMismatch, "infer_all: dataset ten samples");
  FakeEngine two(fake(2));
  CHECK_THROWS(pymfn::infer_all(two, *reader, 3), pymfn::InvalidArgument, "at most 2");
  CHECK_EQ(engine.requests() + two.requests(), size_t{0});
}
