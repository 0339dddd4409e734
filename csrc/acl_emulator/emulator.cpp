// libascendcl.so test double: an AscendCL runtime that executes pymfn "emulator om" files on the host
// CPU through OpenVINO, while enforcing the rules a real Ascend 310 runtime would enforce.
//
// ================================================================ CONTRACT
// Why it exists: no Ascend hardware or CANN is available to us. The ACL engine (csrc/acl/acl_engine.cpp)
// and any ACL client program can link against or dlopen() this library instead of CANN's, and get REAL
// outputs plus a loud failure wherever real hardware would fail. It is a test double, not a simulator.
//
// Configuration (read at aclInit):
//   PYMFN_ACL_EMU_RUN_MODE = host (default) | device   what aclrtGetRunMode reports, see "memory" below
//   PYMFN_ACL_EMU_DEVICES  = 1 (default) .. 64           device count
//
// What it CHECKS (failing call returns the code shown; aclGetRecentErrMsg() then says why):
//   * every call before aclInit (and after aclFinalize) -> 100001; aclInit twice -> 100002; aclInit with a
//     config path that cannot be read -> 100003; bad environment values -> 100000.
//   * device ids: aclrtSetDevice/ResetDevice/CreateContext with id < 0 or >= device count -> 200002.
//   * contexts: aclrtMalloc/MallocHost/Memcpy(Async)/Memset/CreateStream, model load/execute/unload and
//     aclmdlSetDynamicBatchSize need a current context in the calling thread (aclrtSetDevice,
//     aclrtCreateContext or aclrtSetCurrentContext) -> 107002 otherwise, also when that context has since
//     been destroyed (by another thread, aclrtResetDevice or aclFinalize); a model
//     executed or unloaded from another context than it was loaded in -> 107004; a stream used from another
//     context -> 107003.
//   * memory: a registry of every aclrtMalloc ("device") and aclrtMallocHost ("pinned host") block; anything
//     else is "unknown host memory" (plain malloc). aclrtMemcpy/MemcpyAsync: count <= destMax, both ranges
//     must stay inside the block they start in, and in ACL_HOST mode the kind must match where the
//     pointers live (a device pointer as the source of HOST_TO_DEVICE, a host pointer as the destination
//     of HOST_TO_DEVICE, ...) -> 100000. In ACL_DEVICE mode host and device are one memory, so the kind is
//     not checked against the pointers (a file read straight into aclrtMalloc memory is legitimate there).
//     aclrtFree of anything but the start of a live aclrtMalloc block, aclrtFreeHost of anything but the
//     start of a live aclrtMallocHost block -> 100000. aclrtMalloc memory is filled with 0xA5 (device
//     memory is never zeroed), so reading it before writing it shows up as garbage, not as zeros.
//   * model load: unreadable file -> 100014; file shorter than 256 bytes, wrong magic ("IMOD") or headsize
//     != 256 -> 100003; a valid om header whose payload is not a pymfn emulator payload (a real Ascend om),
//     a malformed payload, or an IR OpenVINO cannot read/compile -> 100013. Unknown model id -> 100011.
//   * execute (sync and async): datasets must be live handles holding exactly one buffer per model
//     input/output, each buffer exactly the model's I/O size (the largest batch for dynamic models)
//     -> 100000. In ACL_HOST mode every buffer must lie inside an aclrtMalloc block; host memory (pinned
//     or not) fails like the hardware's DMA would -> 500003. In ACL_DEVICE mode aclrtMalloc and
//     aclrtMallocHost memory are accepted, unknown memory is not -> 500003.
//   * concurrency: one model id executing on two threads at once, or queued on two streams at once, or
//     unloaded while work is queued -> 500001 (a shared model id needs a lock around set-inputs+execute).
//   * dynamic batch: see below; a batch not offered or never set -> 100000.
//   * leaks: aclFinalize prints every outstanding allocation, dataset, data buffer, descriptor, model,
//     context and stream on stderr, then releases them; pymfnEmuGetCounts / pymfnEmuLeakReport expose the
//     same to tests (emulator_api.h).
//
// What it COMPUTES: the model in the om payload (OpenVINO IR xml + weights, see csrc/acl/om_header.h) is
// run by OpenVINO's CPU plugin on the rows of the batch. Payload precision "f32" runs in f32; "f16"
// (what ATC's force_fp16 / allow_fp32_to_fp16 / allow_mix_precision stand for) rounds every float32
// input to float16 first (as the NPU's first cast does), and asks OpenVINO for f16 inference, or bf16 when
// that is all the CPU offers, or f32 when it has neither (the IR weights are stored in fp16 by the
// converter). Outputs are converted to the om's declared output dtype (the reference om outputs
// float16, 256 bytes per image) and written to the output buffers.
//
// Dynamic batch (an om whose dims start with -1 and whose meta lists dynamic_batch sizes): like ATC, the
// model gets one extra LAST input named "ascend_mbatch_shape_data", dtype ACL_INT64, dims [1], 8 bytes.
// aclmdlSetDynamicBatchSize(id, dataset, index, batch) checks `batch` against the offered sizes and that
// `index` is that input, then writes `batch` as a little-endian uint64 into the dataset's buffer at
// `index` (that buffer travels to execute, as on the real runtime). Execute reads it back; anything but an
// offered size (e.g. the 0xA5 garbage of a never-set device buffer) fails with 100000. Buffers are sized
// for the largest batch; only the first `batch` rows are read and only the first size*batch/maxBatch
// bytes of each output are written (the rest is left untouched). aclmdlGetCurOutputDims reports the
// batch of the model's last execute.
//
// Async: every stream owns one worker thread. aclmdlExecuteAsync and aclrtMemcpyAsync validate their
// arguments at once (failing immediately, like the real enqueue; the dataset's buffer addresses and the
// dynamic batch value are taken at that moment, the data itself is read when the work runs) and queue the
// work; the worker runs it in
// order; aclrtSynchronizeStream waits for the queue and returns the first error the worker hit since the
// last synchronize (its message becomes the caller's aclGetRecentErrMsg). pymfnEmuPauseStream holds a
// worker so tests can keep work queued deterministically.
//
// What it does NOT model: timing (it runs at CPU speed), real Ascend om files (rejected with 100013),
// AIPP as a separate stage (`convert --target om-emu --aipp` builds the same preprocessing into the IR, so
// the om takes uint8 input like an AIPP om), events, multiple devices' memory being distinct (every device shares the host's memory), use after
// free of memory (a freed block is just unknown memory), profiling and dumps. aclGetRecentErrMsg returns
// the calling thread's last failure message and clears it (returns "" when there is none).
// ================================================================
#include <openvino/core/type/float16.hpp>
#include <openvino/openvino.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "acl/acl_api.h"
#include "acl/om_header.h"
#include "acl_emulator/emulator_api.h"

namespace om = pymfn::om;

// ---------------------------------------------------------------- opaque handle definitions
struct aclDataBuffer {
  void* data;
  size_t size;
};

struct aclmdlDataset {
  std::vector<aclDataBuffer*> buffers;
};

namespace {

struct IoInfo {
  std::string name;
  aclDataType dtype = ACL_FLOAT;
  aclFormat format = ACL_FORMAT_ND;
  std::vector<int64_t> dims;  // as declared (-1 first when dynamic)
  size_t size = 0;            // bytes, for the largest batch
  size_t row_bytes = 0;       // bytes of one batch row
};

}  // namespace

struct aclmdlDesc {
  bool filled = false;
  uint32_t model_id = 0;
  std::vector<IoInfo> inputs;
  std::vector<IoInfo> outputs;
  std::vector<uint64_t> batches;
};

