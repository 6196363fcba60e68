// One rank of the fault-injection suite (tests/fault/fault_suite.py, docs/faults.md): creates a
// communicator of the given backend, either from the environment bootstrap (COPRO_RANK, COPRO_WORLD_SIZE,
// COPRO_ROOT_ADDR, COPRO_BOOTSTRAP_TOKEN; no mpirun) or from MPI_COMM_WORLD (under mpirun), then runs
// all-reduces in a loop, checking each result, until a call fails. The harness kills or stops one rank
// in the loop and judges the survivors from their output and exit: each prints one "ERROR rank R:" line
// with copro's message and exits with status 3 (under mpirun: MPI_Abort with 3, so that the job ends
// instead of waiting in MPI). A wrong result exits with status 4.
#include <mpi.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "copro/copro_mpi.hpp"

namespace {

bool underMpirun() {
  return std::getenv("OMPI_COMM_WORLD_RANK") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

/// Exits the rank (and, under mpirun, the job) after a failed call.
[[noreturn]] void fail(bool mpi, int rank, const std::string& what, int code) {
  std::printf("ERROR rank %d: %s\n", rank, what.c_str());
  std::fflush(stdout);
  if (mpi) MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: copro_fault_rank BACKEND (shm, ucx or mpi)\n");
    return 2;
  }
  const std::string backend = argv[1];
  const bool mpi = underMpirun();
  copro::Communicator comm;
  int rank = -1;
  try {
    if (mpi) {
      int provided = 0;
      MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
      comm = copro::createFromMpi(MPI_COMM_WORLD, backend);
    } else {
      comm = copro::createFromEnvironment(backend);
    }
    rank = comm.rank();
  } catch (const std::exception& e) {
    fail(mpi, rank, std::string("creation: ") + e.what(), 5);
  }
  const int n = comm.size();
  const std::uint64_t count = 16384;
  std::vector<float> in(count);
  std::vector<float> out(count);
  for (std::uint64_t it = 0;; ++it) {
    for (std::uint64_t i = 0; i < count; ++i) in[i] = static_cast<float>((rank + i + it) % 7);
    const copro::Status st =
        comm.allReduce(in.data(), out.data(), count, copro::DataType::kFloat32, copro::ReduceOp::kSum).wait();
    if (!st.ok()) fail(mpi, rank, st.toString(), 3);
    for (std::uint64_t i = 0; i < count; i += 1021) {
      float ref = 0;
      for (int r = 0; r < n; ++r) ref += static_cast<float>((r + i + it) % 7);
      if (out[i] != ref) fail(mpi, rank, "wrong result at element " + std::to_string(i), 4);
    }
    if (it == 50) {
      // The harness waits for every rank to be in the loop before it picks a victim.
      std::printf("READY rank %d pid %d\n", rank, static_cast<int>(getpid()));
      std::fflush(stdout);
    }
  }
}
