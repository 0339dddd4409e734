#include "engines/openvino/openvino_engine.h"

#include <algorithm>
#include <chrono>
#include <cctype>
#include <fstream>
#include <sstream>

#include <openvino/openvino.hpp>

#include "core/errors.h"
#include "engines/openvino/exec_graph.h"

namespace pymfn {

namespace {

using Clock = std::chrono::steady_clock;

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string extension_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  const auto dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return lower(path.substr(dot));
}

// The precision a caller asked for, in one canonical spelling, and the hint it becomes for OpenVINO.
struct PrecisionRequest {
  std::string name;        // f32, bf16, f16 or int8
  ov::element::Type hint;  // ov::hint::inference_precision (int8: for the layers the model left unquantized)
};

PrecisionRequest precision_request(const std::string& precision) {
  const std::string p = lower(precision);
  if (p == "f32" || p == "fp32" || p == "float32") return {"f32", ov::element::f32};
  if (p == "bf16" || p == "bfloat16") return {"bf16", ov::element::bf16};
  if (p == "f16" || p == "fp16" || p == "float16") return {"f16", ov::element::f16};
  // Quantized layers run in int8 whatever the hint; f32 for the rest keeps the accuracy of what was not
  // quantized (pymfn's quantizer leaves next to nothing in float, so it costs no speed).
  if (p == "int8" || p == "i8") return {"int8", ov::element::f32};
  throw InvalidArgument("precision '" + precision + "' is not supported (expected f32, bf16, f16 or int8)");
}

ov::element::Type precision_type(const std::string& precision) { return precision_request(precision).hint; }

size_t count_fake_quantize(const ov::Model& model) {
  size_t n = 0;
  for (const auto& op : model.get_ordered_ops())
    if (std::string(op->get_type_name()) == "FakeQuantize") ++n;
  return n;
}

// ---------------------------------------------------------------- what the compiled model really runs
// The CPU plugin's runtime graph carries, per executed node, its layer type and runtime precision
// (rt_info keys ov::exec_model_info::LAYER_TYPE = "layerType" and RUNTIME_PRECISION = "runtimePrecision").

// Nodes that do no arithmetic of their own: constants (weights), graph inputs/outputs and metadata reshapes.
bool is_bookkeeping(const std::string& layer_type) {
  return layer_type == "Const" || layer_type == "Input" || layer_type == "Output" || layer_type == "Reshape";
}

using exec_graph::is_compute_layer;
using exec_graph::rt_string;

// "int8" is satisfied by either 8-bit integer form (symmetric i8 or asymmetric u8 activations).
bool precision_matches(const std::string& requested, const std::string& runtime) {
  if (requested == "int8") return runtime == "i8" || runtime == "u8";
  return runtime == requested;
}

struct RuntimePrecision {
  // layer type -> runtime precision -> node count, for every node that computes something
  std::map<std::string, std::map<std::string, size_t>> by_type;
  std::map<std::string, size_t> compute;  // runtime precision -> compute-layer count
};

RuntimePrecision runtime_precision_of(const ov::CompiledModel& cm) {
  RuntimePrecision r;
  const auto runtime = cm.get_runtime_model();
  for (const auto& op : runtime->get_ordered_ops()) {
    const std::string type = rt_string(*op, "layerType");
    if (type.empty() || is_bookkeeping(type)) continue;
    std::string precision = rt_string(*op, "runtimePrecision");
    if (precision.empty()) precision = "unknown";
    ++r.by_type[type][precision];
    if (is_compute_layer(type)) ++r.compute[precision];
  }
  return r;
}

std::string counts_text(const std::map<std::string, size_t>& counts) {
  std::string s;
  for (const auto& [precision, n] : counts) s += (s.empty() ? "" : ", ") + precision + " x" + std::to_string(n);
  return s;
}

bool has_capability(const std::vector<std::string>& caps, const std::string& cap) {
  return std::find(caps.begin(), caps.end(), cap) != caps.end();
}

// One line: "ok", or what differs from the request and the reason pymfn can tell.
std::string precision_verdict(const std::string& requested, const RuntimePrecision& r, size_t fake_quantize_ops,
                              const std::vector<std::string>& caps) {
  if (r.compute.empty()) return "unknown: the runtime graph shows no convolution or matrix-multiply layers";
  size_t total = 0, matching = 0;
  for (const auto& [precision, n] : r.compute) {
    total += n;
    if (precision_matches(requested, precision)) matching += n;
  }
  if (matching == total) return "ok";
  std::string why;
  if (requested != "int8" && fake_quantize_ops > 0) {
    why = "the model is quantized (" + std::to_string(fake_quantize_ops) +
          " FakeQuantize ops): OpenVINO runs its quantized layers in int8 whatever the hint; request int8";
  } else if (requested == "bf16" && !caps.empty() && !has_capability(caps, "BF16")) {
    why = "this CPU has no bf16 support (OpenVINO capabilities lack BF16), so OpenVINO fell back";
  } else if (requested == "f16" && !caps.empty() && !has_capability(caps, "FP16")) {
    why = "this CPU has no f16 support (OpenVINO capabilities lack FP16), so OpenVINO fell back";
  } else if (requested == "int8") {
    why = "the quantizer left these layers in float (ignored scope, or a pattern OpenVINO cannot run in int8)";
  } else {
    why = "OpenVINO kept these layers in another precision";
  }
  const std::string shape = matching == 0 ? "mismatch" : "partial";
  return shape + ": requested " + requested + ", compute layers ran " + counts_text(r.compute) + " (" +
         std::to_string(matching) + " of " + std::to_string(total) + " as requested): " + why;
}

ov::hint::PerformanceMode hint_mode(const std::string& hint) {
  const std::string h = lower(hint);
  if (h == "latency") return ov::hint::PerformanceMode::LATENCY;
  if (h == "throughput") return ov::hint::PerformanceMode::THROUGHPUT;
  throw InvalidArgument("hint '" + hint + "' is not supported (expected latency or throughput)");
}

DType to_dtype(const ov::element::Type& t, const std::string& path, const std::string& port) {
  if (t == ov::element::f32) return DType::kFloat32;
  if (t == ov::element::f16) return DType::kFloat16;
  if (t == ov::element::i8) return DType::kInt8;
  if (t == ov::element::i32) return DType::kInt32;
  if (t == ov::element::u8) return DType::kUInt8;
  throw EngineError(path + ": tensor '" + port + "' has element type " + t.get_type_name() +
                    ", which pymfn engines do not carry (float32, float16, int8, int32, uint8)");
}

ov::element::Type to_ov(DType t) {
  switch (t) {
    case DType::kFloat32: return ov::element::f32;
    case DType::kFloat16: return ov::element::f16;
    case DType::kInt8: return ov::element::i8;
    case DType::kInt32: return ov::element::i32;
    case DType::kUInt8: return ov::element::u8;
  }
  return ov::element::dynamic;
}

std::string port_name(const ov::Output<const ov::Node>& port, const char* kind, size_t i) {
  const auto& names = port.get_names();
  if (names.empty()) return std::string(kind) + "_" + std::to_string(i);
  // Prefer the shortest name: TF models list both "Placeholder" and "Placeholder:0".
  std::string best = *names.begin();
  for (const auto& n : names)
    if (n.size() < best.size()) best = n;
  // TensorFlow tensor names carry an output index ("Placeholder:0"); report the node name like TFEngine.
  if (best.size() > 2 && best.compare(best.size() - 2, 2, ":0") == 0) best.resize(best.size() - 2);
  return best;
}

}  // namespace

