// The packed sample file: N samples back to back after a fixed header, so a batch is a pointer into an
// mmap of the file. Little-endian. Written by pymfn/pack.py, read by csrc/data/packed_dataset.cpp.
//
//   offset  size  field
//   0       8     magic "PYMFNPK\0"
//   8       4     uint32 version (1)
//   12      4     uint32 header_bytes: offset of sample 0 (writers use 4096 so samples are page-aligned;
//                 readers accept any multiple of 4096)
//   16      4     uint32 dtype code (pymfn::DType / aclDataType: 0 f32, 1 f16, 2 i8, 3 i32, 4 u8)
//   20      4     uint32 ndim of one sample (1..8)
//   24      8     uint64 count (number of samples, at least 1)
//   32      8     uint64 sample_bytes (= prod(dims) * dtype size)
//   40      64    int64 dims[8] (unused entries 0)
//   104     ...   zero up to header_bytes
// File size must be exactly header_bytes + count * sample_bytes. Readers (validate_packed_header in
// csrc/data/packed_dataset.cpp, pymfn.pack.parse_header) reject anything else with FormatError.
#pragma once
#include <cstdint>

namespace pymfn {

constexpr char kPackedMagic[8] = {'P', 'Y', 'M', 'F', 'N', 'P', 'K', '\0'};
constexpr uint32_t kPackedVersion = 1;
constexpr uint32_t kPackedHeaderBytes = 4096;
constexpr uint32_t kPackedMaxDims = 8;

#pragma pack(push, 1)
struct PackedHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint32_t dtype;
  uint32_t ndim;
  uint64_t count;
  uint64_t sample_bytes;
  int64_t dims[kPackedMaxDims];
};
#pragma pack(pop)
static_assert(sizeof(PackedHeader) == 104, "packed header layout");

}  // namespace pymfn
