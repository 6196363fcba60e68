#pragma once
/// How backends describe themselves to the rest of copro, written once: the registration of the backends
/// whose factory makes the one rank of this process (shm, mpi, ucx and the virtual-node pairs), and the
/// load/store domain of the backends in which every rank reaches every other's memory (inproc, shm).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "copro/core/executor.hpp"

namespace copro::transport {

/// Adds backend `name` to `registry`; `create` makes this process's executor from the options.
void addOneRankPerProcessBackend(core::ExecutorRegistry& registry, const std::string& name,
                                 std::function<std::unique_ptr<core::Executor>(const core::ExecutorOptions&)> create,
                                 std::string description);

/// One load/store domain of all `nranks` ranks (Executor::loadStoreDomains of inproc and shm).
std::vector<std::vector<std::int32_t>> singleLoadStoreDomain(int nranks);

/// The Executor base of the load/store backends (inproc, shm): every rank reaches every rank's memory
/// (inproc: one address space; shm: shared mappings or Cross Memory Attach), so all ranks form one
/// load/store domain and no buffer needs registering.
class LoadStoreDomainExecutor : public core::Executor {
 public:
  [[nodiscard]] std::vector<std::vector<std::int32_t>> loadStoreDomains() const override {
    return singleLoadStoreDomain(size());
  }
  core::Status registerBuffer(void* /*ptr*/, std::size_t /*bytes*/) override { return {}; }
  core::Status deregisterBuffer(void* /*ptr*/) override { return {}; }
};

/// The Executor base of a load/store backend whose ranks are threads of this process sharing one `World`
/// (inproc, lanemachine): the rank's index into the World, which answers size, abort and the Config, and
/// buffers from the C heap.
template <typename World>
class SharedWorldExecutor : public LoadStoreDomainExecutor {
 public:
  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return world_->size(); }
  void deallocate(void* ptr) override { std::free(ptr); }
  void abort() override { world_->abort(rank_); }
  [[nodiscard]] const core::Config& config() const override { return world_->config(); }

 protected:
  SharedWorldExecutor(std::shared_ptr<World> world, int rank) : world_(std::move(world)), rank_(rank) {}

  std::shared_ptr<World> world_;
  int rank_;
};

}  // namespace copro::transport
