/// Registration of one-rank-per-process backends (backend_registration.hpp).
#include "backend_registration.hpp"

#include <utility>
#include <vector>

namespace copro::transport {

void addOneRankPerProcessBackend(core::ExecutorRegistry& registry, const std::string& name,
                                 std::function<std::unique_ptr<core::Executor>(const core::ExecutorOptions&)> create,
                                 std::string description) {
  registry.add(
      name,
      [create = std::move(create)](const core::ExecutorOptions& options) {
        std::vector<std::unique_ptr<core::Executor>> out;
        out.push_back(create(options));
        return out;
      },
      std::move(description));
}

}  // namespace copro::transport
