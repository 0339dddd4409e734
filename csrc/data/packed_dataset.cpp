#include "data/packed_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/errors.h"
#include "data/contiguous_reader.h"

namespace pymfn {

namespace {

// Closes a descriptor on every exit path of the constructor.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
};

struct Mapping {
  void* addr = MAP_FAILED;
  size_t len = 0;
  ~Mapping() {
    if (addr != MAP_FAILED) ::munmap(addr, len);
  }
};

}  // namespace

void validate_packed_header(const PackedHeader& h, uint64_t file_size, const std::string& path) {
  if (std::memcmp(h.magic, kPackedMagic, sizeof(kPackedMagic)) != 0)
    throw FormatError(path, "bad magic: not a pymfn packed file (expected \"PYMFNPK\\0\" at offset 0)");
  if (h.version != kPackedVersion)
    throw FormatError(path, "unsupported packed format version " + std::to_string(h.version) +
                                " (this build reads version " + std::to_string(kPackedVersion) + ")");
  if (h.header_bytes < sizeof(PackedHeader) || h.header_bytes % kPackedHeaderBytes != 0)
    throw FormatError(path, "header_bytes " + std::to_string(h.header_bytes) + " is invalid (expected a multiple of " +
                                std::to_string(kPackedHeaderBytes) + ")");
  DType dt;
  if (!dtype_from_code(h.dtype, &dt))
    throw FormatError(path, "unknown dtype code " + std::to_string(h.dtype) +
                                " (expected 0 float32, 1 float16, 2 int8, 3 int32 or 4 uint8)");
  if (h.ndim < 1 || h.ndim > kPackedMaxDims)
    throw FormatError(path, "ndim " + std::to_string(h.ndim) + " is out of range 1.." + std::to_string(kPackedMaxDims));
  uint64_t expect = dtype_size(dt);
  for (uint32_t i = 0; i < kPackedMaxDims; ++i) {
    const int64_t d = h.dims[i];
    if (i < h.ndim) {
      if (d <= 0) throw FormatError(path, "dims[" + std::to_string(i) + "] = " + std::to_string(d) + " is not positive");
      if (expect > UINT64_MAX / static_cast<uint64_t>(d)) throw FormatError(path, "sample size overflows 64 bits");
      expect *= static_cast<uint64_t>(d);
    } else if (d != 0) {
      throw FormatError(path, "dims[" + std::to_string(i) + "] = " + std::to_string(d) + " past ndim " +
                                  std::to_string(h.ndim) + " must be 0");
    }
  }
  if (h.sample_bytes != expect)
    throw FormatError(path, "header sample_bytes " + std::to_string(h.sample_bytes) + " disagrees with dims x " +
                                dtype_name(dt) + " = " + std::to_string(expect) + " bytes");
  if (h.count > (UINT64_MAX - h.header_bytes) / h.sample_bytes)
    throw FormatError(path, "count " + std::to_string(h.count) + " overflows the file size");
  const uint64_t want = h.header_bytes + h.count * h.sample_bytes;
  if (file_size != want)
    throw FormatError(path, "file is " + std::to_string(file_size) + " bytes but the header describes " +
                                std::to_string(want) + " bytes (" + std::to_string(h.header_bytes) + " header + " +
                                std::to_string(h.count) + " samples x " + std::to_string(h.sample_bytes) + ")" +
                                (file_size < want ? ": the file is truncated" : ": trailing bytes after the last sample"));
}

PackedDataset::PackedDataset(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO given as the path must fail the regular-file check, not block forever.
  FdGuard fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (fd.fd < 0) {
    const int err = errno;
    throw InputError(path, std::string("cannot open packed file: ") + std::strerror(err));
  }
  struct stat st;
  if (::fstat(fd.fd, &st) != 0) throw InputError(path, std::string("cannot stat: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw InputError(path, "not a regular file (expected a packed sample file)");
  const FileStamp opened = file_stamp(st);
  file_bytes_ = static_cast<uint64_t>(st.st_size);
  if (file_bytes_ < sizeof(PackedHeader))
    throw FormatError(path, "file is " + std::to_string(file_bytes_) + " bytes, too short for the " +
                                std::to_string(sizeof(PackedHeader)) + "-byte packed header");

  PackedHeader h;
  size_t got = 0;
  while (got < sizeof(h)) {
    const ssize_t n = ::pread(fd.fd, reinterpret_cast<char*>(&h) + got, sizeof(h) - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw InputError(path, std::string("cannot read the header: ") + std::strerror(errno));
    if (n == 0) throw FormatError(path, "file ended inside the header");
    got += static_cast<size_t>(n);
  }
  validate_packed_header(h, file_bytes_, path);
  if (h.count == 0) throw FormatError(path, "packed file contains no samples");

  dtype_from_code(h.dtype, &dtype_);
  header_bytes_ = h.header_bytes;
  count_ = static_cast<size_t>(h.count);
  sample_bytes_ = static_cast<size_t>(h.sample_bytes);
  shape_.assign(h.dims, h.dims + h.ndim);

  auto map = std::make_shared<Mapping>();
  map->len = static_cast<size_t>(file_bytes_);
  map->addr = ::mmap(nullptr, map->len, PROT_READ, MAP_SHARED, fd.fd, 0);
  if (map->addr == MAP_FAILED) throw InputError(path, std::string("cannot mmap: ") + std::strerror(errno));
  base_ = static_cast<const unsigned char*>(map->addr) + header_bytes_;
  // Alias the mapping's lifetime onto a const void* so readers need not know its type.
  mapping_ = std::shared_ptr<const void>(map, map->addr);
  // The descriptor moves to the watcher, which keeps it for fstat checks during reads.
  file_ = std::make_shared<WatchedFile>(fd.fd, opened, path);
  fd.fd = -1;
  // A change between the fstat above and now (header read, mmap) shows here or on the first batch.
  file_->check();
}

void PackedDataset::expect(size_t sample_bytes, const DType* dtype, const std::vector<int64_t>& shape) const {
  if (dtype != nullptr && *dtype != dtype_)
    throw ShapeMismatch(path_, "packed samples are " + dtype_name(dtype_) + " but the model expects " +
                                   dtype_name(*dtype));
  if (!shape.empty() && shape != shape_)
    throw ShapeMismatch(path_, "packed sample shape " + shape_str(shape_) + " but the model expects " +
                                   shape_str(shape));
  if (sample_bytes != 0 && sample_bytes != sample_bytes_)
    throw ShapeMismatch(path_, "packed samples are " + std::to_string(sample_bytes_) +
                                   " bytes but the model expects " + std::to_string(sample_bytes) + " bytes");
}

std::string PackedDataset::describe() const {
  return "packed " + path_ + " (" + std::to_string(count_) + " samples of " + dtype_name(dtype_) + " " +
         shape_str(shape_) + ")";
}

SampleSpec PackedDataset::sample_spec() const {
  return SampleSpec{dtype_, sample_bytes_, shape_, "packed " + path_, path_};
}

std::unique_ptr<BatchReader> PackedDataset::reader(size_t batch_size, size_t prefetch) const {
  return std::make_unique<ContiguousBatchReader>(mapping_, base_, count_, sample_spec(), batch_size, prefetch, file_);
}

}  // namespace pymfn
