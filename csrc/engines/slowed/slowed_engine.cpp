#include "engines/slowed/slowed_engine.h"

#include <cmath>
#include <thread>

#include "core/errors.h"
#include "core/runner_internal.h"

namespace pymfn {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kSpinTail = std::chrono::microseconds(100);

}  // namespace

void check_slowdown(const Slowdown& s) {
  if (!std::isfinite(s.fraction) || s.fraction < 0.0 || s.fraction > 10.0)
    throw InvalidArgument("slowdown fraction must be in [0, 10] (0.1 = every request 10% slower), got " +
                          detail::fmt(s.fraction, 3));
  if (!std::isfinite(s.extra_ms) || s.extra_ms < 0.0 || s.extra_ms > 10000.0)
    throw InvalidArgument("slowdown extra_ms must be in [0, 10000], got " + detail::fmt(s.extra_ms, 3));
}

void pause_after(Clock::time_point start, const Slowdown& s) {
  if (s.fraction == 0.0 && s.extra_ms == 0.0) return;
  const auto done = Clock::now();
  const auto until = done + std::chrono::duration_cast<Clock::duration>((done - start) * s.fraction) +
                     std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(s.extra_ms));
  if (until - done > 2 * kSpinTail) std::this_thread::sleep_until(until - kSpinTail);
  while (Clock::now() < until) {
  }
}

SlowedEngine::SlowedEngine(std::shared_ptr<Engine> inner, const Slowdown& slowdown)
    : WrappedEngine(std::move(inner), "SlowedEngine"), slowdown_(slowdown) {
  check_slowdown(slowdown_);
  started_.resize(inner_->max_inflight());
}

void SlowedEngine::prepare(size_t batch_rows) {
  inner_->prepare(batch_rows);
  started_.resize(inner_->max_inflight());
}

StageTimes SlowedEngine::execute(const IoBinding& binding) {
  const auto start = Clock::now();
  const StageTimes t = inner_->execute(binding);
  pause_after(start, slowdown_);
  return t;
}

void SlowedEngine::start(size_t slot, const IoBinding& binding) {
  if (slot >= started_.size())
    throw InvalidArgument("SlowedEngine: request slot " + std::to_string(slot) + " out of range (engine offers " +
                          std::to_string(started_.size()) + ")");
  started_[slot] = Clock::now();
  inner_->start(slot, binding);
}

StageTimes SlowedEngine::wait(size_t slot) {
  const StageTimes t = inner_->wait(slot);
  if (slot < started_.size()) pause_after(started_[slot], slowdown_);
  return t;
}

std::map<std::string, std::string> SlowedEngine::properties() const {
  auto p = inner_->properties();
  p["slowdown"] = "fraction " + detail::fmt(slowdown_.fraction, 3) + ", extra " + detail::fmt(slowdown_.extra_ms, 3) + " ms";
  return p;
}

}  // namespace pymfn
