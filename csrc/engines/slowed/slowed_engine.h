// An engine made slower on purpose: a wrapper over any Engine that, after each request of the engine it
// wraps, waits `fraction` of that request's own time plus `extra_ms`. It measures what the benchmarks can
// detect (bench regress's error-rate campaign, tests): a change of known size without touching the engine.
// Everything else (inputs, outputs, batches, request slots, stage times) is the wrapped engine's.
#pragma once
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/wrapped_engine.h"

namespace pymfn {

struct Slowdown {
  double fraction = 0;  // 0.2: every request takes 1.2x its own time (0..10)
  double extra_ms = 0;  // a fixed pause after every request (0..10000 ms)
};

// Throws InvalidArgument naming the field for a value outside its range (or not finite).
void check_slowdown(const Slowdown& s);

// Waits until `s.fraction` of the time from `start` to now, plus s.extra_ms, has passed again: sleeps all
// but the last 100 us, then spins. Spinning the whole time would burn CPU that a loaded machine then
// takes from the next inferences; sleeping alone overshoots by the wake-up latency.
void pause_after(std::chrono::steady_clock::time_point start, const Slowdown& s);

class SlowedEngine : public WrappedEngine {
 public:
  // Throws InvalidArgument for a null engine or a slowdown out of range.
  SlowedEngine(std::shared_ptr<Engine> inner, const Slowdown& slowdown);

  void prepare(size_t batch_rows) override;
  // execute: the pause follows the wrapped execute(). start/wait: it follows wait(), in proportion to the
  // request's time from start() to the end of the wrapped wait().
  StageTimes execute(const IoBinding& binding) override;
  void start(size_t slot, const IoBinding& binding) override;
  StageTimes wait(size_t slot) override;
  // The wrapped engine's, plus "slowdown" ("fraction 0.2, extra 0.000 ms").
  std::map<std::string, std::string> properties() const override;

  const Slowdown& slowdown() const { return slowdown_; }

 private:
  Slowdown slowdown_;
  // When each slot's request started; a slot is only touched by its own start()/wait() calls.
  std::vector<std::chrono::steady_clock::time_point> started_;
};

}  // namespace pymfn
