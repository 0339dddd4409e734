// ACL emulator, models: om files and their emulator payload, load / query size / unload.
//
// ================================================================ CONTRACT (models and om payloads)
// * An emulator .om is a genuine 256-byte om header (csrc/engines/acl/om_header.h) followed by pymfn's payload:
//   a meta text (inputs, outputs, precision, dynamic batch list) and an OpenVINO IR (xml + weights).
// * aclmdlLoadFromFile / LoadFromMem / LoadFromFileWithMem / LoadFromMemWithMem: unreadable file (missing,
//   a directory) -> 100014; NULL path / model / modelId, or a 0-byte memory model -> 100000; file shorter
//   than 256 bytes, wrong magic ("IMOD") or headsize != 256 -> 100003; a valid om header whose payload is not
//   a pymfn emulator payload (a real Ascend om), a malformed payload, or an IR OpenVINO cannot read/compile
//   -> 100013. Loading needs a current context (107002); the model belongs to that context.
// * aclmdlQuerySize / QuerySizeFromMem report the payload sizes (weights = IR weights, work = IR xml + meta);
//   the *WithMem loads check that a non-NULL workPtr / weightPtr is device memory of at least that size
//   (100000) and otherwise load like their plain counterparts (the emulator keeps its working memory on the
//   host).
// * aclmdlUnload: unknown model id -> 100011 (also for every other call taking a model id); from another
//   context than the one it was loaded in -> 107004; while it executes or has queued async work -> 500001.
// * Arithmetic: one for every om on every host, whatever fp16 / bf16 / AMX / VNNI units the CPU has, and
//   never below the device's: OpenVINO compiles the payload for IEEE f32 (inference precision f32, execution
//   mode ACCURACY, denormals kept).
//   - payload "f16" (ATC's fp16 modes): f32 arithmetic on the IR's fp16 weights (widened exactly) and on
//     fp16-rounded float32 inputs (execute.cpp). The device computes fp16 with fp32 accumulation. Native f16
//     is not used even where the CPU has it: f16 inference keeps activations in f16 with the host's own
//     rounding and kernel choices, so the same om would score differently per host; bf16 keeps 8 mantissa
//     bits, below fp16's 11.
//   - FakeQuantize in the payload (an INT8 om): the CPU plugin's low-precision transformations are off, so
//     each FakeQuantize runs as itself in f32 (values snapped to the int8 grid) and the quantized layers
//     multiply grid values in f32: exact int8 x int8 products, summed in f32 (relative error ~1e-7, far
//     below the device's fp16 dequantised outputs). OpenVINO's int8 kernels are not used: where the CPU has
//     no VNNI they add u8 x s8 pairs in saturating int16 (vpmaddubsw), below the device's int32
//     accumulation and different from VNNI/AMX hosts.
//   - payload "f32" (must_keep_origin_dtype): f32, as on the device.
//   Narrow constants (fp16 weights, int8 weights with their scale) are widened to float before compiling,
//   so no ISA-specific compressed-weights kernel is chosen. Results agree between hosts to f32 rounding
//   (kernels sum in different orders), so a float16 output may differ by one ulp (tests/test_emulator.py
//   holds outputs to one ulp of float64 references under two instruction sets). pymfnEmuModelCompileRecord
//   (emulator_api.h) reports the arithmetic per model, the device's beside it, and what OpenVINO's execution
//   graph ran.
// * Dynamic batch (an om whose dims start with -1 and whose meta lists dynamic_batch sizes): like ATC, the
//   model gets one extra LAST input named "ascend_mbatch_shape_data", dtype ACL_INT64, dims [1], 8 bytes;
//   buffers are sized for the largest batch. See model_desc.cpp (setting the batch) and execute.cpp.
// ================================================================
#include <openvino/core/graph_util.hpp>
#include <openvino/op/constant.hpp>
#include <openvino/runtime/intel_cpu/properties.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "acl_emulator/state.h"
#include "engines/openvino/exec_graph.h"

namespace om = pymfn::om;

