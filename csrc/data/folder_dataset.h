// A folder of per-sample .bin files (0.bin ... 11999.bin): the layout msame and the reference
// image2bin use. Each file is one raw sample, so batches have to be gathered: a background pool
// pread()s files into a ring of page-aligned batch buffers and stays `prefetch` batches ahead of the
// consumer.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dataset.h"

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

// The listing a folder dataset and its readers share: an open descriptor of the folder (files are
// opened relative to it with openat, which skips resolving the folder path for every sample) plus
// each sample's file name and full path (for error messages and files()).
struct FolderListing {
  int dir_fd = -1;
  std::vector<std::string> names;
  std::vector<std::string> paths;
  FolderListing() = default;
  FolderListing(const FolderListing&) = delete;
  FolderListing& operator=(const FolderListing&) = delete;
  ~FolderListing();
};

class FolderDataset final : public Dataset {
 public:
  // Lists `dir`: regular files named *.bin (symlinks to regular files count; names starting with '.'
  // are skipped). `sample_bytes` comes from the model; `sample_shape` (optional) must agree with it.
  // Throws InvalidArgument for inconsistent arguments, InputError for a missing/empty folder or a
  // *.bin entry that is not a readable regular file, ShapeMismatch for a file of the wrong size.
  FolderDataset(const std::string& dir, size_t sample_bytes, DType dtype, std::vector<int64_t> sample_shape,
                FileOrder order);

  size_t sample_count() const override { return listing_->paths.size(); }
  size_t sample_bytes() const override { return sample_bytes_; }
  DType dtype() const override { return dtype_; }
  std::vector<int64_t> sample_shape() const override { return shape_; }
  std::string describe() const override;
  // `prefetch` batches are prepared ahead by background threads (0 = read synchronously in next()).
  std::unique_ptr<BatchReader> reader(size_t batch_size, size_t prefetch) const override;
  // Same with an explicit number of I/O threads (0 = min(prefetch, hardware threads, 4)).
  std::unique_ptr<BatchReader> make_reader(size_t batch_size, size_t prefetch, size_t io_threads) const;

  // Full paths in dataset order: sample i came from files()[i] (msame-style output naming).
  const std::vector<std::string>& files() const { return listing_->paths; }
  const std::string& dir() const { return dir_; }
  FileOrder order() const { return order_; }

 private:
  std::string dir_;
  size_t sample_bytes_;
  DType dtype_;
  std::vector<int64_t> shape_;
  FileOrder order_;
  std::shared_ptr<const FolderListing> listing_;  // shared with readers
};

}  // namespace pymfn
