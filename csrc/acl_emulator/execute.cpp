// ACL emulator, execution: what aclmdlExecute / aclmdlExecuteAsync check, and what they compute.
//
// ================================================================ CONTRACT (execute)
// Checks (sync and async alike; async ones fail at once, like the real enqueue):
// * the model id is loaded (100011), the calling thread has a current context (107002) that is the one the
//   model was loaded in (107004); async: the stream is live (100000) and belongs to that context (107003);
//   a NULL stream is the context's default stream.
// * datasets must be live handles holding exactly one buffer per model input/output, each buffer exactly
//   the model's I/O size (the largest batch for dynamic models), not NULL, inside its allocation -> 100000.
// * where the buffers live: in ACL_HOST mode every buffer must lie inside an aclrtMalloc block; host memory
//   (pinned or not) fails like the hardware's DMA would -> 500003. In ACL_DEVICE mode aclrtMalloc and
//   aclrtMallocHost memory are accepted, unknown memory is not -> 500003.
// * dynamic batch: the "ascend_mbatch_shape_data" buffer must hold an offered size (aclmdlSetDynamicBatchSize;
//   the 0xA5 garbage of a never-set device buffer is not) -> 100000.
// * tensor descriptions set on the INPUT dataset (aclmdlSetDatasetTensorDesc) must describe the shape that
//   runs (the model's dims, the batch in use first) -> 100000: emulator models have no shape ranges.
// * concurrency: one model id executing on two threads at once, or queued on two streams at once -> 500001
//   (a shared model id needs a lock around set-inputs+execute).
// * a failure of the task itself (500003 memory the device cannot reach, 500002 the computation failed)
//   calls the exception callback (streams.cpp) before the failing call -- or, for async work, the
//   aclrtSynchronizeStream that reports it -- returns. Rejected arguments do not: no task was launched.
//
// What it COMPUTES: the payload IR runs on OpenVINO's CPU plugin on the rows of the batch, in f32 on every
// host (models.cpp, "Arithmetic"). Payload precision "f16" (what ATC's force_fp16 / allow_fp32_to_fp16 /
// allow_mix_precision stand for) rounds every float32 input to float16 first (as the NPU's first cast does);
// its weights are already fp16 (the converter stores them so). Outputs are converted to the om's declared
// output dtype (the reference om outputs float16, 256 bytes per image: rounded to nearest even) and written
// to the output buffers. With a dynamic batch only the
// first `batch` rows are read and only the first size*batch/maxBatch bytes of each output are written (the
// rest is left untouched). After a successful execute, a tensor description set on an OUTPUT of the output
// dataset holds the executed shape, dtype and format; aclmdlGetCurOutputDims reports the executed batch.
// Async: the dataset's buffer addresses and the dynamic batch value are taken at enqueue, the data itself
// is read when the stream's worker runs the task.
//
// Device timing model (PYMFN_ACL_EMU_EXEC_MS / _PER_ROW > 0, see lifecycle.cpp): each device is one
// execution unit. An execute takes the unit of its model's device, computes, and keeps the unit until at
// least EXEC_MS + EXEC_MS_PER_ROW x its executed rows have passed since it took it (the rest is slept,
// costing no CPU). Executes on one device queue up; executes on different devices never wait for each other. Without it, executes of every device run
// concurrently on the host's CPU as their threads allow.
// ================================================================
#include <openvino/core/type/float16.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>

#include "acl_emulator/state.h"

