// The emulator's shared state and the helpers every part of it uses. Internal: not installed, not a
// client header. The contract the emulator enforces is written at the top of lifecycle.cpp (the whole
// picture) and, part by part, at the top of memory.cpp, models.cpp, model_desc.cpp, execute.cpp,
// datasets.cpp and streams.cpp.
//
// Locking: one mutex, g_mu, guards the registries below (and every handle's fields that the registries
// describe). It is never held while OpenVINO compiles or runs a model, while a stream drains, or while a
// client callback runs. A model's own exec_mu serialises its single OpenVINO infer request.
#pragma once

#include <openvino/openvino.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "engines/acl/acl_api.h"
#include "engines/acl/om_header.h"
#include "acl_emulator/emulator_api.h"

// ---------------------------------------------------------------- opaque handle definitions
struct aclDataBuffer {
  void* data;
  size_t size;
};

struct aclTensorDesc {
  aclDataType dtype = ACL_DT_UNDEFINED;
  aclFormat format = ACL_FORMAT_UNDEFINED;
  std::vector<int64_t> dims;
  std::string name;
  void* address = nullptr;  // set only in aclmdlCreateAndGetOpDesc results
};

struct aclmdlDataset {
  uint64_t serial = 0;  // never reused: a queued task can tell a new dataset at the same address from its own
  std::vector<aclDataBuffer*> buffers;
  std::vector<aclTensorDesc*> descs;  // parallel to buffers once any is set; owned (copies), may be null
};

// What aclrtExceptionInfo points at. Kept (in State::exceptions) until aclFinalize, so the accessors and
// aclmdlCreateAndGetOpDesc can check that a pointer is one the emulator handed out.
struct rtExceptionInfo {
  uint32_t task_id = 0;
  uint32_t stream_id = 0;
  uint32_t thread_id = 0;
  uint32_t device_id = 0;
  uint32_t error_code = 0;
  std::string op_name;                // the model that ran as the failed task
  std::vector<aclTensorDesc> inputs;  // its I/O as launched (dims of the executed batch, buffer addresses)
  std::vector<aclTensorDesc> outputs;
};

namespace pymfn_emu {

struct IoInfo {
  std::string name;
  aclDataType dtype = ACL_FLOAT;
  aclFormat format = ACL_FORMAT_ND;
  std::vector<int64_t> dims;  // as declared (-1 first when dynamic)
  size_t size = 0;            // bytes, for the largest batch
  size_t row_bytes = 0;       // bytes of one batch row
};

}  // namespace pymfn_emu

struct aclmdlDesc {
  bool filled = false;
  uint32_t model_id = 0;
  std::vector<pymfn_emu::IoInfo> inputs;
  std::vector<pymfn_emu::IoInfo> outputs;
  std::vector<uint64_t> batches;
};

