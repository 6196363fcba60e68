/// Routing rules of docs/simulator.md: NVLink inside an NVLink domain, PCIe inside a server, own NIC across
/// the network, and the slow path through the server to another NIC when the own NIC cannot reach the peer.
#include "router.hpp"

#include <algorithm>
#include <numeric>

#include "copro/core/status.hpp"

namespace copro::sim::detail {

namespace {

using topo::LinkKind;
using topo::NodeKind;

constexpr std::uint16_t kUnreached = 0xFFFF;
constexpr std::size_t kMaxSegments = std::size_t{1} << 20;    // cached server-local paths
constexpr std::size_t kMaxDistBytes = std::size_t{64} << 20;  // cached switch distance tables

std::uint64_t mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

std::uint64_t hashOf(std::uint64_t seed, std::int32_t src, std::int32_t dst, std::uint64_t flowHash, std::int32_t at) {
  std::uint64_t h = mix(seed);
  h = mix(h ^ static_cast<std::uint32_t>(src));
  h = mix(h ^ (static_cast<std::uint64_t>(static_cast<std::uint32_t>(dst)) << 1));
  h = mix(h ^ flowHash);
  return mix(h ^ static_cast<std::uint32_t>(at));
}

std::int32_t findRoot(std::vector<std::int32_t>& parent, std::int32_t x) {
  while (parent[static_cast<std::size_t>(x)] != x) {
    parent[static_cast<std::size_t>(x)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(x)])];
    x = parent[static_cast<std::size_t>(x)];
  }
  return x;
}

}  // namespace

