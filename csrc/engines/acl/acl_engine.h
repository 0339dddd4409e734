// AclEngine: pymfn::Engine for Ascend .om models through AscendCL (real CANN or pymfn's emulator, chosen
// by acl_loader). It does what msame does, measured the same way, plus what msame lacks: datasets built
// once, dynamic batch, asynchronous requests and a separate timing of every stage.
//
// Resources: aclInit is shared by all engines of the process (reference-counted in acl_loader). Each
// engine owns a device (aclrtSetDevice, itself reference-counted by ACL), one context, and one "slot"
// per request it can keep in flight. A slot is a model instance (its own aclmdlLoadFromFile id), a
// stream, device buffers for every input and output, pinned host buffers (ACL_HOST mode) and an
// input/output dataset whose data buffers are created once and re-pointed with aclUpdateDataBuffer.
// One model id per slot is how we honour "one model id must not run concurrently on several streams":
// requests on different slots never share a model id, so they can overlap without a lock. The cost is
// num_requests copies of the weights on the device, small for MobileFaceNet.
//
// Run modes (aclrtGetRunMode):
//  * ACL_HOST (a 310 card in a server): inputs go host -> device with one aclrtMemcpy per input per
//    batch; outputs come back with one aclrtMemcpy of their valid bytes. Callers that want pinned
//    source memory fill input_buffer(slot, i) (aclrtMallocHost memory) and bind that pointer; any
//    other host pointer is copied from directly (staging it into pinned memory first would add a host
//    copy and save nothing).
//  * ACL_DEVICE (program on the board's own CPU): device memory is the CPU's memory. input_buffer()
//    returns the slot's device buffer itself; a caller that writes the batch there and binds that pointer
//    executes with zero copies (h2d_ms = 0), which is msame's "read the file straight into device
//    memory". Other pointers are copied once (device-to-device kind), timed as h2d. The same holds for
//    output_buffer().
//
// Timing (steady_clock): h2d_ms = input copies, compute_ms = the synchronous aclmdlExecute alone
// (exactly msame's scope; for start()/wait() it is launch to aclrtSynchronizeStream return), d2h_ms =
// output copies.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engines/acl/acl_loader.h"
#include "core/engine.h"

namespace pymfn {

class AclEngine : public Engine {
 public:
  // Validates the om header (FormatError naming the file), loads the model num_requests times on
  // `device`, reads its description and allocates every buffer. Throws AclError for ACL failures.
  AclEngine(const std::string& om_path, int device = 0, size_t num_requests = 1);
  ~AclEngine() override;
  AclEngine(const AclEngine&) = delete;
  AclEngine& operator=(const AclEngine&) = delete;

  std::string kind() const override { return "acl"; }
  std::string model_path() const override { return path_; }
  // Model inputs without ATC's dynamic-batch input (ascend_mbatch_shape_data), which the engine feeds.
  std::vector<TensorInfo> inputs() const override { return inputs_; }
  std::vector<TensorInfo> outputs() const override { return outputs_; }
  // Static model: {its batch}; dynamic batch: the sizes ATC compiled (aclmdlGetDynamicBatch), ascending.
  std::vector<size_t> supported_batches() const override { return batches_; }
  // A dynamic-batch om: each request may run any offered batch up to the prepared one.
  bool batch_per_request() const override { return dynamic_; }
  void prepare(size_t batch_rows) override;
  StageTimes execute(const IoBinding& binding) override;
  size_t max_inflight() const override { return slots_.size(); }
  void start(size_t slot, const IoBinding& binding) override;
  StageTimes wait(size_t slot) override;
  // Slot state is guarded by mutex_; every call makes the engine's context current on its own thread.
  bool slots_thread_safe() const override { return true; }
  std::map<std::string, std::string> properties() const override;

  // Memory a caller may fill to skip a copy (see the run-mode notes above): pinned host memory in
  // ACL_HOST mode, the device buffer itself in ACL_DEVICE mode. Sized for the largest batch.
  void* input_buffer(size_t slot, size_t input);
  void* output_buffer(size_t slot, size_t output);
  size_t input_buffer_bytes(size_t input) const;
  size_t output_buffer_bytes(size_t output) const;

  // Copies made by execute/start/wait since load: proves the zero-copy path (ACL_DEVICE + input_buffer()).
  struct CopyStats {
    uint64_t h2d_copies = 0, h2d_bytes = 0, d2h_copies = 0, d2h_bytes = 0;
  };
  CopyStats copy_stats() const;

  bool device_mode() const { return device_mode_; }
  size_t prepared_batch() const { return batch_; }
  int device() const { return device_; }

 private:
  struct Slot {
    uint32_t model_id = 0;
    bool loaded = false;
    aclrtStream stream = nullptr;
    std::vector<void*> dev_in;    // one per model input (including the dynamic-batch input)
    std::vector<void*> dev_out;   // one per model output
    std::vector<void*> host_in;   // pinned, user inputs only (ACL_HOST mode)
    std::vector<void*> host_out;  // pinned (ACL_HOST mode)
    aclmdlDataset* in_ds = nullptr;
    aclmdlDataset* out_ds = nullptr;
    std::vector<aclDataBuffer*> in_bufs;
    std::vector<aclDataBuffer*> out_bufs;
    bool busy = false;  // a start() awaits its wait()
    IoBinding pending;
    StageTimes times;
    std::chrono::steady_clock::time_point launched;
  };

  void make_current() const;
  void describe_model();
  void read_emulator_compile_record();
  void setup_slot(Slot& s);
  void teardown() noexcept;
  void check_binding(const IoBinding& b, const char* what) const;
  double copy_inputs(Slot& s, const IoBinding& b);
  double copy_outputs(Slot& s, const IoBinding& b);
  void select_batch(Slot& s, size_t rows);
  size_t valid_bytes(size_t model_bytes, size_t rows) const;

  const acl::AclApi& api_;
  std::string path_;
  int device_ = 0;
  bool device_set_ = false;
  bool init_acquired_ = false;
  aclrtContext context_ = nullptr;
  bool device_mode_ = false;
  aclmdlDesc* desc_ = nullptr;  // description of slot 0's model (all slots load the same file)

  std::vector<TensorInfo> inputs_;
  std::vector<TensorInfo> outputs_;
  std::vector<size_t> user_to_model_input_;  // user input i -> model input index
  std::vector<size_t> model_in_bytes_;       // aclmdlGetInputSizeByIndex (largest batch)
  std::vector<size_t> model_out_bytes_;
  bool dynamic_ = false;
  size_t mbatch_index_ = 0;
  std::vector<size_t> batches_;
  size_t max_batch_ = 1;
  size_t batch_ = 0;  // prepared batch (0 = not prepared yet)
  std::string om_name_;
  std::string om_platform_;
  // The emulator's compile record of the model (pymfnEmuModelCompileRecord); empty on real CANN.
  std::map<std::string, std::string> emulator_compile_;

  std::vector<Slot> slots_;
  CopyStats copies_;  // guarded by mutex_
  mutable std::mutex mutex_;  // guards slot state between threads
};

}  // namespace pymfn
