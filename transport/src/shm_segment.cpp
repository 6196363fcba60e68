/// Shared-memory segments, process liveness, shared futexes, Cross Memory Attach and the registry of
/// allocate()d memory: the operating-system side of the shm backend.
#include <dirent.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include "copro/core/log.hpp"
#include "process_state.hpp"
#include "shm_internal.hpp"

namespace copro::transport::shm {

using core::Error;
using core::ErrorCode;

Mapping createSegment(const std::string& name, std::size_t bytes) {
  const std::string path = "/" + name;
  const int fd = shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw Error(ErrorCode::kSystemError, "shm: cannot create shared memory " + path + ": " + std::strerror(errno) +
                                             " (is /dev/shm mounted and writable?)");
  }
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    const int e = errno;
    close(fd);
    shm_unlink(path.c_str());
    throw Error(ErrorCode::kSystemError, "shm: cannot size " + path + " to " + std::to_string(bytes) +
                                             " bytes: " + std::strerror(e) + " (is /dev/shm large enough?)");
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  close(fd);
  if (p == MAP_FAILED) {
    shm_unlink(path.c_str());
    throw Error(ErrorCode::kSystemError, "shm: cannot map " + path + ": " + std::strerror(e));
  }
  return Mapping{static_cast<std::byte*>(p), bytes, name};
}

bool openSegment(const std::string& name, Mapping& out) {
  const std::string path = "/" + name;
  const int fd = shm_open(path.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    const int e = errno;
    close(fd);
    errno = e == 0 ? EINVAL : e;
    return false;
  }
  const auto bytes = static_cast<std::size_t>(st.st_size);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int e = errno;
  close(fd);
  if (p == MAP_FAILED) {
    errno = e;
    return false;
  }
  out = Mapping{static_cast<std::byte*>(p), bytes, name};
  return true;
}

void unmap(Mapping& m) noexcept {
  if (m.base != nullptr) munmap(m.base, m.bytes);
  m = Mapping{};
}

std::size_t allocSegmentBytes(std::size_t userBytes) noexcept {
  return (std::max<std::size_t>(userBytes, 1) + 63) / 64 * 64 + sizeof(AllocTail);
}

AllocTail* allocTail(std::byte* base, std::size_t segmentBytes) noexcept {
  return reinterpret_cast<AllocTail*>(base + segmentBytes - sizeof(AllocTail));
}

void unlinkSegment(const std::string& name) noexcept {
  shm_unlink(("/" + name).c_str());
}

int unlinkByPrefix(const std::string& prefix) noexcept {
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return 0;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) {
      if (shm_unlink(("/" + std::string(e->d_name)).c_str()) == 0) ++n;
    }
  }
  closedir(d);
  return n;
}

// ---------------------------------------------------------------------------------------------------------
// Liveness

namespace {
/// Reads /proc/<pid>/stat: the state letter and the start time (field 22). False when unreadable.
bool readStat(pid_t pid, char& state, std::uint64_t& start) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char buf[1024];
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) may contain spaces and parentheses: parse after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  ++p;
  while (*p == ' ') ++p;
  state = *p;
  // Fields after the state: 4..22; the start time is the 20th field after it (field 22).
  int field = 3;
  while (*p != '\0' && field < 22) {
    if (*p == ' ') {
      ++field;
      while (*p == ' ') ++p;
      continue;
    }
    ++p;
  }
  start = std::strtoull(p, nullptr, 10);
  return true;
}
}  // namespace

std::uint64_t processStartTime(pid_t pid) noexcept {
  char state = 0;
  std::uint64_t start = 0;
  return readStat(pid, state, start) ? start : 0;
}

bool processAlive(pid_t pid, std::uint64_t startTime) noexcept {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  char state = 0;
  std::uint64_t start = 0;
  if (!readStat(pid, state, start)) return kill(pid, 0) == 0 || errno != ESRCH;
  // A killed child its parent has not reaped yet is a zombie: dead for us.
  if (state == 'Z' || state == 'X' || state == 'x') return false;
  return startTime == 0 || start == startTime;
}

bool processStopped(pid_t pid) noexcept {
  return transport::processStopped(pid);
}

// ---------------------------------------------------------------------------------------------------------
// Futex, CMA

void futexWaitShared(std::atomic<std::uint32_t>* word, std::uint32_t seen, std::chrono::nanoseconds timeout) noexcept {
  const auto ns = std::max<std::int64_t>(timeout.count(), 1000);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, seen, &ts, nullptr, 0);
}

void futexWakeShared(std::atomic<std::uint32_t>* word) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

int cmaRead(pid_t pid, void* dst, std::uint64_t remoteSrc, std::size_t bytes) noexcept {
  auto* d = static_cast<std::byte*>(dst);
  while (bytes > 0) {
    iovec local{d, bytes};
    iovec remote{reinterpret_cast<void*>(remoteSrc), bytes};
    const ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EFAULT;
    d += n;
    remoteSrc += static_cast<std::uint64_t>(n);
    bytes -= static_cast<std::size_t>(n);
  }
  return 0;
}

int cmaWrite(pid_t pid, std::uint64_t remoteDst, const void* src, std::size_t bytes) noexcept {
  const auto* s = static_cast<const std::byte*>(src);
  while (bytes > 0) {
    iovec local{const_cast<std::byte*>(s), bytes};
    iovec remote{reinterpret_cast<void*>(remoteDst), bytes};
    const ssize_t n = process_vm_writev(pid, &local, 1, &remote, 1, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EFAULT;
    s += n;
    remoteDst += static_cast<std::uint64_t>(n);
    bytes -= static_cast<std::size_t>(n);
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------------------
// Allocations

namespace {
std::mutex gAllocMutex;
std::map<const std::byte*, AllocInfo>& allocations() {
  static std::map<const std::byte*, AllocInfo> m;
  return m;
}
}  // namespace

void registerAllocation(const AllocInfo& info) {
  std::lock_guard<std::mutex> lock(gAllocMutex);
  allocations()[info.base] = info;
}

bool takeAllocation(void* base, AllocInfo& out) {
  std::lock_guard<std::mutex> lock(gAllocMutex);
  auto it = allocations().find(static_cast<const std::byte*>(base));
  if (it == allocations().end()) return false;
  out = it->second;
  allocations().erase(it);
  return true;
}

bool findAllocation(const void* p, std::uint64_t bytes, AllocInfo& out) {
  std::lock_guard<std::mutex> lock(gAllocMutex);
  auto& m = allocations();
  if (m.empty()) return false;
  const auto* b = static_cast<const std::byte*>(p);
  auto it = m.upper_bound(b);
  if (it == m.begin()) return false;
  --it;
  const AllocInfo& a = it->second;
  if (b < a.base || static_cast<std::uint64_t>(b - a.base) + bytes > a.bytes) return false;
  out = a;
  return true;
}

}  // namespace copro::transport::shm