struct OpenVINOEngine::Impl {
  ov::Core core;
  std::shared_ptr<ov::Model> model;
  // Compiled once per batch size so switching back and forth (accuracy at 64, latency at 1) is cheap.
  std::map<size_t, ov::CompiledModel> compiled;
  std::vector<ov::InferRequest> requests;
  // Pointers each request's tensors currently wrap: re-binding the same buffer is skipped, so the
  // runner's reused output buffers cost nothing per iteration.
  std::vector<std::vector<const void*>> bound_in, bound_out;
  std::vector<size_t> bound_rows;  // per slot: the row count its tensors were set with
  std::vector<Clock::time_point> started;
  // One byte per slot (not vector<bool>'s shared bits): slots are started and waited on from different
  // threads in the server scenario, and each thread touches only its own slot.
  std::vector<char> busy;
  std::vector<ov::element::Type> in_types, out_types;
};

OpenVINOEngine::OpenVINOEngine(const std::string& model_path, const OpenVINOOptions& options)
    : path_(model_path), options_(options), impl_(std::make_unique<Impl>()) {
  // Validate options before touching OpenVINO so the message names the argument, not a plugin.
  precision_type(options_.precision);
  hint_mode(options_.hint);
  if (options_.threads < 0) throw InvalidArgument("threads must be >= 0 (0 = OpenVINO's default), got " + std::to_string(options_.threads));
  if (options_.streams < 0) throw InvalidArgument("streams must be >= 0 (0 = from the hint), got " + std::to_string(options_.streams));
  if (options_.num_requests < 1 || options_.num_requests > 64)
    throw InvalidArgument("num_requests must be in 1..64, got " + std::to_string(options_.num_requests));

  const std::string ext = extension_of(path_);
  if (ext != ".pb" && ext != ".onnx" && ext != ".xml")
    throw InvalidArgument(path_ + ": unsupported model file extension '" + ext +
                          "' for the OpenVINO engine (expected a frozen TensorFlow .pb, .onnx or OpenVINO IR .xml)");
  {
    std::ifstream probe(path_, std::ios::binary);
    if (!probe) throw InputError(path_, "model file not found or not readable");
  }

  try {
    impl_->model = impl_->core.read_model(path_);
  } catch (const std::exception& e) {
    throw EngineError(path_ + ": OpenVINO could not read the model: " + e.what());
  }
  const auto& model = impl_->model;
  if (model->inputs().empty() || model->outputs().empty())
    throw EngineError(path_ + ": model has no inputs or no outputs");
  fake_quantize_ops_ = count_fake_quantize(*model);
  if (precision_request(options_.precision).name == "int8" && fake_quantize_ops_ == 0)
    throw InvalidArgument(path_ + ": precision '" + options_.precision +
                          "' needs a quantized model (FakeQuantize operations, as `python -m pymfn quantize` "
                          "writes); this model has none, so it would run in float");

  // Batch handling: dimension 0 of every input is the batch. All of them dynamic -> any batch;
  // all static and equal -> that batch only. Other dimensions must be static.
  int64_t static_batch = -1;
  size_t n_dynamic = 0;
  for (size_t i = 0; i < model->inputs().size(); ++i) {
    const auto port = std::const_pointer_cast<const ov::Model>(model)->input(i);
    const std::string name = port_name(port, "input", i);
    const ov::PartialShape ps = port.get_partial_shape();
    if (ps.rank().is_dynamic() || ps.rank().get_length() < 1)
      throw EngineError(path_ + ": input '" + name + "' has shape " + ps.to_string() +
                        "; pymfn needs a known rank with the batch as dimension 0");
    for (int64_t d = 1; d < ps.rank().get_length(); ++d)
      if (ps[d].is_dynamic())
        throw EngineError(path_ + ": input '" + name + "' has shape " + ps.to_string() +
                          "; only the batch dimension (0) may be dynamic (reshape the model first)");
    if (ps[0].is_dynamic()) {
      ++n_dynamic;
    } else {
      const int64_t b = ps[0].get_length();
      if (static_batch >= 0 && b != static_batch)
        throw EngineError(path_ + ": inputs disagree on the batch dimension (" + std::to_string(static_batch) +
                          " vs " + std::to_string(b) + ")");
      static_batch = b;
    }
    impl_->in_types.push_back(port.get_element_type());
  }
  if (n_dynamic != 0 && n_dynamic != model->inputs().size())
    throw EngineError(path_ + ": some inputs have a dynamic batch dimension and some a static one");
  dynamic_batch_ = n_dynamic != 0;
  for (size_t i = 0; i < model->outputs().size(); ++i)
    impl_->out_types.push_back(model->output(i).get_element_type());

  compile(dynamic_batch_ ? 1 : static_cast<size_t>(static_batch));

  // TensorInfo from the compiled (static) shapes; the batch dimension is reported as the model has it.
  auto fill = [&](const std::vector<ov::Output<const ov::Node>>& ports, const char* kind, std::vector<TensorInfo>* out) {
    for (size_t i = 0; i < ports.size(); ++i) {
      const auto& port = ports[i];
      TensorInfo info;
      info.name = port_name(port, kind, i);
      info.dtype = to_dtype(port.get_element_type(), path_, info.name);
      const ov::PartialShape ps = port.get_partial_shape();
      if (ps.is_dynamic() || ps.rank().get_length() < 1)
        throw EngineError(path_ + ": " + kind + " '" + info.name + "' has shape " + ps.to_string() +
                          " after fixing the batch; pymfn needs static per-sample shapes");
      const ov::Shape s = ps.to_shape();
      size_t elems = 1;
      for (size_t d = 0; d < s.size(); ++d) {
        info.shape.push_back(d == 0 && dynamic_batch_ ? -1 : static_cast<int64_t>(s[d]));
        if (d > 0) elems *= s[d];
      }
      info.sample_bytes = elems * dtype_size(info.dtype);
      out->push_back(info);
    }
  };
  const auto& cm = impl_->compiled.at(compiled_key());
  fill(cm.inputs(), "input", &inputs_);
  fill(cm.outputs(), "output", &outputs_);
}