namespace {

constexpr const char* kMbatchName = "ascend_mbatch_shape_data";
constexpr size_t kNone = static_cast<size_t>(-1);

struct Context {
  int32_t device = 0;
  bool is_default = false;  // created by aclrtSetDevice
  uint64_t serial = 0;      // never reused, so a stale thread-local pointer cannot match a new context
};

struct Block {
  size_t size = 0;
  bool device = false;  // aclrtMalloc (true) or aclrtMallocHost (false)
};

struct Model {
  uint32_t id = 0;
  Context* ctx = nullptr;
  std::string source;  // path or "<memory>" for messages
  std::vector<uint8_t> image;  // the whole om file; the IR weights tensor aliases it
  om::EmulatorMeta meta;
  std::vector<IoInfo> inputs;  // including the mbatch input when dynamic
  std::vector<IoInfo> outputs;
  size_t mbatch_index = kNone;
  uint64_t max_batch = 1;
  bool round_inputs_f16 = false;
  std::string ov_precision;
  std::vector<ov::element::Type> ir_in_types, ir_out_types;
  ov::CompiledModel compiled;
  ov::InferRequest request;
  std::vector<std::vector<uint8_t>> scratch;  // converted inputs
  std::mutex exec_mu;
  // Guarded by g_mu:
  int active = 0;             // synchronous executes in progress
  int pending = 0;            // async executes queued
  void* pending_stream = nullptr;
  uint64_t last_batch = 0;
};

struct BufView {
  void* data;
  size_t size;
};

struct Stream;

struct State {
  bool initialised = false;
  aclrtRunMode run_mode = ACL_HOST;
  uint32_t devices = 1;
  std::map<uintptr_t, Block> blocks;
  std::set<aclDataBuffer*> buffers;
  std::set<aclmdlDataset*> datasets;
  std::set<aclmdlDesc*> descs;
  std::map<uint32_t, std::shared_ptr<Model>> models;
  uint32_t next_model_id = 1;
  std::set<Context*> contexts;          // explicit contexts
  std::map<int32_t, Context*> default_ctx;  // per device, from aclrtSetDevice
  std::map<int32_t, int> device_refs;
  std::set<Stream*> streams;
  uint64_t executes = 0;
};

std::mutex g_mu;
State g;
pymfnEmuCounts g_final_counts{};
std::string g_final_report;
uint64_t g_final_leaks = 0;

thread_local std::string t_error;
thread_local std::string t_error_returned;
thread_local Context* t_ctx = nullptr;
thread_local uint64_t t_ctx_serial = 0;
uint64_t g_ctx_serial = 0;  // survives aclFinalize on purpose

aclError fail(aclError code, const std::string& where, const std::string& why) {
  t_error = std::string(where) + ": " + why + " [" + pymfn::acl::error_name(code) + " " + std::to_string(code) + "]";
  return code;
}

std::string ptr_str(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

ov::Core& core() {
  // Never destroyed: OpenVINO plugins must not be unloaded during static destruction.
  static ov::Core* c = new ov::Core();
  return *c;
}

// ---------------------------------------------------------------- streams (one worker thread each)
struct Task {
  std::function<aclError(std::string*)> run;
};

struct Stream {
  Context* ctx = nullptr;
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

  void loop() {
    std::unique_lock<std::mutex> lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return stop || (!queue.empty() && !paused); });
      if (queue.empty() && stop) return;
      Task t = std::move(queue.front());
      queue.pop_front();
      busy = true;
      lk.unlock();
      std::string msg;
      aclError rc = t.run(&msg);
      lk.lock();
      busy = false;
      if (rc != ACL_SUCCESS && first_error == ACL_SUCCESS) {
        first_error = rc;
        first_message = msg;
      }
      if (queue.empty()) idle.notify_all();
    }
  }

  void push(Task t) {
    {
      std::lock_guard<std::mutex> lk(mu);
      queue.push_back(std::move(t));
    }
    cv.notify_one();
  }

  // Waits for the queue to drain; returns (and clears) the first error since the last drain.
  aclError drain(std::string* msg) {
    std::unique_lock<std::mutex> lk(mu);
    idle.wait(lk, [&] { return queue.empty() && !busy; });
    aclError rc = first_error;
    *msg = first_message;
    first_error = ACL_SUCCESS;
    first_message.clear();
    return rc;
  }

  void set_paused(bool p) {
    {
      std::lock_guard<std::mutex> lk(mu);
      paused = p;
    }
    cv.notify_one();
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      paused = false;
    }
    cv.notify_one();
    if (worker.joinable()) worker.join();
  }
};

// ---------------------------------------------------------------- memory registry (g_mu held)
enum class Where { kUnknown, kDevice, kPinnedHost };

// Finds the block containing p. Returns kUnknown for unregistered memory; sets *overflow when
// [p, p+len) starts inside a block but runs past its end.
Where locate(const void* p, size_t len, bool* overflow, size_t* room = nullptr) {
  *overflow = false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = g.blocks.upper_bound(addr);
  if (it == g.blocks.begin()) return Where::kUnknown;
  --it;
  if (addr >= it->first + it->second.size) return Where::kUnknown;
  const size_t left = it->first + it->second.size - addr;
  if (room) *room = left;
  if (len > left) *overflow = true;
  return it->second.device ? Where::kDevice : Where::kPinnedHost;
}

const char* where_name(Where w) {
  switch (w) {
    case Where::kDevice: return "device memory (aclrtMalloc)";
    case Where::kPinnedHost: return "pinned host memory (aclrtMallocHost)";
    default: return "host memory not allocated by ACL";
  }
}

aclError need_init(const char* fn) {
  if (!g.initialised) return fail(ACL_ERROR_UNINITIALIZE, fn, "aclInit has not been called");
  return ACL_SUCCESS;
}

Context* new_context(int32_t device, bool is_default) {
  auto* c = new Context();
  c->device = device;
  c->is_default = is_default;
  c->serial = ++g_ctx_serial;
  return c;
}

void set_ctx(Context* c) {
  t_ctx = c;
  t_ctx_serial = c ? c->serial : 0;
}

// Drops this thread's current context if it was destroyed meanwhile (by another thread, aclrtResetDevice
// or aclFinalize), so a stale pointer never passes for a live context.
void validate_ctx() {
  if (!t_ctx) return;
  bool live = g.contexts.count(t_ctx) > 0;
  for (const auto& kv : g.default_ctx) live = live || kv.second == t_ctx;
  if (!live || t_ctx->serial != t_ctx_serial) set_ctx(nullptr);
}

aclError need_ctx(const char* fn) {
  validate_ctx();
  if (!t_ctx)
    return fail(ACL_ERROR_RT_CONTEXT_NULL, fn,
                "no current context in this thread (call aclrtSetDevice or aclrtSetCurrentContext first)");
  return ACL_SUCCESS;
}

#define EMU_CHECK(expr)              \
  do {                               \
    aclError _rc = (expr);           \
    if (_rc != ACL_SUCCESS) return _rc; \
  } while (0)

size_t dtype_size(aclDataType t) {
  switch (t) {
    case ACL_FLOAT: case ACL_INT32: case ACL_UINT32: return 4;
    case ACL_FLOAT16: case ACL_INT16: case ACL_UINT16: return 2;
    case ACL_INT8: case ACL_UINT8: case ACL_BOOL: return 1;
    case ACL_INT64: case ACL_UINT64: case ACL_DOUBLE: return 8;
    default: return 0;
  }
}

aclDataType dtype_of(const std::string& s) {
  if (s == "float32") return ACL_FLOAT;
  if (s == "float16") return ACL_FLOAT16;
  if (s == "uint8") return ACL_UINT8;
  if (s == "int32") return ACL_INT32;
  if (s == "int64") return ACL_INT64;
  return ACL_DT_UNDEFINED;
}

ov::element::Type ov_type_of(aclDataType t) {
  switch (t) {
    case ACL_FLOAT: return ov::element::f32;
    case ACL_FLOAT16: return ov::element::f16;
    case ACL_UINT8: return ov::element::u8;
    case ACL_INT32: return ov::element::i32;
    case ACL_INT64: return ov::element::i64;
    default: return ov::element::dynamic;
  }
}

aclFormat format_of(const std::string& s) {
  if (s == "NHWC") return ACL_FORMAT_NHWC;
  if (s == "NCHW") return ACL_FORMAT_NCHW;
  return ACL_FORMAT_ND;
}

// Element conversion between the om's dtype and the IR's (only the pairs the emulator supports).
bool convertible(ov::element::Type from, ov::element::Type to) {
  if (from == to) return true;
  const bool f_ok = from == ov::element::f32 || from == ov::element::f16 || from == ov::element::u8;
  const bool t_ok = to == ov::element::f32 || to == ov::element::f16;
  return f_ok && t_ok;
}

float load_elem(const void* p, size_t i, ov::element::Type t) {
  if (t == ov::element::f32) return static_cast<const float*>(p)[i];
  if (t == ov::element::f16) return static_cast<float>(static_cast<const ov::float16*>(p)[i]);
  return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
}

void store_elem(void* p, size_t i, ov::element::Type t, float v) {
  if (t == ov::element::f32)
    static_cast<float*>(p)[i] = v;
  else
    static_cast<ov::float16*>(p)[i] = ov::float16(v);
}

void convert(const void* src, ov::element::Type st, void* dst, ov::element::Type dt, size_t n, bool round16) {
  if (st == dt && !round16) {
    std::memcpy(dst, src, n * st.size());
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    float v = load_elem(src, i, st);
    if (round16) v = static_cast<float>(ov::float16(v));
    store_elem(dst, i, dt, v);
  }
}

