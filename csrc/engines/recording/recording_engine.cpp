#include "engines/recording/recording_engine.h"

#include <cmath>
#include <sstream>

#include "core/errors.h"

namespace pymfn {

namespace {

constexpr size_t kMaxRecordsLimit = 1000000;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

std::string number_text(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

void copy_bytes(const void* from, size_t bytes, std::vector<uint8_t>* to) {
  const auto* p = static_cast<const uint8_t*>(from);
  to->assign(p, p + bytes);
}

}  // namespace

void check_recording_plan(const RecordingPlan& plan) {
  if (!std::isfinite(plan.fraction) || plan.fraction <= 0.0 || plan.fraction > 1.0)
    throw InvalidArgument("recording fraction must be in (0, 1] (0.01 = one request in a hundred), got " +
                          number_text(plan.fraction));
  if (plan.max_records < 1 || plan.max_records > kMaxRecordsLimit)
    throw InvalidArgument("recording max_records must be in [1, " + std::to_string(kMaxRecordsLimit) + "], got " +
                          std::to_string(plan.max_records));
}

bool in_recording_sample(const RecordingPlan& plan, size_t request) {
  if (request < plan.skip) return false;
  const uint64_t h = splitmix64(splitmix64(plan.seed) ^ static_cast<uint64_t>(request));
  return static_cast<double>(h >> 11) * (1.0 / 9007199254740992.0) < plan.fraction;  // top 53 bits / 2^53
}

RecordingEngine::RecordingEngine(std::shared_ptr<Engine> inner, const RecordingPlan& plan)
    : WrappedEngine(std::move(inner), "RecordingEngine"), plan_(plan) {
  check_recording_plan(plan_);
  read_sample_bytes();
  pending_.resize(inner_->max_inflight());
}

void RecordingEngine::read_sample_bytes() {
  input_bytes_.clear();
  output_bytes_.clear();
  for (const TensorInfo& t : inner_->inputs()) input_bytes_.push_back(t.sample_bytes);
  for (const TensorInfo& t : inner_->outputs()) output_bytes_.push_back(t.sample_bytes);
}

void RecordingEngine::prepare(size_t batch_rows) {
  inner_->prepare(batch_rows);
  read_sample_bytes();
  pending_.resize(inner_->max_inflight());
}

bool RecordingEngine::begin_record(const IoBinding& binding, Record* record) {
  const size_t request = requests_.fetch_add(1);
  if (!in_recording_sample(plan_, request)) return false;
  // A binding that does not match the model is the wrapped engine's to refuse.
  if (binding.inputs.size() != input_bytes_.size() || binding.outputs.size() != output_bytes_.size()) return false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (taken_ >= plan_.max_records) return false;
    ++taken_;
  }
  record->request = request;
  record->rows = binding.batch_rows;
  record->inputs.resize(binding.inputs.size());
  for (size_t i = 0; i < binding.inputs.size(); ++i)
    copy_bytes(binding.inputs[i], binding.batch_rows * input_bytes_[i], &record->inputs[i]);
  record->outputs.clear();
  return true;
}

void RecordingEngine::finish_record(Record&& record, const std::vector<void*>& outputs) {
  record.outputs.resize(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i) copy_bytes(outputs[i], record.rows * output_bytes_[i], &record.outputs[i]);
  std::lock_guard<std::mutex> lock(mu_);
  if (records_.size() < plan_.max_records) records_.push_back(std::move(record));  // clear() mid-run aside, always
}

void RecordingEngine::give_back() {
  std::lock_guard<std::mutex> lock(mu_);
  if (taken_ > 0) --taken_;
}

StageTimes RecordingEngine::execute(const IoBinding& binding) {
  Record record;
  if (!begin_record(binding, &record)) return inner_->execute(binding);
  StageTimes t;
  try {
    t = inner_->execute(binding);
  } catch (...) {
    give_back();
    throw;
  }
  finish_record(std::move(record), binding.outputs);
  return t;
}

void RecordingEngine::start(size_t slot, const IoBinding& binding) {
  if (slot >= pending_.size())
    throw InvalidArgument("RecordingEngine: request slot " + std::to_string(slot) + " out of range (engine offers " +
                          std::to_string(pending_.size()) + ")");
  Pending& p = pending_[slot];
  p.recording = begin_record(binding, &p.record);
  if (p.recording) p.outputs = binding.outputs;
  try {
    inner_->start(slot, binding);
  } catch (...) {
    if (p.recording) give_back();
    p.recording = false;
    throw;
  }
}

StageTimes RecordingEngine::wait(size_t slot) {
  if (slot >= pending_.size()) return inner_->wait(slot);  // the wrapped engine reports the bad slot
  Pending& p = pending_[slot];
  StageTimes t;
  try {
    t = inner_->wait(slot);
  } catch (...) {
    if (p.recording) give_back();
    p.recording = false;
    throw;
  }
  if (p.recording) {
    p.recording = false;
    finish_record(std::move(p.record), p.outputs);
  }
  return t;
}

std::map<std::string, std::string> RecordingEngine::properties() const {
  auto p = inner_->properties();
  p["recording"] = "fraction " + number_text(plan_.fraction) + ", max " + std::to_string(plan_.max_records) +
                   " records, seed " + std::to_string(plan_.seed) + ", skip " + std::to_string(plan_.skip);
  return p;
}

std::vector<RecordingEngine::Record> RecordingEngine::records() const {
  std::lock_guard<std::mutex> lock(mu_);
  return records_;
}

void RecordingEngine::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  records_.clear();
  taken_ = 0;
  requests_.store(0);
}

}  // namespace pymfn
