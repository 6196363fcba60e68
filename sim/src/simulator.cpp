/// Simulator (simulator.hpp): the fabric, its parameters and router, and runs through the executor
/// (lane_executor.hpp).
#include "copro/sim/simulator.hpp"

#include <string>
#include <utility>

#include "copro/core/status.hpp"
#include "lane_executor.hpp"
#include "router.hpp"

namespace copro::sim {

using core::Error;
using core::ErrorCode;

struct Simulator::Impl {
  Impl(const topo::Fabric& f, SimParams p)
      : fabric(f), params(std::move(p)), router(f, params.routing, params.ecmpSeed) {}
  const topo::Fabric& fabric;
  SimParams params;
  detail::Router router;
};

Simulator::Simulator(const topo::Fabric& fabric, SimParams params)
    : impl_(std::make_unique<Impl>(fabric, std::move(params))) {}

Simulator::~Simulator() = default;

Result Simulator::run(const core::ProgramSource& program, const RunOptions& options) {
  const std::vector<Job> jobs = {Job{&program, options.placement, core::Time{}}};
  return detail::execute(impl_->fabric, impl_->params, impl_->router, jobs, options);
}

Result Simulator::runConcurrently(const std::vector<Job>& jobs, const RunOptions& options) {
  return detail::execute(impl_->fabric, impl_->params, impl_->router, jobs, options);
}

std::vector<std::int32_t> Simulator::route(std::int32_t src, std::int32_t dst, std::uint64_t flowHash) {
  const auto n = static_cast<std::int32_t>(impl_->fabric.gpus().size());
  if (src < 0 || src >= n || dst < 0 || dst >= n) {
    throw Error(ErrorCode::kInvalidArgument, "route: GPU ranks " + std::to_string(src) + " -> " + std::to_string(dst) +
                                                 " out of range (the fabric has " + std::to_string(n) + " GPUs)");
  }
  std::vector<std::int32_t> out;
  if (src != dst) impl_->router.route(src, dst, flowHash, nullptr, out);
  return out;
}

const topo::Fabric& Simulator::fabric() const {
  return impl_->fabric;
}
const SimParams& Simulator::params() const {
  return impl_->params;
}

}  // namespace copro::sim
