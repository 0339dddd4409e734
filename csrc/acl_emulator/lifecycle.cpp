// libascendcl.so test double: an AscendCL runtime that executes pymfn "emulator om" files on the host
// CPU through OpenVINO, while enforcing the rules a real Ascend 310 runtime would enforce.
//
// ================================================================ CONTRACT (overview; this file: lifecycle)
// Why it exists: no Ascend hardware or CANN is available to us. pymfn's ACL engine (csrc/engines/acl/acl_engine.cpp)
// and any unmodified AscendCL client program can link against or dlopen() this library instead of CANN's
// (headers: pymfn/include/acl, flags: `python -m pymfn acl-config --cflags --libs`) and get REAL outputs
// plus a loud failure wherever real hardware would fail. It is a test double, not a simulator.
//
// The runtime is split by part; each file opens with the rules it enforces:
//   lifecycle.cpp   init/finalize, devices, contexts, version and SoC queries, the leak report
//   memory.cpp      the device / pinned-host memory registry and the copies checked against it
//   models.cpp      om files and payloads, load / query size / unload
//   model_desc.cpp  model descriptions, dynamic batch / image size / dims gears
//   execute.cpp     what an execute checks and computes (sync and async)
//   datasets.cpp    datasets, data buffers, tensor descriptions, element types and fp16 helpers
//   streams.cpp     streams (one worker thread each), events and timing, exception callbacks
//
// Common rules: every call that returns aclError and fails records "<function>: <why> [NAME code]" as the
// calling thread's aclGetRecentErrMsg() (returned once, then cleared; "" when there is none). Calls that
// return a handle, size or value signal failure with NULL / 0 / ACL_DT_UNDEFINED / ACL_FORMAT_UNDEFINED /
// 0xFFFFFFFF and set the message the same way. Pure helpers (aclFloat16ToFloat, aclFloatToFloat16,
// aclDataTypeSize, aclrtGetVersion, aclAppLog) work without aclInit; everything else needs it.
//
// Configuration (read at aclInit):
//   PYMFN_ACL_EMU_RUN_MODE = host (default) | device   what aclrtGetRunMode reports, see memory.cpp
//   PYMFN_ACL_EMU_DEVICES  = 1 (default) .. 64           device count
//   PYMFN_ACL_EMU_DEVICE_THREADS = 0 (default) .. 1024   OpenVINO threads per loaded model; 0 = auto (below)
//   PYMFN_ACL_EMU_EXEC_MS  = 0 (default) .. 60000       device timing model: minimum time of one execute
//   PYMFN_ACL_EMU_EXEC_MS_PER_ROW = 0 (default) .. 60000  ... plus this per executed row (batch size)
//   ASCEND_GLOBAL_LOG_LEVEL = 0..4 (default 3)           aclAppLog prints levels >= this on stderr (4: none)
//
// Lifecycle, devices and contexts (this file):
//   * every call before aclInit (and after aclFinalize) -> 100001; aclInit twice -> 100002; aclInit with a
//     config path that cannot be read -> 100003; bad environment values -> 100000.
//   * device ids: aclrtSetDevice/ResetDevice/CreateContext with id < 0 or >= device count -> 200002;
//     aclrtResetDevice of a device never set -> 100000.
//   * contexts: work that needs a device (memory, streams, events, model load/execute/unload, dynamic
//     gears) needs a current context in the calling thread (aclrtSetDevice, aclrtCreateContext or
//     aclrtSetCurrentContext) -> 107002 otherwise, also when that context has since been destroyed (by
//     another thread, aclrtResetDevice or aclFinalize). aclrtGetDevice reports the current context's device.
//     Destroying a context (or resetting the device of a default one) finishes its default stream's work;
//     models, streams and events bound to it can no longer be used (107002/107003/107004).
//   * aclrtGetSocName -> "Ascend310"; aclrtGetVersion -> ACL_MAJOR/MINOR/PATCH_VERSION of pymfn's acl.h.
//   * Devices and the host (so that several emulated devices behave as separate chips as far as a host
//     can): with more than one device, every model gets max(1, host cores / devices) OpenVINO threads
//     unless PYMFN_ACL_EMU_DEVICE_THREADS says otherwise, so the devices divide the CPU instead of each
//     claiming all of it (one device keeps OpenVINO's default). PYMFN_ACL_EMU_EXEC_MS > 0 turns on the
//     device timing model (execute.cpp): each device runs one execute at a time, each lasting at least
//     that long (plus PYMFN_ACL_EMU_EXEC_MS_PER_ROW per executed row: a batch costs more than one image, as
//     on a chip), the rest slept. Then N devices really do N times the work of one, whatever the host's
//     core count, which is what multi-device tests need; timings are then the model's, not the CPU's.
//     pymfnEmuDeviceModel (emulator_api.h) describes what is in force.
//   * leaks: aclFinalize prints every outstanding allocation, dataset, data buffer, model description,
//     tensor description, model, context, stream and event on stderr, then releases them;
//     pymfnEmuGetCounts / pymfnEmuLeakReport / pymfnEmuLeaksAtFinalize expose the same to tests
//     (emulator_api.h). Devices set without a matching aclrtResetDevice are mentioned, not counted.
//
// What it COMPUTES: the model in the om payload (an OpenVINO IR), on OpenVINO's CPU plugin: see execute.cpp.
//
// What it does NOT model: NPU timing (work runs at CPU speed: events time our host execution), real Ascend
// om files (rejected with 100013), AIPP as a separate stage (`convert --target om-emu --aipp` builds the
// same preprocessing into the IR), dynamic image size and dynamic dims gears (pymfn's converter produces
// dynamic batch only: such queries answer "no gears"), multiple devices' memory being distinct (every
// device shares the host's memory), use after free of memory (a freed block is just unknown memory),
// operators (acl_op.h), DVPP (libacl_dvpp.so is an empty stand-in), profiling and dumps.
// ================================================================
#include <openvino/openvino.hpp>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "acl_emulator/state.h"

