#pragma once
/// Workloads (docs/design.md, "Compute model and workloads"; docs/workloads.md): a DAG of compute and communication
/// tasks over the ranks of a job, and a fluid discrete-event scheduler that runs it with the compute model
/// (SimParams::compute): a device- or proxy-mode communication task in flight on a rank occupies
/// `comm_sms` of its SMs, and compute overlapped with it runs at (sms - occupied) / sms of its speed.
///
/// The durations of communication tasks come from callbacks (WorkloadComm, workload_comm.hpp, simulates
/// them through sim::Communicator): each task alone, and, where the schedule overlaps communication tasks,
/// those tasks together on the fabric, contending for its links; the DAG is then scheduled again with the
/// contended durations until they settle (docs/workloads.md, "The model").
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/simulator.hpp"

namespace copro::sim {

enum class TaskKind : std::uint8_t { kCompute = 0, kCollective, kMoeDispatch, kMoeCombine };
/// "compute", "collective", "moe_dispatch", "moe_combine".
std::string_view taskKindName(TaskKind k) noexcept;

/// A communication task as the duration callback sees it.
struct CommTask {
  std::string name;
  TaskKind kind = TaskKind::kCollective;
  std::string collective;   ///< kCollective: "allreduce", "alltoall", ... (copro-sim's names)
  std::uint64_t bytes = 0;  ///< kCollective: the nccl-tests size S of one group's call
  std::string algorithm;    ///< empty: the planner chooses
  /// Ranks per group: the task's ranks split into consecutive blocks of this size, each running the
  /// collective at the same time (0 in a Task: all its ranks; the callback always sees the resolved size).
  std::int32_t groupSize = 0;
  /// Non-empty: the task is one group on exactly these ranks of the job, in this order (its rank 0 first:
  /// the sender of a point-to-point transfer, the root of a broadcast); groupSize is then its size. Chakra
  /// traces (chakra_trace.hpp) use it for process groups that are not a block of consecutive ranks.
  std::vector<std::int32_t> placement;
  core::Initiation initiation = core::Initiation::kDevice;
  std::int32_t sms = -1;  ///< SMs it occupies while in flight; -1: compute.comm_sms (device, proxy), 0 (offload)
  // kMoeDispatch / kMoeCombine (per rank of the group)
  std::int64_t tokens = 0;        ///< tokens per rank
  std::int64_t hidden = 0;        ///< hidden size
  std::int32_t topk = 0;          ///< experts per token
  std::int32_t experts = 0;       ///< routed experts in the group
  std::string path;               ///< route of a token ("forward": DeepEP normal, "direct": low latency); "" = caller's
  std::int32_t maxNodes = 0;      ///< node-limited routing: a token reaches at most this many nodes (0 = no limit)
  std::int32_t elementBytes = 0;  ///< bytes per element; 0: 1 for dispatch (FP8), 2 for combine (BF16)
};

/// One task of the DAG.
struct Task {
  std::string name;
  TaskKind kind = TaskKind::kCompute;
  std::vector<std::string> after;  ///< names of the tasks that must end before this one starts
  std::int32_t firstRank = 0;      ///< the ranks it runs on: [firstRank, firstRank + numRanks)
  std::int32_t numRanks = 0;       ///< 0: every rank of the workload
                                   ///< (communication tasks with comm.placement run on those ranks instead)
  // kCompute: `duration`, or `flops` at compute.flops x efficiency
  core::Time duration{};
  double flops = 0.0;
  double efficiency = 0.0;  ///< 0: compute.efficiency
  CommTask comm;            ///< the other kinds
  std::string origin;       ///< "file:line" for messages
};

/// A workload file, parsed.
struct Workload {
  std::string name;
  std::string path;                    ///< the file it came from ("" for text)
  std::string topology;                ///< optional: topology file or bundled name
  std::vector<std::string> overrides;  ///< "key=value" for loadTopology (builder parameters, "sim.*" keys)
  std::int32_t ranks = 0;              ///< ranks of the job; 0: every GPU of the topology
  std::vector<Task> tasks;
};

/// Parses workload YAML (`origin` names it in messages). Throws core::Error(kParseError or kInvalidArgument)
/// naming the origin, the line and the key, with the nearest valid key for an unknown one.
Workload parseWorkload(const std::string& yamlText, const std::string& origin);
/// Reads and parses a workload file.
Workload loadWorkload(const std::string& path);

/// What happened to one task.
struct TaskTiming {
  std::string name;
  TaskKind kind = TaskKind::kCompute;
  core::Time start{};
  core::Time end{};
  core::Time nominal{};  ///< compute: its time alone on a free GPU; communication: its time alone (commTime)
  core::Time lost{};     ///< compute: end - start - nominal (time lost to SMs lent to communication)
  std::int32_t sms = 0;  ///< communication: SMs it occupied
};

struct WorkloadResult {
  core::Time stepTime{};          ///< the last task's end
  std::vector<TaskTiming> tasks;  ///< in file order
  core::Time computeLost{};       ///< sum of `lost` over compute tasks
  core::Time exposedComm{};       ///< the most, over ranks, of time with communication in flight and no compute
  core::Time computeBusy{};       ///< the most, over ranks, of time with compute running
};

/// A communication task of a concurrent group: its shape, where its first group sits, when it starts
/// (relative to the group's first task).
struct CommLaunch {
  CommTask task;               ///< groupSize resolved
  std::int32_t firstRank = 0;  ///< the task's first rank (its first group is ranks firstRank .. + groupSize - 1)
  core::Time start{};
};

/// Options of runWorkload.
struct WorkloadOptions {
  std::int32_t ranks = 0;  ///< ranks of the job; 0: the workload's `ranks` (must then be > 0)
  ComputeParams compute;
  /// The duration of one communication task (copro-sim: one Simulator run of the task's representative
  /// group). Called once per communication task, in file order, before scheduling.
  std::function<core::Time(const CommTask&)> commTime;
  /// How long each of several overlapping communication tasks takes when they run together (optional;
  /// without it overlapping tasks do not contend). Called with the tasks of each overlapping group, in
  /// start order; returns one duration per task, from its own start.
  std::function<std::vector<core::Time>(const std::vector<CommLaunch>&)> concurrentCommTime;
};

/// Schedules the DAG (docs/workloads.md, "The model"): a task starts when all tasks it comes after have
/// ended; compute tasks of one rank run one at a time (one compute stream) in the order they become ready
/// (file order among equals); communication tasks start as soon as they are ready and take their alone
/// duration, or, with concurrentCommTime, their duration alongside the communication tasks they overlap
/// (a fixed point over at most a few schedules). Throws core::Error for
/// a cycle, an unknown dependency, ranks outside the job, or a missing callback.
WorkloadResult runWorkload(const Workload& workload, const WorkloadOptions& options);

}  // namespace copro::sim
