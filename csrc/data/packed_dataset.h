// A packed sample file (csrc/core/packed_format.h) mapped into memory. Readers copy each batch out of
// the mapping under the SIGBUS guard and check the file after every copy (contiguous_reader.h), so a
// pack truncated, replaced in place or rewritten during a run ends it with an InputError naming the
// file. A pack replaced by rename keeps being read from the file that was opened (its inode stays
// alive while mapped), which is the file the run started with.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "core/packed_format.h"
#include "data/mapped_copy.h"

namespace pymfn {

// Checks a header against the format and the file length. Throws FormatError (naming `path`) on the
// first problem: bad magic, unknown version, header_bytes, dtype code, ndim, dims, sample_bytes that
// disagree with dims x dtype, or a file length other than header_bytes + count * sample_bytes.
// Shared by PackedDataset and tests; pymfn/pack.py implements the same checks in Python.
void validate_packed_header(const PackedHeader& h, uint64_t file_size, const std::string& path);

class PackedDataset final : public Dataset {
 public:
  // Opens, validates and mmaps `path`; keeps it open to watch it. Throws InputError (missing, not a
  // regular file) or FormatError (see validate_packed_header; also a file with no samples).
  explicit PackedDataset(const std::string& path);

  // Checks the file against what a model expects; throws ShapeMismatch naming the file and both
  // values. `sample_bytes` 0, `dtype` nullptr or an empty `shape` skip that check.
  void expect(size_t sample_bytes, const DType* dtype, const std::vector<int64_t>& shape) const;

  size_t sample_count() const override { return count_; }
  size_t sample_bytes() const override { return sample_bytes_; }
  DType dtype() const override { return dtype_; }
  std::vector<int64_t> sample_shape() const override { return shape_; }
  std::string describe() const override;
  SampleSpec sample_spec() const override;
  // `prefetch` = how many batches ahead the reader asks the kernel to read when they are not in the
  // page cache yet (madvise WILLNEED; 0 = no hints). One guarded host copy per batch either way.
  std::unique_ptr<BatchReader> reader(size_t batch_size, size_t prefetch) const override;
  // Not offered: the mapping may only be read through a guarded copy.
  const void* contiguous_data() const override { return nullptr; }

  const std::string& path() const { return path_; }
  uint64_t file_bytes() const { return file_bytes_; }
  uint32_t header_bytes() const { return header_bytes_; }

 private:
  std::string path_;
  std::shared_ptr<const void> mapping_;  // munmaps when the dataset and all its readers are gone
  std::shared_ptr<const WatchedFile> file_;  // the open file, fstat-ed after every batch
  const unsigned char* base_ = nullptr;  // sample 0
  size_t count_ = 0;
  size_t sample_bytes_ = 0;
  DType dtype_ = DType::kFloat32;
  std::vector<int64_t> shape_;
  uint64_t file_bytes_ = 0;
  uint32_t header_bytes_ = 0;
};

}  // namespace pymfn
