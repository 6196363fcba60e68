/// In-switch multicast and reduction trees (switch_trees.hpp): merging the routed paths of one multicast or
/// one reduce into the channels of one transfer where the switches replicate or combine.
#include "switch_trees.hpp"

#include <algorithm>

namespace copro::sim::detail {

SwitchTrees::SwitchTrees(const topo::Fabric& fabric) : fabric_(fabric) {
  const std::size_t nodes = fabric.nodes().size();
  replicates_.assign(nodes, 0);
  reduces_.assign(nodes, 0);
  for (std::size_t i = 0; i < nodes; ++i) {
    const topo::Node& n = fabric.nodes()[i];
    const bool isSwitch = n.kind == topo::NodeKind::kSwitch || n.kind == topo::NodeKind::kNvSwitch;
    replicates_[i] = isSwitch && n.multicast ? 1 : 0;
    reduces_[i] = isSwitch && n.inSwitchReduce ? 1 : 0;
    any_ = any_ || replicates_[i] != 0 || reduces_[i] != 0;
  }
  channelMark_.assign(fabric.links().size() * 2, 0);
  nodeMark_.assign(nodes, 0);
}

std::int32_t SwitchTrees::fromNode(std::int32_t channel) const {
  const topo::Link& l = fabric_.link(channel / 2);
  return (channel % 2) == 0 ? l.a : l.b;
}

std::int32_t SwitchTrees::toNode(std::int32_t channel) const {
  const topo::Link& l = fabric_.link(channel / 2);
  return (channel % 2) == 0 ? l.b : l.a;
}

bool SwitchTrees::markChannel(std::int32_t channel) {
  std::uint32_t& m = channelMark_[static_cast<std::size_t>(channel)];
  if (m == stamp_) return false;
  m = stamp_;
  return true;
}

void SwitchTrees::nextStamp() {
  if (++stamp_ == 0) {  // wrapped: clear the marks once every 2^32 trees
    std::fill(channelMark_.begin(), channelMark_.end(), 0);
    std::fill(nodeMark_.begin(), nodeMark_.end(), 0);
    stamp_ = 1;
  }
}

bool SwitchTrees::multicast(const Paths& paths, std::vector<std::int32_t>& out) {
  out.clear();
  nextStamp();
  bool replicated = false;
  std::size_t begin = 0;
  for (const std::size_t end : paths.ends) {
    std::size_t i = begin;
    // The shared prefix is already in the tree; the data branches off where this path leaves it.
    while (i < end && channelMark_[static_cast<std::size_t>(paths.channels[i])] == stamp_) ++i;
    if (i > begin && i < end) {
      if (replicates_[static_cast<std::size_t>(fromNode(paths.channels[i]))] == 0) return false;
      replicated = true;
    }
    for (; i < end; ++i) {
      if (markChannel(paths.channels[i])) out.push_back(paths.channels[i]);
    }
    begin = end;
  }
  return replicated;
}

bool SwitchTrees::reduce(const Paths& paths, bool withSelf, std::vector<std::int32_t>& out) {
  out.clear();
  if (paths.ends.empty() || paths.ends[0] == 0) return false;
  nextStamp();
  const std::int32_t reducer = toNode(paths.channels[paths.ends[0] - 1]);
  bool reduced = false;
  std::size_t begin = 0;
  for (const std::size_t end : paths.ends) {
    for (std::size_t i = begin; i < end; ++i) {
      const std::int32_t c = paths.channels[i];
      const std::int32_t to = toNode(c);
      if (markChannel(c)) out.push_back(c);
      if (begin > 0 && nodeMark_[static_cast<std::size_t>(to)] == stamp_) {
        // Joins the tree at `to`: the rest of its way is the tree's.
        if (to != reducer && reduces_[static_cast<std::size_t>(to)] == 0) return false;
        reduced = reduced || to != reducer;
        break;
      }
      nodeMark_[static_cast<std::size_t>(to)] = stamp_;
    }
    begin = end;
  }
  if (withSelf) {
    // The reducer's own input goes up to the last reducing switch of the first path, and joins there.
    std::size_t k = paths.ends[0];
    while (k > 0 && reduces_[static_cast<std::size_t>(toNode(paths.channels[k - 1]))] == 0) --k;
    if (k == 0) return false;
    for (std::size_t j = paths.ends[0]; j > k; --j) {
      const std::int32_t back = paths.channels[j - 1] ^ 1;
      if (markChannel(back)) out.push_back(back);
    }
    reduced = true;
  }
  return reduced;
}

}  // namespace copro::sim::detail
