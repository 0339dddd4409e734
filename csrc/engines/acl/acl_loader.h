// Finds and opens libascendcl.so at run time and fills a table of its functions.
//
// Why dlopen instead of linking: one build of pymfn._core must run on a server with CANN (the real
// runtime, real NPU) and on any x86 machine without it (pymfn's emulator). Linking would bind to whatever
// library the loader happens to find first; choosing explicitly lets us refuse to pass the emulator off
// as hardware and record in every report which runtime actually executed.
//
// Selection (environment variable PYMFN_ACL, read once per process, on first use):
//   unset / "auto"  the real CANN runtime when one is installed, else the emulator
//   "real"          the real CANN runtime; an EngineError naming the places searched when none exists
//   "emulator"      the emulator shipped next to the _core module, even when CANN is installed
// CANN roots searched, in order: $ASCEND_TOOLKIT_HOME, /usr/local/Ascend/ascend-toolkit/latest,
// /usr/local/Ascend/nnae/latest, then the build-time PYMFN_CANN_ROOT; the library is
// <root>/runtime/lib64/libascendcl.so. The emulator is libascendcl.so in the directory of the _core
// module file (located with dladdr on a function of this file).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engines/acl/acl_api.h"
#include "acl_emulator/emulator_api.h"

namespace pymfn {
namespace acl {

struct AclApi {
#define PYMFN_ACL_DECLARE_PTR(name) decltype(&::name) name = nullptr;
  PYMFN_ACL_REQUIRED_FUNCTIONS(PYMFN_ACL_DECLARE_PTR)
  PYMFN_ACL_OPTIONAL_FUNCTIONS(PYMFN_ACL_DECLARE_PTR)
#undef PYMFN_ACL_DECLARE_PTR

  // Emulator-only extensions (nullptr on real CANN): see acl_emulator/emulator_api.h.
  int (*emu_is_emulator)() = nullptr;
  const char* (*emu_version)() = nullptr;
  int (*emu_get_counts)(pymfnEmuCounts*) = nullptr;
  size_t (*emu_leak_report)(char*, size_t) = nullptr;
  uint64_t (*emu_leaks_at_finalize)() = nullptr;
  int (*emu_model_compile_record)(uint32_t, char*, size_t, size_t*) = nullptr;

  void* handle = nullptr;
  std::string library_path;   // the file dlopen()ed
  bool emulator = false;      // true when the library identifies itself as pymfn's emulator
  std::string runtime;        // "emulator" or "CANN <version>"
  std::string cann_root;      // root the real library came from (empty for the emulator)
  std::string selection;      // why this library: "PYMFN_ACL=emulator", "auto: no CANN found", ...
  std::vector<std::string> searched;  // CANN roots looked at
};

// The process-wide table; loads on first call (thread-safe). Throws pymfn::EngineError with the reason
// (no CANN for PYMFN_ACL=real, emulator missing, dlopen/dlsym failure) and pymfn::InvalidArgument for a
// bad PYMFN_ACL value. A failed load is not cached, so a fixed environment can retry.
const AclApi& acl_api();

// True once acl_api() succeeded (does not trigger a load).
bool acl_api_loaded();

// aclGetRecentErrMsg() when the runtime has it, else "".
std::string recent_error_message(const AclApi& api);

// Throws pymfn::AclError(call, code, name, recent message) when code != 0.
void check(const AclApi& api, const char* call, int code);

// Process-wide aclInit/aclFinalize, reference-counted across engines: acquire() runs aclInit on the
// first reference. When the last reference goes, the emulator is finalised at once (its leak report then
// covers everything); real CANN, which allows one aclInit per process, is finalised at process exit
// (atexit) if no engine is alive then. ACL_ERROR_REPEAT_INITIALIZE from aclInit (someone else in the
// process initialised ACL) is accepted.
void acquire_acl_init(const AclApi& api);
void release_acl_init(const AclApi& api) noexcept;
int acl_init_refcount();

}  // namespace acl
}  // namespace pymfn
