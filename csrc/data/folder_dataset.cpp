#include "data/folder_dataset.h"

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <thread>

#include "core/errors.h"
#include "core/limits.h"
#include "data/aligned_buffer.h"
#include "data/mapped_copy.h"

namespace pymfn {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Thrown inside a worker when rewind()/destruction interrupts a fill; never leaves the reader.
struct FillAborted {};

// A sample file whose size differs from the one checked when the folder was opened.
ShapeMismatch size_changed(const std::string& path, off_t size_now, size_t sample_bytes) {
  return ShapeMismatch(path, "file is now " + std::to_string(size_now) + " bytes but the model expects " +
                                 std::to_string(sample_bytes) + " bytes per sample (it changed after the folder was opened)");
}

// Throws when `now` is not file `opened` unchanged: ShapeMismatch for a new size (the message the
// size check at open gives), InputError for a replaced or rewritten file.
void check_unchanged(const std::string& path, const FileStamp& opened, const struct stat& now, size_t sample_bytes) {
  const FileStamp stamp = file_stamp(now);
  if (stamp.dev == opened.dev && stamp.ino == opened.ino && stamp.size != opened.size)
    throw size_changed(path, now.st_size, sample_bytes);
  const std::string change = file_change(opened, stamp);
  if (!change.empty()) throw InputError(path, change + " (it changed after the folder was opened)");
}

// Reads one sample file into `dst` with pread, checking before and after that it is still the file
// listed when the folder was opened, unchanged (so the bytes read are that file's).
uint64_t read_sample_file(int dir_fd, const std::string& name, const std::string& path, const FileStamp& opened,
                          unsigned char* dst, size_t sample_bytes) {
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    throw InputError(path, std::string("cannot open sample file: ") + std::strerror(err));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) throw InputError(path, std::string("cannot stat: ") + std::strerror(errno));
  check_unchanged(path, opened, st, sample_bytes);
  size_t got = 0;
  while (got < sample_bytes) {
    const ssize_t n = ::pread(fd, dst + got, sample_bytes - got, static_cast<off_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw InputError(path, std::string("read failed: ") + std::strerror(err));
    }
    if (n == 0)
      throw ShapeMismatch(path, "file ended after " + std::to_string(got) + " of " + std::to_string(sample_bytes) +
                                    " bytes (it shrank after the folder was opened)");
    got += static_cast<size_t>(n);
  }
  if (::fstat(fd, &st) != 0) throw InputError(path, std::string("cannot stat: ") + std::strerror(errno));
  check_unchanged(path, opened, st, sample_bytes);  // not rewritten while it was read
  return got;
}

// Bytes a sample copy moved and how: from a mapping (memcpy) or with pread.
struct SampleCopy {
  uint64_t bytes = 0;
  bool via_pread = false;
};

// kMmap: copies file k out of its mapping (under the SIGBUS guard), then checks with one fstatat (no
// open) that the path still names the file listed, unchanged: only then are the copied bytes that
// file's. A file that cannot be mapped is pread instead.
SampleCopy copy_sample(const FolderListing& listing, size_t k, unsigned char* dst) {
  const std::string& path = listing.paths[k];
  const size_t sample_bytes = listing.sample_bytes;
  const FileMapping* m = listing.io == FolderIO::kPread ? nullptr : listing.mapping(k);
  if (m == nullptr)
    return SampleCopy{read_sample_file(listing.dir_fd, listing.names[k], path, listing.stamps[k], dst, sample_bytes),
                      true};
  const bool copied = copy_from_mapping(dst, m->data, sample_bytes);
  struct stat st;
  if (::fstatat(listing.dir_fd, listing.names[k].c_str(), &st, 0) != 0) {
    const int err = errno;
    throw InputError(path, std::string("cannot open sample file: ") + std::strerror(err));
  }
  check_unchanged(path, listing.stamps[k], st, sample_bytes);
  if (!copied)  // the file is as listed, yet its mapping faulted: the storage failed to deliver a page
    throw InputError(path, "reading it from its mapping failed with SIGBUS (the file shrank while it was being "
                           "read, or the storage behind it failed to deliver the data)");
  return {sample_bytes, false};
}

