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
  const double x = ps - slack;
  if (!(x > 0.0)) return 0;
  if (x >= 9.0e18) return static_cast<std::int64_t>(std::ceil(x));
  // ceil without the libm call (the baseline x86-64 target has no rounding instruction): exact for
  // 0 < x < 2^63, where the truncation is exact.
  auto t = static_cast<std::int64_t>(x);
  if (static_cast<double>(t) < x) ++t;
  return t;
}

FlowNetwork::FlowNetwork(const topo::Fabric& fabric) : NetworkModel(fabric) {
  const std::size_t nch = numChannels();
  head_.assign(nch, -1);
  channelMark_.assign(nch, 0);
  isDirty_.assign(nch, 0);
  fill_.assign(nch, ChannelFill{});
}

std::uint32_t FlowNetwork::nextStamp(std::uint32_t& stamp, std::vector<std::uint32_t>& marks) {
  if (++stamp == 0) {  // wrapped: no mark may look current
    std::fill(marks.begin(), marks.end(), 0u);
    stamp = 1;
  }
  return stamp;
}

void FlowNetwork::markDirty(std::int32_t channel) {
  auto& d = isDirty_[static_cast<std::size_t>(channel)];
  if (d == 0) {
    d = 1;
    dirty_.push_back(channel);
  }
}

std::int32_t FlowNetwork::allocHops(std::size_t n) {
  if (n < freeHops_.size() && !freeHops_[n].empty()) {
    const std::int32_t b = freeHops_[n].back();
    freeHops_[n].pop_back();
    return b;
  }
  const auto b = static_cast<std::int32_t>(hops_.size());
  hops_.resize(hops_.size() + n);
  return b;
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
    flowMark_.push_back(0);
    fixedIn_.push_back(0);
    paths_.emplace_back();
  }
  const std::int32_t begin = allocHops(numChannels);
  FlowState& f = flows_[static_cast<std::size_t>(id)];
  const std::uint32_t version = f.version + 1;  // never reuse a (flow, version) pair of a stale event
  f = FlowState{};
  f.version = version;
  f.remaining = static_cast<double>(bytes);
  f.last = now;
  f.tag = tag;
  f.active = true;
  f.fresh = true;
  paths_[static_cast<std::size_t>(id)] = PathSpan{begin, static_cast<std::int32_t>(numChannels)};
  for (std::size_t i = 0; i < numChannels; ++i) {
    const std::int32_t ch = channels[i];
    const auto h = static_cast<std::int32_t>(static_cast<std::size_t>(begin) + i);
    Hop& hop = hops_[static_cast<std::size_t>(h)];
    hop.flow = id;
    hop.channel = ch;
    hop.prev = -1;
    hop.next = head_[static_cast<std::size_t>(ch)];
    if (hop.next >= 0) hops_[static_cast<std::size_t>(hop.next)].prev = h;
    head_[static_cast<std::size_t>(ch)] = h;
    enterChannel(ch, now, bytes);
    markDirty(ch);
  }
  ++active_;
  return id;
}

void FlowNetwork::finish(std::int32_t flow, std::int64_t now) {
  FlowState& f = flows_[static_cast<std::size_t>(flow)];
  PathSpan& span = paths_[static_cast<std::size_t>(flow)];
  // Channels are marked dirty in the order the per-flow list used to give (last hop first): the dirty order
  // decides the order of the recomputed components and so of same-time events.
  for (std::size_t i = static_cast<std::size_t>(span.len); i-- > 0;) {
    const Hop& hop = hops_[static_cast<std::size_t>(span.begin) + i];
    if (hop.prev >= 0) {
      hops_[static_cast<std::size_t>(hop.prev)].next = hop.next;
    } else {
      head_[static_cast<std::size_t>(hop.channel)] = hop.next;
    }
    if (hop.next >= 0) hops_[static_cast<std::size_t>(hop.next)].prev = hop.prev;
    leaveChannel(hop.channel, now);
    markDirty(hop.channel);
  }
  const auto len = static_cast<std::size_t>(span.len);
  if (freeHops_.size() <= len) freeHops_.resize(len + 1);
  freeHops_[len].push_back(span.begin);
  span = PathSpan{};
  f.active = false;
  ++f.version;
  freeFlows_.push_back(flow);
  --active_;
}

