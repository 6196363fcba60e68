#pragma once
/// Streaming Programs: ops generated one at a time by C++20 coroutines.
///
/// An algorithm written as a coroutine `OpStream f(...) { ... co_yield Op::put(...); ... }` serves both
/// forms of a Program from one source: `StreamProgram::openLane` runs a fresh coroutine per cursor
/// (memory: the coroutine frames, independent of how many ops the lane has), and `StreamProgram::rank`
/// drains the streams once into a cached RankProgram for the executors, the validator and JSON. See
/// docs/program-ir.md ("Streaming Programs").
#include <atomic>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "copro/core/program.hpp"

namespace copro::core {

/// A lazily generated sequence of ops: the return type of a coroutine that `co_yield`s Ops.
///
/// `co_yield op` hands out one op; `co_yield otherStream` splices a whole sub-stream, not yet advanced,
/// in place (stages compose without copying every op through each level; an empty stream splices
/// nothing). The coroutine starts suspended and runs only
/// inside `next()`. An exception thrown by the coroutine (or a sub-stream) comes out of `next()`; the
/// stream then ends. Move-only; destroying it destroys the coroutine frames.
class OpStream {
 public:
  class promise_type {
   public:
    OpStream get_return_object() noexcept { return OpStream(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    std::suspend_always final_suspend() const noexcept { return {}; }
    /// The yielded temporary lives until the coroutine resumes, so `next()` moves from it.
    std::suspend_always yield_value(Op&& op) noexcept {
      movable_ = &op;
      copyable_ = nullptr;
      return {};
    }
    std::suspend_always yield_value(const Op& op) noexcept {
      movable_ = nullptr;
      copyable_ = &op;
      return {};
    }
    /// Splices a sub-stream: `next()` runs it to its end, then resumes this coroutine.
    std::suspend_always yield_value(OpStream&& sub) noexcept {
      movable_ = nullptr;
      copyable_ = nullptr;
      pendingChild_ = std::exchange(sub.handle_, {});
      return {};
    }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { error_ = std::current_exception(); }

    promise_type() = default;
    promise_type(const promise_type&) = delete;
    promise_type& operator=(const promise_type&) = delete;
    ~promise_type() {
      if (child_) child_.destroy();
      if (pendingChild_) pendingChild_.destroy();
    }

   private:
    friend class OpStream;
    Op* movable_ = nullptr;
    const Op* copyable_ = nullptr;
    std::exception_ptr error_;
    std::coroutine_handle<promise_type> pendingChild_;  ///< yielded, not yet started
    std::coroutine_handle<promise_type> child_;         ///< the running sub-stream (owned)
    std::coroutine_handle<promise_type> parent_;        ///< who spliced us in (not owned)
  };

  OpStream() = default;
  OpStream(OpStream&& other) noexcept
      : handle_(std::exchange(other.handle_, {})), leaf_(std::exchange(other.leaf_, {})) {}
  OpStream& operator=(OpStream&& other) noexcept {
    if (this != &other) {
      reset();
      handle_ = std::exchange(other.handle_, {});
      leaf_ = std::exchange(other.leaf_, {});
    }
    return *this;
  }
  OpStream(const OpStream&) = delete;
  OpStream& operator=(const OpStream&) = delete;
  ~OpStream() { reset(); }

  /// Writes the next op into `op` and returns true, or returns false at the end (also for an empty,
  /// default-constructed stream). Rethrows what the coroutine threw.
  bool next(Op& op);
  /// Appends every remaining op to lane `lane` of `out` (creating lanes up to it).
  void drainInto(RankProgram& out, int lane);

 private:
  using Handle = std::coroutine_handle<promise_type>;
  explicit OpStream(Handle h) noexcept : handle_(h), leaf_(h) {}
  void reset() noexcept;

  Handle handle_;  ///< the root coroutine (owned; owns the chain of spliced sub-streams)
  Handle leaf_;    ///< the innermost running coroutine, where `next()` resumes
};

/// A ProgramSource whose lanes are coroutines: `stream(rank, lane)` returns a fresh OpStream of that
/// lane's ops. `openLane` streams (nothing is cached: a cursor costs its coroutine frames only, so a
/// simulator can hold cursors for every rank of a 16,384-rank collective); `rank(r)` drains the
/// streams of rank r once and caches the result (thread-safe, like LazyProgram). Both give the same
/// ops, since they run the same code.
///
/// The stream function is called concurrently from several threads and must be safe for that (a
/// function of its arguments and of immutable captured state). State shared by every rank (a node map,
/// block offsets) belongs in captured shared_ptrs that the coroutines copy, not in per-call copies.
class StreamProgram final : public ProgramSource {
 public:
  using StreamFn = std::function<OpStream(std::int32_t rank, int lane)>;
  /// Lane initiations of one rank (their number is the rank's lane count).
  using LanesFn = std::function<std::vector<Initiation>(std::int32_t rank)>;

  /// Every rank has `lanesPerRank` lanes of initiation `init`.
  StreamProgram(ProgramHeader header, int lanesPerRank, StreamFn stream, Initiation init = Initiation::kDevice);
  /// Lane count and initiations per rank from `lanes`.
  StreamProgram(ProgramHeader header, LanesFn lanes, StreamFn stream);

  [[nodiscard]] const ProgramHeader& header() const override { return header_; }
  /// Materializes rank r (once; later calls return the cached lanes).
  [[nodiscard]] const RankProgram& rank(std::int32_t r) const override;
  [[nodiscard]] int numLanes(std::int32_t r) const override;
  [[nodiscard]] Initiation laneInitiation(std::int32_t r, int lane) const override;
  /// A cursor over a fresh coroutine; `clone()` replays a fresh one up to the same position.
  [[nodiscard]] std::unique_ptr<LaneCursor> openLane(std::int32_t r, int lane) const override;

  /// A fresh stream of rank r's lane `lane` (throws Error(kInvalidArgument) when out of range).
  [[nodiscard]] OpStream stream(std::int32_t r, int lane) const;
  /// How many ranks `rank()` has materialized so far (tests check that streaming caches nothing).
  [[nodiscard]] std::size_t materializedRanks() const noexcept { return materialized_.load(); }
  /// Declares the source's rotation symmetry (ProgramSource::rotationPeriod); the algorithm that builds
  /// the streams vouches for it.
  void declareRotationPeriod(std::int32_t period) noexcept { rotationPeriod_ = period > 0 ? period : 0; }
  [[nodiscard]] std::int32_t rotationPeriod() const override { return rotationPeriod_; }

 private:
  struct Functions {
    LanesFn lanes;
    StreamFn stream;
  };
  struct Slot {
    std::once_flag once;
    RankProgram program;
  };
  void checkLane(std::int32_t r, int lane) const;

  ProgramHeader header_;
  std::shared_ptr<const Functions> fns_;  ///< shared with open cursors
  std::unique_ptr<Slot[]> slots_;
  mutable std::atomic<std::size_t> materialized_{0};
  std::int32_t rotationPeriod_ = 0;
};

}  // namespace copro::core
