#pragma once
/// The `alpha_beta` network model (network_model.hpp): congestion-unaware, as ASTRA-sim's analytical
/// backend. A transfer of S bytes takes S / B of the narrowest channel on its path whatever else is on
/// the path (the executor adds the path latency, alpha); nothing is shared, so no rates are solved. It
/// agrees with `flow` on a transfer alone on its path and is optimistic under contention: a trade of
/// accuracy for speed, and a bound to compare the fair-sharing model against.
#include <cstdint>
#include <vector>

#include "network_model.hpp"

namespace copro::sim::detail {

class AlphaBetaNetwork final : public NetworkModel {
 public:
  explicit AlphaBetaNetwork(const topo::Fabric& fabric) : NetworkModel(fabric) {}

  std::int32_t start(std::int64_t now, const std::int32_t* channels, std::size_t numChannels, std::uint64_t bytes,
                     std::uint32_t tag) override;
  void finish(std::int32_t flow, std::int64_t now) override;
  [[nodiscard]] std::uint32_t tagOf(std::int32_t flow) const override {
    return transfers_[static_cast<std::size_t>(flow)].tag;
  }
  void recompute(std::int64_t now, std::vector<Finish>& out,
                 const std::function<void(std::int32_t, double)>* onRate = nullptr) override;
  [[nodiscard]] std::uint64_t recomputations() const override { return recomputations_; }

 private:
  struct Transfer {
    std::vector<std::int32_t> channels;
    std::int64_t end = 0;
    std::uint32_t version = 0;
    std::uint32_t tag = 0;
  };
  std::vector<Transfer> transfers_;
  std::vector<std::int32_t> free_;
  std::vector<std::int32_t> started_;  ///< since the last recompute: their ends are not reported yet
  std::uint64_t recomputations_ = 0;
};

}  // namespace copro::sim::detail