Router::Router(const topo::Fabric& fabric, Routing routing, std::uint64_t seed)
    : fabric_(fabric), routing_(routing), seed_(seed) {
  const auto numNodes = fabric.nodes().size();
  const auto& gpus = fabric.gpus();
  switchLink_.assign(numNodes, -1);
  switchIndex_.assign(numNodes, -1);
  switchComp_.assign(numNodes, -1);
  dist_.assign(numNodes, -1);
  std::int32_t numSwitches = 0;
  for (std::size_t v = 0; v < numNodes; ++v) {
    if (fabric.nodes()[v].kind == NodeKind::kSwitch) switchIndex_[v] = numSwitches++;
  }
  // Switch-graph components: NICs in different components (planes, rails of a rail-only network) cannot
  // reach each other through the network.
  std::vector<std::int32_t> parent(numNodes);
  std::iota(parent.begin(), parent.end(), 0);
  for (const topo::Link& l : fabric.links()) {
    if (switchIndex_[static_cast<std::size_t>(l.a)] >= 0 && switchIndex_[static_cast<std::size_t>(l.b)] >= 0) {
      parent[static_cast<std::size_t>(findRoot(parent, l.a))] = findRoot(parent, l.b);
    }
  }
  for (std::size_t v = 0; v < numNodes; ++v) {
    const auto node = static_cast<std::int32_t>(v);
    if (switchIndex_[v] >= 0) {
      switchComp_[v] = findRoot(parent, node);
      continue;
    }
    const NodeKind kind = fabric.nodes()[v].kind;
    if (kind != NodeKind::kNic && kind != NodeKind::kGpu) continue;
    for (const std::int32_t lk : fabric.linksOf(node)) {
      const std::int32_t other = fabric.peer(lk, node);
      if (switchIndex_[static_cast<std::size_t>(other)] >= 0) {
        switchLink_[v] = lk;
        switchComp_[v] = findRoot(parent, other);
        break;
      }
    }
  }
  // Per switch, its links to other switches with the peer's switch index, in the switch's link order (the
  // order equal-cost choices are made in); the network walk reads only these.
  switchNbrs_.assign(static_cast<std::size_t>(numSwitches), {});
  for (std::size_t v = 0; v < numNodes; ++v) {
    const std::int32_t si = switchIndex_[v];
    if (si < 0) continue;
    for (const std::int32_t lk : fabric.linksOf(static_cast<std::int32_t>(v))) {
      const std::int32_t pi = switchIndex_[static_cast<std::size_t>(fabric.peer(lk, static_cast<std::int32_t>(v)))];
      if (pi >= 0) switchNbrs_[static_cast<std::size_t>(si)].push_back({lk, pi});
    }
  }
  // NVLink components: GPUs joined by no chain of NVLink links never share an NVLink path, so route() skips
  // the NVLink search for them (it would fail; on multi-server fabrics that is most GPU pairs).
  std::iota(parent.begin(), parent.end(), 0);
  for (const topo::Link& l : fabric.links()) {
    if (l.kind == LinkKind::kNvLink) parent[static_cast<std::size_t>(findRoot(parent, l.a))] = findRoot(parent, l.b);
  }
  nvComp_.resize(gpus.size());
  for (std::size_t r = 0; r < gpus.size(); ++r) nvComp_[r] = findRoot(parent, gpus[r]);
  nicsOfHost_.assign(static_cast<std::size_t>(std::max(fabric.numHosts(), 0)), {});
  for (std::size_t v = 0; v < numNodes; ++v) {
    const topo::Node& nd = fabric.nodes()[v];
    if (nd.kind == NodeKind::kNic && nd.host >= 0) {
      nicsOfHost_[static_cast<std::size_t>(nd.host)].push_back(static_cast<std::int32_t>(v));
    }
  }
  hostOf_.resize(numNodes);
  for (std::size_t v = 0; v < numNodes; ++v) hostOf_[v] = fabric.nodes()[v].host;
  // Per directed channel: its link's latency plus the forwarding delay of the node it enters, and that
  // delay alone (a path's latency is the sum of the first, less the delay of its last node).
  hopPs_.resize(2 * fabric.links().size());
  endDelayPs_.resize(hopPs_.size());
  for (std::size_t ch = 0; ch < hopPs_.size(); ++ch) {
    const topo::Link& l = fabric.links()[ch / 2];
    endDelayPs_[ch] = fabric.node(ch % 2 == 0 ? l.b : l.a).delay.picoseconds();
    hopPs_[ch] = l.latency.picoseconds() + endDelayPs_[ch];
  }
  nicIndexInHost_.assign(numNodes, -1);
  for (const std::vector<std::int32_t>& nics : nicsOfHost_) {
    for (std::size_t k = 0; k < nics.size(); ++k) {
      nicIndexInHost_[static_cast<std::size_t>(nics[k])] = static_cast<std::int32_t>(k);
    }
    maxNicsPerHost_ = std::max(maxNicsPerHost_, static_cast<std::int32_t>(nics.size()));
  }
  hasNvLink_.assign(gpus.size(), 0);
  attachOf_.assign(gpus.size(), -1);
  for (std::size_t r = 0; r < gpus.size(); ++r) {
    const std::int32_t g = gpus[r];
    for (const std::int32_t lk : fabric.linksOf(g)) {
      if (fabric.link(lk).kind == LinkKind::kNvLink) hasNvLink_[r] = 1;
    }
    const std::int32_t nic = fabric.nicOf(static_cast<std::int32_t>(r));
    if (nic >= 0) {
      attachOf_[r] = nic;
    } else if (switchLink_[static_cast<std::size_t>(g)] >= 0) {
      attachOf_[r] = g;  // a GPU with its own network port (no NIC node)
    }
  }
}

std::string Router::gpuName(std::int32_t rank) const {
  return "GPU '" + fabric_.node(fabric_.gpus()[static_cast<std::size_t>(rank)]).name + "' (rank " +
         std::to_string(rank) + ")";
}

bool Router::allowedTransit(std::int32_t node, Domain domain, std::int32_t hostA, std::int32_t hostB) const {
  const topo::Node& nd = fabric_.nodes()[static_cast<std::size_t>(node)];
  if (domain == Domain::kNvLink) {
    // Never through another server's NVSwitch; rack-level NVSwitches (host -1) are shared.
    return nd.kind == NodeKind::kNvSwitch && (nd.host < 0 || nd.host == hostA || nd.host == hostB);
  }
  return (nd.kind == NodeKind::kPcieSwitch || nd.kind == NodeKind::kHost) && nd.host >= 0 &&
         (nd.host == hostA || nd.host == hostB);
}

