// Size arithmetic for buffers whose size comes from a caller (batch sizes, prefetch depths, tensor
// descriptions). A size that overflows, or that no allocation on this machine could ever satisfy,
// becomes an InvalidArgument naming what asked for it, before anything is allocated: never a
// std::bad_alloc, a wrapped-around small buffer, or an overcommitted one the OOM killer settles later.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/errors.h"

namespace pymfn {

// Physical memory of this machine in bytes (the ceiling no single request may exceed). Falls back to
// SIZE_MAX when the system does not say, which leaves only the overflow checks.
inline size_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return SIZE_MAX;
  const auto p = static_cast<size_t>(pages), s = static_cast<size_t>(page);
  return p > SIZE_MAX / s ? SIZE_MAX : p * s;
}

// "12.3 GB": sizes in messages are read by people.
inline std::string human_bytes(size_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GB", static_cast<double>(bytes) / 1e9);
  return buf;
}

// count * each, or InvalidArgument("<what>: ...") when the product overflows or exceeds this machine's
// memory. `what` names the request ("reader(batch_size=...)"), `unit` what is counted ("rows").
inline size_t checked_buffer_bytes(const std::string& what, size_t count, const char* unit, size_t each) {
  const std::string product = std::to_string(count) + " " + unit + " x " + std::to_string(each) + " bytes";
  if (each != 0 && count > SIZE_MAX / each) throw InvalidArgument(what + ": " + product + " overflows a 64-bit size");
  const size_t bytes = count * each;
  const size_t ram = physical_memory_bytes();
  if (bytes > ram)
    throw InvalidArgument(what + ": " + product + " = " + std::to_string(bytes) + " bytes, more than this machine's " +
                          human_bytes(ram) + " of memory");
  return bytes;
}

}  // namespace pymfn
