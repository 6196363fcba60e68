/// Communicator::moeDispatch / moeCombine: counts exchange, host pack, the Program, host unpack
/// (docs/moe.md). Pack and unpack run on the host around the Program; the simulator does not model them.
#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "copro/collectives/communicator.hpp"
#include "copro/collectives/moe.hpp"
#include "copro/collectives/transform.hpp"
#include "copro/core/status.hpp"
#include "moe_internal.hpp"

namespace copro::collectives {

using core::CallBuffers;
using core::DataType;
using core::ErrorCode;
using core::Status;

struct MoeHandle::State {
  MoeConfig config;
  int rank = 0;
  int numTokens = 0;
  std::shared_ptr<const MoeLayout> layout;
  std::shared_ptr<const core::ProgramSource> combine;
  std::uint64_t userRows = 0;
  // Forward: per landing row, its user rows and weights ([landStart[i], landStart[i+1]) of userRow/userW).
  std::vector<std::uint64_t> landStart;
  std::vector<std::uint64_t> userRow;
  std::vector<float> userW;
  // Per send row (== row of the combine's final area): the token and (direct) its weight.
  std::vector<std::int32_t> sendToken;
  std::vector<float> sendW;
};

namespace {

/// COPRO_PXN and COPRO_INITIATION_* apply to MoE Programs as to every other collective (docs/pxn.md,
/// docs/initiation.md): the forward path's inter-node puts are rail-aligned already, so PXN changes only the
/// direct path.
std::shared_ptr<const core::ProgramSource> withTransforms(const Communicator& comm,
                                                          std::shared_ptr<const core::ProgramSource> program) {
  const core::Config& cfg = comm.config();
  CollectiveArgs a;
  a.kind = CollectiveKind::kAllToAllV;
  a.nranks = comm.size();
  a.nodeOfRank = comm.nodeOfRank();
  if (a.nodeOfRank.empty()) a.nodeOfRank.assign(static_cast<std::size_t>(comm.size()), 0);
  a.pxnLevel = cfg.pxn;
  core::Initiation base = core::Initiation::kDevice;
  (void)core::parseInitiation(cfg.initiation, base);
  a.scaleUpInitiation = base;
  a.scaleOutInitiation = base;
  if (!cfg.initiationScaleUp.empty()) (void)core::parseInitiation(cfg.initiationScaleUp, a.scaleUpInitiation);
  if (!cfg.initiationScaleOut.empty()) (void)core::parseInitiation(cfg.initiationScaleOut, a.scaleOutInitiation);
  return applyTransforms(std::move(program), a);
}

constexpr std::uint64_t kNotNode = 0;

void putBf16Row(std::uint16_t* dst, const std::vector<float>& acc) {
  for (std::size_t h = 0; h < acc.size(); ++h) dst[h] = core::floatToBfloat16(acc[h]);
}

void addBf16Row(std::vector<float>& acc, const std::uint16_t* src, float w) {
  for (std::size_t h = 0; h < acc.size(); ++h) acc[h] += w * core::bfloat16ToFloat(src[h]);
}

}  // namespace

Request Communicator::moeDispatch(const MoeConfig& config, const void* x, const float* scales,
                                  const std::int32_t* topkIdx, const float* topkWeights, int numTokens,
                                  MoeDispatchOut& out, MoeHandle& handle) {
  if (capturing()) {
    return Request::finished({ErrorCode::kInvalidUsage,
                              "moeDispatch cannot be captured (its host-side packing runs per call): call "
                              "endCapture() first, and run MoE calls outside captures"});
  }
  const int p = size();
  const int me = rank();
  std::vector<int> nodes = nodeOfRank();
  if (nodes.empty()) nodes.assign(static_cast<std::size_t>(p), 0);
  // Local checks; a failing rank still joins the counts exchange with an error flag so that no peer hangs.
  std::string localError;
  std::vector<std::uint64_t> words;
  try {
    checkMoeConfig(config, p);
    if (numTokens < 0) throw core::Error(ErrorCode::kInvalidArgument, "MoE: numTokens must be >= 0");
    const std::uint64_t payload = static_cast<std::uint64_t>(numTokens) * static_cast<std::uint64_t>(config.hidden);
    if (payload > 0 && x == nullptr) throw core::Error(ErrorCode::kInvalidArgument, "moeDispatch: x is null");
    if (payload > 0 && moeScaleGroups(config) > 0 && scales == nullptr && !config.payloadOnly) {
      throw core::Error(ErrorCode::kInvalidArgument,
                        "moeDispatch: FP8 with fp8Scales needs scales [numTokens x ceil(hidden/128)] (or set "
                        "fp8Scales = false)");
    }
    if (numTokens > 0 && (topkIdx == nullptr || topkWeights == nullptr)) {
      throw core::Error(ErrorCode::kInvalidArgument, "moeDispatch: topkIdx and topkWeights must not be null");
    }
    words = moeCountWords(config, me, topkIdx, numTokens, nodes);
  } catch (const core::Error& e) {
    localError = e.message();
    words.clear();
  }
  // Counts exchange: [error flag, words, tokens] from everyone, then the words.
  std::uint64_t head[3] = {localError.empty() ? 0ULL : 1ULL, words.size(), static_cast<std::uint64_t>(numTokens)};
  std::vector<std::uint64_t> heads(3 * static_cast<std::size_t>(p));
  Status s = allGather(head, heads.data(), 3, DataType::kUint64).wait();
  if (!s.ok()) return Request::finished(s);
  std::vector<std::uint64_t> sizes(static_cast<std::size_t>(p));
  std::uint64_t total = 0;
  int firstBad = -1;
  for (int r = 0; r < p; ++r) {
    sizes[static_cast<std::size_t>(r)] = heads[3 * static_cast<std::size_t>(r) + 1];
    total += sizes[static_cast<std::size_t>(r)];
    if (heads[3 * static_cast<std::size_t>(r)] != 0 && firstBad < 0) firstBad = r;
  }
  if (!localError.empty()) return Request::finished({ErrorCode::kInvalidArgument, localError});
  if (firstBad >= 0) {
    return Request::finished({ErrorCode::kInvalidArgument, "moeDispatch: rank " + std::to_string(firstBad) +
                                                               " rejected its arguments (its own error says why)"});
  }
  std::vector<std::uint64_t> all(std::max<std::uint64_t>(total, 1));
  s = allGatherV(words.data(), all.data(), sizes, DataType::kUint64).wait();
  if (!s.ok()) return Request::finished(s);
  std::vector<std::vector<std::uint64_t>> perRank(static_cast<std::size_t>(p));
  std::uint64_t at = 0;
  for (int r = 0; r < p; ++r) {
    const auto n = sizes[static_cast<std::size_t>(r)];
    perRank[static_cast<std::size_t>(r)].assign(all.begin() + static_cast<std::ptrdiff_t>(at),
                                                all.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  }

  try {
    const MoePlan plan = planMoe(config, perRank, nodes);
    auto layout = std::make_shared<const MoeLayout>(plan);
    const MoePlan& P = layout->p;
    const auto ume = static_cast<std::size_t>(me);
    const std::uint64_t rb = moeDispatchRowBytes(config);
    const auto es = static_cast<std::uint64_t>(core::dataTypeSize(config.dispatchDtype));
    const std::uint64_t xBytes = static_cast<std::uint64_t>(config.hidden) * es;
    const int groupsPerToken = moeScaleGroups(config);
    const std::uint64_t scaleBytes = config.payloadOnly ? 0 : 4 * static_cast<std::uint64_t>(groupsPerToken);
    const auto topk = static_cast<std::size_t>(config.topk);
    const int epr = P.expertsPerRank;
    const bool forward = config.path == MoePath::kForward;

    auto st = std::make_shared<MoeHandle::State>();
    st->config = config;
    st->rank = me;
    st->numTokens = numTokens;
    st->layout = layout;

    // ---- pack: send rows in the plan's order ----
    std::vector<std::tuple<std::uint64_t, std::uint64_t, std::int32_t, int>> order;  // (key1, key2, token, slot)
    if (forward) {
      const auto routes = moeRouteTokens(config, me, topkIdx, numTokens, P.nodeOfRank, P.localIndex, epr);
      for (int t = 0; t < numTokens; ++t) {
        for (const auto& nm : routes[static_cast<std::size_t>(t)].nodes) {
          order.emplace_back(static_cast<std::uint64_t>(nm.first), moeGroupOrder(nm.second), t, -1);
        }
      }
    } else {
      for (int t = 0; t < numTokens; ++t) {
        for (std::size_t k = 0; k < topk; ++k) {
          const std::int32_t e = topkIdx[static_cast<std::size_t>(t) * topk + k];
          if (e >= 0) order.emplace_back(static_cast<std::uint64_t>(e), kNotNode, t, static_cast<int>(k));
        }
      }
    }
    std::sort(order.begin(), order.end());
    std::vector<unsigned char> send(order.size() * rb);
    st->sendToken.resize(order.size());
    st->sendW.resize(order.size());
    for (std::size_t i = 0; i < order.size(); ++i) {
      const auto [k1, k2, t, slot] = order[i];
      (void)k1;
      (void)k2;
      unsigned char* row = send.data() + i * rb;
      const auto ut = static_cast<std::size_t>(t);
      std::memcpy(row, static_cast<const unsigned char*>(x) + ut * xBytes, xBytes);
      if (scaleBytes > 0) std::memcpy(row + xBytes, scales + ut * static_cast<std::size_t>(groupsPerToken), scaleBytes);
      st->sendToken[i] = t;
      st->sendW[i] = slot >= 0 ? topkWeights[ut * topk + static_cast<std::size_t>(slot)] : 1.0F;
      if (config.payloadOnly) continue;
      unsigned char* meta = row + xBytes + scaleBytes;
      std::memcpy(meta, &t, 4);
      if (forward) {
        std::memcpy(meta + 4, topkIdx + ut * topk, 4 * topk);
        std::memcpy(meta + 4 + 4 * topk, topkWeights + ut * topk, 4 * topk);
      } else {
        std::memcpy(meta + 4, &st->sendW[i], 4);
      }
    }
    if (send.size() != layout->sendRows[ume] * rb) {
      return Request::finished({ErrorCode::kInternal, "moeDispatch: packed rows disagree with the plan"});
    }

    // ---- the Program ----
    std::vector<unsigned char> recv((layout->landRows[ume] + layout->relayRows[ume]) * rb);
    CallBuffers b;
    b.input = send.data();
    b.output = recv.data();
    s = runProgram(withTransforms(*this, buildMoeDispatch(config, plan)), std::move(b)).wait();
    if (!s.ok()) return Request::finished(s);
    st->combine = withTransforms(*this, buildMoeCombine(config, plan));

    // ---- unpack: landing rows -> user rows, expert-major ----
    struct Entry {
      int expert, src;
      std::int32_t token;
      std::uint64_t land;
      float w;
    };
    std::vector<Entry> entries;
    const std::uint64_t land = layout->landRows[ume];
    if (forward) {
      const int myNode = P.nodeOfRank[ume];
      const int myLi = P.localIndex[ume];
      for (int src = 0; src < p; ++src) {
        const auto us = static_cast<std::size_t>(src);
        const auto& gs = P.groups[us];
        for (std::size_t g = 0; g < gs.size(); ++g) {
          if (gs[g].node != myNode || (gs[g].mask >> myLi & 1U) == 0) continue;
          const int k = std::popcount(gs[g].mask & ((std::uint64_t{1} << myLi) - 1));
          const std::uint64_t first = layout->landOff[us][g][static_cast<std::size_t>(k)];
          for (std::uint64_t i = first; i < first + gs[g].count; ++i) {
            const unsigned char* meta = recv.data() + i * rb + xBytes + scaleBytes;
            std::int32_t t = 0;
            std::memcpy(&t, meta, 4);
            for (std::size_t kk = 0; kk < topk; ++kk) {
              std::int32_t e = 0;
              float w = 0;
              std::memcpy(&e, meta + 4 + 4 * kk, 4);
              std::memcpy(&w, meta + 4 + 4 * topk + 4 * kk, 4);
              if (e >= 0 && e / epr == me) entries.push_back({e % epr, src, t, i, w});
            }
          }
        }
      }
      std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b2) {
        return std::tie(a.expert, a.src, a.token) < std::tie(b2.expert, b2.src, b2.token);
      });
    } else {
      for (int i = 0; i < epr; ++i) {
        const std::size_t ue =
            static_cast<std::size_t>(me) * static_cast<std::size_t>(epr) + static_cast<std::size_t>(i);
        for (int src = 0; src < p; ++src) {
          const auto us = static_cast<std::size_t>(src);
          const std::uint64_t first = layout->landOffDirect[us][ue];
          for (std::uint64_t r = first; r < first + P.expertCounts[us][ue]; ++r) {
            std::int32_t t = -1;
            float w = 0.0F;
            if (!config.payloadOnly) {
              std::memcpy(&t, recv.data() + r * rb + xBytes + scaleBytes, 4);
              std::memcpy(&w, recv.data() + r * rb + xBytes + scaleBytes + 4, 4);
            }
            entries.push_back({i, src, t, r, w});
          }
        }
      }
    }
    out.numRows = entries.size();
    out.expertRowOffset.assign(static_cast<std::size_t>(epr) + 1, 0);
    if (entries.size() > out.capacityRows) {
      return Request::finished(
          {ErrorCode::kInvalidArgument,
           "moeDispatch: rank " + std::to_string(me) + " receives " + std::to_string(entries.size()) +
               " rows but the receive buffers hold " + std::to_string(out.capacityRows) +
               " (MoeDispatchOut::capacityRows); give at least " + std::to_string(entries.size()) + " rows"});
    }
    if (!entries.empty() && out.recvX == nullptr) {
      return Request::finished({ErrorCode::kInvalidArgument, "moeDispatch: MoeDispatchOut::recvX is null"});
    }
    if (!entries.empty() && scaleBytes > 0 && out.recvScales == nullptr) {
      return Request::finished(
          {ErrorCode::kInvalidArgument, "moeDispatch: MoeDispatchOut::recvScales is null but FP8 scales are received"});
    }
    st->landStart.assign(land + 1, 0);
    for (const Entry& e : entries) ++st->landStart[e.land + 1];
    for (std::uint64_t i = 0; i < land; ++i) st->landStart[i + 1] += st->landStart[i];
    st->userRow.assign(entries.size(), 0);
    st->userW.assign(entries.size(), 0.0F);
    std::vector<std::uint64_t> fill(st->landStart.begin(), st->landStart.end() - 1);
    for (std::size_t u = 0; u < entries.size(); ++u) {
      const Entry& e = entries[u];
      const unsigned char* row = recv.data() + e.land * rb;
      std::memcpy(static_cast<unsigned char*>(out.recvX) + u * xBytes, row, xBytes);
      if (scaleBytes > 0)
        std::memcpy(out.recvScales + u * static_cast<std::size_t>(groupsPerToken), row + xBytes, scaleBytes);
      if (out.srcRank != nullptr) out.srcRank[u] = e.src;
      if (out.srcToken != nullptr) out.srcToken[u] = e.token;
      if (out.weight != nullptr) out.weight[u] = e.w;
      ++out.expertRowOffset[static_cast<std::size_t>(e.expert) + 1];
      const std::uint64_t slot = fill[e.land]++;
      st->userRow[slot] = u;
      st->userW[slot] = e.w;
    }
    for (int i = 0; i < epr; ++i)
      out.expertRowOffset[static_cast<std::size_t>(i) + 1] += out.expertRowOffset[static_cast<std::size_t>(i)];
    st->userRows = entries.size();
    handle.state = std::move(st);
    return Request::finished({});
  } catch (const core::Error& e) {
    return Request::finished({e.code(), e.message()});
  }
}

