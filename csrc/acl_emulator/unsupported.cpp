// The AscendCL functions the emulator declares (pymfn/include/acl) but does not implement.
//
// ================================================================ CONTRACT (this file: unsupported)
// Why: CANN's headers declare far more than a model runner needs (single-operator execution aside): AIPP set
// at run time, bundles, queue-fed models, virtual memory, kernel binaries, host callbacks, core groups... A
// program that names any of them must still build and link against the emulator, and find out at run time,
// clearly, that the emulator does not do it. Nothing here is faked.
//   * every function below returns ACL_ERROR_FEATURE_UNSUPPORTED (200006) and records
//     "<function>: not supported by pymfn's ACL emulator [ACL_ERROR_FEATURE_UNSUPPORTED 200006]" as the
//     calling thread's aclGetRecentErrMsg; those returning a handle or a string return NULL,
//     aclGetTensorDescDim returns -1. The answer is the same before aclInit, and no argument is touched.
//   * no state changes: no lock is taken, nothing is allocated, nothing counts as a leak.
// The list of these functions (with the implemented ones) is tests/acl_surface.txt; docs/acl-emulator.md
// shows it to users; tests/test_acl_headers.py calls every one of them.
#include <cstddef>

#include "acl_emulator/state.h"

namespace {

aclError unsupported(const char* fn) {
  return pymfn_emu::fail(ACL_ERROR_FEATURE_UNSUPPORTED, fn, "not supported by pymfn's ACL emulator");
}

std::nullptr_t unsupported_null(const char* fn) {
  unsupported(fn);
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------- acl_base.h
aclError aclSetTensorShapeRange(aclTensorDesc*, size_t, int64_t[][ACL_TENSOR_SHAPE_RANGE_NUM]) {
  return unsupported("aclSetTensorShapeRange");
}
aclError aclSetTensorValueRange(aclTensorDesc*, size_t, int64_t[][ACL_TENSOR_VALUE_RANGE_NUM]) {
  return unsupported("aclSetTensorValueRange");
}
int64_t aclGetTensorDescDim(const aclTensorDesc*, size_t) {
  unsupported("aclGetTensorDescDim");
  return -1;
}
aclError aclGetTensorDescDimRange(const aclTensorDesc*, size_t, size_t, int64_t*) {
  return unsupported("aclGetTensorDescDimRange");
}
aclError aclTransTensorDescFormat(const aclTensorDesc*, aclFormat, aclTensorDesc**) {
  return unsupported("aclTransTensorDescFormat");
}
aclError aclSetTensorStorageFormat(aclTensorDesc*, aclFormat) { return unsupported("aclSetTensorStorageFormat"); }
aclError aclSetTensorStorageShape(aclTensorDesc*, int, const int64_t*) {
  return unsupported("aclSetTensorStorageShape");
}
aclError aclSetTensorFormat(aclTensorDesc*, aclFormat) { return unsupported("aclSetTensorFormat"); }
aclError aclSetTensorShape(aclTensorDesc*, int, const int64_t*) { return unsupported("aclSetTensorShape"); }
aclError aclSetTensorOriginFormat(aclTensorDesc*, aclFormat) { return unsupported("aclSetTensorOriginFormat"); }
aclError aclSetTensorOriginShape(aclTensorDesc*, int, const int64_t*) { return unsupported("aclSetTensorOriginShape"); }
aclError aclSetTensorDynamicInput(aclTensorDesc*, const char*) { return unsupported("aclSetTensorDynamicInput"); }
aclError aclSetTensorConst(aclTensorDesc*, void*, size_t) { return unsupported("aclSetTensorConst"); }
aclError aclSetTensorPlaceMent(aclTensorDesc*, aclMemType) { return unsupported("aclSetTensorPlaceMent"); }
aclError aclGetCannAttributeList(const aclCannAttr**, size_t*) { return unsupported("aclGetCannAttributeList"); }
aclError aclGetCannAttribute(aclCannAttr, int32_t*) { return unsupported("aclGetCannAttribute"); }
aclError aclGetDeviceCapability(uint32_t, aclDeviceInfo, int64_t*) { return unsupported("aclGetDeviceCapability"); }

// ---------------------------------------------------------------- acl_rt.h
aclError aclrtSubscribeReport(uint64_t, aclrtStream) { return unsupported("aclrtSubscribeReport"); }
aclError aclrtLaunchCallback(aclrtCallback, void*, aclrtCallbackBlockType, aclrtStream) {
  return unsupported("aclrtLaunchCallback");
}
aclError aclrtProcessReport(int32_t) { return unsupported("aclrtProcessReport"); }
aclError aclrtUnSubscribeReport(uint64_t, aclrtStream) { return unsupported("aclrtUnSubscribeReport"); }
aclError aclrtCtxGetSysParamOpt(aclSysParamOpt, int64_t*) { return unsupported("aclrtCtxGetSysParamOpt"); }
aclError aclrtCtxSetSysParamOpt(aclSysParamOpt, int64_t) { return unsupported("aclrtCtxSetSysParamOpt"); }
aclError aclrtResetDeviceForce(int32_t) { return unsupported("aclrtResetDeviceForce"); }
aclError aclrtSetStreamFailureMode(aclrtStream, uint64_t) { return unsupported("aclrtSetStreamFailureMode"); }
aclError aclrtSetTsDevice(aclrtTsId) { return unsupported("aclrtSetTsDevice"); }
aclError aclrtGetDeviceUtilizationRate(int32_t, aclrtUtilizationInfo*) {
  return unsupported("aclrtGetDeviceUtilizationRate");
}
aclError aclrtCreateEventWithFlag(aclrtEvent*, uint32_t) { return unsupported("aclrtCreateEventWithFlag"); }
aclError aclrtCreateEventExWithFlag(aclrtEvent*, uint32_t) { return unsupported("aclrtCreateEventExWithFlag"); }
aclError aclrtResetEvent(aclrtEvent, aclrtStream) { return unsupported("aclrtResetEvent"); }
aclError aclrtQueryEvent(aclrtEvent, aclrtEventStatus*) { return unsupported("aclrtQueryEvent"); }
aclError aclrtQueryEventWaitStatus(aclrtEvent, aclrtEventWaitStatus*) {
  return unsupported("aclrtQueryEventWaitStatus");
}
aclError aclrtMallocAlign32(void**, size_t, aclrtMemMallocPolicy) { return unsupported("aclrtMallocAlign32"); }
aclError aclrtMallocCached(void**, size_t, aclrtMemMallocPolicy) { return unsupported("aclrtMallocCached"); }
aclError aclrtMemFlush(void*, size_t) { return unsupported("aclrtMemFlush"); }
aclError aclrtMemInvalidate(void*, size_t) { return unsupported("aclrtMemInvalidate"); }
aclError aclrtMemcpy2d(void*, size_t, const void*, size_t, size_t, size_t, aclrtMemcpyKind) {
  return unsupported("aclrtMemcpy2d");
}
aclError aclrtMemcpy2dAsync(void*, size_t, const void*, size_t, size_t, size_t, aclrtMemcpyKind, aclrtStream) {
  return unsupported("aclrtMemcpy2dAsync");
}
aclError aclrtMemsetAsync(void*, size_t, int32_t, size_t, aclrtStream) { return unsupported("aclrtMemsetAsync"); }
aclError aclrtReserveMemAddress(void**, size_t, size_t, void*, uint64_t) {
  return unsupported("aclrtReserveMemAddress");
}
aclError aclrtReleaseMemAddress(void*) { return unsupported("aclrtReleaseMemAddress"); }
aclError aclrtMallocPhysical(aclrtDrvMemHandle*, size_t, const aclrtPhysicalMemProp*, uint64_t) {
  return unsupported("aclrtMallocPhysical");
}
aclError aclrtFreePhysical(aclrtDrvMemHandle) { return unsupported("aclrtFreePhysical"); }
aclError aclrtMapMem(void*, size_t, size_t, aclrtDrvMemHandle, uint64_t) { return unsupported("aclrtMapMem"); }
aclError aclrtUnmapMem(void*) { return unsupported("aclrtUnmapMem"); }
aclrtStreamConfigHandle* aclrtCreateStreamConfigHandle() { return unsupported_null("aclrtCreateStreamConfigHandle"); }
aclError aclrtDestroyStreamConfigHandle(aclrtStreamConfigHandle*) {
  return unsupported("aclrtDestroyStreamConfigHandle");
}
aclError aclrtSetStreamConfigOpt(aclrtStreamConfigHandle*, aclrtStreamConfigAttr, const void*, size_t) {
  return unsupported("aclrtSetStreamConfigOpt");
}
aclError aclrtCreateStreamV2(aclrtStream*, const aclrtStreamConfigHandle*) {
  return unsupported("aclrtCreateStreamV2");
}
aclError aclrtCreateStreamWithConfig(aclrtStream*, uint32_t, uint32_t) {
  return unsupported("aclrtCreateStreamWithConfig");
}
aclError aclrtDestroyStreamForce(aclrtStream) { return unsupported("aclrtDestroyStreamForce"); }
aclError aclrtStreamQuery(aclrtStream, aclrtStreamStatus*) { return unsupported("aclrtStreamQuery"); }
aclError aclrtStreamWaitEvent(aclrtStream, aclrtEvent) { return unsupported("aclrtStreamWaitEvent"); }
aclError aclrtSetGroup(int32_t) { return unsupported("aclrtSetGroup"); }
aclError aclrtGetGroupCount(uint32_t*) { return unsupported("aclrtGetGroupCount"); }
aclrtGroupInfo* aclrtCreateGroupInfo() { return unsupported_null("aclrtCreateGroupInfo"); }
aclError aclrtDestroyGroupInfo(aclrtGroupInfo*) { return unsupported("aclrtDestroyGroupInfo"); }
aclError aclrtGetAllGroupInfo(aclrtGroupInfo*) { return unsupported("aclrtGetAllGroupInfo"); }
aclError aclrtGetGroupInfoDetail(const aclrtGroupInfo*, int32_t, aclrtGroupAttr, void*, size_t, size_t*) {
  return unsupported("aclrtGetGroupInfoDetail");
}
aclError aclrtDeviceCanAccessPeer(int32_t*, int32_t, int32_t) { return unsupported("aclrtDeviceCanAccessPeer"); }
aclError aclrtDeviceEnablePeerAccess(int32_t, uint32_t) { return unsupported("aclrtDeviceEnablePeerAccess"); }
aclError aclrtDeviceDisablePeerAccess(int32_t) { return unsupported("aclrtDeviceDisablePeerAccess"); }
aclError aclrtGetMemInfo(aclrtMemAttr, size_t*, size_t*) { return unsupported("aclrtGetMemInfo"); }
aclError aclrtSetOpWaitTimeout(uint32_t) { return unsupported("aclrtSetOpWaitTimeout"); }
aclError aclrtSetOpExecuteTimeOut(uint32_t) { return unsupported("aclrtSetOpExecuteTimeOut"); }
aclError aclrtSetStreamOverflowSwitch(aclrtStream, uint32_t) { return unsupported("aclrtSetStreamOverflowSwitch"); }
aclError aclrtGetStreamOverflowSwitch(aclrtStream, uint32_t*) { return unsupported("aclrtGetStreamOverflowSwitch"); }
aclError aclrtSetDeviceSatMode(aclrtFloatOverflowMode) { return unsupported("aclrtSetDeviceSatMode"); }
aclError aclrtGetDeviceSatMode(aclrtFloatOverflowMode*) { return unsupported("aclrtGetDeviceSatMode"); }
aclError aclrtGetOverflowStatus(void*, size_t, aclrtStream) { return unsupported("aclrtGetOverflowStatus"); }
aclError aclrtResetOverflowStatus(aclrtStream) { return unsupported("aclrtResetOverflowStatus"); }
aclError aclrtSubscribeHostFunc(uint64_t, aclrtStream) { return unsupported("aclrtSubscribeHostFunc"); }
aclError aclrtProcessHostFunc(int32_t) { return unsupported("aclrtProcessHostFunc"); }
aclError aclrtUnSubscribeHostFunc(uint64_t, aclrtStream) { return unsupported("aclrtUnSubscribeHostFunc"); }
aclError aclrtQueryDeviceStatus(int32_t, aclrtDeviceStatus*) { return unsupported("aclrtQueryDeviceStatus"); }
aclrtBinary aclrtCreateBinary(const void*, size_t) { return unsupported_null("aclrtCreateBinary"); }
aclError aclrtDestroyBinary(aclrtBinary) { return unsupported("aclrtDestroyBinary"); }
aclError aclrtBinaryLoad(const aclrtBinary, aclrtBinHandle*) { return unsupported("aclrtBinaryLoad"); }
aclError aclrtBinaryUnLoad(aclrtBinHandle) { return unsupported("aclrtBinaryUnLoad"); }
aclError aclrtBinaryGetFunction(const aclrtBinHandle, const char*, aclrtFuncHandle*) {
  return unsupported("aclrtBinaryGetFunction");
}
aclError aclrtLaunchKernel(aclrtFuncHandle, uint32_t, const void*, size_t, aclrtStream) {
  return unsupported("aclrtLaunchKernel");
}
aclError aclrtMemExportToShareableHandle(aclrtDrvMemHandle, aclrtMemHandleType, uint64_t, uint64_t*) {
  return unsupported("aclrtMemExportToShareableHandle");
}
aclError aclrtMemImportFromShareableHandle(uint64_t, int32_t, aclrtDrvMemHandle*) {
  return unsupported("aclrtMemImportFromShareableHandle");
}
aclError aclrtMemSetPidToShareableHandle(uint64_t, int32_t*, size_t) {
  return unsupported("aclrtMemSetPidToShareableHandle");
}
aclError aclrtMemGetAllocationGranularity(aclrtPhysicalMemProp*, aclrtMemGranularityOptions, size_t*) {
  return unsupported("aclrtMemGetAllocationGranularity");
}
aclError aclrtDeviceGetBareTgid(int32_t*) { return unsupported("aclrtDeviceGetBareTgid"); }
aclError aclrtGetMemUceInfo(int32_t, aclrtMemUceInfo*, size_t, size_t*) { return unsupported("aclrtGetMemUceInfo"); }
aclError aclrtDeviceTaskAbort(int32_t, uint32_t) { return unsupported("aclrtDeviceTaskAbort"); }
aclError aclrtMemUceRepair(int32_t, aclrtMemUceInfo*, size_t) { return unsupported("aclrtMemUceRepair"); }

// ---------------------------------------------------------------- acl_mdl.h
aclError aclmdlGetDescFromFile(aclmdlDesc*, const char*) { return unsupported("aclmdlGetDescFromFile"); }
aclError aclmdlGetDescFromMem(aclmdlDesc*, const void*, size_t) { return unsupported("aclmdlGetDescFromMem"); }
aclmdlExecConfigHandle* aclmdlCreateExecConfigHandle() { return unsupported_null("aclmdlCreateExecConfigHandle"); }
aclError aclmdlDestroyExecConfigHandle(const aclmdlExecConfigHandle*) {
  return unsupported("aclmdlDestroyExecConfigHandle");
}
aclError aclmdlBundleLoadFromFile(const char*, uint32_t*) { return unsupported("aclmdlBundleLoadFromFile"); }
aclError aclmdlBundleLoadFromMem(const void*, size_t, uint32_t*) { return unsupported("aclmdlBundleLoadFromMem"); }
aclError aclmdlBundleUnload(uint32_t) { return unsupported("aclmdlBundleUnload"); }
aclError aclmdlBundleGetModelNum(uint32_t, size_t*) { return unsupported("aclmdlBundleGetModelNum"); }
aclError aclmdlBundleGetModelId(uint32_t, size_t, uint32_t*) { return unsupported("aclmdlBundleGetModelId"); }
aclError aclmdlLoadFromFileWithQ(const char*, uint32_t*, const uint32_t*, size_t, const uint32_t*, size_t) {
  return unsupported("aclmdlLoadFromFileWithQ");
}
aclError aclmdlLoadFromMemWithQ(const void*, size_t, uint32_t*, const uint32_t*, size_t, const uint32_t*, size_t) {
  return unsupported("aclmdlLoadFromMemWithQ");
}
aclError aclmdlExecuteV2(uint32_t, const aclmdlDataset*, aclmdlDataset*, aclrtStream, const aclmdlExecConfigHandle*) {
  return unsupported("aclmdlExecuteV2");
}
aclError aclmdlExecuteAsyncV2(uint32_t, const aclmdlDataset*, aclmdlDataset*, aclrtStream,
                              const aclmdlExecConfigHandle*) {
  return unsupported("aclmdlExecuteAsyncV2");
}
aclError aclmdlQueryExeOMDesc(const char*, aclmdlExeOMDesc*) { return unsupported("aclmdlQueryExeOMDesc"); }
aclError aclmdlGetInputDimsV2(const aclmdlDesc*, size_t, aclmdlIODims*) { return unsupported("aclmdlGetInputDimsV2"); }
aclError aclmdlGetInputDimsRange(const aclmdlDesc*, size_t, aclmdlIODimsRange*) {
  return unsupported("aclmdlGetInputDimsRange");
}
const char* aclmdlGetOpAttr(aclmdlDesc*, const char*, const char*) { return unsupported_null("aclmdlGetOpAttr"); }
aclmdlAIPP* aclmdlCreateAIPP(uint64_t) { return unsupported_null("aclmdlCreateAIPP"); }
aclError aclmdlDestroyAIPP(const aclmdlAIPP*) { return unsupported("aclmdlDestroyAIPP"); }
aclError aclmdlGetAippDataSize(uint64_t, size_t*) { return unsupported("aclmdlGetAippDataSize"); }
aclError aclmdlSetAIPPInputFormat(aclmdlAIPP*, aclAippInputFormat) { return unsupported("aclmdlSetAIPPInputFormat"); }
aclError aclmdlSetAIPPCscParams(aclmdlAIPP*, int8_t, int16_t, int16_t, int16_t, int16_t, int16_t, int16_t, int16_t,
                                int16_t, int16_t, uint8_t, uint8_t, uint8_t, uint8_t, uint8_t, uint8_t) {
  return unsupported("aclmdlSetAIPPCscParams");
}
aclError aclmdlSetAIPPRbuvSwapSwitch(aclmdlAIPP*, int8_t) { return unsupported("aclmdlSetAIPPRbuvSwapSwitch"); }
aclError aclmdlSetAIPPAxSwapSwitch(aclmdlAIPP*, int8_t) { return unsupported("aclmdlSetAIPPAxSwapSwitch"); }
aclError aclmdlSetAIPPSrcImageSize(aclmdlAIPP*, int32_t, int32_t) { return unsupported("aclmdlSetAIPPSrcImageSize"); }
aclError aclmdlSetAIPPScfParams(aclmdlAIPP*, int8_t, int32_t, int32_t, int32_t, int32_t, uint64_t) {
  return unsupported("aclmdlSetAIPPScfParams");
}
aclError aclmdlSetAIPPCropParams(aclmdlAIPP*, int8_t, int32_t, int32_t, int32_t, int32_t, uint64_t) {
  return unsupported("aclmdlSetAIPPCropParams");
}
aclError aclmdlSetAIPPPaddingParams(aclmdlAIPP*, int8_t, int32_t, int32_t, int32_t, int32_t, uint64_t) {
  return unsupported("aclmdlSetAIPPPaddingParams");
}
aclError aclmdlSetAIPPDtcPixelMean(aclmdlAIPP*, int16_t, int16_t, int16_t, int16_t, uint64_t) {
  return unsupported("aclmdlSetAIPPDtcPixelMean");
}
aclError aclmdlSetAIPPDtcPixelMin(aclmdlAIPP*, float, float, float, float, uint64_t) {
  return unsupported("aclmdlSetAIPPDtcPixelMin");
}
aclError aclmdlSetAIPPPixelVarReci(aclmdlAIPP*, float, float, float, float, uint64_t) {
  return unsupported("aclmdlSetAIPPPixelVarReci");
}
aclError aclmdlSetInputAIPP(uint32_t, aclmdlDataset*, size_t, const aclmdlAIPP*) {
  return unsupported("aclmdlSetInputAIPP");
}
aclError aclmdlSetAIPPByInputIndex(uint32_t, aclmdlDataset*, size_t, const aclmdlAIPP*) {
  return unsupported("aclmdlSetAIPPByInputIndex");
}
aclError aclmdlGetAippType(uint32_t, size_t, aclmdlInputAippType*, size_t*) { return unsupported("aclmdlGetAippType"); }
aclError aclmdlGetFirstAippInfo(uint32_t, size_t, aclAippInfo*) { return unsupported("aclmdlGetFirstAippInfo"); }
aclError aclmdlInitDump() { return unsupported("aclmdlInitDump"); }
aclError aclmdlSetDump(const char*) { return unsupported("aclmdlSetDump"); }
aclError aclmdlFinalizeDump() { return unsupported("aclmdlFinalizeDump"); }
aclError aclmdlLoadWithConfig(const aclmdlConfigHandle*, uint32_t*) { return unsupported("aclmdlLoadWithConfig"); }
aclmdlConfigHandle* aclmdlCreateConfigHandle() { return unsupported_null("aclmdlCreateConfigHandle"); }
aclError aclmdlDestroyConfigHandle(aclmdlConfigHandle*) { return unsupported("aclmdlDestroyConfigHandle"); }
aclError aclmdlSetConfigOpt(aclmdlConfigHandle*, aclmdlConfigAttr, const void*, size_t) {
  return unsupported("aclmdlSetConfigOpt");
}
aclError aclmdlSetExecConfigOpt(aclmdlExecConfigHandle*, aclmdlExecConfigAttr, const void*, size_t) {
  return unsupported("aclmdlSetExecConfigOpt");
}
const char* aclmdlGetTensorRealName(const aclmdlDesc*, const char*) {
  return unsupported_null("aclmdlGetTensorRealName");
}
