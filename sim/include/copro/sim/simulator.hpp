#pragma once
/// The discrete-event simulator (docs/design.md, "The simulator"; docs/simulator.md): runs a Program for all
/// ranks in virtual time over a topo::Fabric, with flow-level max-min fair sharing of links.
///
/// One Simulator object per run, no globals: several may run at once on different threads. Identical
/// inputs give identical results (integer picoseconds, deterministic tie-breaking).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/units.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::sim {

enum class Routing : std::uint8_t { kShortest = 0, kEcmp, kAdaptive, kRailAware };

/// Cost of starting one op for one initiation mode (proxy: a CPU progress thread per GPU posts work
/// requests; device: IBGDA-style, the GPU rings the doorbell; offload: a communication co-processor runs
/// the lane). docs/simulator.md, "Initiation cost models", gives the model and the public figures.
struct InitiationCost {
  core::Time issue{};         ///< per op, charged to the issuing lane before the op starts
  core::Time extraLatency{};  ///< added to every transfer's delivery (e.g. the proxy's hop through host memory)
  double messageRate = 0.0;   ///< ops/s per lane; 0 = unlimited
  /// ops/s of the one server all lanes of this mode on one rank share (proxy: the GPU's proxy thread;
  /// offload: the rank's co-processor); 0 = unlimited.
  double rankMessageRate = 0.0;
  /// bytes/s of that shared server (an op holds it for bytes / rankBandwidth after 1 / rankMessageRate);
  /// 0 = unlimited.
  core::Bandwidth rankBandwidth{};
  /// ops/s ceiling of a NIC for ops of this mode, shared by every lane whose transfers leave through that
  /// NIC (the first NIC on the path); ops that cross no NIC (NVLink, PCIe inside a server) are not
  /// limited. 0 = unlimited.
  double nicMessageRate = 0.0;
  bool operator==(const InitiationCost& o) const {
    return issue == o.issue && extraLatency == o.extraLatency && messageRate == o.messageRate &&
           rankMessageRate == o.rankMessageRate && rankBandwidth.bytesPerSecond() == o.rankBandwidth.bytesPerSecond() &&
           nicMessageRate == o.nicMessageRate;
  }
};

/// The GPU compute model the workload engine uses (workload.hpp; docs/simulator.md, "Compute model").
struct ComputeParams {
  std::int32_t sms = 132;     ///< SMs per GPU (default: the fabric's GPU `sms`, else H800's 132)
  double flops = 989e12;      ///< peak dense FLOP/s per GPU (H800 BF16 dense)
  std::int32_t commSms = 20;  ///< SMs a device- or proxy-mode collective occupies while in flight
  double efficiency = 1.0;    ///< default fraction of peak that a `flops` compute task reaches
};

/// Simulator parameters; `fromFabric` reads them from the fabric's `sim:` section (docs/simulator.md
/// lists every key, its unit and default).
struct SimParams {
  Routing routing = Routing::kEcmp;
  /// The network model, by registered name (`sim.network`; docs/simulator.md, "Network models"): "flow"
  /// (max-min fair sharing) or "alpha_beta" (congestion-unaware).
  std::string network = "flow";
  InitiationCost initiation[3]{};     ///< indexed by core::Initiation
  core::Bandwidth reduceBandwidth{};  ///< bytes of output per second per lane (gamma = 1 / this); 0 = free
  core::Bandwidth copyBandwidth{};    ///< local copy bytes/s per lane; 0 = free
  /// `sim.reduce_streams`: a reduce's arithmetic runs while its remote sources stream in (one fused
  /// read-add-write pass, as the CPU executors run it), so it costs max(reads, bytes / reduce_bw), not the sum.
  bool reduceStreams = false;
  std::uint64_t signalBytes = 8;  ///< wire size of a standalone signal
  std::uint64_t chunkBytes = 0;   ///< collective chunk size the tools pass to the planner; 0 = unchunked
  /// `sim.channels`: lanes per rank a simulated collective may spread its peers over (CollectiveArgs::channels)
  std::int32_t channels = 1;
  std::uint64_t ecmpSeed = 0;  ///< hash seed for ECMP
  ComputeParams compute{};     ///< used by the workload engine only
  /// `sim.moe.recv_row_cost`: GPU time per row a rank receives in a direct-path (low-latency) MoE dispatch or
  /// combine (the receive warps' unpack, or the weighted sum), after the last row lands; docs/moe.md.
  core::Time moeRecvRowCost{};
  /// `sim.moe.forward_scaleup_efficiency`: the fraction of each scale-up (NVLink) link's rate that a
  /// forward-path (normal-kernel) MoE dispatch or combine reaches: their copies run on a fixed SM budget
  /// (DeepEP's 24 SMs), not at the link's rate; in (0, 1], 1 = the link's rate; docs/validation.md.
  double moeForwardScaleUpEfficiency = 1.0;
  /// Reads fabric.simParams; throws core::Error(kInvalidArgument) naming the key (and its origin) and the
  /// nearest valid key for an unknown one.
  static SimParams fromFabric(const topo::Fabric& fabric);
};

/// Traffic over one direction of one link.
struct ChannelStats {
  std::int32_t link = -1;
  int direction = 0;
  std::uint64_t bytes = 0;
  core::Time busy{};         ///< time with at least one flow
  double utilization = 0.0;  ///< bytes / (bandwidth * makespan)
};

