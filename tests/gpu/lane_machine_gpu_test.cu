// GPU test (ctest label `gpu`, run by scripts/gpu-check.sh): the portable lane machine on a device. Several
// ranks share one GPU, each with its buffers in device memory; every lane of every rank is one thread block
// of one kernel (all resident at once), with device atomics at system scope. For every all-reduce and
// all-gather algorithm that applies at 2 and 4 ranks, float32 and bfloat16, the results must equal the host
// reference. Exits 77 (ctest: skipped) with the reason when no GPU is visible.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "copro/collectives/collective.hpp"
#include "copro/core/dtype.hpp"
#include "copro/core/flat_program.hpp"
#include "copro/core/lane_machine.hpp"
#include "copro/core/status.hpp"

namespace {

using namespace copro;

using copro::core::DeviceLaneMemory;

__global__ void runLanes(core::LmWorld world, const core::FlatLaneView* lanes, const int* laneRank, int* status,
                         long long spinLimit) {
  if (threadIdx.x != 0) return;
  const int i = blockIdx.x;
  core::LaneMachine<DeviceLaneMemory> m(world, laneRank[i]);
  std::uint32_t pc = 0;
  long long blocked = 0;
  while (pc < lanes[i].numOps) {
    const core::OpStep s = m.step(lanes[i], pc);
    if (s == core::OpStep::kFailed) {
      status[i] = 2;
      return;
    }
    if (s == core::OpStep::kDone) {
      ++pc;
      blocked = 0;
    } else if (++blocked > spinLimit) {
      status[i] = 3;  // a wait never satisfied: the Program (or the machine) is wrong
      return;
    }
  }
  status[i] = 1;
}

#define CHECK_CUDA(x)                                                                          \
  do {                                                                                         \
    cudaError_t e_ = (x);                                                                      \
    if (e_ != cudaSuccess) {                                                                   \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                                            \
    }                                                                                          \
  } while (0)

template <typename T>
T* toDevice(const std::vector<T>& v) {
  T* d = nullptr;
  CHECK_CUDA(cudaMalloc(&d, std::max<std::size_t>(v.size(), 1) * sizeof(T)));
  if (!v.empty()) CHECK_CUDA(cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

/// Runs one collective on `p` ranks of this GPU; returns "" or what went wrong.
std::string runCase(collectives::CollectiveKind kind, const char* algo, core::DataType dtype, int p,
                    std::uint64_t count) {
  collectives::CollectiveArgs a;
  a.kind = kind;
  a.nranks = p;
  a.count = count;
  a.dtype = dtype;
  a.op = core::ReduceOp::kSum;
  std::shared_ptr<const core::ProgramSource> prog;
  try {
    prog = collectives::buildProgram(a, algo);
  } catch (const core::Error&) {
    return "";  // the algorithm does not apply here
  }
  const core::ProgramHeader& h = prog->header();
  const std::size_t es = core::dataTypeSize(dtype);
  std::vector<std::vector<core::FlatRankProgram>> keep(1);
  std::vector<core::LmRank> ranks(static_cast<std::size_t>(p));
  std::vector<core::FlatLaneView> lanes;
  std::vector<int> laneRank;
  std::vector<void*> outs(static_cast<std::size_t>(p));
  std::vector<std::vector<float>> inputs(static_cast<std::size_t>(p));
  for (int r = 0; r < p; ++r) {
    const auto ri = static_cast<std::size_t>(r);
    const std::uint64_t inBytes = h.inputBytes[ri];
    const std::uint64_t outBytes = h.outputBytes[ri];
    std::vector<unsigned char> in(inBytes);
    for (std::uint64_t i = 0; i < inBytes / es; ++i) {
      const float v = static_cast<float>((r + 1) * ((i % 7) + 1));
      inputs[ri].push_back(v);
      core::storeFromDouble(dtype, in.data(), i, v);
    }
    void* din = toDevice(in);
    void* dout = nullptr;
    CHECK_CUDA(cudaMalloc(&dout, std::max<std::uint64_t>(outBytes, 1)));
    outs[ri] = dout;
    std::vector<core::LmBuffer> bufs = {
        {static_cast<std::byte*>(din), inBytes, 0U},
        {static_cast<std::byte*>(dout), outBytes, 1U},
        {reinterpret_cast<std::byte*>(toDevice(std::vector<unsigned char>(h.scratchBytes))), h.scratchBytes, 1U},
        {reinterpret_cast<std::byte*>(toDevice(std::vector<std::uint64_t>(h.layoutWords))), h.layoutWords * 8ULL, 1U}};
    core::FlatRankProgram f = core::flatten(prog->rank(r));
    const core::FlatOp* ops = toDevice(f.ops);
    const core::Addr* addrs = toDevice(f.addrs);
    const std::int32_t* rks = toDevice(f.ranks);
    for (const core::FlatLane& l : f.lanes) {
      lanes.push_back({ops + l.firstOp, l.numOps, addrs, rks, l.initiation});
      laneRank.push_back(r);
    }
    ranks[ri] = core::LmRank{toDevice(bufs),
                             4U,
                             toDevice(std::vector<std::uint64_t>(static_cast<std::size_t>(h.numSemaphores))),
                             h.numSemaphores,
                             toDevice(std::vector<std::uint32_t>(1)),
                             reinterpret_cast<const std::uint64_t*>(bufs[3].base),
                             h.layoutWords};
  }
  const core::LmWorld world{toDevice(ranks), p};
  int* status = toDevice(std::vector<int>(lanes.size(), 0));
  runLanes<<<static_cast<unsigned>(lanes.size()), 32>>>(world, toDevice(lanes), toDevice(laneRank), status, 1LL << 28);
  CHECK_CUDA(cudaGetLastError());
  CHECK_CUDA(cudaDeviceSynchronize());
  std::vector<int> st(lanes.size());
  CHECK_CUDA(cudaMemcpy(st.data(), status, st.size() * sizeof(int), cudaMemcpyDeviceToHost));
  for (std::size_t i = 0; i < st.size(); ++i) {
    if (st[i] != 1) return "lane " + std::to_string(i) + " ended with status " + std::to_string(st[i]);
  }
  for (int r = 0; r < p; ++r) {
    std::vector<unsigned char> out(h.outputBytes[static_cast<std::size_t>(r)]);
    CHECK_CUDA(cudaMemcpy(out.data(), outs[static_cast<std::size_t>(r)], out.size(), cudaMemcpyDeviceToHost));
    for (std::uint64_t i = 0; i < out.size() / es; ++i) {
      double want = 0;
      if (kind == collectives::CollectiveKind::kAllReduce) {
        for (int q = 0; q < p; ++q) want += inputs[static_cast<std::size_t>(q)][i];
      } else {
        want = inputs[i / count][i % count];
      }
      const double got = core::loadAsDouble(dtype, out.data(), i);
      if (std::fabs(got - want) > 1e-2 * std::fabs(want) + 1e-6) {
        return "rank " + std::to_string(r) + " element " + std::to_string(i) + ": " + std::to_string(got) +
               " instead of " + std::to_string(want);
      }
    }
  }
  return "";
}

}  // namespace

int main() {
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::printf("lane_machine_gpu: skipped: no GPU is visible (cudaGetDeviceCount found none)\n");
    return 77;
  }
  int failures = 0;
  int ran = 0;
  const struct {
    collectives::CollectiveKind kind;
    const char* algo;
  } algos[] = {{collectives::CollectiveKind::kAllReduce, "ring"},
               {collectives::CollectiveKind::kAllReduce, "oneshot"},
               {collectives::CollectiveKind::kAllReduce, "lsa"},
               {collectives::CollectiveKind::kAllGather, "ring"}};
  for (const auto& al : algos) {
    for (core::DataType t : {core::DataType::kFloat32, core::DataType::kBfloat16}) {
      for (int p : {2, 4}) {
        const std::string err = runCase(al.kind, al.algo, t, p, 4099);
        ++ran;
        std::printf("%s.%s %s ranks=%d: %s\n", std::string(collectives::collectiveName(al.kind)).c_str(), al.algo,
                    std::string(core::dataTypeName(t)).c_str(), p, err.empty() ? "ok" : err.c_str());
        failures += err.empty() ? 0 : 1;
      }
    }
  }
  std::printf("lane_machine_gpu: %d of %d cases correct\n", ran - failures, ran);
  return failures == 0 ? 0 : 1;
}