Request Communicator::moeCombine(const MoeHandle& handle, const void* expertOut, void* combined) {
  if (capturing()) {
    return Request::finished({ErrorCode::kInvalidUsage,
                              "moeCombine cannot be captured (its host-side unpacking runs per call): call "
                              "endCapture() first, and run MoE calls outside captures"});
  }
  if (!handle.state) {
    return Request::finished({ErrorCode::kInvalidUsage, "moeCombine: the handle is empty (call moeDispatch first)"});
  }
  const MoeHandle::State& st = *handle.state;
  const MoeConfig& c = st.config;
  const MoeLayout& L = *st.layout;
  const auto me = static_cast<std::size_t>(st.rank);
  if (st.userRows > 0 && expertOut == nullptr) {
    return Request::finished({ErrorCode::kInvalidArgument, "moeCombine: expertOut is null"});
  }
  if (st.numTokens > 0 && combined == nullptr) {
    return Request::finished({ErrorCode::kInvalidArgument, "moeCombine: combined is null"});
  }
  const auto hidden = static_cast<std::size_t>(c.hidden);
  const std::uint64_t cb = moeCombineRowBytes(c);
  const auto* y = static_cast<const std::uint16_t*>(expertOut);
  std::vector<std::uint16_t> input;
  const void* programInput = expertOut;
  std::vector<float> acc(hidden);
  if (c.path == MoePath::kForward) {
    // One row per landing row: the weighted sum of this rank's experts' outputs for that token.
    const std::uint64_t land = L.landRows[me];
    input.assign(land * hidden, 0);
    for (std::uint64_t i = 0; i < land; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0F);
      for (std::uint64_t j = st.landStart[i]; j < st.landStart[i + 1]; ++j)
        addBf16Row(acc, y + st.userRow[j] * hidden, st.userW[j]);
      putBf16Row(input.data() + i * hidden, acc);
    }
    programInput = input.data();
  }
  std::vector<unsigned char> out((L.contribRows[me] + L.reducedRows[me] + L.finalRows[me]) * cb);
  CallBuffers b;
  b.input = programInput;
  b.output = out.data();
  Status s = runProgram(st.combine, std::move(b)).wait();
  if (!s.ok()) return Request::finished(s);
  // Rows returned to this rank are in its send order; sum them per token (in float).
  const auto* fin = reinterpret_cast<const std::uint16_t*>(out.data() + (L.contribRows[me] + L.reducedRows[me]) * cb);
  std::vector<float> sum(static_cast<std::size_t>(st.numTokens) * hidden, 0.0F);
  const bool direct = c.path == MoePath::kDirect;
  for (std::size_t i = 0; i < st.sendToken.size(); ++i) {
    const auto t = static_cast<std::size_t>(st.sendToken[i]);
    const float w = direct ? st.sendW[i] : 1.0F;
    float* dst = sum.data() + t * hidden;
    const std::uint16_t* src = fin + i * hidden;
    for (std::size_t h = 0; h < hidden; ++h) dst[h] += w * core::bfloat16ToFloat(src[h]);
  }
  auto* res = static_cast<std::uint16_t*>(combined);
  for (std::size_t i = 0; i < sum.size(); ++i) res[i] = core::floatToBfloat16(sum[i]);
  return Request::finished({});
}

}  // namespace copro::collectives