// Batch reader over a folder: a ring of prefetch+1 aligned buffers (one held by the consumer, up to
// `prefetch` being filled or ready). Workers claim the next batch whose ring slot is free, copy its
// files without holding the lock, and publish it; next() waits for its batch and releases the previous
// one. With prefetch == 0 there are no threads and next() reads inline.
class FolderBatchReader final : public BatchReader {
 public:
  FolderBatchReader(std::shared_ptr<const FolderListing> listing, SampleSpec spec, size_t batch_size,
                    size_t prefetch, size_t io_threads)
      : listing_(std::move(listing)), spec_(std::move(spec)), sample_bytes_(listing_->sample_bytes),
        batch_size_(batch_size), prefetch_(prefetch) {
    if (batch_size == 0) throw InvalidArgument("batch_size must be at least 1");
    if (io_threads > FolderDataset::kMaxIoThreads)
      throw InvalidArgument(spec_.origin + ": threads = " + std::to_string(io_threads) + " I/O threads; at most " +
                            std::to_string(FolderDataset::kMaxIoThreads) + " (0 = automatic)");
    const size_t count = listing_->paths.size();
    num_batches_ = count / batch_size + (count % batch_size != 0 ? 1 : 0);
    // More buffers than batches would never be used.
    const size_t nslots = prefetch_ == 0 ? 1 : std::min(prefetch_, std::max<size_t>(num_batches_, 1) - 1) + 1;
    const std::string what = spec_.origin + ": reader(batch_size=" + std::to_string(batch_size) +
                             ", prefetch=" + std::to_string(prefetch) + ")";
    const size_t batch_bytes = checked_buffer_bytes(what, batch_size, "rows", sample_bytes_);
    checked_buffer_bytes(what, nslots, "ring buffers", batch_bytes);
    slots_.resize(nslots);
    for (Slot& s : slots_) s.buf = AlignedBuffer(batch_size_ * sample_bytes_);
    if (prefetch_ == 0) return;
    size_t threads = io_threads;
    if (threads == 0) {
      const size_t hw = std::max<unsigned>(1, std::thread::hardware_concurrency());
      threads = std::min({prefetch_, hw, static_cast<size_t>(4)});
    }
    threads = std::max<size_t>(1, std::min(threads, nslots));
    try {
      for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { worker(); });
    } catch (...) {
      shutdown();
      throw;
    }
  }

  ~FolderBatchReader() override { shutdown(); }

  const SampleSpec& sample_spec() const override { return spec_; }

  bool next(BatchView* out) override {
    if (prefetch_ == 0) return next_inline(out);
    std::unique_lock<std::mutex> lk(mu_);
    if (failed_) std::rethrow_exception(failed_);
    release_held_locked();
    if (next_consume_ >= num_batches_) return false;
    const size_t b = next_consume_;
    Slot& s = slots_[b % slots_.size()];
    ready_cv_.wait(lk, [&] { return s.batch == b && (s.state == kReady || s.state == kFailed); });
    if (s.state == kFailed) {
      failed_ = s.error;
      s.state = kFree;
      work_cv_.notify_all();
      std::rethrow_exception(failed_);
    }
    next_consume_ = b + 1;
    holding_ = true;
    work_cv_.notify_all();  // the window moved: a worker may now start batch b + prefetch
    publish_locked(b, s, out);
    return true;
  }

  void rewind() override {
    std::unique_lock<std::mutex> lk(mu_);
    paused_ = true;
    abort_.store(true, std::memory_order_relaxed);
    ready_cv_.wait(lk, [&] { return filling_ == 0; });
    for (Slot& s : slots_) {
      s.state = kFree;
      s.batch = SIZE_MAX;
      s.error = nullptr;
    }
    next_fill_ = 0;
    next_consume_ = 0;
    holding_ = false;
    failed_ = nullptr;
    abort_.store(false, std::memory_order_relaxed);
    paused_ = false;
    work_cv_.notify_all();
  }

  size_t num_batches() const override { return num_batches_; }
  size_t batch_size() const override { return batch_size_; }
  ReaderStats stats() const override {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
  }

 private:
  enum State { kFree, kFilling, kReady, kFailed };
  struct Slot {
    AlignedBuffer buf;
    size_t batch = SIZE_MAX;
    State state = kFree;
    std::exception_ptr error;
  };

  size_t valid_rows(size_t b) const { return std::min(batch_size_, listing_->paths.size() - b * batch_size_); }

  struct FillBytes {
    uint64_t copied = 0;  // all sample bytes put into the buffer
    uint64_t read = 0;    // the part of them that came through pread
  };

  // Copies batch b into buf. Rows past the last sample are zeroed (the buffer may hold an older
  // batch). Throws FillAborted when a rewind/shutdown interrupts it.
  FillBytes fill(size_t b, AlignedBuffer& buf) {
    const size_t first = b * batch_size_;
    const size_t valid = valid_rows(b);
    FillBytes n;
    for (size_t i = 0; i < valid; ++i) {
      if (abort_.load(std::memory_order_relaxed)) throw FillAborted{};
      const SampleCopy c = copy_sample(*listing_, first + i, buf.data() + i * sample_bytes_);
      n.copied += c.bytes;
      if (c.via_pread) n.read += c.bytes;
    }
    if (valid < batch_size_) std::memset(buf.data() + valid * sample_bytes_, 0, (batch_size_ - valid) * sample_bytes_);
    return n;
  }

  void publish_locked(size_t b, Slot& s, BatchView* out) {
    out->data = s.buf.data();
    out->batch_rows = batch_size_;
    out->valid_rows = valid_rows(b);
    out->first_sample = b * batch_size_;
    out->batch_index = b;
    stats_.batches += 1;
    if (out->valid_rows < batch_size_) stats_.padded_batches += 1;
  }

  void release_held_locked() {
    if (!holding_) return;
    slots_[(next_consume_ - 1) % slots_.size()].state = kFree;
    holding_ = false;
    work_cv_.notify_all();
  }

  bool next_inline(BatchView* out) {
    if (failed_) std::rethrow_exception(failed_);
    if (next_consume_ >= num_batches_) return false;
    const size_t b = next_consume_;
    FillBytes n;
    try {
      n = fill(b, slots_[0].buf);
    } catch (...) {
      failed_ = std::current_exception();
      throw;
    }
    std::lock_guard<std::mutex> lk(mu_);
    stats_.bytes_read += n.read;
    stats_.bytes_copied += n.copied;
    next_consume_ = b + 1;
    publish_locked(b, slots_[0], out);
    return true;
  }

  // A worker may start batch next_fill_ when its ring slot is free and it is at most `prefetch`
  // batches ahead of the consumer (so the pool never reads further ahead than asked).
  bool can_claim_locked() const {
    return !paused_ && next_fill_ < num_batches_ && next_fill_ < next_consume_ + prefetch_ &&
           slots_[next_fill_ % slots_.size()].state == kFree;
  }

  void worker() {
    // SCHED_BATCH: a waking I/O thread must not preempt the consumer (typically the thread driving
    // the engine) on a busy core; it runs when the consumer sleeps or on an idle core. Best effort.
    sched_param param{};
    (void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      work_cv_.wait(lk, [&] { return stop_ || can_claim_locked(); });
      if (stop_) return;
      const size_t b = next_fill_++;
      Slot& s = slots_[b % slots_.size()];
      s.state = kFilling;
      s.batch = b;
      ++filling_;
      lk.unlock();
      std::exception_ptr err;
      FillBytes n;
      bool aborted = false;
      try {
        n = fill(b, s.buf);
      } catch (const FillAborted&) {
        aborted = true;
      } catch (...) {
        err = std::current_exception();
      }
      lk.lock();
      --filling_;
      if (!aborted) {
        s.state = err ? kFailed : kReady;
        s.error = err;
        stats_.bytes_read += n.read;
        stats_.bytes_copied += n.copied;
      }
      ready_cv_.notify_all();
    }
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      abort_.store(true, std::memory_order_relaxed);
    }
    work_cv_.notify_all();
    for (std::thread& t : workers_)
      if (t.joinable()) t.join();
    workers_.clear();
  }

  std::shared_ptr<const FolderListing> listing_;
  SampleSpec spec_;
  size_t sample_bytes_;
  size_t batch_size_;
  size_t prefetch_;
  size_t num_batches_ = 0;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // workers wait for a free slot
  std::condition_variable ready_cv_;  // consumer/rewind wait for a finished fill
  std::vector<Slot> slots_;
  size_t next_fill_ = 0;
  size_t next_consume_ = 0;
  size_t filling_ = 0;
  bool holding_ = false;  // the consumer holds the slot of batch next_consume_ - 1
  bool paused_ = false;
  bool stop_ = false;
  std::atomic<bool> abort_{false};
  std::exception_ptr failed_;  // sticky until rewind(): the batch that failed and why
  ReaderStats stats_;
  std::vector<std::thread> workers_;
};

}  // namespace

