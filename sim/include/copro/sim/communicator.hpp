#pragma once
/// The collective-level entry point of the simulator (docs/simulator.md, "The simulated communicator"), in
/// the manner of SimGrid's s4u façade over its kernel: given a fabric and ranks on it, a sim::Communicator
/// runs a collective the way a collectives::Communicator runs it on hardware — rank -> server map and
/// NVLink load/store domains from the fabric, a topology-aware cost model, the planner (unless an
/// algorithm is forced), the algorithm's Program, the PXN and initiation transforms — and simulates it.
/// runConcurrently simulates several prepared calls at once, of one or several communicators on one
/// fabric, sharing its links.
///
/// Every tool, bench, study and workload goes through it; nothing outside sim/ turns a fabric into
/// CollectiveArgs or glues plan, build and run together.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/collectives/moe.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"
#include "copro/core/units.hpp"
#include "copro/sim/simulator.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::sim {

/// One collective call, as copro-sim's flags describe it.
struct CollectiveCall {
  collectives::CollectiveKind kind = collectives::CollectiveKind::kAllReduce;
  std::uint64_t size = 0;  ///< nccl-tests size S in bytes (collective_sizes.hpp); ignored for a barrier
  core::DataType dtype = core::DataType::kFloat32;
  core::ReduceOp op = core::ReduceOp::kSum;
  std::int32_t root = 0;
  std::string algorithm;  ///< empty: the planner chooses with the communicator's cost model
  /// Initiation of lanes that stay inside a server / reach another server (docs/initiation.md).
  core::Initiation scaleUpInitiation = core::Initiation::kDevice;
  core::Initiation scaleOutInitiation = core::Initiation::kDevice;
  std::int32_t pxn = 0;  ///< PXN level (docs/pxn.md): 0 off, 1 relay, 2 aggregate
  /// Pipelining chunk (CollectiveArgs::chunkBytes); empty: sim.chunk_size, where 0 means unchunked.
  std::optional<std::uint64_t> chunkBytes;
};

/// A call ready to simulate: what the Communicator decided and the (transformed) Program.
struct PreparedCall {
  collectives::CollectiveArgs args;
  const collectives::Algorithm* algorithm = nullptr;
  bool planned = false;     ///< chosen by the planner (false: forced by the call)
  double estimateUs = 0;    ///< the planner's alpha-beta-gamma estimate of the algorithm
  std::uint64_t bytes = 0;  ///< the size S the count really moves
  std::shared_ptr<const core::ProgramSource> program;
};

/// A MoE dispatch and combine ready to simulate (docs/moe.md).
struct PreparedMoe {
  collectives::MoePlan plan;
  std::shared_ptr<const core::ProgramSource> dispatch;
  std::shared_ptr<const core::ProgramSource> combine;
};

/// The transforms a real run applies to MoE Programs from COPRO_PXN / COPRO_INITIATION_*.
struct MoeTransforms {
  std::int32_t pxnLevel = 0;
  core::Initiation scaleUp = core::Initiation::kDevice;
  core::Initiation scaleOut = core::Initiation::kDevice;
};

/// Which ranks of the fabric a Communicator has, and with which simulator parameters.
struct CommunicatorOptions {
  std::int32_t ranks = 0;               ///< 0: every GPU of the fabric (or placement.size())
  std::vector<std::int32_t> placement;  ///< rank -> GPU index of the fabric; empty: rank r on GPU r
  std::optional<SimParams> params;      ///< empty: SimParams::fromFabric(fabric)
};

