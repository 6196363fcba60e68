/// The shared first steps of Executor::start (call_setup.hpp).
#include "call_setup.hpp"

#include <algorithm>
#include <exception>
#include <utility>

#include "ll_mailbox.hpp"

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

namespace {

bool local(const core::Addr& a, std::int32_t rank) {
  return a.rank == core::kSelf || a.rank == rank;
}

bool llPeerOk(const core::Op& op, std::int32_t rank, int size) {
  return op.protocol == core::Protocol::kLL && op.peer >= 0 && op.peer < size && op.peer != rank &&
         op.bytes <= core::kLLSlotBytes && !op.indirect.active();
}

/// The op touches no peer's published buffers or semaphores (see programIsLLOnly).
bool opIsLLOrLocal(const core::Op& op, std::int32_t rank, int size) {
  switch (op.code) {
    case core::OpCode::kPut:
      return llPeerOk(op, rank, size);
    case core::OpCode::kWait:
      return op.protocol == core::Protocol::kSimple || (llPeerOk(op, rank, size) && local(op.dst, rank));
    case core::OpCode::kCopy:
      return local(op.dst, rank) && local(op.src, rank);
    case core::OpCode::kReduce:
      return local(op.dst, rank) &&
             std::all_of(op.srcs.begin(), op.srcs.end(), [&](const core::Addr& a) { return local(a, rank); });
    case core::OpCode::kFlush:
      return true;
    default:
      return false;
  }
}

bool rankIsLLOnly(const core::RankProgram& rp, std::int32_t rank, int size) {
  for (const core::RankProgram::Lane& lane : rp.lanes) {
    for (const core::Op& op : lane.ops) {
      if (!opIsLLOrLocal(op, rank, size)) return false;
    }
  }
  return true;
}

bool hasLLOp(const core::RankProgram& rp) {
  for (const core::RankProgram::Lane& lane : rp.lanes) {
    for (const core::Op& op : lane.ops) {
      if (op.protocol == core::Protocol::kLL) return true;
    }
  }
  return false;
}

}  // namespace

bool callIsLLOnly(const core::ProgramSource& program, std::int32_t rank, int size) {
  if (size > lanes::kLLMaxRanks) return false;
  try {
    const core::RankProgram& own = program.rank(rank);
    // Cheap first: this rank's own ops; only then every rank's (once per Program).
    return (size == 1 || hasLLOp(own)) && rankIsLLOnly(own, rank, size) && programIsLLOnly(program, size);
  } catch (const std::exception&) {
    return false;
  }
}

bool programIsLLOnly(const core::ProgramSource& program, int size) {
  try {
    for (std::int32_t r = 0; r < size; ++r) {
      if (!rankIsLLOnly(program.rank(r), r, size)) return false;
    }
  } catch (const std::exception&) {
    return false;  // a rank's ops cannot be generated: that rank's own call reports it
  }
  return true;
}

namespace {
const std::string& unnamedProgram() {
  static const std::string name("unnamed program");
  return name;
}
}  // namespace

std::string CallBase::label() const {
  return callLabel(header != nullptr && !header->name.empty() ? header->name : unnamedProgram(), seq, execRank);
}

core::Status prepareCall(CallBase& call, const std::shared_ptr<const core::ProgramSource>& program,
                         PreparedRankCache& cache, std::mutex* mutex, const std::string& who, int size) {
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
      prepared.llOnly = callIsLLOnly(*program, call.execRank, size);
    } catch (const core::Error& e) {
      return {e.code(), who + e.message()};
    }
    std::unique_lock<std::mutex> lock;
    if (mutex != nullptr) lock = std::unique_lock<std::mutex>(*mutex);
    cache.insert(program, prepared);
  }
  call.advance = std::move(prepared.advance);
  call.flat = std::move(prepared.flat);
  call.llOnly = prepared.llOnly;
  return {};
}

core::Status openCall(CallBase& call, std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
                      std::int32_t rank, int size, PreparedRankCache& cache, std::mutex* mutex,
                      const std::string& who) {
  if (!program) return {core::ErrorCode::kInvalidArgument, who + "start() was given no Program"};
  const core::ProgramHeader& h = program->header();
  COPRO_RETURN_IF_ERROR(core::checkCallBuffers(h, b, rank, size, who));
  call.execRank = rank;
  COPRO_RETURN_IF_ERROR(
      rankProgramOf(*program, rank, who, h.name.empty() ? unnamedProgram() : h.name, call.rankProgram));
  COPRO_RETURN_IF_ERROR(prepareCall(call, program, cache, mutex, who, size));
  call.program = std::move(program);
  call.header = &h;
  call.buffers = b;
  return {};
}

void userRegions(const core::ProgramHeader& h, const core::CallBuffers& b, std::int32_t rank,
                 std::vector<Region>& out) {
  const auto ri = static_cast<std::size_t>(rank);
  out.assign(static_cast<std::size_t>(core::kNumBuffers) + b.extra.size(), Region{});
  out[static_cast<std::size_t>(core::BufferId::kInput)] =
      Region{static_cast<std::byte*>(const_cast<void*>(b.input)),
             h.inputBytes.empty() ? 0 : std::min(h.inputBytes[ri], b.inputBytes), b.input == b.output};
  out[static_cast<std::size_t>(core::BufferId::kOutput)] = Region{
      static_cast<std::byte*>(b.output), h.outputBytes.empty() ? 0 : std::min(h.outputBytes[ri], b.outputBytes), true};
  for (std::size_t e = 0; e < b.extra.size(); ++e) {
    out[static_cast<std::size_t>(core::kNumBuffers) + e] =
        Region{static_cast<std::byte*>(b.extra[e]), b.extraBytes[e], true};
  }
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
