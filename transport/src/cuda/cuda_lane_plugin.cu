/// The CUDA plugin (libcopro_cuda.so; its C interface is cuda_plugin_abi.hpp): runs one call of the `cuda`
/// backend on the GPU. Every lane of every rank is one thread block of one kernel, all resident at once
/// (checked before the launch), interpreted by the portable lane machine with device atomics at system
/// scope; a lane that is blocked retries after a short sleep, and when no lane progressed for the time
/// limit the lanes stop and report where they were. Host buffers are staged through device memory and
/// copied back; memory the GPU reaches (copro_cuda_alloc's managed memory, cudaMalloc) is used in place.
/// Only this shell needs a GPU: what a lane does with each op is the lanemachine backend's, checked in CI.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_plugin_abi.hpp"

namespace {

using copro::core::DeviceLaneMemory;
using copro::core::FlatLaneView;
using copro::core::LaneMachine;
using copro::core::LmBuffer;
using copro::core::LmRank;
using copro::core::LmWorld;
using copro::core::OpStep;

/// A CUDA call failed: what and why, for the caller's message.
struct CudaFailure {
  std::string what;
};

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CudaFailure{std::string(what) + ": " + cudaGetErrorString(e)};
}

int fail(const std::string& text, char* why, std::size_t whyLen) {
  if (why != nullptr && whyLen > 0) std::snprintf(why, whyLen, "%s", text.c_str());
  return 1;
}

