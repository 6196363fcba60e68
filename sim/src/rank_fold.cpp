/// Rank folding (rank_fold.hpp): orbit verification of the routes and the representatives' channels.
#include "rank_fold.hpp"

#include <algorithm>

namespace copro::sim::detail {

void RankFold::enable(std::int32_t nranks, std::int32_t period, std::size_t numChannels) {
  nranks_ = nranks;
  period_ = period;
  multiplicity_ = nranks / period;
  orbitRep_.assign(numChannels, -1);
  image_.assign(numChannels, -1);
  routes_.clear();
}

void RankFold::broken(const std::string& why) {
  throw Broken{why};
}

std::int64_t RankFold::route(Router& router, const NetworkModel& net, std::int32_t src, std::int32_t dst,
                             std::vector<std::int32_t>& channels) {
  // The pair shifted so that its source is a simulated rank: every pair of its orbit has the same route.
  const std::int32_t shift = src - src % period_;
  const std::int32_t s = src - shift;
  const std::int32_t d = ((dst - shift) % nranks_ + nranks_) % nranks_;
  const std::uint64_t key =
      static_cast<std::uint64_t>(s) * static_cast<std::uint64_t>(nranks_) + static_cast<std::uint64_t>(d);
  auto it = routes_.find(key);
  const FoldedRoute& r = it != routes_.end() ? it->second : verify(router, net, s, d);
  channels.assign(r.channels.begin(), r.channels.end());
  return r.latency;
}

const RankFold::FoldedRoute& RankFold::verify(Router& router, const NetworkModel& net, std::int32_t src,
                                              std::int32_t dst) {
  const auto k = static_cast<std::size_t>(multiplicity_);
  paths_.resize(k);
  std::int64_t latency = 0;
  for (std::size_t i = 0; i < k; ++i) {
    const auto shift = static_cast<std::int32_t>(i) * period_;
    const std::int32_t a = src + shift;
    const std::int32_t b = (dst + shift) % nranks_;
    paths_[i].clear();
    const std::int64_t l = router.route(a, b, 0, nullptr, paths_[i]);
    if (!router.lastRouteFixed()) broken("the route between GPUs depends on the flow (ECMP or adaptive routing)");
    if (i == 0) latency = l;
    if (l != latency || paths_[i].size() != paths_[0].size()) broken("shifted routes differ in latency or length");
  }
  FoldedRoute folded;
  folded.latency = latency;
  std::vector<std::int32_t> members(k);
  for (std::size_t pos = 0; pos < paths_[0].size(); ++pos) {
    for (std::size_t i = 0; i < k; ++i) members[i] = paths_[i][pos];
    joinOrbit(net, members);
    const std::int32_t rep = orbitRep_[static_cast<std::size_t>(members[0])];
    // A path crossing one orbit twice would load each member twice per transfer: not folded.
    if (std::find(folded.channels.begin(), folded.channels.end(), rep) != folded.channels.end()) {
      broken("a route crosses two channels of one orbit");
    }
    folded.channels.push_back(rep);
  }
  const std::uint64_t key =
      static_cast<std::uint64_t>(src) * static_cast<std::uint64_t>(nranks_) + static_cast<std::uint64_t>(dst);
  return routes_.emplace(key, std::move(folded)).first->second;
}

void RankFold::joinOrbit(const NetworkModel& net, const std::vector<std::int32_t>& members) {
  const std::size_t k = members.size();
  const auto c0 = static_cast<std::size_t>(members[0]);
  if (orbitRep_[c0] >= 0) {
    // Seen before: the shifts must map the members onto each other as they did then.
    for (std::size_t i = 0; i < k; ++i) {
      const auto c = static_cast<std::size_t>(members[i]);
      if (orbitRep_[c] != orbitRep_[c0] || image_[c] != members[(i + 1) % k]) {
        broken("the shift maps a channel to two different channels");
      }
    }
    return;
  }
  std::int32_t rep = members[0];
  for (const std::int32_t m : members) {
    const auto c = static_cast<std::size_t>(m);
    if (orbitRep_[c] != -1) broken("a channel's orbit is smaller than the number of rank classes");
    if (net.capacity(m) != net.capacity(members[0])) broken("the channels of an orbit differ in capacity");
    orbitRep_[c] = -2;  // in this orbit (a repeat above means the orbit is too small)
    rep = std::min(rep, m);
  }
  for (std::size_t i = 0; i < k; ++i) {
    const auto c = static_cast<std::size_t>(members[i]);
    orbitRep_[c] = rep;
    image_[c] = members[(i + 1) % k];
  }
}

void RankFold::expand(std::vector<NetworkModel::ChannelTotals>& totals) const {
  for (std::size_t c = 0; c < totals.size() && c < orbitRep_.size(); ++c) {
    const std::int32_t rep = orbitRep_[c];
    if (rep >= 0 && static_cast<std::size_t>(rep) != c) totals[c] = totals[static_cast<std::size_t>(rep)];
  }
}

}  // namespace copro::sim::detail
