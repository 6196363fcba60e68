#pragma once
/// In-switch multicast and reduction trees (docs/simulator.md, "In-switch reduction and multicast"). Given the
/// routed paths of one multicast (source -> each target) or one reduce (each remote source -> the reducer),
/// SwitchTrees merges them into the channels of a single transfer when switches with `multicast` (resp.
/// `in_switch_reduce`) replicate (resp. combine) the data where the paths meet: each channel of the union
/// then carries the bytes once, as NVLS on an NVSwitch and SHARP on InfiniBand switches do. A merge at a
/// node that cannot replicate or reduce (a NIC, a PCIe switch) makes the tree invalid: the caller keeps one
/// transfer per peer.
#include <cstdint>
#include <vector>

#include "copro/topologies/fabric.hpp"

namespace copro::sim::detail {

class SwitchTrees {
 public:
  explicit SwitchTrees(const topo::Fabric& fabric);

  /// True when some switch of the fabric replicates or reduces (otherwise no tree is ever built).
  [[nodiscard]] bool any() const { return any_; }

  /// Paths of one op, each a list of directed channels (path i is channels[ends[i-1], ends[i])).
  struct Paths {
    std::vector<std::int32_t> channels;
    std::vector<std::size_t> ends;
    void clear() {
      channels.clear();
      ends.clear();
    }
  };

  /// The channels of a multicast from one source along `paths`, replicated where they branch; false (and
  /// `out` unspecified) when a branch point cannot replicate or no switch replicates at all.
  bool multicast(const Paths& paths, std::vector<std::int32_t>& out);
  /// The channels of a reduce into the end of `paths` (every path ends at the reducer): each later path
  /// joins the tree at the first node it shares with it, which must reduce (or be the reducer). With
  /// `withSelf` the reducer's own contribution climbs to the last reducing switch of the first path, as
  /// NVLS's multimem.ld_reduce and a SHARP aggregation tree read every member through the switch. False
  /// when a join cannot reduce or no switch reduces at all.
  bool reduce(const Paths& paths, bool withSelf, std::vector<std::int32_t>& out);

 private:
  [[nodiscard]] std::int32_t fromNode(std::int32_t channel) const;
  [[nodiscard]] std::int32_t toNode(std::int32_t channel) const;
  [[nodiscard]] bool markChannel(std::int32_t channel);  ///< true when newly marked
  void nextStamp();

  const topo::Fabric& fabric_;
  std::vector<std::uint8_t> replicates_;  ///< per node
  std::vector<std::uint8_t> reduces_;     ///< per node
  std::vector<std::uint32_t> channelMark_;
  std::vector<std::uint32_t> nodeMark_;
  std::uint32_t stamp_ = 0;
  bool any_ = false;
};

}  // namespace copro::sim::detail
