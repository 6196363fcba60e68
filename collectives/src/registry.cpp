#include <algorithm>
#include <sstream>

#include "algorithms_internal.hpp"
#include "copro/collectives/transform.hpp"
#include "copro/core/status.hpp"

namespace copro::collectives {

namespace {
const char* const kNames[kNumCollectiveKinds] = {
    "allreduce", "reducescatter", "reducescatterv", "allgather", "allgatherv", "broadcast", "reduce",
    "gather",    "scatter",       "alltoall",       "alltoallv", "barrier",    "sendrecv"};
}  // namespace

std::string_view collectiveName(CollectiveKind k) noexcept {
  auto i = static_cast<int>(k);
  return i >= 0 && i < kNumCollectiveKinds ? kNames[i] : "unknown";
}

bool parseCollectiveKind(std::string_view text, CollectiveKind& out) noexcept {
  std::string t;
  for (char c : text) {
    if (c != '_' && c != '-') t.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (t == "alltoallv") {
    out = CollectiveKind::kAllToAllV;
    return true;
  }
  for (int i = 0; i < kNumCollectiveKinds; ++i) {
    if (t == kNames[i]) {
      out = static_cast<CollectiveKind>(i);
      return true;
    }
  }
  if (t == "bcast") {
    out = CollectiveKind::kBroadcast;
    return true;
  }
  return false;
}

std::size_t hashArgs(const CollectiveArgs& a) noexcept {
  std::size_t h = 1469598103934665603ULL;
  auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 1099511628211ULL; };
  mix(static_cast<std::uint64_t>(a.kind));
  mix(static_cast<std::uint64_t>(a.nranks));
  mix(a.count);
  for (auto c : a.counts) mix(c);
  mix(static_cast<std::uint64_t>(a.dtype));
  mix(static_cast<std::uint64_t>(a.op));
  mix(static_cast<std::uint64_t>(a.root));
  mix(a.inPlace ? 1 : 0);
  for (int n : a.nodeOfRank) mix(static_cast<std::uint64_t>(n));
  for (const auto& d : a.loadStoreDomains) {
    mix(0xfeed);
    for (int r : d) mix(static_cast<std::uint64_t>(r));
  }
  mix(a.inNetworkReduction ? 3 : 4);
  mix(a.chunkBytes);
  mix(a.llMaxBytes);
  mix(static_cast<std::uint64_t>(a.channels));
  mix(static_cast<std::uint64_t>(a.pxnLevel));
  mix(static_cast<std::uint64_t>(a.scaleUpInitiation) * 4 + static_cast<std::uint64_t>(a.scaleOutInitiation));
  mix(static_cast<std::uint64_t>(a.rank));
  for (const auto& op : a.p2p) {
    mix(op.isSend ? 1 : 2);
    mix(static_cast<std::uint64_t>(op.peer));
    mix(op.count);
  }
  return h;
}

const std::vector<Algorithm>& algorithms() {
  static const std::vector<Algorithm> all = [] {
    std::vector<Algorithm> v;
    detail::addAllReduceAlgorithms(v);
    detail::addReduceScatterAlgorithms(v);
    detail::addAllGatherAlgorithms(v);
    detail::addHierarchicalAlgorithms(v);
    detail::addRootedAlgorithms(v);
    detail::addAllToAllAlgorithms(v);
    detail::addSyncAlgorithms(v);
    return v;
  }();
  return all;
}

std::vector<const Algorithm*> algorithmsFor(CollectiveKind kind) {
  std::vector<const Algorithm*> out;
  for (const auto& a : algorithms()) {
    if (a.kind == kind) out.push_back(&a);
  }
  return out;
}

const Algorithm* findAlgorithm(CollectiveKind kind, std::string_view name) {
  for (const auto& a : algorithms()) {
    if (a.kind == kind && a.name == name) return &a;
  }
  return nullptr;
}

std::shared_ptr<const core::ProgramSource> buildProgram(const CollectiveArgs& args, std::string_view algorithm) {
  const Algorithm* a = findAlgorithm(args.kind, algorithm);
  if (a == nullptr) {
    std::ostringstream os;
    os << "unknown " << collectiveName(args.kind) << " algorithm '" << algorithm << "'; known:";
    for (const auto* x : algorithmsFor(args.kind)) os << ' ' << x->name;
    throw core::Error(core::ErrorCode::kInvalidArgument, os.str());
  }
  std::string why = a->unsupportedReason(args);
  if (!why.empty()) {
    throw core::Error(core::ErrorCode::kUnsupported, std::string(collectiveName(args.kind)) + " algorithm '" +
                                                         std::string(algorithm) + "' cannot run this call: " + why);
  }
  return applyTransforms(a->build(args), args);
}

}  // namespace copro::collectives
