#include "data/mapped_copy.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csetjmp>
#include <csignal>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/errors.h"

namespace pymfn {

namespace {

struct CopyGuard {
  sigjmp_buf resume;
};

// The guard of the copy this thread is inside, or nullptr. initial-exec: the handler reads it without
// calling into the TLS allocator (which a lazily allocated dlopen TLS block would need).
__attribute__((tls_model("initial-exec"))) thread_local CopyGuard* t_active_guard = nullptr;

struct sigaction g_previous_action;
std::once_flag g_install_once;

void on_sigbus(int signo, siginfo_t* info, void* /*context*/) {
  CopyGuard* guard = t_active_guard;
  if (guard != nullptr) {
    t_active_guard = nullptr;
    siglongjmp(guard->resume, 1);
  }
  // Not raised inside a guarded copy: hand the signal to whoever had it before us.
  sigaction(signo, &g_previous_action, nullptr);
  if (info == nullptr || info->si_code <= 0) raise(signo);  // sent by kill/raise: no access re-runs
}

void install_handler() {
  struct sigaction action;
  std::memset(&action, 0, sizeof action);
  action.sa_sigaction = on_sigbus;
  // SA_NODEFER: SIGBUS stays unblocked after we siglongjmp out of the handler, so the next
  // guarded copy is protected too (a blocked synchronous SIGBUS would kill the process).
  // No SA_ONSTACK: a guarded fault happens with plenty of thread stack left, and an alternate stack another
  // library registered may since have been freed (and its pages reused, even by the very mapping that faulted).
  action.sa_flags = SA_SIGINFO | SA_NODEFER;
  sigemptyset(&action.sa_mask);
  sigaction(SIGBUS, &action, &g_previous_action);
}

}  // namespace

bool copy_from_mapping(void* dst, const void* src, size_t n) {
  std::call_once(g_install_once, install_handler);
  CopyGuard guard;
  if (sigsetjmp(guard.resume, 0) != 0) return false;  // came back from on_sigbus
  t_active_guard = &guard;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_active_guard = nullptr;
  return true;
}

FileStamp file_stamp(const struct stat& st) {
  FileStamp s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

std::string file_change(const FileStamp& then, const FileStamp& now) {
  if (now.dev != then.dev || now.ino != then.ino) return "another file has replaced it";
  if (now.size != then.size)
    return "it is now " + std::to_string(now.size) + " bytes, was " + std::to_string(then.size);
  if (now.mtime_ns != then.mtime_ns) return "it was rewritten: its modification time changed";
  return "";
}

WatchedFile::WatchedFile(int fd, const FileStamp& opened, std::string path)
    : fd_(fd), opened_(opened), path_(std::move(path)) {}

WatchedFile::~WatchedFile() {
  if (fd_ >= 0) ::close(fd_);
}

void WatchedFile::check() const {
  if (fd_ < 0) return;
  struct stat st;
  if (::fstat(fd_, &st) != 0)
    throw InputError(path_, std::string("cannot stat the file during the run: ") + std::strerror(errno));
  const std::string change = file_change(opened_, file_stamp(st));
  if (!change.empty())
    throw InputError(path_, "the file changed during the run (" + change + "); its samples are no longer the ones "
                            "the run started with");
}

void WatchedFile::fail_after_fault(size_t first_sample, size_t samples) const {
  check();  // names the change when the file shrank or was rewritten
  const std::string where = "samples " + std::to_string(first_sample) + ".." + std::to_string(first_sample + samples - 1);
  throw InputError(path_, "reading " + where + " from its mapping failed with SIGBUS (the file shrank while it was "
                          "being read, or the storage behind it failed to deliver the data)");
}

bool copy_after_truncating_mapping(const std::string& path, size_t mapped_bytes, size_t truncate_to) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw InputError(path, std::string("cannot open: ") + std::strerror(errno));
  void* map = ::mmap(nullptr, mapped_bytes, PROT_READ, MAP_SHARED, fd, 0);
  const int map_err = errno;
  if (map == MAP_FAILED) {
    ::close(fd);
    throw InputError(path, std::string("cannot map: ") + std::strerror(map_err));
  }
  const bool truncated = ::ftruncate(fd, static_cast<off_t>(truncate_to)) == 0;
  const int truncate_err = errno;
  ::close(fd);
  std::vector<unsigned char> dst(mapped_bytes);
  const bool copied = truncated && copy_from_mapping(dst.data(), map, mapped_bytes);
  ::munmap(map, mapped_bytes);
  if (!truncated) throw InputError(path, std::string("cannot truncate: ") + std::strerror(truncate_err));
  return copied;
}

}  // namespace pymfn
