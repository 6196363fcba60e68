#include "copro/core/executor.hpp"

#include <sstream>

namespace copro::core {

ExecutorRegistry& ExecutorRegistry::instance() {
  static ExecutorRegistry registry;
  return registry;
}

void ExecutorRegistry::add(const std::string& name, Factory factory, std::string description) {
  std::lock_guard<std::mutex> lock(mutex_);
  factories_[name] = {std::move(factory), std::move(description)};
}

bool ExecutorRegistry::has(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return factories_.count(name) != 0;
}

std::vector<std::unique_ptr<Executor>> ExecutorRegistry::create(const std::string& name,
                                                                const ExecutorOptions& options) const {
  Factory factory;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = factories_.find(name);
    if (it == factories_.end()) {
      std::ostringstream os;
      os << "no backend named '" << name << "' in this build; available:";
      for (const auto& [n, f] : factories_) os << ' ' << n;
      throw Error(ErrorCode::kUnsupported, os.str());
    }
    factory = it->second.first;
  }
  return factory(options);
}

std::vector<std::pair<std::string, std::string>> ExecutorRegistry::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [n, f] : factories_) out.emplace_back(n, f.second);
  return out;
}

}  // namespace copro::core
