// Datasets: where input samples come from. Like LoadGen's QuerySampleLibrary, a dataset knows its
// samples and nothing about models; the runner asks it for batches and never looks inside them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace pymfn {

// One batch handed to an engine. `data` points at batch_rows * sample_bytes contiguous bytes that stay
// valid until the next call to BatchReader::next() on the same reader (or the reader is destroyed).
// Rows [valid_rows, batch_rows) are padding (only the last batch of a pass can have any): their
// outputs must be dropped, never reported.
struct BatchView {
  const void* data = nullptr;
  size_t batch_rows = 0;    // rows the engine executes (the configured batch size)
  size_t valid_rows = 0;    // rows that are real samples
  size_t first_sample = 0;  // dataset index of row 0
  size_t batch_index = 0;   // index of this batch within the pass
};

// Counters a test or benchmark can read to prove what a reader copies.
struct ReaderStats {
  uint64_t batches = 0;         // batches handed out
  uint64_t bytes_copied = 0;    // bytes the reader copied on the host to build batches (0 for in-place views)
  uint64_t bytes_read = 0;      // bytes read from files with read()/pread()
  uint64_t padded_batches = 0;  // batches with valid_rows < batch_rows
};

// What one sample of a source is. A reader carries it so the runner can compare it with a model's
// input before the first execute (a sample of the wrong size or type would make the engine read past
// the batch or compute garbage), and name the source in the error.
struct SampleSpec {
  DType dtype = DType::kFloat32;
  size_t bytes = 0;            // bytes of one sample; every batch holds batch_rows * bytes
  std::vector<int64_t> shape;  // element shape of one sample; may be empty when only `bytes` is known
  std::string origin;          // how messages name the source: "npy /x/a.npy", "packed /x.pack", "folder /x"
  std::string path;            // the file or folder behind it ("" for memory); InputError::path()
};

// Sequential batch stream over a dataset. Not thread-safe: one consumer.
class BatchReader {
 public:
  virtual ~BatchReader() = default;
  // The samples this reader yields (fixed for its lifetime).
  virtual const SampleSpec& sample_spec() const = 0;
  // Fills `out` with the next batch; returns false once the pass is over (then call rewind()).
  virtual bool next(BatchView* out) = 0;
  // Starts a new pass from sample 0.
  virtual void rewind() = 0;
  virtual size_t num_batches() const = 0;
  virtual size_t batch_size() const = 0;
  virtual ReaderStats stats() const = 0;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual size_t sample_count() const = 0;
  virtual size_t sample_bytes() const = 0;
  virtual DType dtype() const = 0;
  // Shape of one sample (no batch dimension); may be empty when the source only knows a byte size.
  virtual std::vector<int64_t> sample_shape() const = 0;
  // Human-readable origin ("folder /x (12000 files)", "packed /x.pack", "numpy array").
  virtual std::string describe() const = 0;
  // dtype, bytes, shape and a short name of the source: what every reader of this dataset reports.
  virtual SampleSpec sample_spec() const = 0;
  // A reader that yields batches of `batch_size` rows; `prefetch` = how many batches a background
  // pool may prepare ahead (ignored by sources that need no copying). Throws InvalidArgument when
  // batch_size is 0 or its buffers could not fit in this machine's memory (core/limits.h).
  virtual std::unique_ptr<BatchReader> reader(size_t batch_size, size_t prefetch) const = 0;
  // Pointer to sample 0 when the dataset holds all samples contiguously in memory that cannot vanish
  // under a reader (a numpy array of the process's own memory), nullptr otherwise: a file mapping
  // (packed file, mapped .npy) is read only through guarded copies (data/mapped_copy.h).
  virtual const void* contiguous_data() const { return nullptr; }
};

}  // namespace pymfn
