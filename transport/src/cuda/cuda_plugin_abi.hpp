#pragma once
/// The interface between copro and its CUDA plugin (libcopro_cuda.so, built by nvcc when COPRO_CUDA is
/// on): plain C functions over trivially copyable records, so that libcopro itself links no CUDA library
/// and runs where none is installed. The `cuda` backend (lane_machine_executor.cpp) opens the plugin with
/// dlopen when a `cuda` communicator is created; the plugin runs every lane of a call as one thread block
/// of one kernel, each lane interpreted by the portable lane machine (copro/core/lane_machine.hpp) that
/// the `lanemachine` backend runs on the CPU in CI. Bump kCoproCudaAbi when a record or function changes.
#include <cstddef>
#include <cstdint>

#include "copro/core/flat_program.hpp"
#include "copro/core/lane_machine.hpp"

extern "C" {

inline constexpr int kCoproCudaAbi = 1;

/// One rank's part of a call. User buffers may be host memory (staged through device memory for the
/// kernel and copied back) or memory the GPU reaches (copro_cuda_alloc, cudaMalloc): used in place.
struct CoproCudaRank {
  const void* input;
  std::uint64_t inputBytes;  ///< what the Program may read (0: no input)
  void* output;
  std::uint64_t outputBytes;
  void* const* extra;  ///< named extra buffers (MoE), numExtra of them
  const std::uint64_t* extraBytes;
  std::uint32_t numExtra;
  std::uint64_t scratchBytes;       ///< zeroed device memory of this call
  const std::uint64_t* layoutInit;  ///< layoutWords words (the rest of the layout buffer is zero)
  std::uint64_t layoutInitWords;
  std::uint64_t layoutWords;
  std::int32_t numSemaphores;
  /// The rank's flat program (copro/core/flat_program.hpp).
  const copro::core::FlatOp* ops;
  std::uint32_t numOps;
  const copro::core::Addr* addrs;
  std::uint32_t numAddrs;
  const std::int32_t* ranks;
  std::uint32_t numRanks;
  const copro::core::FlatLane* lanes;
  std::uint32_t numLanes;
};

/// How one lane ended: state 1 done, 2 failed on its op `pc` (fault says why), 3 no lane of the call
/// progressed for the time limit (blocked on `pc`), 4 stopped because another lane failed.
struct CoproCudaLaneResult {
  std::int32_t state;
  std::uint32_t pc;
  copro::core::LmFaultInfo fault;
};

/// Each returns 0 on success; otherwise non-zero with a message in why[0..whyLen).
using CoproCudaAbiFn = int (*)();
using CoproCudaDeviceCountFn = int (*)(int* count, char* why, std::size_t whyLen);
using CoproCudaAllocFn = int (*)(std::size_t bytes, void** ptr, char* why, std::size_t whyLen);
using CoproCudaFreeFn = void (*)(void* ptr);
/// Runs one call of `n` ranks (lanes of rank 0 first, then rank 1's, ...; `results` has one entry per
/// lane in that order). `timeoutSec` ≤ 0: no limit.
using CoproCudaRunFn = int (*)(const CoproCudaRank* ranks, std::int32_t n, double timeoutSec,
                               CoproCudaLaneResult* results, char* why, std::size_t whyLen);
}
