// ACL emulator, memory: the registry of device and pinned host memory, and the copies checked against it.
//
// ================================================================ CONTRACT (memory)
// * A registry of every aclrtMalloc ("device") and aclrtMallocHost ("pinned host") block; anything else is
//   "unknown host memory" (plain malloc, the stack, a numpy array). Size 0 or a NULL out-pointer -> 100000;
//   an unknown malloc policy -> 100000; both need a current context (107002).
// * aclrtMalloc memory is filled with 0xA5 (device memory is never zeroed), so reading it before writing it
//   shows up as garbage, not as zeros. aclrtMallocHost memory starts zeroed (fresh pages).
// * aclrtFree of anything but the start of a live aclrtMalloc block, aclrtFreeHost of anything but the start
//   of a live aclrtMallocHost block -> 100000 (the message says what the pointer is).
// * aclrtMemcpy / aclrtMemcpyAsync: count <= destMax, both ranges must stay inside the block they start in,
//   and in ACL_HOST run mode the kind must match where the pointers live (a device pointer as the source of
//   HOST_TO_DEVICE, a host pointer as the destination of HOST_TO_DEVICE, ...) -> 100000. In ACL_DEVICE run
//   mode host and device are one memory, so the kind is not checked against the pointers (a file read
//   straight into aclrtMalloc memory is legitimate there). The async copy is validated when it is queued
//   and performed when its stream reaches it (streams.cpp); a NULL stream is the default stream.
// * aclrtMemset: the target must be runtime memory (device memory in ACL_HOST mode), count <= maxCount,
//   maxCount inside the block -> 100000.
// ================================================================
#include <cstdlib>
#include <cstring>

#include "acl_emulator/state.h"

namespace pymfn_emu {

Where locate(const void* p, size_t len, bool* overflow, size_t* room) {
  *overflow = false;
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = g.blocks.upper_bound(addr);
  if (it == g.blocks.begin()) return Where::kUnknown;
  --it;
  if (addr >= it->first + it->second.size) return Where::kUnknown;
  const size_t left = it->first + it->second.size - addr;
  if (room) *room = left;
  if (len > left) *overflow = true;
  return it->second.device ? Where::kDevice : Where::kPinnedHost;
}

const char* where_name(Where w) {
  switch (w) {
    case Where::kDevice: return "device memory (aclrtMalloc)";
    case Where::kPinnedHost: return "pinned host memory (aclrtMallocHost)";
    default: return "host memory not allocated by ACL";
  }
}

namespace {

aclError emu_alloc(const char* fn, void** ptr, size_t size, bool device) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  if (!ptr) return fail(ACL_ERROR_INVALID_PARAM, fn, "pointer argument is NULL");
  if (size == 0) return fail(ACL_ERROR_INVALID_PARAM, fn, "size is 0");
  EMU_CHECK(need_ctx(fn));
  const size_t rounded = (size + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded);
  if (!p) return fail(ACL_ERROR_BAD_ALLOC, fn, "cannot allocate " + std::to_string(size) + " bytes");
  std::memset(p, device ? 0xA5 : 0, rounded);
  g.blocks[reinterpret_cast<uintptr_t>(p)] = Block{size, device};
  *ptr = p;
  return ACL_SUCCESS;
}

aclError emu_free(const char* fn, void* ptr, bool device) {
  std::lock_guard<std::mutex> lk(g_mu);
  EMU_CHECK(need_init(fn));
  auto it = g.blocks.find(reinterpret_cast<uintptr_t>(ptr));
  if (!ptr || it == g.blocks.end() || it->second.device != device) {
    bool overflow = false;
    const Where w = ptr ? locate(ptr, 1, &overflow) : Where::kUnknown;
    std::string why = ptr ? std::string("pointer ") + ptr_str(ptr) + " is " + where_name(w) : "pointer is NULL";
    if (it == g.blocks.end() && w != Where::kUnknown) why += " but not the start of a block";
    why += device ? "; aclrtFree only frees pointers returned by aclrtMalloc"
                  : "; aclrtFreeHost only frees pointers returned by aclrtMallocHost";
    return fail(ACL_ERROR_INVALID_PARAM, fn, why);
  }
  g.blocks.erase(it);
  std::free(ptr);
  return ACL_SUCCESS;
}

// Validates a copy (g_mu held).
aclError check_copy(const char* fn, void* dst, size_t destMax, const void* src, size_t count, aclrtMemcpyKind kind) {
  EMU_CHECK(need_init(fn));
  EMU_CHECK(need_ctx(fn));
  if (!dst || !src) return fail(ACL_ERROR_INVALID_PARAM, fn, "dst or src is NULL");
  if (kind < ACL_MEMCPY_HOST_TO_HOST || kind > ACL_MEMCPY_DEVICE_TO_DEVICE)
    return fail(ACL_ERROR_INVALID_PARAM, fn, "unknown memcpy kind " + std::to_string(static_cast<int>(kind)));
  if (count > destMax)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "count " + std::to_string(count) + " exceeds destMax " + std::to_string(destMax));
  bool dov = false, sov = false;
  size_t droom = 0, sroom = 0;
  const Where dw = locate(dst, destMax, &dov, &droom);
  const Where sw = locate(src, count, &sov, &sroom);
  if (dov)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "destMax " + std::to_string(destMax) + " runs past the end of the destination block (" +
                    std::to_string(droom) + " bytes left)");
  if (sov)
    return fail(ACL_ERROR_INVALID_PARAM, fn,
                "count " + std::to_string(count) + " runs past the end of the source block (" + std::to_string(sroom) +
                    " bytes left)");
  if (g.run_mode == ACL_HOST) {
    const bool want_src_dev = kind == ACL_MEMCPY_DEVICE_TO_HOST || kind == ACL_MEMCPY_DEVICE_TO_DEVICE;
    const bool want_dst_dev = kind == ACL_MEMCPY_HOST_TO_DEVICE || kind == ACL_MEMCPY_DEVICE_TO_DEVICE;
    static const char* kinds[] = {"HOST_TO_HOST", "HOST_TO_DEVICE", "DEVICE_TO_HOST", "DEVICE_TO_DEVICE"};
    if ((sw == Where::kDevice) != want_src_dev)
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  std::string("kind ACL_MEMCPY_") + kinds[kind] + " but the source " + ptr_str(src) + " is " +
                      where_name(sw));
    if ((dw == Where::kDevice) != want_dst_dev)
      return fail(ACL_ERROR_INVALID_PARAM, fn,
                  std::string("kind ACL_MEMCPY_") + kinds[kind] + " but the destination " + ptr_str(dst) + " is " +
                      where_name(dw));
  }
  return ACL_SUCCESS;
}

}  // namespace
}  // namespace pymfn_emu

