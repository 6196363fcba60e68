#pragma once
/// The CUDA plugin as the `cuda` backend sees it (cuda/cuda_plugin_abi.hpp): libcopro_cuda.so, looked for
/// beside the library or executable that holds copro (and in ../lib from there, which is where the build
/// tree and an installed prefix put it), then by name through the loader's path, and opened with dlopen
/// the first time it is needed. libcopro links no CUDA library: without the plugin or a GPU, creating a
/// `cuda` communicator fails with a message that says which is missing.
#include <cstddef>
#include <string>
#include <vector>

#include "copro/core/status.hpp"
#include "cuda/cuda_plugin_abi.hpp"

namespace copro::transport {

class CudaPlugin {
 public:
  /// The loaded plugin, or null with `why` (not built, not found, or of another ABI version).
  static const CudaPlugin* load(std::string& why);

  [[nodiscard]] const std::string& path() const { return path_; }
  /// Visible CUDA devices (0 with `why` when the runtime finds none or fails).
  int deviceCount(std::string& why) const;
  /// Managed memory of `bytes` (throws copro::Error naming the size and CUDA's reason).
  void* allocate(std::size_t bytes) const;
  void release(void* ptr) const;
  /// Runs one call; `results` gets one entry per lane (rank 0's lanes first).
  core::Status run(const std::vector<CoproCudaRank>& ranks, double timeoutSec,
                   std::vector<CoproCudaLaneResult>& results) const;

 private:
  std::string path_;
  CoproCudaDeviceCountFn deviceCount_ = nullptr;
  CoproCudaAllocFn alloc_ = nullptr;
  CoproCudaFreeFn free_ = nullptr;
  CoproCudaRunFn run_ = nullptr;
};

/// One line for copro-info --backends: where the plugin is and how many GPUs it sees, or why not.
std::string describeCuda();

}  // namespace copro::transport
