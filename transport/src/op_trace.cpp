/// The process-wide per-op observer of the lane engines (copro/transport/op_trace.hpp). The flag keeps
/// the untraced path to one relaxed load per lane run; the function is only replaced while no call runs
/// (the documented contract).
#include "copro/transport/op_trace.hpp"

#include <atomic>
#include <utility>

namespace copro::transport {

namespace {
std::atomic<bool> gObserverOn{false};
std::function<void(const LaneOpTiming&)>& observerSlot() {
  static std::function<void(const LaneOpTiming&)> observer;
  return observer;
}
}  // namespace

void setLaneOpObserver(std::function<void(const LaneOpTiming&)> observer) {
  gObserverOn.store(false, std::memory_order_seq_cst);
  observerSlot() = std::move(observer);
  gObserverOn.store(static_cast<bool>(observerSlot()), std::memory_order_seq_cst);
}

namespace lanes {
bool opTraceOn() noexcept {
  return gObserverOn.load(std::memory_order_relaxed);
}
void traceOp(const LaneOpTiming& timing) {
  observerSlot()(timing);
}
}  // namespace lanes

}  // namespace copro::transport