FolderListing::~FolderListing() {
  if (mappings) {
    for (size_t k = 0; k < names.size(); ++k) {
      const FileMapping* m = mappings[k].load(std::memory_order_acquire);
      if (m == nullptr) continue;
      ::munmap(const_cast<unsigned char*>(m->data), sample_bytes);
      delete m;
    }
  }
  if (dir_fd >= 0) ::close(dir_fd);
}

namespace {

// vm.max_map_count (65530 by default): the kernel's limit on mappings per process. Shared
// libraries, malloc and other datasets need some, so a dataset takes at most a quarter of it.
size_t mapping_budget() {
  size_t limit = 65530;
  std::ifstream f("/proc/sys/vm/max_map_count");
  size_t v = 0;
  if (f >> v && v > 0) limit = v;
  return limit / 4;
}

}  // namespace

void FolderListing::init_mappings() {
  mappings = std::make_unique<std::atomic<const FileMapping*>[]>(names.size());
  for (size_t k = 0; k < names.size(); ++k) mappings[k].store(nullptr, std::memory_order_relaxed);
  static const size_t budget = mapping_budget();
  max_mappings = budget;
}

const FileMapping* FolderListing::mapping(size_t k) const {
  if (!mappings) return nullptr;
  const FileMapping* existing = mappings[k].load(std::memory_order_acquire);
  if (existing != nullptr) return existing;
  if (mapped_count.fetch_add(1, std::memory_order_relaxed) >= max_mappings) {
    mapped_count.fetch_sub(1, std::memory_order_relaxed);
    return nullptr;
  }
  auto give_up = [&]() -> const FileMapping* {
    mapped_count.fetch_sub(1, std::memory_order_relaxed);
    return nullptr;
  };
  const int fd = ::openat(dir_fd, names[k].c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return give_up();
  struct stat st;
  void* p = MAP_FAILED;
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && file_change(stamps[k], file_stamp(st)).empty())
    p = ::mmap(nullptr, sample_bytes, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);  // the mapping keeps the file referenced
  if (p == MAP_FAILED) return give_up();
  auto* created = new FileMapping{static_cast<const unsigned char*>(p)};
  const FileMapping* expected = nullptr;
  if (mappings[k].compare_exchange_strong(expected, created, std::memory_order_acq_rel)) return created;
  // Another reader mapped the same file first: use its mapping.
  ::munmap(p, sample_bytes);
  delete created;
  mapped_count.fetch_sub(1, std::memory_order_relaxed);
  return expected;
}

