// The AscendCL subset pymfn uses: types, enums with their documented values, and the C prototypes.
//
// Why this file exists: CANN (and its acl/acl.h) is not installed on our development machines, yet the
// ACL engine must compile everywhere and call either the real libascendcl.so or pymfn's emulator
// (csrc/acl_emulator, built as a library of the same name). This header is the contract both sides share.
//
// WITH CANN INSTALLED the real header is used instead: CMake defines PYMFN_ACL_REAL_HEADERS and adds
// $CANN/runtime/include to the include path, and this file just includes <acl/acl.h>. Everything below
// mirrors that header's names, values and signatures (from /work/shared/docs/ascend.md and the public
// CANN headers), so code written against it compiles unchanged against the real one.
//
// Emulator-only query functions (leak counts, "am I the emulator?") are NOT here: see
// csrc/acl_emulator/emulator_api.h.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(PYMFN_ACL_REAL_HEADERS)

#include <acl/acl.h>

#else  // ------------------------------------------------------------- our declaration of the subset

// Symbols the API exports; the emulator is compiled with -fvisibility=hidden otherwise.
#if defined(_WIN32)
#define ACL_FUNC_VISIBILITY
#else
#define ACL_FUNC_VISIBILITY __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef int aclError;

typedef void* aclrtContext;
typedef void* aclrtStream;

// Opaque handles: only pointers cross the API.
typedef struct aclmdlDesc aclmdlDesc;
typedef struct aclmdlDataset aclmdlDataset;
typedef struct aclDataBuffer aclDataBuffer;

#define ACL_MAX_DIM_CNT 128
#define ACL_MAX_TENSOR_NAME_LEN 128
#define ACL_MAX_BATCH_NUM 128

typedef struct aclmdlIODims {
  char name[ACL_MAX_TENSOR_NAME_LEN];
  size_t dimCount;
  int64_t dims[ACL_MAX_DIM_CNT];
} aclmdlIODims;

typedef struct aclmdlBatch {
  size_t batchCount;
  uint64_t batch[ACL_MAX_BATCH_NUM];
} aclmdlBatch;

// Name of the extra input ATC adds to a model converted with --dynamic_batch_size.
#define ACL_DYNAMIC_TENSOR_NAME "ascend_mbatch_shape_data"

typedef enum aclrtRunMode {
  ACL_DEVICE = 0,  // the program runs on the Ascend board's own CPU: host and device share memory
  ACL_HOST = 1,    // a card in a server: device memory is separate, copies are needed
} aclrtRunMode;

typedef enum aclrtMemcpyKind {
  ACL_MEMCPY_HOST_TO_HOST = 0,
  ACL_MEMCPY_HOST_TO_DEVICE = 1,
  ACL_MEMCPY_DEVICE_TO_HOST = 2,
  ACL_MEMCPY_DEVICE_TO_DEVICE = 3,
} aclrtMemcpyKind;

typedef enum aclrtMemMallocPolicy {
  ACL_MEM_MALLOC_HUGE_FIRST = 0,
  ACL_MEM_MALLOC_HUGE_ONLY = 1,
  ACL_MEM_MALLOC_NORMAL_ONLY = 2,
} aclrtMemMallocPolicy;

typedef enum aclDataType {
  ACL_DT_UNDEFINED = -1,
  ACL_FLOAT = 0,
  ACL_FLOAT16 = 1,
  ACL_INT8 = 2,
  ACL_INT32 = 3,
  ACL_UINT8 = 4,
  ACL_INT16 = 6,
  ACL_UINT16 = 7,
  ACL_UINT32 = 8,
  ACL_INT64 = 9,
  ACL_UINT64 = 10,
  ACL_DOUBLE = 11,
  ACL_BOOL = 12,
} aclDataType;

typedef enum aclFormat {
  ACL_FORMAT_UNDEFINED = -1,
  ACL_FORMAT_NCHW = 0,
  ACL_FORMAT_NHWC = 1,
  ACL_FORMAT_ND = 2,
  ACL_FORMAT_NC1HWC0 = 3,
  ACL_FORMAT_FRACTAL_Z = 4,
} aclFormat;