OpenVINOEngine::~OpenVINOEngine() {
  // Never leave a request writing into memory its owner is about to free.
  if (!impl_) return;
  for (size_t s = 0; s < impl_->requests.size(); ++s) {
    if (s < impl_->busy.size() && impl_->busy[s]) {
      try {
        impl_->requests[s].wait();
      } catch (...) {
      }
    }
  }
}

std::vector<size_t> OpenVINOEngine::supported_batches() const {
  if (dynamic_batch_) return {};
  return {batch_};
}

namespace {
constexpr size_t kVariableKey = size_t{1} << (sizeof(size_t) * 8 - 1);  // marks a 1..N compiled model
}  // namespace

size_t OpenVINOEngine::compiled_key() const { return batch_ | (variable_ ? kVariableKey : 0); }

void OpenVINOEngine::compile(size_t batch_rows, bool variable) {
  auto& impl = *impl_;
  const size_t key = batch_rows | (variable ? kVariableKey : 0);
  auto it = impl.compiled.find(key);
  if (it == impl.compiled.end()) {
    try {
      if (dynamic_batch_) {
        std::map<ov::Output<ov::Node>, ov::PartialShape> shapes;
        for (auto& port : impl.model->inputs()) {
          ov::PartialShape ps = port.get_partial_shape();
          ps[0] = variable ? ov::Dimension(1, static_cast<int64_t>(batch_rows)) : ov::Dimension(static_cast<int64_t>(batch_rows));
          shapes[port] = ps;
        }
        impl.model->reshape(shapes);
      }
      ov::AnyMap config;
      config.emplace(ov::hint::inference_precision(precision_type(options_.precision)));
      config.emplace(ov::hint::performance_mode(hint_mode(options_.hint)));
      if (options_.threads > 0) config.emplace(ov::inference_num_threads(options_.threads));
      if (options_.streams > 0) config.emplace(ov::num_streams(options_.streams));
      it = impl.compiled.emplace(key, impl.core.compile_model(impl.model, options_.device, config)).first;
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw EngineError(path_ + ": OpenVINO could not compile the model for batch " + std::to_string(batch_rows) +
                        " on " + options_.device + " (precision " + options_.precision + "): " + e.what());
    }
  }
  std::vector<ov::InferRequest> requests;
  try {
    for (size_t s = 0; s < options_.num_requests; ++s) requests.push_back(it->second.create_infer_request());
  } catch (const std::exception& e) {
    throw EngineError(path_ + ": OpenVINO could not create infer requests: " + e.what());
  }
  impl.requests = std::move(requests);
  impl.bound_in.assign(options_.num_requests, std::vector<const void*>(impl.model->inputs().size(), nullptr));
  impl.bound_out.assign(options_.num_requests, std::vector<const void*>(impl.model->outputs().size(), nullptr));
  impl.started.assign(options_.num_requests, Clock::time_point{});
  impl.busy.assign(options_.num_requests, false);
  impl.bound_rows.assign(options_.num_requests, 0);
  batch_ = batch_rows;
  variable_ = variable;
}

