#pragma once
/// MoE internals shared by the plan/Program builders and the Communicator's pack/unpack (docs/moe.md).
#include <cstdint>
#include <utility>
#include <vector>

#include "copro/collectives/moe.hpp"

namespace copro::collectives {

/// One token's target nodes and, per node, the mask of local ranks holding its experts (sorted by node).
struct MoeTokenRoute {
  std::vector<std::pair<std::int32_t, std::uint64_t>> nodes;
};

/// Validates one rank's topk ids (range, duplicates, node limit) and returns each token's route.
std::vector<MoeTokenRoute> moeRouteTokens(const MoeConfig& c, int rank, const std::int32_t* topkIdx, int numTokens,
                                          const std::vector<int>& nodeOfRank, const std::vector<int>& localIndex,
                                          int expertsPerRank);

/// Row offsets of every area of both Programs (rows, not bytes), derived from the plan.
///
/// Forward dispatch: input = send rows (groups in (node, mask) order); output = landing | relay.
/// Forward combine: input = landing rows (BF16); output = contributions | reduced | final.
/// Direct dispatch: input = send rows by expert; output = landing (expert-major, sources ascending).
/// Direct combine: input = landing rows (BF16); output = final (the send layout).
struct MoeLayout {
  struct Chunk {
    std::uint64_t first = 0;
    std::uint64_t rows = 0;
  };
  explicit MoeLayout(const MoePlan& plan);

  MoePlan p;  ///< a copy: the lazy Programs outlive the caller's plan
  std::vector<std::uint64_t> sendRows, landRows, relayRows, contribRows, reducedRows, finalRows;
  // Forward, indexed [src][group] (and [k] = k-th rank of the group's mask):
  std::vector<std::vector<std::uint64_t>> groupSendOff;
  std::vector<std::vector<std::vector<std::uint64_t>>> landOff;
  std::vector<std::vector<std::vector<std::uint64_t>>> contribOff;  ///< UINT64_MAX: the relay itself
  std::vector<std::vector<std::uint64_t>> groupRedOff;              ///< offset of the group in its node chunk
  std::vector<std::vector<Chunk>> nodeChunk;                        ///< [src][node]
  std::vector<std::vector<std::uint64_t>> relayOff;                 ///< [src][node], in the relay's relay area
  std::vector<std::vector<std::uint64_t>> reducedChunkOff;          ///< [src][node], in the relay's reduced area
  std::vector<std::vector<std::uint64_t>> finalOff;                 ///< [src][node], in the source's final area
  // Direct, indexed [src][expert]:
  std::vector<std::vector<std::uint64_t>> sendOff;
  std::vector<std::vector<std::uint64_t>> landOffDirect;
};

}  // namespace copro::collectives
