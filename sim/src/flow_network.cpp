/// Max-min fair sharing by progressive filling, confined to the components a batch of changes touched.
#include "flow_network.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace copro::sim::detail {

std::int64_t transferPs(double bytes, double bytesPerSecond) {
  if (!(bytes > 0.0)) return 0;
  const double ps = bytes / bytesPerSecond * 1e12;
  // The quotient carries a few ulps of noise; without the slack an exact 2'000'000 ps could become 2'000'001.
  const double slack = ps * 1e-12 + 1e-6;
  const double t = std::ceil(ps - slack);
  return t < 0.0 ? 0 : static_cast<std::int64_t>(t);
}

FlowNetwork::FlowNetwork(const topo::Fabric& fabric) {
  const std::size_t nch = 2 * fabric.links().size();
  capacity_.resize(nch);
  for (std::size_t l = 0; l < fabric.links().size(); ++l) {
    capacity_[2 * l] = fabric.links()[l].bandwidth.bytesPerSecond();
    capacity_[2 * l + 1] = capacity_[2 * l];
  }
  head_.assign(nch, -1);
  load_.assign(nch, 0);
  busySince_.assign(nch, 0);
  totals_.assign(nch, ChannelTotals{});
  channelMark_.assign(nch, 0);
  isDirty_.assign(nch, 0);
  remCap_.assign(nch, 0.0);
  unfixed_.assign(nch, 0);
  heapVersion_.assign(nch, 0);
}

void FlowNetwork::markDirty(std::int32_t channel) {
  auto& d = isDirty_[static_cast<std::size_t>(channel)];
  if (d == 0) {
    d = 1;
    dirty_.push_back(channel);
  }
}

std::int32_t FlowNetwork::start(std::int64_t now, const std::int32_t* channels, std::size_t numChannels,
                                std::uint64_t bytes, std::uint32_t tag) {
  std::int32_t id;
  if (!freeFlows_.empty()) {
    id = freeFlows_.back();
    freeFlows_.pop_back();
  } else {
    id = static_cast<std::int32_t>(flows_.size());
    flows_.emplace_back();
  }
  FlowState& f = flows_[static_cast<std::size_t>(id)];
  const std::uint32_t version = f.version + 1;  // never reuse a (flow, version) pair of a stale event
  f = FlowState{};
  f.version = version;
  f.remaining = static_cast<double>(bytes);
  f.last = now;
  f.tag = tag;
  f.active = true;
  f.fresh = true;
  for (std::size_t i = 0; i < numChannels; ++i) {
    const std::int32_t ch = channels[i];
    std::int32_t h;
    if (freeHop_ >= 0) {
      h = freeHop_;
      freeHop_ = hops_[static_cast<std::size_t>(h)].nextInFlow;
    } else {
      h = static_cast<std::int32_t>(hops_.size());
      hops_.emplace_back();
    }
    Hop& hop = hops_[static_cast<std::size_t>(h)];
    hop.flow = id;
    hop.channel = ch;
    hop.prev = -1;
    hop.next = head_[static_cast<std::size_t>(ch)];
    if (hop.next >= 0) hops_[static_cast<std::size_t>(hop.next)].prev = h;
    head_[static_cast<std::size_t>(ch)] = h;
    hop.nextInFlow = f.firstHop;
    f.firstHop = h;
    auto& n = load_[static_cast<std::size_t>(ch)];
    if (n++ == 0) busySince_[static_cast<std::size_t>(ch)] = now;
    totals_[static_cast<std::size_t>(ch)].bytes += bytes;
    markDirty(ch);
  }
  ++active_;
  return id;
}

void FlowNetwork::finish(std::int32_t flow, std::int64_t now) {
  FlowState& f = flows_[static_cast<std::size_t>(flow)];
  std::int32_t h = f.firstHop;
  while (h >= 0) {
    Hop& hop = hops_[static_cast<std::size_t>(h)];
    const std::int32_t next = hop.nextInFlow;
    const auto ch = static_cast<std::size_t>(hop.channel);
    if (hop.prev >= 0) {
      hops_[static_cast<std::size_t>(hop.prev)].next = hop.next;
    } else {
      head_[ch] = hop.next;
    }
    if (hop.next >= 0) hops_[static_cast<std::size_t>(hop.next)].prev = hop.prev;
    if (--load_[ch] == 0) totals_[ch].busy += now - busySince_[ch];
    markDirty(hop.channel);
    hop.nextInFlow = freeHop_;
    freeHop_ = h;
    h = next;
  }
  f.firstHop = -1;
  f.active = false;
  ++f.version;
  freeFlows_.push_back(flow);
  --active_;
}