bool Router::bfsLocal(std::int32_t from, std::int32_t to, Domain domain, std::uint64_t hash, const std::int32_t* load,
                      std::vector<std::int32_t>& out, bool& unique) {
  const LinkKind want = domain == Domain::kNvLink ? LinkKind::kNvLink : LinkKind::kPcie;
  const std::int32_t hostA = fabric_.node(from).host;
  const std::int32_t hostB = fabric_.node(to).host;
  for (const std::int32_t v : touched_) dist_[static_cast<std::size_t>(v)] = -1;
  touched_.clear();
  queue_.clear();
  dist_[static_cast<std::size_t>(to)] = 0;
  touched_.push_back(to);
  queue_.push_back(to);
  // BFS from the destination: the walk from `from` then follows decreasing distance.
  for (std::size_t qi = 0; qi < queue_.size(); ++qi) {
    const std::int32_t u = queue_[qi];
    if (u == from) break;
    if (u != to && !allowedTransit(u, domain, hostA, hostB)) continue;
    for (const std::int32_t lk : fabric_.linksOf(u)) {
      if (fabric_.link(lk).kind != want) continue;
      const std::int32_t v = fabric_.peer(lk, u);
      if (dist_[static_cast<std::size_t>(v)] >= 0) continue;
      if (v != from && !allowedTransit(v, domain, hostA, hostB)) continue;
      dist_[static_cast<std::size_t>(v)] = dist_[static_cast<std::size_t>(u)] + 1;
      touched_.push_back(v);
      queue_.push_back(v);
    }
  }
  if (dist_[static_cast<std::size_t>(from)] < 0) return false;
  unique = true;
  std::int32_t u = from;
  while (u != to) {
    choices_.clear();
    const std::int32_t du = dist_[static_cast<std::size_t>(u)];
    for (const std::int32_t lk : fabric_.linksOf(u)) {
      if (fabric_.link(lk).kind != want) continue;
      const std::int32_t v = fabric_.peer(lk, u);
      if (dist_[static_cast<std::size_t>(v)] != du - 1) continue;
      if (v != to && !allowedTransit(v, domain, hostA, hostB)) continue;
      choices_.push_back(lk);
    }
    if (choices_.size() > 1) unique = false;
    std::size_t pick = 0;
    if (choices_.size() > 1) {
      if (routing_ == Routing::kAdaptive && load != nullptr) {
        for (std::size_t i = 1; i < choices_.size(); ++i) {
          const auto ci = topo::channelOf(choices_[i], fabric_.directionFrom(choices_[i], u));
          const auto cp = topo::channelOf(choices_[pick], fabric_.directionFrom(choices_[pick], u));
          if (load[ci] < load[cp]) pick = i;
        }
      } else if (routing_ != Routing::kShortest) {
        pick = static_cast<std::size_t>(mix(hash ^ static_cast<std::uint32_t>(u)) % choices_.size());
      }
    }
    const std::int32_t lk = choices_[pick];
    out.push_back(topo::channelOf(lk, fabric_.directionFrom(lk, u)));
    u = fabric_.peer(lk, u);
  }
  return true;
}

const Router::Segment& Router::localSegment(std::int32_t from, std::int32_t to, Domain domain, std::int32_t srcRank,
                                            std::int32_t dstRank, std::uint64_t flowHash, const std::int32_t* load) {
  const std::uint64_t key = (static_cast<std::uint64_t>(from) << 33) | (static_cast<std::uint64_t>(to) << 1) |
                            static_cast<std::uint64_t>(domain);
  if (auto it = segCache_.find(key); it != segCache_.end()) return it->second;
  scratchSeg_.channels.clear();
  bool unique = true;
  scratchSeg_.found =
      bfsLocal(from, to, domain, hashOf(seed_, srcRank, dstRank, flowHash, from), load, scratchSeg_.channels, unique);
  if (!unique && routing_ != Routing::kShortest) {
    lastFixed_ = false;
    return scratchSeg_;  // depends on the flow or the load
  }
  if (segCache_.size() >= kMaxSegments) segCache_.clear();  // bounded: 16k GPUs must not grow without end
  return segCache_.emplace(key, scratchSeg_).first->second;
}

