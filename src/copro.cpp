#include "copro/copro.hpp"

#include <mutex>

#include "copro/transport/inproc.hpp"

namespace copro {

void registerBuiltinBackends() {
  static std::once_flag once;
  std::call_once(once, [] { transport::registerInproc(core::ExecutorRegistry::instance()); });
}

std::vector<Communicator> createCommunicators(const std::string& backend, const core::ExecutorOptions& options) {
  registerBuiltinBackends();
  return Communicator::createAll(backend, options);
}

std::vector<Communicator> createInproc(int nranks, const Config& config, std::vector<int> nodeOfRank) {
  if (nranks <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "createInproc: nranks must be > 0, got " + std::to_string(nranks));
  }
  if (!nodeOfRank.empty() && static_cast<int>(nodeOfRank.size()) != nranks) {
    throw Error(ErrorCode::kInvalidArgument, "createInproc: nodeOfRank has " + std::to_string(nodeOfRank.size()) +
                                                 " entries for " + std::to_string(nranks) + " ranks");
  }
  core::ExecutorOptions options;
  options.nranks = nranks;
  options.config = config;
  options.nodeOfRank = std::move(nodeOfRank);
  return createCommunicators("inproc", options);
}

const char* version() {
  return COPRO_VERSION;
}

}  // namespace copro