struct RankStats {
  std::uint64_t bytesSent = 0;      ///< payload bytes of transfers from this rank (puts, put_reduces, multicast
                                    ///< copies, gets reading from it, remote reduce/copy legs)
  std::uint64_t bytesReceived = 0;  ///< payload bytes delivered into this rank
  core::Time finish{};              ///< when the rank's last lane finished
};

/// One timeline record for traces: an op of a lane, or a flow.
struct TraceEvent {
  enum class Kind : std::uint8_t { kOp, kFlow, kLinkRate } kind = Kind::kOp;
  std::int32_t rank = -1;
  std::int32_t lane = -1;
  std::int32_t peer = -1;
  core::OpCode op = core::OpCode::kFlush;
  core::Time begin{};
  core::Time end{};
  std::uint64_t bytes = 0;
  std::int32_t channel = -1;  ///< kLinkRate: the channel
  double value = 0.0;         ///< kLinkRate: utilization in [0, 1] from `begin` on
};

struct RunOptions {
  /// Receives timeline records as they complete (nullptr: none are made).
  std::function<void(const TraceEvent&)> trace;
  /// Called now and then with (virtual time so far, events so far); for progress bars. It comes every 65,536
  /// events and also after every ~2^22 flows and channels of max-min re-solving, so a run whose events each
  /// re-solve a large component still reports (a single re-solve is not interrupted).
  std::function<void(core::Time, std::uint64_t)> progress;
  /// > 0: stop the run cleanly once this much wall time has passed (checked where `progress` is called);
  /// Result::stopped is then set and the statistics cover the virtual time reached.
  double maxWallSeconds = 0.0;
  /// rank -> GPU index of the fabric (empty: rank r on gpus()[r]).
  std::vector<std::int32_t> placement;
  /// Simulate one rank per class of identical ranks when the Program declares a rotation symmetry and the
  /// fabric's routes follow it (docs/simulator.md, "Symmetry"); the results are those of the full run. The
  /// run falls back to every rank by itself when a route breaks the symmetry. false: always every rank.
  bool symmetry = true;
};

struct Result {
  core::Time time{};  ///< makespan: last lane of any rank finished (or last delivery, if later)
  std::uint64_t events = 0;
  std::uint64_t flows = 0;
  std::uint64_t ops = 0;
  std::uint64_t bytesPut = 0;        ///< total payload bytes issued
  std::uint64_t bytesDelivered = 0;  ///< total payload bytes delivered (== bytesPut after a clean run)
  std::size_t peakActiveFlows = 0;
  std::uint64_t rateRecomputations = 0;  ///< batched max-min recomputations (one per timestamp with changes)
  std::vector<RankStats> ranks;
  std::vector<ChannelStats> channels;  ///< only channels that carried traffic, by (link, direction)
  double wallSeconds = 0.0;
  /// The run was stopped by RunOptions::maxWallSeconds: `time` is the virtual time reached, the counters
  /// cover the events so far, and some transfers and lanes did not finish.
  bool stopped = false;
  /// Per job of runConcurrently (one entry for run): when its last lane finished or its last transfer
  /// landed, from time 0 (not from the job's start).
  std::vector<core::Time> jobFinish;
  /// Ranks each simulated rank stood for (RunOptions::symmetry): 1 when every rank was simulated. The
  /// counters and statistics are those of every rank either way.
  std::int32_t symmetryMultiplicity = 1;
};

/// One Program of a concurrent run (Simulator::runConcurrently): its ranks follow the previous jobs' in
/// Result::ranks and traces.
struct Job {
  const core::ProgramSource* program = nullptr;  ///< must outlive the run
  std::vector<std::int32_t> placement;           ///< rank -> GPU index of the fabric; empty: rank r on GPU r
  core::Time start{};                            ///< when its lanes start
};

class Simulator {
 public:
  /// `fabric` must be finalized and outlive the Simulator.
  Simulator(const topo::Fabric& fabric, SimParams params);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  /// Runs one call of `program` on ranks 0..nranks-1. Throws core::Error for a Program that does not fit
  /// the fabric (more ranks than GPUs, unreachable peers) and for a deadlock (names the stuck ranks and
  /// the semaphores they wait on).
  Result run(const core::ProgramSource& program, const RunOptions& options = {});

  /// Runs several Programs at once, each on its own GPUs (they may share GPUs) and from its own start
  /// time, sharing the fabric's links: their transfers contend as one Program's would. Each job keeps its
  /// own semaphores and ranks; `options.placement` is ignored (each job has its own). Throws as run().
  Result runConcurrently(const std::vector<Job>& jobs, const RunOptions& options = {});

  /// The path (channel ids) a transfer from GPU rank `src` to GPU rank `dst` takes with the current
  /// routing (ECMP: for flow hash `flowHash`). For tests and `copro-topo`.
  std::vector<std::int32_t> route(std::int32_t src, std::int32_t dst, std::uint64_t flowHash = 0);

  [[nodiscard]] const topo::Fabric& fabric() const;
  [[nodiscard]] const SimParams& params() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Flow-level network only (no Program): each flow has a path of channels, a size and a start time;
/// returns the completion time of each (transfer end + path latency). Exposed for the sharing tests and
/// the SimGrid comparison bench.
struct FlowSpec {
  std::vector<std::int32_t> channels;
  std::uint64_t bytes = 0;
  core::Time start{};
};
std::vector<core::Time> simulateFlows(const topo::Fabric& fabric, const std::vector<FlowSpec>& flows);

}  // namespace copro::sim
