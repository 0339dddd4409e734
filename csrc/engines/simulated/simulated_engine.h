// SimulatedEngine: an Engine whose service time is set by the caller instead of coming from a model.
//
// It exists to test and measure the runner itself. With a fixed service time the scenarios' accounting
// can be checked exactly (a stall injected into one request must show in every query queued behind
// it); with zero service time (a "null engine") what remains is the harness's own overhead, e.g. how
// late the server scheduler issues. It still computes a real output, cheaply: row i of the output is
// the float32 sum of row i of the input. Reports name it (kind "simulated"), so a figure measured on it
// is never mistaken for a model's.
#pragma once
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/engine.h"

namespace pymfn {

struct SimulatedEngineOptions {
  size_t width = 4;         // float32 elements of one input sample
  double service_ms = 0;    // time one request takes (slept, so it costs no CPU)
  size_t slots = 1;         // requests in flight (max_inflight)
  // true: one execution unit, requests run one after another (a request started while another runs
  // begins when that one ends); false: every slot runs independently.
  bool serial = true;
  // Extra time of particular requests, by 0-based request number (every execute() and start() counts,
  // warm-up included).
  std::map<size_t, double> stalls_ms;
};

class SimulatedEngine : public Engine {
 public:
  explicit SimulatedEngine(const SimulatedEngineOptions& options);

  std::string kind() const override { return "simulated"; }
  std::string model_path() const override { return "<simulated engine>"; }
  std::vector<TensorInfo> inputs() const override;
  std::vector<TensorInfo> outputs() const override;
  std::vector<size_t> supported_batches() const override { return {}; }
  bool batch_per_request() const override { return true; }  // any rows up to the prepared batch
  void prepare(size_t batch_rows) override;
  StageTimes execute(const IoBinding& binding) override;
  size_t max_inflight() const override { return options_.slots; }
  void start(size_t slot, const IoBinding& binding) override;
  StageTimes wait(size_t slot) override;
  bool slots_thread_safe() const override { return true; }
  std::map<std::string, std::string> properties() const override;

  // Requests started so far (execute + start).
  size_t requests() const;

 private:
  using Clock = std::chrono::steady_clock;
  struct Pending {
    bool busy = false;
    IoBinding binding;
    Clock::time_point started, done;
  };
  // Reserves the execution time of the next request started at `now`; returns when it ends.
  Clock::time_point schedule(Clock::time_point now);
  void check_binding(const IoBinding& b, const char* what) const;
  void compute(const IoBinding& b) const;

  SimulatedEngineOptions options_;
  size_t batch_ = 1;
  mutable std::mutex mu_;
  size_t count_ = 0;
  Clock::time_point unit_free_{};  // serial: when the execution unit is next free
  std::vector<Pending> pending_;
};

}  // namespace pymfn