namespace pymfn_emu {

std::mutex g_mu;
State g;
std::condition_variable g_event_cv;
thread_local Context* t_ctx = nullptr;

namespace {

pymfnEmuCounts g_final_counts{};
std::string g_final_report;
uint64_t g_final_leaks = 0;

thread_local std::string t_error;
thread_local std::string t_error_returned;
thread_local uint64_t t_ctx_serial = 0;
uint64_t g_ctx_serial = 0;       // survives aclFinalize on purpose
uint32_t g_stream_ids = 0;       // ids of default streams and explicit ones share one sequence

// Drops this thread's current context if it was destroyed meanwhile (by another thread, aclrtResetDevice
// or aclFinalize), so a stale pointer never passes for a live context.
void validate_ctx() {
  if (t_ctx && (!context_live(t_ctx) || t_ctx->serial != t_ctx_serial)) set_ctx(nullptr);
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

// The device model from the environment, for `devices` devices.
aclError parse_device_model(uint32_t devices, DeviceModel* dm) {
  *dm = DeviceModel();
  const char* th = std::getenv("PYMFN_ACL_EMU_DEVICE_THREADS");
  long threads = 0;
  if (th && *th) {
    char* end = nullptr;
    threads = std::strtol(th, &end, 10);
    if (*end != '\0' || threads < 0 || threads > 1024)
      return fail(ACL_ERROR_INVALID_PARAM, "aclInit", std::string("PYMFN_ACL_EMU_DEVICE_THREADS='") + th +
                                                          "': expected 0..1024 (0 = divide the host's cores)");
  }
  if (threads > 0) {
    dm->threads = static_cast<uint32_t>(threads);
    dm->threads_auto = false;
  } else if (devices > 1) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    dm->threads = std::max(1u, cores / devices);
  }
  const std::pair<const char*, double*> timing[] = {{"PYMFN_ACL_EMU_EXEC_MS", &dm->exec_ms},
                                                    {"PYMFN_ACL_EMU_EXEC_MS_PER_ROW", &dm->exec_ms_per_row}};
  for (const auto& [name, field] : timing) {
    const char* ex = std::getenv(name);
    if (!ex || !*ex) continue;
    char* end = nullptr;
    const double ms = std::strtod(ex, &end);
    if (*end != '\0' || !(ms >= 0) || ms > 60000)
      return fail(ACL_ERROR_INVALID_PARAM, "aclInit", std::string(name) + "='" + ex +
                                                          "': expected a number of ms in 0..60000");
    *field = ms;
  }
  return ACL_SUCCESS;
}

aclError check_device(const char* fn, int32_t deviceId) {
  if (deviceId < 0 || static_cast<uint32_t>(deviceId) >= g.devices)
    return fail(ACL_ERROR_INVALID_DEVICE, fn,
                "device " + std::to_string(deviceId) + " does not exist (" + std::to_string(g.devices) +
                    " device(s); PYMFN_ACL_EMU_DEVICES sets the count)");
  return ACL_SUCCESS;
}

// Every stream the process owns: the explicit ones and the contexts' default streams (g_mu held).
std::vector<Stream*> all_streams_locked() {
  std::vector<Stream*> v(g.streams.begin(), g.streams.end());
  for (auto* c : g.contexts)
    if (c->default_stream) v.push_back(c->default_stream);
  for (auto& kv : g.default_ctx)
    if (kv.second->default_stream) v.push_back(kv.second->default_stream);
  return v;
}

int log_threshold() {
  const char* v = std::getenv("ASCEND_GLOBAL_LOG_LEVEL");
  if (!v || !*v) return ACL_ERROR;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n >= 0 && n <= 4) ? static_cast<int>(n) : ACL_ERROR;
}

}  // namespace

