// The `cuda` backend where it can be checked without a GPU: it is registered, copro-info's status line says
// whether the CUDA plugin was built and what the runtime found, and creating a communicator without a GPU
// (or without the plugin) fails with a message naming what is missing and the lanemachine alternative.
// With a GPU, the conformance matrix runs on it instead (ctest cuda_conformance, label gpu; docs/gpu.md).
#include <gtest/gtest.h>

#include <string>

#include "copro/copro.hpp"
#include "copro/transport/lanemachine.hpp"

namespace copro {
namespace {

bool gpuVisible(const std::string& status) {
  return status.rfind("compiled, ", 0) == 0 && status.find("no device") == std::string::npos;
}

TEST(CudaBackend, IsRegisteredAndReportsItsStatus) {
  registerBuiltinBackends();
  bool listed = false;
  for (const auto& [name, doc] : core::ExecutorRegistry::instance().list()) listed = listed || name == "cuda";
  EXPECT_TRUE(listed);
  const std::string status = transport::cudaStatus();
  EXPECT_TRUE(status.rfind("compiled, ", 0) == 0 || status.rfind("not available: ", 0) == 0) << status;
}

TEST(CudaBackend, WithoutAGpuCreationSaysWhatIsMissing) {
  const std::string status = transport::cudaStatus();
  if (gpuVisible(status)) GTEST_SKIP() << "a GPU is visible (" << status << "): cuda_conformance runs the backend";
  core::ExecutorOptions o;
  o.nranks = 2;
  try {
    static_cast<void>(createCommunicators("cuda", o));
    FAIL() << "creating cuda communicators succeeded without a GPU (" << status << ")";
  } catch (const Error& e) {
    const std::string what = e.what();
    const bool noDevice =
        what.find("no GPU is visible") != std::string::npos && what.find("lanemachine") != std::string::npos;
    const bool noPlugin =
        what.find("libcopro_cuda.so") != std::string::npos && what.find("COPRO_CUDA") != std::string::npos;
    EXPECT_TRUE(noDevice || noPlugin) << what;
    EXPECT_EQ(noPlugin, status.rfind("not available: ", 0) == 0) << what << " / " << status;
  }
}

}  // namespace
}  // namespace copro
