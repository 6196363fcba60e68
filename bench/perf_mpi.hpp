#pragma once
// copro-perf under mpirun: one rank per process, MPI for start-up, result combination and --compare.
// Compiled only when the build found MPI (COPRO_PERF_HAVE_MPI); mpi.h stays out of this header.
#include <memory>
#include <string>
#include <vector>

#include "perf_bench.hpp"

namespace copro::bench {

/// True when a launcher started this process as one rank of several (Open MPI's OMPI_COMM_WORLD_SIZE,
/// PMI_SIZE or PMIX_RANK in the environment).
bool underMpiLauncher();

/// This process's part of an MPI run. Initializes MPI unless someone already did, and finalizes it
/// when it did.
class MpiRun {
 public:
  /// The MPI thread level copro's backend needs: MPI_THREAD_FUNNELED when MPI only starts the processes
  /// and combines figures (Open MPI's own paths stay lock-free there), SERIALIZED for the `mpi` backend
  /// driven by the caller's thread, MULTIPLE for the `mpi` backend with proxy progress threads.
  enum class ThreadLevel { kFunneled, kSerialized, kMultiple };
  explicit MpiRun(ThreadLevel level);
  ~MpiRun();
  MpiRun(const MpiRun&) = delete;
  MpiRun& operator=(const MpiRun&) = delete;

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// The run's ranks, synchronized and combined over MPI.
  std::unique_ptr<Team> team();
  /// This process's communicator of `backend` (shm, mpi, ucx), bootstrapped over MPI_COMM_WORLD.
  Communicator communicator(const std::string& backend, const Config& config);
  /// The peers of a comma list ("mpi,gloo"); throws Error naming an unknown or unbuilt one.
  std::vector<std::unique_ptr<Peer>> peers(const std::string& list, double timeoutSec);
  /// Ends every process of the job (MPI_Abort) after an error on this one, which the others could
  /// otherwise wait for until their timeout.
  void abortAll(int code);

 private:
  bool initializedHere_ = false;
  int rank_ = 0;
  int size_ = 1;
  struct Comms;
  std::unique_ptr<Comms> comms_;
};

}  // namespace copro::bench
