#include "engines/acl/acl_engine.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "engines/acl/om_header.h"
#include "core/errors.h"

namespace pymfn {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

std::string join(const std::vector<size_t>& v) {
  std::string s;
  for (size_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// Teardown cannot throw; it reports what failed so a leak is never silent.
void teardown_warn(const acl::AclApi& api, const char* call, int rc) {
  if (rc != 0) {
    std::fprintf(stderr, "pymfn AclEngine teardown: %s failed with ACL error %d (%s) %s\n", call, rc,
                 acl::error_name(rc), acl::recent_error_message(api).c_str());
  }
}

}  // namespace

AclEngine::AclEngine(const std::string& om_path, int device, size_t num_requests)
    : api_(acl::acl_api()), path_(om_path), device_(device) {
  if (device < 0) throw InvalidArgument("AclEngine: device must be >= 0, got " + std::to_string(device));
  if (num_requests == 0 || num_requests > 64) {
    throw InvalidArgument("AclEngine: num_requests must be 1..64, got " + std::to_string(num_requests));
  }
  // A clear FormatError naming the file beats ACL's 100013 for a non-om or truncated file.
  const om::OmHeader header = om::read_om_header(om_path);
  // Header text fields are any bytes a file holds; reports need readable, valid text.
  om_name_ = om::printable(header.name);
  om_platform_ = om::printable(header.platform_version);
  try {
    acl::acquire_acl_init(api_);
    init_acquired_ = true;
    acl::check(api_, ("aclrtSetDevice(" + std::to_string(device) + ")").c_str(), api_.aclrtSetDevice(device));
    device_set_ = true;
    acl::check(api_, "aclrtCreateContext", api_.aclrtCreateContext(&context_, device));
    aclrtRunMode mode = ACL_HOST;
    acl::check(api_, "aclrtGetRunMode", api_.aclrtGetRunMode(&mode));
    device_mode_ = mode == ACL_DEVICE;

    slots_.resize(num_requests);
    const std::string load_call = "aclmdlLoadFromFile(" + om_path + ")";
    for (Slot& s : slots_) {
      acl::check(api_, load_call.c_str(), api_.aclmdlLoadFromFile(om_path.c_str(), &s.model_id));
      s.loaded = true;
    }
    desc_ = api_.aclmdlCreateDesc();
    if (desc_ == nullptr) throw EngineError("aclmdlCreateDesc returned NULL for " + om_path + ": " + acl::recent_error_message(api_));
    acl::check(api_, "aclmdlGetDesc", api_.aclmdlGetDesc(desc_, slots_[0].model_id));
    describe_model();
    read_emulator_compile_record();
    for (Slot& s : slots_) setup_slot(s);
    batch_ = batches_.front();
  } catch (...) {
    teardown();
    throw;
  }
}

AclEngine::~AclEngine() { teardown(); }

void AclEngine::make_current() const {
  acl::check(api_, "aclrtSetCurrentContext", api_.aclrtSetCurrentContext(context_));
}

void AclEngine::describe_model() {
  const size_t n_in = api_.aclmdlGetNumInputs(desc_);
  const size_t n_out = api_.aclmdlGetNumOutputs(desc_);
  if (n_in == 0 || n_out == 0) {
    throw EngineError(path_ + ": model reports " + std::to_string(n_in) + " inputs and " + std::to_string(n_out) +
                      " outputs");
  }
  size_t idx = 0;
  dynamic_ = api_.aclmdlGetInputIndexByName(desc_, ACL_DYNAMIC_TENSOR_NAME, &idx) == 0;
  if (dynamic_) {
    mbatch_index_ = idx;
    aclmdlBatch b{};
    acl::check(api_, "aclmdlGetDynamicBatch", api_.aclmdlGetDynamicBatch(desc_, &b));
    for (size_t i = 0; i < b.batchCount && i < ACL_MAX_BATCH_NUM; ++i) {
      if (b.batch[i] > 0) batches_.push_back(static_cast<size_t>(b.batch[i]));
    }
    std::sort(batches_.begin(), batches_.end());
    batches_.erase(std::unique(batches_.begin(), batches_.end()), batches_.end());
    if (batches_.empty()) {
      throw EngineError(path_ + ": model has the dynamic-batch input " ACL_DYNAMIC_TENSOR_NAME
                        " but aclmdlGetDynamicBatch offers no batch size");
    }
    max_batch_ = batches_.back();
  }

  auto dims_to_shape = [](const aclmdlIODims& d) {
    std::vector<int64_t> shape(d.dims, d.dims + std::min<size_t>(d.dimCount, ACL_MAX_DIM_CNT));
    return shape;
  };
  auto to_dtype = [&](int code, const std::string& what) {
    DType t;
    if (code < 0 || !dtype_from_code(static_cast<uint32_t>(code), &t)) {
      throw EngineError(path_ + ": " + what + " has ACL data type " + std::to_string(code) +
                        ", which pymfn does not handle (float32, float16, int8, int32, uint8)");
    }
    return t;
  };

  size_t static_batch = 0;
  model_in_bytes_.assign(n_in, 0);
  for (size_t i = 0; i < n_in; ++i) {
    model_in_bytes_[i] = api_.aclmdlGetInputSizeByIndex(desc_, i);
    if (dynamic_ && i == mbatch_index_) continue;
    aclmdlIODims d{};
    acl::check(api_, "aclmdlGetInputDims", api_.aclmdlGetInputDims(desc_, i, &d));
    TensorInfo t;
    const char* name = api_.aclmdlGetInputNameByIndex(desc_, i);
    t.name = name ? name : d.name;
    t.dtype = to_dtype(static_cast<int>(api_.aclmdlGetInputDataType(desc_, i)), "input '" + t.name + "'");
    t.shape = dims_to_shape(d);
    if (t.shape.empty()) throw EngineError(path_ + ": input '" + t.name + "' is a scalar; a batch dimension is needed");
    size_t rows;
    if (dynamic_) {
      rows = max_batch_;
      t.shape[0] = -1;
    } else {
      if (t.shape[0] <= 0) {
        throw EngineError(path_ + ": input '" + t.name + "' has a dynamic first dimension but the model offers no "
                          "dynamic batch (only ATC's --dynamic_batch_size is supported)");
      }
      rows = static_cast<size_t>(t.shape[0]);
      if (static_batch != 0 && static_batch != rows) {
        throw EngineError(path_ + ": inputs disagree on the batch size (" + std::to_string(static_batch) + " vs " +
                          std::to_string(rows) + ")");
      }
      static_batch = rows;
    }
    if (model_in_bytes_[i] == 0 || model_in_bytes_[i] % rows != 0) {
      throw EngineError(path_ + ": input '" + t.name + "' size " + std::to_string(model_in_bytes_[i]) +
                        " bytes is not a multiple of its batch " + std::to_string(rows));
    }
    t.sample_bytes = model_in_bytes_[i] / rows;
    inputs_.push_back(t);
    user_to_model_input_.push_back(i);
  }
  if (inputs_.empty()) throw EngineError(path_ + ": model has no data input besides " ACL_DYNAMIC_TENSOR_NAME);
  if (!dynamic_) {
    batches_ = {static_batch};
    max_batch_ = static_batch;
  }

  model_out_bytes_.assign(n_out, 0);
  for (size_t i = 0; i < n_out; ++i) {
    model_out_bytes_[i] = api_.aclmdlGetOutputSizeByIndex(desc_, i);
    aclmdlIODims d{};
    acl::check(api_, "aclmdlGetOutputDims", api_.aclmdlGetOutputDims(desc_, i, &d));
    TensorInfo t;
    const char* name = api_.aclmdlGetOutputNameByIndex(desc_, i);
    t.name = name ? name : d.name;
    t.dtype = to_dtype(static_cast<int>(api_.aclmdlGetOutputDataType(desc_, i)), "output '" + t.name + "'");
    t.shape = dims_to_shape(d);
    if (t.shape.empty()) t.shape = {1};
    if (dynamic_) t.shape[0] = -1;
    if (model_out_bytes_[i] == 0 || model_out_bytes_[i] % max_batch_ != 0) {
      throw EngineError(path_ + ": output '" + t.name + "' size " + std::to_string(model_out_bytes_[i]) +
                        " bytes is not a multiple of the largest batch " + std::to_string(max_batch_));
    }
    t.sample_bytes = model_out_bytes_[i] / max_batch_;
    outputs_.push_back(t);
  }
}

// The emulator says what it compiled the om to (every slot loads the same file, so slot 0 speaks for all);
// real CANN has no such function and an om's arithmetic there is fixed by atc.
void AclEngine::read_emulator_compile_record() {
  if (!api_.emulator || api_.emu_model_compile_record == nullptr) return;
  const uint32_t id = slots_[0].model_id;
  size_t needed = 0;
  acl::check(api_, "pymfnEmuModelCompileRecord", api_.emu_model_compile_record(id, nullptr, 0, &needed));
  std::string text(needed + 1, '\0');
  acl::check(api_, "pymfnEmuModelCompileRecord", api_.emu_model_compile_record(id, &text[0], text.size(), &needed));
  text.resize(std::min(needed, text.size() - 1));
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos && eq > 0) emulator_compile_[line.substr(0, eq)] = line.substr(eq + 1);
  }
}

