// Copying out of a file mapping without dying when the file shrinks underneath it.
//
// Reading a page of a MAP_SHARED file mapping that lies past the file's current end raises SIGBUS,
// which kills the process. A folder dataset maps its sample files once and copies from the
// mappings on every pass, so a sample file truncated by another process at the wrong moment would
// take the whole benchmark down. copy_from_mapping() turns that into a return value: a SIGBUS
// raised while *this thread* is inside the copy jumps back out and the copy reports failure.
//
// How: a SIGBUS handler is installed once (on first use) with sigaction. When the faulting thread
// is inside a guarded copy, the handler siglongjmps back to it. Any other SIGBUS is not ours: the
// handler puts back the disposition that was there before and returns, so the faulting access runs
// again and is handled as it would have been without pymfn (default: the process dies; Python's
// faulthandler: traceback, then death). A SIGBUS sent with kill()/raise() is re-raised the same way.
#pragma once
#include <cstddef>
#include <string>

namespace pymfn {

// memcpy(dst, src, n) where src points into a file mapping. Returns false (and leaves dst partly
// written) when the mapping faulted with SIGBUS during the copy.
bool copy_from_mapping(void* dst, const void* src, size_t n);

// Test support (exposed as _core._copy_after_truncating_mapping): maps the first mapped_bytes of
// `path`, truncates the file to truncate_to bytes, then copy_from_mapping()s the whole mapping.
// Stages deterministically the race a folder reader can only hit by bad luck. Returns the copy's
// result; throws InputError when the file cannot be opened, mapped or truncated.
bool copy_after_truncating_mapping(const std::string& path, size_t mapped_bytes, size_t truncate_to);

}  // namespace pymfn
