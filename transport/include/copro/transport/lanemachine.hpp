#pragma once
/// The `lanemachine` backend: ranks are threads of this process and every lane of a call runs on the
/// portable lane machine (copro/core/lane_machine.hpp), the op interpreter the GPU backend's kernels run,
/// on host threads. It is the CPU check of the device lanes (docs/gpu.md), not a fast backend.
#include <string>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// Adds the backend to a registry under the name "lanemachine", and the `cuda` backend (the same ranks
/// and calls, each call one kernel on the GPU through the CUDA plugin) under "cuda".
void registerLaneMachine(core::ExecutorRegistry& registry);

/// For copro-info --backends: "compiled, no device (...)", "compiled, N device(s)" or "not available: why".
std::string cudaStatus();

}  // namespace copro::transport