void AclEngine::setup_slot(Slot& s) {
  acl::check(api_, "aclrtCreateStream", api_.aclrtCreateStream(&s.stream));
  auto dev_alloc = [&](size_t bytes) {
    void* p = nullptr;
    acl::check(api_, ("aclrtMalloc(" + std::to_string(bytes) + ")").c_str(),
               api_.aclrtMalloc(&p, bytes, ACL_MEM_MALLOC_HUGE_FIRST));
    return p;
  };
  auto host_alloc = [&](size_t bytes) {
    void* p = nullptr;
    acl::check(api_, ("aclrtMallocHost(" + std::to_string(bytes) + ")").c_str(), api_.aclrtMallocHost(&p, bytes));
    return p;
  };
  for (size_t b : model_in_bytes_) s.dev_in.push_back(dev_alloc(b));
  for (size_t b : model_out_bytes_) s.dev_out.push_back(dev_alloc(b));
  if (!device_mode_) {
    for (size_t m : user_to_model_input_) s.host_in.push_back(host_alloc(model_in_bytes_[m]));
    for (size_t b : model_out_bytes_) s.host_out.push_back(host_alloc(b));
  }
  // Datasets are built once; the buffers keep pointing at this slot's device memory.
  s.in_ds = api_.aclmdlCreateDataset();
  if (s.in_ds == nullptr) throw EngineError("aclmdlCreateDataset returned NULL: " + acl::recent_error_message(api_));
  s.out_ds = api_.aclmdlCreateDataset();
  if (s.out_ds == nullptr) throw EngineError("aclmdlCreateDataset returned NULL: " + acl::recent_error_message(api_));
  auto add = [&](aclmdlDataset* ds, std::vector<aclDataBuffer*>& bufs, void* p, size_t bytes) {
    aclDataBuffer* buf = api_.aclCreateDataBuffer(p, bytes);
    if (buf == nullptr) throw EngineError("aclCreateDataBuffer returned NULL: " + acl::recent_error_message(api_));
    bufs.push_back(buf);
    acl::check(api_, "aclmdlAddDatasetBuffer", api_.aclmdlAddDatasetBuffer(ds, buf));
  };
  for (size_t i = 0; i < model_in_bytes_.size(); ++i) add(s.in_ds, s.in_bufs, s.dev_in[i], model_in_bytes_[i]);
  for (size_t i = 0; i < model_out_bytes_.size(); ++i) add(s.out_ds, s.out_bufs, s.dev_out[i], model_out_bytes_[i]);
}

