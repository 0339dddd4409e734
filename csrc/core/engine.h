// Engines: execute a model on one batch. The runner sees only this interface, so OpenVINO on the host
// and AscendCL on an NPU (or its emulator) are measured by the same code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace pymfn {

struct TensorInfo {
  std::string name;
  DType dtype = DType::kFloat32;
  // Full shape including the batch dimension at index 0; -1 marks a dynamic dimension.
  std::vector<int64_t> shape;
  // Bytes of one sample (the shape without the batch dimension).
  size_t sample_bytes = 0;
};

// Where time went in one execute, as the engine measured it (milliseconds, steady clock).
// Fields an engine cannot separate stay negative.
struct StageTimes {
  double h2d_ms = -1;      // host-to-device copy of inputs
  double compute_ms = -1;  // the execute call itself (msame's scope for ACL)
  double d2h_ms = -1;      // device-to-host copy of outputs
};

// Host memory for one batch: one pointer per model input/output, each batch_rows * sample_bytes long.
// Outputs are written by the engine; inputs are only read. Pointers must stay valid until the call
// (or, for async, until wait()) returns.
struct IoBinding {
  std::vector<const void*> inputs;
  std::vector<void*> outputs;
  size_t batch_rows = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;

  // "openvino", "acl", ...
  virtual std::string kind() const = 0;
  virtual std::string model_path() const = 0;
  virtual std::vector<TensorInfo> inputs() const = 0;
  virtual std::vector<TensorInfo> outputs() const = 0;

  // Batch sizes this model can execute. Empty = any size from 1 up (fully dynamic batch).
  virtual std::vector<size_t> supported_batches() const = 0;

  // Sets the batch size for the following executes (reshape / dynamic-batch selection, buffer
  // allocation). Throws InvalidArgument for a size the model does not offer. Not timed.
  virtual void prepare(size_t batch_rows) = 0;

  // True when execute() and start() also take a binding of fewer rows than prepared: any batch size this
  // model offers up to the prepared one, chosen per request (a dynamic-batch om selects it per dataset with
  // aclmdlSetDynamicBatchSize); outputs then hold binding.batch_rows rows. False: every binding has exactly
  // the prepared size. The server scenario's batcher sizes each request to the queries it carries when true,
  // and pads them to the prepared size when false.
  virtual bool batch_per_request() const { return false; }

  // Prepares for requests of any size up to `max_rows`, chosen per request where the engine can (the server's
  // batcher calls this instead of prepare()); batch_per_request() then says whether it can. The default
  // prepares max_rows.
  virtual void prepare_up_to(size_t max_rows) { prepare(max_rows); }

  // Runs one batch synchronously. `binding.batch_rows` must equal the prepared size (or, with
  // batch_per_request(), be an offered size up to it).
  virtual StageTimes execute(const IoBinding& binding) = 0;

  // Asynchronous path: up to `max_inflight()` requests, identified by slot 0..max_inflight()-1.
  // start() returns at once; wait(slot) blocks until that request has finished.
  virtual size_t max_inflight() const = 0;
  virtual void start(size_t slot, const IoBinding& binding) = 0;
  virtual StageTimes wait(size_t slot) = 0;
  // True when start() and wait() of DIFFERENT slots may run at the same time on different threads (calls
  // on one slot never overlap). The scheduled scenarios (core/scenarios.h) need it for more than one
  // request in flight: they issue from one thread and await each slot on its own.
  virtual bool slots_thread_safe() const { return false; }

  // Engine-specific facts for reports: precision, threads, run mode, acl_runtime, device...
  virtual std::map<std::string, std::string> properties() const = 0;
};

}  // namespace pymfn
