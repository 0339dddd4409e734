// ACL emulator, datasets and tensor descriptions: aclmdlDataset, aclDataBuffer, aclTensorDesc, element
// types and the fp16 helpers.
//
// ================================================================ CONTRACT (datasets, buffers, tensor descriptions)
// * Handles are checked against registries: destroying, querying or adding a handle that is not live (never
//   created, already destroyed, a pointer into something else) -> 100000; value getters then return
//   NULL / 0 / ACL_DT_UNDEFINED / ACL_FORMAT_UNDEFINED and set the message.
// * aclCreateDataBuffer / aclUpdateDataBuffer with a NULL address and a non-zero size -> 100000 (NULL, 0 is
//   allowed: a placeholder buffer). aclmdlDestroyDataset does not destroy its data buffers (as on the
//   device): each needs aclDestroyDataBuffer, and the leak report counts the ones left.
// * Tensor descriptions: aclCreateTensorDesc needs numDims >= 0 (-> NULL otherwise), dims non-NULL when
//   numDims > 0, every dim >= -1 (-1: unknown) and at most ACL_MAX_DIM_CNT of them, a known dtype / format.
//   aclGetTensorDescSize is elements x element size (0 with an unknown dim); aclGetTensorDescDimV2 of an index
//   >= numDims -> 100000. aclDestroyTensorDesc releases what aclCreateTensorDesc or aclmdlCreateAndGetOpDesc
//   returned -- an aclmdlCreateAndGetOpDesc array as a whole, through its first element; anything else
//   (an array's later element, a dataset's own copy, a dead pointer) is refused (it returns void, so the
//   refusal is in aclGetRecentErrMsg) instead of corrupting the heap. aclGetTensorDescByIndex reaches the
//   elements of an array (index past its end -> NULL).
// * aclmdlSetDatasetTensorDesc(dataset, desc, index): index < the dataset's buffer count -> 100000 otherwise;
//   the dataset stores its OWN COPY (desc NULL removes it), released with the dataset; the copy is what
//   aclmdlGetDatasetTensorDesc returns (NULL when none was set). What execute does with them: execute.cpp.
// * aclFloat16ToFloat / aclFloatToFloat16: IEEE 754 binary16 (round to nearest even, overflow to infinity,
//   NaN stays NaN); aclDataTypeSize: element bytes, 0 for ACL_DT_UNDEFINED / ACL_STRING / unknown values.
// ================================================================
#include <cstring>

#include "acl_emulator/state.h"

