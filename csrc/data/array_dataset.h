// A dataset over samples already in memory (a numpy array from Python, or any C++ buffer), which `owner`
// keeps alive. Plain memory is used in place: a batch is a pointer into it. Memory that maps a file
// (numpy.load(mmap_mode=...), numpy.memmap, a shared-memory file; found in /proc/self/maps when the
// dataset is made) could lose its pages when the file shrinks, and reading such a page raises
// SIGBUS: batches of it are copied under the guard and the file is checked after each copy, like a
// packed file (contiguous_reader.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "data/mapped_copy.h"

namespace pymfn {

class ArrayDataset final : public Dataset {
 public:
  // `data` holds `count` samples of `sample_shape` elements of `dtype`, C-contiguous. `owner` keeps
  // that memory valid for the lifetime of the dataset and of every reader made from it. `origin` is
  // used by describe() and errors (e.g. "numpy array" or "npy /path/x.npy"); `path` is the file the
  // memory came from, if any (InputError::path() of errors about these samples; `origin` when empty).
  // Throws InvalidArgument when count is 0 or the sample shape has a non-positive dimension.
  // The memory is looked up in /proc/self/maps here (once); see mapped_file().
  ArrayDataset(std::shared_ptr<const void> owner, const void* data, size_t count, DType dtype,
               std::vector<int64_t> sample_shape, std::string origin = "numpy array", std::string path = "");

  size_t sample_count() const override { return count_; }
  size_t sample_bytes() const override { return sample_bytes_; }
  DType dtype() const override { return dtype_; }
  std::vector<int64_t> sample_shape() const override { return shape_; }
  std::string describe() const override;
  SampleSpec sample_spec() const override;
  // `prefetch`: readahead hints for a mapped file (as PackedDataset); ignored for plain memory, where
  // every full batch is a view.
  std::unique_ptr<BatchReader> reader(size_t batch_size, size_t prefetch) const override;
  const void* contiguous_data() const override { return file_ ? nullptr : data_; }
  // The file the samples' memory maps ("" for plain memory): batches are then guarded copies.
  std::string mapped_file() const { return file_ ? file_->path() : std::string(); }

 private:
  std::shared_ptr<const void> owner_;
  const unsigned char* data_;
  size_t count_;
  DType dtype_;
  std::vector<int64_t> shape_;
  size_t sample_bytes_ = 0;
  std::string origin_;
  std::string path_;
  std::shared_ptr<const WatchedFile> file_;  // set when the memory maps a file
};

}  // namespace pymfn