void FlowNetwork::recompute(std::int64_t now, std::vector<Finish>& out,
                            const std::function<void(std::int32_t, double)>* onRate) {
  if (dirty_.empty()) return;
  ++recomputations_;
  ++stamp_;
  // One stamp for the whole batch: components are disjoint, so a channel or flow met once is done.
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    const std::int32_t seed = dirty_[i];
    isDirty_[static_cast<std::size_t>(seed)] = 0;
    if (channelMark_[static_cast<std::size_t>(seed)] == stamp_) continue;
    compChannels_.clear();
    compFlows_.clear();
    stack_.clear();
    channelMark_[static_cast<std::size_t>(seed)] = stamp_;
    stack_.push_back(seed);
    while (!stack_.empty()) {
      const std::int32_t ch = stack_.back();
      stack_.pop_back();
      compChannels_.push_back(ch);
      for (std::int32_t h = head_[static_cast<std::size_t>(ch)]; h >= 0; h = hops_[static_cast<std::size_t>(h)].next) {
        const std::int32_t fl = hops_[static_cast<std::size_t>(h)].flow;
        FlowState& f = flows_[static_cast<std::size_t>(fl)];
        if (f.mark == stamp_) continue;
        f.mark = stamp_;
        compFlows_.push_back(fl);
        for (std::int32_t g = f.firstHop; g >= 0; g = hops_[static_cast<std::size_t>(g)].nextInFlow) {
          const std::int32_t c2 = hops_[static_cast<std::size_t>(g)].channel;
          if (channelMark_[static_cast<std::size_t>(c2)] != stamp_) {
            channelMark_[static_cast<std::size_t>(c2)] = stamp_;
            stack_.push_back(c2);
          }
        }
      }
    }
    solveComponent(now, out, onRate);
  }
  dirty_.clear();
}

void FlowNetwork::fillRates() {
  const auto greater = [](const HeapEntry& x, const HeapEntry& y) {
    return x.share != y.share ? x.share > y.share : x.channel > y.channel;
  };
  heap_.clear();
  for (const std::int32_t ch : compChannels_) {
    const auto c = static_cast<std::size_t>(ch);
    remCap_[c] = capacity_[c];
    unfixed_[c] = load_[c];
    ++heapVersion_[c];
    if (unfixed_[c] > 0) heap_.push_back({remCap_[c] / unfixed_[c], ch, heapVersion_[c]});
  }
  std::make_heap(heap_.begin(), heap_.end(), greater);
  // Progressive filling: the channel with the smallest fair share is the next bottleneck; its unfixed flows
  // get that share. Fixing a flow only raises the shares of its other channels, so stale entries can wait in
  // the heap and be skipped by version.
  while (!heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end(), greater);
    const HeapEntry e = heap_.back();
    heap_.pop_back();
    const auto c = static_cast<std::size_t>(e.channel);
    if (e.version != heapVersion_[c] || unfixed_[c] == 0) continue;
    const double share = std::max(remCap_[c] / unfixed_[c], capacity_[c] * 1e-12);
    for (std::int32_t h = head_[c]; h >= 0; h = hops_[static_cast<std::size_t>(h)].next) {
      FlowState& f = flows_[static_cast<std::size_t>(hops_[static_cast<std::size_t>(h)].flow)];
      if (f.fixed) continue;
      f.fixed = true;
      f.newRate = share;
      for (std::int32_t g = f.firstHop; g >= 0; g = hops_[static_cast<std::size_t>(g)].nextInFlow) {
        const auto c2 = static_cast<std::size_t>(hops_[static_cast<std::size_t>(g)].channel);
        remCap_[c2] = std::max(0.0, remCap_[c2] - share);
        --unfixed_[c2];
        if (c2 != c && unfixed_[c2] > 0) {
          ++heapVersion_[c2];
          heap_.push_back({remCap_[c2] / unfixed_[c2], static_cast<std::int32_t>(c2), heapVersion_[c2]});
          std::push_heap(heap_.begin(), heap_.end(), greater);
        }
      }
    }
  }
}

void FlowNetwork::solveComponent(std::int64_t now, std::vector<Finish>& out,
                                 const std::function<void(std::int32_t, double)>* onRate) {
  for (const std::int32_t fl : compFlows_) {
    FlowState& f = flows_[static_cast<std::size_t>(fl)];
    if (!f.fresh) {
      f.remaining -= f.rate * static_cast<double>(now - f.last) * 1e-12;
      if (f.remaining < 0.0) f.remaining = 0.0;
    }
    f.last = now;
    f.fixed = false;
  }
  if (compFlows_.size() == 1) {
    // The common case (a flow alone on its links): its rate is its narrowest channel.
    FlowState& f = flows_[static_cast<std::size_t>(compFlows_[0])];
    double rate = std::numeric_limits<double>::infinity();
    for (std::int32_t g = f.firstHop; g >= 0; g = hops_[static_cast<std::size_t>(g)].nextInFlow) {
      rate = std::min(rate, capacity_[static_cast<std::size_t>(hops_[static_cast<std::size_t>(g)].channel)]);
    }
    for (const std::int32_t ch : compChannels_) {
      const auto c = static_cast<std::size_t>(ch);
      remCap_[c] = capacity_[c] - (load_[c] > 0 ? rate : 0.0);
    }
    f.newRate = rate;
  } else {
    fillRates();
  }
  for (const std::int32_t fl : compFlows_) {
    FlowState& f = flows_[static_cast<std::size_t>(fl)];
    if (!f.fresh && f.newRate == f.rate) continue;  // same rate: the scheduled finish still holds
    f.fresh = false;
    f.rate = f.newRate;
    const std::int64_t at = now + transferPs(f.remaining, f.rate);
    if (at == f.finishAt) continue;
    f.finishAt = at;
    ++f.version;
    out.push_back({fl, f.version, at});
  }
  if (onRate != nullptr && *onRate) {
    for (const std::int32_t ch : compChannels_) {
      const auto c = static_cast<std::size_t>(ch);
      const double used = load_[c] == 0 ? 0.0 : (capacity_[c] - remCap_[c]) / capacity_[c];
      (*onRate)(ch, std::clamp(used, 0.0, 1.0));
    }
  }
}

}  // namespace copro::sim::detail