// ---------------------------------------------------------------- model loading (no lock held)
aclError build_model(const char* fn, std::vector<uint8_t> image, const std::string& source,
                     std::shared_ptr<Model>* out) {
  auto m = std::make_shared<Model>();
  m->source = source;
  m->image = std::move(image);
  om::EmulatorPayloadView view;
  std::string err;
  int code = 0;
  if (!om::split_emulator_om(m->image.data(), m->image.size(), &view, &err, &code))
    return fail(code == 1 ? ACL_ERROR_INVALID_FILE : ACL_ERROR_PARSE_MODEL, fn, source + ": " + err);
  if (!om::parse_emulator_meta(view.meta_text, &m->meta, &err))
    return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": emulator meta: " + err);
  const auto& meta = m->meta;
  const bool dynamic = !meta.dynamic_batch.empty();
  if (dynamic) m->max_batch = *std::max_element(meta.dynamic_batch.begin(), meta.dynamic_batch.end());

  auto make_io = [&](const om::EmulatorTensor& t, IoInfo* io) -> bool {
    io->name = t.name;
    io->dtype = dtype_of(t.dtype);
    io->format = format_of(t.format);
    io->dims = t.dims;
    size_t row = dtype_size(io->dtype);
    for (size_t i = 1; i < t.dims.size(); ++i) row *= static_cast<size_t>(t.dims[i]);
    const size_t rows = dynamic ? m->max_batch : static_cast<size_t>(t.dims[0]);
    io->row_bytes = row;
    io->size = row * rows;
    return io->size > 0;
  };
  for (const auto& t : meta.inputs) {
    IoInfo io;
    if (!make_io(t, &io)) return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": input '" + t.name + "' has no bytes");
    m->inputs.push_back(io);
  }
  for (const auto& t : meta.outputs) {
    IoInfo io;
    if (!make_io(t, &io)) return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": output '" + t.name + "' has no bytes");
    m->outputs.push_back(io);
  }
  if (dynamic) {
    IoInfo mb;
    mb.name = kMbatchName;
    mb.dtype = ACL_INT64;
    mb.format = ACL_FORMAT_ND;
    mb.dims = {1};
    mb.size = 8;
    mb.row_bytes = 8;
    m->mbatch_index = m->inputs.size();
    m->inputs.push_back(mb);
  }

  try {
    const std::string xml(reinterpret_cast<const char*>(view.xml), view.xml_len);
    ov::Tensor weights(ov::element::u8, ov::Shape{view.weights_len}, const_cast<uint8_t*>(view.weights));
    auto model = core().read_model(xml, weights);
    const size_t n_in = meta.inputs.size(), n_out = meta.outputs.size();
    if (model->inputs().size() != n_in || model->outputs().size() != n_out)
      return fail(ACL_ERROR_PARSE_MODEL, fn,
                  source + ": the IR has " + std::to_string(model->inputs().size()) + " inputs / " +
                      std::to_string(model->outputs().size()) + " outputs but the meta declares " +
                      std::to_string(n_in) + " / " + std::to_string(n_out));
    ov::AnyMap config;
    config[ov::hint::performance_mode.name()] = ov::hint::PerformanceMode::LATENCY;
    if (meta.precision == "f16") {
      m->round_inputs_f16 = true;
      const auto caps = core().get_property("CPU", ov::device::capabilities);
      auto has = [&](const char* c) { return std::find(caps.begin(), caps.end(), c) != caps.end(); };
      if (has("FP16")) {
        config[ov::hint::inference_precision.name()] = ov::element::f16;
        m->ov_precision = "f16";
      } else if (has("BF16")) {
        config[ov::hint::inference_precision.name()] = ov::element::bf16;
        m->ov_precision = "bf16";
      } else {
        config[ov::hint::inference_precision.name()] = ov::element::f32;
        m->ov_precision = "f32 (fp16-rounded inputs, fp16 weights; CPU has no f16/bf16)";
      }
    } else {
      config[ov::hint::inference_precision.name()] = ov::element::f32;
      m->ov_precision = "f32";
    }
    for (size_t i = 0; i < n_in; ++i) {
      const auto t = model->inputs()[i].get_element_type();
      if (!convertible(ov_type_of(m->inputs[i].dtype), t))
        return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": input '" + m->inputs[i].name + "' om dtype cannot feed IR type " +
                                                   t.get_type_name());
      m->ir_in_types.push_back(t);
    }
    for (size_t i = 0; i < n_out; ++i) {
      const auto t = model->outputs()[i].get_element_type();
      if (!convertible(t, ov_type_of(m->outputs[i].dtype)))
        return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": output '" + m->outputs[i].name + "' IR type " +
                                                   t.get_type_name() + " cannot become the om dtype");
      m->ir_out_types.push_back(t);
    }
    m->compiled = core().compile_model(model, "CPU", config);
    m->request = m->compiled.create_infer_request();
    m->scratch.resize(n_in);
  } catch (const std::exception& e) {
    return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": OpenVINO could not read/compile the payload IR: " + e.what());
  }
  *out = std::move(m);
  return ACL_SUCCESS;
}

// Runs `rows` rows through the model. Called with m.exec_mu held, g_mu NOT held.
aclError run_model(Model& m, const std::vector<BufView>& in, const std::vector<BufView>& out, uint64_t rows,
                   std::string* msg) {
  try {
    size_t ir_i = 0;
    for (size_t i = 0; i < m.inputs.size(); ++i) {
      if (i == m.mbatch_index) continue;
      const IoInfo& io = m.inputs[i];
      ov::Shape shape;
      shape.push_back(rows);
      for (size_t d = 1; d < io.dims.size(); ++d) shape.push_back(static_cast<size_t>(io.dims[d]));
      const auto om_t = ov_type_of(io.dtype);
      const auto ir_t = m.ir_in_types[ir_i];
      const size_t n = ov::shape_size(shape);
      const bool round16 = m.round_inputs_f16 && om_t == ov::element::f32;
      ov::Tensor t;
      if (om_t == ir_t && !round16) {
        t = ov::Tensor(ir_t, shape, in[i].data);
      } else {
        auto& s = m.scratch[ir_i];
        s.resize(n * ir_t.size());
        convert(in[i].data, om_t, s.data(), ir_t, n, round16);
        t = ov::Tensor(ir_t, shape, s.data());
      }
      m.request.set_input_tensor(ir_i, t);
      ++ir_i;
    }
    m.request.infer();
    for (size_t j = 0; j < m.outputs.size(); ++j) {
      const IoInfo& io = m.outputs[j];
      ov::Tensor t = m.request.get_output_tensor(j);
      const size_t per_row = io.row_bytes / dtype_size(io.dtype);
      if (t.get_size() != rows * per_row) {
        *msg = "output '" + io.name + "' has " + std::to_string(t.get_size()) + " elements, expected " +
               std::to_string(rows * per_row) + " (" + std::to_string(rows) + " rows)";
        return ACL_ERROR_GE_FAILURE;
      }
      convert(t.data(), t.get_element_type(), out[j].data, ov_type_of(io.dtype), t.get_size(), false);
    }
  } catch (const std::exception& e) {
    *msg = std::string("OpenVINO inference failed: ") + e.what();
    return ACL_ERROR_GE_FAILURE;
  }
  return ACL_SUCCESS;
}

// Validates an execute request (g_mu held). Fills views and the batch to run.
aclError check_execute(const char* fn, Model& m, const aclmdlDataset* input, const aclmdlDataset* output,
                       std::vector<BufView>* in, std::vector<BufView>* out, uint64_t* rows) {
  auto* ids = const_cast<aclmdlDataset*>(input);
  auto* ods = const_cast<aclmdlDataset*>(output);
  if (!input || !g.datasets.count(ids)) return fail(ACL_ERROR_INVALID_PARAM, fn, "input dataset is not a live aclmdlDataset");
  if (!output || !g.datasets.count(ods)) return fail(ACL_ERROR_INVALID_PARAM, fn, "output dataset is not a live aclmdlDataset");
  auto check_side = [&](const char* side, aclmdlDataset* ds, const std::vector<IoInfo>& ios,
                        std::vector<BufView>* views) -> aclError {
    if (ds->buffers.size() != ios.size())
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  std::string(side) + " dataset has " + std::to_string(ds->buffers.size()) + " buffers, model " +
                      std::to_string(m.id) + " has " + std::to_string(ios.size()) + " " + side + "s");
    for (size_t i = 0; i < ios.size(); ++i) {
      aclDataBuffer* b = ds->buffers[i];
      const std::string what = std::string(side) + " " + std::to_string(i) + " ('" + ios[i].name + "')";
      if (!g.buffers.count(b)) return fail(ACL_ERROR_INVALID_PARAM, fn, what + ": data buffer was destroyed");
      if (!b->data) return fail(ACL_ERROR_INVALID_PARAM, fn, what + ": data buffer has a NULL address");
      if (b->size != ios[i].size)
        return fail(ACL_ERROR_INVALID_PARAM, fn,
                    what + ": buffer is " + std::to_string(b->size) + " bytes, the model needs exactly " +
                        std::to_string(ios[i].size) + " (aclmdlGetInputSizeByIndex/OutputSizeByIndex)");
      bool overflow = false;
      const Where w = locate(b->data, b->size, &overflow);
      const bool ok = g.run_mode == ACL_HOST ? w == Where::kDevice : w != Where::kUnknown;
      if (!ok)
        return fail(ACL_ERROR_RT_FAILURE, fn,
                    what + " at " + ptr_str(b->data) + " is " + where_name(w) + "; in " +
                        (g.run_mode == ACL_HOST ? "ACL_HOST run mode the model executes from device memory: "
                                                  "aclrtMalloc a buffer and aclrtMemcpy HOST_TO_DEVICE into it"
                                                : "ACL_DEVICE run mode buffers must come from aclrtMalloc/aclrtMallocHost"));
      if (overflow) return fail(ACL_ERROR_INVALID_PARAM, fn, what + ": buffer runs past the end of its allocation");
      views->push_back({b->data, b->size});
    }
    return ACL_SUCCESS;
  };
  EMU_CHECK(check_side("input", ids, m.inputs, in));
  EMU_CHECK(check_side("output", ods, m.outputs, out));
  if (m.mbatch_index != kNone) {
    uint64_t b = 0;
    std::memcpy(&b, (*in)[m.mbatch_index].data, 8);
    if (std::find(m.meta.dynamic_batch.begin(), m.meta.dynamic_batch.end(), b) == m.meta.dynamic_batch.end())
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  "dynamic-batch input holds " + std::to_string(b) +
                      ", not one of the offered sizes: call aclmdlSetDynamicBatchSize before executing");
    *rows = b;
  } else {
    *rows = m.inputs.empty() ? 1 : static_cast<uint64_t>(m.inputs[0].dims[0]);
  }
  return ACL_SUCCESS;
}