namespace pymfn_emu {

constexpr const char* kMbatchName = "ascend_mbatch_shape_data";
constexpr size_t kNone = static_cast<size_t>(-1);

struct Stream;

struct Context {
  int32_t device = 0;
  bool is_default = false;           // created by aclrtSetDevice
  uint64_t serial = 0;               // never reused, so a stale thread-local pointer cannot match a new context
  uint32_t default_stream_id = 0;    // the id synchronous work and the NULL stream report
  Stream* default_stream = nullptr;  // created on first use of the NULL stream; owned by the context
  uint32_t sync_tasks = 0;           // task ids of synchronous executes
};

struct Block {
  size_t size = 0;
  bool device = false;  // aclrtMalloc (true) or aclrtMallocHost (false)
};

struct TensorDescBlock {
  size_t count = 1;             // descriptions in the array starting at the key
  bool dataset_owned = false;   // a dataset's copy: released with the dataset, not by the client
};

// What a loaded model was compiled to: the arithmetic the emulator computes it in, the arithmetic an Ascend
// 310 would use for the same om, and what OpenVINO's execution graph says ran (models.cpp).
struct CompileRecord {
  std::string compute_precision;  // the emulator's arithmetic: "f32" for every payload
  std::string device_precision;   // the om's arithmetic on the device: "f16", "int8" or "f32"
  std::string precision_reason;   // one sentence: why, and how it compares with the device
  std::string runtime_precision;  // data-input types of the execution graph's compute layers, "f32 x52"
  std::string stored_weights_precision;   // narrow constants of the IR widened before compiling, "f16 x52"
  std::string runtime_precision_by_layer_type;  // "Convolution: f32 x40; FakeQuantize: f32 x30; ..."
  size_t fake_quantize_ops = 0;   // FakeQuantize operations in the payload IR
};

struct Model {
  uint32_t id = 0;
  Context* ctx = nullptr;
  std::string source;   // path or "<memory>" for messages
  std::string om_name;  // the om header's model name (the "operator" of a failed task)
  std::vector<uint8_t> image;  // the whole om file; the IR weights tensor aliases it
  pymfn::om::EmulatorMeta meta;
  std::vector<IoInfo> inputs;  // including the mbatch input when dynamic
  std::vector<IoInfo> outputs;
  size_t mbatch_index = kNone;
  uint64_t max_batch = 1;
  bool round_inputs_f16 = false;  // float32 inputs are rounded to fp16 before they reach the IR
  CompileRecord compiled_as;      // what the emulator compiled the payload to (pymfnEmuModelCompileRecord)
  std::vector<ov::element::Type> ir_in_types, ir_out_types;
  ov::CompiledModel compiled;
  ov::InferRequest request;
  std::vector<std::vector<uint8_t>> scratch;  // converted inputs
  std::mutex exec_mu;
  // The device's execution unit when the device timing model is on (PYMFN_ACL_EMU_EXEC_MS), else null.
  std::shared_ptr<std::mutex> device_unit;
  double exec_floor_ms = 0;
  double exec_floor_per_row_ms = 0;
  // Guarded by g_mu:
  int active = 0;   // synchronous executes in progress
  int pending = 0;  // async executes queued
  void* pending_stream = nullptr;
  uint64_t last_batch = 0;
};

struct BufView {
  void* data;
  size_t size;
};

// One unit of queued stream work. run() executes on the stream's worker thread with no lock held; a
// non-success return is remembered as the stream's error until the next synchronize.
struct Task {
  std::function<aclError(std::string*)> run;
};

struct Stream {
  Context* ctx = nullptr;
  uint32_t id = 0;
  uint32_t next_task = 0;  // guarded by g_mu
  std::mutex mu;
  std::condition_variable cv;
  std::condition_variable idle;
  std::deque<Task> queue;
  bool busy = false;
  bool stop = false;
  bool paused = false;  // test hook (pymfnEmuPauseStream)
  aclError first_error = ACL_SUCCESS;
  std::string first_message;
  std::thread worker;