void AclEngine::teardown() noexcept {
  if (context_ != nullptr) teardown_warn(api_, "aclrtSetCurrentContext", api_.aclrtSetCurrentContext(context_));
  for (Slot& s : slots_) {
    if (s.busy && s.stream != nullptr) teardown_warn(api_, "aclrtSynchronizeStream", api_.aclrtSynchronizeStream(s.stream));
    s.busy = false;
    for (aclDataBuffer* b : s.in_bufs) teardown_warn(api_, "aclDestroyDataBuffer", api_.aclDestroyDataBuffer(b));
    for (aclDataBuffer* b : s.out_bufs) teardown_warn(api_, "aclDestroyDataBuffer", api_.aclDestroyDataBuffer(b));
    s.in_bufs.clear();
    s.out_bufs.clear();
    if (s.in_ds) teardown_warn(api_, "aclmdlDestroyDataset", api_.aclmdlDestroyDataset(s.in_ds));
    if (s.out_ds) teardown_warn(api_, "aclmdlDestroyDataset", api_.aclmdlDestroyDataset(s.out_ds));
    s.in_ds = s.out_ds = nullptr;
    for (void* p : s.dev_in) teardown_warn(api_, "aclrtFree", api_.aclrtFree(p));
    for (void* p : s.dev_out) teardown_warn(api_, "aclrtFree", api_.aclrtFree(p));
    for (void* p : s.host_in) teardown_warn(api_, "aclrtFreeHost", api_.aclrtFreeHost(p));
    for (void* p : s.host_out) teardown_warn(api_, "aclrtFreeHost", api_.aclrtFreeHost(p));
    s.dev_in.clear();
    s.dev_out.clear();
    s.host_in.clear();
    s.host_out.clear();
    if (s.loaded) teardown_warn(api_, "aclmdlUnload", api_.aclmdlUnload(s.model_id));
    s.loaded = false;
    if (s.stream) teardown_warn(api_, "aclrtDestroyStream", api_.aclrtDestroyStream(s.stream));
    s.stream = nullptr;
  }
  if (desc_) teardown_warn(api_, "aclmdlDestroyDesc", api_.aclmdlDestroyDesc(desc_));
  desc_ = nullptr;
  if (context_) teardown_warn(api_, "aclrtDestroyContext", api_.aclrtDestroyContext(context_));
  context_ = nullptr;
  if (device_set_) teardown_warn(api_, "aclrtResetDevice", api_.aclrtResetDevice(device_));
  device_set_ = false;
  if (init_acquired_) acl::release_acl_init(api_);
  init_acquired_ = false;
}