namespace pymfn_emu {

// Element conversions between the om's dtypes and the IR's (execute.cpp).
ov::element::Type ov_type_of(aclDataType t);
bool convertible(ov::element::Type from, ov::element::Type to);

aclError find_model(const char* fn, uint32_t id, std::shared_ptr<Model>* m) {
  auto it = g.models.find(id);
  if (it == g.models.end()) return fail(ACL_ERROR_INVALID_MODEL_ID, fn, "no loaded model has id " + std::to_string(id));
  *m = it->second;
  return ACL_SUCCESS;
}

namespace {

aclDataType dtype_of(const std::string& s) {
  if (s == "float32") return ACL_FLOAT;
  if (s == "float16") return ACL_FLOAT16;
  if (s == "uint8") return ACL_UINT8;
  if (s == "int32") return ACL_INT32;
  if (s == "int64") return ACL_INT64;
  return ACL_DT_UNDEFINED;
}

aclFormat format_of(const std::string& s) {
  if (s == "NHWC") return ACL_FORMAT_NHWC;
  if (s == "NCHW") return ACL_FORMAT_NCHW;
  return ACL_FORMAT_ND;
}

// Parses the payload's meta into the model's I/O table (including the mbatch input of dynamic models).
aclError describe_io(const char* fn, Model* m) {
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
    if (!make_io(t, &io)) return fail(ACL_ERROR_PARSE_MODEL, fn, m->source + ": input '" + t.name + "' has no bytes");
    m->inputs.push_back(io);
  }
  for (const auto& t : meta.outputs) {
    IoInfo io;
    if (!make_io(t, &io)) return fail(ACL_ERROR_PARSE_MODEL, fn, m->source + ": output '" + t.name + "' has no bytes");
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
  return ACL_SUCCESS;
}

std::string counts_text(const std::map<std::string, size_t>& counts) {
  std::string s;
  for (const auto& [precision, n] : counts) s += (s.empty() ? "" : ", ") + precision + " x" + std::to_string(n);
  return s;
}

size_t count_fake_quantize(const ov::Model& model) {
  size_t n = 0;
  for (const auto& op : model.get_ops())
    if (std::string(op->get_type_name()) == "FakeQuantize") ++n;
  return n;
}

// Weights the IR stores narrow -- fp16 (an fp16 payload) or int8 with a scale (the quantized layers of an
// INT8 payload) -- reach their layer through a Convert. Each such Convert of a constant becomes a constant
// holding the same values in the Convert's (float) type: a widening, exact for fp16 and int8. The CPU plugin
// then sees plain float weights and never picks a "compressed weights" kernel, whose choice and arithmetic
// depend on the host's ISA (a fully connected layer with int8 weights has no kernel below AVX2, and above
// it may quantize activations on the fly). Returns the stored types widened, "f16 x52, i8 x3".
std::string widen_stored_weights(const std::shared_ptr<ov::Model>& model) {
  std::map<std::string, size_t> widened;
  for (const auto& op : model->get_ordered_ops()) {
    if (std::string(op->get_type_name()) != "Convert") continue;
    auto stored = std::dynamic_pointer_cast<ov::op::v0::Constant>(op->get_input_node_shared_ptr(0));
    const ov::element::Type to = op->get_output_element_type(0);
    if (!stored || !to.is_real() || stored->get_element_type() == ov::element::boolean) continue;
    auto wide = std::make_shared<ov::op::v0::Constant>(to, stored->get_shape(), stored->cast_vector<double>());
    wide->set_friendly_name(op->get_friendly_name());
    ov::replace_node(op, wide);
    ++widened[stored->get_element_type().get_type_name()];
  }
  return widened.empty() ? "none" : counts_text(widened);
}

// One arithmetic for every payload on every host (see the contract above): IEEE f32, denormals kept.
// An INT8 payload's FakeQuantize operations run as themselves (in f32): the CPU plugin's low-precision
// transformations, which would hand the quantized layers to its int8 kernels, are switched off
// ("LP_TRANSFORMS_MODE", a CPU plugin property of the pinned OpenVINO; a release without it fails the
// load with 100013 rather than silently running int8 kernels).
ov::AnyMap compile_config(uint32_t threads, size_t fake_quantize_ops) {
  ov::AnyMap config;
  config[ov::hint::performance_mode.name()] = ov::hint::PerformanceMode::LATENCY;
  if (threads > 0) config[ov::inference_num_threads.name()] = static_cast<int32_t>(threads);
  config[ov::hint::inference_precision.name()] = ov::element::f32;
  config[ov::hint::execution_mode.name()] = ov::hint::ExecutionMode::ACCURACY;
  config[ov::intel_cpu::denormals_optimization.name()] = false;
  if (fake_quantize_ops > 0) config["LP_TRANSFORMS_MODE"] = false;
  return config;
}

// The device's arithmetic for the om and the sentence saying how the emulator's compares.
void describe_arithmetic(const om::EmulatorMeta& meta, CompileRecord* r) {
  r->compute_precision = "f32";
  const bool fp16_mode = meta.precision == "f16";
  const std::string fq = std::to_string(r->fake_quantize_ops);
  if (r->fake_quantize_ops > 0) {
    r->device_precision = "int8";
    r->precision_reason =
        "f32 on int8-grid weights and activations (" + fq + " FakeQuantize ops run in f32: exact int8 x int8 "
        "products, f32 sums), " + (fp16_mode ? "fp16-rounded weights and inputs elsewhere" : "f32 elsewhere") +
        "; device arithmetic int8 x int8 -> int32" + (fp16_mode ? ", fp16 elsewhere" : ", f32 elsewhere") +
        "; the same on every host";
  } else if (fp16_mode) {
    r->device_precision = "f16";
    r->precision_reason =
        "f32 on fp16-rounded weights and inputs; device arithmetic fp16; the same on every host (never bf16 or "
        "native f16)";
  } else {
    r->device_precision = "f32";
    r->precision_reason = "f32, as the om declares (must_keep_origin_dtype); device arithmetic f32";
  }
}

using pymfn::exec_graph::is_compute_layer;
using pymfn::exec_graph::rt_string;

// What OpenVINO's CPU plugin compiled. A node's arithmetic is the element type of its data input (input 0)
// in the execution graph: the plugin's "runtimePrecision" of a convolution names its weights' storage type
// when that differs (f16 for fp16 weights) even when its kernel computes in f32.
void read_runtime_graph(const ov::CompiledModel& compiled, CompileRecord* r) {
  std::map<std::string, std::map<std::string, size_t>> by_type;
  std::map<std::string, size_t> compute;
  for (const auto& op : compiled.get_runtime_model()->get_ordered_ops()) {
    const std::string type = rt_string(*op, "layerType");
    if (type.empty() || type == "Const" || type == "Input" || type == "Output" || type == "Reshape") continue;
    std::string precision = op->get_input_size() > 0 ? op->get_input_element_type(0).get_type_name()
                                                     : rt_string(*op, "runtimePrecision");
    if (precision.empty()) precision = "unknown";
    ++by_type[type][precision];
    if (is_compute_layer(type)) ++compute[precision];
  }
  r->runtime_precision = compute.empty() ? "unknown" : counts_text(compute);
  r->runtime_precision_by_layer_type.clear();
  for (const auto& [type, counts] : by_type)
    r->runtime_precision_by_layer_type += (r->runtime_precision_by_layer_type.empty() ? "" : "; ") + type + ": " +
                                          counts_text(counts);
}

// Reads and compiles the payload IR, checking its ports against the meta.
aclError compile_ir(const char* fn, const om::EmulatorPayloadView& view, Model* m, uint32_t threads) {
  const auto& meta = m->meta;
  const std::string& source = m->source;
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
    m->round_inputs_f16 = meta.precision == "f16";
    m->compiled_as.fake_quantize_ops = count_fake_quantize(*model);
    m->compiled_as.stored_weights_precision = widen_stored_weights(model);
    describe_arithmetic(meta, &m->compiled_as);
    const ov::AnyMap config = compile_config(threads, m->compiled_as.fake_quantize_ops);
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
    read_runtime_graph(m->compiled, &m->compiled_as);
    m->request = m->compiled.create_infer_request();
    m->scratch.resize(n_in);
  } catch (const std::exception& e) {
    return fail(ACL_ERROR_PARSE_MODEL, fn, source + ": OpenVINO could not read/compile the payload IR: " + e.what());
  }
  return ACL_SUCCESS;
}

// Builds a model from a whole om image (no lock held: compiling takes a while).
aclError build_model(const char* fn, std::vector<uint8_t> image, const std::string& source, uint32_t threads,
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
  m->om_name = view.header.name;
  EMU_CHECK(describe_io(fn, m.get()));
  EMU_CHECK(compile_ir(fn, view, m.get(), threads));
  *out = std::move(m);
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

aclError copy_image(const char* fn, const void* model, size_t size, std::vector<uint8_t>* out) {
  if (!model) return fail(ACL_ERROR_INVALID_PARAM, fn, "model pointer is NULL");
  if (size == 0) return fail(ACL_ERROR_INVALID_PARAM, fn, "modelSize is 0");
  const auto* p = static_cast<const uint8_t*>(model);
  try {
    out->assign(p, p + size);
  } catch (const std::bad_alloc&) {
    return fail(ACL_ERROR_BAD_ALLOC, fn, "cannot copy " + std::to_string(size) + " bytes");
  }
  return ACL_SUCCESS;
}

aclError load_image(const char* fn, std::vector<uint8_t> image, const std::string& source, uint32_t* id) {
  if (!id) return fail(ACL_ERROR_INVALID_PARAM, fn, "modelId is NULL");
  uint32_t threads = 0;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(need_ctx(fn));
    threads = g.device_model.threads;
  }
  std::shared_ptr<Model> m;
  EMU_CHECK(build_model(fn, std::move(image), source, threads, &m));  // compile outside the registry lock
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  EMU_CHECK(need_ctx(fn));  // the context may have gone while the model compiled
  m->ctx = t_ctx;
  if (g.device_model.timing()) {
    m->device_unit = g.device_units.at(static_cast<size_t>(t_ctx->device));
    m->exec_floor_ms = g.device_model.exec_ms;
    m->exec_floor_per_row_ms = g.device_model.exec_ms_per_row;
  }
  m->id = g.next_model_id++;
  g.models[m->id] = m;
  *id = m->id;
  return ACL_SUCCESS;
}

// Payload sizes of an om image (the emulator's stand-in for the NPU's work and weight memory).
aclError query_sizes(const char* fn, const std::vector<uint8_t>& image, const std::string& source, size_t* work,
                     size_t* weight) {
  om::EmulatorPayloadView v;
  std::string err;
  int code = 0;
  if (!om::split_emulator_om(image.data(), image.size(), &v, &err, &code))
    return fail(code == 1 ? ACL_ERROR_INVALID_FILE : ACL_ERROR_PARSE_MODEL, fn, source + ": " + err);
  *weight = v.weights_len;
  *work = v.xml_len + v.meta_text.size();
  return ACL_SUCCESS;
}

// The *WithMem loads: caller-provided work/weight memory must be device memory that is large enough.
aclError check_model_memory(const char* fn, void* workPtr, size_t workSize, size_t need_work, void* weightPtr,
                            size_t weightSize, size_t need_weight) {
  std::lock_guard<std::mutex> lk(g_mu);
  bool ov = false;
  if (workPtr && (workSize < need_work || locate(workPtr, workSize, &ov) != Where::kDevice || ov))
    return fail(ACL_ERROR_INVALID_PARAM, fn, "workPtr must be device memory of at least " + std::to_string(need_work) + " bytes");
  if (weightPtr && (weightSize < need_weight || locate(weightPtr, weightSize, &ov) != Where::kDevice || ov))
    return fail(ACL_ERROR_INVALID_PARAM, fn, "weightPtr must be device memory of at least " + std::to_string(need_weight) + " bytes");
  return ACL_SUCCESS;
}

aclError init_checked(const char* fn) {
  std::lock_guard<std::mutex> lk(g_mu);
  return need_init(fn);
}

}  // namespace
}  // namespace pymfn_emu