namespace pymfn_emu {

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

// Element conversion between the om's dtype and the IR's (only the pairs the emulator supports).
bool convertible(ov::element::Type from, ov::element::Type to) {
  if (from == to) return true;
  const bool f_ok = from == ov::element::f32 || from == ov::element::f16 || from == ov::element::u8;
  const bool t_ok = to == ov::element::f32 || to == ov::element::f16;
  return f_ok && t_ok;
}

namespace {

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

uint32_t os_thread_id() { return static_cast<uint32_t>(::syscall(SYS_gettid)); }

std::vector<int64_t> executed_dims(const IoInfo& io, uint64_t rows) {
  std::vector<int64_t> d = io.dims;
  if (!d.empty() && d[0] == -1) d[0] = static_cast<int64_t>(rows);
  return d;
}

std::string dims_text(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// Checks one side's buffers against the model's I/O table (g_mu held); fills the views.
aclError check_side(const char* fn, const Model& m, const char* side, aclmdlDataset* ds, const std::vector<IoInfo>& ios,
                    std::vector<BufView>* views) {
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
}

// Input tensor descriptions must describe what runs (g_mu held).
aclError check_input_descs(const char* fn, const Model& m, const aclmdlDataset* ids, uint64_t rows) {
  for (size_t i = 0; i < ids->descs.size() && i < m.inputs.size(); ++i) {
    const aclTensorDesc* d = ids->descs[i];
    if (!d) continue;
    const auto want = executed_dims(m.inputs[i], rows);
    if (d->dims != want)
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  "input " + std::to_string(i) + " ('" + m.inputs[i].name + "'): its tensor description says " +
                      dims_text(d->dims) + " but the model runs " + dims_text(want) +
                      " (emulator models have static shapes apart from the dynamic batch)");
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
  EMU_CHECK(check_side(fn, m, "input", ids, m.inputs, in));
  EMU_CHECK(check_side(fn, m, "output", ods, m.outputs, out));
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
  return check_input_descs(fn, m, ids, *rows);
}

// After a successful execute: the output dataset's tensor descriptions receive the executed shapes
// (g_mu held; the dataset may have been destroyed meanwhile when the work was queued).
void record_output_shapes(const Model& m, aclmdlDataset* ods, uint64_t serial, uint64_t rows) {
  if (!g.datasets.count(ods) || ods->serial != serial) return;
  for (size_t j = 0; j < ods->descs.size() && j < m.outputs.size(); ++j) {
    aclTensorDesc* d = ods->descs[j];
    if (!d) continue;
    d->dims = executed_dims(m.outputs[j], rows);
    d->dtype = m.outputs[j].dtype;
    d->format = m.outputs[j].format;
  }
}

// Buffer addresses of a dataset as launched, for an exception description (g_mu held).
std::vector<BufView> launched_views(const aclmdlDataset* ds) {
  std::vector<BufView> v;
  if (!ds || !g.datasets.count(const_cast<aclmdlDataset*>(ds))) return v;
  for (auto* b : ds->buffers) v.push_back(g.buffers.count(b) ? BufView{b->data, b->size} : BufView{nullptr, 0});
  return v;
}

uint64_t declared_rows(const Model& m) {
  if (m.mbatch_index != kNone) return m.max_batch;
  return m.inputs.empty() || m.inputs[0].dims.empty() ? 1 : static_cast<uint64_t>(m.inputs[0].dims[0]);
}

aclError check_model_call(const char* fn, uint32_t modelId, std::shared_ptr<Model>* m) {
  EMU_CHECK(need_init(fn));
  EMU_CHECK(find_model(fn, modelId, m));
  EMU_CHECK(need_ctx(fn));
  if ((*m)->ctx != t_ctx)
    return fail(ACL_ERROR_RT_MODEL_CONTEXT, fn, "model " + std::to_string(modelId) + " was loaded in another context");
  return ACL_SUCCESS;
}

}  // namespace

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

aclError run_on_device(Model& m, const std::vector<BufView>& in, const std::vector<BufView>& out, uint64_t rows,
                       std::string* msg) {
  if (!m.device_unit) return run_model(m, in, out, rows, msg);
  std::lock_guard<std::mutex> unit(*m.device_unit);
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                         std::chrono::duration<double, std::milli>(
                             m.exec_floor_ms + m.exec_floor_per_row_ms * static_cast<double>(rows)));
  const aclError rc = run_model(m, in, out, rows, msg);
  std::this_thread::sleep_until(until);
  return rc;
}

}  // namespace pymfn_emu

using namespace pymfn_emu;

