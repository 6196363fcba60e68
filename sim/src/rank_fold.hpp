#pragma once
/// Rank folding (docs/simulator.md, "Symmetry"): when a Program declares a rotation period s
/// (ProgramSource::rotationPeriod) and the fabric's routes commute with shifting every GPU by s, the state
/// of a full run is invariant under that shift at every instant. The executor then simulates ranks
/// [0, s) only: a transfer to rank b lands on rank b mod s (the image of the one b receives), and every
/// channel stands for its orbit (the channels the shifts map it to), which carries one transfer per
/// simulated transfer crossing the orbit, as each member does in the full run. RankFold verifies the
/// routes as they are first used, routing the whole orbit of each GPU pair; a route that does not follow
/// the shift throws RankFold::Broken and the executor reruns every rank.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "network_model.hpp"
#include "router.hpp"

namespace copro::sim::detail {

class RankFold {
 public:
  /// Thrown while routing when the fabric does not follow the symmetry (not an error: the caller reruns).
  struct Broken {
    std::string why;
  };

  /// Folds `nranks` ranks (rank r on GPU r) with period `period` over a model of `numChannels` channels.
  void enable(std::int32_t nranks, std::int32_t period, std::size_t numChannels);
  [[nodiscard]] bool on() const { return period_ > 0; }
  /// Simulated ranks (s).
  [[nodiscard]] std::int32_t period() const { return period_; }
  /// Ranks each simulated rank stands for (nranks / s).
  [[nodiscard]] std::int32_t multiplicity() const { return multiplicity_; }
  /// The simulated rank that stands for `rank`.
  [[nodiscard]] std::int32_t rep(std::int32_t rank) const { return on() ? rank % period_ : rank; }

  /// The route GPU `src` -> `dst` over orbit representatives (channels), with its latency; verifies the
  /// pair's orbit on first use (throws Broken).
  std::int64_t route(Router& router, const NetworkModel& net, std::int32_t src, std::int32_t dst,
                     std::vector<std::int32_t>& channels);
  /// Copies each representative's totals to every member of its orbit.
  void expand(std::vector<NetworkModel::ChannelTotals>& totals) const;

 private:
  struct FoldedRoute {
    std::int64_t latency = 0;
    std::vector<std::int32_t> channels;
  };
  const FoldedRoute& verify(Router& router, const NetworkModel& net, std::int32_t src, std::int32_t dst);
  /// Records the orbit of the channels at one position of the pair's shifted paths.
  void joinOrbit(const NetworkModel& net, const std::vector<std::int32_t>& members);
  [[noreturn]] static void broken(const std::string& why);

  std::int32_t nranks_ = 0;
  std::int32_t period_ = 0;
  std::int32_t multiplicity_ = 1;
  std::vector<std::int32_t> orbitRep_;  ///< per channel: its orbit's smallest channel (-1: not seen)
  std::vector<std::int32_t> image_;     ///< per channel: where the shift by s maps it
  std::unordered_map<std::uint64_t, FoldedRoute> routes_;
  std::vector<std::vector<std::int32_t>> paths_;  ///< scratch: the shifted paths of one pair
};

}  // namespace copro::sim::detail
