// OpenVINO engine: runs a frozen TensorFlow .pb, an .onnx file or an OpenVINO IR .xml on the host CPU.
// It is both the x86 deployment path and the reference the ACL emulator is checked against, so it
// defaults to f32 inference precision (parity) and never copies the caller's buffers.
// OpenVINO treats the precision as a hint and falls back silently (bf16 asked, f32 run on a CPU without
// bf16; int8 run for every quantized layer whatever was asked), so properties() reports what the compiled
// model really runs, per layer type, next to what was requested.
#pragma once
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/engine.h"

namespace pymfn {

struct OpenVINOOptions {
  // "f32" (default: exact parity with TensorFlow), "bf16" or "f16" (OpenVINO's inference precision hint),
  // or "int8": the model must be quantized (FakeQuantize operations, e.g. from `python -m pymfn quantize`);
  // its quantized layers run in int8 and the few layers left unquantized in f32.
  std::string precision = "f32";
  // ov::inference_num_threads; 0 lets OpenVINO decide.
  int threads = 0;
  // ov::num_streams; 0 lets the performance hint decide.
  int streams = 0;
  // Infer requests available to start()/wait() (the runner's in-flight slots).
  size_t num_requests = 1;
  // ov::hint::performance_mode: "latency" or "throughput".
  std::string hint = "latency";
  // OpenVINO device name.
  std::string device = "CPU";
};

class OpenVINOEngine : public Engine {
 public:
  // Reads and compiles the model for its own batch size (batch 1 when the batch dimension is dynamic).
  // Throws InputError for a missing file, InvalidArgument for a bad option or unsupported extension,
  // EngineError (with the path and OpenVINO's message) when OpenVINO cannot read or compile the model.
  OpenVINOEngine(const std::string& model_path, const OpenVINOOptions& options);
  ~OpenVINOEngine() override;

  std::string kind() const override { return "openvino"; }
  std::string model_path() const override { return path_; }
  std::vector<TensorInfo> inputs() const override { return inputs_; }
  std::vector<TensorInfo> outputs() const override { return outputs_; }
  std::vector<size_t> supported_batches() const override;
  void prepare(size_t batch_rows) override;
  // A model with a dynamic batch compiles once with a batch dimension of 1..max_rows; each request then runs
  // its own row count (batch_per_request). A static model prepares its batch, which must be max_rows.
  void prepare_up_to(size_t max_rows) override;
  bool batch_per_request() const override { return variable_; }
  StageTimes execute(const IoBinding& binding) override;
  size_t max_inflight() const override { return options_.num_requests; }
  // Each slot has its own infer request and bookkeeping, so different slots may be used from different threads.
  bool slots_thread_safe() const override { return true; }
  void start(size_t slot, const IoBinding& binding) override;
  StageTimes wait(size_t slot) override;
  std::map<std::string, std::string> properties() const override;

  size_t prepared_batch() const { return batch_; }
  // FakeQuantize operations in the model as read: > 0 means OpenVINO runs those layers in int8.
  size_t fake_quantize_ops() const { return fake_quantize_ops_; }

 private:
  struct Impl;
  void compile(size_t batch_rows, bool variable = false);
  // Key of the current compiled model in Impl::compiled.
  size_t compiled_key() const;
  void bind(size_t slot, const IoBinding& binding);
  // requested vs runtime precision (per layer type) and a one-line verdict, into properties()
  void add_runtime_precision(std::map<std::string, std::string>* p) const;

  std::string path_;
  OpenVINOOptions options_;
  std::vector<TensorInfo> inputs_;
  std::vector<TensorInfo> outputs_;
  bool dynamic_batch_ = false;
  size_t fake_quantize_ops_ = 0;
  size_t batch_ = 0;     // prepared rows (variable_: the most a request may have)
  bool variable_ = false;  // compiled with a batch dimension of 1..batch_
  std::unique_ptr<Impl> impl_;
};

}  // namespace pymfn