aclError fail(aclError code, const std::string& where, const std::string& why) {
  t_error = std::string(where) + ": " + why + " [" + pymfn::acl::error_name(code) + " " + std::to_string(code) + "]";
  return code;
}

std::string& thread_error() { return t_error; }

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

aclError need_init(const char* fn) {
  if (!g.initialised) return fail(ACL_ERROR_UNINITIALIZE, fn, "aclInit has not been called");
  return ACL_SUCCESS;
}

Context* new_context(int32_t device, bool is_default) {
  auto* c = new Context();
  c->device = device;
  c->is_default = is_default;
  c->serial = ++g_ctx_serial;
  c->default_stream_id = g_stream_ids++;
  return c;
}

uint32_t new_stream_id() { return g_stream_ids++; }

void set_ctx(Context* c) {
  t_ctx = c;
  t_ctx_serial = c ? c->serial : 0;
}

bool context_live(const Context* c) {
  if (!c) return false;
  if (g.contexts.count(const_cast<Context*>(c))) return true;
  for (const auto& kv : g.default_ctx)
    if (kv.second == c) return true;
  return false;
}

aclError need_ctx(const char* fn) {
  validate_ctx();
  if (!t_ctx)
    return fail(ACL_ERROR_RT_CONTEXT_NULL, fn,
                "no current context in this thread (call aclrtSetDevice or aclrtSetCurrentContext first)");
  return ACL_SUCCESS;
}

Stream* orphan_context(Context* c) {
  for (auto& kv : g.models)
    if (kv.second->ctx == c) kv.second->ctx = nullptr;  // the model outlives its context: execute will fail
  for (auto* s : g.streams)
    if (s->ctx == c) s->ctx = nullptr;
  for (auto& kv : g.events)
    if (kv.second->ctx == c) kv.second->ctx = nullptr;
  if (t_ctx == c) set_ctx(nullptr);
  Stream* ds = c->default_stream;
  c->default_stream = nullptr;
  return ds;
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
  c.events = g.events.size();
  for (const auto& kv : g.tensor_descs)
    if (!kv.second.dataset_owned) ++c.tensor_descs;
  return c;
}

