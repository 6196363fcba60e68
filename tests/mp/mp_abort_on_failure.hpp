#pragma once
// Multi-process gtest runs end the whole MPI job at the first failed assertion. A copro error on one
// rank (a stopped or dead peer, a timeout) would otherwise leave the other ranks waiting forever in
// their next collective or in the final MPI_Allreduce of the exit codes; MPI_Abort makes mpirun stop
// every rank instead. Each rank prints its own failure first, since only rank 0 keeps gtest's printer.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdio>
#include <string>

namespace copro::mptest {

class AbortOnFailure final : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_ = std::string(info.test_suite_name()) + "." + info.name();
  }
  // gtest holds its own lock here: nothing below may call back into ::testing::UnitTest.
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    std::fprintf(stderr, "rank %d: %s failed at %s:%d:\n%s\nrank %d: aborting the MPI job (MPI_Abort)\n", rank,
                 test_.c_str(), result.file_name() != nullptr ? result.file_name() : "?", result.line_number(),
                 result.summary(), rank);
    std::fflush(stderr);
    std::fflush(stdout);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

 private:
  std::string test_ = "(outside a test)";
};

/// Appends the listener (after gtest's own printer, so rank 0's report is printed first).
inline void abortJobOnFailure() {
  ::testing::UnitTest::GetInstance()->listeners().Append(new AbortOnFailure);
}

}  // namespace copro::mptest