// Error codes (aclError values). 0 is success; names and values as in CANN's acl_base.h.
static const aclError ACL_SUCCESS = 0;
static const aclError ACL_ERROR_NONE = 0;
static const aclError ACL_ERROR_INVALID_PARAM = 100000;
static const aclError ACL_ERROR_UNINITIALIZE = 100001;
static const aclError ACL_ERROR_REPEAT_INITIALIZE = 100002;
static const aclError ACL_ERROR_INVALID_FILE = 100003;
static const aclError ACL_ERROR_WRITE_FILE = 100004;
static const aclError ACL_ERROR_INVALID_FILE_SIZE = 100005;
static const aclError ACL_ERROR_PARSE_FILE = 100006;
static const aclError ACL_ERROR_INVALID_MODEL_ID = 100011;
static const aclError ACL_ERROR_DESERIALIZE_MODEL = 100012;
static const aclError ACL_ERROR_PARSE_MODEL = 100013;
static const aclError ACL_ERROR_READ_MODEL_FAILURE = 100014;
static const aclError ACL_ERROR_MODEL_SIZE_INVALID = 100015;
static const aclError ACL_ERROR_MODEL_MISSING_ATTR = 100016;
static const aclError ACL_ERROR_MODEL_INPUT_NOT_MATCH = 100017;
static const aclError ACL_ERROR_MODEL_OUTPUT_NOT_MATCH = 100018;
static const aclError ACL_ERROR_MODEL_NOT_DYNAMIC = 100019;
static const aclError ACL_ERROR_BAD_ALLOC = 200000;
static const aclError ACL_ERROR_API_NOT_SUPPORT = 200001;
static const aclError ACL_ERROR_INVALID_DEVICE = 200002;
static const aclError ACL_ERROR_MEMORY_ADDRESS_UNALIGNED = 200003;
static const aclError ACL_ERROR_RESOURCE_NOT_MATCH = 200004;
static const aclError ACL_ERROR_INVALID_RESOURCE_HANDLE = 200005;
static const aclError ACL_ERROR_STORAGE_OVER_LIMIT = 300000;
// Runtime (rt) codes the emulator also returns, as in CANN's rt error list.
static const aclError ACL_ERROR_RT_PARAM_INVALID = 107000;
static const aclError ACL_ERROR_RT_INVALID_DEVICEID = 107001;
static const aclError ACL_ERROR_RT_CONTEXT_NULL = 107002;     // no current context in this thread
static const aclError ACL_ERROR_RT_STREAM_CONTEXT = 107003;   // stream not in the current context
static const aclError ACL_ERROR_RT_MODEL_CONTEXT = 107004;    // model not in the current context
static const aclError ACL_ERROR_INTERNAL_ERROR = 500000;
static const aclError ACL_ERROR_FAILURE = 500001;
static const aclError ACL_ERROR_GE_FAILURE = 500002;
static const aclError ACL_ERROR_RT_FAILURE = 500003;
static const aclError ACL_ERROR_DRV_FAILURE = 500004;

// ---------------------------------------------------------------- process / device / context / stream
ACL_FUNC_VISIBILITY aclError aclInit(const char* configPath);
ACL_FUNC_VISIBILITY aclError aclFinalize(void);
ACL_FUNC_VISIBILITY const char* aclGetRecentErrMsg(void);

ACL_FUNC_VISIBILITY aclError aclrtSetDevice(int32_t deviceId);
ACL_FUNC_VISIBILITY aclError aclrtResetDevice(int32_t deviceId);
ACL_FUNC_VISIBILITY aclError aclrtGetDeviceCount(uint32_t* count);
ACL_FUNC_VISIBILITY aclError aclrtGetRunMode(aclrtRunMode* runMode);

