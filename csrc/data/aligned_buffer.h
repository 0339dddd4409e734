// Page-aligned host buffers for batches. Engines (OpenVINO, ACL H2D copies) are fastest on aligned
// memory, and a page-aligned start lets a batch buffer be handed to an mmap-style consumer unchanged.
#pragma once
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace pymfn {

constexpr size_t kBatchAlignment = 4096;

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Zero-filled, so padding rows of a partial batch start out as zeros.
  explicit AlignedBuffer(size_t bytes) : size_(bytes) {
    // aligned_alloc needs a size that is a multiple of the alignment; round up (the tail is unused).
    size_t rounded = (bytes + kBatchAlignment - 1) / kBatchAlignment * kBatchAlignment;
    if (rounded == 0) rounded = kBatchAlignment;
    void* p = std::aligned_alloc(kBatchAlignment, rounded);
    if (p == nullptr) throw std::bad_alloc();
    std::memset(p, 0, rounded);
    data_.reset(static_cast<unsigned char*>(p));
  }
  unsigned char* data() { return data_.get(); }
  const unsigned char* data() const { return data_.get(); }
  size_t size() const { return size_; }

 private:
  struct Free {
    void operator()(unsigned char* p) const { std::free(p); }
  };
  std::unique_ptr<unsigned char, Free> data_;
  size_t size_ = 0;
};

}  // namespace pymfn