class Communicator {
 public:
  /// `fabric` must be finalized and outlive the Communicator. Throws core::Error for more ranks than GPUs
  /// or a placement outside the fabric.
  explicit Communicator(const topo::Fabric& fabric, CommunicatorOptions options = {});
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  [[nodiscard]] std::int32_t size() const { return static_cast<std::int32_t>(placement_.size()); }
  /// rank -> GPU index of the fabric.
  [[nodiscard]] const std::vector<std::int32_t>& placement() const { return placement_; }
  /// rank -> server (the fabric's host id), as hierarchical algorithms and PXN see it.
  [[nodiscard]] const std::vector<int>& nodeOfRank() const { return nodeOfRank_; }
  /// Servers the ranks span.
  [[nodiscard]] std::int32_t nodes() const { return nodes_; }
  /// NVLink-joined ranks of one server form a domain, other ranks one each; empty when all share one.
  [[nodiscard]] const std::vector<std::vector<std::int32_t>>& loadStoreDomains() const { return domains_; }
  /// The switches between the ranks reduce and multicast (CollectiveArgs::inNetworkReduction): the NVSwitch
  /// of their one NVLink domain has NVLS, or every network switch has in_switch_reduce and multicast.
  [[nodiscard]] bool inNetworkReduction() const { return inNetworkReduction_; }
  /// The planner's cost model of these ranks on this fabric (docs/copro-sim.md, "Algorithm choice").
  [[nodiscard]] const collectives::CostModel& costModel() const { return costModel_; }
  [[nodiscard]] const topo::Fabric& fabric() const { return fabric_; }
  [[nodiscard]] const SimParams& params() const;
  [[nodiscard]] Simulator& simulator();

  /// Counts, node map, domains, chunking, the planner (or the forced algorithm, checked), the Program and
  /// its transforms. Throws core::Error naming the problem (unknown or inapplicable algorithm, a root
  /// outside the ranks).
  [[nodiscard]] PreparedCall prepare(const CollectiveCall& call) const;
  /// The Program of a real communicator's call (`args` as its planner saw them, e.g. copro-perf --predict)
  /// with the named algorithm, and its transforms; nothing is taken from the fabric but the run.
  [[nodiscard]] PreparedCall prepare(const collectives::CollectiveArgs& args, const std::string& algorithm) const;
  /// The Programs of one MoE dispatch and combine of `routing`; `nodeOfRank` empty: this communicator's.
  [[nodiscard]] PreparedMoe prepareMoe(const collectives::MoeConfig& config, const collectives::MoeRouting& routing,
                                       const MoeTransforms& transforms = {},
                                       const std::vector<int>& nodeOfRank = {}) const;

  /// Simulates a Program of this communicator's ranks, alone on the fabric.
  Result run(const core::ProgramSource& program, const RunOptions& options = {});

 private:
  const topo::Fabric& fabric_;
  std::vector<std::int32_t> placement_;
  bool identity_ = false;  ///< rank r on GPU r
  std::vector<int> nodeOfRank_;
  std::int32_t nodes_ = 0;
  std::vector<std::vector<std::int32_t>> domains_;
  bool inNetworkReduction_ = false;
  std::unique_ptr<Simulator> simulator_;
  collectives::CostModel costModel_;
};

/// One Program of a concurrent run: a communicator's ranks run it from `start` on.
struct Launch {
  Communicator* communicator = nullptr;
  const core::ProgramSource* program = nullptr;
  core::Time start{};
};

/// Simulates several Programs at once on one fabric, sharing its links (the first launch's simulator
/// parameters apply to all). Result::jobFinish gives each launch's end. Throws core::Error when the
/// launches' communicators are on different fabrics.
Result runConcurrently(const std::vector<Launch>& launches, const RunOptions& options = {});

/// The planner's cost model of ranks on GPUs `placement` of `fabric` as `simulator` routes them: alpha
/// and bandwidth of the path from the first rank to the nearest rank on its server (scale-up) and to a
/// rank on another server (scale-out), plus the device initiation's per-op costs; gamma from
/// sim.reduce_bw; memory bandwidth from the GPU.
collectives::CostModel fabricCostModel(const topo::Fabric& fabric, Simulator& simulator,
                                       const std::vector<std::int32_t>& placement);

}  // namespace copro::sim
