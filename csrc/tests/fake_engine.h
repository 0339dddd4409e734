// Test doubles for the runner: an Engine whose requests complete at once and that records what it was
// asked to do, and a BatchReader that can be told to misbehave.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/dataset.h"
#include "core/engine.h"
#include "core/errors.h"

namespace pymfn_test {

// Input: `width` float32 per sample (or as configured); output: the float32 sum of each row. Requests
// finish inside start(); wait() only hands the result back. Thread-safe across slots.
class FakeEngine : public pymfn::Engine {
 public:
  struct Options {
    size_t width = 4;
    size_t slots = 1;
    pymfn::DType input_dtype = pymfn::DType::kFloat32;
    std::vector<int64_t> input_sample_shape;  // default {width}
    std::vector<size_t> batches;              // supported batch sizes; empty = any
    size_t inputs = 1;
    size_t fail_at_request = SIZE_MAX;        // this request (0-based, execute and start) throws EngineError
    double sleep_ms = 0;                      // each request sleeps this long (at least) before computing
    bool per_request = false;                 // batch_per_request(): a binding may hold an offered size < prepared
  };

  explicit FakeEngine(Options o) : o_(std::move(o)), busy_(o_.slots, false) {
    if (o_.input_sample_shape.empty()) o_.input_sample_shape = {static_cast<int64_t>(o_.width)};
  }

  std::string kind() const override { return "fake"; }
  std::string model_path() const override { return "<fake model>"; }
  std::vector<pymfn::TensorInfo> inputs() const override {
    pymfn::TensorInfo t;
    t.name = "x";
    t.dtype = o_.input_dtype;
    t.shape = {-1};
    t.shape.insert(t.shape.end(), o_.input_sample_shape.begin(), o_.input_sample_shape.end());
    t.sample_bytes = o_.width * pymfn::dtype_size(o_.input_dtype);
    return std::vector<pymfn::TensorInfo>(o_.inputs, t);
  }
  std::vector<pymfn::TensorInfo> outputs() const override {
    pymfn::TensorInfo t;
    t.name = "row_sum";
    t.shape = {-1, 1};
    t.sample_bytes = sizeof(float);
    return {t};
  }
  std::vector<size_t> supported_batches() const override { return o_.batches; }
  bool batch_per_request() const override { return o_.per_request; }
  void prepare(size_t batch_rows) override {
    std::lock_guard<std::mutex> lk(mu_);
    prepared_ = batch_rows;
    ++prepares_;
  }
  pymfn::StageTimes execute(const pymfn::IoBinding& b) override {
    std::lock_guard<std::mutex> lk(mu_);
    run(b);
    pymfn::StageTimes t;
    t.compute_ms = 0.001;
    return t;
  }
  size_t max_inflight() const override { return o_.slots; }
  void start(size_t slot, const pymfn::IoBinding& b) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (slot >= o_.slots || busy_[slot]) {
      ++protocol_errors_;
      throw pymfn::EngineError("fake engine: start of slot " + std::to_string(slot) + " that is busy or absent");
    }
    run(b);
    busy_[slot] = true;
    peak_busy_ = std::max(peak_busy_, static_cast<size_t>(std::count(busy_.begin(), busy_.end(), true)));
  }
  pymfn::StageTimes wait(size_t slot) override {
    std::lock_guard<std::mutex> lk(mu_);
    if (slot >= o_.slots || !busy_[slot]) {
      ++protocol_errors_;
      throw pymfn::EngineError("fake engine: wait on slot " + std::to_string(slot) + " that was not started");
    }
    busy_[slot] = false;
    return pymfn::StageTimes{};
  }
  bool slots_thread_safe() const override { return true; }
  std::map<std::string, std::string> properties() const override { return {{"kind", "fake"}}; }

  // What happened so far.
  size_t requests() const {
    std::lock_guard<std::mutex> lk(mu_);
    return first_values_.size();
  }
  // Element 0 of row 0 of each request's input, in request order (identifies the batch).
  std::vector<float> first_values() const {
    std::lock_guard<std::mutex> lk(mu_);
    return first_values_;
  }
  // Element 0 of every row of each request's input, in request order.
  std::vector<std::vector<float>> row_values() const {
    std::lock_guard<std::mutex> lk(mu_);
    return row_values_;
  }
  size_t busy_now() const {
    std::lock_guard<std::mutex> lk(mu_);
    return static_cast<size_t>(std::count(busy_.begin(), busy_.end(), true));
  }
  size_t peak_busy() const {
    std::lock_guard<std::mutex> lk(mu_);
    return peak_busy_;
  }
  size_t prepares() const {
    std::lock_guard<std::mutex> lk(mu_);
    return prepares_;
  }
  size_t protocol_errors() const {
    std::lock_guard<std::mutex> lk(mu_);
    return protocol_errors_;
  }