aclError find_model(const char* fn, uint32_t id, std::shared_ptr<Model>* m) {
  auto it = g.models.find(id);
  if (it == g.models.end()) return fail(ACL_ERROR_INVALID_MODEL_ID, fn, "no loaded model has id " + std::to_string(id));
  *m = it->second;
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- leak accounting (g_mu held)
pymfnEmuCounts counts_locked() {
  pymfnEmuCounts c{};
  for (const auto& kv : g.blocks) {
    if (kv.second.device) {
      ++c.device_allocs;
      c.device_bytes += kv.second.size;
    } else {
      ++c.host_allocs;
      c.host_bytes += kv.second.size;
    }
  }
  c.datasets = g.datasets.size();
  c.data_buffers = g.buffers.size();
  c.descs = g.descs.size();
  c.models = g.models.size();
  c.contexts = g.contexts.size();
  c.streams = g.streams.size();
  c.executes = g.executes;
  return c;
}

uint64_t leak_total(const pymfnEmuCounts& c) {
  return c.device_allocs + c.host_allocs + c.datasets + c.data_buffers + c.descs + c.models + c.contexts + c.streams;
}

std::string report_locked() {
  const auto c = counts_locked();
  std::ostringstream os;
  auto line = [&](uint64_t n, const std::string& what) {
    if (n) os << "  " << n << " " << what << "\n";
  };
  line(c.device_allocs, "device allocation(s) (aclrtMalloc, " + std::to_string(c.device_bytes) + " bytes) not aclrtFree'd");
  line(c.host_allocs, "pinned host allocation(s) (aclrtMallocHost, " + std::to_string(c.host_bytes) +
                          " bytes) not aclrtFreeHost'd");
  line(c.datasets, "dataset(s) not aclmdlDestroyDataset'd");
  line(c.data_buffers, "data buffer(s) not aclDestroyDataBuffer'd");
  line(c.descs, "model description(s) not aclmdlDestroyDesc'd");
  line(c.models, "model(s) not aclmdlUnload'ed");
  line(c.contexts, "context(s) not aclrtDestroyContext'ed");
  line(c.streams, "stream(s) not aclrtDestroyStream'ed");
  for (const auto& kv : g.device_refs)
    if (kv.second > 0) os << "  device " << kv.first << " set " << kv.second << " time(s) without aclrtResetDevice (not counted as a leak)\n";
  std::string body = os.str();
  if (leak_total(c) == 0) return body.empty() ? std::string() : "pymfn ACL emulator: at aclFinalize:\n" + body;
  return "pymfn ACL emulator: aclFinalize found outstanding resources:\n" + body;
}

aclError parse_env(aclrtRunMode* mode, uint32_t* devices) {
  const char* rm = std::getenv("PYMFN_ACL_EMU_RUN_MODE");
  *mode = ACL_HOST;
  if (rm && *rm) {
    const std::string s(rm);
    if (s == "host") *mode = ACL_HOST;
    else if (s == "device") *mode = ACL_DEVICE;
    else return fail(ACL_ERROR_INVALID_PARAM, "aclInit", "PYMFN_ACL_EMU_RUN_MODE='" + s + "': expected 'host' or 'device'");
  }
  const char* dv = std::getenv("PYMFN_ACL_EMU_DEVICES");
  *devices = 1;
  if (dv && *dv) {
    char* end = nullptr;
    const long n = std::strtol(dv, &end, 10);
    if (*end != '\0' || n < 1 || n > 64)
      return fail(ACL_ERROR_INVALID_PARAM, "aclInit", std::string("PYMFN_ACL_EMU_DEVICES='") + dv + "': expected 1..64");
    *devices = static_cast<uint32_t>(n);
  }
  return ACL_SUCCESS;
}

aclError read_file(const char* fn, const char* path, std::vector<uint8_t>* out) {
  if (!path) return fail(ACL_ERROR_INVALID_PARAM, fn, "model path is NULL");
  struct stat st {};
  if (::stat(path, &st) != 0)
    return fail(ACL_ERROR_READ_MODEL_FAILURE, fn, std::string(path) + ": cannot open (" + std::strerror(errno) + ")");
  if (!S_ISREG(st.st_mode)) return fail(ACL_ERROR_READ_MODEL_FAILURE, fn, std::string(path) + ": not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f) return fail(ACL_ERROR_READ_MODEL_FAILURE, fn, std::string(path) + ": cannot open (" + std::strerror(errno) + ")");
  try {
    out->resize(static_cast<size_t>(st.st_size));
  } catch (const std::bad_alloc&) {
    return fail(ACL_ERROR_BAD_ALLOC, fn, std::string(path) + ": cannot hold " + std::to_string(st.st_size) + " bytes");
  }
  if (st.st_size > 0 && !f.read(reinterpret_cast<char*>(out->data()), st.st_size))
    return fail(ACL_ERROR_READ_MODEL_FAILURE, fn, std::string(path) + ": read failed");
  return ACL_SUCCESS;
}

// Registers a built model under the caller's context (g_mu held).
uint32_t register_model(std::shared_ptr<Model> m) {
  m->ctx = t_ctx;
  m->id = g.next_model_id++;
  g.models[m->id] = m;
  return m->id;
}

aclError load_image(const char* fn, std::vector<uint8_t> image, const std::string& source, uint32_t* id) {
  if (!id) return fail(ACL_ERROR_INVALID_PARAM, fn, "modelId is NULL");
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(need_ctx(fn));
  }
  std::shared_ptr<Model> m;
  EMU_CHECK(build_model(fn, std::move(image), source, &m));  // compile outside the registry lock
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  EMU_CHECK(need_ctx(fn));  // the context may have gone while the model compiled
  *id = register_model(std::move(m));
  return ACL_SUCCESS;
}

const IoInfo* desc_io(const aclmdlDesc* d, bool input, size_t index) {
  if (!d || !d->filled) return nullptr;
  const auto& v = input ? d->inputs : d->outputs;
  return index < v.size() ? &v[index] : nullptr;
}

aclError fill_dims(const char* fn, const aclmdlDesc* d, bool input, size_t index, aclmdlIODims* dims,
                   int64_t batch_override) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!dims) return fail(ACL_ERROR_INVALID_PARAM, fn, "dims is NULL");
  if (!d || !g.descs.count(const_cast<aclmdlDesc*>(d))) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclmdlDesc");
  const IoInfo* io = desc_io(d, input, index);
  if (!io)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                std::string(d->filled ? "index " + std::to_string(index) + " out of range" : "desc not filled by aclmdlGetDesc"));
  std::memset(dims, 0, sizeof(*dims));
  std::snprintf(dims->name, sizeof dims->name, "%s", io->name.c_str());
  dims->dimCount = io->dims.size();
  for (size_t i = 0; i < io->dims.size(); ++i) dims->dims[i] = io->dims[i];
  if (batch_override > 0 && !io->dims.empty() && io->dims[0] == -1) dims->dims[0] = batch_override;
  return ACL_SUCCESS;
}

}  // namespace

