#pragma once
/// The communication tasks of a workload (workload.hpp) simulated on a fabric through sim::Communicator
/// (docs/workloads.md, "The model"): runWorkload's duration callbacks. A task runs its first group of
/// `group` ranks: alone, on GPUs 0 .. group-1 (memoized by shape: a task's time alone does not depend on
/// where a symmetric fabric places it), and together with the tasks it overlaps, each on its own ranks,
/// sharing the fabric's links (sim::runConcurrently).
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/sim/workload.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::sim {

/// The MoE shape of a kMoeDispatch / kMoeCombine task; throws core::Error naming the task for a bad path
/// or element size.
collectives::MoeConfig moeConfigOf(const CommTask& task);

/// Collectives a workload task (and copro-sim) can run: those without per-rank vectors, by name.
std::vector<std::string> runnableCollectives();
/// Parses such a collective's name; throws core::Error suggesting the nearest name.
collectives::CollectiveKind parseRunnableCollective(const std::string& name);

class WorkloadComm {
 public:
  /// `fabric` must be finalized and outlive this object.
  explicit WorkloadComm(const topo::Fabric& fabric) : fabric_(fabric) {}

  /// The task's time alone (runWorkload's commTime). Throws core::Error prefixed with the task's name.
  core::Time alone(const CommTask& task);
  /// The tasks' times together (runWorkload's concurrentCommTime).
  std::vector<core::Time> concurrent(const std::vector<CommLaunch>& launches);
  /// How a task ran alone, for tables: "ring, 64 ranks, device" or "forward, 64 ranks, device".
  [[nodiscard]] std::string describe(const CommTask& task) const;
  /// Sets both callbacks of `options` to this object.
  void bind(WorkloadOptions& options);

 private:
  struct Prepared {
    std::unique_ptr<Communicator> communicator;
    std::shared_ptr<const core::ProgramSource> program;
    std::string algorithm;  ///< collectives: the algorithm
  };
  /// The task's Program on its first group, ranks firstRank .. firstRank + group - 1.
  Prepared prepare(const CommTask& task, std::int32_t firstRank) const;
  /// The two Programs of a MoE shape, dispatch and combine, on ranks firstRank ...
  [[nodiscard]] PreparedMoe prepareMoe(const CommTask& task, const Communicator& comm) const;

  const topo::Fabric& fabric_;
  std::map<std::string, core::Time> aloneTimes_;                    ///< by task shape
  std::map<std::string, std::string> algorithms_;                   ///< by task shape (collectives)
  std::map<std::string, std::vector<core::Time>> concurrentTimes_;  ///< by the launches (shapes, ranks, starts)
};

}  // namespace copro::sim
