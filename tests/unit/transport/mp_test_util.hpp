#pragma once
// Helpers of the multi-process tests (bootstrap, shm): fork one child per rank, collect exit codes with a
// deadline, and report failures from inside a child (where GoogleTest assertions cannot reach the parent).
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace copro::testing {

/// Thrown by CHILD_CHECK inside a child: the message goes to stderr and the child exits with 1.
struct ChildFailure {
  std::string message;
};

#define CHILD_CHECK(cond, what)                                                          \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::ostringstream child_os_;                                                      \
      child_os_ << __FILE__ << ":" << __LINE__ << ": check failed: " #cond ": " << what; \
      throw ::copro::testing::ChildFailure{child_os_.str()};                             \
    }                                                                                    \
  } while (0)

struct ForkResult {
  std::vector<pid_t> pids;
  std::vector<int> codes;  ///< exit code, or 128 + signal, or -1 when killed at the deadline
  [[nodiscard]] bool allZero() const {
    for (int c : codes) {
      if (c != 0) return false;
    }
    return true;
  }
  [[nodiscard]] std::string summary() const {
    std::string s;
    for (std::size_t i = 0; i < codes.size(); ++i)
      s += "rank " + std::to_string(i) + ": " + std::to_string(codes[i]) + "; ";
    return s;
  }
};

/// Forks `n` children; child r runs body(r) and exits 0 (returned normally) or 1 (threw). Children still
/// running after `timeoutSec` are killed (code -1).
inline ForkResult forkRanks(int n, const std::function<void(int)>& body, double timeoutSec) {
  ForkResult res;
  std::fflush(stdout);
  std::fflush(stderr);
  for (int r = 0; r < n; ++r) {
    const pid_t pid = fork();
    if (pid == 0) {
      int code = 0;
      try {
        body(r);
      } catch (const ChildFailure& f) {
        std::fprintf(stderr, "[rank %d] %s\n", r, f.message.c_str());
        code = 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "[rank %d] exception: %s\n", r, e.what());
        code = 1;
      } catch (...) {
        std::fprintf(stderr, "[rank %d] unknown exception\n", r);
        code = 1;
      }
      std::fflush(stderr);
      _exit(code);
    }
    res.pids.push_back(pid);
  }
  res.codes.assign(static_cast<std::size_t>(n), -2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutSec);
  int left = n;
  while (left > 0) {
    for (int r = 0; r < n; ++r) {
      if (res.codes[static_cast<std::size_t>(r)] != -2) continue;
      int status = 0;
      if (waitpid(res.pids[static_cast<std::size_t>(r)], &status, WNOHANG) > 0) {
        res.codes[static_cast<std::size_t>(r)] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        --left;
      }
    }
    if (left == 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      for (int r = 0; r < n; ++r) {
        if (res.codes[static_cast<std::size_t>(r)] != -2) continue;
        kill(res.pids[static_cast<std::size_t>(r)], SIGKILL);
        waitpid(res.pids[static_cast<std::size_t>(r)], nullptr, 0);
        res.codes[static_cast<std::size_t>(r)] = -1;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return res;
}

/// Entries of /dev/shm whose name starts with `prefix`.
inline std::vector<std::string> shmEntries(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) out.emplace_back(e->d_name);
  }
  closedir(d);
  return out;
}

}  // namespace copro::testing