// ================================================================ the C API
extern "C" {

aclError aclInit(const char* configPath) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (g.initialised) return fail(ACL_ERROR_REPEAT_INITIALIZE, "aclInit", "already initialised (aclInit called twice)");
  if (configPath && *configPath) {
    std::ifstream f(configPath);
    if (!f) return fail(ACL_ERROR_INVALID_FILE, "aclInit", std::string("config file '") + configPath + "' cannot be read");
  }
  aclrtRunMode mode;
  uint32_t devices;
  EMU_CHECK(parse_env(&mode, &devices));
  g = State();
  g.initialised = true;
  g.run_mode = mode;
  g.devices = devices;
  set_ctx(nullptr);
  return ACL_SUCCESS;
}

aclError aclFinalize(void) {
  std::vector<Stream*> streams;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclFinalize"));
    streams.assign(g.streams.begin(), g.streams.end());
  }
  for (Stream* s : streams) s->shutdown();  // finish queued work before anything is freed
  std::lock_guard<std::mutex> lk(g_mu);
  g_final_counts = counts_locked();
  g_final_leaks = leak_total(g_final_counts);
  g_final_report = report_locked();
  if (!g_final_report.empty()) std::fprintf(stderr, "%s", g_final_report.c_str());
  for (const auto& kv : g.blocks) std::free(reinterpret_cast<void*>(kv.first));
  for (auto* b : g.buffers) delete b;
  for (auto* d : g.datasets) delete d;
  for (auto* d : g.descs) delete d;
  for (auto* c : g.contexts) delete c;
  for (auto& kv : g.default_ctx) delete kv.second;
  for (auto* s : g.streams) delete s;
  g = State();
  set_ctx(nullptr);
  return ACL_SUCCESS;
}

const char* aclGetRecentErrMsg(void) {
  t_error_returned = t_error;
  t_error.clear();
  return t_error_returned.c_str();
}

// ---------------------------------------------------------------- devices and contexts
aclError aclrtSetDevice(int32_t deviceId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtSetDevice"));
  if (deviceId < 0 || static_cast<uint32_t>(deviceId) >= g.devices)
    return fail(ACL_ERROR_INVALID_DEVICE, "aclrtSetDevice",
                "device " + std::to_string(deviceId) + " does not exist (" + std::to_string(g.devices) +
                    " device(s); PYMFN_ACL_EMU_DEVICES sets the count)");
  Context*& def = g.default_ctx[deviceId];
  if (!def) def = new_context(deviceId, true);
  ++g.device_refs[deviceId];
  set_ctx(def);
  return ACL_SUCCESS;
}

aclError aclrtResetDevice(int32_t deviceId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtResetDevice"));
  if (deviceId < 0 || static_cast<uint32_t>(deviceId) >= g.devices)
    return fail(ACL_ERROR_INVALID_DEVICE, "aclrtResetDevice", "device " + std::to_string(deviceId) + " does not exist");
  auto it = g.device_refs.find(deviceId);
  if (it == g.device_refs.end() || it->second <= 0)
    return fail(ACL_ERROR_INVALID_PARAM, "aclrtResetDevice", "device " + std::to_string(deviceId) + " was not set");
  if (--it->second == 0) {
    Context* def = g.default_ctx[deviceId];
    for (auto& kv : g.models)
      if (kv.second->ctx == def) kv.second->ctx = nullptr;  // model outlives its context: execute will fail
    for (auto* s : g.streams)
      if (s->ctx == def) s->ctx = nullptr;
    if (t_ctx == def) set_ctx(nullptr);
    delete def;
    g.default_ctx.erase(deviceId);
  }
  return ACL_SUCCESS;
}

aclError aclrtGetDeviceCount(uint32_t* count) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtGetDeviceCount"));
  if (!count) return fail(ACL_ERROR_INVALID_PARAM, "aclrtGetDeviceCount", "count is NULL");
  *count = g.devices;
  return ACL_SUCCESS;
}

aclError aclrtGetRunMode(aclrtRunMode* runMode) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtGetRunMode"));
  if (!runMode) return fail(ACL_ERROR_INVALID_PARAM, "aclrtGetRunMode", "runMode is NULL");
  *runMode = g.run_mode;
  return ACL_SUCCESS;
}

aclError aclrtCreateContext(aclrtContext* context, int32_t deviceId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtCreateContext"));
  if (!context) return fail(ACL_ERROR_INVALID_PARAM, "aclrtCreateContext", "context is NULL");
  if (deviceId < 0 || static_cast<uint32_t>(deviceId) >= g.devices)
    return fail(ACL_ERROR_INVALID_DEVICE, "aclrtCreateContext", "device " + std::to_string(deviceId) + " does not exist");
  auto* c = new_context(deviceId, false);
  g.contexts.insert(c);
  set_ctx(c);  // like the real runtime, a new context becomes the thread's current one
  *context = c;
  return ACL_SUCCESS;
}

aclError aclrtDestroyContext(aclrtContext context) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtDestroyContext"));
  auto* c = static_cast<Context*>(context);
  if (!g.contexts.count(c)) return fail(ACL_ERROR_INVALID_PARAM, "aclrtDestroyContext", "not a context created by aclrtCreateContext");
  for (auto& kv : g.models)
    if (kv.second->ctx == c) kv.second->ctx = nullptr;
  for (auto* s : g.streams)
    if (s->ctx == c) s->ctx = nullptr;
  g.contexts.erase(c);
  if (t_ctx == c) set_ctx(nullptr);
  delete c;
  return ACL_SUCCESS;
}

aclError aclrtSetCurrentContext(aclrtContext context) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtSetCurrentContext"));
  auto* c = static_cast<Context*>(context);
  bool known = g.contexts.count(c) > 0;
  for (auto& kv : g.default_ctx) known = known || kv.second == c;
  if (!known) return fail(ACL_ERROR_INVALID_PARAM, "aclrtSetCurrentContext", "not a live context");
  set_ctx(c);
  return ACL_SUCCESS;
}

aclError aclrtGetCurrentContext(aclrtContext* context) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtGetCurrentContext"));
  if (!context) return fail(ACL_ERROR_INVALID_PARAM, "aclrtGetCurrentContext", "context is NULL");
  EMU_CHECK(need_ctx("aclrtGetCurrentContext"));
  *context = t_ctx;
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- streams
aclError aclrtCreateStream(aclrtStream* stream) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtCreateStream"));
  if (!stream) return fail(ACL_ERROR_INVALID_PARAM, "aclrtCreateStream", "stream is NULL");
  EMU_CHECK(need_ctx("aclrtCreateStream"));
  auto* s = new Stream();
  s->ctx = t_ctx;
  try {
    s->worker = std::thread([s] { s->loop(); });
  } catch (const std::system_error& e) {
    delete s;
    return fail(ACL_ERROR_RT_FAILURE, "aclrtCreateStream", std::string("cannot start the stream's worker thread: ") + e.what());
  }
  g.streams.insert(s);
  *stream = s;
  return ACL_SUCCESS;
}

aclError aclrtSynchronizeStream(aclrtStream stream) {
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclrtSynchronizeStream"));
    if (!g.streams.count(s)) return fail(ACL_ERROR_INVALID_PARAM, "aclrtSynchronizeStream", "not a live stream");
  }
  std::string msg;
  const aclError rc = s->drain(&msg);
  if (rc != ACL_SUCCESS) return fail(rc, "aclrtSynchronizeStream", "queued work failed: " + msg);
  return ACL_SUCCESS;
}

aclError aclrtDestroyStream(aclrtStream stream) {
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclrtDestroyStream"));
    if (!g.streams.count(s)) return fail(ACL_ERROR_INVALID_PARAM, "aclrtDestroyStream", "not a live stream");
    g.streams.erase(s);
  }
  s->shutdown();
  delete s;
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- memory
static aclError emu_alloc(const char* fn, void** ptr, size_t size, bool device) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!ptr) return fail(ACL_ERROR_INVALID_PARAM, fn, "pointer argument is NULL");
  if (size == 0) return fail(ACL_ERROR_INVALID_PARAM, fn, "size is 0");
  EMU_CHECK(need_ctx(fn));
  const size_t rounded = (size + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) return fail(ACL_ERROR_BAD_ALLOC, fn, "cannot allocate " + std::to_string(size) + " bytes");
  // Device memory is never zeroed: 0xA5 makes reads of unwritten device memory visible. Pinned host
  // memory comes from fresh pages (zeros).
  std::memset(p, device ? 0xA5 : 0, rounded);
  g.blocks[reinterpret_cast<uintptr_t>(p)] = Block{size, device};
  *ptr = p;
  return ACL_SUCCESS;
}