/// Device memory of one call, freed when the call ends.
class DeviceArena {
 public:
  DeviceArena() = default;
  DeviceArena(const DeviceArena&) = delete;
  DeviceArena& operator=(const DeviceArena&) = delete;
  ~DeviceArena() {
    for (void* p : blocks_) cudaFree(p);
  }
  void* zeros(std::size_t bytes) {
    void* p = nullptr;
    check(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)), "cudaMalloc");
    blocks_.push_back(p);
    check(cudaMemset(p, 0, std::max<std::size_t>(bytes, 1)), "cudaMemset");
    return p;
  }
  template <typename T>
  T* copy(const T* src, std::size_t n) {
    auto* d = static_cast<T*>(zeros(n * sizeof(T)));
    if (n > 0) check(cudaMemcpy(d, src, n * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy to the device");
    return d;
  }

 private:
  std::vector<void*> blocks_;
};

/// True when the kernel can use `p` in place (device or managed memory).
bool deviceReachable(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();  // a plain host pointer on older runtimes: clear the error
    return false;
  }
  return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

/// A host buffer staged for the kernel, copied back after it when writable.
struct Staged {
  void* host;
  void* device;
  std::uint64_t bytes;
};

/// `p` as the kernel sees it: itself when reachable, else a device copy (remembered in `back` when the
/// kernel may write it).
std::byte* place(const void* p, std::uint64_t bytes, bool writable, DeviceArena& arena, std::vector<Staged>& back) {
  if (p == nullptr || bytes == 0 || deviceReachable(p)) return static_cast<std::byte*>(const_cast<void*>(p));
  void* d = arena.copy(static_cast<const unsigned char*>(p), bytes);
  if (writable) back.push_back({const_cast<void*>(p), d, bytes});
  return static_cast<std::byte*>(d);
}

struct DeviceLane {
  FlatLaneView view;
  int rank;
};

__device__ unsigned long long nowNs() {
  unsigned long long t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

/// One thread block per lane (thread 0 runs it); `progress` counts ops done by every lane, `stop` ends all
/// lanes once one failed or the call stalled.
__global__ void runLanes(LmWorld world, const DeviceLane* lanes, CoproCudaLaneResult* results,
                         unsigned long long limitNs, int* stop, unsigned long long* progress) {
  if (threadIdx.x != 0) return;
  const DeviceLane& ln = lanes[blockIdx.x];
  CoproCudaLaneResult& out = results[blockIdx.x];
  LaneMachine<DeviceLaneMemory> m(world, ln.rank);
  std::uint32_t pc = 0;
  unsigned long long seen = *reinterpret_cast<volatile unsigned long long*>(progress);
  unsigned long long since = nowNs();
  while (pc < ln.view.numOps) {
    if (*reinterpret_cast<volatile int*>(stop) != 0) {
      out.state = 4;
      out.pc = pc;
      return;
    }
    const OpStep s = m.step(ln.view, pc);
    if (s == OpStep::kFailed) {
      out.state = 2;
      out.pc = pc;
      out.fault = m.fault();
      atomicExch(stop, 1);
      return;
    }
    if (s == OpStep::kDone) {
      ++pc;
      atomicAdd(progress, 1ULL);
      continue;
    }
    const unsigned long long p = *reinterpret_cast<volatile unsigned long long*>(progress);
    const unsigned long long now = nowNs();
    if (p != seen) {
      seen = p;
      since = now;
    } else if (limitNs != 0 && now - since > limitNs) {
      out.state = 3;
      out.pc = pc;
      atomicExch(stop, 1);
      return;
    }
    __nanosleep(200);
  }
  out.state = 1;
  out.pc = pc;
}

constexpr unsigned kThreadsPerLane = 32;

/// Fails unless `lanes` thread blocks of runLanes can be resident at once (a lane waits for others).
void checkResidency(std::size_t lanes) {
  int device = 0;
  int sms = 0;
  int perSm = 0;
  check(cudaGetDevice(&device), "cudaGetDevice");
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, runLanes, kThreadsPerLane, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const std::size_t most = static_cast<std::size_t>(sms) * static_cast<std::size_t>(perSm);
  if (lanes > most) {
    throw CudaFailure{"the call has " + std::to_string(lanes) + " lanes, but this GPU holds at most " +
                      std::to_string(most) + " of them at once (" + std::to_string(sms) + " SMs x " +
                      std::to_string(perSm) + "); use fewer ranks or channels per GPU"};
  }
}

/// Places rank `r`'s buffers and program in device memory; appends its lanes.
LmRank placeRank(const CoproCudaRank& k, int r, DeviceArena& arena, std::vector<Staged>& back,
                 std::vector<DeviceLane>& lanes) {
  const bool inPlace = k.input != nullptr && k.input == k.output;
  std::vector<LmBuffer> bufs(copro::core::kNumBuffers + k.numExtra);
  std::byte* out = place(k.output, k.outputBytes, true, arena, back);
  bufs[0] = {inPlace ? out : place(k.input, k.inputBytes, false, arena, back), k.inputBytes, inPlace ? 1U : 0U};
  bufs[1] = {out, k.outputBytes, 1U};
  bufs[2] = {static_cast<std::byte*>(arena.zeros(k.scratchBytes)), k.scratchBytes, 1U};
  auto* layout = static_cast<std::uint64_t*>(arena.zeros(k.layoutWords * sizeof(std::uint64_t)));
  const std::uint64_t init = std::min(k.layoutInitWords, k.layoutWords);
  if (init > 0) check(cudaMemcpy(layout, k.layoutInit, init * 8, cudaMemcpyHostToDevice), "cudaMemcpy layout");
  bufs[3] = {reinterpret_cast<std::byte*>(layout), k.layoutWords * 8, 1U};
  for (std::uint32_t e = 0; e < k.numExtra; ++e) {
    bufs[copro::core::kNumBuffers + e] = {place(k.extra[e], k.extraBytes[e], true, arena, back), k.extraBytes[e], 1U};
  }
  const auto* ops = arena.copy(k.ops, k.numOps);
  const auto* addrs = arena.copy(k.addrs, k.numAddrs);
  const auto* ranks = arena.copy(k.ranks, k.numRanks);
  for (std::uint32_t l = 0; l < k.numLanes; ++l) {
    lanes.push_back(
        {FlatLaneView{ops + k.lanes[l].firstOp, k.lanes[l].numOps, addrs, ranks, k.lanes[l].initiation}, r});
  }
  const auto sems = static_cast<std::size_t>(std::max(k.numSemaphores, 0));
  return LmRank{arena.copy(bufs.data(), bufs.size()),
                static_cast<std::uint32_t>(bufs.size()),
                static_cast<std::uint64_t*>(arena.zeros(sems * sizeof(std::uint64_t))),
                k.numSemaphores,
                static_cast<std::uint32_t*>(arena.zeros(sizeof(std::uint32_t))),
                layout,
                k.layoutWords};
}

void runCall(const CoproCudaRank* ranks, std::int32_t n, double timeoutSec, CoproCudaLaneResult* results) {
  DeviceArena arena;
  std::vector<Staged> back;
  std::vector<DeviceLane> lanes;
  std::vector<LmRank> world(static_cast<std::size_t>(n));
  for (std::int32_t r = 0; r < n; ++r) world[static_cast<std::size_t>(r)] = placeRank(ranks[r], r, arena, back, lanes);
  if (lanes.empty()) return;
  checkResidency(lanes.size());
  const auto limitNs = timeoutSec > 0 ? static_cast<unsigned long long>(timeoutSec * 1e9) : 0ULL;
  auto* dResults = static_cast<CoproCudaLaneResult*>(arena.zeros(lanes.size() * sizeof(CoproCudaLaneResult)));
  runLanes<<<static_cast<unsigned>(lanes.size()), kThreadsPerLane>>>(
      LmWorld{arena.copy(world.data(), world.size()), n}, arena.copy(lanes.data(), lanes.size()), dResults, limitNs,
      static_cast<int*>(arena.zeros(sizeof(int))), static_cast<unsigned long long*>(arena.zeros(8)));
  check(cudaGetLastError(), "launching the lanes");
  check(cudaDeviceSynchronize(), "running the lanes");
  check(cudaMemcpy(results, dResults, lanes.size() * sizeof(CoproCudaLaneResult), cudaMemcpyDeviceToHost),
        "cudaMemcpy of the lane results");
  for (const Staged& s : back) {
    check(cudaMemcpy(s.host, s.device, s.bytes, cudaMemcpyDeviceToHost), "cudaMemcpy of a result to the host");
  }
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) int copro_cuda_abi() {
  return kCoproCudaAbi;
}

__attribute__((visibility("default"))) int copro_cuda_device_count(int* count, char* why, std::size_t whyLen) {
  *count = 0;
  const cudaError_t e = cudaGetDeviceCount(count);
  if (e != cudaSuccess) {
    *count = 0;
    return fail(std::string("cudaGetDeviceCount: ") + cudaGetErrorString(e), why, whyLen);
  }
  return 0;
}

__attribute__((visibility("default"))) int copro_cuda_alloc(std::size_t bytes, void** ptr, char* why,
                                                            std::size_t whyLen) {
  *ptr = nullptr;
  const cudaError_t e = cudaMallocManaged(ptr, std::max<std::size_t>(bytes, 1));
  if (e != cudaSuccess) {
    return fail("cudaMallocManaged of " + std::to_string(bytes) + " bytes: " + cudaGetErrorString(e), why, whyLen);
  }
  return 0;
}

__attribute__((visibility("default"))) void copro_cuda_free(void* ptr) {
  cudaFree(ptr);
}

__attribute__((visibility("default"))) int copro_cuda_run(const CoproCudaRank* ranks, std::int32_t n, double timeoutSec,
                                                          CoproCudaLaneResult* results, char* why, std::size_t whyLen) {
  try {
    runCall(ranks, n, timeoutSec, results);
    return 0;
  } catch (const CudaFailure& f) {
    return fail(f.what, why, whyLen);
  } catch (const std::exception& e) {
    return fail(e.what(), why, whyLen);
  }
}
}
