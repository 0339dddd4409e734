// ACL emulator, model descriptions and dynamic gears (batch, image size, dims).
//
// ================================================================ CONTRACT (model descriptions, dynamic gears)
// * aclmdlDesc handles must be live (aclmdlCreateDesc, not yet destroyed) -> 100000 otherwise; getters that
//   return a value then return 0 / "" / ACL_DT_UNDEFINED / ACL_FORMAT_UNDEFINED and set the message. A
//   description is empty until aclmdlGetDesc fills it (unknown model id -> 100011); it is a snapshot: it
//   stays readable after the model is unloaded.
// * Index out of range -> the same failure values; aclmdlGetInputIndexByName / OutputIndexByName of a name
//   the model does not have -> 100000.
// * aclmdlGetInputDims / GetOutputDims / GetCurOutputDims never write more than ACL_MAX_DIM_CNT dims: an I/O
//   with more (the meta parser already refuses them) -> 500001, the struct left zeroed.
// * aclmdlGetCurOutputDims: the batch of the model's last successful execute replaces a leading -1 (the
//   largest batch before any execute), as on the device.
// * Dynamic batch: aclmdlGetDynamicBatch lists the offered sizes (batchCount 0 for other models).
//   aclmdlSetDynamicBatchSize(id, dataset, index, batch) checks `batch` against the offered sizes and that
//   `index` is the "ascend_mbatch_shape_data" input, then writes `batch` as a little-endian uint64 into the
//   dataset's buffer at `index` (that buffer travels to execute, as on the real runtime; in ACL_HOST mode it
//   must be device memory) -> 100000 for any mismatch, also for a model without a batch list.
// * Dynamic image size and dynamic dims: pymfn's converter produces neither, so every emulator model
//   answers truthfully that it has none: aclmdlGetDynamicHW -> hwCount 0 (its index is not checked, as on
//   the device); aclmdlGetInputDynamicGearCount -> 0 gears and aclmdlGetInputDynamicDims fills nothing
//   (both insist on index == (size_t)-1, the documented reserved value -> 100000 otherwise; a gearCount below
//   the model's gear count -> 100000); aclmdlSetDynamicHWSize / aclmdlSetInputDynamicDims -> 100000 naming
//   the model, since there is no gear to select.
// ================================================================
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "acl_emulator/state.h"

namespace pymfn_emu {
namespace {

const IoInfo* desc_io(const aclmdlDesc* d, bool input, size_t index) {
  if (!d || !d->filled) return nullptr;
  const auto& v = input ? d->inputs : d->outputs;
  return index < v.size() ? &v[index] : nullptr;
}

bool desc_live(const aclmdlDesc* d) { return d && g.descs.count(const_cast<aclmdlDesc*>(d)); }

// Common prologue of the description getters (g_mu held): aclInit, a live handle.
aclError check_desc(const char* fn, const aclmdlDesc* d) {
  EMU_CHECK(need_init(fn));
  if (!desc_live(d)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclmdlDesc");
  return ACL_SUCCESS;
}

// The description's I/O entry, or a failure naming why there is none (g_mu held).
aclError find_io(const char* fn, const aclmdlDesc* d, bool input, size_t index, const IoInfo** io) {
  EMU_CHECK(check_desc(fn, d));
  *io = desc_io(d, input, index);
  if (*io) return ACL_SUCCESS;
  if (!d->filled) return fail(ACL_ERROR_INVALID_PARAM, fn, "desc not filled by aclmdlGetDesc");
  return fail(ACL_ERROR_INVALID_PARAM, fn,
              std::string(input ? "input" : "output") + " index " + std::to_string(index) + " out of range (" +
                  std::to_string(input ? d->inputs.size() : d->outputs.size()) + ")");
}

aclError fill_dims(const char* fn, const aclmdlDesc* d, bool input, size_t index, aclmdlIODims* dims,
                   int64_t batch_override) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!dims) return fail(ACL_ERROR_INVALID_PARAM, fn, "dims is NULL");
  const IoInfo* io = nullptr;
  EMU_CHECK(find_io(fn, d, input, index, &io));
  std::memset(dims, 0, sizeof(*dims));
  // aclmdlIODims holds ACL_MAX_DIM_CNT dims. The meta parser allows far fewer (pymfn::om::kMaxMetaDims, asserted
  // below), but this bound is checked here, where the array is written: an I/O with more dims than the
  // struct holds is a failure, never a write past its end nor a silently shortened shape.
  static_assert(pymfn::om::kMaxMetaDims <= ACL_MAX_DIM_CNT, "emulator meta allows more dims than aclmdlIODims holds");
  if (io->dims.size() > ACL_MAX_DIM_CNT)
    return fail(ACL_ERROR_FAILURE, fn,
                std::string(input ? "input" : "output") + " " + std::to_string(index) + " has " +
                    std::to_string(io->dims.size()) + " dims, more than aclmdlIODims holds (ACL_MAX_DIM_CNT " +
                    std::to_string(ACL_MAX_DIM_CNT) + ")");
  std::snprintf(dims->name, sizeof dims->name, "%s", io->name.c_str());
  dims->dimCount = io->dims.size();
  std::copy(io->dims.begin(), io->dims.end(), dims->dims);
  if (batch_override > 0 && !io->dims.empty() && io->dims[0] == -1) dims->dims[0] = batch_override;
  return ACL_SUCCESS;
}

aclError index_by_name(const char* fn, const aclmdlDesc* d, bool input, const char* name, size_t* index) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc(fn, d));
  if (!name || !index) return fail(ACL_ERROR_INVALID_PARAM, fn, "name or index is NULL");
  if (!d->filled) return fail(ACL_ERROR_INVALID_PARAM, fn, "desc not filled by aclmdlGetDesc");
  const auto& v = input ? d->inputs : d->outputs;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i].name == name) {
      *index = i;
      return ACL_SUCCESS;
    }
  return fail(ACL_ERROR_INVALID_PARAM, fn, std::string("no ") + (input ? "input" : "output") + " named '" + name + "'");
}