void OpenVINOEngine::prepare(size_t batch_rows) {
  if (batch_rows == 0) throw InvalidArgument("batch size must be >= 1");
  if (!dynamic_batch_ && batch_rows != batch_)
    throw InvalidArgument(path_ + ": the model has a static batch of " + std::to_string(batch_) + ", batch " +
                          std::to_string(batch_rows) + " is not available");
  if (batch_rows == batch_ && !variable_) return;
  for (char b : impl_->busy)
    if (b) throw InvalidArgument(path_ + ": prepare() called while requests are in flight; wait() for them first");
  compile(batch_rows);
}

void OpenVINOEngine::prepare_up_to(size_t max_rows) {
  if (!dynamic_batch_ || max_rows <= 1) return prepare(max_rows);
  if (max_rows == batch_ && variable_) return;
  for (char b : impl_->busy)
    if (b) throw InvalidArgument(path_ + ": prepare_up_to() called while requests are in flight; wait() for them first");
  compile(max_rows, true);
}

void OpenVINOEngine::bind(size_t slot, const IoBinding& binding) {
  const size_t rows = binding.batch_rows;
  if (rows != batch_ && !(variable_ && rows >= 1 && rows < batch_))
    throw InvalidArgument(path_ + ": binding has " + std::to_string(rows) + " rows but the engine is prepared for " +
                          (variable_ ? "1.." : "batch ") + std::to_string(batch_) + " (call prepare first)");
  if (binding.inputs.size() != inputs_.size() || binding.outputs.size() != outputs_.size())
    throw InvalidArgument(path_ + ": binding has " + std::to_string(binding.inputs.size()) + " inputs / " +
                          std::to_string(binding.outputs.size()) + " outputs, the model has " +
                          std::to_string(inputs_.size()) + " / " + std::to_string(outputs_.size()));
  auto& req = impl_->requests[slot];
  auto& bound_in = impl_->bound_in[slot];
  auto& bound_out = impl_->bound_out[slot];
  if (impl_->bound_rows[slot] != rows) {  // a tensor's shape is its row count: rebind every buffer
    std::fill(bound_in.begin(), bound_in.end(), nullptr);
    std::fill(bound_out.begin(), bound_out.end(), nullptr);
    impl_->bound_rows[slot] = rows;
  }
  try {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      if (!binding.inputs[i]) throw InvalidArgument(path_ + ": input " + std::to_string(i) + " pointer is null");
      if (bound_in[i] == binding.inputs[i]) continue;
      ov::Shape shape(inputs_[i].shape.begin(), inputs_[i].shape.end());
      shape[0] = rows;
      // Non-owning view of the caller's memory: OpenVINO reads it in place.
      bound_in[i] = nullptr;
      req.set_input_tensor(i, ov::Tensor(to_ov(inputs_[i].dtype), shape, const_cast<void*>(binding.inputs[i])));
      bound_in[i] = binding.inputs[i];
    }
    for (size_t i = 0; i < outputs_.size(); ++i) {
      if (!binding.outputs[i]) throw InvalidArgument(path_ + ": output " + std::to_string(i) + " pointer is null");
      if (bound_out[i] == binding.outputs[i]) continue;
      ov::Shape shape(outputs_[i].shape.begin(), outputs_[i].shape.end());
      shape[0] = rows;
      bound_out[i] = nullptr;
      req.set_output_tensor(i, ov::Tensor(to_ov(outputs_[i].dtype), shape, binding.outputs[i]));
      bound_out[i] = binding.outputs[i];
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw EngineError(path_ + ": OpenVINO rejected the I/O buffers: " + e.what());
  }
}

