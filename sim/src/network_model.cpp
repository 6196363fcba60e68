/// The registry of network models by name (network_model.hpp): an explicit table, no static-constructor
/// registration, so the order (and the default) is the table's.
#include "network_model.hpp"

#include <utility>

#include "alpha_beta_network.hpp"
#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "flow_network.hpp"

namespace copro::sim::detail {

namespace {

using Factory = std::unique_ptr<NetworkModel> (*)(const topo::Fabric&);

struct Registered {
  const char* name;
  Factory make;
};

const std::vector<Registered>& registry() {
  static const std::vector<Registered> models = {
      {"flow", [](const topo::Fabric& f) -> std::unique_ptr<NetworkModel> { return std::make_unique<FlowNetwork>(f); }},
      {"alpha_beta",
       [](const topo::Fabric& f) -> std::unique_ptr<NetworkModel> { return std::make_unique<AlphaBetaNetwork>(f); }},
  };
  return models;
}

}  // namespace

NetworkModel::NetworkModel(const topo::Fabric& fabric) {
  const std::size_t nch = 2 * fabric.links().size();
  capacity_.resize(nch);
  for (std::size_t l = 0; l < fabric.links().size(); ++l) {
    capacity_[2 * l] = fabric.links()[l].bandwidth.bytesPerSecond();
    capacity_[2 * l + 1] = capacity_[2 * l];
  }
  load_.assign(nch, 0);
  busySince_.assign(nch, 0);
  totals_.assign(nch, ChannelTotals{});
}

const std::vector<std::string>& networkModelNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const Registered& r : registry()) n.emplace_back(r.name);
    return n;
  }();
  return names;
}

bool isNetworkModel(std::string_view name) {
  for (const Registered& r : registry()) {
    if (name == r.name) return true;
  }
  return false;
}

std::unique_ptr<NetworkModel> makeNetworkModel(std::string_view name, const topo::Fabric& fabric) {
  for (const Registered& r : registry()) {
    if (name == r.name) return r.make(fabric);
  }
  throw core::Error(core::ErrorCode::kInvalidArgument, unknownNetworkModel(name));
}

std::string unknownNetworkModel(std::string_view name) {
  const std::string hint = core::nearestName(std::string(name), networkModelNames());
  std::string known;
  for (const std::string& n : networkModelNames()) known += (known.empty() ? "" : ", ") + n;
  return "unknown network model '" + std::string(name) + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
         "; known models: " + known;
}

}  // namespace copro::sim::detail
