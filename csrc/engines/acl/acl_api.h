// The AscendCL declarations pymfn's own code compiles against, plus two pymfn helpers for them.
//
// Why this file exists: the ACL engine must compile everywhere and call either the real libascendcl.so or
// pymfn's emulator (csrc/acl_emulator, a library of the same name), so it includes <acl/acl.h> from one of
// two places, chosen by CMake:
//   * WITH CANN INSTALLED (PYMFN_ACL_REAL_HEADERS): $CANN/runtime/include, CANN's own headers.
//   * OTHERWISE: pymfn/include, pymfn's declaration of the subset the emulator implements, laid out like
//     CANN's (acl/acl.h, acl_base.h, acl_rt.h, acl_mdl.h) and installed with the package so any AscendCL
//     client builds against it (`python -m pymfn acl-config --cflags`). That folder is the only copy of
//     the declarations; its names, values and signatures follow CANN's, so code written against one
//     compiles unchanged against the other.
// What stays here is pymfn's: the list of functions its dlopen() loader resolves, and error_name().
//
// Emulator-only query functions (leak counts, "am I the emulator?") are NOT here: see
// csrc/acl_emulator/emulator_api.h.
#pragma once

#include <cstddef>
#include <cstdint>

#include <acl/acl.h>

// ---------------------------------------------------------------- for dlopen()-based loaders
// X-macro over the functions the ACL engine calls, in both modes: X(name). A loader can declare one pointer per entry
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
    case 100037: return "ACL_ERROR_REPEAT_FINALIZE";
    case 200000: return "ACL_ERROR_BAD_ALLOC";
    case 200001: return "ACL_ERROR_API_NOT_SUPPORT";
    case 200002: return "ACL_ERROR_INVALID_DEVICE";
    case 200003: return "ACL_ERROR_MEMORY_ADDRESS_UNALIGNED";
    case 200004: return "ACL_ERROR_RESOURCE_NOT_MATCH";
    case 200005: return "ACL_ERROR_INVALID_RESOURCE_HANDLE";
    case 200006: return "ACL_ERROR_FEATURE_UNSUPPORTED";
    case 300000: return "ACL_ERROR_STORAGE_OVER_LIMIT";
    case 107000: return "ACL_ERROR_RT_PARAM_INVALID";
    case 107001: return "ACL_ERROR_RT_INVALID_DEVICEID";
    case 107002: return "ACL_ERROR_RT_CONTEXT_NULL";
    case 107003: return "ACL_ERROR_RT_STREAM_CONTEXT";
    case 107004: return "ACL_ERROR_RT_MODEL_CONTEXT";
    case 107006: return "ACL_ERROR_RT_EVENT_TIMESTAMP_INVALID";
    case 107007: return "ACL_ERROR_RT_EVENT_TIMESTAMP_REVERSAL";
    case 507006: return "ACL_ERROR_RT_EVENT_NOT_COMPLETE";
    case 507046: return "ACL_ERROR_RT_STREAM_SYNC_TIMEOUT";
    case 507047: return "ACL_ERROR_RT_EVENT_SYNC_TIMEOUT";
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
