/// MoE dispatch/combine: config checks, count words, the plan from counts, and the Program builders
/// (docs/moe.md). Both paths, both directions; ops grow with mask groups (forward) or (source, expert) pairs
/// (direct), never with tokens.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <memory>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/core/status.hpp"
#include "moe_internal.hpp"

namespace copro::collectives {

using core::Addr;
using core::BufferId;
using core::Error;
using core::ErrorCode;
using core::kSelf;
using core::Op;
using core::ProgramHeader;
using core::RankProgram;

std::string_view moePathName(MoePath p) noexcept {
  return p == MoePath::kForward ? "forward" : "direct";
}

int moeScaleGroups(const MoeConfig& c) {
  if (c.dispatchDtype != core::DataType::kFloat8E4M3 || !c.fp8Scales) return 0;
  return (c.hidden + 127) / 128;
}

std::uint64_t moeDispatchRowBytes(const MoeConfig& c) {
  const auto payload = static_cast<std::uint64_t>(c.hidden) * core::dataTypeSize(c.dispatchDtype);
  if (c.payloadOnly) return payload;
  const std::uint64_t meta =
      c.path == MoePath::kForward ? 4 + 8 * static_cast<std::uint64_t>(c.topk) : std::uint64_t{8};
  return payload + 4 * static_cast<std::uint64_t>(moeScaleGroups(c)) + meta;
}

std::uint64_t moeCombineRowBytes(const MoeConfig& c) {
  return static_cast<std::uint64_t>(c.hidden) * 2;
}

void checkMoeConfig(const MoeConfig& c, int nranks) {
  const auto bad = [](const std::string& m) { throw Error(ErrorCode::kInvalidArgument, "MoE: " + m); };
  if (nranks < 1) bad("needs at least one rank");
  if (c.hidden <= 0) bad("hidden must be positive (it is " + std::to_string(c.hidden) + ")");
  if (c.topk <= 0) bad("topk must be positive (it is " + std::to_string(c.topk) + ")");
  if (c.numExperts <= 0 || c.numExperts % nranks != 0) {
    bad("numExperts " + std::to_string(c.numExperts) + " is not a positive multiple of the number of ranks " +
        std::to_string(nranks) + " (every rank must hold the same whole number of experts)");
  }
  if (c.topk > c.numExperts) {
    bad("topk " + std::to_string(c.topk) + " is out of range [1, " + std::to_string(c.numExperts) +
        "] (a token picks distinct experts); use a topk <= numExperts");
  }
  if (c.dispatchDtype != core::DataType::kBfloat16 && c.dispatchDtype != core::DataType::kFloat8E4M3) {
    bad("dispatchDtype " + std::string(core::dataTypeName(c.dispatchDtype)) +
        " is not supported (use bfloat16 or float8e4m3)");
  }
  if (c.combineDtype != core::DataType::kBfloat16) {
    bad("combineDtype " + std::string(core::dataTypeName(c.combineDtype)) + " is not supported (use bfloat16)");
  }
  if (c.maxNodesPerToken < 0) bad("maxNodesPerToken must be >= 0 (0 = no limit)");
  if (c.directLanes < 1 || c.directLanes > kMoeMaxDirectLanes) {
    bad("directLanes " + std::to_string(c.directLanes) + " is out of range [1, " + std::to_string(kMoeMaxDirectLanes) +
        "] (issuing lanes of the direct path, the kernel's warp budget)");
  }
  if (c.relayChunkTokens < 0) {
    bad("relayChunkTokens must be >= 0 (it is " + std::to_string(c.relayChunkTokens) +
        "; 0 = store-and-forward, N = relay pieces of N tokens)");
  }
}

namespace {

struct NodeMap {
  std::vector<int> nodeOfRank;
  std::vector<std::vector<std::int32_t>> ranksOfNode;
  std::vector<int> localIndex;
};

NodeMap makeNodeMap(const std::vector<int>& nodeOfRankIn, int nranks) {
  NodeMap m;
  m.nodeOfRank = nodeOfRankIn;
  if (m.nodeOfRank.empty()) m.nodeOfRank.assign(static_cast<std::size_t>(nranks), 0);
  if (static_cast<int>(m.nodeOfRank.size()) != nranks) {
    throw Error(ErrorCode::kInvalidArgument, "MoE: the node map has " + std::to_string(m.nodeOfRank.size()) +
                                                 " entries; it needs one per rank (" + std::to_string(nranks) + ")");
  }
  // Node ids are compacted to 0..n-1 in order of first appearance of their lowest rank.
  std::vector<int> ids = m.nodeOfRank;
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  for (int& n : m.nodeOfRank) {
    if (n < 0) throw Error(ErrorCode::kInvalidArgument, "MoE: node ids must be >= 0");
    n = static_cast<int>(std::lower_bound(ids.begin(), ids.end(), n) - ids.begin());
  }
  m.ranksOfNode.resize(ids.size());
  m.localIndex.resize(static_cast<std::size_t>(nranks));
  for (int r = 0; r < nranks; ++r) {
    auto& v = m.ranksOfNode[static_cast<std::size_t>(m.nodeOfRank[static_cast<std::size_t>(r)])];
    m.localIndex[static_cast<std::size_t>(r)] = static_cast<int>(v.size());
    v.push_back(r);
  }
  return m;
}

}  // namespace

std::uint64_t moeGroupOrder(std::uint64_t mask) {
  // splitmix64's finalizer: a bijection, so distinct masks keep distinct keys.
  std::uint64_t z = mask + 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::vector<std::uint64_t> moeCountWords(const MoeConfig& c, int rank, const std::int32_t* topkIdx, int numTokens,
                                         const std::vector<int>& nodeOfRank) {
  const int nranks = static_cast<int>(nodeOfRank.size());
  checkMoeConfig(c, std::max(1, nranks));
  const NodeMap nm = makeNodeMap(nodeOfRank, nranks);
  const int epr = c.numExperts / nranks;
  if (numTokens > 0 && topkIdx == nullptr) throw Error(ErrorCode::kInvalidArgument, "MoE: topkIdx is null");
  std::vector<MoeTokenRoute> routes = moeRouteTokens(c, rank, topkIdx, numTokens, nm.nodeOfRank, nm.localIndex, epr);
  std::vector<std::uint64_t> words;
  if (c.path == MoePath::kDirect) {
    words.assign(static_cast<std::size_t>(c.numExperts), 0);
    for (int t = 0; t < numTokens; ++t) {
      for (int k = 0; k < c.topk; ++k) {
        const std::int32_t e = topkIdx[static_cast<std::size_t>(t) * static_cast<std::size_t>(c.topk) + k];
        if (e >= 0) ++words[static_cast<std::size_t>(e)];
      }
    }
    return words;
  }
  // (node, group order, mask) per token; sort and run-length encode.
  std::vector<std::tuple<std::int32_t, std::uint64_t, std::uint64_t>> keys;
  for (const auto& r : routes) {
    for (const auto& nm2 : r.nodes) keys.emplace_back(nm2.first, moeGroupOrder(nm2.second), nm2.second);
  }
  std::sort(keys.begin(), keys.end());
  for (std::size_t i = 0; i < keys.size();) {
    std::size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    words.push_back(static_cast<std::uint64_t>(std::get<0>(keys[i])));
    words.push_back(std::get<2>(keys[i]));
    words.push_back(j - i);
    i = j;
  }
  return words;
}

std::vector<MoeTokenRoute> moeRouteTokens(const MoeConfig& c, int rank, const std::int32_t* topkIdx, int numTokens,
                                          const std::vector<int>& nodeOfRank, const std::vector<int>& localIndex,
                                          int expertsPerRank) {
  std::vector<MoeTokenRoute> out(static_cast<std::size_t>(std::max(0, numTokens)));
  const auto where = [&](int t, int k) {
    return "token " + std::to_string(t) + " of rank " + std::to_string(rank) + " (slot " + std::to_string(k) + ")";
  };
  for (int t = 0; t < numTokens; ++t) {
    MoeTokenRoute& r = out[static_cast<std::size_t>(t)];
    for (int k = 0; k < c.topk; ++k) {
      const std::int32_t e = topkIdx[static_cast<std::size_t>(t) * static_cast<std::size_t>(c.topk) + k];
      if (e < 0) continue;
      if (e >= c.numExperts) {
        throw Error(ErrorCode::kInvalidArgument, "MoE: " + where(t, k) + " has expert id " + std::to_string(e) +
                                                     "; ids must be in [0, " + std::to_string(c.numExperts) +
                                                     ") or -1 for none");
      }
      for (int k2 = 0; k2 < k; ++k2) {
        if (topkIdx[static_cast<std::size_t>(t) * static_cast<std::size_t>(c.topk) + k2] == e) {
          throw Error(ErrorCode::kInvalidArgument,
                      "MoE: " + where(t, k) + " lists expert " + std::to_string(e) + " twice; experts must differ");
        }
      }
      const int dst = e / expertsPerRank;
      const int node = nodeOfRank[static_cast<std::size_t>(dst)];
      const std::uint64_t bit = std::uint64_t{1} << localIndex[static_cast<std::size_t>(dst)];
      bool found = false;
      for (auto& nmask : r.nodes) {
        if (nmask.first == node) {
          nmask.second |= bit;
          found = true;
        }
      }
      if (!found) r.nodes.emplace_back(node, bit);
    }
    std::sort(r.nodes.begin(), r.nodes.end());
    if (c.maxNodesPerToken > 0 && static_cast<int>(r.nodes.size()) > c.maxNodesPerToken) {
      throw Error(ErrorCode::kInvalidArgument,
                  "MoE: token " + std::to_string(t) + " of rank " + std::to_string(rank) + " reaches " +
                      std::to_string(r.nodes.size()) + " nodes but maxNodesPerToken is " +
                      std::to_string(c.maxNodesPerToken) + " (node-limited routing: pick the nodes first)");
    }
  }
  return out;
}

int MoePlan::relay(int src, int node) const {
  if (nodeOfRank[static_cast<std::size_t>(src)] == node) return src;
  const auto& rs = ranksOfNode[static_cast<std::size_t>(node)];
  return rs[static_cast<std::size_t>(localIndex[static_cast<std::size_t>(src)]) % rs.size()];
}

std::uint64_t MoePlan::landingRows(int rank) const {
  std::uint64_t rows = 0;
  if (config.path == MoePath::kDirect) {
    for (int s = 0; s < nranks; ++s) {
      for (int i = 0; i < expertsPerRank; ++i) {
        rows += expertCounts[static_cast<std::size_t>(s)]
                            [static_cast<std::size_t>(rank) * static_cast<std::size_t>(expertsPerRank) +
                             static_cast<std::size_t>(i)];
      }
    }
    return rows;
  }
  const int node = nodeOfRank[static_cast<std::size_t>(rank)];
  const std::uint64_t bit = std::uint64_t{1} << localIndex[static_cast<std::size_t>(rank)];
  for (int s = 0; s < nranks; ++s) {
    for (const auto& g : groups[static_cast<std::size_t>(s)]) {
      if (g.node == node && (g.mask & bit) != 0) rows += g.count;
    }
  }
  return rows;
}

MoePlan planMoe(const MoeConfig& c, const std::vector<std::vector<std::uint64_t>>& countWords,
                const std::vector<int>& nodeOfRankIn) {
  const int nranks = static_cast<int>(countWords.size());
  checkMoeConfig(c, nranks);
  NodeMap nm = makeNodeMap(nodeOfRankIn, nranks);
  MoePlan p;
  p.config = c;
  p.nranks = nranks;
  p.expertsPerRank = c.numExperts / nranks;
  p.nodeOfRank = std::move(nm.nodeOfRank);
  p.ranksOfNode = std::move(nm.ranksOfNode);
  p.localIndex = std::move(nm.localIndex);
  if (c.path == MoePath::kDirect) {
    p.expertCounts = countWords;
    for (int s = 0; s < nranks; ++s) {
      if (static_cast<int>(countWords[static_cast<std::size_t>(s)].size()) != c.numExperts) {
        throw Error(ErrorCode::kInvalidArgument, "MoE: rank " + std::to_string(s) + " sent " +
                                                     std::to_string(countWords[static_cast<std::size_t>(s)].size()) +
                                                     " count words; the direct path needs one per expert (" +
                                                     std::to_string(c.numExperts) + ")");
      }
    }
    return p;
  }
  for (const auto& rs : p.ranksOfNode) {
    if (rs.size() > 64) {
      throw Error(ErrorCode::kInvalidArgument, "MoE: the forward path supports at most 64 ranks per node (a node has " +
                                                   std::to_string(rs.size()) + "); use the direct path");
    }
  }
  p.groups.resize(static_cast<std::size_t>(nranks));
  for (int s = 0; s < nranks; ++s) {
    const auto& w = countWords[static_cast<std::size_t>(s)];
    if (w.size() % 3 != 0) {
      throw Error(ErrorCode::kInvalidArgument, "MoE: rank " + std::to_string(s) + " sent " + std::to_string(w.size()) +
                                                   " count words; the forward path needs (node, mask, count) triples");
    }
    for (std::size_t i = 0; i < w.size(); i += 3) {
      MoePlan::Group g;
      g.node = static_cast<std::int32_t>(w[i]);
      g.mask = w[i + 1];
      g.count = w[i + 2];
      if (g.node < 0 || g.node >= static_cast<int>(p.ranksOfNode.size()) || g.mask == 0 ||
          (p.ranksOfNode[static_cast<std::size_t>(g.node)].size() < 64 &&
           (g.mask >> p.ranksOfNode[static_cast<std::size_t>(g.node)].size()) != 0)) {
        throw Error(ErrorCode::kInvalidArgument, "MoE: rank " + std::to_string(s) + " sent a bad count group (node " +
                                                     std::to_string(w[i]) + ", mask " + std::to_string(g.mask) + ")");
      }
      if (g.count > 0) p.groups[static_cast<std::size_t>(s)].push_back(g);
    }
  }
  return p;
}

MoePlan planMoe(const MoeConfig& c, const MoeRouting& routing, const std::vector<int>& nodeOfRank) {
  const int nranks = static_cast<int>(routing.topkIdx.size());
  std::vector<int> nodes = nodeOfRank;
  if (nodes.empty()) nodes.assign(static_cast<std::size_t>(nranks), 0);
  if (routing.topk != c.topk) {
    throw Error(ErrorCode::kInvalidArgument, "MoE: the routing has topk " + std::to_string(routing.topk) +
                                                 " but the config says " + std::to_string(c.topk));
  }
  std::vector<std::vector<std::uint64_t>> words(static_cast<std::size_t>(nranks));
  for (int r = 0; r < nranks; ++r) {
    words[static_cast<std::size_t>(r)] =
        moeCountWords(c, r, routing.topkIdx[static_cast<std::size_t>(r)].data(), routing.numTokens, nodes);
  }
  return planMoe(c, words, nodes);
}

// ---------------------------------------------------------------------------------------------------------------
// Layout: row offsets of every area, computed once from the plan (O(groups * ranks per mask)).

MoeLayout::MoeLayout(const MoePlan& plan) : p(plan) {
  const int n = p.nranks;
  const auto un = static_cast<std::size_t>(n);
  sendRows.assign(un, 0);
  landRows.assign(un, 0);
  relayRows.assign(un, 0);
  contribRows.assign(un, 0);
  reducedRows.assign(un, 0);
  finalRows.assign(un, 0);
  if (p.config.path == MoePath::kDirect) {
    const int ne = p.config.numExperts;
    sendOff.assign(un, std::vector<std::uint64_t>(static_cast<std::size_t>(ne), 0));
    landOffDirect.assign(un, std::vector<std::uint64_t>(static_cast<std::size_t>(ne), 0));
    for (int s = 0; s < n; ++s) {
      for (int e = 0; e < ne; ++e) {
        sendOff[static_cast<std::size_t>(s)][static_cast<std::size_t>(e)] = sendRows[static_cast<std::size_t>(s)];
        sendRows[static_cast<std::size_t>(s)] +=
            p.expertCounts[static_cast<std::size_t>(s)][static_cast<std::size_t>(e)];
      }
    }
    for (int e = 0; e < ne; ++e) {
      const auto d = static_cast<std::size_t>(e / p.expertsPerRank);
      for (int s = 0; s < n; ++s) {
        landOffDirect[static_cast<std::size_t>(s)][static_cast<std::size_t>(e)] = landRows[d];
        landRows[d] += p.expertCounts[static_cast<std::size_t>(s)][static_cast<std::size_t>(e)];
      }
    }
    finalRows = sendRows;
    return;
  }
  const auto numNodes = p.ranksOfNode.size();
  groupSendOff.resize(un);
  landOff.resize(un);
  contribOff.resize(un);
  groupRedOff.resize(un);
  nodeChunk.assign(un, std::vector<Chunk>(numNodes));
  relayOff.assign(un, std::vector<std::uint64_t>(numNodes, 0));
  finalOff.assign(un, std::vector<std::uint64_t>(numNodes, 0));
  for (int s = 0; s < n; ++s) {
    const auto us = static_cast<std::size_t>(s);
    const auto& gs = p.groups[us];
    groupSendOff[us].resize(gs.size());
    landOff[us].resize(gs.size());
    contribOff[us].resize(gs.size());
    groupRedOff[us].resize(gs.size());
    for (std::size_t g = 0; g < gs.size(); ++g) {
      groupSendOff[us][g] = sendRows[us];
      Chunk& ch = nodeChunk[us][static_cast<std::size_t>(gs[g].node)];
      if (ch.rows == 0) ch.first = sendRows[us];
      ch.rows += gs[g].count;
      sendRows[us] += gs[g].count;
    }
  }
  // Landing at d: sources ascending, their groups in order.
  for (int s = 0; s < n; ++s) {
    const auto us = static_cast<std::size_t>(s);
    const auto& gs = p.groups[us];
    for (std::size_t g = 0; g < gs.size(); ++g) {
      const auto& rs = p.ranksOfNode[static_cast<std::size_t>(gs[g].node)];
      for (std::size_t j = 0; j < rs.size(); ++j) {
        if ((gs[g].mask >> j & 1U) == 0) continue;
        const auto d = static_cast<std::size_t>(rs[j]);
        landOff[us][g].push_back(landRows[d]);
        landRows[d] += gs[g].count;
      }
    }
  }
  // Relay areas (dispatch, after the landing area) and combine areas, sources ascending per relay.
  for (int s = 0; s < n; ++s) {
    const auto us = static_cast<std::size_t>(s);
    for (std::size_t node = 0; node < numNodes; ++node) {
      const Chunk& ch = nodeChunk[us][node];
      if (ch.rows == 0) continue;
      const auto r = static_cast<std::size_t>(p.relay(s, static_cast<int>(node)));
      if (static_cast<int>(r) != s) {
        relayOff[us][node] = relayRows[r];
        relayRows[r] += ch.rows;
      }
    }
  }
  for (int s = 0; s < n; ++s) {
    const auto us = static_cast<std::size_t>(s);
    const auto& gs = p.groups[us];
    for (std::size_t g = 0; g < gs.size(); ++g) {
      const auto& rs = p.ranksOfNode[static_cast<std::size_t>(gs[g].node)];
      const auto r = static_cast<std::size_t>(p.relay(s, gs[g].node));
      for (std::size_t j = 0; j < rs.size(); ++j) {
        if ((gs[g].mask >> j & 1U) == 0) continue;
        if (static_cast<std::size_t>(rs[j]) == r) {
          contribOff[us][g].push_back(UINT64_MAX);  // the relay reads its own input
        } else {
          contribOff[us][g].push_back(contribRows[r]);
          contribRows[r] += gs[g].count;
        }
      }
    }
    for (std::size_t node = 0; node < numNodes; ++node) {
      const Chunk& ch = nodeChunk[us][node];
      if (ch.rows == 0) continue;
      finalOff[us][node] = finalRows[us];
      finalRows[us] += ch.rows;
    }
  }
  // Reduced areas at the relays of remote sources: one contiguous run per (source, node).
  reducedChunkOff.assign(un, std::vector<std::uint64_t>(numNodes, 0));
  for (int s = 0; s < n; ++s) {
    const auto us = static_cast<std::size_t>(s);
    for (std::size_t node = 0; node < numNodes; ++node) {
      const Chunk& ch = nodeChunk[us][node];
      if (ch.rows == 0) continue;
      const auto r = static_cast<std::size_t>(p.relay(s, static_cast<int>(node)));
      if (static_cast<int>(r) == s) continue;
      reducedChunkOff[us][node] = reducedRows[r];
      reducedRows[r] += ch.rows;
    }
    const auto& gs = p.groups[us];
    for (std::size_t g = 0; g < gs.size(); ++g) {
      groupRedOff[us][g] = groupSendOff[us][g] - nodeChunk[us][static_cast<std::size_t>(gs[g].node)].first;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Programs

namespace {

constexpr int kPeerLanes = 8;  // lanes for puts to peers (parallel issue, as DeepEP's channels)
constexpr std::int32_t kLandSem = 0;

Addr local(BufferId b, std::uint64_t off) {
  return Addr{kSelf, b, off};
}
Addr remote(int r, BufferId b, std::uint64_t off) {
  return Addr{r, b, off};
}

int maxRanksPerNode(const MoePlan& p) {
  std::size_t m = 1;
  for (const auto& rs : p.ranksOfNode) m = std::max(m, rs.size());
  return static_cast<int>(m);
}

ProgramHeader moeHeader(const MoePlan& p, const char* what, std::vector<std::uint64_t> in,
                        std::vector<std::uint64_t> out) {
  ProgramHeader h;
  h.name = std::string("moe") + what + "." + std::string(moePathName(p.config.path));
  h.nranks = p.nranks;
  // Forward: per source, two piece lanes (dispatch) or one contribution count per local rank (combine).
  h.numSemaphores = p.config.path == MoePath::kForward ? 1 + p.nranks * std::max(2, maxRanksPerNode(p)) : 1;
  h.inputBytes = std::move(in);
  h.outputBytes = std::move(out);
  return h;
}

/// Lane 0 is the final wait; puts to peer `d` go on lane 1 + d % kPeerLanes (or a relay lane).
int peerLane(int d) {
  return 1 + d % kPeerLanes;
}

/// At most a window of puts of a lane in flight: a flush after every `window` puts (a bounded send queue, as
/// a DeepEP channel's; it also keeps the simulator's concurrent flows, and so its cost, small). Peer lanes
/// keep kPeerWindow puts in flight, relay lanes (one per source, many puts each) kRelayWindow.
constexpr int kPeerWindow = 4;
constexpr int kRelayWindow = 8;
constexpr int kUnboundedWindow = 1 << 30;  // lanes that flush explicitly
class Emitter {
 public:
  explicit Emitter(RankProgram& out) : out_(out) {}
  int addLane(int window = kRelayWindow) {
    const int lane = out_.addLane();
    windowOf(lane).window = window;
    return lane;
  }
  void emit(int lane, Op op) {
    const bool isPut = op.code == core::OpCode::kPut;
    out_.emit(lane, std::move(op));
    if (!isPut) return;
    LaneWindow& w = windowOf(lane);
    if (++w.puts % w.window == 0) out_.emit(lane, Op::flush());
  }

 private:
  struct LaneWindow {
    int puts = 0;
    int window = kPeerWindow;
  };
  LaneWindow& windowOf(int lane) {
    if (lanes_.size() <= static_cast<std::size_t>(lane)) lanes_.resize(static_cast<std::size_t>(lane) + 1);
    return lanes_[static_cast<std::size_t>(lane)];
  }
  RankProgram& out_;
  std::vector<LaneWindow> lanes_;
};

// ---- Forward path: cut-through relays (docs/moe.md, "Cut-through relays").
// A source sends each remote node chunk in pieces of `relayChunkTokens` rows on two lanes (alternate pieces,
// a flush after each: every chunk of every node is in flight, each lane's pieces in order); the relay forwards
// a piece as soon as it lands. The combine runs the same pieces in reverse: the relay reduces and returns a
// piece once that piece's contributions have arrived.

/// Row bounds of a node chunk's pieces: the first piece is half a piece so that the two lanes carrying
/// alternate pieces stay half a piece apart; one piece (store-and-forward) when chunkTokens is 0.
std::vector<std::uint64_t> pieceBounds(std::uint64_t rows, int chunkTokens) {
  std::vector<std::uint64_t> b{0};
  if (chunkTokens <= 0) {
    b.push_back(rows);
    return b;
  }
  const auto c = static_cast<std::uint64_t>(chunkTokens);
  std::uint64_t at = std::min(rows, std::max<std::uint64_t>(1, c / 2));
  b.push_back(at);
  while (at < rows) {
    at = std::min(rows, at + c);
    b.push_back(at);
  }
  return b;
}

/// One overlap of a piece with a mask group of a source's node chunk: rows [begin, end) of the chunk, which
/// start `inGroup` rows into group `g`.
struct Overlap {
  std::size_t piece = 0;
  std::size_t g = 0;
  std::uint64_t inGroup = 0;
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

/// The overlaps of source s's chunk on `node` with its pieces, in piece order.
std::vector<Overlap> chunkOverlaps(const MoeLayout& L, int s, int node, const std::vector<std::uint64_t>& bounds) {
  const auto us = static_cast<std::size_t>(s);
  const auto& gs = L.p.groups[us];
  const std::uint64_t first = L.nodeChunk[us][static_cast<std::size_t>(node)].first;
  std::vector<Overlap> out;
  std::size_t piece = 0;
  for (std::size_t g = 0; g < gs.size(); ++g) {
    if (gs[g].node != node) continue;
    const std::uint64_t gb = L.groupSendOff[us][g] - first;
    const std::uint64_t ge = gb + gs[g].count;
    for (std::uint64_t at = gb; at < ge;) {
      while (bounds[piece + 1] <= at) ++piece;
      const std::uint64_t end = std::min(ge, bounds[piece + 1]);
      out.push_back(Overlap{piece, g, at - gb, at, end});
      at = end;
    }
  }
  return out;
}

/// Dispatch: semaphore of the pieces of source `src` sent on its lane `sub` (0 or 1) to its relay.
std::int32_t relaySem(int src, int sub) {
  return 1 + 2 * src + sub;
}
/// Combine: semaphore of the contributions to source `src`'s relay from the node's local rank `li`.
std::int32_t contribSem(int perNode, int src, int li) {
  return 1 + src * perNode + li;
}

/// Direct puts of a source's own-node groups (no relay).
void emitOwnNodeGroups(const MoeLayout& L, std::uint64_t rb, int r, Emitter& out) {
  const MoePlan& p = L.p;
  const auto ur = static_cast<std::size_t>(r);
  const int myNode = p.nodeOfRank[ur];
  const auto& gs = p.groups[ur];
  const auto& rs = p.ranksOfNode[static_cast<std::size_t>(myNode)];
  for (std::size_t g = 0; g < gs.size(); ++g) {
    if (gs[g].node != myNode) continue;
    std::size_t k = 0;
    for (std::size_t j = 0; j < rs.size(); ++j) {
      if ((gs[g].mask >> j & 1U) == 0) continue;
      const int d = rs[j];
      const std::uint64_t dst = L.landOff[ur][g][k++] * rb;
      const std::uint64_t src = L.groupSendOff[ur][g] * rb;
      const std::uint64_t bytes = gs[g].count * rb;
      if (d == r) {
        out.emit(peerLane(d), Op::copy(local(BufferId::kOutput, dst), local(BufferId::kInput, src), bytes));
      } else {
        out.emit(peerLane(d),
                 Op::put(d, remote(d, BufferId::kOutput, dst), local(BufferId::kInput, src), bytes, kLandSem, 1));
      }
    }
  }
}

/// The source's node chunks to their relays, in pieces on two lanes per node (all nodes at once).
void emitNodeChunks(const MoeLayout& L, std::uint64_t rb, int r, Emitter& out) {
  const MoePlan& p = L.p;
  const auto ur = static_cast<std::size_t>(r);
  for (std::size_t node = 0; node < p.ranksOfNode.size(); ++node) {
    const auto& ch = L.nodeChunk[ur][node];
    if (static_cast<int>(node) == p.nodeOfRank[ur] || ch.rows == 0) continue;
    const int relay = p.relay(r, static_cast<int>(node));
    const std::uint64_t dst = (L.landRows[static_cast<std::size_t>(relay)] + L.relayOff[ur][node]) * rb;
    const auto bounds = pieceBounds(ch.rows, p.config.relayChunkTokens);
    const int lanes[2] = {out.addLane(kUnboundedWindow), bounds.size() > 2 ? out.addLane(kUnboundedWindow) : -1};
    for (std::size_t i = 0; i + 1 < bounds.size(); ++i) {
      const int sub = static_cast<int>(i % 2);
      out.emit(lanes[sub], Op::put(relay, remote(relay, BufferId::kOutput, dst + bounds[i] * rb),
                                   local(BufferId::kInput, (ch.first + bounds[i]) * rb),
                                   (bounds[i + 1] - bounds[i]) * rb, relaySem(r, sub), 1));
      out.emit(lanes[sub], Op::flush());
    }
  }
}

/// Relay lanes of remote source s: one per destination rank of the node (as DeepEP's forwarder warps, one per
/// NVLink peer); each forwards its rows of a piece as soon as the piece lands.
void emitRelayForward(const MoeLayout& L, std::uint64_t rb, int r, int s, Emitter& out) {
  const MoePlan& p = L.p;
  const auto us = static_cast<std::size_t>(s);
  const int myNode = p.nodeOfRank[static_cast<std::size_t>(r)];
  const auto& ch = L.nodeChunk[us][static_cast<std::size_t>(myNode)];
  const auto& sg = p.groups[us];
  const auto& rs = p.ranksOfNode[static_cast<std::size_t>(myNode)];
  const std::uint64_t base = L.landRows[static_cast<std::size_t>(r)] + L.relayOff[us][static_cast<std::size_t>(myNode)];
  const auto items = chunkOverlaps(L, s, myNode, pieceBounds(ch.rows, p.config.relayChunkTokens));
  for (std::size_t j = 0; j < rs.size(); ++j) {
    const int d = rs[j];
    int lane = -1;
    std::size_t waited = SIZE_MAX;
    for (const Overlap& o : items) {
      const std::uint64_t mask = sg[o.g].mask;
      if ((mask >> j & 1U) == 0) continue;
      if (lane < 0) lane = out.addLane();
      if (o.piece != waited) {
        out.emit(lane, Op::wait(relaySem(s, static_cast<int>(o.piece % 2)), o.piece / 2 + 1));
        waited = o.piece;
      }
      const auto k = static_cast<std::size_t>(std::popcount(mask & ((std::uint64_t{1} << j) - 1)));
      const std::uint64_t dst = (L.landOff[us][o.g][k] + o.inGroup) * rb;
      const std::uint64_t src = (base + o.begin) * rb;
      const std::uint64_t bytes = (o.end - o.begin) * rb;
      if (d == r) {
        out.emit(lane, Op::copy(local(BufferId::kOutput, dst), local(BufferId::kOutput, src), bytes));
      } else {
        out.emit(lane,
                 Op::put(d, remote(d, BufferId::kOutput, dst), local(BufferId::kOutput, src), bytes, kLandSem, 1));
      }
    }
  }
}

/// Puts landing at r in a forward dispatch (each covered by r's final wait).
std::uint64_t forwardLandings(const MoeLayout& L, int r) {
  const MoePlan& p = L.p;
  const int myNode = p.nodeOfRank[static_cast<std::size_t>(r)];
  const int myLi = p.localIndex[static_cast<std::size_t>(r)];
  std::uint64_t expected = 0;
  for (int s = 0; s < p.nranks; ++s) {
    const auto& sg = p.groups[static_cast<std::size_t>(s)];
    if (p.relay(s, myNode) == r) continue;  // own rows and rows this rank relays: local copies
    if (p.nodeOfRank[static_cast<std::size_t>(s)] == myNode) {
      for (const auto& g : sg) {
        if (g.node == myNode && (g.mask >> myLi & 1U) != 0) ++expected;
      }
      continue;
    }
    const auto& ch = L.nodeChunk[static_cast<std::size_t>(s)][static_cast<std::size_t>(myNode)];
    if (ch.rows == 0) continue;
    for (const Overlap& o : chunkOverlaps(L, s, myNode, pieceBounds(ch.rows, p.config.relayChunkTokens))) {
      if ((sg[o.g].mask >> myLi & 1U) != 0) ++expected;
    }
  }
  return expected;
}

void emitDispatchForward(const MoeLayout& L, std::uint64_t rb, int r, RankProgram& program) {
  Emitter out(program);
  const MoePlan& p = L.p;
  const int myNode = p.nodeOfRank[static_cast<std::size_t>(r)];
  out.addLane();  // lane 0
  emitOwnNodeGroups(L, rb, r, out);
  emitNodeChunks(L, rb, r, out);
  for (int s = 0; s < p.nranks; ++s) {
    if (p.nodeOfRank[static_cast<std::size_t>(s)] == myNode || p.relay(s, myNode) != r) continue;
    if (L.nodeChunk[static_cast<std::size_t>(s)][static_cast<std::size_t>(myNode)].rows == 0) continue;
    emitRelayForward(L, rb, r, s, out);
  }
  const std::uint64_t expected = forwardLandings(L, r);
  if (expected > 0) out.emit(0, Op::wait(kLandSem, expected));
}

/// Combine, on every rank: its contributions to each source's relay on its node, pieces of all sources
/// interleaved in piece order (so every relay can start on its first piece early).
void emitContributions(const MoeLayout& L, std::uint64_t cb, int r, Emitter& out) {
  const MoePlan& p = L.p;
  const int myNode = p.nodeOfRank[static_cast<std::size_t>(r)];
  const int myLi = p.localIndex[static_cast<std::size_t>(r)];
  const int perNode = maxRanksPerNode(p);
  struct Source {
    int s;
    std::vector<Overlap> items;
    std::size_t next = 0;
  };
  std::vector<Source> sources;
  for (int s = 0; s < p.nranks; ++s) {
    const auto& ch = L.nodeChunk[static_cast<std::size_t>(s)][static_cast<std::size_t>(myNode)];
    if (ch.rows == 0 || p.relay(s, myNode) == r) continue;
    Source src{s, {}, 0};
    const auto& sg = p.groups[static_cast<std::size_t>(s)];
    for (const Overlap& o : chunkOverlaps(L, s, myNode, pieceBounds(ch.rows, p.config.relayChunkTokens))) {
      if ((sg[o.g].mask >> myLi & 1U) != 0) src.items.push_back(o);
    }
    if (!src.items.empty()) sources.push_back(std::move(src));
  }
  for (std::size_t piece = 0, left = sources.size(); left > 0; ++piece) {
    for (Source& src : sources) {
      const auto us = static_cast<std::size_t>(src.s);
      const int relay = p.relay(src.s, myNode);
      for (; src.next < src.items.size() && src.items[src.next].piece == piece; ++src.next) {
        const Overlap& o = src.items[src.next];
        const std::uint64_t mask = p.groups[us][o.g].mask;
        const auto k = static_cast<std::size_t>(std::popcount(mask & ((std::uint64_t{1} << myLi) - 1)));
        const std::uint64_t from = (L.landOff[us][o.g][k] + o.inGroup) * cb;
        const std::uint64_t to = (L.contribOff[us][o.g][k] + o.inGroup) * cb;
        out.emit(peerLane(relay), Op::put(relay, remote(relay, BufferId::kOutput, to), local(BufferId::kInput, from),
                                          (o.end - o.begin) * cb, contribSem(perNode, src.s, myLi), 1));
        if (src.next + 1 == src.items.size()) --left;
      }
    }
  }
}

/// Relay lane of source s (r is its relay on this node): per piece, wait for the piece's contributions,
/// reduce its groups, and return the piece to the source (a remote source; the source's own node's rows are
/// final in place).
void emitRelayReduce(const MoeLayout& L, std::uint64_t cb, std::uint64_t hidden, int r, int s, Emitter& out) {
  const MoePlan& p = L.p;
  const auto us = static_cast<std::size_t>(s);
  const auto ur = static_cast<std::size_t>(r);
  const int myNode = p.nodeOfRank[ur];
  const auto node = static_cast<std::size_t>(myNode);
  const auto& ch = L.nodeChunk[us][node];
  const auto& sg = p.groups[us];
  const auto& rs = p.ranksOfNode[node];
  const std::uint64_t reducedBase = L.contribRows[ur];
  const std::uint64_t outBase =
      s == r ? reducedBase + L.reducedRows[ur] + L.finalOff[us][node] : reducedBase + L.reducedChunkOff[us][node];
  const auto bounds = pieceBounds(ch.rows, p.config.relayChunkTokens);
  const auto items = chunkOverlaps(L, s, myNode, bounds);
  const int perNode = maxRanksPerNode(p);
  const int lane = out.addLane();
  std::vector<std::uint64_t> arrived(rs.size(), 0);
  for (std::size_t i = 0, at = 0; i + 1 < bounds.size(); ++i) {
    const std::size_t first = at;
    for (; at < items.size() && items[at].piece == i; ++at) {
      for (std::size_t j = 0; j < rs.size(); ++j) {
        if ((sg[items[at].g].mask >> j & 1U) != 0 && rs[j] != r) ++arrived[j];
      }
    }
    for (std::size_t j = 0; j < rs.size(); ++j) {
      if (arrived[j] > 0) out.emit(lane, Op::wait(contribSem(perNode, s, static_cast<int>(j)), arrived[j]));
    }
    for (std::size_t x = first; x < at; ++x) {
      const Overlap& o = items[x];
      std::vector<Addr> srcs;
      std::size_t k = 0;
      for (std::size_t j = 0; j < rs.size(); ++j) {
        if ((sg[o.g].mask >> j & 1U) == 0) continue;
        const bool own = rs[j] == r;
        const std::uint64_t row = (own ? L.landOff[us][o.g][k] : L.contribOff[us][o.g][k]) + o.inGroup;
        srcs.push_back(local(own ? BufferId::kInput : BufferId::kOutput, row * cb));
        ++k;
      }
      out.emit(lane, Op::reduce(local(BufferId::kOutput, (outBase + o.begin) * cb), std::move(srcs),
                                (o.end - o.begin) * hidden, core::DataType::kBfloat16, core::ReduceOp::kSum));
    }
    if (s == r) continue;
    // The source's final area starts after its contribution and reduced areas.
    const std::uint64_t dst = L.contribRows[us] + L.reducedRows[us] + L.finalOff[us][node] + bounds[i];
    out.emit(lane,
             Op::put(s, remote(s, BufferId::kOutput, dst * cb), local(BufferId::kOutput, (outBase + bounds[i]) * cb),
                     (bounds[i + 1] - bounds[i]) * cb, kLandSem, 1));
  }
}

void emitCombineForward(const MoeLayout& L, std::uint64_t cb, std::uint64_t hidden, int r, RankProgram& program) {
  Emitter out(program);
  const MoePlan& p = L.p;
  const auto ur = static_cast<std::size_t>(r);
  const int myNode = p.nodeOfRank[ur];
  out.addLane();  // lane 0
  emitContributions(L, cb, r, out);
  for (int s = 0; s < p.nranks; ++s) {
    if (L.nodeChunk[static_cast<std::size_t>(s)][static_cast<std::size_t>(myNode)].rows == 0) continue;
    if (p.relay(s, myNode) == r) emitRelayReduce(L, cb, hidden, r, s, out);
  }
  std::uint64_t expected = 0;
  for (std::size_t node = 0; node < p.ranksOfNode.size(); ++node) {
    const auto& ch = L.nodeChunk[ur][node];
    if (static_cast<int>(node) != myNode && ch.rows > 0) {
      expected += pieceBounds(ch.rows, p.config.relayChunkTokens).size() - 1;
    }
  }
  if (expected > 0) out.emit(0, Op::wait(kLandSem, expected));
}

// ---- Direct path: a low-latency kernel's concurrency (docs/moe.md, "Direct path").
// Puts go out from `directLanes` lanes (the kernel's issuing warps), one put per (source, expert) carrying that
// expert's count signal, in a per-rank permuted order of experts (tokens pick their experts at random, so no
// two ranks walk the destinations in the same order), with no flush in between.

/// Position of expert slot i in rank r's issue order: a permutation of 0..n-1 (n a multiple of nothing in
/// particular): stride coprime with n, offset by the rank.
std::vector<int> issueOrder(int n, int r) {
  std::vector<int> order(static_cast<std::size_t>(n));
  int stride = 1 + 2 * ((r * 7 + 3) % std::max(1, n));
  while (std::gcd(stride, n) != 1) ++stride;
  for (int i = 0; i < n; ++i) {
    order[static_cast<std::size_t>(i)] =
        static_cast<int>((static_cast<std::int64_t>(i) * stride + static_cast<std::int64_t>(r) * 37) % n);
  }
  return order;
}

/// Lane of the i-th put of a rank: round robin over the issuing lanes (lanes 1..directLanes; lane 0 waits).
int directLane(int i, int lanes) {
  return 1 + i % lanes;
}

void addDirectLanes(RankProgram& program, int lanes) {
  for (int i = 0; i <= lanes; ++i) program.addLane();
}

/// A flush after every kDirectWindow puts of a lane: a warp's few outstanding writes (and a bound on the
/// simulator's concurrent flows).
constexpr int kDirectWindow = 2;

void emitDirect(RankProgram& out, int lane, int issued, int lanes, Op op) {
  out.emit(lane, std::move(op));
  if ((issued / lanes + 1) % kDirectWindow == 0) out.emit(lane, Op::flush());
}

void emitDispatchDirect(const MoeLayout& L, std::uint64_t rb, int r, RankProgram& out) {
  const MoePlan& p = L.p;
  const auto ur = static_cast<std::size_t>(r);
  const int lanes = p.config.directLanes;
  addDirectLanes(out, lanes);
  int issued = 0;
  for (const int e : issueOrder(p.config.numExperts, r)) {
    const auto ue = static_cast<std::size_t>(e);
    const std::uint64_t rows = p.expertCounts[ur][ue];
    if (rows == 0) continue;
    const int d = e / p.expertsPerRank;
    const std::uint64_t src = L.sendOff[ur][ue] * rb;
    const std::uint64_t dst = L.landOffDirect[ur][ue] * rb;
    const int lane = directLane(issued, lanes);
    Op op = d == r
                ? Op::copy(local(BufferId::kOutput, dst), local(BufferId::kInput, src), rows * rb)
                : Op::put(d, remote(d, BufferId::kOutput, dst), local(BufferId::kInput, src), rows * rb, kLandSem, 1);
    emitDirect(out, lane, issued++, lanes, std::move(op));
  }
  std::uint64_t expected = 0;
  for (int s = 0; s < p.nranks; ++s) {
    if (s == r) continue;
    for (int i = 0; i < p.expertsPerRank; ++i) {
      if (p.expertCounts[static_cast<std::size_t>(s)]
                        [static_cast<std::size_t>(r) * static_cast<std::size_t>(p.expertsPerRank) +
                         static_cast<std::size_t>(i)] > 0) {
        ++expected;
      }
    }
  }
  if (expected > 0) out.emit(0, Op::wait(kLandSem, expected));
}

void emitCombineDirect(const MoeLayout& L, std::uint64_t cb, int r, RankProgram& out) {
  const MoePlan& p = L.p;
  const auto ur = static_cast<std::size_t>(r);
  const int lanes = p.config.directLanes;
  addDirectLanes(out, lanes);
  int issued = 0;
  for (const int s : issueOrder(p.nranks, r)) {
    const auto us = static_cast<std::size_t>(s);
    for (int i = 0; i < p.expertsPerRank; ++i) {
      const auto ue = static_cast<std::size_t>(r * p.expertsPerRank + i);
      const std::uint64_t rows = p.expertCounts[us][ue];
      if (rows == 0) continue;
      const std::uint64_t src = L.landOffDirect[us][ue] * cb;
      const std::uint64_t dst = L.sendOff[us][ue] * cb;
      const int lane = directLane(issued, lanes);
      Op op = s == r
                  ? Op::copy(local(BufferId::kOutput, dst), local(BufferId::kInput, src), rows * cb)
                  : Op::put(s, remote(s, BufferId::kOutput, dst), local(BufferId::kInput, src), rows * cb, kLandSem, 1);
      emitDirect(out, lane, issued++, lanes, std::move(op));
    }
  }
  std::uint64_t expected = 0;
  for (int e = 0; e < p.config.numExperts; ++e) {
    const int d = e / p.expertsPerRank;
    if (d != r && p.expertCounts[ur][static_cast<std::size_t>(e)] > 0) ++expected;
  }
  if (expected > 0) out.emit(0, Op::wait(kLandSem, expected));
}

}  // namespace

std::shared_ptr<const core::ProgramSource> buildMoeDispatch(const MoeConfig& c, const MoePlan& plan) {
  auto layout = std::make_shared<const MoeLayout>(plan);
  const std::uint64_t rb = moeDispatchRowBytes(c);
  const auto n = static_cast<std::size_t>(plan.nranks);
  std::vector<std::uint64_t> in(n);
  std::vector<std::uint64_t> out(n);
  for (std::size_t r = 0; r < n; ++r) {
    in[r] = layout->sendRows[r] * rb;
    out[r] = (layout->landRows[r] + layout->relayRows[r]) * rb;
  }
  return std::make_shared<core::LazyProgram>(moeHeader(plan, "dispatch", in, out),
                                             [layout, rb, path = c.path](std::int32_t r, RankProgram& o) {
                                               if (path == MoePath::kForward) {
                                                 emitDispatchForward(*layout, rb, r, o);
                                               } else {
                                                 emitDispatchDirect(*layout, rb, r, o);
                                               }
                                             });
}

std::shared_ptr<const core::ProgramSource> buildMoeCombine(const MoeConfig& c, const MoePlan& plan) {
  auto layout = std::make_shared<const MoeLayout>(plan);
  const std::uint64_t cb = moeCombineRowBytes(c);
  const auto hidden = static_cast<std::uint64_t>(c.hidden);
  const auto n = static_cast<std::size_t>(plan.nranks);
  std::vector<std::uint64_t> in(n);
  std::vector<std::uint64_t> out(n);
  for (std::size_t r = 0; r < n; ++r) {
    in[r] = layout->landRows[r] * cb;
    out[r] = (layout->contribRows[r] + layout->reducedRows[r] + layout->finalRows[r]) * cb;
  }
  return std::make_shared<core::LazyProgram>(moeHeader(plan, "combine", in, out),
                                             [layout, cb, hidden, path = c.path](std::int32_t r, RankProgram& o) {
                                               if (path == MoePath::kForward) {
                                                 emitCombineForward(*layout, cb, hidden, r, o);
                                               } else {
                                                 emitCombineDirect(*layout, cb, r, o);
                                               }
                                             });
}

}  // namespace copro::collectives