uint64_t leak_total(const pymfnEmuCounts& c) {
  return c.device_allocs + c.host_allocs + c.datasets + c.data_buffers + c.descs + c.models + c.contexts +
         c.streams + c.events + c.tensor_descs;
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
  line(c.tensor_descs, "tensor description(s) (aclCreateTensorDesc / aclmdlCreateAndGetOpDesc) not aclDestroyTensorDesc'd");
  line(c.models, "model(s) not aclmdlUnload'ed");
  line(c.contexts, "context(s) not aclrtDestroyContext'ed");
  line(c.streams, "stream(s) not aclrtDestroyStream'ed");
  line(c.events, "event(s) not aclrtDestroyEvent'ed");
  for (const auto& kv : g.device_refs)
    if (kv.second > 0) os << "  device " << kv.first << " set " << kv.second << " time(s) without aclrtResetDevice (not counted as a leak)\n";
  std::string body = os.str();
  if (leak_total(c) == 0) return body.empty() ? std::string() : "pymfn ACL emulator: at aclFinalize:\n" + body;
  return "pymfn ACL emulator: aclFinalize found outstanding resources:\n" + body;
}

std::string device_model_text() {
  const DeviceModel& dm = g.device_model;
  std::string s = std::to_string(g.devices) + " device(s); per model: ";
  if (dm.threads == 0)
    s += "OpenVINO's default thread count";
  else
    s += std::to_string(dm.threads) + " OpenVINO thread(s)" +
         (dm.threads_auto ? " (host cores / devices)" : " (PYMFN_ACL_EMU_DEVICE_THREADS)");
  if (dm.timing()) {
    std::ostringstream os;
    os << dm.exec_ms << " ms (PYMFN_ACL_EMU_EXEC_MS)";
    if (dm.exec_ms_per_row > 0) os << " + " << dm.exec_ms_per_row << " ms per row (PYMFN_ACL_EMU_EXEC_MS_PER_ROW)";
    s += "; device timing model: one execute at a time per device, each at least " + os.str();
  } else {
    s += "; executes of all devices share the host CPU (no device timing model)";
  }
  return s;
}

}  // namespace pymfn_emu

using namespace pymfn_emu;

// ================================================================ the C API: lifecycle, devices, contexts
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
  DeviceModel dm;
  EMU_CHECK(parse_env(&mode, &devices));
  EMU_CHECK(parse_device_model(devices, &dm));
  g = State();
  g.initialised = true;
  g.run_mode = mode;
  g.devices = devices;
  g.device_model = dm;
  if (dm.timing())
    for (uint32_t d = 0; d < devices; ++d) g.device_units.push_back(std::make_shared<std::mutex>());
  set_ctx(nullptr);
  return ACL_SUCCESS;
}

aclError aclFinalize(void) {
  std::vector<Stream*> streams;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclFinalize"));
    streams = all_streams_locked();
  }
  for (Stream* s : streams) s->shutdown();  // finish queued work before anything is freed
  std::lock_guard<std::mutex> lk(g_mu);
  g_final_counts = counts_locked();
  g_final_leaks = leak_total(g_final_counts);
  g_final_report = report_locked();
  if (!g_final_report.empty()) std::fprintf(stderr, "%s", g_final_report.c_str());
  for (const auto& kv : g.blocks) std::free(reinterpret_cast<void*>(kv.first));
  for (auto* b : g.buffers) delete b;
  for (auto* d : g.datasets) {
    for (auto* t : d->descs) delete t;
    delete d;
  }
  for (auto* d : g.descs) delete d;
  for (const auto& kv : g.tensor_descs)
    if (!kv.second.dataset_owned) delete[] kv.first;
  for (auto* s : all_streams_locked()) delete s;
  for (auto* c : g.contexts) delete c;
  for (auto& kv : g.default_ctx) delete kv.second;
  g = State();
  set_ctx(nullptr);
  g_event_cv.notify_all();  // waiters on events created before aclFinalize give up
  return ACL_SUCCESS;
}

const char* aclGetRecentErrMsg(void) {
  t_error_returned = t_error;
  t_error.clear();
  return t_error_returned.c_str();
}

aclError aclrtGetVersion(int32_t* majorVersion, int32_t* minorVersion, int32_t* patchVersion) {
  if (!majorVersion || !minorVersion || !patchVersion)
    return fail(ACL_ERROR_INVALID_PARAM, "aclrtGetVersion", "majorVersion, minorVersion or patchVersion is NULL");
  *majorVersion = ACL_MAJOR_VERSION;
  *minorVersion = ACL_MINOR_VERSION;
  *patchVersion = ACL_PATCH_VERSION;
  return ACL_SUCCESS;
}