static aclError emu_free(const char* fn, void* ptr, bool device) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  auto it = g.blocks.find(reinterpret_cast<uintptr_t>(ptr));
  if (!ptr || it == g.blocks.end() || it->second.device != device) {
    bool overflow = false;
    const Where w = ptr ? locate(ptr, 1, &overflow) : Where::kUnknown;
    std::string why = ptr ? std::string("pointer ") + ptr_str(ptr) + " is " + where_name(w) : "pointer is NULL";
    if (it == g.blocks.end() && w != Where::kUnknown) why += " but not the start of a block";
    why += device ? "; aclrtFree only frees pointers returned by aclrtMalloc"
                  : "; aclrtFreeHost only frees pointers returned by aclrtMallocHost";
    return fail(ACL_ERROR_INVALID_PARAM, fn, why);
  }
  g.blocks.erase(it);
  std::free(ptr);
  return ACL_SUCCESS;
}

aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (policy != ACL_MEM_MALLOC_HUGE_FIRST && policy != ACL_MEM_MALLOC_HUGE_ONLY && policy != ACL_MEM_MALLOC_NORMAL_ONLY)
    return fail(ACL_ERROR_INVALID_PARAM, "aclrtMalloc", "unknown malloc policy " + std::to_string(static_cast<int>(policy)));
  return emu_alloc("aclrtMalloc", devPtr, size, true);
}
aclError aclrtFree(void* devPtr) { return emu_free("aclrtFree", devPtr, true); }
aclError aclrtMallocHost(void** hostPtr, size_t size) { return emu_alloc("aclrtMallocHost", hostPtr, size, false); }
aclError aclrtFreeHost(void* hostPtr) { return emu_free("aclrtFreeHost", hostPtr, false); }

// Validates a copy (g_mu held).
static aclError check_copy(const char* fn, void* dst, size_t destMax, const void* src, size_t count,
                           aclrtMemcpyKind kind) {
  EMU_CHECK(need_init(fn));
  EMU_CHECK(need_ctx(fn));
  if (!dst || !src) return fail(ACL_ERROR_INVALID_PARAM, fn, "dst or src is NULL");
  if (kind < ACL_MEMCPY_HOST_TO_HOST || kind > ACL_MEMCPY_DEVICE_TO_DEVICE)
    return fail(ACL_ERROR_INVALID_PARAM, fn, "unknown memcpy kind " + std::to_string(static_cast<int>(kind)));
  if (count > destMax)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "count " + std::to_string(count) + " exceeds destMax " + std::to_string(destMax));
  bool dov = false, sov = false;
  size_t droom = 0, sroom = 0;
  const Where dw = locate(dst, destMax, &dov, &droom);
  const Where sw = locate(src, count, &sov, &sroom);
  if (dov)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "destMax " + std::to_string(destMax) + " runs past the end of the destination block (" +
                    std::to_string(droom) + " bytes left)");
  if (sov)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "count " + std::to_string(count) + " runs past the end of the source block (" + std::to_string(sroom) +
                    " bytes left)");
  if (g.run_mode == ACL_HOST) {
    const bool want_src_dev = kind == ACL_MEMCPY_DEVICE_TO_HOST || kind == ACL_MEMCPY_DEVICE_TO_DEVICE;
    const bool want_dst_dev = kind == ACL_MEMCPY_HOST_TO_DEVICE || kind == ACL_MEMCPY_DEVICE_TO_DEVICE;
    static const char* kinds[] = {"HOST_TO_HOST", "HOST_TO_DEVICE", "DEVICE_TO_HOST", "DEVICE_TO_DEVICE"};
    if ((sw == Where::kDevice) != want_src_dev)
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  std::string("kind ACL_MEMCPY_") + kinds[kind] + " but the source " + ptr_str(src) + " is " +
                      where_name(sw));
    if ((dw == Where::kDevice) != want_dst_dev)
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  std::string("kind ACL_MEMCPY_") + kinds[kind] + " but the destination " + ptr_str(dst) + " is " +
                      where_name(dw));
  }
  return ACL_SUCCESS;
}

aclError aclrtMemcpy(void* dst, size_t destMax, const void* src, size_t count, aclrtMemcpyKind kind) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(check_copy("aclrtMemcpy", dst, destMax, src, count, kind));
  }
  if (count) std::memmove(dst, src, count);
  return ACL_SUCCESS;
}

aclError aclrtMemcpyAsync(void* dst, size_t destMax, const void* src, size_t count, aclrtMemcpyKind kind,
                          aclrtStream stream) {
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(check_copy("aclrtMemcpyAsync", dst, destMax, src, count, kind));
    if (!g.streams.count(s)) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemcpyAsync", "not a live stream");
    if (s->ctx != t_ctx) return fail(ACL_ERROR_RT_STREAM_CONTEXT, "aclrtMemcpyAsync", "stream belongs to another context");
  }
  s->push(Task{[dst, src, count](std::string*) {
    if (count) std::memmove(dst, src, count);
    return ACL_SUCCESS;
  }});
  return ACL_SUCCESS;
}

aclError aclrtMemset(void* devPtr, size_t maxCount, int32_t value, size_t count) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclrtMemset"));
    EMU_CHECK(need_ctx("aclrtMemset"));
    if (!devPtr) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", "devPtr is NULL");
    if (count > maxCount)
      return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", "count " + std::to_string(count) + " exceeds maxCount " + std::to_string(maxCount));
    bool ov = false;
    const Where w = locate(devPtr, maxCount, &ov);
    if (w == Where::kUnknown || (g.run_mode == ACL_HOST && w != Where::kDevice))
      return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", std::string("devPtr is ") + where_name(w) + ", not device memory");
    if (ov) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", "maxCount runs past the end of the block");
  }
  std::memset(devPtr, value, count);
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- model load / unload
aclError aclmdlLoadFromFile(const char* modelPath, uint32_t* modelId) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclmdlLoadFromFile"));
  }
  std::vector<uint8_t> image;
  EMU_CHECK(read_file("aclmdlLoadFromFile", modelPath, &image));
  return load_image("aclmdlLoadFromFile", std::move(image), modelPath, modelId);
}

aclError aclmdlLoadFromMem(const void* model, size_t modelSize, uint32_t* modelId) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclmdlLoadFromMem"));
  }
  if (!model) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlLoadFromMem", "model pointer is NULL");
  const auto* p = static_cast<const uint8_t*>(model);
  std::vector<uint8_t> image;
  try {
    image.assign(p, p + modelSize);
  } catch (const std::bad_alloc&) {
    return fail(ACL_ERROR_BAD_ALLOC, "aclmdlLoadFromMem", "cannot copy " + std::to_string(modelSize) + " bytes");
  }
  return load_image("aclmdlLoadFromMem", std::move(image), "<memory>", modelId);
}

aclError aclmdlQuerySize(const char* fileName, size_t* workSize, size_t* weightSize) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclmdlQuerySize"));
  }
  if (!workSize || !weightSize) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlQuerySize", "output pointer is NULL");
  std::vector<uint8_t> image;
  EMU_CHECK(read_file("aclmdlQuerySize", fileName, &image));
  om::EmulatorPayloadView v;
  std::string err;
  int code = 0;
  if (!om::split_emulator_om(image.data(), image.size(), &v, &err, &code))
    return fail(code == 1 ? ACL_ERROR_INVALID_FILE : ACL_ERROR_PARSE_MODEL, "aclmdlQuerySize", std::string(fileName) + ": " + err);
  // The emulator keeps its working memory on the host; report the payload sizes so callers can allocate.
  *weightSize = v.weights_len;
  *workSize = v.xml_len + v.meta_text.size();
  return ACL_SUCCESS;
}

aclError aclmdlLoadFromFileWithMem(const char* modelPath, uint32_t* modelId, void* workPtr, size_t workSize,
                                   void* weightPtr, size_t weightSize) {
  size_t need_work = 0, need_weight = 0;
  EMU_CHECK(aclmdlQuerySize(modelPath, &need_work, &need_weight));
  {
    std::lock_guard<std::mutex> lk(g_mu);
    const char* fn = "aclmdlLoadFromFileWithMem";
    bool ov = false;
    if (workPtr && (workSize < need_work || locate(workPtr, workSize, &ov) != Where::kDevice || ov))
      return fail(ACL_ERROR_INVALID_PARAM, fn, "workPtr must be device memory of at least " + std::to_string(need_work) + " bytes");
    if (weightPtr && (weightSize < need_weight || locate(weightPtr, weightSize, &ov) != Where::kDevice || ov))
      return fail(ACL_ERROR_INVALID_PARAM, fn, "weightPtr must be device memory of at least " + std::to_string(need_weight) + " bytes");
  }
  return aclmdlLoadFromFile(modelPath, modelId);
}