const Router::Segment& Router::nicSegment(std::int32_t rank, bool toNic, std::int32_t from, std::int32_t to,
                                          std::int32_t srcRank, std::int32_t dstRank, std::uint64_t flowHash,
                                          const std::int32_t* load) {
  const std::int32_t nic = toNic ? to : from;
  const std::int32_t k = nicIndexInHost_[static_cast<std::size_t>(nic)];
  const std::int32_t host = hostOf_[static_cast<std::size_t>(fabric_.gpus()[static_cast<std::size_t>(rank)])];
  if (k < 0 || host < 0 || host != hostOf_[static_cast<std::size_t>(nic)]) {
    return localSegment(from, to, Domain::kPcie, srcRank, dstRank, flowHash, load);
  }
  std::vector<Segment>& slots = toNic ? nicUp_ : nicDown_;
  if (slots.empty()) slots.resize(fabric_.gpus().size() * static_cast<std::size_t>(maxNicsPerHost_));
  Segment& slot =
      slots[static_cast<std::size_t>(rank) * static_cast<std::size_t>(maxNicsPerHost_) + static_cast<std::size_t>(k)];
  if (slot.found) return slot;
  const Segment& s = localSegment(from, to, Domain::kPcie, srcRank, dstRank, flowHash, load);
  if (&s != &scratchSeg_ && s.found) slot = s;  // a cached (flow-independent) path: keep it per GPU
  return s;
}

const std::vector<std::uint16_t>& Router::switchDistances(std::int32_t dstSwitch) {
  if (auto it = distCache_.find(dstSwitch); it != distCache_.end()) return it->second;
  std::int32_t numSwitches = 0;
  for (const std::int32_t s : switchIndex_) numSwitches = std::max(numSwitches, s + 1);
  const std::size_t bytes = static_cast<std::size_t>(numSwitches) * sizeof(std::uint16_t);
  if (distCacheBytes_ + bytes > kMaxDistBytes) {
    distCache_.clear();
    distCacheBytes_ = 0;
  }
  std::vector<std::uint16_t> d(static_cast<std::size_t>(numSwitches), kUnreached);
  queue_.clear();
  d[static_cast<std::size_t>(switchIndex_[static_cast<std::size_t>(dstSwitch)])] = 0;
  queue_.push_back(dstSwitch);
  for (std::size_t qi = 0; qi < queue_.size(); ++qi) {
    const std::int32_t u = queue_[qi];
    const std::uint16_t du = d[static_cast<std::size_t>(switchIndex_[static_cast<std::size_t>(u)])];
    for (const std::int32_t lk : fabric_.linksOf(u)) {
      const std::int32_t v = fabric_.peer(lk, u);
      const std::int32_t vi = switchIndex_[static_cast<std::size_t>(v)];
      if (vi < 0 || d[static_cast<std::size_t>(vi)] != kUnreached) continue;
      d[static_cast<std::size_t>(vi)] = static_cast<std::uint16_t>(du + 1);
      queue_.push_back(v);
    }
  }
  distCacheBytes_ += bytes;
  return distCache_.emplace(dstSwitch, std::move(d)).first->second;
}

