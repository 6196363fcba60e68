#pragma once
/// Measures this host and describes it as a topology (`copro-topo probe`, `copro-perf --predict`; docs/topologies.md,
/// "Probing this host"): ranks are threads or processes of one machine, so "links" are the memory system as one
/// copying core sees it, and the simulator's reduce/copy rates are what one core reduces and copies while the
/// other ranks do the same.
#include <cstdint>
#include <string>

#include "copro/topologies/fabric.hpp"

namespace copro::topo {

/// What to measure.
struct ProbeOptions {
  std::int32_t ranks = 0;                   ///< endpoints of the topology; 0: one per core
  std::uint64_t bytesPerThread = 32 << 20;  ///< working set of each copying/reducing thread
  std::int32_t repetitions = 3;             ///< best of this many timings of each bandwidth
  std::int32_t roundTrips = 20000;          ///< signal round trips timed (the median of 5 batches is kept)
  bool crossProcess = true;                 ///< also time a round trip between two processes (fork)
};

/// The measured figures. Bandwidths are bytes moved per second as a memcpy counts them (one byte copied is one
/// byte read plus one byte written), reductions count output bytes.
struct ProbeResult {
  std::string hostName;
  std::int32_t cores = 0;
  std::int32_t ranks = 0;
  double copyOneCore = 0;   ///< B/s: one thread copying alone
  double copyAllRanks = 0;  ///< B/s: the sum over `ranks` threads copying at once
  /// Output B/s of the CPU executors' fused reduce + multicast pass (core::reduceToMany over max(2, ranks)
  /// float inputs into as many outputs, out of place), one thread alone; then all ranks' threads at once.
  double reduceOneCore = 0;
  double reduceAllRanks = 0;
  double threadRoundTripNs = 0;   ///< signal and answer between two threads (atomics, spinning)
  double processRoundTripNs = 0;  ///< the same between two processes over shared memory; 0 when not measured
  double opOverheadNs = 0;        ///< per-op cost of dispatching tiny ops (indirect call, 64-B copy, signal)

  /// Per-rank figures of the model (docs/topologies.md): each rank's share of the concurrent copy and reduce
  /// rates, and the one-way latency of a signal split over the two links of a path.
  [[nodiscard]] double linkBandwidth() const;
  [[nodiscard]] double reduceBandwidth() const;
  [[nodiscard]] double linkLatencyNs() const;
};

/// Measures this host (about a second with the defaults). Throws core::Error(kInvalidArgument) for
/// ranks < 0 or a working set under 4 KiB.
ProbeResult probeHost(const ProbeOptions& options = {});

/// The topology of a probe as YAML for the `graph` builder: `ranks` GPU endpoints ("rank<i>", host 0) each
/// linked to one `host` node ("memory") at linkBandwidth() and linkLatencyNs(), and a `sim:` section with
/// copy_bw, reduce_bw, chunk_size and the initiation issue cost; the measured figures are comments.
std::string probeTopologyYaml(const ProbeResult& probe, std::uint64_t chunkBytes = 1U << 20);

/// The fabric of probeTopologyYaml (built through the loader's graph builder, so it is what the file gives).
Fabric probeFabric(const ProbeResult& probe, std::uint64_t chunkBytes = 1U << 20);

}  // namespace copro::topo
