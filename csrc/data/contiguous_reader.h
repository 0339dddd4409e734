// BatchReader over samples that sit back to back in memory: a numpy array, or the mapping of a file (a
// packed file, a .npy). Two modes:
//  - memory no one can take away (`file` null: an array in the process's own memory): a full batch is a
//    pointer into it, nothing is copied. Only the last partial batch is copied into a zero-padded
//    buffer, because the rows after the last sample do not exist in the source.
//  - a file mapping (`file` set): every batch is copied out of the mapping under the SIGBUS guard
//    (mapped_copy.h) into the reader's buffer, and the file is checked (fstat) after the copy. A file
//    truncated or rewritten during the run is a one-line InputError naming it, never a signal, and a
//    batch handed out holds the file's bytes as they were when it was opened. The cost is one memcpy
//    per batch (bench/test_bench_loader.py measures it against a plain copy of the same bytes).
// Exactly the copied bytes are counted in ReaderStats::bytes_copied.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include "core/dataset.h"
#include "core/errors.h"
#include "core/limits.h"
#include "data/aligned_buffer.h"
#include "data/mapped_copy.h"

namespace pymfn {

class ContiguousBatchReader final : public BatchReader {
 public:
  // `owner` keeps the memory alive for as long as this reader lives (the mmap, or the numpy array),
  // so a reader may outlive the Dataset object that created it. `file` (null for plain memory) is the
  // mapped file the memory belongs to: batches are then copied under the guard and the file checked.
  // `advise_ahead` > 0 asks the kernel to read that many batches ahead of the one handed out (file
  // mmaps only; see advise_batch); more than the pass has batches means the whole pass.
  ContiguousBatchReader(std::shared_ptr<const void> owner, const unsigned char* base, size_t count, SampleSpec spec,
                        size_t batch_size, size_t advise_ahead, std::shared_ptr<const WatchedFile> file = nullptr)
      : owner_(std::move(owner)), base_(base), count_(count), spec_(std::move(spec)), sample_bytes_(spec_.bytes),
        batch_size_(batch_size), file_(std::move(file)) {
    if (batch_size == 0) throw InvalidArgument("batch_size must be at least 1");
    // The padded last batch needs one buffer of this size: refuse sizes no machine here could hold.
    checked_buffer_bytes(spec_.origin + ": reader(batch_size=" + std::to_string(batch_size) + ")", batch_size, "rows",
                         sample_bytes_);
    num_batches_ = count / batch_size + (count % batch_size != 0 ? 1 : 0);
    advise_ahead_ = std::min(advise_ahead, num_batches_);
    advise_window();
  }

  const SampleSpec& sample_spec() const override { return spec_; }

  bool next(BatchView* out) override {
    if (next_batch_ >= num_batches_) return false;
    const size_t b = next_batch_;
    const size_t first = b * batch_size_;
    const size_t valid = std::min(batch_size_, count_ - first);
    const unsigned char* src = base_ + first * sample_bytes_;
    const size_t real = valid * sample_bytes_;
    if (file_) {
      // From a file mapping: only a guarded copy may touch it. A failure leaves next_batch_ where it
      // was, so every later next() fails the same way (the file stays changed) until rewind().
      if (!buf_) buf_ = std::make_unique<AlignedBuffer>(batch_size_ * sample_bytes_);
      if (!copy_from_mapping(buf_->data(), src, real)) file_->fail_after_fault(first, valid);
      file_->check();  // after the copy: unchanged now means the copied bytes are the file's
      if (valid < batch_size_) std::memset(buf_->data() + real, 0, (batch_size_ - valid) * sample_bytes_);
      stats_.bytes_copied += real;
      out->data = buf_->data();
    } else if (valid == batch_size_) {
      out->data = src;  // zero-copy: a view into the source
    } else {
      // Partial last batch: copy the real rows, zero the rest (the buffer may hold an earlier pass).
      if (!buf_) buf_ = std::make_unique<AlignedBuffer>(batch_size_ * sample_bytes_);
      std::memcpy(buf_->data(), src, real);
      std::memset(buf_->data() + real, 0, (batch_size_ - valid) * sample_bytes_);
      stats_.bytes_copied += real;
      out->data = buf_->data();
    }
    if (valid < batch_size_) stats_.padded_batches += 1;
    next_batch_ = b + 1;
    out->batch_rows = batch_size_;
    out->valid_rows = valid;
    out->first_sample = first;
    out->batch_index = b;
    stats_.batches += 1;
    if (advise_ahead_ > 0) advise_batch(b + advise_ahead_);
    return true;
  }

  void rewind() override {
    next_batch_ = 0;
    advise_window();
  }
  size_t num_batches() const override { return num_batches_; }
  size_t batch_size() const override { return batch_size_; }
  ReaderStats stats() const override { return stats_; }

 private:
  // Readahead hints for file mappings: ask the kernel (madvise WILLNEED) to start reading batch b
  // before it is handed out. Skipped when the batch's first and last pages are already resident
  // (mincore), because WILLNEED on a warm mapping still walks the page cache (~0.5 ms per 10 MB
  // batch) for nothing. Advisory only: a failure changes nothing but speed.
  void advise_window() {
    for (size_t b = 0; b <= advise_ahead_ && advise_ahead_ > 0; ++b) advise_batch(b);
  }

  void advise_batch(size_t b) {
    if (b >= num_batches_) return;
    static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const size_t first_byte = b * batch_size_ * sample_bytes_;
    const size_t end_byte = std::min(count_, (b + 1) * batch_size_) * sample_bytes_;
    const uintptr_t start = reinterpret_cast<uintptr_t>(base_ + first_byte) & ~(page - 1);
    const uintptr_t end = reinterpret_cast<uintptr_t>(base_ + end_byte);
    if (end <= start) return;
    const uintptr_t last = (end - 1) & ~(page - 1);
    unsigned char in_first = 0, in_last = 0;
    if (mincore(reinterpret_cast<void*>(start), 1, &in_first) == 0 &&
        mincore(reinterpret_cast<void*>(last), 1, &in_last) == 0 && (in_first & 1) && (in_last & 1))
      return;
    (void)madvise(reinterpret_cast<void*>(start), end - start, MADV_WILLNEED);
  }

  std::shared_ptr<const void> owner_;
  const unsigned char* base_;
  size_t count_;
  SampleSpec spec_;
  size_t sample_bytes_;
  size_t batch_size_;
  size_t num_batches_ = 0;
  size_t advise_ahead_ = 0;
  size_t next_batch_ = 0;
  std::shared_ptr<const WatchedFile> file_;
  std::unique_ptr<AlignedBuffer> buf_;  // the padded last batch, or (file mode) every batch
  ReaderStats stats_;
};

}  // namespace pymfn