// Value getters: the entry's field, or `bad` with the failure recorded.
template <typename T, typename F>
T io_value(const char* fn, const aclmdlDesc* d, bool input, size_t index, T bad, F field) {
  std::lock_guard<std::mutex> lk(g_mu);
  const IoInfo* io = nullptr;
  if (find_io(fn, d, input, index, &io) != ACL_SUCCESS) return bad;
  return field(*io);
}

size_t io_count(const char* fn, const aclmdlDesc* d, bool input) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (check_desc(fn, d) != ACL_SUCCESS) return 0;
  return input ? d->inputs.size() : d->outputs.size();
}

// Prologue of the gear setters (g_mu held): a loaded model in the current context, a live dataset.
aclError check_gear_setter(const char* fn, uint32_t modelId, aclmdlDataset* dataset, std::shared_ptr<Model>* m) {
  EMU_CHECK(need_init(fn));
  EMU_CHECK(find_model(fn, modelId, m));
  EMU_CHECK(need_ctx(fn));
  if (!dataset || !g.datasets.count(dataset)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclmdlDataset");
  return ACL_SUCCESS;
}

aclError no_gear(const char* fn, uint32_t modelId, const char* what) {
  return fail(ACL_ERROR_INVALID_PARAM, fn,
              "model " + std::to_string(modelId) + " has no " + what +
                  " gears (aclmdlGetDynamicHW / aclmdlGetInputDynamicGearCount report 0): pymfn's converter produces "
                  "static and dynamic-batch models only");
}

}  // namespace
}  // namespace pymfn_emu

using namespace pymfn_emu;

extern "C" {

aclmdlDesc* aclmdlCreateDesc(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclmdlCreateDesc") != ACL_SUCCESS) return nullptr;
  auto* d = new aclmdlDesc();
  g.descs.insert(d);
  return d;
}

aclError aclmdlDestroyDesc(aclmdlDesc* modelDesc) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc("aclmdlDestroyDesc", modelDesc));
  g.descs.erase(modelDesc);
  delete modelDesc;
  return ACL_SUCCESS;
}

aclError aclmdlGetDesc(aclmdlDesc* modelDesc, uint32_t modelId) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc("aclmdlGetDesc", modelDesc));
  std::shared_ptr<Model> m;
  EMU_CHECK(find_model("aclmdlGetDesc", modelId, &m));
  modelDesc->filled = true;
  modelDesc->model_id = modelId;
  modelDesc->inputs = m->inputs;
  modelDesc->outputs = m->outputs;
  modelDesc->batches = m->meta.dynamic_batch;
  return ACL_SUCCESS;
}

size_t aclmdlGetNumInputs(aclmdlDesc* modelDesc) { return io_count("aclmdlGetNumInputs", modelDesc, true); }
size_t aclmdlGetNumOutputs(aclmdlDesc* modelDesc) { return io_count("aclmdlGetNumOutputs", modelDesc, false); }

size_t aclmdlGetInputSizeByIndex(aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetInputSizeByIndex", modelDesc, true, index, size_t{0}, [](const IoInfo& io) { return io.size; });
}

size_t aclmdlGetOutputSizeByIndex(aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetOutputSizeByIndex", modelDesc, false, index, size_t{0}, [](const IoInfo& io) { return io.size; });
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
    if (desc_live(modelDesc) && modelDesc->filled) {
      auto it = g.models.find(modelDesc->model_id);
      if (it != g.models.end()) batch = static_cast<int64_t>(it->second->last_batch);
      if (batch == 0 && !modelDesc->batches.empty())
        batch = static_cast<int64_t>(*std::max_element(modelDesc->batches.begin(), modelDesc->batches.end()));
    }
  }
  return fill_dims("aclmdlGetCurOutputDims", modelDesc, false, index, dims, batch);
}

const char* aclmdlGetInputNameByIndex(const aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetInputNameByIndex", modelDesc, true, index, "", [](const IoInfo& io) { return io.name.c_str(); });
}

const char* aclmdlGetOutputNameByIndex(const aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetOutputNameByIndex", modelDesc, false, index, "", [](const IoInfo& io) { return io.name.c_str(); });
}

