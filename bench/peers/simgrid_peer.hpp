#pragma once
/// SimGrid as a reference simulator for copro-sim-bench (docs/sim-bench.md): the same star platform and
/// the same flows as copro's simulator, run with SimGrid's plain max-min network model (CM02, latency and
/// bandwidth factors 1, no TCP window bound, no cross traffic), so the predicted times are comparable.
///
/// SimGrid keeps one engine per process and cannot start a second one: call at most one of the run
/// functions per process (copro-sim-bench runs each scenario in a forked child).
#include <cstdint>
#include <string>
#include <vector>

namespace copro::bench {

/// A star: `hosts` hosts, each joined to one switch by its own full-duplex link (each direction has
/// `bandwidth`), the switch adding no delay. A host-to-host transfer crosses two links: 2 x `latency`.
struct StarPlatform {
  std::int32_t hosts = 0;
  double bandwidth = 0.0;   ///< bytes/s per direction of each host link
  double latency = 0.0;     ///< seconds per link traversal
  double reduceRate = 0.0;  ///< bytes of reduction output per second per host (1/gamma); 0: reductions are free
};

/// What one SimGrid run reports.
struct PeerRun {
  double predictedSeconds = 0.0;  ///< simulated makespan
  double wallSeconds = 0.0;       ///< host time of the simulation (platform creation and run)
  std::uint64_t comms = 0;        ///< communications simulated
  std::uint64_t execs = 0;        ///< computations simulated
};

/// One transfer of the pure-network comparison: `bytes` from host `src` to host `dst` (src != dst),
/// posted at `start` seconds.
struct PeerFlow {
  std::int32_t src = 0;
  std::int32_t dst = 0;
  std::uint64_t bytes = 0;
  double start = 0.0;
};

/// True when this build has SimGrid (the peer is compiled in).
bool simgridAvailable() noexcept;

/// The SimGrid settings the peer uses, as --cfg strings (for the report and the docs).
std::vector<std::string> simgridSettings();

/// The unchunked ring all-reduce of `bytesPerRank` bytes (elements of `elemSize` bytes) on the star,
/// step for step as copro's ring Program: 2(p-1) steps, at each every host sends n/p bytes to its right
/// neighbour (one-sided: the transfer starts when the sender posts it) and, in the first p-1 steps,
/// reduces the block it received (n/p bytes at `reduceRate`). Throws core::Error(kInvalidArgument) when
/// the count is not a multiple of p elements, p < 2, or the platform is empty; kUnsupported without
/// SimGrid.
PeerRun simgridRingAllReduce(const StarPlatform& platform, std::uint64_t bytesPerRank, std::uint64_t elemSize);

/// Runs `flows` on the star and returns each one's completion time in seconds (same order); `run`
/// (optional) receives the totals.
std::vector<double> simgridFlows(const StarPlatform& platform, const std::vector<PeerFlow>& flows,
                                 PeerRun* run = nullptr);

}  // namespace copro::bench