using namespace pymfn_emu;

extern "C" {

aclError aclmdlLoadFromFile(const char* modelPath, uint32_t* modelId) {
  const char* fn = "aclmdlLoadFromFile";
  EMU_CHECK(init_checked(fn));
  std::vector<uint8_t> image;
  EMU_CHECK(read_file(fn, modelPath, &image));
  return load_image(fn, std::move(image), modelPath, modelId);
}

aclError aclmdlLoadFromMem(const void* model, size_t modelSize, uint32_t* modelId) {
  const char* fn = "aclmdlLoadFromMem";
  EMU_CHECK(init_checked(fn));
  std::vector<uint8_t> image;
  EMU_CHECK(copy_image(fn, model, modelSize, &image));
  return load_image(fn, std::move(image), "<memory>", modelId);
}

aclError aclmdlQuerySize(const char* fileName, size_t* workSize, size_t* weightSize) {
  const char* fn = "aclmdlQuerySize";
  EMU_CHECK(init_checked(fn));
  if (!workSize || !weightSize) return fail(ACL_ERROR_INVALID_PARAM, fn, "output pointer is NULL");
  std::vector<uint8_t> image;
  EMU_CHECK(read_file(fn, fileName, &image));
  return query_sizes(fn, image, fileName, workSize, weightSize);
}

aclError aclmdlQuerySizeFromMem(const void* model, size_t modelSize, size_t* workSize, size_t* weightSize) {
  const char* fn = "aclmdlQuerySizeFromMem";
  EMU_CHECK(init_checked(fn));
  if (!workSize || !weightSize) return fail(ACL_ERROR_INVALID_PARAM, fn, "output pointer is NULL");
  std::vector<uint8_t> image;
  EMU_CHECK(copy_image(fn, model, modelSize, &image));
  return query_sizes(fn, image, "<memory>", workSize, weightSize);
}

aclError aclmdlLoadFromFileWithMem(const char* modelPath, uint32_t* modelId, void* workPtr, size_t workSize,
                                   void* weightPtr, size_t weightSize) {
  const char* fn = "aclmdlLoadFromFileWithMem";
  EMU_CHECK(init_checked(fn));
  std::vector<uint8_t> image;
  EMU_CHECK(read_file(fn, modelPath, &image));
  size_t need_work = 0, need_weight = 0;
  EMU_CHECK(query_sizes(fn, image, modelPath, &need_work, &need_weight));
  EMU_CHECK(check_model_memory(fn, workPtr, workSize, need_work, weightPtr, weightSize, need_weight));
  return load_image(fn, std::move(image), modelPath, modelId);
}

aclError aclmdlLoadFromMemWithMem(const void* model, size_t modelSize, uint32_t* modelId, void* workPtr,
                                  size_t workSize, void* weightPtr, size_t weightSize) {
  const char* fn = "aclmdlLoadFromMemWithMem";
  EMU_CHECK(init_checked(fn));
  std::vector<uint8_t> image;
  EMU_CHECK(copy_image(fn, model, modelSize, &image));
  size_t need_work = 0, need_weight = 0;
  EMU_CHECK(query_sizes(fn, image, "<memory>", &need_work, &need_weight));
  EMU_CHECK(check_model_memory(fn, workPtr, workSize, need_work, weightPtr, weightSize, need_weight));
  return load_image(fn, std::move(image), "<memory>", modelId);
}

int pymfnEmuModelCompileRecord(uint32_t modelId, char* buf, size_t len, size_t* needed) {
  const char* fn = "pymfnEmuModelCompileRecord";
  if (!needed) return fail(ACL_ERROR_INVALID_PARAM, fn, "needed is NULL");
  std::string text;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    std::shared_ptr<Model> m;
    EMU_CHECK(find_model(fn, modelId, &m));
    const CompileRecord& r = m->compiled_as;
    text = "compute_precision=" + r.compute_precision + "\ndevice_precision=" + r.device_precision +
           "\nprecision_reason=" + r.precision_reason + "\nruntime_precision=" + r.runtime_precision +
           "\nstored_weights_precision=" + r.stored_weights_precision +
           "\nruntime_precision_by_layer_type=" + r.runtime_precision_by_layer_type +
           "\nfake_quantize_ops=" + std::to_string(r.fake_quantize_ops) + "\n";
  }
  *needed = text.size();
  if (buf && len > 0) {
    const size_t n = std::min(len - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return ACL_SUCCESS;
}

aclError aclmdlUnload(uint32_t modelId) {
  const char* fn = "aclmdlUnload";
  std::shared_ptr<Model> m;  // released after the lock: the OpenVINO objects go with it
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  EMU_CHECK(find_model(fn, modelId, &m));
  EMU_CHECK(need_ctx(fn));
  if (m->ctx != t_ctx)
    return fail(ACL_ERROR_RT_MODEL_CONTEXT, fn, "model " + std::to_string(modelId) + " was loaded in another context");
  if (m->active || m->pending)
    return fail(ACL_ERROR_FAILURE, fn,
                "model " + std::to_string(modelId) + " is executing or has queued async work (synchronize the stream first)");
  g.models.erase(modelId);
  return ACL_SUCCESS;
}

}  // extern "C"
