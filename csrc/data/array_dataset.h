// A dataset over samples already in memory (a numpy array from Python, or any C++ buffer). Nothing is
// copied: a batch is a pointer into the caller's memory, which `owner` keeps alive.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dataset.h"

namespace pymfn {

class ArrayDataset final : public Dataset {
 public:
  // `data` holds `count` samples of `sample_shape` elements of `dtype`, C-contiguous. `owner` keeps
  // that memory valid for the lifetime of the dataset and of every reader made from it. `origin` is
  // used by describe() and errors (e.g. "numpy array" or "npy /path/x.npy"); `path` is the file the
  // memory came from, if any (InputError::path() of errors about these samples; `origin` when empty).
  // Throws InvalidArgument when count is 0 or the sample shape has a non-positive dimension.
  ArrayDataset(std::shared_ptr<const void> owner, const void* data, size_t count, DType dtype,
               std::vector<int64_t> sample_shape, std::string origin = "numpy array", std::string path = "");

  size_t sample_count() const override { return count_; }
  size_t sample_bytes() const override { return sample_bytes_; }
  DType dtype() const override { return dtype_; }
  std::vector<int64_t> sample_shape() const override { return shape_; }
  std::string describe() const override;
  SampleSpec sample_spec() const override;
  // `prefetch` is ignored: there is nothing to prepare, every full batch is a view.
  std::unique_ptr<BatchReader> reader(size_t batch_size, size_t prefetch) const override;
  const void* contiguous_data() const override { return data_; }

 private:
  std::shared_ptr<const void> owner_;
  const unsigned char* data_;
  size_t count_;
  DType dtype_;
  std::vector<int64_t> shape_;
  size_t sample_bytes_ = 0;
  std::string origin_;
  std::string path_;
};

}  // namespace pymfn
