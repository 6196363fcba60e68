// Compile check (ctest lane_machine_nvcc, where nvcc is installed): the portable lane machine
// (copro/core/lane_machine.hpp) compiles into a CUDA kernel, one thread block per lane, with device
// atomics at system scope. Nothing runs here; on a GPU machine scripts/gpu-check.sh runs the same kernel.
#include "copro/core/lane_machine.hpp"

using copro::core::DeviceLaneMemory;

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