aclError aclmdlUnload(uint32_t modelId) {
  std::shared_ptr<Model> m;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclmdlUnload"));
    EMU_CHECK(find_model("aclmdlUnload", modelId, &m));
    EMU_CHECK(need_ctx("aclmdlUnload"));
    if (m->ctx != t_ctx)
      return fail(ACL_ERROR_RT_MODEL_CONTEXT, "aclmdlUnload", "model " + std::to_string(modelId) + " was loaded in another context");
    if (m->active || m->pending)
      return fail(ACL_ERROR_FAILURE, "aclmdlUnload",
                  "model " + std::to_string(modelId) + " is executing or has queued async work (synchronize the stream first)");
    g.models.erase(modelId);
  }
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- model description
aclmdlDesc* aclmdlCreateDesc(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclmdlCreateDesc") != ACL_SUCCESS) return nullptr;
  auto* d = new aclmdlDesc();
  g.descs.insert(d);
  return d;
}

aclError aclmdlDestroyDesc(aclmdlDesc* modelDesc) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclmdlDestroyDesc"));
  if (!g.descs.erase(modelDesc)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlDestroyDesc", "not a live aclmdlDesc");
  delete modelDesc;
  return ACL_SUCCESS;
}

aclError aclmdlGetDesc(aclmdlDesc* modelDesc, uint32_t modelId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclmdlGetDesc"));
  if (!g.descs.count(modelDesc)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetDesc", "not a live aclmdlDesc");
  std::shared_ptr<Model> m;
  EMU_CHECK(find_model("aclmdlGetDesc", modelId, &m));
  modelDesc->filled = true;
  modelDesc->model_id = modelId;
  modelDesc->inputs = m->inputs;
  modelDesc->outputs = m->outputs;
  modelDesc->batches = m->meta.dynamic_batch;
  return ACL_SUCCESS;
}

#define EMU_DESC_GETTER(expr_on_fail, fn)                                            \
  std::lock_guard<std::mutex> lk(g_mu);                                              \
  if (need_init(fn) != ACL_SUCCESS) return expr_on_fail;                             \
  if (!modelDesc || !g.descs.count(const_cast<aclmdlDesc*>(modelDesc))) {           \
    fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclmdlDesc");                     \
    return expr_on_fail;                                                            \
  }

size_t aclmdlGetNumInputs(aclmdlDesc* modelDesc) {
  EMU_DESC_GETTER(0, "aclmdlGetNumInputs");
  return modelDesc->inputs.size();
}

size_t aclmdlGetNumOutputs(aclmdlDesc* modelDesc) {
  EMU_DESC_GETTER(0, "aclmdlGetNumOutputs");
  return modelDesc->outputs.size();
}

size_t aclmdlGetInputSizeByIndex(aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER(0, "aclmdlGetInputSizeByIndex");
  const IoInfo* io = desc_io(modelDesc, true, index);
  if (!io) fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetInputSizeByIndex", "index " + std::to_string(index) + " out of range");
  return io ? io->size : 0;
}

size_t aclmdlGetOutputSizeByIndex(aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER(0, "aclmdlGetOutputSizeByIndex");
  const IoInfo* io = desc_io(modelDesc, false, index);
  if (!io) fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetOutputSizeByIndex", "index " + std::to_string(index) + " out of range");
  return io ? io->size : 0;
}

aclError aclmdlGetInputDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims) {
  return fill_dims("aclmdlGetInputDims", modelDesc, true, index, dims, 0);
}

aclError aclmdlGetOutputDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims) {
  return fill_dims("aclmdlGetOutputDims", modelDesc, false, index, dims, 0);
}

aclError aclmdlGetCurOutputDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims) {
  int64_t batch = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (modelDesc && g.descs.count(const_cast<aclmdlDesc*>(modelDesc)) && modelDesc->filled) {
      auto it = g.models.find(modelDesc->model_id);
      if (it != g.models.end()) batch = static_cast<int64_t>(it->second->last_batch);
      if (batch == 0 && !modelDesc->batches.empty())
        batch = static_cast<int64_t>(*std::max_element(modelDesc->batches.begin(), modelDesc->batches.end()));
    }
  }
  return fill_dims("aclmdlGetCurOutputDims", modelDesc, false, index, dims, batch);
}

const char* aclmdlGetInputNameByIndex(const aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER("", "aclmdlGetInputNameByIndex");
  const IoInfo* io = desc_io(modelDesc, true, index);
  if (!io) fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetInputNameByIndex", "index out of range");
  return io ? io->name.c_str() : "";
}

const char* aclmdlGetOutputNameByIndex(const aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER("", "aclmdlGetOutputNameByIndex");
  const IoInfo* io = desc_io(modelDesc, false, index);
  if (!io) fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetOutputNameByIndex", "index out of range");
  return io ? io->name.c_str() : "";
}

aclError aclmdlGetInputIndexByName(const aclmdlDesc* modelDesc, const char* name, size_t* index) {
  EMU_DESC_GETTER(ACL_ERROR_INVALID_PARAM, "aclmdlGetInputIndexByName");
  if (!name || !index) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetInputIndexByName", "name or index is NULL");
  for (size_t i = 0; i < modelDesc->inputs.size(); ++i)
    if (modelDesc->inputs[i].name == name) {
      *index = i;
      return ACL_SUCCESS;
    }
  return fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetInputIndexByName", std::string("no input named '") + name + "'");
}

aclDataType aclmdlGetInputDataType(const aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER(ACL_DT_UNDEFINED, "aclmdlGetInputDataType");
  const IoInfo* io = desc_io(modelDesc, true, index);
  return io ? io->dtype : ACL_DT_UNDEFINED;
}

aclDataType aclmdlGetOutputDataType(const aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER(ACL_DT_UNDEFINED, "aclmdlGetOutputDataType");
  const IoInfo* io = desc_io(modelDesc, false, index);
  return io ? io->dtype : ACL_DT_UNDEFINED;
}

aclFormat aclmdlGetInputFormat(const aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER(ACL_FORMAT_UNDEFINED, "aclmdlGetInputFormat");
  const IoInfo* io = desc_io(modelDesc, true, index);
  return io ? io->format : ACL_FORMAT_UNDEFINED;
}

aclFormat aclmdlGetOutputFormat(const aclmdlDesc* modelDesc, size_t index) {
  EMU_DESC_GETTER(ACL_FORMAT_UNDEFINED, "aclmdlGetOutputFormat");
  const IoInfo* io = desc_io(modelDesc, false, index);
  return io ? io->format : ACL_FORMAT_UNDEFINED;
}

aclError aclmdlGetDynamicBatch(const aclmdlDesc* modelDesc, aclmdlBatch* batch) {
  EMU_DESC_GETTER(ACL_ERROR_INVALID_PARAM, "aclmdlGetDynamicBatch");
  if (!batch) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetDynamicBatch", "batch is NULL");
  std::memset(batch, 0, sizeof(*batch));
  batch->batchCount = modelDesc->batches.size();
  for (size_t i = 0; i < modelDesc->batches.size() && i < ACL_MAX_BATCH_NUM; ++i) batch->batch[i] = modelDesc->batches[i];
  return ACL_SUCCESS;
}

aclError aclmdlSetDynamicBatchSize(uint32_t modelId, aclmdlDataset* dataset, size_t index, uint64_t batchSize) {
  const char* fn = "aclmdlSetDynamicBatchSize";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  std::shared_ptr<Model> m;
  EMU_CHECK(find_model(fn, modelId, &m));
  EMU_CHECK(need_ctx(fn));
  if (m->mbatch_index == kNone)
    return fail(ACL_ERROR_INVALID_PARAM, fn, "model " + std::to_string(modelId) + " was not converted with a dynamic batch list");
  if (index != m->mbatch_index)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "index " + std::to_string(index) + " is not the '" + kMbatchName + "' input (index " +
                    std::to_string(m->mbatch_index) + ")");
  const auto& b = m->meta.dynamic_batch;
  if (std::find(b.begin(), b.end(), batchSize) == b.end()) {
    std::string offered;
    for (auto x : b) offered += (offered.empty() ? "" : ",") + std::to_string(x);
    return fail(ACL_ERROR_INVALID_PARAM, fn, "batch " + std::to_string(batchSize) + " is not one of the offered sizes " + offered);
  }
  if (!dataset || !g.datasets.count(dataset)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclmdlDataset");
  if (index >= dataset->buffers.size() || !g.buffers.count(dataset->buffers[index]))
    return fail(ACL_ERROR_INVALID_PARAM, fn, "the dataset has no buffer at index " + std::to_string(index));
  aclDataBuffer* buf = dataset->buffers[index];
  bool ov = false;
  const Where w = buf->data ? locate(buf->data, 8, &ov) : Where::kUnknown;
  if (buf->size < 8 || !buf->data || ov)
    return fail(ACL_ERROR_INVALID_PARAM, fn, "the dynamic-batch buffer must hold at least 8 bytes");
  if (g.run_mode == ACL_HOST && w != Where::kDevice)
    return fail(ACL_ERROR_INVALID_PARAM, fn, std::string("the dynamic-batch buffer is ") + where_name(w) + ", not device memory");
  const uint64_t v = batchSize;
  std::memcpy(buf->data, &v, 8);
  return ACL_SUCCESS;
}