namespace pymfn_emu {

size_t dtype_size(aclDataType t) {
  switch (t) {
    case ACL_FLOAT: case ACL_INT32: case ACL_UINT32: return 4;
    case ACL_FLOAT16: case ACL_INT16: case ACL_UINT16: case ACL_BF16: return 2;
    case ACL_INT8: case ACL_UINT8: case ACL_BOOL: return 1;
    case ACL_INT64: case ACL_UINT64: case ACL_DOUBLE: case ACL_COMPLEX64: return 8;
    case ACL_COMPLEX128: return 16;
    default: return 0;
  }
}

void register_tensor_descs(const aclTensorDesc* first, size_t count, bool dataset_owned) {
  g.tensor_descs[first] = TensorDescBlock{count, dataset_owned};
}

const TensorDescBlock* find_tensor_desc(const aclTensorDesc* d) {
  if (!d) return nullptr;
  auto it = g.tensor_descs.upper_bound(d);
  if (it == g.tensor_descs.begin()) return nullptr;
  --it;
  const aclTensorDesc* first = it->first;
  // Pointer arithmetic is only meaningful inside the array: compare addresses as integers.
  const auto a = reinterpret_cast<uintptr_t>(d), b = reinterpret_cast<uintptr_t>(first);
  const size_t step = sizeof(aclTensorDesc);
  if (a < b || a >= b + it->second.count * step || (a - b) % step != 0) return nullptr;
  return &it->second;
}

namespace {

bool known_dtype(aclDataType t) { return t == ACL_STRING || dtype_size(t) > 0; }

bool known_format(aclFormat f) {
  switch (f) {
    case ACL_FORMAT_NCHW: case ACL_FORMAT_NHWC: case ACL_FORMAT_ND: case ACL_FORMAT_NC1HWC0:
    case ACL_FORMAT_FRACTAL_Z: case ACL_FORMAT_NC1HWC0_C04: case ACL_FORMAT_HWCN: case ACL_FORMAT_NDHWC:
    case ACL_FORMAT_FRACTAL_NZ: case ACL_FORMAT_NCDHW: case ACL_FORMAT_NDC1HWC0: case ACL_FRACTAL_Z_3D:
      return true;
    default:
      return false;
  }
}

// A live description, or nullptr with the failure recorded (g_mu held).
const aclTensorDesc* live_desc(const char* fn, const aclTensorDesc* d) {
  if (need_init(fn) != ACL_SUCCESS) return nullptr;
  if (!find_tensor_desc(d)) {
    fail(ACL_ERROR_INVALID_PARAM, fn, d ? "not a live aclTensorDesc" : "desc is NULL");
    return nullptr;
  }
  return d;
}

// A handle found in its registry (after aclInit), or nullptr with the failure recorded (g_mu held).
template <typename T>
T* live_in(const char* fn, const std::set<T*>& registry, const T* handle, const char* what) {
  if (need_init(fn) != ACL_SUCCESS) return nullptr;
  auto* p = const_cast<T*>(handle);
  if (!registry.count(p)) {
    fail(ACL_ERROR_INVALID_PARAM, fn, std::string("not a live ") + what);
    return nullptr;
  }
  return p;
}

aclmdlDataset* live_dataset(const char* fn, const aclmdlDataset* ds) { return live_in(fn, g.datasets, ds, "aclmdlDataset"); }
aclDataBuffer* live_buffer(const char* fn, const aclDataBuffer* b) { return live_in(fn, g.buffers, b, "aclDataBuffer"); }

void drop_dataset_desc(aclmdlDataset* ds, size_t index) {
  if (index >= ds->descs.size() || !ds->descs[index]) return;
  g.tensor_descs.erase(ds->descs[index]);
  delete ds->descs[index];
  ds->descs[index] = nullptr;
}

uint64_t g_dataset_serial = 0;

// Elements a description covers; 0 while a dim is unknown (-1).
size_t element_count(const aclTensorDesc& d) {
  size_t n = 1;
  for (int64_t v : d.dims) {
    if (v < 0) return 0;
    n *= static_cast<size_t>(v);
  }
  return n;
}

// binary16 <-> binary32 by bit manipulation (the device's conversions are IEEE; so are these).
float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1Fu) {
    bits = sign | 0x7F800000u | (mant << 13);  // infinity or NaN (payload kept)
  } else if (exp != 0) {
    bits = sign | ((exp + 112u) << 23) | (mant << 13);  // rebias 15 -> 127
  } else if (mant == 0) {
    bits = sign;  // signed zero
  } else {        // subnormal half: normalise into a float
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t exp = (x >> 23) & 0xFFu;
  const uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFFu) return static_cast<uint16_t>(sign | 0x7C00u | (mant ? 0x200u | (mant >> 13) : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;  // the half's biased exponent
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00u);  // too large: infinity
  if (e <= 0) {                                               // subnormal half or zero
    if (e < -10) return sign;                                 // below half the smallest subnormal
    const uint32_t m = mant | 0x800000u;                      // implicit leading one
    const int shift = 14 - e;                                 // 24-bit significand -> 10-bit field
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;   // nearest, ties to even
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;  // a carry may roll into the exponent: still right
  return static_cast<uint16_t>(sign | r);
}

}  // namespace
}  // namespace pymfn_emu

using namespace pymfn_emu;

extern "C" {

// ---------------------------------------------------------------- helpers (no aclInit needed)
float aclFloat16ToFloat(aclFloat16 value) { return half_to_float(value); }
aclFloat16 aclFloatToFloat16(float value) { return float_to_half(value); }
size_t aclDataTypeSize(aclDataType dataType) { return dtype_size(dataType); }

// ---------------------------------------------------------------- datasets
aclmdlDataset* aclmdlCreateDataset(void) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init("aclmdlCreateDataset") != ACL_SUCCESS) return nullptr;
  auto* d = new aclmdlDataset();
  d->serial = ++g_dataset_serial;
  g.datasets.insert(d);
  return d;
}

aclError aclmdlDestroyDataset(const aclmdlDataset* dataset) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclmdlDestroyDataset"));
  auto* d = const_cast<aclmdlDataset*>(dataset);
  if (!g.datasets.count(d)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlDestroyDataset", "not a live aclmdlDataset");
  for (size_t i = 0; i < d->descs.size(); ++i) drop_dataset_desc(d, i);
  g.datasets.erase(d);
  delete d;  // its data buffers stay alive: aclDestroyDataBuffer each of them
  return ACL_SUCCESS;
}

