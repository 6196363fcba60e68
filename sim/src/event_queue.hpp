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
  /// A sequence number as push() would give the next event (for events kept outside the queue, such as
  /// flow finishes, that must keep their place in the pop order).
  std::uint64_t takeKey() { return seq_++; }
  /// The next event, not removed; the queue must not be empty. `late` tells whether it is the time's late
  /// event (which runs after every ordinary event of that time).
  const Event& peek(bool& late) {
    for (;;) {
      if (cur_ < 0) cur_ = byTime_.find(static_cast<std::uint64_t>(times_.front()));
      Bucket& bk = buckets_[static_cast<std::size_t>(cur_)];
      if (bk.head < bk.events.size()) {
        late = false;
        return bk.events[bk.head];
      }
      if (bk.hasLate) {
        late = true;
        return bk.late;
      }
      retireCurrent();
    }
  }
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
      retireCurrent();
    }
  }

 private:
  /// Forgets the drained bucket of the earliest time (a later push at the same time opens a new bucket).
  void retireCurrent() {
    {
      const std::int32_t id = cur_;
      Bucket& bk = buckets_[static_cast<std::size_t>(id)];
      byTime_.erase(static_cast<std::uint64_t>(bk.time));
      bk.events.clear();
      bk.head = 0;
      free_.push_back(id);
      if (last_ == id) last_ = -1;
      cur_ = -1;
      popTime();
    }
  }

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

/// Predicted finish times of the active flows, one entry per flow updated in place (an indexed binary heap
/// ordered by (time, key)). A rate change moves a flow's entry instead of queueing another event, so a run
/// whose re-solves change thousands of flows at a time keeps one entry per flow, not one per change.
class FlowFinishHeap {
 public:
  struct Entry {
    std::int64_t time;
    std::uint64_t key;
    std::int32_t flow;
  };
  [[nodiscard]] bool empty() const { return heap_.empty(); }
  [[nodiscard]] const Entry& top() const { return heap_.front(); }
  /// Inserts the flow or moves its entry.
  void set(std::int32_t flow, std::int64_t time, std::uint64_t key) {
    const auto f = static_cast<std::size_t>(flow);
    if (f >= pos_.size()) pos_.resize(f + 1, -1);
    std::int32_t i = pos_[f];
    if (i < 0) {
      i = static_cast<std::int32_t>(heap_.size());
      heap_.push_back({time, key, flow});
      pos_[f] = i;
      up(static_cast<std::size_t>(i));
      return;
    }
    Entry& e = heap_[static_cast<std::size_t>(i)];
    const bool earlier = less({time, key, flow}, e);
    e.time = time;
    e.key = key;
    if (earlier) {
      up(static_cast<std::size_t>(i));
    } else {
      down(static_cast<std::size_t>(i));
    }
  }
  /// Removes and returns the earliest entry.
  Entry pop() {
    const Entry first = heap_.front();
    pos_[static_cast<std::size_t>(first.flow)] = -1;
    const Entry last = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) {
      heap_[0] = last;
      pos_[static_cast<std::size_t>(last.flow)] = 0;
      down(0);
    }
    return first;
  }

 private:
  static bool less(const Entry& a, const Entry& b) { return a.time != b.time ? a.time < b.time : a.key < b.key; }
  void place(std::size_t i, const Entry& e) {
    heap_[i] = e;
    pos_[static_cast<std::size_t>(e.flow)] = static_cast<std::int32_t>(i);
  }
  void up(std::size_t i) {
    const Entry e = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 2;
      if (!less(e, heap_[parent])) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, e);
  }
  void down(std::size_t i) {
    const Entry e = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
      std::size_t c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && less(heap_[c + 1], heap_[c])) ++c;
      if (!less(heap_[c], e)) break;
      place(i, heap_[c]);
      i = c;
    }
    place(i, e);
  }
  std::vector<Entry> heap_;
  std::vector<std::int32_t> pos_;  ///< flow -> index in heap_, -1 when absent
};

}  // namespace copro::sim::detail
