#include "engines/acl/acl_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>

#include "core/errors.h"

namespace pymfn {
namespace acl {

namespace {

std::mutex g_load_mutex;
AclApi* g_api = nullptr;  // never freed: the library stays loaded until the process exits

std::mutex g_init_mutex;
int g_init_refs = 0;
bool g_initialised = false;
bool g_atexit_registered = false;

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string trim(std::string s) {
  const char* ws = " \t\r\n\"'";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

// "Version=6.0.RC1" style line from CANN's version files; "" if none.
std::string read_cann_version(const std::string& root) {
  for (const char* rel : {"/runtime/version.info", "/version.cfg", "/version.info"}) {
    std::ifstream f(root + rel);
    std::string line;
    while (f && std::getline(f, line)) {
      auto eq = line.find('=');
      if (eq == std::string::npos) continue;
      std::string key = trim(line.substr(0, eq));
      if (key == "Version" || key == "version" || key == "runtime_running_version") {
        std::string v = trim(line.substr(eq + 1));
        if (!v.empty()) return v;
      }
    }
  }
#ifdef PYMFN_CANN_VERSION
  return PYMFN_CANN_VERSION;
#else
  return "";
#endif
}

// Directory of the shared object holding this code (the _core module).
std::string own_directory() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&own_directory), &info) == 0 || info.dli_fname == nullptr) return "";
  std::string path = info.dli_fname;
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

struct Candidate {
  std::string root;
  std::string lib;
};

std::vector<std::string> cann_roots() {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("ASCEND_TOOLKIT_HOME")) {
    if (*env) roots.emplace_back(env);
  }
  roots.emplace_back("/usr/local/Ascend/ascend-toolkit/latest");
  roots.emplace_back("/usr/local/Ascend/nnae/latest");
#ifdef PYMFN_CANN_ROOT
  roots.emplace_back(PYMFN_CANN_ROOT);
#endif
  return roots;
}

template <typename T>
void resolve(void* handle, const char* name, T* slot, bool required, const std::string& lib) {
  ::dlerror();
  void* sym = ::dlsym(handle, name);
  if (sym == nullptr && required) {
    throw EngineError(lib + ": does not export " + name + " (not an AscendCL runtime, or too old)");
  }
  *slot = reinterpret_cast<T>(sym);
}

AclApi* open_library(const std::string& lib, AclApi* api) {
  ::dlerror();
  void* handle = ::dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = ::dlerror();
    throw EngineError("cannot load AscendCL runtime " + lib + ": " + (err ? err : "dlopen failed"));
  }
  api->handle = handle;
  api->library_path = lib;
  try {
#define PYMFN_ACL_RESOLVE_REQUIRED(name) resolve(handle, #name, &api->name, true, lib);
#define PYMFN_ACL_RESOLVE_OPTIONAL(name) resolve(handle, #name, &api->name, false, lib);
    PYMFN_ACL_REQUIRED_FUNCTIONS(PYMFN_ACL_RESOLVE_REQUIRED)
    PYMFN_ACL_OPTIONAL_FUNCTIONS(PYMFN_ACL_RESOLVE_OPTIONAL)
#undef PYMFN_ACL_RESOLVE_REQUIRED
#undef PYMFN_ACL_RESOLVE_OPTIONAL
    resolve(handle, "pymfnEmuIsEmulator", &api->emu_is_emulator, false, lib);
    resolve(handle, "pymfnEmuVersion", &api->emu_version, false, lib);
    resolve(handle, "pymfnEmuGetCounts", &api->emu_get_counts, false, lib);
    resolve(handle, "pymfnEmuLeakReport", &api->emu_leak_report, false, lib);
    resolve(handle, "pymfnEmuLeaksAtFinalize", &api->emu_leaks_at_finalize, false, lib);
    resolve(handle, "pymfnEmuModelCompileRecord", &api->emu_model_compile_record, false, lib);
  } catch (...) {
    ::dlclose(handle);
    api->handle = nullptr;
    throw;
  }
  // The library itself decides whether it is the emulator, whatever path it was found at.
  api->emulator = api->emu_is_emulator != nullptr && api->emu_is_emulator() == 1;
  return api;
}

