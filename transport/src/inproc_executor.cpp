/// The inproc Executor and CallHandle: thin façades over the shared World.
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "backend_registration.hpp"
#include "copro/transport/inproc.hpp"
#include "driven_call_handle.hpp"
#include "inproc_world.hpp"

namespace copro::transport {

namespace inproc {
namespace {

using core::Status;

class InprocExecutor final : public SharedWorldExecutor<World> {
 public:
  InprocExecutor(std::shared_ptr<World> world, int rank) : SharedWorldExecutor(std::move(world), rank) {}
  ~InprocExecutor() override { world_->retire(rank_); }
  InprocExecutor(const InprocExecutor&) = delete;
  InprocExecutor& operator=(const InprocExecutor&) = delete;

  [[nodiscard]] std::string_view backend() const override { return "inproc"; }
  [[nodiscard]] std::vector<int> nodeOfRank() const override { return world_->nodeOfRank(); }
  [[nodiscard]] std::uint64_t llMaxBytes() const override {
    return world_->llMailbox() != nullptr ? core::kLLSlotBytes : 0;
  }

  Status start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& buffers,
               std::unique_ptr<core::CallHandle>& handle) override {
    std::shared_ptr<Call> call;
    COPRO_RETURN_IF_ERROR(world_->start(rank_, std::move(program), buffers, call));
    handle = calls::makeCallHandle([world = world_, rank = rank_, call = std::move(call)](bool block, bool& done) {
      return world->progress(rank, call, block, done);
    });
    return {};
  }

  std::unique_ptr<core::Executor> split(int color, int key) override { return world_->split(rank_, color, key); }

  void* allocate(std::size_t bytes) override { return allocateAligned(bytes).data; }
};

}  // namespace

std::unique_ptr<core::Executor> makeExecutor(std::shared_ptr<World> world, int rank) {
  return std::make_unique<InprocExecutor>(std::move(world), rank);
}

}  // namespace inproc

std::vector<std::unique_ptr<core::Executor>> createInprocExecutors(const core::ExecutorOptions& options) {
  if (options.nranks < 1) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "inproc: nranks must be at least 1 (got " + std::to_string(options.nranks) + ")");
  }
  const auto n = static_cast<std::size_t>(options.nranks);
  std::vector<int> nodes = options.nodeOfRank;
  if (nodes.empty()) {
    nodes.assign(n, 0);
  } else if (nodes.size() != n) {
    throw core::Error(core::ErrorCode::kInvalidArgument, "inproc: nodeOfRank has " + std::to_string(nodes.size()) +
                                                             " entries for " + std::to_string(n) + " ranks");
  }
  const std::string& mode = options.config.initiation;
  if (mode != "device" && mode != "proxy") {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "inproc: initiation '" + mode + "' is not supported (COPRO_INITIATION: device or proxy)");
  }
  auto world = std::make_shared<inproc::World>(options.nranks, options.config, std::move(nodes));
  std::vector<std::unique_ptr<core::Executor>> out;
  out.reserve(n);
  for (int r = 0; r < options.nranks; ++r) out.push_back(inproc::makeExecutor(world, r));
  return out;
}

void registerInproc(core::ExecutorRegistry& registry) {
  registry.add(
      "inproc", [](const core::ExecutorOptions& o) { return createInprocExecutors(o); },
      "ranks are threads of this process, all in one load/store domain");
}

}  // namespace copro::transport
