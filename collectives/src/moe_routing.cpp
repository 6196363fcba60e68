/// MoE routings for the simulator and tests: uniform, Zipf-skewed and recorded (docs/moe.md).
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "copro/collectives/moe.hpp"
#include "copro/core/file_read.hpp"
#include "copro/core/limits.hpp"
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
  if (topk > numExperts) {
    throw Error(ErrorCode::kInvalidArgument, "MoE routing: topk " + std::to_string(topk) + " is out of range [1, " +
                                                 std::to_string(numExperts) +
                                                 "] (a token picks distinct experts); use a topk <= the experts");
  }
  const auto over = [](const std::string& field, std::int64_t value, std::int64_t limit, const std::string& hint) {
    throw Error(ErrorCode::kInvalidArgument, "MoE routing: " + field + " " + std::to_string(value) +
                                                 " is above the limit of " + std::to_string(limit) + "; " + hint);
  };
  if (tokens > core::kMaxMoeTokens) over("tokens", tokens, core::kMaxMoeTokens, "use fewer tokens per rank");
  if (numExperts > core::kMaxMoeExperts) over("experts", numExperts, core::kMaxMoeExperts, "use fewer experts");
  const std::int64_t slots = std::int64_t{nranks} * tokens * topk;
  if (slots > core::kMaxMoeRoutingSlots) {
    over("ranks x tokens x topk", slots, core::kMaxMoeRoutingSlots,
         "fewer ranks, tokens or topk (docs/config.md, \"Limits\")");
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

namespace {

constexpr long long kIntMax = std::numeric_limits<int>::max();

/// One pass over a routing file: rows of (rank, token) with topk ids and weights each, stored flat so that
/// memory grows with the file (which is bounded) and never with a number read from it.
class RoutingReader {
 public:
  RoutingReader(const std::string& path, const MoeRoutingLimits& limits) : path_(path), limits_(limits) {}

  void checkFile() const { core::checkBoundedFile(path_, "MoE routing file '" + path_ + "'", kMoeRoutingFileMaxBytes); }

  void readLines() {
    std::ifstream in(path_);
    if (!in) fileError("cannot be opened; check its permissions");
    readLines(in);
  }

  void readLines(std::istream& in) {
    std::string text;
    while (std::getline(in, text)) {
      ++lineNo_;
      if (const auto h = text.find('#'); h != std::string::npos) text.resize(h);
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      readLine(text);
    }
    if (rows_.empty()) throw Error(ErrorCode::kParseError, "MoE routing file '" + path_ + "' has no tokens");
  }

  MoeRouting build() {
    const std::vector<std::size_t> order = sortedRows();
    MoeRouting r;
    r.numTokens = maxToken_ + 1;
    r.topk = topk_;
    const auto k = static_cast<std::size_t>(topk_);
    const std::size_t per = static_cast<std::size_t>(r.numTokens) * k;
    r.topkIdx.assign(static_cast<std::size_t>(maxRank_) + 1, std::vector<std::int32_t>(per, -1));
    r.weights.assign(static_cast<std::size_t>(maxRank_) + 1, std::vector<float>(per, 0.0F));
    for (std::size_t i : order) {
      const Row& row = rows_[i];
      const std::size_t at = static_cast<std::size_t>(row.token) * k;
      const auto src = static_cast<std::ptrdiff_t>(i * k);
      const auto len = static_cast<std::ptrdiff_t>(k);
      std::copy(ids_.begin() + src, ids_.begin() + src + len,
                r.topkIdx[static_cast<std::size_t>(row.rank)].begin() + static_cast<std::ptrdiff_t>(at));
      std::copy(weights_.begin() + src, weights_.begin() + src + len,
                r.weights[static_cast<std::size_t>(row.rank)].begin() + static_cast<std::ptrdiff_t>(at));
    }
    return r;
  }

 private:
  struct Row {
    int rank;
    int token;
    int lineNo;
  };

  [[noreturn]] void fileError(const std::string& m) const {
    throw Error(ErrorCode::kInvalidArgument, "MoE routing file '" + path_ + "' " + m);
  }

  [[noreturn]] void fail(const std::string& m) const {
    throw Error(ErrorCode::kParseError, "MoE routing file '" + path_ + "' line " + std::to_string(lineNo_) + ": " + m +
                                            " (format: rank,token,e0,...,e{k-1}[;w0,...,w{k-1}])");
  }

  static std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::size_t from = 0;
    while (true) {
      const std::size_t comma = s.find(',', from);
      std::string item = s.substr(from, comma == std::string::npos ? std::string::npos : comma - from);
      const auto b = item.find_first_not_of(" \t\r");
      const auto e = item.find_last_not_of(" \t\r");
      out.push_back(b == std::string::npos ? std::string() : item.substr(b, e - b + 1));
      if (comma == std::string::npos) return out;
      from = comma + 1;
    }
  }

  /// An integer field in [lo, hi), parsed as a 64-bit number first so that nothing wraps around.
  long long integer(const std::string& field, const std::string& text, long long lo, long long hi,
                    const std::string& hint) const {
    if (text.empty()) fail("the " + field + " field is empty");
    long long v = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, v);
    if (ec == std::errc::result_out_of_range) {
      fail(field + " '" + text + "' is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "); " + hint);
    }
    if (ec != std::errc() || ptr != end) fail("'" + text + "' is not a number (the " + field + " field)");
    if (v < lo || v >= hi) {
      fail(field + " " + text + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "); " + hint);
    }
    return v;
  }

  float weight(const std::string& text) const {
    if (text.empty()) fail("a weight field is empty");
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size()) fail("'" + text + "' is not a number (a weight field)");
    const auto f = static_cast<float>(x);
    if (!std::isfinite(x) || !std::isfinite(f) || x < 0.0) {
      fail("weight " + text + " is out of range [0, 3.4e38] (weights must be finite and >= 0); fix the weight");
    }
    return f;
  }

  static long long bound(int limit) { return limit >= 0 ? limit : kIntMax; }

  void readLine(const std::string& text) {
    const auto semi = text.find(';');
    const std::vector<std::string> head = split(text.substr(0, semi));
    if (head.size() < 3) fail("needs rank, token and at least one expert id");
    checkTopk(static_cast<long long>(head.size()) - 2);
    checkRowCount();
    Row row{};
    row.rank = static_cast<int>(
        integer("rank", head[0], 0, bound(limits_.ranks), "the run has that many ranks (--ep); use ranks 0..R-1"));
    row.token =
        static_cast<int>(integer("token", head[1], 0, bound(limits_.tokens),
                                 "the run has that many tokens per rank (--tokens); raise it or fix the token"));
    row.lineNo = lineNo_;
    const long long experts = limits_.experts >= 0 ? limits_.experts : std::numeric_limits<std::int32_t>::max();
    for (std::size_t i = 2; i < head.size(); ++i) {
      ids_.push_back(static_cast<std::int32_t>(integer(
          "expert id", head[i], -1, experts, "the run has that many experts (--experts); use -1 for no expert")));
    }
    readWeights(semi == std::string::npos ? nullptr : &text, semi);
    maxRank_ = std::max(maxRank_, row.rank);
    maxToken_ = std::max(maxToken_, row.token);
    rows_.push_back(row);
  }

  void checkTopk(long long k) {
    if (limits_.experts >= 0 && k > limits_.experts) {
      fail("topk " + std::to_string(k) + " (expert ids per line) is out of range [1, " +
           std::to_string(limits_.experts) + "]; a token picks at most one slot per expert (--experts)");
    }
    if (topk_ < 0) topk_ = static_cast<int>(k);
    if (k != topk_) {
      fail("has " + std::to_string(k) + " expert ids but earlier lines have " + std::to_string(topk_) +
           "; every line needs the same topk");
    }
  }

  /// With ranks and tokens known, more lines than ranks x tokens can only repeat a (rank, token).
  void checkRowCount() const {
    if (limits_.ranks < 0 || limits_.tokens < 0) return;
    const std::uint64_t most = static_cast<std::uint64_t>(limits_.ranks) * static_cast<std::uint64_t>(limits_.tokens);
    if (rows_.size() >= most) {
      fail("more lines than ranks x tokens (" + std::to_string(most) + "); every (rank, token) appears once");
    }
  }

  void readWeights(const std::string* text, std::size_t semi) {
    const auto k = static_cast<std::size_t>(topk_);
    if (text == nullptr) {
      weights_.insert(weights_.end(), k, 1.0F / static_cast<float>(topk_));
      return;
    }
    const std::vector<std::string> w = split(text->substr(semi + 1));
    if (w.size() != k) fail("has " + std::to_string(w.size()) + " weights for " + std::to_string(k) + " expert ids");
    for (const std::string& f : w) weights_.push_back(weight(f));
  }

  /// Row indices by (rank, token); a repeated or missing (rank, token) is an error, found before any
  /// allocation sized by the file's largest rank and token.
  std::vector<std::size_t> sortedRows() {
    std::vector<std::size_t> order(rows_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      const Row& x = rows_[a];
      const Row& y = rows_[b];
      return std::tie(x.rank, x.token, x.lineNo) < std::tie(y.rank, y.token, y.lineNo);
    });
    const auto tokens = static_cast<std::uint64_t>(maxToken_) + 1;
    for (std::size_t i = 0; i < order.size(); ++i) {
      const Row& row = rows_[order[i]];
      const std::uint64_t key = static_cast<std::uint64_t>(row.rank) * tokens + static_cast<std::uint64_t>(row.token);
      if (key < i) {
        lineNo_ = row.lineNo;
        fail("rank " + std::to_string(row.rank) + " token " + std::to_string(row.token) + " appears twice");
      }
      if (key > i) missing(i / tokens, i % tokens);
    }
    if (order.size() != (static_cast<std::uint64_t>(maxRank_) + 1) * tokens)
      missing(order.size() / tokens, order.size() % tokens);
    return order;
  }

  [[noreturn]] void missing(std::uint64_t rank, std::uint64_t token) const {
    throw Error(ErrorCode::kParseError, "MoE routing file '" + path_ + "': rank " + std::to_string(rank) + " token " +
                                            std::to_string(token) + " is missing (every rank needs tokens 0.." +
                                            std::to_string(maxToken_) + "); add the line or drop the larger token ids");
  }

  const std::string& path_;
  const MoeRoutingLimits& limits_;
  int lineNo_ = 0;
  int topk_ = -1;
  int maxRank_ = -1;
  int maxToken_ = -1;
  std::vector<Row> rows_;
  std::vector<std::int32_t> ids_;
  std::vector<float> weights_;
};

}  // namespace

MoeRouting MoeRouting::fromFile(const std::string& path, const MoeRoutingLimits& limits) {
  RoutingReader reader(path, limits);
  reader.checkFile();
  reader.readLines();
  return reader.build();
}

MoeRouting MoeRouting::fromText(const std::string& text, const std::string& origin, const MoeRoutingLimits& limits) {
  if (text.size() > kMoeRoutingFileMaxBytes) {
    throw Error(ErrorCode::kInvalidArgument, "MoE routing file '" + origin + "' is " + std::to_string(text.size()) +
                                                 " bytes; the limit is " + std::to_string(kMoeRoutingFileMaxBytes));
  }
  RoutingReader reader(origin, limits);
  std::istringstream in(text);
  reader.readLines(in);
  return reader.build();
}

}  // namespace copro::collectives
