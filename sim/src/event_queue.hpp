#pragma once
/// The pending events of one simulation: a flat 4-ary min-heap of POD events in one vector (no allocation
/// per event once the vector has grown), ordered by (time, class, sequence number) so that identical inputs
/// pop in identical order.
#include <cstdint>
#include <vector>

namespace copro::sim::detail {

/// What an event does; the simulator interprets `a` and `b` per kind.
enum class EventKind : std::uint32_t {
  kLaneRun = 0,   ///< a = lane: the lane resumes (issue cost paid, compute done, woken)
  kFlowFinish,    ///< a = flow, b = flow version: the flow's last byte leaves (stale when the version moved)
  kDeliver,       ///< a = message: the message arrives at its target
  kRecompute,     ///< the batched max-min recomputation of everything that changed at this time
};

struct Event {
  std::int64_t time = 0;  ///< picoseconds
  std::uint64_t key = 0;  ///< class in the top bit (recomputations after everything else at one time), then seq
  EventKind kind = EventKind::kLaneRun;
  std::int32_t a = 0;
  std::uint32_t b = 0;
};

class EventQueue {
 public:
  /// `late`: runs after every ordinary event of the same time (the batched recomputation).
  void push(std::int64_t time, EventKind kind, std::int32_t a, std::uint32_t b = 0, bool late = false) {
    Event e;
    e.time = time;
    e.key = (late ? (std::uint64_t{1} << 63) : 0) | seq_++;
    e.kind = kind;
    e.a = a;
    e.b = b;
    heap_.push_back(e);
    siftUp(heap_.size() - 1);
  }
  [[nodiscard]] bool empty() const { return heap_.empty(); }
  [[nodiscard]] std::size_t size() const { return heap_.size(); }
  [[nodiscard]] const Event& top() const { return heap_.front(); }
  Event pop() {
    Event out = heap_.front();
    heap_.front() = heap_.back();
    heap_.pop_back();
    if (!heap_.empty()) siftDown(0);
    return out;
  }
  void clear() {
    heap_.clear();
    seq_ = 0;
  }

 private:
  static bool less(const Event& x, const Event& y) { return x.time != y.time ? x.time < y.time : x.key < y.key; }
  void siftUp(std::size_t i) {
    const Event e = heap_[i];
    while (i > 0) {
      const std::size_t parent = (i - 1) / 4;
      if (!less(e, heap_[parent])) break;
      heap_[i] = heap_[parent];
      i = parent;
    }
    heap_[i] = e;
  }
  void siftDown(std::size_t i) {
    const Event e = heap_[i];
    const std::size_t n = heap_.size();
    for (;;) {
      const std::size_t first = 4 * i + 1;
      if (first >= n) break;
      std::size_t best = first;
      const std::size_t last = first + 4 < n ? first + 4 : n;
      for (std::size_t c = first + 1; c < last; ++c) {
        if (less(heap_[c], heap_[best])) best = c;
      }
      if (!less(heap_[best], e)) break;
      heap_[i] = heap_[best];
      i = best;
    }
    heap_[i] = e;
  }

  std::vector<Event> heap_;
  std::uint64_t seq_ = 0;
};

}  // namespace copro::sim::detail
