/// The shared first steps of Executor::start (call_setup.hpp).
#include "call_setup.hpp"

#include <algorithm>
#include <exception>

namespace copro::transport::calls {

core::Status rankProgramOf(const core::ProgramSource& program, std::int32_t rank, const std::string& who,
                           const std::string& name, const core::RankProgram*& out) {
  try {
    out = &program.rank(rank);
  } catch (const core::Error& e) {
    return {e.code(), who + "Program '" + name + "': " + e.message()};
  } catch (const std::exception& e) {
    return {core::ErrorCode::kInternal, who + "Program '" + name + "': " + e.what()};
  }
  return {};
}

SemaphoreAdvanceCache::Advance SemaphoreAdvanceCache::find(const std::shared_ptr<const core::ProgramSource>& program) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == program) {
      std::rotate(it, it + 1, entries_.end());
      return entries_.back().second;
    }
  }
  return nullptr;
}

void SemaphoreAdvanceCache::insert(std::shared_ptr<const core::ProgramSource> program, Advance advance) {
  if (entries_.size() >= capacity_) entries_.erase(entries_.begin());
  entries_.emplace_back(std::move(program), std::move(advance));
}

SemaphoreAdvanceCache::Advance SemaphoreAdvanceCache::compute(const core::RankProgram& rp, std::int32_t numSemaphores) {
  return std::make_shared<const std::vector<std::uint64_t>>(core::semaphoreAdvance(rp, numSemaphores));
}

}  // namespace copro::transport::calls
