#include "copro/core/executor.hpp"

#include <algorithm>
#include <sstream>
#include <string>

namespace copro::core {

Status checkCallBuffers(const ProgramHeader& h, const CallBuffers& b, int rank, int size, const std::string& who) {
  const std::string name = h.name.empty() ? std::string("unnamed program") : h.name;
  if (h.nranks != size) {
    return {ErrorCode::kInvalidArgument, who + "Program '" + name + "' is for " + std::to_string(h.nranks) +
                                             " ranks, but this communicator has " + std::to_string(size)};
  }
  if (h.numSemaphores < 0) {
    return {ErrorCode::kInvalidArgument, who + "Program '" + name + "' declares a negative semaphore count"};
  }
  for (const auto* declared : {&h.inputBytes, &h.outputBytes}) {
    if (!declared->empty() && declared->size() != static_cast<std::size_t>(size)) {
      return {ErrorCode::kInvalidArgument, who + "Program '" + name + "' declares buffer sizes for " +
                                               std::to_string(declared->size()) + " ranks, not " +
                                               std::to_string(size)};
    }
  }
  const auto ri = static_cast<std::size_t>(rank);
  // The call's own sizes bound what a header cannot fix (UINT64_MAX there: all-to-all-v).
  const std::uint64_t inBytes = h.inputBytes.empty() ? 0 : std::min(h.inputBytes[ri], b.inputBytes);
  const std::uint64_t outBytes = h.outputBytes.empty() ? 0 : std::min(h.outputBytes[ri], b.outputBytes);
  if (inBytes > 0 && b.input == nullptr) {
    return {ErrorCode::kInvalidArgument,
            who + "Program '" + name + "' reads " + std::to_string(inBytes) + " input bytes, but the input is null"};
  }
  if (outBytes > 0 && b.output == nullptr) {
    return {ErrorCode::kInvalidArgument, who + "Program '" + name + "' writes " + std::to_string(outBytes) +
                                             " output bytes, but the output is null"};
  }
  if (b.layoutInit.size() > h.layoutWords) {
    return {ErrorCode::kInvalidArgument, who + "layoutInit has " + std::to_string(b.layoutInit.size()) +
                                             " words, Program '" + name + "' has a layout of " +
                                             std::to_string(h.layoutWords)};
  }
  if (b.extra.size() != b.extraBytes.size()) {
    return {ErrorCode::kInvalidArgument, who + std::to_string(b.extra.size()) + " extra buffers but " +
                                             std::to_string(b.extraBytes.size()) + " extra sizes"};
  }
  for (std::size_t e = 0; e < b.extra.size(); ++e) {
    if (b.extra[e] == nullptr && b.extraBytes[e] > 0) {
      return {ErrorCode::kInvalidArgument, who + "extra buffer " + std::to_string(e) + " is null"};
    }
  }
  return {};
}

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