void FlowNetwork::recompute(std::int64_t now, std::vector<Finish>& out,
                            const std::function<void(std::int32_t, double)>* onRate) {
  if (dirty_.empty()) return;
  ++recomputations_;
  // One stamp for the whole batch: components are disjoint, so a channel or flow met once is done. Channel
  // and flow marks share the stamp; a wrap clears both.
  if (nextStamp(stamp_, channelMark_) == 1) std::fill(flowMark_.begin(), flowMark_.end(), 0u);
  const bool tracing = onRate != nullptr && *onRate;
  for (std::size_t i = 0; i < dirty_.size(); ++i) {
    const std::int32_t seed = dirty_[i];
    isDirty_[static_cast<std::size_t>(seed)] = 0;
    if (channelMark_[static_cast<std::size_t>(seed)] == stamp_) continue;
    if (load_[static_cast<std::size_t>(seed)] == 0 && !tracing) {
      channelMark_[static_cast<std::size_t>(seed)] = stamp_;  // an emptied channel: nothing to share
      continue;
    }
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
        if (flowMark_[static_cast<std::size_t>(fl)] == stamp_) continue;
        flowMark_[static_cast<std::size_t>(fl)] = stamp_;
        compFlows_.push_back(fl);
        const PathSpan span = paths_[static_cast<std::size_t>(fl)];
        const Hop* path = hops_.data() + span.begin;
        for (std::size_t k = static_cast<std::size_t>(span.len); k-- > 0;) {  // last hop first
          const std::int32_t c2 = path[k].channel;
          if (channelMark_[static_cast<std::size_t>(c2)] != stamp_) {
            channelMark_[static_cast<std::size_t>(c2)] = stamp_;
            // A channel of this flow alone leads nowhere: record it without a visit (the visit order, and
            // so the order of compFlows_, is unchanged; only the trace wants the old channel order).
            if (load_[static_cast<std::size_t>(c2)] == 1 && !tracing) {
              compChannels_.push_back(c2);
            } else {
              stack_.push_back(c2);
            }
          }
        }
      }
    }
    solveWork_ += compFlows_.size() + compChannels_.size();
    solveComponent(now, out, onRate);
  }
  dirty_.clear();
}

void FlowNetwork::heapPush(std::int32_t channel, double key) {
  fill_[static_cast<std::size_t>(channel)].heapPos = static_cast<std::int32_t>(heap_.size());
  heap_.push_back({key, channel});
}

void FlowNetwork::heapUp(std::size_t i) {
  const HeapEntry x = heap_[i];
  while (i > 0) {
    const std::size_t parent = (i - 1) / 2;
    if (!heapLess(x, heap_[parent])) break;
    heap_[i] = heap_[parent];
    fill_[static_cast<std::size_t>(heap_[i].channel)].heapPos = static_cast<std::int32_t>(i);
    i = parent;
  }
  heap_[i] = x;
  fill_[static_cast<std::size_t>(x.channel)].heapPos = static_cast<std::int32_t>(i);
}

void FlowNetwork::heapDown(std::size_t i) {
  const HeapEntry x = heap_[i];
  const std::size_t n = heap_.size();
  for (;;) {
    std::size_t c = 2 * i + 1;
    if (c >= n) break;
    if (c + 1 < n && heapLess(heap_[c + 1], heap_[c])) ++c;
    if (!heapLess(heap_[c], x)) break;
    heap_[i] = heap_[c];
    fill_[static_cast<std::size_t>(heap_[i].channel)].heapPos = static_cast<std::int32_t>(i);
    i = c;
  }
  heap_[i] = x;
  fill_[static_cast<std::size_t>(x.channel)].heapPos = static_cast<std::int32_t>(i);
}

void FlowNetwork::heapRemove(std::int32_t channel) {
  std::int32_t& pos = fill_[static_cast<std::size_t>(channel)].heapPos;
  const auto i = static_cast<std::size_t>(pos);
  pos = -1;
  const HeapEntry last = heap_.back();
  heap_.pop_back();
  if (i == heap_.size()) return;
  heap_[i] = last;
  fill_[static_cast<std::size_t>(last.channel)].heapPos = static_cast<std::int32_t>(i);
  heapUp(i);
  heapDown(static_cast<std::size_t>(fill_[static_cast<std::size_t>(last.channel)].heapPos));
}

