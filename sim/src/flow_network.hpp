#pragma once
/// Flow-level network model: active flows over directed channels share bandwidth max-min fairly
/// (progressive filling). Changes (flow starts and ends) only mark channels dirty; `recompute` then
/// re-solves the connected components (flows <-> channels) that contain a dirty channel, once per batch.
///
/// Storage is index-based and recycled (flows, hop blocks, scratch vectors), so a
/// long run allocates nothing per flow once the pools have grown. The solver's per-flow and per-channel
/// state lives in dense arrays (docs/simulator.md, "Engine data layout"): re-solving a component of
/// thousands of flows is bound by the memory it touches, not by arithmetic.
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
  /// What the executor reads of a flow (its rate, its finish); the solver's hot per-flow data is kept apart
  /// in dense arrays (flowMark_, fixedIn_, paths_), so a search over a large component reads 4 to 8 bytes
  /// per flow instead of a 64-byte record.
  struct FlowState {
    double remaining = 0.0;  ///< bytes
    double rate = 0.0;       ///< bytes per second
    double newRate = 0.0;
    std::int64_t last = 0;  ///< when `remaining` was last brought up to date
    std::int64_t finishAt = -1;
    std::uint32_t version = 0;
    std::uint32_t tag = 0;
    bool active = false;
    bool fresh = false;  ///< started since the last recompute
  };
  /// A flow's hops are hops_[begin, begin + len), in path order.
  struct PathSpan {
    std::int32_t begin = -1;
    std::int32_t len = 0;
  };
  /// Membership of one flow in one channel's list (doubly linked per channel, newest first; a flow's hops
  /// are contiguous, so walking a flow's channels reads one cache line or two). Insertion and removal are
  /// O(1) and keep the order, which decides the order of a component's flows and so of same-time finishes.
  struct Hop {
    std::int32_t flow = -1;
    std::int32_t channel = -1;
    std::int32_t prev = -1;
    std::int32_t next = -1;
  };
  /// A channel's state during one progressive filling (one cache line holds what a fixed flow updates).
  struct ChannelFill {
    double remCap = 0.0;
    std::int32_t unfixed = 0;
    std::int32_t heapPos = -1;  ///< position in heap_, or -1
  };
  /// A heap entry carries its key (fair share), so comparisons read no other array.
  struct HeapEntry {
    double key;
    std::int32_t channel;
  };

  void markDirty(std::int32_t channel);
  std::int32_t allocHops(std::size_t n);
  /// Next epoch of a stamp array (marks of a search or of a filling); clears the array when it wraps.
  static std::uint32_t nextStamp(std::uint32_t& stamp, std::vector<std::uint32_t>& marks);
  /// Progressive filling over compChannels_/compFlows_: sets every flow's newRate and its channels' remCap.
  void fillRates();
  void solveComponent(std::int64_t now, std::vector<Finish>& out,
                      const std::function<void(std::int32_t, double)>* onRate);
  // Indexed binary min-heap of channels by (fair share, channel id): one entry per channel, updated in
  // place, so the filling pops exactly the channels a lazy heap would, without stale entries.
  [[nodiscard]] static bool heapLess(const HeapEntry& x, const HeapEntry& y) {
    return x.key != y.key ? x.key < y.key : x.channel < y.channel;
  }
  void heapPush(std::int32_t channel, double key);
  void heapUp(std::size_t i);
  void heapDown(std::size_t i);
  void heapRemove(std::int32_t channel);

  std::vector<std::int32_t> head_;  ///< per channel: its newest hop, or -1
  std::vector<std::uint32_t> channelMark_;
  std::vector<std::uint8_t> isDirty_;
  std::vector<ChannelFill> fill_;
  std::vector<HeapEntry> heap_;

  std::vector<FlowState> flows_;
  std::vector<std::uint32_t> flowMark_;  ///< per flow: stamp_ when the current search met it
  std::vector<std::uint32_t> fixedIn_;   ///< per flow: fillStamp_ when the current filling fixed its rate
  std::vector<PathSpan> paths_;          ///< per flow
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
  std::uint32_t fillStamp_ = 0;
  std::uint64_t recomputations_ = 0;
};

}  // namespace copro::sim::detail