aclError aclmdlAddDatasetBuffer(aclmdlDataset* dataset, aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init("aclmdlAddDatasetBuffer"));
  if (!g.datasets.count(dataset)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlAddDatasetBuffer", "not a live aclmdlDataset");
  if (!g.buffers.count(dataBuffer)) return fail(ACL_ERROR_INVALID_PARAM, "aclmdlAddDatasetBuffer", "not a live aclDataBuffer");
  dataset->buffers.push_back(dataBuffer);
  if (!dataset->descs.empty()) dataset->descs.push_back(nullptr);
  return ACL_SUCCESS;
}

size_t aclmdlGetDatasetNumBuffers(const aclmdlDataset* dataset) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclmdlDataset* d = live_dataset("aclmdlGetDatasetNumBuffers", dataset);
  return d ? d->buffers.size() : 0;
}

aclDataBuffer* aclmdlGetDatasetBuffer(const aclmdlDataset* dataset, size_t index) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclmdlDataset* d = live_dataset("aclmdlGetDatasetBuffer", dataset);
  if (!d) return nullptr;
  if (index >= d->buffers.size()) {
    fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetDatasetBuffer",
         "index " + std::to_string(index) + " out of range (" + std::to_string(d->buffers.size()) + " buffers)");
    return nullptr;
  }
  return d->buffers[index];
}

aclError aclmdlSetDatasetTensorDesc(aclmdlDataset* dataset, aclTensorDesc* tensorDesc, size_t index) {
  const char* fn = "aclmdlSetDatasetTensorDesc";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!g.datasets.count(dataset)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclmdlDataset");
  if (index >= dataset->buffers.size())
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "index " + std::to_string(index) + " must be smaller than the dataset's " +
                    std::to_string(dataset->buffers.size()) + " buffer(s): add the buffer first");
  if (tensorDesc && !find_tensor_desc(tensorDesc)) return fail(ACL_ERROR_INVALID_PARAM, fn, "not a live aclTensorDesc");
  if (dataset->descs.size() < dataset->buffers.size()) dataset->descs.resize(dataset->buffers.size(), nullptr);
  drop_dataset_desc(dataset, index);
  if (tensorDesc) {
    auto* copy = new aclTensorDesc(*tensorDesc);
    copy->address = nullptr;
    dataset->descs[index] = copy;
    register_tensor_descs(copy, 1, true);
  }
  return ACL_SUCCESS;
}

aclTensorDesc* aclmdlGetDatasetTensorDesc(const aclmdlDataset* dataset, size_t index) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclmdlDataset* d = live_dataset("aclmdlGetDatasetTensorDesc", dataset);
  if (!d) return nullptr;
  if (index >= d->buffers.size()) {
    fail(ACL_ERROR_INVALID_PARAM, "aclmdlGetDatasetTensorDesc",
         "index " + std::to_string(index) + " out of range (" + std::to_string(d->buffers.size()) + " buffers)");
    return nullptr;
  }
  return index < d->descs.size() ? d->descs[index] : nullptr;
}

// ---------------------------------------------------------------- data buffers
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
  const aclDataBuffer* b = live_buffer("aclGetDataBufferAddr", dataBuffer);
  return b ? b->data : nullptr;
}

size_t aclGetDataBufferSizeV2(const aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclDataBuffer* b = live_buffer("aclGetDataBufferSizeV2", dataBuffer);
  return b ? b->size : 0;
}

uint32_t aclGetDataBufferSize(const aclDataBuffer* dataBuffer) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclDataBuffer* b = live_buffer("aclGetDataBufferSize", dataBuffer);
  if (!b) return 0;
  if (b->size > UINT32_MAX) {
    fail(ACL_ERROR_INVALID_PARAM, "aclGetDataBufferSize",
         "the buffer's " + std::to_string(b->size) + " bytes do not fit in uint32: use aclGetDataBufferSizeV2");
    return 0;
  }
  return static_cast<uint32_t>(b->size);
}