void FlowNetwork::fillRates() {
  const std::uint32_t fixedMark = nextStamp(fillStamp_, fixedIn_);
  heap_.clear();
  for (const std::int32_t ch : compChannels_) {
    const auto c = static_cast<std::size_t>(ch);
    ChannelFill& cf = fill_[c];
    cf.remCap = capacity_[c];
    cf.unfixed = load_[c];
    cf.heapPos = -1;
    if (cf.unfixed > 1) heapPush(ch, cf.remCap / cf.unfixed);
  }
  // Channels carrying one flow: of a flow's private channels only the smallest (capacity, id) can ever pop
  // while the flow is unfixed (their keys stay at their capacities), so only that one enters the heap. The
  // pop sequence, and so every rate, is the same as with all of them, at a fraction of the heap traffic.
  for (const std::int32_t fl : compFlows_) {
    const PathSpan span = paths_[static_cast<std::size_t>(fl)];
    const Hop* path = hops_.data() + span.begin;
    std::int32_t best = -1;
    for (std::size_t k = 0; k < static_cast<std::size_t>(span.len); ++k) {
      const std::int32_t ch = path[k].channel;
      if (load_[static_cast<std::size_t>(ch)] != 1) continue;
      if (best < 0 || capacity_[static_cast<std::size_t>(ch)] < capacity_[static_cast<std::size_t>(best)] ||
          (capacity_[static_cast<std::size_t>(ch)] == capacity_[static_cast<std::size_t>(best)] && ch < best)) {
        best = ch;
      }
    }
    if (best < 0) continue;
    const ChannelFill& cf = fill_[static_cast<std::size_t>(best)];
    heapPush(best, cf.remCap / cf.unfixed);
  }
  for (std::size_t i = heap_.size() / 2; i-- > 0;) heapDown(i);
  // Progressive filling: the channel with the smallest fair share is the next bottleneck; its unfixed flows
  // get that share, which is taken from every other channel they cross. The heap pops channels in
  // (share, id) order, so the sequence of floating-point operations is fixed by the inputs.
  // Keys only rise as flows get fixed (up to rounding): a rise is recorded lazily (the stored key stays a
  // lower bound) and the channel is re-sifted when it reaches the top; a fall is sifted up at once. The pop
  // order is then exactly that of a heap kept current.
  while (!heap_.empty()) {
    const std::int32_t top = heap_[0].channel;
    const auto c = static_cast<std::size_t>(top);
    const double current = fill_[c].remCap / fill_[c].unfixed;
    if (current != heap_[0].key) {
      heap_[0].key = current;
      heapDown(0);
      continue;
    }
    heapRemove(top);
    const double share = std::max(current, capacity_[c] * 1e-12);
    for (std::int32_t h = head_[c]; h >= 0; h = hops_[static_cast<std::size_t>(h)].next) {
      const std::int32_t fl = hops_[static_cast<std::size_t>(h)].flow;
      std::uint32_t& fixed = fixedIn_[static_cast<std::size_t>(fl)];
      if (fixed == fixedMark) continue;
      fixed = fixedMark;
      flows_[static_cast<std::size_t>(fl)].newRate = share;
      const PathSpan span = paths_[static_cast<std::size_t>(fl)];
      const Hop* path = hops_.data() + span.begin;
      for (std::size_t k = static_cast<std::size_t>(span.len); k-- > 0;) {
        const auto c2 = static_cast<std::size_t>(path[k].channel);
        ChannelFill& cf = fill_[c2];
        cf.remCap = std::max(0.0, cf.remCap - share);
        --cf.unfixed;
        if (c2 == c) continue;
        if (cf.unfixed > 0) {
          const double k2 = cf.remCap / cf.unfixed;
          HeapEntry& e = heap_[static_cast<std::size_t>(cf.heapPos)];
          if (k2 < e.key) {
            e.key = k2;
            heapUp(static_cast<std::size_t>(cf.heapPos));
          }
        } else if (cf.heapPos >= 0) {
          heapRemove(static_cast<std::int32_t>(c2));
        }
      }
    }
  }
}

void FlowNetwork::solveComponent(std::int64_t now, std::vector<Finish>& out,
                                 const std::function<void(std::int32_t, double)>* onRate) {
  if (compFlows_.size() == 1) {
    // The common case (a flow alone on its links): its rate is its narrowest channel.
    const std::int32_t fl = compFlows_[0];
    const PathSpan span = paths_[static_cast<std::size_t>(fl)];
    double rate = std::numeric_limits<double>::infinity();
    for (std::size_t k = 0; k < static_cast<std::size_t>(span.len); ++k) {
      rate =
          std::min(rate, capacity_[static_cast<std::size_t>(hops_[static_cast<std::size_t>(span.begin) + k].channel)]);
    }
    for (const std::int32_t ch : compChannels_) {
      const auto c = static_cast<std::size_t>(ch);
      fill_[c].remCap = capacity_[c] - (load_[c] > 0 ? rate : 0.0);
    }
    flows_[static_cast<std::size_t>(fl)].newRate = rate;
  } else {
    fillRates();
  }
  // One pass over the flows' records: bring `remaining` up to date (the filling does not read it), then
  // re-time the flows whose rate changed.
  for (const std::int32_t fl : compFlows_) {
    FlowState& f = flows_[static_cast<std::size_t>(fl)];
    if (!f.fresh) {
      f.remaining -= f.rate * static_cast<double>(now - f.last) * 1e-12;
      if (f.remaining < 0.0) f.remaining = 0.0;
    }
    f.last = now;
    if (!f.fresh && f.newRate == f.rate) continue;  // same rate: the scheduled finish still holds
    f.fresh = false;
    f.rate = f.newRate;
    // Lock-step collectives solve many identical (bytes, rate) pairs in a row: remember the last one.
    if (f.remaining != memoBytes_ || f.rate != memoRate_) {
      memoBytes_ = f.remaining;
      memoRate_ = f.rate;
      memoPs_ = transferPs(f.remaining, f.rate);
    }
    const std::int64_t at = now + memoPs_;
    if (at == f.finishAt) continue;
    f.finishAt = at;
    ++f.version;
    out.push_back({fl, f.version, at});
  }
  if (onRate != nullptr && *onRate) {
    for (const std::int32_t ch : compChannels_) {
      const auto c = static_cast<std::size_t>(ch);
      const double used = load_[c] == 0 ? 0.0 : (capacity_[c] - fill_[c].remCap) / capacity_[c];
      (*onRate)(ch, std::clamp(used, 0.0, 1.0));
    }
  }
}

}  // namespace copro::sim::detail