  void loop();
  void push(Task t);
  // Waits for the queue to drain (at most timeout_ms when >= 0); returns (and clears) the first error
  // since the last drain. *timed_out is set when the wait gave up first (the error is then kept).
  aclError drain(std::string* msg, int32_t timeout_ms = -1, bool* timed_out = nullptr);
  void set_paused(bool p);
  void shutdown();
};

struct Event {
  Context* ctx = nullptr;
  uint64_t recorded = 0;   // aclrtRecordEvent calls
  uint64_t completed = 0;  // records whose stream reached them
  std::chrono::steady_clock::time_point stamp;  // when the last completed record was reached
};

// How emulated devices share the host (read at aclInit; see lifecycle.cpp, "Devices").
struct DeviceModel {
  uint32_t threads = 0;     // OpenVINO inference threads of every model (0 = OpenVINO's default)
  bool threads_auto = true; // threads came from dividing the host's cores among the devices
  double exec_ms = 0;       // > 0: each device runs one execute at a time, each lasting at least this long
  double exec_ms_per_row = 0;  // ... plus this per executed row (batch) of the execute
  bool timing() const { return exec_ms > 0 || exec_ms_per_row > 0; }
};

struct State {
  bool initialised = false;
  aclrtRunMode run_mode = ACL_HOST;
  uint32_t devices = 1;
  DeviceModel device_model;
  std::vector<std::shared_ptr<std::mutex>> device_units;  // one per device when device_model.timing()
  std::map<uintptr_t, Block> blocks;
  std::set<aclDataBuffer*> buffers;
  std::set<aclmdlDataset*> datasets;
  std::set<aclmdlDesc*> descs;
  std::map<const aclTensorDesc*, TensorDescBlock> tensor_descs;
  std::map<uint32_t, std::shared_ptr<Model>> models;
  uint32_t next_model_id = 1;
  std::set<Context*> contexts;              // explicit contexts
  std::map<int32_t, Context*> default_ctx;  // per device, from aclrtSetDevice
  std::map<int32_t, int> device_refs;
  std::set<Stream*> streams;  // explicit streams (default streams belong to their context)
  std::map<Event*, std::shared_ptr<Event>> events;
  aclrtExceptionInfoCallback exception_callback = nullptr;
  std::deque<std::unique_ptr<rtExceptionInfo>> exceptions;  // the most recent failed tasks
  uint64_t executes = 0;
};

extern std::mutex g_mu;
extern State g;
extern std::condition_variable g_event_cv;  // notified (with g_mu) when an event record completes
extern thread_local Context* t_ctx;

// ---------------------------------------------------------------- errors (lifecycle.cpp)
// Records "<where>: <why> [NAME code]" as this thread's aclGetRecentErrMsg and returns code.
aclError fail(aclError code, const std::string& where, const std::string& why);
// The calling thread's pending aclGetRecentErrMsg text (to keep it across a client callback).
std::string& thread_error();
std::string ptr_str(const void* p);

#define EMU_CHECK(expr)                 \
  do {                                  \
    aclError _rc = (expr);              \
    if (_rc != ACL_SUCCESS) return _rc; \
  } while (0)

// ---------------------------------------------------------------- lifecycle and contexts (g_mu held)
aclError need_init(const char* fn);
aclError need_ctx(const char* fn);  // a live current context in the calling thread
Context* new_context(int32_t device, bool is_default);
uint32_t new_stream_id();  // ids shared by explicit and default streams (reported in exception info)
void set_ctx(Context* c);
bool context_live(const Context* c);
// Detaches c's default stream (to be shut down by the caller once g_mu is released) and forgets every
// model and stream bound to c. Does not delete c.
Stream* orphan_context(Context* c);
ov::Core& core();

// ---------------------------------------------------------------- memory registry (memory.cpp, g_mu held)
enum class Where { kUnknown, kDevice, kPinnedHost };
// Finds the block containing p. kUnknown for unregistered memory; *overflow when [p, p+len) starts inside
// a block but runs past its end; *room (optional) = bytes from p to the block's end.
Where locate(const void* p, size_t len, bool* overflow, size_t* room = nullptr);
const char* where_name(Where w);

// ---------------------------------------------------------------- data types (datasets.cpp)
size_t dtype_size(aclDataType t);
// Registers a client-owned (or dataset-owned) array of `count` descriptions (g_mu held).
void register_tensor_descs(const aclTensorDesc* first, size_t count, bool dataset_owned);
// The registry entry of a live description (any element of a registered array), else nullptr (g_mu held).
const TensorDescBlock* find_tensor_desc(const aclTensorDesc* d);

// ---------------------------------------------------------------- models (models.cpp, g_mu held)
aclError find_model(const char* fn, uint32_t id, std::shared_ptr<Model>* m);

// ---------------------------------------------------------------- execution (execute.cpp)
// Runs `rows` rows through the model. Called with m.exec_mu held, g_mu NOT held.
aclError run_model(Model& m, const std::vector<BufView>& in, const std::vector<BufView>& out, uint64_t rows,
                   std::string* msg);
// run_model under the device timing model: holds the model's device unit (if any) for at least its
// execute floor. Called with m.exec_mu held, g_mu NOT held.
aclError run_on_device(Model& m, const std::vector<BufView>& in, const std::vector<BufView>& out, uint64_t rows,
                       std::string* msg);
// Text describing g.device_model (g_mu held).
std::string device_model_text();

// ---------------------------------------------------------------- streams and exceptions (streams.cpp)
// NULL = the current context's default stream (created on first use); otherwise a live stream of the
// current context (g_mu held).
aclError resolve_stream(const char* fn, aclrtStream handle, Stream** out);
// The stream id and next task id synchronous work on the current context reports (g_mu held).
void next_sync_task(uint32_t* stream_id, uint32_t* task_id);
// Records a failed task and calls the client's exception callback, if any (g_mu NOT held).
void raise_exception(std::unique_ptr<rtExceptionInfo> info);
// The exception description of a failed execute (g_mu held): the model's I/O with the launched buffers.
std::unique_ptr<rtExceptionInfo> describe_failed_task(const Model& m, const std::vector<BufView>& in,
                                                      const std::vector<BufView>& out, uint64_t rows,
                                                      uint32_t stream_id, uint32_t task_id, aclError code);
// Shuts down and deletes streams (g_mu NOT held).
void retire_streams(const std::vector<Stream*>& streams);

// ---------------------------------------------------------------- leak accounting (lifecycle.cpp, g_mu held)
pymfnEmuCounts counts_locked();
uint64_t leak_total(const pymfnEmuCounts& c);
std::string report_locked();

}  // namespace pymfn_emu
