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

std::vector<std::vector<std::int32_t>> singleLoadStoreDomain(int nranks) {
  std::vector<std::int32_t> all(static_cast<std::size_t>(nranks));
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int32_t>(i);
  return {all};
}

}  // namespace copro::transport