void AclEngine::prepare(size_t batch_rows) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Slot& s : slots_) {
    if (s.busy) throw InvalidArgument("AclEngine::prepare: a request is still in flight; wait() for it first");
  }
  if (std::find(batches_.begin(), batches_.end(), batch_rows) == batches_.end()) {
    throw InvalidArgument("batch size " + std::to_string(batch_rows) + " is not offered by " + path_ + " (" +
                          (dynamic_ ? "dynamic batch sizes " : "static batch ") + join(batches_) + ")");
  }
  batch_ = batch_rows;
}

size_t AclEngine::valid_bytes(size_t model_bytes, size_t rows) const { return model_bytes / max_batch_ * rows; }

void AclEngine::check_binding(const IoBinding& b, const char* what) const {
  // A dynamic-batch om executes any of its batch sizes up to the prepared one (chosen per request).
  const bool offered = std::find(batches_.begin(), batches_.end(), b.batch_rows) != batches_.end();
  if (b.batch_rows != batch_ && !(dynamic_ && offered && b.batch_rows < batch_)) {
    throw InvalidArgument(std::string(what) + ": binding has " + std::to_string(b.batch_rows) +
                          " rows but the engine is prepared for batch " + std::to_string(batch_) +
                          (dynamic_ ? " (or an offered batch size below it: " + join(batches_) + ")" : ""));
  }
  if (b.inputs.size() != inputs_.size() || b.outputs.size() != outputs_.size()) {
    throw InvalidArgument(std::string(what) + ": binding has " + std::to_string(b.inputs.size()) + " inputs and " +
                          std::to_string(b.outputs.size()) + " outputs; the model has " +
                          std::to_string(inputs_.size()) + " and " + std::to_string(outputs_.size()));
  }
  for (const void* p : b.inputs)
    if (p == nullptr) throw InvalidArgument(std::string(what) + ": null input pointer");
  for (const void* p : b.outputs)
    if (p == nullptr) throw InvalidArgument(std::string(what) + ": null output pointer");
}

void AclEngine::select_batch(Slot& s, size_t rows) {
  if (!dynamic_) return;
  acl::check(api_, "aclmdlSetDynamicBatchSize",
             api_.aclmdlSetDynamicBatchSize(s.model_id, s.in_ds, mbatch_index_, static_cast<uint64_t>(rows)));
}

