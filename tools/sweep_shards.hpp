#pragma once
/// Sweeps across machines (docs/copro-sim.md, "Sweeps on several machines"): when copro-sim or copro-study
/// is started by mpirun (Open MPI), a sweep's points are dealt round-robin to the MPI ranks, each rank
/// simulates its share, and rank 0 gathers the results (copro-study: every rank gets them) and writes the
/// one table, CSV and plot, in the order of a serial run. Started without mpirun, the job is one rank and
/// nothing of MPI is touched.
#include <cstddef>
#include <map>
#include <string>

namespace copro::tools {

class SweepShards {
 public:
  /// Joins the MPI job when the environment says mpirun started this process (OMPI_COMM_WORLD_SIZE,
  /// PMI_SIZE or PMIX_RANK); throws core::Error(kUnsupported) under mpirun when copro-sim has no MPI.
  SweepShards();
  ~SweepShards();
  SweepShards(const SweepShards&) = delete;
  SweepShards& operator=(const SweepShards&) = delete;

  [[nodiscard]] int rank() const { return rank_; }
  [[nodiscard]] int size() const { return size_; }
  /// Whether point `index` of the sweep is this rank's to run.
  [[nodiscard]] bool mine(std::size_t index) const {
    return static_cast<int>(index % static_cast<std::size_t>(size_)) == rank_;
  }
  /// Every rank's records (point index -> encoded result) on rank 0; an empty map on the others.
  [[nodiscard]] std::map<std::size_t, std::string> gather(const std::map<std::size_t, std::string>& mine) const;
  /// Every rank's records on every rank (gather, then a broadcast from rank 0).
  [[nodiscard]] std::map<std::size_t, std::string> allGather(const std::map<std::size_t, std::string>& mine) const;

 private:
  int rank_ = 0;
  int size_ = 1;
  bool initialized_ = false;  ///< this object called MPI_Init (and calls MPI_Finalize)
};

}  // namespace copro::tools