ACL_FUNC_VISIBILITY aclError aclrtCreateContext(aclrtContext* context, int32_t deviceId);
ACL_FUNC_VISIBILITY aclError aclrtDestroyContext(aclrtContext context);
ACL_FUNC_VISIBILITY aclError aclrtSetCurrentContext(aclrtContext context);
ACL_FUNC_VISIBILITY aclError aclrtGetCurrentContext(aclrtContext* context);

ACL_FUNC_VISIBILITY aclError aclrtCreateStream(aclrtStream* stream);
ACL_FUNC_VISIBILITY aclError aclrtDestroyStream(aclrtStream stream);
ACL_FUNC_VISIBILITY aclError aclrtSynchronizeStream(aclrtStream stream);

// ---------------------------------------------------------------- memory
ACL_FUNC_VISIBILITY aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy policy);
ACL_FUNC_VISIBILITY aclError aclrtFree(void* devPtr);
ACL_FUNC_VISIBILITY aclError aclrtMallocHost(void** hostPtr, size_t size);
ACL_FUNC_VISIBILITY aclError aclrtFreeHost(void* hostPtr);
ACL_FUNC_VISIBILITY aclError aclrtMemcpy(void* dst, size_t destMax, const void* src, size_t count,
                                         aclrtMemcpyKind kind);
ACL_FUNC_VISIBILITY aclError aclrtMemcpyAsync(void* dst, size_t destMax, const void* src, size_t count,
                                              aclrtMemcpyKind kind, aclrtStream stream);
ACL_FUNC_VISIBILITY aclError aclrtMemset(void* devPtr, size_t maxCount, int32_t value, size_t count);

// ---------------------------------------------------------------- model load / unload
ACL_FUNC_VISIBILITY aclError aclmdlLoadFromFile(const char* modelPath, uint32_t* modelId);
ACL_FUNC_VISIBILITY aclError aclmdlLoadFromMem(const void* model, size_t modelSize, uint32_t* modelId);
ACL_FUNC_VISIBILITY aclError aclmdlQuerySize(const char* fileName, size_t* workSize, size_t* weightSize);
ACL_FUNC_VISIBILITY aclError aclmdlLoadFromFileWithMem(const char* modelPath, uint32_t* modelId, void* workPtr,
                                                       size_t workSize, void* weightPtr, size_t weightSize);
ACL_FUNC_VISIBILITY aclError aclmdlUnload(uint32_t modelId);