 private:
  void run(const pymfn::IoBinding& b) {
    const bool offered = o_.batches.empty() || std::find(o_.batches.begin(), o_.batches.end(), b.batch_rows) != o_.batches.end();
    const bool rows_ok = b.batch_rows == prepared_ || (o_.per_request && offered && b.batch_rows >= 1 && b.batch_rows < prepared_);
    if (!rows_ok || b.inputs.size() != 1 || b.outputs.size() != 1) {
      ++protocol_errors_;
      throw pymfn::EngineError("fake engine: binding does not match the prepared batch");
    }
    const size_t n = first_values_.size();
    float first;
    std::memcpy(&first, b.inputs[0], sizeof first);
    first_values_.push_back(first);
    std::vector<float> rows(b.batch_rows);
    for (size_t r = 0; r < b.batch_rows; ++r)
      std::memcpy(&rows[r], static_cast<const unsigned char*>(b.inputs[0]) + r * o_.width * sizeof(float), sizeof(float));
    row_values_.push_back(std::move(rows));
    if (n == o_.fail_at_request) throw pymfn::EngineError("fake engine: injected failure of request " + std::to_string(n));
    if (o_.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(o_.sleep_ms));
    const auto* in = static_cast<const unsigned char*>(b.inputs[0]);
    auto* out = static_cast<unsigned char*>(b.outputs[0]);
    for (size_t r = 0; r < b.batch_rows; ++r) {
      float sum = 0;
      for (size_t j = 0; j < o_.width; ++j) {
        float v;
        std::memcpy(&v, in + (r * o_.width + j) * sizeof(float), sizeof v);
        sum += v;
      }
      std::memcpy(out + r * sizeof(float), &sum, sizeof sum);
    }
  }

  Options o_;
  mutable std::mutex mu_;
  std::vector<bool> busy_;
  size_t prepared_ = 0;
  size_t prepares_ = 0;
  size_t peak_busy_ = 0;
  size_t protocol_errors_ = 0;
  std::vector<float> first_values_;
  std::vector<std::vector<float>> row_values_;
};

// Batches of `batch` rows of `width` float32 over `count` samples (sample i element j = i * width + j),
// the last one zero-padded; `bad_rows` > 0 makes every batch claim that many rows instead.
class MemoryReader : public pymfn::BatchReader {
 public:
  MemoryReader(size_t count, size_t width, size_t batch, size_t bad_rows = 0)
      : count_(count), width_(width), batch_(batch), bad_rows_(bad_rows) {
    spec_.dtype = pymfn::DType::kFloat32;
    spec_.bytes = width * sizeof(float);
    spec_.shape = {static_cast<int64_t>(width)};
    spec_.origin = "memory reader";
    buf_.resize(batch * width);
  }
  const pymfn::SampleSpec& sample_spec() const override { return spec_; }
  bool next(pymfn::BatchView* out) override {
    if (next_ >= num_batches()) return false;
    const size_t first = next_ * batch_;
    const size_t valid = std::min(batch_, count_ - first);
    std::fill(buf_.begin(), buf_.end(), 0.0f);
    for (size_t k = 0; k < valid * width_; ++k) buf_[k] = static_cast<float>(first * width_ + k);
    out->data = buf_.data();
    out->batch_rows = bad_rows_ ? bad_rows_ : batch_;
    out->valid_rows = valid;
    out->first_sample = first;
    out->batch_index = next_++;
    return true;
  }
  void rewind() override { next_ = 0; }
  size_t num_batches() const override { return (count_ + batch_ - 1) / batch_; }
  size_t batch_size() const override { return batch_; }
  pymfn::ReaderStats stats() const override { return {}; }

 private:
  size_t count_, width_, batch_, bad_rows_;
  size_t next_ = 0;
  pymfn::SampleSpec spec_;
  std::vector<float> buf_;
};

}  // namespace pymfn_test
