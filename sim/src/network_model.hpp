#pragma once
/// The network model interface of the executor (docs/simulator.md, "Network models"): the executor hands a
/// model transfers (a path of directed channels and a size) and asks when each ends; the model decides how
/// transfers share the channels. Models are registered by name and chosen with the fabric's `sim.network`
/// key, as SimGrid chooses its network model with a configuration flag: `flow` (max-min fair sharing,
/// flow_network.hpp) and `alpha_beta` (congestion-unaware, alpha_beta_network.hpp). A packet-level or
/// learned model is one more subclass and one more line in the registry (network_model.cpp).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "copro/topologies/fabric.hpp"

namespace copro::sim::detail {

class NetworkModel {
 public:
  explicit NetworkModel(const topo::Fabric& fabric);
  virtual ~NetworkModel() = default;
  NetworkModel(const NetworkModel&) = delete;
  NetworkModel& operator=(const NetworkModel&) = delete;

  /// A transfer whose completion time was (re)computed: the executor schedules its end at `time`.
  struct Finish {
    std::int32_t flow;
    std::uint32_t version;
    std::int64_t time;
  };

  /// Starts a transfer of `bytes` (> 0) over `channels` (>= 1) at `now`; `tag` is the caller's (tagOf).
  /// Its end time comes out of the next recompute().
  virtual std::int32_t start(std::int64_t now, const std::int32_t* channels, std::size_t numChannels,
                             std::uint64_t bytes, std::uint32_t tag) = 0;
  /// Removes a transfer whose end (as last reported by recompute) has come.
  virtual void finish(std::int32_t flow, std::int64_t now) = 0;
  [[nodiscard]] virtual std::uint32_t tagOf(std::int32_t flow) const = 0;
  /// Reports, in `out`, every transfer whose end time changed since the last call; `onRate(channel,
  /// utilization)` (optional) receives the new load of the channels whose load changed.
  virtual void recompute(std::int64_t now, std::vector<Finish>& out,
                         const std::function<void(std::int32_t, double)>* onRate = nullptr) = 0;
  /// Batched solves so far (Result::rateRecomputations).
  [[nodiscard]] virtual std::uint64_t recomputations() const = 0;

  /// Transfers currently on a channel (adaptive routing reads it).
  [[nodiscard]] const std::vector<std::int32_t>& channelLoad() const { return load_; }
  [[nodiscard]] std::size_t activeFlows() const { return active_; }
  /// Work done by the solves so far (flows + channels visited): progress reports between events.
  [[nodiscard]] std::uint64_t solveWork() const { return solveWork_; }
  struct ChannelTotals {
    std::uint64_t bytes = 0;
    std::int64_t busy = 0;  ///< ps with at least one transfer
  };
  [[nodiscard]] const std::vector<ChannelTotals>& totals() const { return totals_; }
  /// Bytes/s of a directed channel.
  [[nodiscard]] double capacity(std::int32_t channel) const { return capacity_[static_cast<std::size_t>(channel)]; }
  [[nodiscard]] std::size_t numChannels() const { return capacity_.size(); }
  /// Counts bytes that crossed a channel outside the model (standalone signals).
  void addBytes(std::int32_t channel, std::uint64_t bytes) {
    totals_[static_cast<std::size_t>(channel)].bytes += bytes;
  }

 protected:
  /// Book-keeping every model shares: a transfer enters / leaves a channel.
  void enterChannel(std::int32_t channel, std::int64_t now, std::uint64_t bytes) {
    const auto c = static_cast<std::size_t>(channel);
    if (load_[c]++ == 0) busySince_[c] = now;
    totals_[c].bytes += bytes;
  }
  void leaveChannel(std::int32_t channel, std::int64_t now) {
    const auto c = static_cast<std::size_t>(channel);
    if (--load_[c] == 0) totals_[c].busy += now - busySince_[c];
  }

  std::vector<double> capacity_;  ///< bytes/s per channel
  std::vector<std::int32_t> load_;
  std::vector<std::int64_t> busySince_;
  std::vector<ChannelTotals> totals_;
  std::size_t active_ = 0;
  std::uint64_t solveWork_ = 0;
};

/// The registered model names, in registry order ("flow" first: the default).
const std::vector<std::string>& networkModelNames();
/// True when `name` is a registered model.
bool isNetworkModel(std::string_view name);
/// "unknown network model 'x' (did you mean 'flow'?); known models: flow, alpha_beta".
std::string unknownNetworkModel(std::string_view name);
/// Makes the named model for `fabric`; throws core::Error(kInvalidArgument) naming the known models.
std::unique_ptr<NetworkModel> makeNetworkModel(std::string_view name, const topo::Fabric& fabric);

/// ceil(bytes / rate) in picoseconds, tolerant of the last-bit noise of the division so that exact
/// quotients stay exact.
std::int64_t transferPs(double bytes, double bytesPerSecond);

}  // namespace copro::sim::detail
