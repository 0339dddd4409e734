#include "data/array_dataset.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/errors.h"
#include "data/contiguous_reader.h"

namespace pymfn {

namespace {

// The file behind [data, data + bytes) when any part of it maps one, watched from now on (mapped_copy.h);
// nullptr for memory no file backs. A mapping names its file by device, inode and path in
// /proc/self/maps; the path is opened again and kept open (to fstat it after every batch) only when it
// still names that inode. When the table cannot be read, the memory is treated as a mapping of an
// unknown file: guarded copies, nothing to fstat. `name` (when not empty) is how errors name the file.
std::shared_ptr<const WatchedFile> watch_backing_file(const void* data, size_t bytes, const std::string& name) {
  const uintptr_t lo = reinterpret_cast<uintptr_t>(data);
  const uintptr_t hi = lo + bytes;
  FILE* maps = std::fopen("/proc/self/maps", "re");
  if (maps == nullptr) return std::make_shared<WatchedFile>(-1, FileStamp{}, name.empty() ? "mapped memory" : name);
  char* line = nullptr;
  size_t cap = 0;
  bool backed = false;
  unsigned dev_major = 0, dev_minor = 0;
  unsigned long long inode = 0;
  std::string mapped_path;
  while (!backed && ::getline(&line, &cap, maps) > 0) {
    uintptr_t start = 0, end = 0;
    unsigned long long offset = 0, ino = 0;
    unsigned maj = 0, mnr = 0;
    int path_at = 0;
    if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %*s %llx %x:%x %llu %n", &start, &end, &offset, &maj, &mnr, &ino,
                    &path_at) < 6)
      continue;
    if (start >= hi) break;  // the table is sorted by address
    if (end <= lo || ino == 0) continue;  // before the range, or anonymous memory
    backed = true;
    dev_major = maj;
    dev_minor = mnr;
    inode = ino;
    mapped_path = line + path_at;
    while (!mapped_path.empty() && (mapped_path.back() == '\n' || mapped_path.back() == ' ')) mapped_path.pop_back();
  }
  std::free(line);
  std::fclose(maps);
  if (!backed) return nullptr;
  const std::string shown = name.empty() ? mapped_path : name;
  const int fd = mapped_path.empty() || mapped_path[0] != '/'
                     ? -1
                     : ::open(mapped_path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // " (deleted)": ENOENT
  struct stat st;
  if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && static_cast<unsigned long long>(st.st_ino) == inode &&
      major(st.st_dev) == dev_major && minor(st.st_dev) == dev_minor)
    return std::make_shared<WatchedFile>(fd, file_stamp(st), shown);
  if (fd >= 0) ::close(fd);
  return std::make_shared<WatchedFile>(-1, FileStamp{}, shown);
}

}  // namespace

ArrayDataset::ArrayDataset(std::shared_ptr<const void> owner, const void* data, size_t count, DType dtype,
                           std::vector<int64_t> sample_shape, std::string origin, std::string path)
    : owner_(std::move(owner)), data_(static_cast<const unsigned char*>(data)), count_(count), dtype_(dtype),
      shape_(std::move(sample_shape)), origin_(std::move(origin)), path_(std::move(path)) {
  if (data_ == nullptr) throw InvalidArgument(origin_ + ": null data pointer");
  if (count_ == 0) throw InvalidArgument(origin_ + ": no samples (the first axis has length 0)");
  size_t bytes = dtype_size(dtype_);
  for (int64_t d : shape_) {
    if (d <= 0)
      throw InvalidArgument(origin_ + ": sample shape " + shape_str(shape_) + " has a non-positive dimension");
    if (bytes > SIZE_MAX / static_cast<size_t>(d)) throw InvalidArgument(origin_ + ": sample size overflows");
    bytes *= static_cast<size_t>(d);
  }
  sample_bytes_ = bytes;
  if (count_ > SIZE_MAX / sample_bytes_) throw InvalidArgument(origin_ + ": array size overflows");
  file_ = watch_backing_file(data_, count_ * sample_bytes_, path_);
}

std::string ArrayDataset::describe() const {
  return origin_ + " (" + std::to_string(count_) + " samples of " + dtype_name(dtype_) + " " + shape_str(shape_) +
         ")";
}

SampleSpec ArrayDataset::sample_spec() const {
  return SampleSpec{dtype_, sample_bytes_, shape_, origin_, path_.empty() ? origin_ : path_};
}

std::unique_ptr<BatchReader> ArrayDataset::reader(size_t batch_size, size_t prefetch) const {
  // A mapped file gets the readahead hints of a packed file's reader; plain memory needs none.
  return std::make_unique<ContiguousBatchReader>(owner_, data_, count_, sample_spec(), batch_size,
                                                 file_ ? prefetch : 0, file_);
}

}  // namespace pymfn
