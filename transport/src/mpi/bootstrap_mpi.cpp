/// The MPI bootstrap: every Bootstrap operation is the MPI call of the same name on a duplicated
/// communicator.
#include <climits>
#include <string>

#include "copro/transport/mpi.hpp"
#include "mpi_common.hpp"

namespace copro::transport {

namespace mpi {

core::Status mpiStatus(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return {};
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, text, &len);
  return {core::ErrorCode::kSystemError, std::string(what) + ": " + std::string(text, static_cast<std::size_t>(len))};
}

void mpiCheck(int rc, const char* what) {
  mpiStatus(rc, what).throwIfError();
}

MPI_Comm dupComm(MPI_Comm comm) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!initialized || finalized) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "MPI is not initialized (call MPI_Init before creating an MPI bootstrap or communicator)");
  }
  if (comm == MPI_COMM_NULL) {
    throw core::Error(core::ErrorCode::kInvalidArgument, "the MPI communicator is MPI_COMM_NULL");
  }
  MPI_Comm out = MPI_COMM_NULL;
  mpiCheck(MPI_Comm_dup(comm, &out), "MPI_Comm_dup");
  mpiCheck(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
  return out;
}

namespace {

class MpiBootstrap final : public core::Bootstrap {
 public:
  /// Takes ownership of `comm`.
  explicit MpiBootstrap(MPI_Comm comm) : comm_(comm) {
    mpiCheck(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    mpiCheck(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  ~MpiBootstrap() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
  MpiBootstrap(const MpiBootstrap&) = delete;
  MpiBootstrap& operator=(const MpiBootstrap&) = delete;

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] MPI_Comm comm() const { return comm_; }

  core::Status allGather(const void* in, void* out, std::size_t bytes) override {
    if (bytes > static_cast<std::size_t>(INT_MAX)) {
      return {core::ErrorCode::kInvalidArgument,
              "MPI bootstrap allGather: " + std::to_string(bytes) + " bytes per rank exceed MPI's int count"};
    }
    return mpiStatus(
        MPI_Allgather(in, static_cast<int>(bytes), MPI_BYTE, out, static_cast<int>(bytes), MPI_BYTE, comm_),
        "MPI_Allgather");
  }
  core::Status barrier() override { return mpiStatus(MPI_Barrier(comm_), "MPI_Barrier"); }
  core::Status send(int peer, int tag, const void* data, std::size_t bytes) override {
    COPRO_RETURN_IF_ERROR(checkP2p(peer, tag, bytes));
    return mpiStatus(MPI_Send(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_), "MPI_Send");
  }
  core::Status recv(int peer, int tag, void* data, std::size_t bytes) override {
    COPRO_RETURN_IF_ERROR(checkP2p(peer, tag, bytes));
    MPI_Status st;
    COPRO_RETURN_IF_ERROR(
        mpiStatus(MPI_Recv(data, static_cast<int>(bytes), MPI_BYTE, peer, tag, comm_, &st), "MPI_Recv"));
    int count = 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    if (static_cast<std::size_t>(count) != bytes) {
      return {core::ErrorCode::kInvalidUsage, "MPI bootstrap recv from rank " + std::to_string(peer) + " tag " +
                                                  std::to_string(tag) + ": expected " + std::to_string(bytes) +
                                                  " bytes, got " + std::to_string(count)};
    }
    return {};
  }
  std::unique_ptr<core::Bootstrap> split(int color, int key) override {
    MPI_Comm out = MPI_COMM_NULL;
    mpiCheck(MPI_Comm_split(comm_, color < 0 ? MPI_UNDEFINED : color, key, &out), "MPI_Comm_split");
    if (out == MPI_COMM_NULL) return nullptr;
    mpiCheck(MPI_Comm_set_errhandler(out, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
    return std::make_unique<MpiBootstrap>(out);
  }

 private:
  core::Status checkP2p(int peer, int tag, std::size_t bytes) const {
    int ub = 0;
    int flag = 0;
    int* ubPtr = nullptr;
    MPI_Comm_get_attr(comm_, MPI_TAG_UB, &ubPtr, &flag);
    ub = flag != 0 && ubPtr != nullptr ? *ubPtr : 32767;
    if (peer < 0 || peer >= size_) {
      return {core::ErrorCode::kInvalidArgument,
              "MPI bootstrap: peer " + std::to_string(peer) + " is out of range (size " + std::to_string(size_) + ")"};
    }
    if (tag < 0 || tag > ub) {
      return {core::ErrorCode::kInvalidArgument,
              "MPI bootstrap: tag " + std::to_string(tag) + " is outside [0, " + std::to_string(ub) + "]"};
    }
    if (bytes > static_cast<std::size_t>(INT_MAX)) {
      return {core::ErrorCode::kInvalidArgument,
              "MPI bootstrap: " + std::to_string(bytes) + " bytes exceed MPI's int count"};
    }
    return {};
  }

  MPI_Comm comm_;
  int rank_ = 0;
  int size_ = 0;
};

}  // namespace
}  // namespace mpi

std::shared_ptr<core::Bootstrap> createMpiBootstrap(MPI_Comm comm) {
  return std::make_shared<mpi::MpiBootstrap>(mpi::dupComm(comm));
}

MPI_Comm mpiCommOf(const core::Bootstrap& bootstrap) {
  const auto* b = dynamic_cast<const mpi::MpiBootstrap*>(&bootstrap);
  return b != nullptr ? b->comm() : MPI_COMM_NULL;
}

}  // namespace copro::transport
