/// The process-wide switch and counters of the `mpi` backend's pre-posted receives (copro/transport/mpi.hpp,
/// docs/mpi.md "Pre-posted receives"): relaxed atomics, since they only feed tests and logs.
#include <atomic>

#include "mpi_common.hpp"

namespace copro::transport {

namespace {
std::atomic<bool> gPrepost{true};
std::atomic<std::uint64_t> gPreposted{0};
std::atomic<std::uint64_t> gAtHeader{0};
std::atomic<std::uint64_t> gWaiting{0};
}  // namespace

MpiReceiveCounters mpiReceiveCounters() {
  MpiReceiveCounters c;
  c.preposted = gPreposted.load(std::memory_order_relaxed);
  c.postedAtHeader = gAtHeader.load(std::memory_order_relaxed);
  c.foundWaiting = gWaiting.load(std::memory_order_relaxed);
  return c;
}

void resetMpiReceiveCounters() {
  gPreposted.store(0, std::memory_order_relaxed);
  gAtHeader.store(0, std::memory_order_relaxed);
  gWaiting.store(0, std::memory_order_relaxed);
}

void setMpiPrepostedReceives(bool enabled) {
  gPrepost.store(enabled, std::memory_order_relaxed);
}

namespace mpi {

bool prepostedReceivesEnabled() {
  return gPrepost.load(std::memory_order_relaxed);
}

void countReceive(ReceiveKind kind) {
  switch (kind) {
    case ReceiveKind::kPreposted:
      gPreposted.fetch_add(1, std::memory_order_relaxed);
      break;
    case ReceiveKind::kPostedAtHeader:
      gAtHeader.fetch_add(1, std::memory_order_relaxed);
      break;
    case ReceiveKind::kFoundWaiting:
      gWaiting.fetch_add(1, std::memory_order_relaxed);
      break;
  }
}

}  // namespace mpi
}  // namespace copro::transport