StageTimes OpenVINOEngine::execute(const IoBinding& binding) {
  if (impl_->busy[0]) throw InvalidArgument(path_ + ": execute() while slot 0 has a request in flight");
  bind(0, binding);
  StageTimes t;
  const auto t0 = Clock::now();
  try {
    impl_->requests[0].infer();
  } catch (const std::exception& e) {
    throw EngineError(path_ + ": OpenVINO inference failed: " + e.what());
  }
  t.compute_ms = ms_between(t0, Clock::now());
  return t;
}

void OpenVINOEngine::start(size_t slot, const IoBinding& binding) {
  if (slot >= options_.num_requests)
    throw InvalidArgument(path_ + ": slot " + std::to_string(slot) + " out of range (num_requests = " +
                          std::to_string(options_.num_requests) + ")");
  if (impl_->busy[slot]) throw InvalidArgument(path_ + ": slot " + std::to_string(slot) + " is already in flight");
  bind(slot, binding);
  impl_->started[slot] = Clock::now();
  try {
    impl_->requests[slot].start_async();
  } catch (const std::exception& e) {
    throw EngineError(path_ + ": OpenVINO could not start inference: " + e.what());
  }
  impl_->busy[slot] = true;
}

StageTimes OpenVINOEngine::wait(size_t slot) {
  if (slot >= options_.num_requests || !impl_->busy[slot])
    throw InvalidArgument(path_ + ": wait(" + std::to_string(slot) + ") without a matching start()");
  impl_->busy[slot] = false;
  try {
    impl_->requests[slot].wait();
  } catch (const std::exception& e) {
    throw EngineError(path_ + ": OpenVINO inference failed: " + e.what());
  }
  StageTimes t;
  t.compute_ms = ms_between(impl_->started[slot], Clock::now());
  return t;
}

