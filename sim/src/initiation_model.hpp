#pragma once
/// The initiation cost model of the executor (docs/simulator.md, "Initiation cost models"): what starting
/// an op costs in each initiation mode — the per-op issue cost, the lane's message-rate spacing, the one
/// server all lanes of a mode on a rank share (a proxy thread, a co-processor), the NIC's message rate and
/// the extra latency of the mode's path. It keeps the shared servers' and NICs' next free times; the lane
/// state machine (simulator.cpp) asks it when an op may issue and when a transfer may enter the network.
#include <cstdint>
#include <limits>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/sim/simulator.hpp"
#include "network_model.hpp"

namespace copro::sim::detail {

/// A time before anything happens (a lane that has not issued yet).
inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::min() / 4;

/// Picoseconds that `bytes` take at `bw`; 0 when either is 0 (free).
inline std::int64_t costPs(std::uint64_t bytes, const core::Bandwidth& bw) {
  if (bw.bytesPerSecond() <= 0.0 || bytes == 0) return 0;
  return transferPs(static_cast<double>(bytes), bw.bytesPerSecond());
}

/// Picoseconds between two events at `rate` per second; 0 when unlimited.
inline std::int64_t intervalPs(double rate) {
  if (!(rate > 0.0)) return 0;
  return transferPs(1.0, rate);
}

class InitiationModel {
 public:
  InitiationModel(const SimParams& params, std::int32_t nranks, std::size_t fabricNodes);

  /// True when every mode costs the same (the executor then need not ask lanes for their modes).
  [[nodiscard]] bool uniform() const;
  [[nodiscard]] const InitiationCost& cost(std::uint8_t mode) const { return params_.initiation[mode]; }

  /// When network op `op` of a lane of `mode` on `rank`, fetched at `now`, may issue: after the per-op
  /// issue cost, one message-rate interval after the lane's last issue, and when the rank's shared server
  /// of this mode is free (which it then holds for the op).
  std::int64_t issueAt(std::int32_t rank, std::uint8_t mode, const core::Op& op, std::int64_t lastIssue,
                       std::int64_t now);
  /// When a transfer of `mode` that reaches NIC `nic` (a fabric node; -1: none) at `now` may enter the
  /// network: the NIC takes one op per 1 / nic_message_rate, in the order the ops reach it.
  std::int64_t nicSlot(std::int32_t nic, std::uint8_t mode, std::int64_t now);

 private:
  const SimParams& params_;
  std::vector<std::int64_t> rankFree_;  ///< per (rank, mode): when the shared proxy/co-processor is free
  std::vector<std::int64_t> nicFree_;   ///< per fabric node: when a NIC can take its next op
};

}  // namespace copro::sim::detail
