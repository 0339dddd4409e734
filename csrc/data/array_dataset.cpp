#include "data/array_dataset.h"

#include <cstdint>
#include <string>

#include "core/errors.h"
#include "data/contiguous_reader.h"

namespace pymfn {

namespace {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
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
}

std::string ArrayDataset::describe() const {
  return origin_ + " (" + std::to_string(count_) + " samples of " + dtype_name(dtype_) + " " + shape_str(shape_) +
         ")";
}

SampleSpec ArrayDataset::sample_spec() const {
  return SampleSpec{dtype_, sample_bytes_, shape_, origin_, path_.empty() ? origin_ : path_};
}

std::unique_ptr<BatchReader> ArrayDataset::reader(size_t batch_size, size_t /*prefetch*/) const {
  return std::make_unique<ContiguousBatchReader>(owner_, data_, count_, sample_spec(), batch_size, 0);
}

}  // namespace pymfn