std::size_t Router::choose(const std::vector<std::int32_t>& links, std::int32_t at, std::int32_t srcRank,
                           std::int32_t dstRank, std::uint64_t flowHash, const std::int32_t* load, std::int32_t nic) {
  const std::size_t n = links.size();
  if (n <= 1) return 0;
  if (routing_ != Routing::kShortest) lastFixed_ = false;
  switch (routing_) {
    case Routing::kShortest:
      return 0;
    case Routing::kEcmp:
      return static_cast<std::size_t>(hashOf(seed_, srcRank, dstRank, flowHash, at) % n);
    case Routing::kAdaptive: {
      if (load == nullptr) return 0;
      std::size_t best = 0;
      for (std::size_t i = 1; i < n; ++i) {
        const auto ci = topo::channelOf(links[i], fabric_.directionFrom(links[i], at));
        const auto cb = topo::channelOf(links[best], fabric_.directionFrom(links[best], at));
        if (load[ci] < load[cb]) best = i;  // ties keep the lower link id (links are in id order)
      }
      return best;
    }
    case Routing::kRailAware: {
      const topo::Node& nd = fabric_.node(nic);
      railChoices_.clear();
      for (std::size_t i = 0; i < n; ++i) {
        const topo::Node& next = fabric_.node(fabric_.peer(links[i], at));
        const bool sameRail = nd.rail >= 0 && next.rail == nd.rail;
        const bool samePlane = nd.plane >= 0 && next.plane == nd.plane;
        if (sameRail || samePlane) railChoices_.push_back(static_cast<std::int32_t>(i));
      }
      const std::uint64_t h = hashOf(seed_, srcRank, dstRank, flowHash, at);
      if (railChoices_.empty()) return static_cast<std::size_t>(h % n);
      return static_cast<std::size_t>(railChoices_[static_cast<std::size_t>(h % railChoices_.size())]);
    }
  }
  return 0;
}

void Router::networkWalk(std::int32_t fromSwitch, std::int32_t toSwitch, std::int32_t srcRank, std::int32_t dstRank,
                         std::int32_t nic, std::uint64_t flowHash, const std::int32_t* load,
                         std::vector<std::int32_t>& out) {
  if (fromSwitch == toSwitch) return;
  const std::vector<std::uint16_t>& d = switchDistances(toSwitch);
  std::int32_t u = fromSwitch;
  while (u != toSwitch) {
    const std::uint16_t du = d[static_cast<std::size_t>(switchIndex_[static_cast<std::size_t>(u)])];
    choices_.clear();
    for (const SwitchNeighbour& nb : switchNbrs_[static_cast<std::size_t>(switchIndex_[static_cast<std::size_t>(u)])]) {
      if (d[static_cast<std::size_t>(nb.peerIndex)] + 1 == du) choices_.push_back(nb.link);
    }
    const std::int32_t lk = choices_[choose(choices_, u, srcRank, dstRank, flowHash, load, nic)];
    out.push_back(topo::channelOf(lk, fabric_.directionFrom(lk, u)));
    u = fabric_.peer(lk, u);
  }
}

bool Router::pickNics(std::int32_t src, std::int32_t dst, std::int32_t& srcNic, std::int32_t& dstNic) const {
  const std::int32_t a = attachOf_[static_cast<std::size_t>(src)];
  const std::int32_t b = attachOf_[static_cast<std::size_t>(dst)];
  const auto comp = [&](std::int32_t n) { return n < 0 ? -1 : switchComp_[static_cast<std::size_t>(n)]; };
  if (comp(a) >= 0 && comp(a) == comp(b)) {
    srcNic = a;
    dstNic = b;
    return true;
  }
  const auto hostNics = [&](std::int32_t rank) -> const std::vector<std::int32_t>* {
    const std::int32_t h = fabric_.node(fabric_.gpus()[static_cast<std::size_t>(rank)]).host;
    if (h < 0 || static_cast<std::size_t>(h) >= nicsOfHost_.size()) return nullptr;
    return &nicsOfHost_[static_cast<std::size_t>(h)];
  };
  // Another NIC of `rank`'s server in `target`'s component, preferring `target`'s rail and plane.
  const auto sameSide = [&](std::int32_t rank, std::int32_t target) -> std::int32_t {
    const auto* nics = hostNics(rank);
    if (nics == nullptr || comp(target) < 0) return -1;
    const topo::Node& t = fabric_.node(target);
    std::int32_t any = -1;
    for (const std::int32_t n : *nics) {
      if (comp(n) != comp(target)) continue;
      const topo::Node& nd = fabric_.node(n);
      if ((t.rail >= 0 && nd.rail == t.rail) || (t.plane >= 0 && nd.plane == t.plane)) return n;
      if (any < 0) any = n;
    }
    return any;
  };
  if (const std::int32_t n = sameSide(src, b); n >= 0) {
    srcNic = n;
    dstNic = b;
    return true;
  }
  if (const std::int32_t m = sameSide(dst, a); m >= 0) {
    srcNic = a;
    dstNic = m;
    return true;
  }
  const auto* sn = hostNics(src);
  const auto* dn = hostNics(dst);
  if (sn == nullptr || dn == nullptr) return false;
  for (const std::int32_t n : *sn) {
    for (const std::int32_t m : *dn) {
      if (comp(n) >= 0 && comp(n) == comp(m)) {
        srcNic = n;
        dstNic = m;
        return true;
      }
    }
  }
  return false;
}

