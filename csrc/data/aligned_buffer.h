// Page-aligned host buffers for batches. Engines (OpenVINO, ACL H2D copies) are fastest on aligned
// memory, and a page-aligned start lets a batch buffer be handed to an mmap-style consumer unchanged.
#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace pymfn {

constexpr size_t kBatchAlignment = 4096;
constexpr size_t kHugePage = size_t(2) << 20;

class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  // Not zero-filled: readers write every row they hand out (data or explicit zero padding), and
  // skipping the memset avoids touching every page of a large ring up front. Buffers of 2 MiB or
  // more are 2 MiB-aligned and marked for transparent huge pages: fewer page faults and TLB misses
  // while the batch is copied in.
  explicit AlignedBuffer(size_t bytes) : size_(bytes) {
    const size_t align = bytes >= kHugePage ? kHugePage : kBatchAlignment;
    // aligned_alloc needs a size that is a multiple of the alignment; round up (the tail is unused).
    size_t rounded = (bytes + align - 1) / align * align;
    if (rounded == 0) rounded = align;
    void* p = std::aligned_alloc(align, rounded);
    if (p == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    if (align == kHugePage) (void)madvise(p, rounded, MADV_HUGEPAGE);  // a hint; failure is harmless
#endif
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
