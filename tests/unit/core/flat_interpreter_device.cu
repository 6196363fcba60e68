// Compile check (ctest flat_interpreter_nvcc, where nvcc is installed): the flat interpreter
// (copro/core/flat_interpreter.hpp) compiles into a CUDA kernel that walks a flat lane. Nothing runs.
#include "copro/core/flat_interpreter.hpp"
struct CountingPort {
  using S = copro::core::OpStep;
  using V = copro::core::FlatOpView;
  using G = copro::core::OpGeometry;
  unsigned long long bytes = 0;
  __device__ S put(const V&, const G& g) {
    bytes += g.bytes;
    return S::kDone;
  }
  __device__ S get(const V&, const G& g) {
    bytes += g.bytes;
    return S::kDone;
  }
  __device__ S signal(const V&, const G&) { return S::kDone; }
  __device__ S wait(const V&, const G&) { return S::kBlocked; }
  __device__ S reduce(const V& v, const G& g) {
    bytes += g.bytes * v.rec->numSrcs;
    return S::kDone;
  }
  __device__ S putReduce(const V&, const G& g) {
    bytes += g.bytes;
    return S::kDone;
  }
  __device__ S multicast(const V& v, const G& g) {
    bytes += g.bytes * v.rec->numRanks;
    return S::kDone;
  }
  __device__ S copy(const V&, const G& g) {
    bytes += g.bytes;
    return S::kDone;
  }
  __device__ S flush(const V&, const G&) { return S::kDone; }
  __device__ S unknownOp(const V&) { return S::kFailed; }
  __device__ S badGeometry(const V&, const G&) { return S::kFailed; }
};
__global__ void runLane(copro::core::FlatLaneView lane, const std::uint64_t* layout, unsigned words,
                        unsigned long long* out) {
  CountingPort port;
  for (unsigned i = 0; i < lane.numOps; ++i) {
    if (copro::core::interpretOp(port, lane.op(i), layout, words) != copro::core::OpStep::kDone) break;
  }
  *out = port.bytes;
}
