// A folder of per-sample .bin files (0.bin ... 11999.bin): the layout msame and the reference
// image2bin use. Each file is one raw sample, so batches have to be gathered: a background pool
// copies files into a ring of page-aligned batch buffers and stays `prefetch` batches ahead of the
// consumer. Files are copied out of persistent mappings (FolderIO::kMmap) or pread (kPread).
#pragma once
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dataset.h"
#include "data/mapped_copy.h"

namespace pymfn {

// Natural order sorts digit runs by value ("2.bin" < "10.bin"): what a human and lfw-style
// numbering expect. Lexicographic is plain byte order ("10.bin" < "2.bin"): what msame uses.
enum class FileOrder { kNatural = 0, kLexicographic = 1 };

// "natural" or "lexicographic"; throws InvalidArgument otherwise.
FileOrder file_order_from_name(const std::string& name);
std::string file_order_name(FileOrder order);
// Strict weak order for natural sorting; ties (e.g. "01" vs "1") fall back to byte order so the
// result is total and deterministic.
bool natural_less(const std::string& a, const std::string& b);

// How a folder dataset gets a sample file's bytes into a batch buffer.
//  kMmap  (default): each file is mapped once, on its first read, and stays mapped for the dataset's
//         lifetime; every read memcpys from the mapping (under the SIGBUS guard of mapped_copy.h) and
//         then checks the file (one fstatat). From the second pass on this is 1.3-2x faster than
//         pread on a warm page cache: no open/close, and a user-space copy instead of the kernel's
//         per-page read path. The first pass pays the page-table setup (a third slower than pread).
//         At most a quarter of vm.max_map_count files are mapped; the rest are pread.
//  kPread: open + fstat + pread + fstat + close per file per read; nothing stays mapped.
// Either way a dataset is its files as they were when the folder was opened: a file deleted, truncated,
// grown, replaced by another file (rename) or rewritten (modification time) since then ends the read
// with an InputError naming it (ShapeMismatch for a size change), never a signal, and never bytes
// of a file other than the one opened.
enum class FolderIO { kMmap = 0, kPread = 1 };

// "mmap" or "pread"; throws InvalidArgument otherwise.
FolderIO folder_io_from_name(const std::string& name);
std::string folder_io_name(FolderIO io);

// One sample file mapped read-only: `data` holds the file's sample_bytes bytes. Only a file that is
// still the one listed (FolderListing::stamps) is ever mapped.
struct FileMapping {
  const unsigned char* data = nullptr;
};

// The listing a folder dataset and its readers share: an open descriptor of the folder (files are
// opened relative to it with openat, which skips resolving the folder path for every sample) plus
// each sample's file name, full path (for error messages and files()) and stamp when listed, and the
// lazily created mappings (kMmap), which readers on several threads may create concurrently.
struct FolderListing {
  int dir_fd = -1;
  std::vector<std::string> names;
  std::vector<std::string> paths;
  std::vector<FileStamp> stamps;  // each file as listed: what every read checks it against
  size_t sample_bytes = 0;
  FolderIO io = FolderIO::kMmap;
  size_t max_mappings = 0;
  FolderListing() = default;
  FolderListing(const FolderListing&) = delete;
  FolderListing& operator=(const FolderListing&) = delete;
  ~FolderListing();

  // Allocates the (empty) mapping table; called once by the dataset before readers exist.
  void init_mappings();
  // The mapping of file k, creating it on first use; nullptr when the file cannot be mapped (the
  // mapping budget is spent, mmap failed, or the file is no longer the one listed): the caller then
  // preads it, which reports any real problem with the file.
  const FileMapping* mapping(size_t k) const;
  size_t mapped_files() const { return mapped_count.load(std::memory_order_relaxed); }

 private:
  mutable std::unique_ptr<std::atomic<const FileMapping*>[]> mappings;
  mutable std::atomic<size_t> mapped_count{0};
};

class FolderDataset final : public Dataset {
 public:
  static constexpr size_t kMaxIoThreads = 64;

  // Lists `dir`: regular files named *.bin (symlinks to regular files count; names starting with '.'
  // are skipped). `sample_bytes` comes from the model; `sample_shape` (optional) must agree with it.
  // Throws InvalidArgument for inconsistent arguments, InputError for a missing/empty folder or a
  // *.bin entry that is not a readable regular file, ShapeMismatch for a file of the wrong size.
  FolderDataset(const std::string& dir, size_t sample_bytes, DType dtype, std::vector<int64_t> sample_shape,
                FileOrder order, FolderIO io = FolderIO::kMmap);

  size_t sample_count() const override { return listing_->paths.size(); }
  size_t sample_bytes() const override { return sample_bytes_; }
  DType dtype() const override { return dtype_; }
  std::vector<int64_t> sample_shape() const override { return shape_; }
  std::string describe() const override;
  SampleSpec sample_spec() const override;
  // `prefetch` batches are prepared ahead by background threads (0 = read synchronously in next()).
  std::unique_ptr<BatchReader> reader(size_t batch_size, size_t prefetch) const override;
  // Same with an explicit number of I/O threads (0 = min(prefetch, hardware threads, 4); at most
  // kMaxIoThreads). The ring holds min(prefetch + 1, batches per pass) buffers of one batch each;
  // InvalidArgument when it could not fit in this machine's memory.
  std::unique_ptr<BatchReader> make_reader(size_t batch_size, size_t prefetch, size_t io_threads) const;

  // Full paths in dataset order: sample i came from files()[i] (msame-style output naming).
  const std::vector<std::string>& files() const { return listing_->paths; }
  const std::string& dir() const { return dir_; }
  FileOrder order() const { return order_; }
  FolderIO io() const { return listing_->io; }
  // Files mapped so far (kMmap); they stay mapped until the dataset and all its readers are gone.
  size_t mapped_files() const { return listing_->mapped_files(); }

 private:
  std::string dir_;
  size_t sample_bytes_;
  DType dtype_;
  std::vector<int64_t> shape_;
  FileOrder order_;
  std::shared_ptr<const FolderListing> listing_;  // shared with readers
};

}  // namespace pymfn