// ---------------------------------------------------------------- tensor descriptions
aclTensorDesc* aclCreateTensorDesc(aclDataType dataType, int numDims, const int64_t* dims, aclFormat format) {
  const char* fn = "aclCreateTensorDesc";
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init(fn) != ACL_SUCCESS) return nullptr;
  std::string why;
  if (numDims < 0 || numDims > ACL_MAX_DIM_CNT)
    why = "numDims " + std::to_string(numDims) + " is not 0.." + std::to_string(ACL_MAX_DIM_CNT);
  else if (numDims > 0 && !dims)
    why = "dims is NULL with numDims " + std::to_string(numDims);
  else if (!known_dtype(dataType))
    why = "unknown data type " + std::to_string(static_cast<int>(dataType));
  else if (!known_format(format) && format != ACL_FORMAT_UNDEFINED)
    why = "unknown format " + std::to_string(static_cast<int>(format));
  for (int i = 0; why.empty() && i < numDims; ++i)
    if (dims[i] < -1) why = "dim " + std::to_string(i) + " is " + std::to_string(dims[i]) + " (expected >= -1)";
  if (!why.empty()) {
    fail(ACL_ERROR_INVALID_PARAM, fn, why);
    return nullptr;
  }
  auto* d = new aclTensorDesc[1];
  d->dtype = dataType;
  d->format = format;
  d->dims.assign(dims, dims + numDims);
  register_tensor_descs(d, 1, false);
  return d;
}

void aclDestroyTensorDesc(const aclTensorDesc* desc) {
  const char* fn = "aclDestroyTensorDesc";
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init(fn) != ACL_SUCCESS || !desc) return;
  auto it = g.tensor_descs.find(desc);
  if (it == g.tensor_descs.end() || it->second.dataset_owned) {
    const TensorDescBlock* b = find_tensor_desc(desc);
    fail(ACL_ERROR_INVALID_PARAM, fn,
         !b ? "not a live aclTensorDesc"
            : b->dataset_owned ? "this description is a dataset's own copy: it goes with aclmdlDestroyDataset "
                                 "(or aclmdlSetDatasetTensorDesc(dataset, NULL, index))"
                               : "not the first element of its array: destroy the array through its first element");
    return;
  }
  g.tensor_descs.erase(it);
  delete[] desc;
}

aclDataType aclGetTensorDescType(const aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescType", desc);
  return d ? d->dtype : ACL_DT_UNDEFINED;
}

aclFormat aclGetTensorDescFormat(const aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescFormat", desc);
  return d ? d->format : ACL_FORMAT_UNDEFINED;
}

size_t aclGetTensorDescElementCount(const aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescElementCount", desc);
  return d ? element_count(*d) : 0;
}

size_t aclGetTensorDescSize(const aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescSize", desc);
  return d ? element_count(*d) * dtype_size(d->dtype) : 0;
}

size_t aclGetTensorDescNumDims(const aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescNumDims", desc);
  return d ? d->dims.size() : 0;
}

aclError aclGetTensorDescDimV2(const aclTensorDesc* desc, size_t index, int64_t* dimSize) {
  const char* fn = "aclGetTensorDescDimV2";
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  const aclTensorDesc* d = live_desc(fn, desc);
  if (!d) return ACL_ERROR_INVALID_PARAM;
  if (!dimSize) return fail(ACL_ERROR_INVALID_PARAM, fn, "dimSize is NULL");
  if (index >= d->dims.size())
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "index " + std::to_string(index) + " out of range (" + std::to_string(d->dims.size()) + " dims)");
  *dimSize = d->dims[index];
  return ACL_SUCCESS;
}

void aclSetTensorDescName(aclTensorDesc* desc, const char* name) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (!live_desc("aclSetTensorDescName", desc)) return;
  desc->name = name ? name : "";
}

const char* aclGetTensorDescName(aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescName", desc);
  return d ? d->name.c_str() : "";
}

aclTensorDesc* aclGetTensorDescByIndex(aclTensorDesc* desc, size_t index) {
  const char* fn = "aclGetTensorDescByIndex";
  std::lock_guard<std::mutex> lk(g_mu);
  if (need_init(fn) != ACL_SUCCESS) return nullptr;
  auto it = g.tensor_descs.find(desc);
  if (it == g.tensor_descs.end()) {
    fail(ACL_ERROR_INVALID_PARAM, fn, "not the first element of a live aclTensorDesc array");
    return nullptr;
  }
  if (index >= it->second.count) {
    fail(ACL_ERROR_INVALID_PARAM, fn,
         "index " + std::to_string(index) + " out of range (the array holds " + std::to_string(it->second.count) + ")");
    return nullptr;
  }
  return desc + index;
}

void* aclGetTensorDescAddress(const aclTensorDesc* desc) {
  std::lock_guard<std::mutex> lk(g_mu);
  const aclTensorDesc* d = live_desc("aclGetTensorDescAddress", desc);
  return d ? d->address : nullptr;
}

}  // extern "C"