std::int64_t Router::route(std::int32_t src, std::int32_t dst, std::uint64_t flowHash, const std::int32_t* load,
                           std::vector<std::int32_t>& out) {
  const std::size_t begin = out.size();
  lastFixed_ = true;
  const auto& gpus = fabric_.gpus();
  const std::int32_t g1 = gpus[static_cast<std::size_t>(src)];
  const std::int32_t g2 = gpus[static_cast<std::size_t>(dst)];
  const std::int32_t h1 = hostOf_[static_cast<std::size_t>(g1)];
  const std::int32_t h2 = hostOf_[static_cast<std::size_t>(g2)];
  const auto append = [&](const Segment& s) { out.insert(out.end(), s.channels.begin(), s.channels.end()); };
  const auto fail = [&](const std::string& why) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "no route from " + gpuName(src) + " to " + gpuName(dst) + ": " + why);
  };
  bool done = false;
  if (hasNvLink_[static_cast<std::size_t>(src)] != 0 && hasNvLink_[static_cast<std::size_t>(dst)] != 0 &&
      nvComp_[static_cast<std::size_t>(src)] == nvComp_[static_cast<std::size_t>(dst)]) {
    const Segment& s = localSegment(g1, g2, Domain::kNvLink, src, dst, flowHash, load);
    if (s.found) {
      append(s);
      done = true;
    }
  }
  if (!done && h1 >= 0 && h1 == h2) {
    const Segment& s = localSegment(g1, g2, Domain::kPcie, src, dst, flowHash, load);
    if (s.found) {
      append(s);
      done = true;
    }
  }
  if (!done) {
    std::int32_t srcNic = -1;
    std::int32_t dstNic = -1;
    if (!pickNics(src, dst, srcNic, dstNic)) {
      fail(h1 >= 0 && h1 == h2 ? "they share a server but no NVLink or PCIe path joins them"
                               : "no NIC of the source's server reaches a NIC of the destination's server");
    }
    if (srcNic != g1) {
      const Segment& s = nicSegment(src, /*toNic=*/true, g1, srcNic, src, dst, flowHash, load);
      if (!s.found) fail("no PCIe path to NIC '" + fabric_.node(srcNic).name + "'");
      append(s);
    }
    const std::int32_t upLink = switchLink_[static_cast<std::size_t>(srcNic)];
    const std::int32_t downLink = switchLink_[static_cast<std::size_t>(dstNic)];
    const std::int32_t swA = fabric_.peer(upLink, srcNic);
    const std::int32_t swB = fabric_.peer(downLink, dstNic);
    out.push_back(topo::channelOf(upLink, fabric_.directionFrom(upLink, srcNic)));
    networkWalk(swA, swB, src, dst, srcNic, flowHash, load, out);
    out.push_back(topo::channelOf(downLink, fabric_.directionFrom(downLink, swB)));
    if (dstNic != g2) {
      const Segment& s = nicSegment(dst, /*toNic=*/false, dstNic, g2, src, dst, flowHash, load);
      if (!s.found) fail("no PCIe path from NIC '" + fabric_.node(dstNic).name + "'");
      append(s);
    }
  }
  if (out.size() == begin) return 0;
  std::int64_t latency = 0;
  for (std::size_t i = begin; i < out.size(); ++i) latency += hopPs_[static_cast<std::size_t>(out[i])];
  return latency - endDelayPs_[static_cast<std::size_t>(out.back())];
}

}  // namespace copro::sim::detail
