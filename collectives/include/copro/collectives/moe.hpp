#pragma once
/// MoE dispatch and combine (expert parallelism, DeepEP's two paths) as Programs: routing, the plan computed
/// from counts only, and the Program builders shared by the Communicator and the simulator. See docs/moe.md.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "copro/core/dtype.hpp"
#include "copro/core/program.hpp"

namespace copro::collectives {

/// How a token reaches its experts' ranks.
enum class MoePath : std::uint8_t {
  /// DeepEP's normal path: a token crosses the scale-out network once per target node, to the rank with
  /// the sender's local index there (rail-aligned relay), which forwards it over the scale-up fabric to each
  /// rank of its node holding one of the token's experts. Combine reverses it, reducing at the relay.
  kForward = 0,
  /// DeepEP's low-latency path: every (token, expert) row goes straight from the sender to the expert's rank.
  kDirect = 1,
};
std::string_view moePathName(MoePath p) noexcept;  ///< "forward" or "direct"

/// Shape of one MoE layer's dispatch/combine.
struct MoeConfig {
  int hidden = 0;      ///< channels per token
  int topk = 0;        ///< experts per token (slots; -1 in a slot = none)
  int numExperts = 0;  ///< routed experts over all ranks; a multiple of the rank count
  core::DataType dispatchDtype = core::DataType::kBfloat16;  ///< kBfloat16 or kFloat8E4M3
  bool fp8Scales = true;  ///< FP8: one float32 scale per 128 channels travels with the token
  core::DataType combineDtype = core::DataType::kBfloat16;  ///< only kBfloat16
  int maxNodesPerToken = 0;  ///< node-limited routing: a token reaches at most this many nodes (0 = no limit)
  MoePath path = MoePath::kForward;
  bool payloadOnly = false;  ///< simulator calibration: rows carry the payload only (no scales, no metadata)
  /// Forward path: a relay forwards (dispatch) or returns (combine) a node chunk in pieces of this many tokens,
  /// each as soon as it has landed (cut-through, as DeepEP's forwarders); 0 = store-and-forward (whole chunk).
  int relayChunkTokens = 32;
  /// Direct path: lanes issuing the puts at once (a low-latency kernel's issuing warps, its SM/warp budget).
  int directLanes = 32;
};

/// The most issuing lanes MoeConfig::directLanes may ask for.
inline constexpr int kMoeMaxDirectLanes = 1024;

/// Scale groups per token (ceil(hidden / 128)) when FP8 scales travel, else 0.
int moeScaleGroups(const MoeConfig& c);
/// Bytes of one dispatched row on the wire: hidden * elem + scales + metadata (forward: token id and the
/// token's topk ids and weights, 4 + 8 * topk; direct: token id and weight, 8), or the payload only.
std::uint64_t moeDispatchRowBytes(const MoeConfig& c);
/// Bytes of one combine row (hidden * 2, BF16).
std::uint64_t moeCombineRowBytes(const MoeConfig& c);

/// The largest routing file MoeRouting::fromFile reads (256 MiB); a larger one is refused before reading.
inline constexpr std::uint64_t kMoeRoutingFileMaxBytes = 256ULL << 20;

/// The run a routing file is checked against; a negative bound is not checked (ranks and tokens are then
/// only bounded by int, expert ids by int32).
struct MoeRoutingLimits {
  int ranks = -1;    ///< ranks in [0, ranks)
  int tokens = -1;   ///< tokens per rank in [0, tokens)
  int experts = -1;  ///< expert ids in [-1, experts); topk <= experts
};

/// Token routing of every rank.
struct MoeRouting {
  int numTokens = 0;  ///< per rank
  int topk = 0;
  std::vector<std::vector<std::int32_t>> topkIdx;  ///< per rank, numTokens * topk expert ids (-1 = none)
  std::vector<std::vector<float>> weights;         ///< per rank, numTokens * topk gate weights