// ---------------------------------------------------------------- datasets and data buffers
aclmdlDataset* aclmdlCreateDataset(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclmdlCreateDataset") != ACL_SUCCESS) return nullptr;
  auto* d = new aclmdlDataset();
  g.datasets.insert(d);
  return d;
}

aclError aclmdlDestroyDataset(const aclmdlDataset* dataset) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclmdlDestroyDataset"));
  auto* d = const_cast<aclmdlDataset*>(dataset);
  if (!g.datasets.erase(d)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlDestroyDataset", "not a live aclmdlDataset");
  delete d;  // its data buffers stay alive: aclDestroyDataBuffer each of them
  return ACL_SUCCESS;
}

aclError aclmdlAddDatasetBuffer(aclmdlDataset* dataset, aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclmdlAddDatasetBuffer"));
  if (!g.datasets.count(dataset)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlAddDatasetBuffer", "not a live aclmdlDataset");
  if (!g.buffers.count(dataBuffer)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlAddDatasetBuffer", "not a live aclDataBuffer");
  dataset->buffers.push_back(dataBuffer);
  return ACL_SUCCESS;
}

size_t aclmdlGetDatasetNumBuffers(const aclmdlDataset* dataset) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclmdlGetDatasetNumBuffers") != ACL_SUCCESS) return 0;
  if (!g.datasets.count(const_cast<aclmdlDataset*>(dataset))) {
    fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetDatasetNumBuffers", "not a live aclmdlDataset");
    return 0;
  }
  return dataset->buffers.size();
}

aclDataBuffer* aclmdlGetDatasetBuffer(const aclmdlDataset* dataset, size_t index) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclmdlGetDatasetBuffer") != ACL_SUCCESS) return nullptr;
  if (!g.datasets.count(const_cast<aclmdlDataset*>(dataset)) || index >= dataset->buffers.size()) {
    fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetDatasetBuffer", "not a live dataset or index out of range");
    return nullptr;
  }
  return dataset->buffers[index];
}

aclDataBuffer* aclCreateDataBuffer(void* data, size_t size) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclCreateDataBuffer") != ACL_SUCCESS) return nullptr;
  if (!data && size) {
    fail(ACL_ERROR_INVALID_PARAM, "aclCreateDataBuffer", "NULL data with a non-zero size");
    return nullptr;
  }
  auto* b = new aclDataBuffer{data, size};
  g.buffers.insert(b);
  return b;
}

aclError aclDestroyDataBuffer(const aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclDestroyDataBuffer"));
  auto* b = const_cast<aclDataBuffer*>(dataBuffer);
  if (!g.buffers.erase(b)) return fail(ACL_ERROR_INVALID_PARAM, "aclDestroyDataBuffer", "not a live aclDataBuffer");
  delete b;
  return ACL_SUCCESS;
}

aclError aclUpdateDataBuffer(aclDataBuffer* dataBuffer, void* data, size_t size) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclUpdateDataBuffer"));
  if (!g.buffers.count(dataBuffer)) return fail(ACL_ERROR_INVALID_PARAM, "aclUpdateDataBuffer", "not a live aclDataBuffer");
  if (!data && size) return fail(ACL_ERROR_INVALID_PARAM, "aclUpdateDataBuffer", "NULL data with a non-zero size");
  dataBuffer->data = data;
  dataBuffer->size = size;
  return ACL_SUCCESS;
}

void* aclGetDataBufferAddr(const aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclGetDataBufferAddr") != ACL_SUCCESS) return nullptr;
  if (!g.buffers.count(const_cast<aclDataBuffer*>(dataBuffer))) {
    fail(ACL_ERROR_INVALID_PARAM, "aclGetDataBufferAddr", "not a live aclDataBuffer");
    return nullptr;
  }
  return dataBuffer->data;
}

size_t aclGetDataBufferSizeV2(const aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclGetDataBufferSizeV2") != ACL_SUCCESS) return 0;
  if (!g.buffers.count(const_cast<aclDataBuffer*>(dataBuffer))) {
    fail(ACL_ERROR_INVALID_PARAM, "aclGetDataBufferSizeV2", "not a live aclDataBuffer");
    return 0;
  }
  return dataBuffer->size;
}

// ---------------------------------------------------------------- execution
aclError aclmdlExecute(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output) {
  const char* fn = "aclmdlExecute";
  std::shared_ptr<Model> m;
  std::vector<BufView> in, out;
  uint64_t rows = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(find_model(fn, modelId, &m));
    EMU_CHECK(need_ctx(fn));
    if (m->ctx != t_ctx)
      return fail(ACL_ERROR_RT_MODEL_CONTEXT, fn, "model " + std::to_string(modelId) + " was loaded in another context");
    EMU_CHECK(check_execute(fn, *m, input, output, &in, &out, &rows));
    if (m->active || m->pending)
      return fail(ACL_ERROR_FAILURE, fn,
                  "model " + std::to_string(modelId) +
                      " is already executing (another thread, or queued on a stream): one model id must not run "
                      "concurrently; guard set-inputs+execute with a lock");
    m->active = 1;
  }
  std::string msg;
  aclError rc;
  {
    std::lock_guard<std::mutex> ek(m->exec_mu);
    rc = run_model(*m, in, out, rows, &msg);
  }
  std::lock_guard<std::mutex> lk(g_mu);
  m->active = 0;
  if (rc != ACL_SUCCESS) return fail(rc, fn, msg);
  m->last_batch = rows;
  ++g.executes;
  return ACL_SUCCESS;
}

aclError aclmdlExecuteAsync(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output, aclrtStream stream) {
  const char* fn = "aclmdlExecuteAsync";
  std::shared_ptr<Model> m;
  std::vector<BufView> in, out;
  uint64_t rows = 0;
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(find_model(fn, modelId, &m));
    EMU_CHECK(need_ctx(fn));
    if (!g.streams.count(s)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live stream");
    if (s->ctx != t_ctx) return fail(ACL_ERROR_RT_STREAM_CONTEXT, fn, "the stream belongs to another context");
    if (m->ctx != t_ctx)
      return fail(ACL_ERROR_RT_MODEL_CONTEXT, fn, "model " + std::to_string(modelId) + " was loaded in another context");
    EMU_CHECK(check_execute(fn, *m, input, output, &in, &out, &rows));
    if (m->active || (m->pending && m->pending_stream != s))
      return fail(ACL_ERROR_FAILURE, fn,
                  "model " + std::to_string(modelId) +
                      " is already running or queued on another stream: one model id must not run concurrently on "
                      "several streams");
    ++m->pending;
    m->pending_stream = s;
  }
  s->push(Task{[m, in, out, rows](std::string* msg) {
    aclError rc;
    {
      std::lock_guard<std::mutex> ek(m->exec_mu);
      rc = run_model(*m, in, out, rows, msg);
    }
    std::lock_guard<std::mutex> lk(g_mu);
    if (--m->pending == 0) m->pending_stream = nullptr;
    if (rc == ACL_SUCCESS) {
      m->last_batch = rows;
      ++g.executes;
    }
    return rc;
  }});
  return ACL_SUCCESS;
}

// ================================================================ emulator-only queries (emulator_api.h)
int pymfnEmuIsEmulator(void) { return 1; }

const char* pymfnEmuVersion(void) {
  static const std::string v = std::string("pymfn ACL emulator 1 (OpenVINO ") + ov::get_openvino_version().buildNumber + ")";
  return v.c_str();
}

int pymfnEmuGetCounts(pymfnEmuCounts* out) {
  if (!out) return ACL_ERROR_INVALID_PARAM;
  std::lock_guard<std::mutex> lk(g_mu);
  *out = g.initialised ? counts_locked() : g_final_counts;
  return ACL_SUCCESS;
}

size_t pymfnEmuLeakReport(char* buf, size_t len) {
  std::lock_guard<std::mutex> lk(g_mu);
  const std::string r = g.initialised ? report_locked() : g_final_report;
  if (buf && len) {
    const size_t n = std::min(len - 1, r.size());
    std::memcpy(buf, r.data(), n);
    buf[n] = '\0';
  }
  return r.size();
}

int pymfnEmuPauseStream(void* stream, int paused) {
  Stream* s = static_cast<Stream*>(stream);
  {
    std::lock_guard<std::mutex> lk(g_mu);
    if (!g.streams.count(s)) return ACL_ERROR_INVALID_PARAM;
  }
  s->set_paused(paused != 0);
  return ACL_SUCCESS;
}

uint64_t pymfnEmuLeaksAtFinalize(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_final_leaks;
}

}  // extern "C"
