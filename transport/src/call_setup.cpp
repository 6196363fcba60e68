/// The shared first steps of Executor::start (call_setup.hpp).
#include "call_setup.hpp"

#include <algorithm>
#include <exception>
#include <utility>

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

PreparedRank PreparedRankCache::find(const std::shared_ptr<const core::ProgramSource>& program) {
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == program) {
      std::rotate(it, it + 1, entries_.end());
      return entries_.back().second;
    }
  }
  return {};
}

void PreparedRankCache::insert(std::shared_ptr<const core::ProgramSource> program, PreparedRank prepared) {
  if (entries_.size() >= capacity_) entries_.erase(entries_.begin());
  entries_.emplace_back(std::move(program), std::move(prepared));
}

core::Status prepareCall(CallBase& call, const std::shared_ptr<const core::ProgramSource>& program,
                         PreparedRankCache& cache, std::mutex* mutex, const std::string& who) {
  PreparedRank prepared;
  {
    std::unique_lock<std::mutex> lock;
    if (mutex != nullptr) lock = std::unique_lock<std::mutex>(*mutex);
    prepared = cache.find(program);
  }
  if (!prepared.flat) {
    try {
      prepared.advance = std::make_shared<const std::vector<std::uint64_t>>(
          core::semaphoreAdvance(*call.rankProgram, program->header().numSemaphores));
      prepared.flat = std::make_shared<const core::FlatRankProgram>(core::flatten(*call.rankProgram));
    } catch (const core::Error& e) {
      return {e.code(), who + e.message()};
    }
    std::unique_lock<std::mutex> lock;
    if (mutex != nullptr) lock = std::unique_lock<std::mutex>(*mutex);
    cache.insert(program, prepared);
  }
  call.advance = std::move(prepared.advance);
  call.flat = std::move(prepared.flat);
  return {};
}

core::Status openCall(CallBase& call, std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
                      std::int32_t rank, int size, PreparedRankCache& cache, std::mutex* mutex, const std::string& who,
                      std::string& name) {
  if (!program) return {core::ErrorCode::kInvalidArgument, who + "start() was given no Program"};
  const core::ProgramHeader& h = program->header();
  name = h.name.empty() ? std::string("unnamed program") : h.name;
  COPRO_RETURN_IF_ERROR(core::checkCallBuffers(h, b, rank, size, who));
  COPRO_RETURN_IF_ERROR(rankProgramOf(*program, rank, who, name, call.rankProgram));
  COPRO_RETURN_IF_ERROR(prepareCall(call, program, cache, mutex, who));
  call.program = std::move(program);
  call.header = &h;
  call.buffers = b;
  return {};
}

std::vector<Region> userRegions(const core::ProgramHeader& h, const core::CallBuffers& b, std::int32_t rank) {
  const auto ri = static_cast<std::size_t>(rank);
  std::vector<Region> out(static_cast<std::size_t>(core::kNumBuffers) + b.extra.size());
  out[static_cast<std::size_t>(core::BufferId::kInput)] =
      Region{static_cast<std::byte*>(const_cast<void*>(b.input)),
             h.inputBytes.empty() ? 0 : std::min(h.inputBytes[ri], b.inputBytes), b.input == b.output};
  out[static_cast<std::size_t>(core::BufferId::kOutput)] = Region{
      static_cast<std::byte*>(b.output), h.outputBytes.empty() ? 0 : std::min(h.outputBytes[ri], b.outputBytes), true};
  for (std::size_t e = 0; e < b.extra.size(); ++e) {
    out[static_cast<std::size_t>(core::kNumBuffers) + e] =
        Region{static_cast<std::byte*>(b.extra[e]), b.extraBytes[e], true};
  }
  return out;
}

std::string callLabel(const std::string& name, std::uint64_t seq, std::int32_t rank) {
  return name + " (call " + std::to_string(seq) + ") on rank " + std::to_string(rank);
}

core::Status refusal(const std::string& label, bool aborted, bool broken, const core::Status& brokenStatus) {
  if (aborted) return {core::ErrorCode::kAborted, label + ": the communicator was aborted (Executor::abort())"};
  if (broken) {
    return {brokenStatus.code(),
            label + ": the communicator is unusable after an earlier failure: " + brokenStatus.message()};
  }
  return {};
}

}  // namespace copro::transport::calls