aclError aclmdlGetInputIndexByName(const aclmdlDesc* modelDesc, const char* name, size_t* index) {
  return index_by_name("aclmdlGetInputIndexByName", modelDesc, true, name, index);
}

aclError aclmdlGetOutputIndexByName(const aclmdlDesc* modelDesc, const char* name, size_t* index) {
  return index_by_name("aclmdlGetOutputIndexByName", modelDesc, false, name, index);
}

aclDataType aclmdlGetInputDataType(const aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetInputDataType", modelDesc, true, index, ACL_DT_UNDEFINED, [](const IoInfo& io) { return io.dtype; });
}

aclDataType aclmdlGetOutputDataType(const aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetOutputDataType", modelDesc, false, index, ACL_DT_UNDEFINED, [](const IoInfo& io) { return io.dtype; });
}

aclFormat aclmdlGetInputFormat(const aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetInputFormat", modelDesc, true, index, ACL_FORMAT_UNDEFINED, [](const IoInfo& io) { return io.format; });
}

aclFormat aclmdlGetOutputFormat(const aclmdlDesc* modelDesc, size_t index) {
  return io_value("aclmdlGetOutputFormat", modelDesc, false, index, ACL_FORMAT_UNDEFINED, [](const IoInfo& io) { return io.format; });
}

// ---------------------------------------------------------------- dynamic gears
aclError aclmdlGetDynamicBatch(const aclmdlDesc* modelDesc, aclmdlBatch* batch) {
  const char* fn = "aclmdlGetDynamicBatch";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc(fn, modelDesc));
  if (!batch) return fail(ACL_ERROR_INVALID_PARAM, fn, "batch is NULL");
  std::memset(batch, 0, sizeof(*batch));
  batch->batchCount = modelDesc->batches.size();
  for (size_t i = 0; i < modelDesc->batches.size() && i < ACL_MAX_BATCH_NUM; ++i) batch->batch[i] = modelDesc->batches[i];
  return ACL_SUCCESS;
}

aclError aclmdlGetDynamicHW(const aclmdlDesc* modelDesc, size_t index, aclmdlHW* hw) {
  const char* fn = "aclmdlGetDynamicHW";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc(fn, modelDesc));
  if (!hw) return fail(ACL_ERROR_INVALID_PARAM, fn, "hw is NULL");
  if (!modelDesc->filled) return fail(ACL_ERROR_INVALID_PARAM, fn, "desc not filled by aclmdlGetDesc");
  hw->hwCount = 0;  // no emulator model has image-size gears
  return ACL_SUCCESS;
}

aclError aclmdlGetInputDynamicGearCount(const aclmdlDesc* modelDesc, size_t index, size_t* gearCount) {
  const char* fn = "aclmdlGetInputDynamicGearCount";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc(fn, modelDesc));
  if (!gearCount) return fail(ACL_ERROR_INVALID_PARAM, fn, "gearCount is NULL");
  if (index != kNone) return fail(ACL_ERROR_INVALID_PARAM, fn, "index is reserved and must be -1, got " + std::to_string(index));
  if (!modelDesc->filled) return fail(ACL_ERROR_INVALID_PARAM, fn, "desc not filled by aclmdlGetDesc");
  *gearCount = 0;  // no emulator model has dims gears
  return ACL_SUCCESS;
}

aclError aclmdlGetInputDynamicDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims, size_t gearCount) {
  const char* fn = "aclmdlGetInputDynamicDims";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(check_desc(fn, modelDesc));
  if (!dims) return fail(ACL_ERROR_INVALID_PARAM, fn, "dims is NULL");
  if (index != kNone) return fail(ACL_ERROR_INVALID_PARAM, fn, "index is reserved and must be -1, got " + std::to_string(index));
  if (!modelDesc->filled) return fail(ACL_ERROR_INVALID_PARAM, fn, "desc not filled by aclmdlGetDesc");
  return ACL_SUCCESS;  // any gearCount covers the model's 0 gears: nothing to fill
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

aclError aclmdlSetDynamicHWSize(uint32_t modelId, aclmdlDataset* dataset, size_t index, uint64_t height, uint64_t width) {
  const char* fn = "aclmdlSetDynamicHWSize";
  std::lock_guard<std::mutex> lk(g_mu);
  std::shared_ptr<Model> m;
  EMU_CHECK(check_gear_setter(fn, modelId, dataset, &m));
  return no_gear(fn, modelId, "image-size (height, width)");
}

aclError aclmdlSetInputDynamicDims(uint32_t modelId, aclmdlDataset* dataset, size_t index, const aclmdlIODims* dims) {
  const char* fn = "aclmdlSetInputDynamicDims";
  std::lock_guard<std::mutex> lk(g_mu);
  std::shared_ptr<Model> m;
  EMU_CHECK(check_gear_setter(fn, modelId, dataset, &m));
  if (!dims) return fail(ACL_ERROR_INVALID_PARAM, fn, "dims is NULL");
  return no_gear(fn, modelId, "dims");
}

}  // extern "C"