double AclEngine::copy_inputs(Slot& s, const IoBinding& b) {
  const auto t0 = Clock::now();
  uint64_t n = 0, bytes_total = 0;
  for (size_t i = 0; i < inputs_.size(); ++i) {
    const size_t m = user_to_model_input_[i];
    const size_t bytes = valid_bytes(model_in_bytes_[m], b.batch_rows);
    if (device_mode_) {
      if (b.inputs[i] == s.dev_in[m]) continue;  // already in device memory: zero copy
      const auto* base = static_cast<const uint8_t*>(s.dev_in[m]);
      const auto* src = static_cast<const uint8_t*>(b.inputs[i]);
      if (src > base && src < base + model_in_bytes_[m]) {
        // A copy within the same buffer could overlap (aclrtMemcpy is a memcpy, not a memmove).
        throw InvalidArgument("AclEngine: input " + std::to_string(i) + " points inside input_buffer() but not at "
                              "its start; bind the buffer's first rows for a zero-copy execute");
      }
      acl::check(api_, "aclrtMemcpy(input, DEVICE_TO_DEVICE)",
                 api_.aclrtMemcpy(s.dev_in[m], model_in_bytes_[m], b.inputs[i], bytes, ACL_MEMCPY_DEVICE_TO_DEVICE));
    } else {
      acl::check(api_, "aclrtMemcpy(input, HOST_TO_DEVICE)",
                 api_.aclrtMemcpy(s.dev_in[m], model_in_bytes_[m], b.inputs[i], bytes, ACL_MEMCPY_HOST_TO_DEVICE));
    }
    ++n;
    bytes_total += bytes;
  }
  const double ms = n == 0 ? 0.0 : ms_since(t0);
  std::lock_guard<std::mutex> lock(mutex_);
  copies_.h2d_copies += n;
  copies_.h2d_bytes += bytes_total;
  return ms;
}

double AclEngine::copy_outputs(Slot& s, const IoBinding& b) {
  const auto t0 = Clock::now();
  uint64_t n = 0, bytes_total = 0;
  for (size_t o = 0; o < outputs_.size(); ++o) {
    const size_t bytes = valid_bytes(model_out_bytes_[o], b.batch_rows);
    if (device_mode_) {
      if (b.outputs[o] == s.dev_out[o]) continue;
      acl::check(api_, "aclrtMemcpy(output, DEVICE_TO_DEVICE)",
                 api_.aclrtMemcpy(b.outputs[o], bytes, s.dev_out[o], bytes, ACL_MEMCPY_DEVICE_TO_DEVICE));
    } else {
      acl::check(api_, "aclrtMemcpy(output, DEVICE_TO_HOST)",
                 api_.aclrtMemcpy(b.outputs[o], bytes, s.dev_out[o], bytes, ACL_MEMCPY_DEVICE_TO_HOST));
    }
    ++n;
    bytes_total += bytes;
  }
  const double ms = n == 0 ? 0.0 : ms_since(t0);
  std::lock_guard<std::mutex> lock(mutex_);
  copies_.d2h_copies += n;
  copies_.d2h_bytes += bytes_total;
  return ms;
}

StageTimes AclEngine::execute(const IoBinding& binding) {
  Slot& s = slots_[0];
  {
    std::lock_guard<std::mutex> lock(mutex_);
    check_binding(binding, "AclEngine::execute");
    if (s.busy) throw InvalidArgument("AclEngine::execute: slot 0 has a request in flight (start() without wait())");
    s.busy = true;
  }
  StageTimes t;
  try {
    make_current();
    select_batch(s, binding.batch_rows);
    t.h2d_ms = copy_inputs(s, binding);
    const auto t0 = Clock::now();
    const int rc = api_.aclmdlExecute(s.model_id, s.in_ds, s.out_ds);
    t.compute_ms = ms_since(t0);
    acl::check(api_, "aclmdlExecute", rc);
    t.d2h_ms = copy_outputs(s, binding);
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    s.busy = false;
    throw;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  s.busy = false;
  return t;
}

void AclEngine::start(size_t slot, const IoBinding& binding) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slot >= slots_.size()) {
      throw InvalidArgument("AclEngine::start: slot " + std::to_string(slot) + " out of range (num_requests=" +
                            std::to_string(slots_.size()) + ")");
    }
    check_binding(binding, "AclEngine::start");
    if (slots_[slot].busy) {
      throw InvalidArgument("AclEngine::start: slot " + std::to_string(slot) + " is busy; wait() for it first");
    }
    slots_[slot].busy = true;
  }
  Slot& s = slots_[slot];
  try {
    make_current();
    select_batch(s, binding.batch_rows);
    s.pending = binding;
    s.times = StageTimes();
    s.times.h2d_ms = copy_inputs(s, binding);
    s.launched = Clock::now();
    acl::check(api_, "aclmdlExecuteAsync", api_.aclmdlExecuteAsync(s.model_id, s.in_ds, s.out_ds, s.stream));
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    s.busy = false;
    throw;
  }
}

