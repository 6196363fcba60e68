/// MoE routings for the simulator and tests: uniform, Zipf-skewed and recorded (docs/moe.md).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {

using core::Error;
using core::ErrorCode;

namespace {

/// Weighted sampling of `k` distinct indices without replacement (Efraimidis-Spirakis keys log(u)/w).
std::vector<int> sampleWeighted(const std::vector<int>& candidates, const std::vector<double>& weight, int k,
                                std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<std::pair<double, int>> keyed;
  keyed.reserve(candidates.size());
  for (int c : candidates) {
    const double w = weight[static_cast<std::size_t>(c)];
    double x = u(rng);
    if (x <= 0.0) x = 1e-300;
    keyed.emplace_back(w > 0 ? std::log(x) / w : -1e300, c);
  }
  const auto kk = static_cast<std::size_t>(std::min<std::size_t>(static_cast<std::size_t>(k), keyed.size()));
  std::partial_sort(
      keyed.begin(), keyed.begin() + static_cast<std::ptrdiff_t>(kk), keyed.end(),
      [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  std::vector<int> out;
  out.reserve(kk);
  for (std::size_t i = 0; i < kk; ++i) out.push_back(keyed[i].second);
  return out;
}

MoeRouting generate(int nranks, int tokens, int topk, int numExperts, int maxNodes, const std::vector<int>& nodeOfRank,
                    const std::vector<double>& popularity, std::uint64_t seed) {
  if (nranks < 1 || tokens < 0 || topk < 1 || numExperts < 1 || numExperts % nranks != 0) {
    throw Error(ErrorCode::kInvalidArgument,
                "MoE routing: needs ranks >= 1, tokens >= 0, topk >= 1 and numExperts a multiple of the ranks (got " +
                    std::to_string(nranks) + " ranks, " + std::to_string(tokens) + " tokens, topk " +
                    std::to_string(topk) + ", " + std::to_string(numExperts) + " experts)");
  }
  std::vector<int> nodes = nodeOfRank;
  if (nodes.empty()) nodes.assign(static_cast<std::size_t>(nranks), 0);
  if (static_cast<int>(nodes.size()) != nranks) {
    throw Error(ErrorCode::kInvalidArgument, "MoE routing: the node map needs one entry per rank");
  }
  const int epr = numExperts / nranks;
  int numNodes = 0;
  for (int n : nodes) numNodes = std::max(numNodes, n + 1);
  std::vector<std::vector<int>> expertsOfNode(static_cast<std::size_t>(numNodes));
  for (int e = 0; e < numExperts; ++e)
    expertsOfNode[static_cast<std::size_t>(nodes[static_cast<std::size_t>(e / epr)])].push_back(e);
  std::vector<double> nodeWeight(static_cast<std::size_t>(numNodes), 0.0);
  std::vector<int> allNodes;
  for (int n = 0; n < numNodes; ++n) {
    for (int e : expertsOfNode[static_cast<std::size_t>(n)])
      nodeWeight[static_cast<std::size_t>(n)] += popularity[static_cast<std::size_t>(e)];
    if (!expertsOfNode[static_cast<std::size_t>(n)].empty()) allNodes.push_back(n);
  }
  const bool limited = maxNodes > 0 && maxNodes < static_cast<int>(allNodes.size());
  std::vector<int> allExperts(static_cast<std::size_t>(numExperts));
  for (int e = 0; e < numExperts; ++e) allExperts[static_cast<std::size_t>(e)] = e;
  MoeRouting r;
  r.numTokens = tokens;
  r.topk = topk;
  r.topkIdx.resize(static_cast<std::size_t>(nranks));
  r.weights.resize(static_cast<std::size_t>(nranks));
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> wdist(0.1F, 1.0F);
  for (int rank = 0; rank < nranks; ++rank) {
    auto& idx = r.topkIdx[static_cast<std::size_t>(rank)];
    auto& w = r.weights[static_cast<std::size_t>(rank)];
    idx.assign(static_cast<std::size_t>(tokens) * static_cast<std::size_t>(topk), -1);
    w.assign(idx.size(), 0.0F);
    for (int t = 0; t < tokens; ++t) {
      std::vector<int> chosen;
      if (limited) {
        std::vector<int> cand;
        for (int n : sampleWeighted(allNodes, nodeWeight, maxNodes, rng)) {
          const auto& es = expertsOfNode[static_cast<std::size_t>(n)];
          cand.insert(cand.end(), es.begin(), es.end());
        }
        std::sort(cand.begin(), cand.end());
        chosen = sampleWeighted(cand, popularity, topk, rng);
      } else {
        chosen = sampleWeighted(allExperts, popularity, topk, rng);
      }
      float sum = 0.0F;
      for (std::size_t k = 0; k < chosen.size(); ++k) {
        const std::size_t at = static_cast<std::size_t>(t) * static_cast<std::size_t>(topk) + k;
        idx[at] = chosen[k];
        w[at] = wdist(rng);
        sum += w[at];
      }
      for (std::size_t k = 0; k < chosen.size(); ++k) {
        w[static_cast<std::size_t>(t) * static_cast<std::size_t>(topk) + k] /= sum;
      }
    }
  }
  return r;
}

}  // namespace

MoeRouting MoeRouting::uniform(int nranks, int tokens, int topk, int numExperts, int maxNodes,
                               const std::vector<int>& nodeOfRank, std::uint64_t seed) {
  const std::vector<double> pop(static_cast<std::size_t>(std::max(0, numExperts)), 1.0);
  return generate(nranks, tokens, topk, numExperts, maxNodes, nodeOfRank, pop, seed);
}

MoeRouting MoeRouting::zipf(int nranks, int tokens, int topk, int numExperts, int maxNodes,
                            const std::vector<int>& nodeOfRank, double exponent, std::uint64_t seed) {
  if (!(exponent >= 0.0)) {
    throw Error(ErrorCode::kInvalidArgument,
                "MoE routing: the Zipf exponent must be >= 0 (got " + std::to_string(exponent) + ")");
  }
  std::vector<int> order(static_cast<std::size_t>(std::max(0, numExperts)));
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::mt19937_64 shuffleRng(seed ^ 0x9e3779b97f4a7c15ULL);
  std::shuffle(order.begin(), order.end(), shuffleRng);
  std::vector<double> pop(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    pop[static_cast<std::size_t>(order[i])] = 1.0 / std::pow(static_cast<double>(i + 1), exponent);
  }
  return generate(nranks, tokens, topk, numExperts, maxNodes, nodeOfRank, pop, seed);
}

MoeRouting MoeRouting::fromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(ErrorCode::kInvalidArgument, "MoE routing file '" + path + "' cannot be opened");
  struct Line {
    int rank, token;
    std::vector<std::int32_t> ids;
    std::vector<float> w;
    int lineNo;
  };
  std::vector<Line> lines;
  std::string text;
  int lineNo = 0;
  int topk = -1;
  int maxRank = -1;
  int maxToken = -1;
  const auto fail = [&](const std::string& m) {
    throw Error(ErrorCode::kParseError, "MoE routing file '" + path + "' line " + std::to_string(lineNo) + ": " + m +
                                            " (format: rank,token,e0,...,e{k-1}[;w0,...,w{k-1}])");
  };
  const auto parseList = [&](const std::string& s, bool ints) {
    std::vector<double> v;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
      const auto b = item.find_first_not_of(" \t\r");
      const auto e = item.find_last_not_of(" \t\r");
      if (b == std::string::npos) fail("empty field");
      const std::string f = item.substr(b, e - b + 1);
      try {
        std::size_t used = 0;
        const double x = ints ? static_cast<double>(std::stoll(f, &used)) : std::stod(f, &used);
        if (used != f.size()) fail("'" + f + "' is not a number");
        v.push_back(x);
      } catch (const std::logic_error&) {
        fail("'" + f + "' is not a number");
      }
    }
    return v;
  };
  while (std::getline(in, text)) {
    ++lineNo;
    if (const auto h = text.find('#'); h != std::string::npos) text.resize(h);
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto semi = text.find(';');
    const std::vector<double> head = parseList(text.substr(0, semi), true);
    if (head.size() < 3) fail("needs rank, token and at least one expert id");
    Line l;
    l.rank = static_cast<int>(head[0]);
    l.token = static_cast<int>(head[1]);
    l.lineNo = lineNo;
    if (l.rank < 0 || l.token < 0) fail("rank and token must be >= 0");
    for (std::size_t i = 2; i < head.size(); ++i) {
      if (head[i] < -1) fail("expert id " + std::to_string(static_cast<long long>(head[i])) + " (use -1 for none)");
      l.ids.push_back(static_cast<std::int32_t>(head[i]));
    }
    if (topk < 0) topk = static_cast<int>(l.ids.size());
    if (static_cast<int>(l.ids.size()) != topk) {
      fail("has " + std::to_string(l.ids.size()) + " expert ids but earlier lines have " + std::to_string(topk));
    }
    if (semi != std::string::npos) {
      for (double x : parseList(text.substr(semi + 1), false)) l.w.push_back(static_cast<float>(x));
      if (static_cast<int>(l.w.size()) != topk) {
        fail("has " + std::to_string(l.w.size()) + " weights for " + std::to_string(topk) + " expert ids");
      }
    } else {
      l.w.assign(static_cast<std::size_t>(topk), 1.0F / static_cast<float>(topk));
    }
    maxRank = std::max(maxRank, l.rank);
    maxToken = std::max(maxToken, l.token);
    lines.push_back(std::move(l));
  }
  if (lines.empty()) throw Error(ErrorCode::kParseError, "MoE routing file '" + path + "' has no tokens");
  MoeRouting r;
  r.numTokens = maxToken + 1;
  r.topk = topk;
  const std::size_t per = static_cast<std::size_t>(r.numTokens) * static_cast<std::size_t>(topk);
  r.topkIdx.assign(static_cast<std::size_t>(maxRank) + 1, std::vector<std::int32_t>(per, -2));
  r.weights.assign(static_cast<std::size_t>(maxRank) + 1, std::vector<float>(per, 0.0F));
  for (const Line& l : lines) {
    auto& idx = r.topkIdx[static_cast<std::size_t>(l.rank)];
    const std::size_t at = static_cast<std::size_t>(l.token) * static_cast<std::size_t>(topk);
    if (idx[at] != -2) {
      lineNo = l.lineNo;
      fail("rank " + std::to_string(l.rank) + " token " + std::to_string(l.token) + " appears twice");
    }
    std::copy(l.ids.begin(), l.ids.end(), idx.begin() + static_cast<std::ptrdiff_t>(at));
    std::copy(l.w.begin(), l.w.end(),
              r.weights[static_cast<std::size_t>(l.rank)].begin() + static_cast<std::ptrdiff_t>(at));
  }
  for (std::size_t rk = 0; rk < r.topkIdx.size(); ++rk) {
    for (std::size_t t = 0; t < static_cast<std::size_t>(r.numTokens); ++t) {
      if (r.topkIdx[rk][t * static_cast<std::size_t>(topk)] == -2) {
        throw Error(ErrorCode::kParseError, "MoE routing file '" + path + "': rank " + std::to_string(rk) + " token " +
                                                std::to_string(t) + " is missing (every rank needs tokens 0.." +
                                                std::to_string(r.numTokens - 1) + ")");
      }
    }
  }
  return r;
}

}  // namespace copro::collectives
