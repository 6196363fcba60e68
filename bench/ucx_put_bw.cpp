// copro-ucx-put-bw: put bandwidth of the `ucx` backend's put path between 2 processes, to compare with
// `ucx_perftest -t ucp_put_bw` at the same size and UCX_TLS (docs/ucx.md).
//
//   UCX_TLS=shm,self mpirun -np 2 -x UCX_TLS build/bench/copro-ucx-put-bw [min_bytes max_bytes MiB_per_call]
//
// Each call runs a Program in which rank 0 puts the same `bytes` from its input into rank 1's output
// `reps` times (reps*bytes = MiB_per_call, default 512, at least 4 puts), then signals rank 1 (which waits
// for it) and flushes; bandwidth = reps*bytes / call time on rank 0 (best of 5 calls after a warm-up).
// Two columns: buffers from Executor::allocate() (UCX-allocated, reachable by the shared-memory
// transports directly) and plain user memory (registered on demand: cma on one host). MPI only starts
// the processes and bootstraps UCX.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "copro/core/executor.hpp"
#include "copro/core/program.hpp"
#include "copro/transport/mpi.hpp"
#include "copro/transport/ucx.hpp"

namespace {

using copro::core::Addr;
using copro::core::BufferId;
using copro::core::Op;

std::shared_ptr<copro::core::Program> putProgram(std::uint64_t bytes, int reps) {
  copro::core::ProgramHeader h;
  h.name = "put_bw";
  h.nranks = 2;
  h.numSemaphores = 1;
  h.inputBytes = {bytes, 0};
  h.outputBytes = {0, bytes};
  std::vector<copro::core::RankProgram> ranks(2);
  for (int i = 0; i < reps; ++i) {
    ranks[0].emit(0, Op::put(1, Addr{1, BufferId::kOutput, 0}, Addr{copro::core::kSelf, BufferId::kInput, 0}, bytes));
  }
  ranks[0].emit(0, Op::signal(1, 0, 1));
  ranks[0].emit(0, Op::flush());
  ranks[1].emit(0, Op::wait(0, 1));
  return std::make_shared<copro::core::Program>(h, std::move(ranks));
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  int rank = 0;
  int size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "copro-ucx-put-bw needs exactly 2 processes\n");
    MPI_Finalize();
    return 1;
  }
  const std::uint64_t minBytes = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : (std::uint64_t{1} << 20);
  const std::uint64_t maxBytes = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : (std::uint64_t{64} << 20);
  const std::uint64_t perCall = (argc > 3 ? std::strtoull(argv[3], nullptr, 0) : 512) << 20;
  {
    copro::core::ExecutorOptions options;
    options.bootstrap = copro::transport::createMpiBootstrap(MPI_COMM_WORLD);
    std::unique_ptr<copro::core::Executor> exec = copro::transport::createUcxExecutor(options);
    const char* tls = std::getenv("UCX_TLS");
    if (rank == 0) {
      std::printf("# copro ucx put bandwidth, UCX_TLS=%s, best of 5 calls\n# %12s %6s %14s %14s\n",
                  tls ? tls : "(default)", "bytes", "reps", "allocate MB/s", "user MB/s");
    }
    auto* allocIn = static_cast<std::byte*>(exec->allocate(maxBytes));
    auto* allocOut = static_cast<std::byte*>(exec->allocate(maxBytes));
    std::vector<std::byte> userIn(maxBytes, std::byte{1});
    std::vector<std::byte> userOut(maxBytes);
    std::fill(allocIn, allocIn + maxBytes, std::byte{1});
    for (std::uint64_t bytes = minBytes; bytes <= maxBytes; bytes *= 2) {
      const int reps = static_cast<int>(std::max<std::uint64_t>(4, perCall / bytes));
      auto program = putProgram(bytes, reps);
      double mbs[2] = {0, 0};
      for (int mode = 0; mode < 2; ++mode) {
        copro::core::CallBuffers b;
        b.input = mode == 0 ? allocIn : userIn.data();
        b.output = mode == 0 ? allocOut : userOut.data();
        double best = 1e30;
        for (int call = 0; call < 6; ++call) {
          MPI_Barrier(MPI_COMM_WORLD);
          const auto t0 = std::chrono::steady_clock::now();
          std::unique_ptr<copro::core::CallHandle> h;
          copro::Status s = exec->start(program, b, h);
          if (s.ok()) s = h->wait();
          const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (!s.ok()) {
            std::fprintf(stderr, "rank %d: %s\n", rank, s.toString().c_str());
            MPI_Abort(MPI_COMM_WORLD, 1);
          }
          if (call > 0) best = std::min(best, t);
        }
        mbs[mode] = static_cast<double>(bytes) * reps / best / 1e6;
      }
      if (rank == 0) {
        std::printf("  %12llu %6d %14.1f %14.1f\n", static_cast<unsigned long long>(bytes), reps, mbs[0], mbs[1]);
        std::fflush(stdout);
      }
    }
    exec->deallocate(allocIn);
    exec->deallocate(allocOut);
  }
  MPI_Finalize();
  return 0;
}
