/// Process states from /proc (process_state.hpp).
#include "process_state.hpp"

#include <cstdio>
#include <cstring>

namespace copro::transport {

char processState(pid_t pid) noexcept {
  if (pid <= 0) return 0;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return 0;
  char buf[512];
  const std::size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and parentheses: the state follows the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr) return 0;
  ++p;
  while (*p == ' ') ++p;
  return *p;
}

bool processStopped(pid_t pid) noexcept {
  const char s = processState(pid);
  return s == 'T' || s == 't';
}

std::string stoppedPeerText(int rank, pid_t pid) {
  return "rank " + std::to_string(rank) + " (pid " + std::to_string(pid) +
         ") is stopped (process state T: SIGSTOP, Ctrl-Z or a debugger)";
}

}  // namespace copro::transport
