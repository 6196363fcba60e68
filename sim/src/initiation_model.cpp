/// Issue times and NIC slots of the initiation modes (initiation_model.hpp).
#include "initiation_model.hpp"

#include <algorithm>

namespace copro::sim::detail {

InitiationModel::InitiationModel(const SimParams& params, std::int32_t nranks, std::size_t fabricNodes)
    : params_(params) {
  rankFree_.assign(static_cast<std::size_t>(nranks) * 3, kNever);
  nicFree_.assign(fabricNodes, kNever);
}

bool InitiationModel::uniform() const {
  return params_.initiation[0] == params_.initiation[1] && params_.initiation[0] == params_.initiation[2];
}

std::int64_t InitiationModel::issueAt(std::int32_t rank, std::uint8_t mode, const core::Op& op, std::int64_t lastIssue,
                                      std::int64_t now) {
  const InitiationCost& ic = params_.initiation[mode];
  std::int64_t at = now + ic.issue.picoseconds();
  if (ic.messageRate > 0.0) at = std::max(at, lastIssue + intervalPs(ic.messageRate));
  if (ic.rankMessageRate > 0.0 || ic.rankBandwidth.bytesPerSecond() > 0.0) {
    // One server (the GPU's proxy thread, the rank's co-processor) takes the ops of all lanes of this mode on
    // this rank, one after the other, in the order they reach it.
    std::int64_t& free = rankFree_[static_cast<std::size_t>(rank) * 3 + mode];
    at = std::max(at, free);
    const std::uint64_t n = op.code == core::OpCode::kMulticast ? op.ranks.size() : 1;
    const std::uint64_t bytes = op.code == core::OpCode::kSignal ? 0 : op.bytes * n;
    free = at + intervalPs(ic.rankMessageRate) * static_cast<std::int64_t>(n) + costPs(bytes, ic.rankBandwidth);
  }
  return at;
}

std::int64_t InitiationModel::nicSlot(std::int32_t nic, std::uint8_t mode, std::int64_t now) {
  const InitiationCost& ic = params_.initiation[mode];
  if (nic < 0 || !(ic.nicMessageRate > 0.0)) return now;
  std::int64_t& free = nicFree_[static_cast<std::size_t>(nic)];
  const std::int64_t slot = std::max(now, free);
  free = slot + intervalPs(ic.nicMessageRate);
  return slot;
}

}  // namespace copro::sim::detail
