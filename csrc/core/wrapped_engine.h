// Base of the engines that wrap another one (SlowedEngine, RecordingEngine): every call goes to the
// wrapped engine unless the wrapper overrides it, so a wrapper states only what it changes.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/engine.h"
#include "core/errors.h"

namespace pymfn {

class WrappedEngine : public Engine {
 public:
  // `wrapper` names the class in the error for a null engine.
  WrappedEngine(std::shared_ptr<Engine> inner, const std::string& wrapper) : inner_(std::move(inner)) {
    if (!inner_) throw InvalidArgument(wrapper + ": the engine to wrap is missing (None)");
  }

  std::string kind() const override { return inner_->kind(); }
  std::string model_path() const override { return inner_->model_path(); }
  std::vector<TensorInfo> inputs() const override { return inner_->inputs(); }
  std::vector<TensorInfo> outputs() const override { return inner_->outputs(); }
  std::vector<size_t> supported_batches() const override { return inner_->supported_batches(); }
  void prepare(size_t batch_rows) override { inner_->prepare(batch_rows); }
  bool batch_per_request() const override { return inner_->batch_per_request(); }
  void prepare_up_to(size_t max_rows) override { inner_->prepare_up_to(max_rows); }
  StageTimes execute(const IoBinding& binding) override { return inner_->execute(binding); }
  size_t max_inflight() const override { return inner_->max_inflight(); }
  void start(size_t slot, const IoBinding& binding) override { inner_->start(slot, binding); }
  StageTimes wait(size_t slot) override { return inner_->wait(slot); }
  bool slots_thread_safe() const override { return inner_->slots_thread_safe(); }
  std::map<std::string, std::string> properties() const override { return inner_->properties(); }

  const std::shared_ptr<Engine>& inner() const { return inner_; }

 protected:
  std::shared_ptr<Engine> inner_;
};

}  // namespace pymfn