StageTimes AclEngine::wait(size_t slot) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (slot >= slots_.size()) {
      throw InvalidArgument("AclEngine::wait: slot " + std::to_string(slot) + " out of range (num_requests=" +
                            std::to_string(slots_.size()) + ")");
    }
    if (!slots_[slot].busy) throw InvalidArgument("AclEngine::wait: no request in flight on slot " + std::to_string(slot));
  }
  Slot& s = slots_[slot];
  StageTimes t;
  try {
    make_current();
    const int rc = api_.aclrtSynchronizeStream(s.stream);
    s.times.compute_ms = ms_since(s.launched);
    acl::check(api_, "aclrtSynchronizeStream", rc);
    s.times.d2h_ms = copy_outputs(s, s.pending);
    t = s.times;
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    s.busy = false;
    throw;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  s.busy = false;
  return t;
}

void* AclEngine::input_buffer(size_t slot, size_t input) {
  if (slot >= slots_.size() || input >= inputs_.size()) {
    throw InvalidArgument("AclEngine::input_buffer: slot " + std::to_string(slot) + " / input " +
                          std::to_string(input) + " out of range");
  }
  Slot& s = slots_[slot];
  return device_mode_ ? s.dev_in[user_to_model_input_[input]] : s.host_in[input];
}

void* AclEngine::output_buffer(size_t slot, size_t output) {
  if (slot >= slots_.size() || output >= outputs_.size()) {
    throw InvalidArgument("AclEngine::output_buffer: slot " + std::to_string(slot) + " / output " +
                          std::to_string(output) + " out of range");
  }
  Slot& s = slots_[slot];
  return device_mode_ ? s.dev_out[output] : s.host_out[output];
}

AclEngine::CopyStats AclEngine::copy_stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return copies_;
}

size_t AclEngine::input_buffer_bytes(size_t input) const {
  if (input >= inputs_.size()) throw InvalidArgument("AclEngine: input " + std::to_string(input) + " out of range");
  return model_in_bytes_[user_to_model_input_[input]];
}

size_t AclEngine::output_buffer_bytes(size_t output) const {
  if (output >= outputs_.size()) throw InvalidArgument("AclEngine: output " + std::to_string(output) + " out of range");
  return model_out_bytes_[output];
}

std::map<std::string, std::string> AclEngine::properties() const {
  std::map<std::string, std::string> p;
  p["engine"] = "acl";
  p["acl_runtime"] = api_.runtime;
  p["acl_library"] = api_.library_path;
  p["acl_selection"] = api_.selection;
  if (!api_.cann_root.empty()) p["cann_root"] = api_.cann_root;
  if (api_.emulator && api_.emu_version) p["emulator_version"] = api_.emu_version();
  if (api_.emulator && api_.handle) {
    // How the emulated devices share the host (threads, device timing model): part of what a timing means.
    using DeviceModelFn = size_t (*)(char*, size_t);
    if (auto fn = reinterpret_cast<DeviceModelFn>(dlsym(api_.handle, "pymfnEmuDeviceModel"))) {
      std::string text(fn(nullptr, 0) + 1, '\0');
      text.resize(fn(&text[0], text.size()));
      p["emulator_device_model"] = text;
    }
  }
  // What the emulator compiled the om to (emulator_compute_precision, emulator_device_precision,
  // emulator_precision_reason, emulator_runtime_precision, ...): its arithmetic beside the device's.
  for (const auto& [key, value] : emulator_compile_) p["emulator_" + key] = value;
  p["run_mode"] = device_mode_ ? "ACL_DEVICE" : "ACL_HOST";
  p["device"] = std::to_string(device_);
  p["num_requests"] = std::to_string(slots_.size());
  std::string ids;
  for (const Slot& s : slots_) ids += (ids.empty() ? "" : ",") + std::to_string(s.model_id);
  p["model_ids"] = ids;
  p["concurrency"] = "one model instance (model id) and stream per request slot";
  p["dynamic_batch"] = dynamic_ ? join(batches_) : "static";
  p["batch"] = std::to_string(batch_);
  p["om_name"] = om_name_;
  p["om_platform_version"] = om_platform_;
  p["input_path"] = device_mode_
                        ? "ACL_DEVICE: zero copy when the batch is written into input_buffer(), else one "
                          "device-to-device aclrtMemcpy per input"
                        : "ACL_HOST: one aclrtMemcpy host-to-device per input per batch (pinned source via "
                          "input_buffer())";
  p["compute_scope"] = "synchronous aclmdlExecute (msame's scope); async: launch to aclrtSynchronizeStream";
  return p;
}

}  // namespace pymfn