// ---------------------------------------------------------------- model description
ACL_FUNC_VISIBILITY aclmdlDesc* aclmdlCreateDesc(void);
ACL_FUNC_VISIBILITY aclError aclmdlDestroyDesc(aclmdlDesc* modelDesc);
ACL_FUNC_VISIBILITY aclError aclmdlGetDesc(aclmdlDesc* modelDesc, uint32_t modelId);
ACL_FUNC_VISIBILITY size_t aclmdlGetNumInputs(aclmdlDesc* modelDesc);
ACL_FUNC_VISIBILITY size_t aclmdlGetNumOutputs(aclmdlDesc* modelDesc);
ACL_FUNC_VISIBILITY size_t aclmdlGetInputSizeByIndex(aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY size_t aclmdlGetOutputSizeByIndex(aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY aclError aclmdlGetInputDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims);
ACL_FUNC_VISIBILITY aclError aclmdlGetOutputDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims);
ACL_FUNC_VISIBILITY aclError aclmdlGetCurOutputDims(const aclmdlDesc* modelDesc, size_t index, aclmdlIODims* dims);
ACL_FUNC_VISIBILITY const char* aclmdlGetInputNameByIndex(const aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY const char* aclmdlGetOutputNameByIndex(const aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY aclError aclmdlGetInputIndexByName(const aclmdlDesc* modelDesc, const char* name,
                                                       size_t* index);
ACL_FUNC_VISIBILITY aclDataType aclmdlGetInputDataType(const aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY aclDataType aclmdlGetOutputDataType(const aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY aclFormat aclmdlGetInputFormat(const aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY aclFormat aclmdlGetOutputFormat(const aclmdlDesc* modelDesc, size_t index);
ACL_FUNC_VISIBILITY aclError aclmdlGetDynamicBatch(const aclmdlDesc* modelDesc, aclmdlBatch* batch);
ACL_FUNC_VISIBILITY aclError aclmdlSetDynamicBatchSize(uint32_t modelId, aclmdlDataset* dataset, size_t index,
                                                       uint64_t batchSize);

// ---------------------------------------------------------------- datasets and data buffers
ACL_FUNC_VISIBILITY aclmdlDataset* aclmdlCreateDataset(void);
ACL_FUNC_VISIBILITY aclError aclmdlDestroyDataset(const aclmdlDataset* dataset);
ACL_FUNC_VISIBILITY aclError aclmdlAddDatasetBuffer(aclmdlDataset* dataset, aclDataBuffer* dataBuffer);
ACL_FUNC_VISIBILITY size_t aclmdlGetDatasetNumBuffers(const aclmdlDataset* dataset);
ACL_FUNC_VISIBILITY aclDataBuffer* aclmdlGetDatasetBuffer(const aclmdlDataset* dataset, size_t index);

ACL_FUNC_VISIBILITY aclDataBuffer* aclCreateDataBuffer(void* data, size_t size);
ACL_FUNC_VISIBILITY aclError aclDestroyDataBuffer(const aclDataBuffer* dataBuffer);
ACL_FUNC_VISIBILITY aclError aclUpdateDataBuffer(aclDataBuffer* dataBuffer, void* data, size_t size);
ACL_FUNC_VISIBILITY void* aclGetDataBufferAddr(const aclDataBuffer* dataBuffer);
ACL_FUNC_VISIBILITY size_t aclGetDataBufferSizeV2(const aclDataBuffer* dataBuffer);

// ---------------------------------------------------------------- execution
ACL_FUNC_VISIBILITY aclError aclmdlExecute(uint32_t modelId, const aclmdlDataset* input, aclmdlDataset* output);
ACL_FUNC_VISIBILITY aclError aclmdlExecuteAsync(uint32_t modelId, const aclmdlDataset* input,
                                                aclmdlDataset* output, aclrtStream stream);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // PYMFN_ACL_REAL_HEADERS

// ---------------------------------------------------------------- for dlopen()-based loaders
// X-macro over every function above, in both modes: X(name). A loader can declare one pointer per entry
// as `decltype(&name) name = nullptr;` and resolve it with dlsym(handle, #name).
// Optional entries (absent in old CANN releases) are listed separately so a loader can tolerate them.
#define PYMFN_ACL_REQUIRED_FUNCTIONS(X)                                                                   \
  X(aclInit) X(aclFinalize) X(aclrtSetDevice) X(aclrtResetDevice) X(aclrtGetDeviceCount)                \
  X(aclrtGetRunMode) X(aclrtCreateContext) X(aclrtDestroyContext) X(aclrtSetCurrentContext)             \
  X(aclrtGetCurrentContext) X(aclrtCreateStream) X(aclrtDestroyStream) X(aclrtSynchronizeStream)        \
  X(aclrtMalloc) X(aclrtFree) X(aclrtMallocHost) X(aclrtFreeHost) X(aclrtMemcpy) X(aclrtMemcpyAsync)    \
  X(aclrtMemset) X(aclmdlLoadFromFile) X(aclmdlLoadFromMem) X(aclmdlQuerySize)                          \
  X(aclmdlLoadFromFileWithMem) X(aclmdlUnload) X(aclmdlCreateDesc) X(aclmdlDestroyDesc)                 \
  X(aclmdlGetDesc) X(aclmdlGetNumInputs) X(aclmdlGetNumOutputs) X(aclmdlGetInputSizeByIndex)           \
  X(aclmdlGetOutputSizeByIndex) X(aclmdlGetInputDims) X(aclmdlGetOutputDims) X(aclmdlGetCurOutputDims)  \
  X(aclmdlGetInputNameByIndex) X(aclmdlGetOutputNameByIndex) X(aclmdlGetInputIndexByName)               \
  X(aclmdlGetInputDataType) X(aclmdlGetOutputDataType) X(aclmdlGetInputFormat) X(aclmdlGetOutputFormat) \
  X(aclmdlGetDynamicBatch) X(aclmdlSetDynamicBatchSize) X(aclmdlCreateDataset) X(aclmdlDestroyDataset)  \
  X(aclmdlAddDatasetBuffer) X(aclmdlGetDatasetNumBuffers) X(aclmdlGetDatasetBuffer)                     \
  X(aclCreateDataBuffer) X(aclDestroyDataBuffer) X(aclUpdateDataBuffer) X(aclGetDataBufferAddr)         \
  X(aclGetDataBufferSizeV2) X(aclmdlExecute) X(aclmdlExecuteAsync)

// aclGetRecentErrMsg appeared in CANN 2021; older runtimes lack it.
#define PYMFN_ACL_OPTIONAL_FUNCTIONS(X) X(aclGetRecentErrMsg)

namespace pymfn {
namespace acl {

// Symbolic name of an aclError value ("ACL_ERROR_INVALID_PARAM"), or "ACL_ERROR_UNKNOWN" if not listed.
// Header-only so both the engine and the emulator can use it without another source file.
inline const char* error_name(int code) {
  switch (code) {
    case 0: return "ACL_SUCCESS";
    case 100000: return "ACL_ERROR_INVALID_PARAM";
    case 100001: return "ACL_ERROR_UNINITIALIZE";
    case 100002: return "ACL_ERROR_REPEAT_INITIALIZE";
    case 100003: return "ACL_ERROR_INVALID_FILE";
    case 100004: return "ACL_ERROR_WRITE_FILE";
    case 100005: return "ACL_ERROR_INVALID_FILE_SIZE";
    case 100006: return "ACL_ERROR_PARSE_FILE";
    case 100011: return "ACL_ERROR_INVALID_MODEL_ID";
    case 100012: return "ACL_ERROR_DESERIALIZE_MODEL";
    case 100013: return "ACL_ERROR_PARSE_MODEL";
    case 100014: return "ACL_ERROR_READ_MODEL_FAILURE";
    case 100015: return "ACL_ERROR_MODEL_SIZE_INVALID";
    case 100016: return "ACL_ERROR_MODEL_MISSING_ATTR";
    case 100017: return "ACL_ERROR_MODEL_INPUT_NOT_MATCH";
    case 100018: return "ACL_ERROR_MODEL_OUTPUT_NOT_MATCH";
    case 100019: return "ACL_ERROR_MODEL_NOT_DYNAMIC";
    case 200000: return "ACL_ERROR_BAD_ALLOC";
    case 200001: return "ACL_ERROR_API_NOT_SUPPORT";
    case 200002: return "ACL_ERROR_INVALID_DEVICE";
    case 200003: return "ACL_ERROR_MEMORY_ADDRESS_UNALIGNED";
    case 200004: return "ACL_ERROR_RESOURCE_NOT_MATCH";
    case 200005: return "ACL_ERROR_INVALID_RESOURCE_HANDLE";
    case 300000: return "ACL_ERROR_STORAGE_OVER_LIMIT";
    case 107000: return "ACL_ERROR_RT_PARAM_INVALID";
    case 107001: return "ACL_ERROR_RT_INVALID_DEVICEID";
    case 107002: return "ACL_ERROR_RT_CONTEXT_NULL";
    case 107003: return "ACL_ERROR_RT_STREAM_CONTEXT";
    case 107004: return "ACL_ERROR_RT_MODEL_CONTEXT";
    case 500000: return "ACL_ERROR_INTERNAL_ERROR";
    case 500001: return "ACL_ERROR_FAILURE";
    case 500002: return "ACL_ERROR_GE_FAILURE";
    case 500003: return "ACL_ERROR_RT_FAILURE";
    case 500004: return "ACL_ERROR_DRV_FAILURE";
    default: return "ACL_ERROR_UNKNOWN";
  }
}

}  // namespace acl
}  // namespace pymfn