AclApi* load() {
  std::string mode;
  if (const char* env = std::getenv("PYMFN_ACL")) mode = env;
  if (!mode.empty() && mode != "auto" && mode != "real" && mode != "emulator") {
    throw InvalidArgument("PYMFN_ACL='" + mode + "': expected 'auto', 'real' (CANN) or 'emulator'");
  }
  std::unique_ptr<AclApi> api(new AclApi());
  api->searched = cann_roots();

  Candidate cann;
  for (const auto& root : api->searched) {
    std::string lib = root + "/runtime/lib64/libascendcl.so";
    if (file_exists(lib)) {
      cann = {root, lib};
      break;
    }
  }

  std::string searched_list;
  for (const auto& r : api->searched) searched_list += (searched_list.empty() ? "" : ", ") + r;

  if (mode == "real" || (mode != "emulator" && !cann.lib.empty())) {
    if (cann.lib.empty()) {
      throw EngineError("PYMFN_ACL=real but no CANN runtime was found (looked for runtime/lib64/libascendcl.so "
                        "under " + searched_list + "); install CANN or set ASCEND_TOOLKIT_HOME, or use "
                        "PYMFN_ACL=emulator");
    }
    open_library(cann.lib, api.get());
    api->cann_root = cann.root;
    api->selection = mode == "real" ? "PYMFN_ACL=real" : "auto: CANN found at " + cann.root;
    if (api->emulator) {
      api->runtime = "emulator";
      api->selection += " (the library there identifies itself as pymfn's emulator)";
    } else {
      std::string v = read_cann_version(cann.root);
      api->runtime = "CANN " + (v.empty() ? std::string("(version unknown)") : v);
    }
    return api.release();
  }

  std::string dir = own_directory();
  std::string lib = (dir.empty() ? std::string(".") : dir) + "/libascendcl.so";
  if (!file_exists(lib)) {
    throw EngineError("no AscendCL runtime: " +
                      (mode == "emulator" ? std::string("PYMFN_ACL=emulator") : "no CANN under " + searched_list) +
                      ", and the emulator " + lib + " is missing (build the CMake target 'ascendcl')");
  }
  open_library(lib, api.get());
  if (!api->emulator) {
    ::dlclose(api->handle);
    throw EngineError(lib + ": expected pymfn's ACL emulator next to the _core module, but this library "
                      "does not identify itself as the emulator (pymfnEmuIsEmulator missing)");
  }
  api->runtime = "emulator";
  api->selection = mode == "emulator" ? "PYMFN_ACL=emulator" : "auto: no CANN found";
  return api.release();
}

}  // namespace

const AclApi& acl_api() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  if (g_api == nullptr) g_api = load();
  return *g_api;
}

bool acl_api_loaded() {
  std::lock_guard<std::mutex> lock(g_load_mutex);
  return g_api != nullptr;
}

std::string recent_error_message(const AclApi& api) {
  if (api.aclGetRecentErrMsg == nullptr) return "";
  const char* msg = api.aclGetRecentErrMsg();
  return msg ? std::string(msg) : std::string();
}

void check(const AclApi& api, const char* call, int code) {
  if (code != 0) throw AclError(call, code, error_name(code), recent_error_message(api));
}

static void finalize_at_exit() {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_initialised && g_init_refs == 0 && g_api != nullptr) {
    (void)g_api->aclFinalize();
    g_initialised = false;
  }
}

void acquire_acl_init(const AclApi& api) {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (!g_initialised) {
    int rc = api.aclInit(nullptr);
    if (rc != 0 && rc != ACL_ERROR_REPEAT_INITIALIZE) check(api, "aclInit", rc);
    g_initialised = true;
    if (!g_atexit_registered) {
      std::atexit(finalize_at_exit);
      g_atexit_registered = true;
    }
  }
  ++g_init_refs;
}

void release_acl_init(const AclApi& api) noexcept {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_init_refs <= 0) return;
  // CANN allows one aclInit per process, so the real runtime stays initialised until exit; the emulator
  // is finalised as soon as the last engine goes, which makes its leak check run right there.
  if (--g_init_refs == 0 && api.emulator) {
    (void)api.aclFinalize();
    g_initialised = false;
  }
}

int acl_init_refcount() {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  return g_init_refs;
}

}  // namespace acl
}  // namespace pymfn
