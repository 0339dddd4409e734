// Copying out of a file mapping without dying when the file shrinks underneath it.
//
// Reading a page of a MAP_SHARED file mapping that lies past the file's current end raises SIGBUS,
// which kills the process. Every pymfn reader that maps a file (a folder's sample files, a packed
// file, a numpy array that is a mapping of a file) copies each batch out of its mappings with
// copy_from_mapping() and hands out only the copy, so no other code (the runner, an engine, Python)
// ever reads a mapped page that could vanish. copy_from_mapping() turns the fault into a return
// value: a SIGBUS raised while *this thread* is inside the copy jumps back out and the copy reports
// failure; the reader then names the file in a one-line error.
//
// How: a SIGBUS handler is installed once (on first use) with sigaction. When the faulting thread
// is inside a guarded copy, the handler siglongjmps back to it. Any other SIGBUS is not ours: the
// handler puts back the disposition that was there before and returns, so the faulting access runs
// again and is handled as it would have been without pymfn (default: the process dies; Python's
// faulthandler: traceback, then death). A SIGBUS sent with kill()/raise() is re-raised the same way.
// A handler another library installs after ours replaces it; the guard then no longer applies.
#pragma once
#include <sys/stat.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace pymfn {

// What a reader remembers of an input file from when it was opened, to tell later whether the file
// it reads is still that file, unchanged: a dataset is its inputs as they were when it was opened.
struct FileStamp {
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
};

FileStamp file_stamp(const struct stat& st);

// "" when `now` is the file of `then` with the same size and modification time; otherwise what
// changed, in words for an error message ("it is now 128 bytes, was 4096", "another file has
// replaced it", "it was rewritten: its modification time changed"). Timestamps have the kernel's
// clock-tick granularity, so a same-size rewrite within one tick of the file's previous write
// is the one change this cannot see.
std::string file_change(const FileStamp& then, const FileStamp& now);

// A file whose mapping a reader copies samples out of, watched for changes. `fd` (owned; -1 when the
// mapped file could not be opened again, e.g. it was deleted or its path now names another file) is
// fstat-ed after every batch and compared with `opened`. `path` is what errors name.
class WatchedFile {
 public:
  WatchedFile(int fd, const FileStamp& opened, std::string path);
  ~WatchedFile();
  WatchedFile(const WatchedFile&) = delete;
  WatchedFile& operator=(const WatchedFile&) = delete;

  const std::string& path() const { return path_; }
  bool watched() const { return fd_ >= 0; }
  // Throws InputError(path) when the file is no longer the one opened, unchanged.
  void check() const;
  // Throws InputError(path) after a guarded copy out of the mapping faulted (SIGBUS): the file
  // shrank under the mapping, or the storage behind it failed to deliver a page.
  [[noreturn]] void fail_after_fault(size_t first_sample, size_t samples) const;

 private:
  int fd_;
  FileStamp opened_;
  std::string path_;
};

// memcpy(dst, src, n) where src points into a file mapping. Returns false (and leaves dst partly
// written) when the mapping faulted with SIGBUS during the copy.
bool copy_from_mapping(void* dst, const void* src, size_t n);

// Test support (exposed as _core._copy_after_truncating_mapping): maps the first mapped_bytes of
// `path`, truncates the file to truncate_to bytes, then copy_from_mapping()s the whole mapping.
// Stages deterministically the race a folder reader can only hit by bad luck. Returns the copy's
// result; throws InputError when the file cannot be opened, mapped or truncated.
bool copy_after_truncating_mapping(const std::string& path, size_t mapped_bytes, size_t truncate_to);

}  // namespace pymfn
