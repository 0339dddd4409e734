#include "engines/simulated/simulated_engine.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <thread>

#include "core/errors.h"

namespace pymfn {

namespace {

std::chrono::steady_clock::duration from_ms(double ms) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

double ms_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

SimulatedEngine::SimulatedEngine(const SimulatedEngineOptions& options) : options_(options) {
  if (options_.width < 1 || options_.width > (size_t(1) << 24))
    throw InvalidArgument("SimulatedEngine: width must be 1..16777216, got " + std::to_string(options_.width));
  if (!(options_.service_ms >= 0) || !std::isfinite(options_.service_ms) || options_.service_ms > 3.6e6)
    throw InvalidArgument("SimulatedEngine: service_ms must be 0..3600000");
  if (options_.slots < 1 || options_.slots > 64)
    throw InvalidArgument("SimulatedEngine: slots must be 1..64, got " + std::to_string(options_.slots));
  for (const auto& kv : options_.stalls_ms)
    if (!(kv.second >= 0) || !std::isfinite(kv.second) || kv.second > 3.6e6)
      throw InvalidArgument("SimulatedEngine: stall of request " + std::to_string(kv.first) + " must be 0..3600000 ms");
  pending_.resize(options_.slots);
}

std::vector<TensorInfo> SimulatedEngine::inputs() const {
  TensorInfo t;
  t.name = "x";
  t.dtype = DType::kFloat32;
  t.shape = {-1, static_cast<int64_t>(options_.width)};
  t.sample_bytes = options_.width * sizeof(float);
  return {t};
}

std::vector<TensorInfo> SimulatedEngine::outputs() const {
  TensorInfo t;
  t.name = "row_sum";
  t.dtype = DType::kFloat32;
  t.shape = {-1, 1};
  t.sample_bytes = sizeof(float);
  return {t};
}

void SimulatedEngine::prepare(size_t batch_rows) {
  if (batch_rows < 1) throw InvalidArgument("SimulatedEngine: batch size must be >= 1");
  std::lock_guard<std::mutex> lk(mu_);
  for (const auto& p : pending_)
    if (p.busy) throw InvalidArgument("SimulatedEngine::prepare: a request is still in flight");
  batch_ = batch_rows;
}

void SimulatedEngine::check_binding(const IoBinding& b, const char* what) const {
  if (b.batch_rows < 1 || b.batch_rows > batch_ || b.inputs.size() != 1 || b.outputs.size() != 1 || !b.inputs[0] || !b.outputs[0])
    throw InvalidArgument(std::string("SimulatedEngine::") + what + ": binding must hold 1 input and 1 output of 1.." +
                          std::to_string(batch_) + " rows");
}

SimulatedEngine::Clock::time_point SimulatedEngine::schedule(Clock::time_point now) {
  const size_t n = count_++;
  double ms = options_.service_ms;
  const auto it = options_.stalls_ms.find(n);
  if (it != options_.stalls_ms.end()) ms += it->second;
  const auto begin = options_.serial ? std::max(now, unit_free_) : now;
  const auto done = begin + from_ms(ms);
  if (options_.serial) unit_free_ = done;
  return done;
}

void SimulatedEngine::compute(const IoBinding& b) const {
  const auto* x = static_cast<const float*>(b.inputs[0]);
  auto* y = static_cast<float*>(b.outputs[0]);
  for (size_t r = 0; r < b.batch_rows; ++r) {
    float s = 0;
    for (size_t i = 0; i < options_.width; ++i) s += x[r * options_.width + i];
    y[r] = s;
  }
}

StageTimes SimulatedEngine::execute(const IoBinding& binding) {
  Clock::time_point started, done;
  {
    std::lock_guard<std::mutex> lk(mu_);
    check_binding(binding, "execute");
    if (pending_[0].busy) throw InvalidArgument("SimulatedEngine::execute: slot 0 has a request in flight");
    started = Clock::now();
    done = schedule(started);
  }
  std::this_thread::sleep_until(done);
  compute(binding);
  StageTimes t;
  t.compute_ms = ms_between(started, Clock::now());
  return t;
}

void SimulatedEngine::start(size_t slot, const IoBinding& binding) {
  std::lock_guard<std::mutex> lk(mu_);
  if (slot >= pending_.size())
    throw InvalidArgument("SimulatedEngine::start: slot " + std::to_string(slot) + " out of range (slots " +
                          std::to_string(pending_.size()) + ")");
  check_binding(binding, "start");
  Pending& p = pending_[slot];
  if (p.busy) throw InvalidArgument("SimulatedEngine::start: slot " + std::to_string(slot) + " is busy");
  p.busy = true;
  p.binding = binding;
  p.started = Clock::now();
  p.done = schedule(p.started);
}

StageTimes SimulatedEngine::wait(size_t slot) {
  Clock::time_point started, done;
  IoBinding b;
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (slot >= pending_.size() || !pending_[slot].busy)
      throw InvalidArgument("SimulatedEngine::wait(" + std::to_string(slot) + ") without a matching start()");
    started = pending_[slot].started;
    done = pending_[slot].done;
    b = pending_[slot].binding;
  }
  std::this_thread::sleep_until(done);
  compute(b);
  StageTimes t;
  t.compute_ms = ms_between(started, Clock::now());
  std::lock_guard<std::mutex> lk(mu_);
  pending_[slot].busy = false;
  return t;
}

size_t SimulatedEngine::requests() const {
  std::lock_guard<std::mutex> lk(mu_);
  return count_;
}

std::map<std::string, std::string> SimulatedEngine::properties() const {
  std::map<std::string, std::string> p;
  std::ostringstream svc;
  svc << options_.service_ms;
  p["engine"] = "simulated";
  p["service_ms"] = svc.str();
  p["serial"] = options_.serial ? "true" : "false";
  p["slots"] = std::to_string(options_.slots);
  p["width"] = std::to_string(options_.width);
  std::string stalls;
  for (const auto& kv : options_.stalls_ms) {
    std::ostringstream os;
    os << kv.first << ":" << kv.second;
    stalls += (stalls.empty() ? "" : ",") + os.str();
  }
  p["stalls_ms"] = stalls.empty() ? "none" : stalls;
  p["note"] = "test double: service time set by the caller, no model; output = row sums";
  return p;
}

}  // namespace pymfn