FileOrder file_order_from_name(const std::string& name) {
  if (name == "natural") return FileOrder::kNatural;
  if (name == "lexicographic" || name == "lex") return FileOrder::kLexicographic;
  throw InvalidArgument("unknown file order '" + name + "' (expected 'natural' or 'lexicographic')");
}

std::string file_order_name(FileOrder order) {
  return order == FileOrder::kNatural ? "natural" : "lexicographic";
}

FolderIO folder_io_from_name(const std::string& name) {
  if (name == "mmap") return FolderIO::kMmap;
  if (name == "pread") return FolderIO::kPread;
  throw InvalidArgument("unknown folder io '" + name + "' (expected 'mmap' or 'pread')");
}

std::string folder_io_name(FolderIO io) { return io == FolderIO::kMmap ? "mmap" : "pread"; }

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (is_digit(a[i]) && is_digit(b[j])) {
      // Compare the digit runs by value without parsing (runs may exceed 64 bits).
      size_t ie = i, je = j;
      while (ie < a.size() && is_digit(a[ie])) ++ie;
      while (je < b.size() && is_digit(b[je])) ++je;
      size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      const size_t la = ie - is, lb = je - js;
      if (la != lb) return la < lb;
      const int c = a.compare(is, la, b, js, lb);
      if (c != 0) return c < 0;
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
      ++i;
      ++j;
    }
  }
  if ((i < a.size()) != (j < b.size())) return i >= a.size();  // a prefix sorts first
  return a < b;  // equal by value ("01" vs "1"): byte order breaks the tie
}

