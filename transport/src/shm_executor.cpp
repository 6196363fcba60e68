/// The shm Executor and CallHandle: thin façades over this process's ShmComm.
#include <memory>
#include <string>
#include <utility>

#include "backend_registration.hpp"
#include "copro/transport/shm.hpp"
#include "driven_call_handle.hpp"
#include "shm_internal.hpp"

namespace copro::transport {

namespace shm {
namespace {

using core::Status;

class ShmExecutor final : public LoadStoreDomainExecutor {
 public:
  explicit ShmExecutor(std::shared_ptr<ShmComm> comm) : comm_(std::move(comm)) {}

  [[nodiscard]] std::string_view backend() const override { return "shm"; }
  [[nodiscard]] int rank() const override { return comm_->rank(); }
  [[nodiscard]] int size() const override { return comm_->size(); }
  [[nodiscard]] std::vector<int> nodeOfRank() const override { return comm_->nodeOfRank(); }
  [[nodiscard]] std::uint64_t llMaxBytes() const override {
    return comm_->llMailbox() != nullptr ? core::kLLSlotBytes : 0;
  }

  Status start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& buffers,
               std::unique_ptr<core::CallHandle>& handle) override {
    std::shared_ptr<Call> call;
    COPRO_RETURN_IF_ERROR(comm_->start(std::move(program), buffers, call));
    handle = calls::makeCallHandle(
        [comm = comm_, call = std::move(call)](bool block, bool& done) { return comm->progress(call, block, done); });
    return {};
  }

  std::unique_ptr<core::Executor> split(int color, int key) override {
    std::unique_ptr<ShmComm> child = comm_->split(color, key);
    if (!child) return nullptr;
    return std::make_unique<ShmExecutor>(std::shared_ptr<ShmComm>(std::move(child)));
  }

  void* allocate(std::size_t bytes) override { return comm_->allocate(bytes); }
  void deallocate(void* ptr) override { comm_->deallocate(ptr); }

  void abort() override { comm_->abort(); }
  [[nodiscard]] const core::Config& config() const override { return comm_->config(); }

  [[nodiscard]] const ShmComm& comm() const { return *comm_; }

 private:
  std::shared_ptr<ShmComm> comm_;
};

}  // namespace
}  // namespace shm

std::unique_ptr<core::Executor> createShmExecutor(const core::ExecutorOptions& options) {
  if (!options.bootstrap) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "shm: ExecutorOptions::bootstrap is not set (create shm communicators with "
                      "copro::createCommunicator(\"shm\", id, rank, nranks) or copro::createFromEnvironment(\"shm\"))");
  }
  const int n = options.bootstrap->size();
  if (!options.nodeOfRank.empty() && options.nodeOfRank.size() != static_cast<std::size_t>(n)) {
    throw core::Error(core::ErrorCode::kInvalidArgument, "shm: nodeOfRank has " +
                                                             std::to_string(options.nodeOfRank.size()) +
                                                             " entries for " + std::to_string(n) + " ranks");
  }
  const std::string& mode = options.config.initiation;
  if (mode != "device" && mode != "proxy") {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "shm: initiation '" + mode + "' is not supported (COPRO_INITIATION: device or proxy)");
  }
  auto comm = std::make_shared<shm::ShmComm>(options.bootstrap, options.config, options.nodeOfRank);
  return std::make_unique<shm::ShmExecutor>(std::move(comm));
}

void registerShm(core::ExecutorRegistry& registry) {
  addOneRankPerProcessBackend(
      registry, "shm", [](const core::ExecutorOptions& o) { return createShmExecutor(o); },
      "ranks are processes on one host: POSIX shared memory and Cross Memory Attach (needs a bootstrap)");
}

std::string shmSegmentPrefix(const core::Executor& executor) {
  const auto* e = dynamic_cast<const shm::ShmExecutor*>(&executor);
  return e == nullptr ? std::string() : e->comm().prefix();
}

}  // namespace copro::transport