extern "C" {

aclError aclmdlExecute(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output) {
  const char* fn = "aclmdlExecute";
  std::shared_ptr<Model> m;
  std::vector<BufView> in, out;
  uint64_t rows = 0;
  uint32_t stream_id = 0, task_id = 0;
  std::unique_ptr<rtExceptionInfo> info;
  aclError rc = ACL_SUCCESS;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(check_model_call(fn, modelId, &m));
    next_sync_task(&stream_id, &task_id);
    rc = check_execute(fn, *m, input, output, &in, &out, &rows);
    if (rc == ACL_ERROR_RT_FAILURE) {  // the task launched and its DMA failed
      info = describe_failed_task(*m, launched_views(input), launched_views(output), declared_rows(*m), stream_id,
                                  task_id, rc);
      info->thread_id = os_thread_id();
    } else if (rc != ACL_SUCCESS) {
      return rc;
    } else if (m->active || m->pending) {
      return fail(ACL_ERROR_FAILURE, fn,
                  "model " + std::to_string(modelId) +
                      " is already executing (another thread, or queued on a stream): one model id must not run "
                      "concurrently; guard set-inputs+execute with a lock");
    } else {
      m->active = 1;
    }
  }
  if (info) {
    raise_exception(std::move(info));
    return rc;
  }
  std::string msg;
  {
    std::lock_guard<std::mutex> ek(m->exec_mu);
    rc = run_on_device(*m, in, out, rows, &msg);
  }
  {
    std::lock_guard<std::mutex> lk(g_mu);
    m->active = 0;
    if (rc == ACL_SUCCESS) {
      m->last_batch = rows;
      ++g.executes;
      record_output_shapes(*m, output, output->serial, rows);
      return ACL_SUCCESS;
    }
    info = describe_failed_task(*m, in, out, rows, stream_id, task_id, rc);
    info->thread_id = os_thread_id();
  }
  raise_exception(std::move(info));
  return fail(rc, fn, msg);
}

aclError aclmdlExecuteAsync(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output, aclrtStream stream) {
  const char* fn = "aclmdlExecuteAsync";
  std::shared_ptr<Model> m;
  std::vector<BufView> in, out;
  uint64_t rows = 0;
  Stream* s = nullptr;
  uint32_t task_id = 0;
  const uint32_t thread_id = os_thread_id();
  std::unique_ptr<rtExceptionInfo> info;
  aclError rc = ACL_SUCCESS;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init(fn));
    EMU_CHECK(find_model(fn, modelId, &m));
    EMU_CHECK(need_ctx(fn));
    EMU_CHECK(resolve_stream(fn, stream, &s));
    if (m->ctx != t_ctx)
      return fail(ACL_ERROR_RT_MODEL_CONTEXT, fn, "model " + std::to_string(modelId) + " was loaded in another context");
    task_id = s->next_task++;
    rc = check_execute(fn, *m, input, output, &in, &out, &rows);
    if (rc == ACL_ERROR_RT_FAILURE) {
      info = describe_failed_task(*m, launched_views(input), launched_views(output), declared_rows(*m), s->id,
                                  task_id, rc);
      info->thread_id = thread_id;
    } else if (rc != ACL_SUCCESS) {
      return rc;
    } else if (m->active || (m->pending && m->pending_stream != s)) {
      return fail(ACL_ERROR_FAILURE, fn,
                  "model " + std::to_string(modelId) +
                      " is already running or queued on another stream: one model id must not run concurrently on "
                      "several streams");
    } else {
      ++m->pending;
      m->pending_stream = s;
    }
  }
  if (info) {
    raise_exception(std::move(info));
    return rc;
  }
  const uint32_t stream_id = s->id;
  const uint64_t out_serial = output->serial;
  s->push(Task{[m, in, out, rows, output, out_serial, stream_id, task_id, thread_id](std::string* msg) {
    aclError rc;
    {
      std::lock_guard<std::mutex> ek(m->exec_mu);
      rc = run_on_device(*m, in, out, rows, msg);
    }
    std::unique_ptr<rtExceptionInfo> failed;
    {
      std::lock_guard<std::mutex> lk(g_mu);
      if (--m->pending == 0) m->pending_stream = nullptr;
      if (rc == ACL_SUCCESS) {
        m->last_batch = rows;
        ++g.executes;
        record_output_shapes(*m, output, out_serial, rows);
      } else {
        failed = describe_failed_task(*m, in, out, rows, stream_id, task_id, rc);
        failed->thread_id = thread_id;
      }
    }
    if (failed) raise_exception(std::move(failed));
    return rc;
  }});
  return ACL_SUCCESS;
}

}  // extern "C"