const char* aclrtGetSocName(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclrtGetSocName") != ACL_SUCCESS) return nullptr;
  return "Ascend310";
}

void aclAppLog(aclLogLevel logLevel, const char* func, const char* file, uint32_t line, const char* fmt, ...) {
  if (!fmt || static_cast<int>(logLevel) < log_threshold()) return;
  static const char* names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};
  const int lv = static_cast<int>(logLevel);
  const char* name = (lv >= 0 && lv <= 3) ? names[lv] : "LOG";
  char body[1024];
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(body, sizeof body, fmt, ap);
  va_end(ap);
  std::fprintf(stderr, "[%s] %s %s:%u %s\n", name, func ? func : "?", file ? file : "?", line, body);
}

aclError aclrtSetDevice(int32_t deviceId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtSetDevice"));
  EMU_CHECK(check_device("aclrtSetDevice", deviceId));
  Context*& def = g.default_ctx[deviceId];
  if (!def) def = new_context(deviceId, true);
  ++g.device_refs[deviceId];
  set_ctx(def);
  return ACL_SUCCESS;
}

aclError aclrtResetDevice(int32_t deviceId) {
  Stream* retired = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclrtResetDevice"));
    EMU_CHECK(check_device("aclrtResetDevice", deviceId));
    auto it = g.device_refs.find(deviceId);
    if (it == g.device_refs.end() || it->second <= 0)
      return fail(ACL_ERROR_INVALID_PARAM, "aclrtResetDevice", "device " + std::to_string(deviceId) + " was not set");
    if (--it->second == 0) {
      Context* def = g.default_ctx[deviceId];
      retired = orphan_context(def);
      delete def;
      g.default_ctx.erase(deviceId);
    }
  }
  if (retired) retire_streams({retired});
  return ACL_SUCCESS;
}

aclError aclrtGetDevice(int32_t* deviceId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtGetDevice"));
  if (!deviceId) return fail(ACL_ERROR_INVALID_PARAM, "aclrtGetDevice", "deviceId is NULL");
  EMU_CHECK(need_ctx("aclrtGetDevice"));
  *deviceId = t_ctx->device;
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
  EMU_CHECK(check_device("aclrtCreateContext", deviceId));
  auto* c = new_context(deviceId, false);
  g.contexts.insert(c);
  set_ctx(c);  // like the real runtime, a new context becomes the thread's current one
  *context = c;
  return ACL_SUCCESS;
}

aclError aclrtDestroyContext(aclrtContext context) {
  Stream* retired = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclrtDestroyContext"));
    auto* c = static_cast<Context*>(context);
    if (!g.contexts.count(c))
      return fail(ACL_ERROR_INVALID_PARAM, "aclrtDestroyContext", "not a context created by aclrtCreateContext");
    retired = orphan_context(c);
    g.contexts.erase(c);
    delete c;
  }
  if (retired) retire_streams({retired});
  return ACL_SUCCESS;
}

aclError aclrtSetCurrentContext(aclrtContext context) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclrtSetCurrentContext"));
  auto* c = static_cast<Context*>(context);
  if (!context_live(c)) return fail(ACL_ERROR_INVALID_PARAM, "aclrtSetCurrentContext", "not a live context");
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

// ================================================================ emulator-only queries (emulator_api.h)
int pymfnEmuIsEmulator(void) { return 1; }

const char* pymfnEmuVersion(void) {
  static const std::string v = std::string("pymfn ACL emulator 1 (OpenVINO ") + ov::get_openvino_version().buildNumber + ")";
  return v.c_str();
}

size_t pymfnEmuDeviceModel(char* buf, size_t len) {
  std::string text;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    text = g.initialised ? device_model_text() : std::string();
  }
  if (buf && len > 0) {
    const size_t n = std::min(len - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return text.size();
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

uint64_t pymfnEmuLeaksAtFinalize(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  return g_final_leaks;
}

}  // extern "C"
