#pragma once
// Multi-process gtest runs end the whole MPI job at the first failed assertion. A copro error on one
// rank (a stopped or dead peer, a timeout) would otherwise leave the other ranks waiting forever in
// their next collective or in the final MPI_Allreduce of the exit codes; MPI_Abort makes mpirun stop
// every rank instead. Each rank prints its own failure first, since only rank 0 keeps gtest's printer.
// So that the ranks mpirun then ends do not vanish without a word, the failing rank waits a moment
// before MPI_Abort (ranks blocked on the same problem time out at about the same time and print their
// own report: often the one that explains it), and every rank ended by a signal says in which test.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

namespace copro::mptest {

/// How long a failing rank lets the others print their own failure before it ends the job.
constexpr std::chrono::seconds kAbortGrace{3};

namespace detail {
inline char currentTest[256] = "(outside a test)";  ///< read by the signal handler
inline int worldRank = -1;

/// Appends `text` to `out` at `at` (no allocation: runs in a signal handler).
inline std::size_t append(char* out, std::size_t at, std::size_t cap, const char* text) {
  while (*text != 0 && at + 1 < cap) out[at++] = *text++;
  return at;
}
inline std::size_t appendInt(char* out, std::size_t at, std::size_t cap, int v) {
  char digits[16];
  int n = 0;
  unsigned u = v < 0 ? 0U - static_cast<unsigned>(v) : static_cast<unsigned>(v);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0 && n < 15);
  if (v < 0) at = append(out, at, cap, "-");
  while (n > 0 && at + 1 < cap) out[at++] = digits[--n];
  return at;
}

/// SIGTERM/SIGINT (mpirun ending the job after another rank's MPI_Abort): says where this rank was.
inline void sayWhereWhenEnded(int sig) {
  char line[512];
  std::size_t n = append(line, 0, sizeof(line), "rank ");
  n = appendInt(line, n, sizeof(line), worldRank);
  n = append(line, n, sizeof(line), ": ended by signal ");
  n = appendInt(line, n, sizeof(line), sig);
  n = append(line, n, sizeof(line), " (mpirun ends the other ranks when one fails or exits early: see its report) in ");
  n = append(line, n, sizeof(line), currentTest);
  n = append(line, n, sizeof(line), "\n");
  (void)!write(STDERR_FILENO, line, n);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace detail

class AbortOnFailure final : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_ = std::string(info.test_suite_name()) + "." + info.name();
    std::snprintf(detail::currentTest, sizeof(detail::currentTest), "%s", test_.c_str());
  }
  // gtest holds its own lock here: nothing below may call back into ::testing::UnitTest.
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr, "rank %d: %s failed at %s:%d:\n%s\nrank %d: aborting the MPI job (MPI_Abort) in %lld s\n",
                 rank, test_.c_str(), result.file_name() != nullptr ? result.file_name() : "?", result.line_number(),
                 result.summary(), rank, static_cast<long long>(kAbortGrace.count()));
    std::fflush(stderr);
    std::fflush(stdout);
    std::this_thread::sleep_for(kAbortGrace);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 private:
  std::string test_ = "(outside a test)";
};

/// Appends the listener (after gtest's own printer, so rank 0's report is printed first) and the
/// handler that names the test of a rank ended by a signal. Call after MPI_Init.
inline void abortJobOnFailure() {
  MPI_Comm_rank(MPI_COMM_WORLD, &detail::worldRank);
  struct sigaction sa {};
  sa.sa_handler = detail::sayWhereWhenEnded;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  ::testing::UnitTest::GetInstance()->listeners().Append(new AbortOnFailure);
}

}  // namespace copro::mptest
