#pragma once
/// Collective calls as data, and the algorithms that turn them into Programs.
///
/// Buffer conventions (NCCL's counts; elements of `dtype`; p = nranks; docs/api.md, "Collectives and count
/// conventions"):
///   allreduce       input count,          output count
///   reducescatter   input count*p,        output count                       (count = receive count)
///   reducescatterv  input sum(counts),    output counts[r]
///   allgather       input count,          output count*p   in place: input == output + r*count
///   allgatherv      input counts[r],      output sum(counts) (rank i's block at prefix sum of counts)
///   broadcast       input count (root),   output count     in place on root: input == output
///   reduce          input count,          output count on root (others: none)
///   gather          input count,          output count*p on root
///   scatter         input count*p (root), output count
///   alltoall        input count*p,        output count*p   (count elements to each peer)
///   alltoallv       layout words [sendcounts p | sdispls p | recvcounts p | rdispls p] in elements
///   barrier         none
///   sendrecv        extra buffers, one per P2POp of the group, in order
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"

namespace copro::collectives {

enum class CollectiveKind : std::uint8_t {
  kAllReduce = 0,
  kReduceScatter,
  kReduceScatterV,
  kAllGather,
  kAllGatherV,
  kBroadcast,
  kReduce,
  kGather,
  kScatter,
  kAllToAll,
  kAllToAllV,
  kBarrier,
  kSendRecv,
};
inline constexpr int kNumCollectiveKinds = 13;
std::string_view collectiveName(CollectiveKind k) noexcept;  ///< "allreduce", "reducescatter", ...
/// Accepts the names above and nccl-tests' ("all_reduce", "reduce_scatter", "alltoall", ...).
bool parseCollectiveKind(std::string_view text, CollectiveKind& out) noexcept;

/// One operation of a grouped send/recv call (the i-th uses extra buffer i).
struct P2POp {
  bool isSend = true;
  std::int32_t peer = 0;
  std::uint64_t count = 0;  ///< elements
  friend bool operator==(const P2POp&, const P2POp&) = default;
};

/// Everything that determines a Program (the Program cache key).
struct CollectiveArgs {
  CollectiveKind kind = CollectiveKind::kAllReduce;
  std::int32_t nranks = 1;
  std::uint64_t count = 0;
  std::vector<std::uint64_t> counts;  ///< v-collectives: per-rank element counts
  core::DataType dtype = core::DataType::kFloat32;
  core::ReduceOp op = core::ReduceOp::kSum;
  std::int32_t root = 0;
  bool inPlace = false;
  /// Rank -> node (virtual or real); empty means one node. Hierarchical algorithms need > 1 node.
  std::vector<int> nodeOfRank;
  /// Load/store domains (ProgramHeader::loadStoreDomains); empty: all ranks share one.
  std::vector<std::vector<std::int32_t>> loadStoreDomains;
  /// The fabric reduces and multicasts in its switches for every rank (NVLS on an NVSwitch, SHARP on
  /// InfiniBand switches). Only the simulator sets it (from its fabric's in_switch_reduce and multicast
  /// switches); the `nvls` and `sharp` all-reduce algorithms then reduce through the switches.
  bool inNetworkReduction = false;
  /// PXN level (COPRO_PXN, docs/pxn.md): 0 off, 1 relay puts to other nodes through the local rank on the
  /// destination's rail, 2 also aggregate at the relay. Needs nodeOfRank.
  std::int32_t pxnLevel = 0;
  /// Initiation of lanes whose work stays inside a node / that reach other nodes (docs/initiation.md).
  core::Initiation scaleUpInitiation = core::Initiation::kDevice;
  core::Initiation scaleOutInitiation = core::Initiation::kDevice;
  std::uint64_t chunkBytes = 1U << 20;  ///< pipelining chunk
  /// Largest per-rank payload an algorithm may send with the LL protocol (COPRO_LL_MAX_BYTES capped by the
  /// executor's mailboxes, Executor::llMaxBytes; 0: no LL). sim::Communicator leaves it 0: LL algorithms
  /// run in the simulator when forced.
  std::uint64_t llMaxBytes = 0;
  /// Lanes an algorithm may spread independent transfers over, as NCCL spreads peers over channels (pairwise
  /// all-to-all). The real backends keep 1; sim::Communicator passes `sim.channels`.
  std::int32_t channels = 1;
  /// sendrecv only: the executing rank and its group of operations (a sendrecv Program is valid for
  /// that rank only; its peers build their own).
  std::int32_t rank = -1;
  std::vector<P2POp> p2p;
  friend bool operator==(const CollectiveArgs&, const CollectiveArgs&) = default;
};

/// A hash of every field of CollectiveArgs (for the Program cache).
std::size_t hashArgs(const CollectiveArgs& a) noexcept;
/// Size in bytes of the element type.
inline std::uint64_t elemBytes(const CollectiveArgs& a) {
  return core::dataTypeSize(a.dtype);
}

/// Cost-model constants of the planner (alpha-beta-gamma).
struct CostModel {
  double alphaUs = 2.0;         ///< per message step inside a node
  double bandwidthGBps = 10.0;  ///< point-to-point bandwidth inside a node
  double interAlphaUs = 10.0;   ///< per inter-node step
  double interBandwidthGBps = 5.0;
  double reduceGBps = 20.0;  ///< reduction throughput per rank
  double memoryGBps = 60.0;  ///< memory bandwidth shared by a load/store domain
};

/// An algorithm: name, the collective it implements, when it applies, its cost estimate, its builder.
struct Algorithm {
  std::string name;  ///< "ring", "rhd", "tree", "oneshot", "lsa", "hier", "bruck", ...
  CollectiveKind kind;
  std::string description;
  /// Empty string when the algorithm can run these args; otherwise why not (e.g. "needs > 1 node").
  std::string (*unsupportedReason)(const CollectiveArgs&);
  /// Estimated time in microseconds (alpha-beta-gamma).
  double (*estimateUs)(const CollectiveArgs&, const CostModel&);
  /// Builds the Program (per-rank generation on demand).
  std::shared_ptr<const core::ProgramSource> (*build)(const CollectiveArgs&);
};

/// Every algorithm of every collective, in a stable order.
const std::vector<Algorithm>& algorithms();
/// The algorithms of one collective.
std::vector<const Algorithm*> algorithmsFor(CollectiveKind kind);
/// Finds by name; nullptr when unknown.
const Algorithm* findAlgorithm(CollectiveKind kind, std::string_view name);
/// Builds the Program of `args` with the named algorithm; throws Error(kInvalidArgument/kUnsupported)
/// naming the known algorithms or why this one does not apply.
std::shared_ptr<const core::ProgramSource> buildProgram(const CollectiveArgs& args, std::string_view algorithm);

}  // namespace copro::collectives
