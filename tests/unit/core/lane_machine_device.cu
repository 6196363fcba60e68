// Compile check (ctest lane_machine_nvcc, where nvcc is installed): the portable lane machine
// (copro/core/lane_machine.hpp) compiles into a CUDA kernel, one thread block per lane, with device
// atomics at system scope. Nothing runs here; on a GPU machine scripts/gpu-check.sh runs the same kernel.
#include "copro/core/lane_machine.hpp"

struct DeviceLaneMemory {
  __device__ static void releaseFence() { __threadfence_system(); }
  __device__ static std::uint64_t acquireLoad(const std::uint64_t* p) {
    const std::uint64_t v = *reinterpret_cast<const volatile std::uint64_t*>(p);
    __threadfence_system();
    return v;
  }
  __device__ static void add(std::uint64_t* p, std::uint64_t v) {
    atomicAdd_system(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  }
  __device__ static bool tryLock(std::uint32_t* l) { return atomicCAS_system(l, 0U, 1U) == 0U; }
  __device__ static void unlock(std::uint32_t* l) {
    __threadfence_system();
    atomicExch_system(l, 0U);
  }
};

/// Lane blockIdx.x of `lanes` (one per rank and lane), run by its block's first thread until it finishes or
/// fails; `status[lane]` receives 1 (done) or 2 (failed, the fault in `faults[lane]`).
__global__ void runLanes(copro::core::LmWorld world, const copro::core::FlatLaneView* lanes, const int* laneRank,
                         int* status, copro::core::LmFaultInfo* faults) {
  if (threadIdx.x != 0) return;
  const int i = blockIdx.x;
  copro::core::LaneMachine<DeviceLaneMemory> m(world, laneRank[i]);
  std::uint32_t pc = 0;
  while (pc < lanes[i].numOps) {
    const copro::core::OpStep s = m.step(lanes[i], pc);
    if (s == copro::core::OpStep::kFailed) {
      faults[i] = m.fault();
      status[i] = 2;
      return;
    }
    if (s == copro::core::OpStep::kDone) ++pc;
  }
  status[i] = 1;
}
