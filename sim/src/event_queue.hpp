#pragma once
/// The pending events of one simulation, popped in (time, class, sequence number) order so that identical
/// inputs pop in identical order.
#include <cstdint>
#include <vector>

#include "index_map.hpp"

namespace copro::sim::detail {

/// What an event does; the simulator interprets `a` and `b` per kind.
enum class EventKind : std::uint32_t {
  kLaneRun = 0,  ///< a = lane: the lane resumes (issue cost paid, compute done, woken)
  kFlowFinish,   ///< a = flow, b = flow version: the flow's last byte leaves (stale when the version moved)
  kDeliver,      ///< a = message: the message arrives at its target
  kRecompute,    ///< the batched max-min recomputation of everything that changed at this time
  kFlowStart,    ///< a = message: its transfer enters the network (it waited for a NIC message-rate slot)
};

struct Event {
  std::int64_t time = 0;  ///< picoseconds, >= 0
  std::uint64_t key = 0;  ///< push sequence number
  EventKind kind = EventKind::kLaneRun;
  std::int32_t a = 0;
  std::uint32_t b = 0;
};

/// Events bucketed by time: a 4-ary min-heap of the distinct pending times (plain int64 in a vector) and,
/// per time, a FIFO of its events. Simulations in lock step (every rank of a ring finishing its step at the
/// same picosecond) then cost O(1) per event instead of a heap operation each. Pop order is exactly
/// (time, late, push order); buckets and their vectors are recycled, so a long run allocates nothing per
/// event.
class EventQueue {
 public:
  /// `late`: runs after every ordinary event of the same time (the batched recomputation; at most one
  /// late event per time).
  void push(std::int64_t time, EventKind kind, std::int32_t a, std::uint32_t b = 0, bool late = false) {
    Event e;
    e.time = time;
    e.key = seq_++;
    e.kind = kind;
    e.a = a;
    e.b = b;
    Bucket& bk = buckets_[static_cast<std::size_t>(bucketFor(time))];
    if (late) {
      bk.late = e;
      bk.hasLate = true;
    } else {
      bk.events.push_back(e);
    }
    ++size_;
  }
  [[nodiscard]] bool empty() const { return size_ == 0; }
  [[nodiscard]] std::size_t size() const { return size_; }
  /// The next event; the queue must not be empty.
  Event pop() {
    for (;;) {
      if (cur_ < 0) cur_ = byTime_.find(static_cast<std::uint64_t>(times_.front()));
      const std::int32_t id = cur_;
      Bucket& bk = buckets_[static_cast<std::size_t>(id)];
      if (bk.head < bk.events.size()) {
        --size_;
        return bk.events[bk.head++];
      }
      if (bk.hasLate) {
        bk.hasLate = false;
        --size_;
        return bk.late;
      }
      // Drained: forget this time (a later push at the same time opens a new bucket).
      byTime_.erase(static_cast<std::uint64_t>(bk.time));
      bk.events.clear();
      bk.head = 0;
      free_.push_back(id);
      if (last_ == id) last_ = -1;
      cur_ = -1;
      popTime();
    }
  }

 private:
  struct Bucket {
    std::int64_t time = 0;
    std::vector<Event> events;
    std::size_t head = 0;
    Event late{};
    bool hasLate = false;
  };

  std::int32_t bucketFor(std::int64_t time) {
    // Runs of pushes share a time (every rank's transfer of a lock-step ring lands at once).
    if (last_ >= 0 && buckets_[static_cast<std::size_t>(last_)].time == time) return last_;
    last_ = bucketForSlow(time);
    return last_;
  }
  std::int32_t bucketForSlow(std::int64_t time) {
    const std::int32_t found = byTime_.find(static_cast<std::uint64_t>(time));
    if (found >= 0) return found;
    std::int32_t id;
    if (!free_.empty()) {
      id = free_.back();
      free_.pop_back();
    } else {
      id = static_cast<std::int32_t>(buckets_.size());
      buckets_.emplace_back();
    }
    buckets_[static_cast<std::size_t>(id)].time = time;
    byTime_.insert(static_cast<std::uint64_t>(time), id);
    pushTime(time);
    return id;
  }
  void pushTime(std::int64_t t) {
    if (!times_.empty() && t < times_.front()) cur_ = -1;
    std::size_t i = times_.size();
    times_.push_back(t);
    while (i > 0) {
      const std::size_t parent = (i - 1) / 4;
      if (times_[parent] <= t) break;
      times_[i] = times_[parent];
      i = parent;
    }
    times_[i] = t;
  }
  void popTime() {
    const std::int64_t t = times_.back();
    times_.pop_back();
    const std::size_t n = times_.size();
    if (n == 0) return;
    std::size_t i = 0;
    for (;;) {
      const std::size_t first = 4 * i + 1;
      if (first >= n) break;
      std::size_t best = first;
      const std::size_t last = first + 4 < n ? first + 4 : n;
      for (std::size_t c = first + 1; c < last; ++c) best = times_[c] < times_[best] ? c : best;
      if (times_[best] >= t) break;
      times_[i] = times_[best];
      i = best;
    }
    times_[i] = t;
  }

  std::vector<std::int64_t> times_;  ///< heap of the distinct pending times
  std::vector<Bucket> buckets_;
  std::vector<std::int32_t> free_;
  IndexMap byTime_;
  std::uint64_t seq_ = 0;
  std::size_t size_ = 0;
  std::int32_t cur_ = -1;   ///< bucket of times_.front(), once looked up
  std::int32_t last_ = -1;  ///< bucket of the last push
};

}  // namespace copro::sim::detail