  /// Uniform: each token picks `topk` distinct experts uniformly; with maxNodes > 0, it first picks
  /// maxNodes distinct nodes uniformly, then its experts among those nodes' experts (DeepSeek-V3 node-limited
  /// routing). Weights are uniform in [0.1, 1), normalized per token.
  static MoeRouting uniform(int nranks, int tokens, int topk, int numExperts, int maxNodes,
                            const std::vector<int>& nodeOfRank, std::uint64_t seed);
  /// Zipf: expert popularity proportional to 1 / (i + 1)^s for a seed-shuffled popularity order i, sampled
  /// without replacement per token; node-limited as uniform (nodes weighted by their experts' popularity).
  static MoeRouting zipf(int nranks, int tokens, int topk, int numExperts, int maxNodes,
                         const std::vector<int>& nodeOfRank, double exponent, std::uint64_t seed);
  /// A recorded routing, one line per token: `rank,token,e0,e1,...,e{k-1}` (ids; -1 = none), optionally
  /// followed by `;w0,w1,...` (weights; default 1/k each). `#` starts a comment. Every (rank, token) of
  /// ranks [0, R) and tokens [0, T) must appear once; R and T are the largest seen plus one. Errors name the
  /// file and line. The file must be a regular file of at most kMoeRoutingFileMaxBytes; every number is
  /// range-checked (against `limits` where given) before use, and weights must be finite and >= 0. Errors are
  /// kInvalidArgument (the file itself) or kParseError (its content), naming the file, line, field and range.
  static MoeRouting fromFile(const std::string& path, const MoeRoutingLimits& limits = {});
  /// The same from the text of a routing file; `origin` names it in errors (tests and the fuzzer).
  static MoeRouting fromText(const std::string& text, const std::string& origin, const MoeRoutingLimits& limits = {});
};

/// The plan of one dispatch/combine, computed from counts only (what a real rank learns in the counts
/// exchange, DeepEP's notify phase).
struct MoePlan {
  /// Forward path: `count` tokens of one source for one target node whose experts on that node are exactly
  /// on the local ranks in `mask` (bit i = i-th rank of the node, ranks of a node in ascending order).
  struct Group {
    std::int32_t node = 0;
    std::uint64_t mask = 0;
    std::uint64_t count = 0;
  };
  MoeConfig config;
  int nranks = 0;
  int expertsPerRank = 0;
  std::vector<int> nodeOfRank;
  std::vector<std::vector<std::int32_t>> ranksOfNode;  ///< node -> its ranks, ascending
  std::vector<int> localIndex;                         ///< rank -> index within its node
  /// Forward: per source rank, its groups sorted by (node, mask) (tokens at the sender sorted by
  /// (node, mask, token)).
  std::vector<std::vector<Group>> groups;
  /// Direct: per source rank, tokens per expert (numExperts entries).
  std::vector<std::vector<std::uint64_t>> expertCounts;

  /// The rank on `node` that relays for `src` (its own node: src itself; else the rank with src's local
  /// index, modulo the node's size).
  [[nodiscard]] int relay(int src, int node) const;
  /// Rows that land in `rank`'s receive area (forward: one per (source, token) reaching the rank; direct:
  /// one per (source, token, expert)).
  [[nodiscard]] std::uint64_t landingRows(int rank) const;
};

/// Where a forward-path mask group goes in a source's node chunk: groups are sorted by (node,
/// moeGroupOrder(mask)), a fixed pseudo-random permutation of the masks. Sorting by the mask itself would put
/// every row for a node's last local ranks at the end of the chunk (their bits are the high ones), so relays
/// would forward to them only at the end; DeepEP sends in token order, in which destinations are mixed.
std::uint64_t moeGroupOrder(std::uint64_t mask);

/// Count words of one rank, the input of the counts exchange (forward: (node, mask, count) triples sorted by
/// (node, moeGroupOrder(mask)); direct: numExperts counts). Throws Error(kInvalidArgument) naming the token for an
/// expert id out of range, an expert listed twice, or a token reaching more than maxNodesPerToken nodes.
std::vector<std::uint64_t> moeCountWords(const MoeConfig& c, int rank, const std::int32_t* topkIdx, int numTokens,
                                         const std::vector<int>& nodeOfRank);
/// The plan from every rank's count words. Throws Error(kInvalidArgument) for a bad config (experts not a
/// multiple of the ranks, unsupported dtypes, more than 64 ranks on a node with the forward path).
MoePlan planMoe(const MoeConfig& c, const std::vector<std::vector<std::uint64_t>>& countWords,
                const std::vector<int>& nodeOfRank);
/// Convenience: counts every rank of `routing` and plans.
MoePlan planMoe(const MoeConfig& c, const MoeRouting& routing, const std::vector<int>& nodeOfRank);
/// Checks a config against a rank count (experts per rank, dtypes, sizes); throws Error(kInvalidArgument).
void checkMoeConfig(const MoeConfig& c, int nranks);

/// Program of the dispatch (buffers in docs/moe.md): input = the rank's packed rows in send order; output =
/// its landing area followed by its relay area. Generated per rank on demand; ops ∝ mask groups.
std::shared_ptr<const core::ProgramSource> buildMoeDispatch(const MoeConfig& c, const MoePlan& plan);
/// Program of the combine: input = BF16 rows in the landing layout; output = relay contributions, relay
/// partial sums and the rows returned to this rank (per node, or per expert on the direct path).
std::shared_ptr<const core::ProgramSource> buildMoeCombine(const MoeConfig& c, const MoePlan& plan);

/// The receive side of one rank's dispatch, in the user's buffers (expert-major: for each local expert, rows
/// from sources in rank order, each source's rows in ascending token order).
struct MoeDispatchOut {
  void* recvX = nullptr;             ///< [capacityRows x hidden] of dispatchDtype
  float* recvScales = nullptr;       ///< [capacityRows x ceil(hidden/128)] (FP8 with scales; else may be null)
  std::int32_t* srcRank = nullptr;   ///< [capacityRows] (may be null)
  std::int32_t* srcToken = nullptr;  ///< [capacityRows] (may be null)
  float* weight = nullptr;           ///< [capacityRows] gate weight of the row (may be null)
  std::uint64_t capacityRows = 0;
  // Results:
  std::uint64_t numRows = 0;                   ///< rows received
  std::vector<std::uint64_t> expertRowOffset;  ///< local experts + 1 entries: rows of local expert i are
                                               ///< [expertRowOffset[i], expertRowOffset[i+1])
};

/// What a combine needs from its dispatch (keep it until the combine).
struct MoeHandle {
  struct State;
  std::shared_ptr<State> state;
};

}  // namespace copro::collectives