FolderDataset::FolderDataset(const std::string& dir, size_t sample_bytes, DType dtype,
                             std::vector<int64_t> sample_shape, FileOrder order, FolderIO io)
    : dir_(dir), sample_bytes_(sample_bytes), dtype_(dtype), shape_(std::move(sample_shape)), order_(order) {
  const size_t esize = dtype_size(dtype_);
  if (sample_bytes_ == 0) throw InvalidArgument("sample_bytes must be positive (the model's input size in bytes)");
  if (sample_bytes_ % esize != 0)
    throw InvalidArgument("sample_bytes " + std::to_string(sample_bytes_) + " is not a multiple of the " +
                          dtype_name(dtype_) + " element size " + std::to_string(esize));
  if (!shape_.empty()) {
    size_t prod = esize;
    for (int64_t d : shape_) {
      if (d <= 0) throw InvalidArgument("sample_shape " + shape_str(shape_) + " has a non-positive dimension");
      if (prod > SIZE_MAX / static_cast<size_t>(d))
        throw InvalidArgument("sample_shape " + shape_str(shape_) + " of " + dtype_name(dtype_) + " overflows a 64-bit size");
      prod *= static_cast<size_t>(d);
    }
    if (prod != sample_bytes_)
      throw InvalidArgument("sample_shape " + shape_str(shape_) + " of " + dtype_name(dtype_) + " is " +
                            std::to_string(prod) + " bytes but sample_bytes is " + std::to_string(sample_bytes_));
  }

  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    throw InputError(dir, err == ENOENT ? std::string("no such directory")
                                        : std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISDIR(st.st_mode)) throw InputError(dir, "not a directory (expected a folder of per-sample .bin files)");

  auto listing = std::make_shared<FolderListing>();
  listing->sample_bytes = sample_bytes_;
  listing->io = io;
  listing->dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (listing->dir_fd < 0) {
    const int err = errno;
    throw InputError(dir, std::string("cannot open directory: ") + std::strerror(err));
  }
  std::vector<std::string>& names = listing->names;
  {
    // fdopendir owns the descriptor it is given, so hand it a duplicate.
    const int list_fd = ::fcntl(listing->dir_fd, F_DUPFD_CLOEXEC, 0);
    DIR* d = list_fd < 0 ? nullptr : ::fdopendir(list_fd);
    if (d == nullptr) {
      const int err = errno;
      if (list_fd >= 0) ::close(list_fd);
      throw InputError(dir, std::string("cannot list directory: ") + std::strerror(err));
    }
    errno = 0;
    while (struct dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      if (name.size() < 5 || name.compare(name.size() - 4, 4, ".bin") != 0) continue;
      names.push_back(name);
    }
    const int err = errno;
    ::closedir(d);
    if (err != 0) throw InputError(dir, std::string("cannot list directory: ") + std::strerror(err));
  }
  if (names.empty()) throw InputError(dir, "contains no .bin files (expected one file per sample: 0.bin, 1.bin, ...)");
  if (order_ == FileOrder::kNatural)
    std::sort(names.begin(), names.end(), natural_less);
  else
    std::sort(names.begin(), names.end());

  const std::string prefix = (!dir.empty() && dir.back() == '/') ? dir : dir + "/";
  listing->paths.reserve(names.size());
  listing->stamps.reserve(names.size());
  std::string first_bad;
  uint64_t first_bad_size = 0;
  size_t bad = 0;
  for (const std::string& name : names) {
    std::string path = prefix + name;
    struct stat fs;
    if (::fstatat(listing->dir_fd, name.c_str(), &fs, 0) != 0) {
      const int err = errno;
      struct stat ls;
      if (err == ENOENT && ::fstatat(listing->dir_fd, name.c_str(), &ls, AT_SYMLINK_NOFOLLOW) == 0 &&
          S_ISLNK(ls.st_mode))
        throw InputError(path, "dangling symbolic link (its target does not exist)");
      throw InputError(path, std::string("cannot stat sample file: ") + std::strerror(err));
    }
    if (!S_ISREG(fs.st_mode))
      throw InputError(path, S_ISDIR(fs.st_mode) ? "is a directory, not a sample file"
                                                 : "is not a regular file (expected a raw sample file)");
    listing->stamps.push_back(file_stamp(fs));
    if (static_cast<uint64_t>(fs.st_size) != sample_bytes_) {
      if (bad++ == 0) {
        first_bad = path;
        first_bad_size = static_cast<uint64_t>(fs.st_size);
      }
    }
    listing->paths.push_back(std::move(path));
  }
  if (bad > 0)
    throw ShapeMismatch(first_bad, "file is " + std::to_string(first_bad_size) + " bytes but the model expects " +
                                       std::to_string(sample_bytes_) + " bytes per sample (" + dtype_name(dtype_) +
                                       (shape_.empty() ? std::string() : " " + shape_str(shape_)) + "); " +
                                       std::to_string(bad) + " of " + std::to_string(listing->paths.size()) +
                                       " files have the wrong size");
  if (io == FolderIO::kMmap) listing->init_mappings();
  listing_ = std::move(listing);
}

std::string FolderDataset::describe() const {
  return "folder " + dir_ + " (" + std::to_string(listing_->paths.size()) + " files, " + file_order_name(order_) +
         " order, " + folder_io_name(listing_->io) + ", " + std::to_string(sample_bytes_) + " bytes of " + dtype_name(dtype_) +
         (shape_.empty() ? std::string() : " " + shape_str(shape_)) + " each)";
}

std::unique_ptr<BatchReader> FolderDataset::reader(size_t batch_size, size_t prefetch) const {
  return make_reader(batch_size, prefetch, 0);
}

SampleSpec FolderDataset::sample_spec() const {
  return SampleSpec{dtype_, sample_bytes_, shape_, "folder " + dir_, dir_};
}

std::unique_ptr<BatchReader> FolderDataset::make_reader(size_t batch_size, size_t prefetch, size_t io_threads) const {
  return std::make_unique<FolderBatchReader>(listing_, sample_spec(), batch_size, prefetch, io_threads);
}

}  // namespace pymfn
