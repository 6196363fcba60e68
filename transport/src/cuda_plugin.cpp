/// Finding and opening the CUDA plugin (cuda_plugin.hpp).
#include "cuda_plugin.hpp"

#include <dlfcn.h>

#include <filesystem>
#include <mutex>

#include "copro/core/data_dir.hpp"

namespace copro::transport {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPluginName = "libcopro_cuda.so";

std::vector<std::string> candidates() {
  std::vector<std::string> out;
  const fs::path bin = core::coproBinaryPath();
  if (!bin.empty()) {
    const fs::path dir = bin.parent_path();
    out.push_back((dir / kPluginName).string());
    out.push_back((dir.parent_path() / "lib" / kPluginName).lexically_normal().string());
  }
  out.emplace_back(kPluginName);  // the loader's path (LD_LIBRARY_PATH, the system folders)
  return out;
}

template <typename Fn>
Fn symbol(void* handle, const char* name, std::string& missing) {
  void* s = dlsym(handle, name);
  if (s == nullptr) missing += std::string(missing.empty() ? "" : ", ") + name;
  return reinterpret_cast<Fn>(s);
}

}  // namespace

const CudaPlugin* CudaPlugin::load(std::string& why) {
  static std::once_flag once;
  static CudaPlugin plugin;
  static std::string failure;
  std::call_once(once, [] {
    std::string tried;
    for (const std::string& path : candidates()) {
      void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        tried += "\n  " + path + ": " + dlerror();
        continue;
      }
      std::string missing;
      auto abi = symbol<CoproCudaAbiFn>(h, "copro_cuda_abi", missing);
      plugin.deviceCount_ = symbol<CoproCudaDeviceCountFn>(h, "copro_cuda_device_count", missing);
      plugin.alloc_ = symbol<CoproCudaAllocFn>(h, "copro_cuda_alloc", missing);
      plugin.free_ = symbol<CoproCudaFreeFn>(h, "copro_cuda_free", missing);
      plugin.run_ = symbol<CoproCudaRunFn>(h, "copro_cuda_run", missing);
      if (!missing.empty() || abi() != kCoproCudaAbi) {
        failure = path + " is not a copro CUDA plugin of this version (" +
                  (missing.empty() ? "ABI " + std::to_string(abi()) + ", expected " + std::to_string(kCoproCudaAbi)
                                   : "missing " + missing) +
                  "); rebuild copro";
        return;
      }
      plugin.path_ = path;
      return;
    }
    failure =
        "the CUDA plugin (libcopro_cuda.so) was not found; it is built when configure finds nvcc >= 12 "
        "(-DCOPRO_CUDA=AUTO or ON, docs/gpu.md). Tried:" +
        tried;
  });
  why = failure;
  return failure.empty() ? &plugin : nullptr;
}

int CudaPlugin::deviceCount(std::string& why) const {
  int count = 0;
  char text[512] = {0};
  if (deviceCount_(&count, text, sizeof text) != 0) {
    why = text;
    return 0;
  }
  if (count == 0) why = "the CUDA runtime sees no device";
  return count;
}

void* CudaPlugin::allocate(std::size_t bytes) const {
  void* p = nullptr;
  char text[512] = {0};
  if (alloc_(bytes, &p, text, sizeof text) != 0) throw core::Error(core::ErrorCode::kOutOfMemory, text);
  return p;
}

void CudaPlugin::release(void* ptr) const {
  free_(ptr);
}

core::Status CudaPlugin::run(const std::vector<CoproCudaRank>& ranks, double timeoutSec,
                             std::vector<CoproCudaLaneResult>& results) const {
  char text[1024] = {0};
  if (run_(ranks.data(), static_cast<std::int32_t>(ranks.size()), timeoutSec, results.data(), text, sizeof text) != 0) {
    return {core::ErrorCode::kSystemError, std::string("cuda: ") + text};
  }
  return {};
}

std::string describeCuda() {
  std::string why;
  const CudaPlugin* plugin = CudaPlugin::load(why);
  if (plugin == nullptr) return "not available: " + why;
  const int n = plugin->deviceCount(why);
  if (n == 0) return "compiled, no device (" + why + "); plugin " + plugin->path();
  return "compiled, " + std::to_string(n) + " device(s); plugin " + plugin->path();
}

}  // namespace copro::transport
