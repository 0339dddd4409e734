// EMULATOR-ONLY extensions of libascendcl.so. The real CANN runtime does not export these: a client
// must resolve them with dlsym() and treat their absence as "this is real hardware".
//
// They let tests (and the ACL engine's reports) ask the emulator what a real NPU cannot tell you:
// which resources a program forgot to release, and whether the library is the emulator at all.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(_WIN32)
#define PYMFN_EMU_API
#else
#define PYMFN_EMU_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

// Always 1 in the emulator. Real CANN has no such symbol.
PYMFN_EMU_API int pymfnEmuIsEmulator(void);

// Version string of the emulator and of the OpenVINO runtime it executes with.
PYMFN_EMU_API const char* pymfnEmuVersion(void);

// Outstanding (created but not yet released) resources, counted since the last aclInit.
typedef struct pymfnEmuCounts {
  uint64_t device_allocs;   // aclrtMalloc blocks not yet aclrtFree'd
  uint64_t host_allocs;     // aclrtMallocHost blocks not yet aclrtFreeHost'd
  uint64_t device_bytes;    // bytes in those device blocks
  uint64_t host_bytes;      // bytes in those pinned host blocks
  uint64_t datasets;        // aclmdlCreateDataset without aclmdlDestroyDataset
  uint64_t data_buffers;    // aclCreateDataBuffer without aclDestroyDataBuffer
  uint64_t descs;           // aclmdlCreateDesc without aclmdlDestroyDesc
  uint64_t models;          // loaded, not unloaded
  uint64_t contexts;        // aclrtCreateContext without aclrtDestroyContext
  uint64_t streams;         // aclrtCreateStream without aclrtDestroyStream
  uint64_t executes;        // successful aclmdlExecute/ExecuteAsync runs since aclInit (not a leak)
  uint64_t events;          // aclrtCreateEvent without aclrtDestroyEvent
  uint64_t tensor_descs;    // aclCreateTensorDesc / aclmdlCreateAndGetOpDesc arrays not aclDestroyTensorDesc'd
} pymfnEmuCounts;

// Fills *out with the live counts (works before aclInit and after aclFinalize, where it returns the
// counts aclFinalize found). Returns 0, or 100000 when out is NULL.
PYMFN_EMU_API int pymfnEmuGetCounts(pymfnEmuCounts* out);

// Writes a human-readable leak report (the same text aclFinalize prints on stderr) into buf,
// NUL-terminated, truncated to len-1 bytes. Returns the full length needed (excluding the NUL),
// so a caller can retry with a larger buffer. The report is empty ("") when nothing is outstanding.
PYMFN_EMU_API size_t pymfnEmuLeakReport(char* buf, size_t len);

// Total leaked resources found by the most recent aclFinalize (0 = clean shutdown).
PYMFN_EMU_API uint64_t pymfnEmuLeaksAtFinalize(void);

// How the emulated devices share the host, as a sentence (device count, OpenVINO threads per model,
// the device timing model of PYMFN_ACL_EMU_EXEC_MS), written like pymfnEmuLeakReport: NUL-terminated
// into buf, truncated to len-1 bytes; returns the full length. "" before aclInit.
PYMFN_EMU_API size_t pymfnEmuDeviceModel(char* buf, size_t len);

// What the emulator compiled a loaded model to, as "key=value" lines (NUL-terminated into buf, truncated
// to len-1 bytes; *needed = the full length, so a caller can retry with a larger buffer):
//   compute_precision   the emulator's arithmetic: f32 for every om, on every host
//   device_precision    the arithmetic an Ascend 310 uses for this om: f16, int8 or f32
//   precision_reason    one sentence: what is rounded how, and how that compares with the device
//   runtime_precision   what the compute layers (convolutions, matrix multiplies) of OpenVINO's execution
//                       graph compute on: the type of their data input, e.g. "f32 x52"
//   stored_weights_precision    the narrow constants of the payload (fp16 weights; int8 weights of quantized
//                       layers), widened exactly to the compute type before compiling, e.g. "f16 x52"
//   runtime_precision_by_layer_type   every executed layer type with its runtime precisions
//   fake_quantize_ops   FakeQuantize operations in the payload (an INT8 om has some)
// Returns 0; 100000 when needed is NULL, 100001 before aclInit, 100011 for an id that is not loaded.
PYMFN_EMU_API int pymfnEmuModelCompileRecord(uint32_t modelId, char* buf, size_t len, size_t* needed);

// Test hook: while paused (paused != 0) the stream's worker starts no queued work, so a test can hold
// work "in flight" deterministically (e.g. to check that a second stream is refused the same model).
// aclrtSynchronizeStream on a paused stream with queued work would wait forever: resume it first.
// Returns 0, or 100000 for a stream that is not live.
PYMFN_EMU_API int pymfnEmuPauseStream(void* stream, int paused);

#ifdef __cplusplus
}  // extern "C"
#endif
