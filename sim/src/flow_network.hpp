#pragma once
/// Flow-level network model: active flows over directed channels share bandwidth max-min fairly
/// (progressive filling). Changes (flow starts and ends) only mark channels dirty; `recompute` then
/// re-solves the connected components (flows <-> channels) that contain a dirty channel, once per batch.
///
/// Storage is index-based and recycled (flows, per-channel membership nodes, scratch vectors), so a long
/// run allocates nothing per flow once the pools have grown.
#include <cstdint>
#include <functional>
#include <vector>

#include "copro/topologies/fabric.hpp"
#include "network_model.hpp"

namespace copro::sim::detail {

/// The `flow` network model (network_model.hpp), the default.
class FlowNetwork final : public NetworkModel {
 public:
  explicit FlowNetwork(const topo::Fabric& fabric);

  /// Starts a flow of `bytes` (> 0) over `channels` (>= 1) at `now`; `tag` is the caller's (returned by
  /// tagOf). Marks its channels dirty; the rates are set by the next recompute().
  std::int32_t start(std::int64_t now, const std::int32_t* channels, std::size_t numChannels, std::uint64_t bytes,
                     std::uint32_t tag) override;
  /// Removes a flow whose transfer ended at `now` (its kFlowFinish event with the current version fired).
  void finish(std::int32_t flow, std::int64_t now) override;
  [[nodiscard]] bool isCurrent(std::int32_t flow, std::uint32_t version) const {
    const FlowState& f = flows_[static_cast<std::size_t>(flow)];
    return f.active && f.version == version;
  }
  [[nodiscard]] std::uint32_t tagOf(std::int32_t flow) const override {
    return flows_[static_cast<std::size_t>(flow)].tag;
  }

  /// The flow's current rate in bytes/s, as set by the last recompute() (the reference tests compare it).
  [[nodiscard]] double rateOf(std::int32_t flow) const { return flows_[static_cast<std::size_t>(flow)].rate; }
  [[nodiscard]] bool dirty() const { return !dirty_.empty(); }
  /// Re-solves every component touched since the last call; appends the flows whose finish time changed.
  /// `onRate(channel, utilization)` (optional) receives the new load of every channel of those components.
  void recompute(std::int64_t now, std::vector<Finish>& out,
                 const std::function<void(std::int32_t, double)>* onRate = nullptr) override;
  [[nodiscard]] std::uint64_t recomputations() const override { return recomputations_; }

 private:
  struct FlowState {
    double remaining = 0.0;  ///< bytes
    double rate = 0.0;       ///< bytes per second
    double newRate = 0.0;
    std::int64_t last = 0;  ///< when `remaining` was last brought up to date
    std::int64_t finishAt = -1;
    std::uint32_t version = 0;
    std::uint32_t tag = 0;
    std::uint32_t mark = 0;
    std::int32_t hopBegin = -1;  ///< the flow's hops are hops_[hopBegin, hopBegin + hopLen), in path order
    std::uint16_t hopLen = 0;
    bool active = false;
    bool fixed = false;
    bool fresh = false;  ///< started since the last recompute
  };
  /// Membership of one flow in one channel's list (doubly linked per channel; a flow's hops are contiguous,
  /// so walking a flow's channels reads one cache line or two).
  struct Hop {
    std::int32_t flow = -1;
    std::int32_t channel = -1;
    std::int32_t prev = -1;
    std::int32_t next = -1;
  };

  void markDirty(std::int32_t channel);
  std::int32_t allocHops(std::size_t n);
  /// Progressive filling over compChannels_/compFlows_: sets every flow's newRate and remCap_.
  void fillRates();
  void solveComponent(std::int64_t now, std::vector<Finish>& out,
                      const std::function<void(std::int32_t, double)>* onRate);
  // Indexed binary min-heap of channels by (fair share, channel id): one entry per channel, updated in
  // place, so the filling pops exactly the channels a lazy heap would, without stale entries.
  [[nodiscard]] bool heapLess(std::int32_t x, std::int32_t y) const {
    const double kx = key_[static_cast<std::size_t>(x)];
    const double ky = key_[static_cast<std::size_t>(y)];
    return kx != ky ? kx < ky : x < y;
  }
  void heapUp(std::size_t i);
  void heapDown(std::size_t i);
  void heapRemove(std::int32_t channel);

  std::vector<std::int32_t> head_;
  std::vector<std::uint32_t> channelMark_;
  std::vector<std::uint8_t> isDirty_;
  std::vector<double> remCap_;
  std::vector<std::int32_t> unfixed_;
  std::vector<double> key_;            ///< heap key (fair share) per channel
  std::vector<std::int32_t> heapPos_;  ///< position in heap_, or -1
  std::vector<std::int32_t> heap_;     ///< channels

  std::vector<FlowState> flows_;
  std::vector<std::int32_t> freeFlows_;
  std::vector<Hop> hops_;
  std::vector<std::vector<std::int32_t>> freeHops_;  ///< free hop blocks by length

  std::vector<std::int32_t> dirty_;
  std::vector<std::int32_t> stack_;
  std::vector<std::int32_t> compChannels_;
  std::vector<std::int32_t> compFlows_;
  double memoBytes_ = -1.0;  ///< last transferPs(memoBytes_, memoRate_) = memoPs_
  double memoRate_ = -1.0;
  std::int64_t memoPs_ = 0;
  std::uint32_t stamp_ = 0;
  std::uint64_t recomputations_ = 0;
};

}  // namespace copro::sim::detail