using namespace pymfn_emu;

extern "C" {

aclError aclrtMalloc(void** devPtr, size_t size, aclrtMemMallocPolicy policy) {
  if (policy != ACL_MEM_MALLOC_HUGE_FIRST && policy != ACL_MEM_MALLOC_HUGE_ONLY && policy != ACL_MEM_MALLOC_NORMAL_ONLY)
    return fail(ACL_ERROR_INVALID_PARAM, "aclrtMalloc", "unknown malloc policy " + std::to_string(static_cast<int>(policy)));
  return emu_alloc("aclrtMalloc", devPtr, size, true);
}
aclError aclrtFree(void* devPtr) { return emu_free("aclrtFree", devPtr, true); }
aclError aclrtMallocHost(void** hostPtr, size_t size) { return emu_alloc("aclrtMallocHost", hostPtr, size, false); }
aclError aclrtFreeHost(void* hostPtr) { return emu_free("aclrtFreeHost", hostPtr, false); }

aclError aclrtMemcpy(void* dst, size_t destMax, const void* src, size_t count, aclrtMemcpyKind kind) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(check_copy("aclrtMemcpy", dst, destMax, src, count, kind));
  }
  if (count) std::memmove(dst, src, count);
  return ACL_SUCCESS;
}

aclError aclrtMemcpyAsync(void* dst, size_t destMax, const void* src, size_t count, aclrtMemcpyKind kind,
                          aclrtStream stream) {
  Stream* s = nullptr;
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(check_copy("aclrtMemcpyAsync", dst, destMax, src, count, kind));
    EMU_CHECK(resolve_stream("aclrtMemcpyAsync", stream, &s));
    ++s->next_task;
  }
  s->push(Task{[dst, src, count](std::string*) {
    if (count) std::memmove(dst, src, count);
    return ACL_SUCCESS;
  }});
  return ACL_SUCCESS;
}

aclError aclrtMemset(void* devPtr, size_t maxCount, int32_t value, size_t count) {
  {
    std::lock_guard<std::mutex> lk(g_mu);
    EMU_CHECK(need_init("aclrtMemset"));
    EMU_CHECK(need_ctx("aclrtMemset"));
    if (!devPtr) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", "devPtr is NULL");
    if (count > maxCount)
      return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", "count " + std::to_string(count) + " exceeds maxCount " + std::to_string(maxCount));
    bool ov = false;
    const Where w = locate(devPtr, maxCount, &ov);
    if (w == Where::kUnknown || (g.run_mode == ACL_HOST && w != Where::kDevice))
      return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", std::string("devPtr is ") + where_name(w) + ", not device memory");
    if (ov) return fail(ACL_ERROR_INVALID_PARAM, "aclrtMemset", "maxCount runs past the end of the block");
  }
  std::memset(devPtr, value, count);
  return ACL_SUCCESS;
}

}  // extern "C"
