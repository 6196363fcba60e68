/// The congestion-unaware alpha-beta network model (alpha_beta_network.hpp).
#include "alpha_beta_network.hpp"

#include <algorithm>

namespace copro::sim::detail {

std::int32_t AlphaBetaNetwork::start(std::int64_t now, const std::int32_t* channels, std::size_t numChannels,
                                     std::uint64_t bytes, std::uint32_t tag) {
  std::int32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<std::int32_t>(transfers_.size());
    transfers_.emplace_back();
  }
  Transfer& t = transfers_[static_cast<std::size_t>(id)];
  ++t.version;
  t.tag = tag;
  t.channels.assign(channels, channels + numChannels);
  double narrowest = capacity(channels[0]);
  for (std::size_t i = 0; i < numChannels; ++i) {
    narrowest = std::min(narrowest, capacity(channels[i]));
    enterChannel(channels[i], now, bytes);
  }
  t.end = now + transferPs(static_cast<double>(bytes), narrowest);
  started_.push_back(id);
  ++active_;
  return id;
}

void AlphaBetaNetwork::finish(std::int32_t flow, std::int64_t now) {
  Transfer& t = transfers_[static_cast<std::size_t>(flow)];
  for (const std::int32_t ch : t.channels) leaveChannel(ch, now);
  t.channels.clear();
  free_.push_back(flow);
  --active_;
}

// No link counters: without sharing there is no utilization to report (a trace shows ops and flows only).
void AlphaBetaNetwork::recompute(std::int64_t /*now*/, std::vector<Finish>& out,
                                 const std::function<void(std::int32_t, double)>* /*onRate*/) {
  ++recomputations_;
  for (const std::int32_t id : started_) {
    const Transfer& t = transfers_[static_cast<std::size_t>(id)];
    out.push_back({id, t.version, t.end});
  }
  started_.clear();
}

}  // namespace copro::sim::detail