std::map<std::string, std::string> OpenVINOEngine::properties() const {
  std::map<std::string, std::string> p;
  const ov::Version v = ov::get_openvino_version();
  p["openvino_version"] = v.buildNumber ? v.buildNumber : "unknown";
  p["device"] = options_.device;
  p["precision"] = lower(options_.precision);
  p["requested_precision"] = precision_request(options_.precision).name;
  p["fake_quantize_ops"] = std::to_string(fake_quantize_ops_);
  p["hint"] = lower(options_.hint);
  p["num_requests"] = std::to_string(options_.num_requests);
  p["batch"] = std::to_string(batch_);
  p["dynamic_batch"] = dynamic_batch_ ? "true" : "false";
  if (variable_) p["batch_per_request"] = "1.." + std::to_string(batch_);
  p["model_format"] = extension_of(path_).substr(1);
  p["input_shapes"] = "";
  for (size_t i = 0; i < inputs_.size(); ++i) p["input_shapes"] += (i ? " " : "") + shape_str(inputs_[i].shape, ",");
  // What the plugin actually chose, which can differ from what was asked (e.g. bf16 without AVX512-BF16).
  try {
    const auto& cm = impl_->compiled.at(compiled_key());
    p["inference_precision"] = cm.get_property(ov::hint::inference_precision).get_type_name();
    p["threads"] = std::to_string(cm.get_property(ov::inference_num_threads));
    p["streams"] = std::to_string(cm.get_property(ov::num_streams).num);
    p["optimal_num_requests"] = std::to_string(cm.get_property(ov::optimal_number_of_infer_requests));
    p["cpu_pinning"] = cm.get_property(ov::hint::enable_cpu_pinning) ? "true" : "false";
  } catch (const std::exception& e) {
    p["property_error"] = e.what();
  }
  add_runtime_precision(&p);
  return p;
}

void OpenVINOEngine::add_runtime_precision(std::map<std::string, std::string>* p) const {
  // What ran, from the compiled model itself: the hint alone cannot tell (OpenVINO falls back silently).
  try {
    const auto& cm = impl_->compiled.at(compiled_key());
    const RuntimePrecision r = runtime_precision_of(cm);
    std::vector<std::string> caps;
    try {
      caps = impl_->core.get_property(options_.device, ov::device::capabilities);
    } catch (const std::exception&) {
      // a device without the capabilities property: the verdict then names no hardware reason
    }
    std::string caps_text;
    for (const auto& c : caps) caps_text += (caps_text.empty() ? "" : " ") + c;
    (*p)["device_capabilities"] = caps_text;
    (*p)["runtime_precision"] = r.compute.empty() ? "unknown" : counts_text(r.compute);
    std::string by_type;
    for (const auto& [type, counts] : r.by_type)
      by_type += (by_type.empty() ? "" : "; ") + type + ": " + counts_text(counts);
    (*p)["runtime_precision_by_layer_type"] = by_type;
    (*p)["precision_check"] = precision_verdict(precision_request(options_.precision).name, r, fake_quantize_ops_, caps);
  } catch (const std::exception& e) {
    (*p)["runtime_precision"] = "unknown";
    (*p)["precision_check"] = std::string("unknown: could not read the runtime graph (") + e.what() + ")";
  }
}

}  // namespace pymfn
