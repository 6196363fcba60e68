#include "peers/mpi_peer.hpp"

#include <string>

#include "copro/core/status.hpp"

namespace copro::bench {
namespace {

using collectives::CollectiveKind;

/// The MPI type of a copro type; MPI_DATATYPE_NULL where MPI has none (16-bit and 8-bit floats).
MPI_Datatype mpiType(DataType t) {
  switch (t) {
    case DataType::kInt8:
      return MPI_INT8_T;
    case DataType::kUint8:
      return MPI_UINT8_T;
    case DataType::kInt32:
      return MPI_INT32_T;
    case DataType::kUint32:
      return MPI_UINT32_T;
    case DataType::kInt64:
      return MPI_INT64_T;
    case DataType::kUint64:
      return MPI_UINT64_T;
    case DataType::kFloat32:
      return MPI_FLOAT;
    case DataType::kFloat64:
      return MPI_DOUBLE;
    default:
      return MPI_DATATYPE_NULL;
  }
}

/// MPI_OP_NULL for avg, which MPI does not have.
MPI_Op mpiOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return MPI_SUM;
    case ReduceOp::kProd:
      return MPI_PROD;
    case ReduceOp::kMin:
      return MPI_MIN;
    case ReduceOp::kMax:
      return MPI_MAX;
    default:
      return MPI_OP_NULL;
  }
}

bool hasOp(CollectiveKind k) {
  return k == CollectiveKind::kAllReduce || k == CollectiveKind::kReduceScatter || k == CollectiveKind::kReduce;
}

class MpiPeer final : public Peer {
 public:
  explicit MpiPeer(MPI_Comm comm) {
    MPI_Comm_dup(comm, &comm_);
    MPI_Comm_rank(comm_, &rank_);
    // Errors come back as return codes so they become copro::Error instead of aborting the job.
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }
  ~MpiPeer() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized == 0) MPI_Comm_free(&comm_);
  }
  MpiPeer(const MpiPeer&) = delete;
  MpiPeer& operator=(const MpiPeer&) = delete;

  [[nodiscard]] std::string name() const override { return "mpi"; }

  [[nodiscard]] std::string unsupportedReason(CollectiveKind kind, DataType dtype, ReduceOp op) const override {
    if (mpiType(dtype) == MPI_DATATYPE_NULL) {
      return "MPI has no predefined type for " + std::string(core::dataTypeName(dtype));
    }
    if (hasOp(kind) && mpiOp(op) == MPI_OP_NULL) {
      return "MPI has no predefined operator " + std::string(core::reduceOpName(op));
    }
    switch (kind) {
      case CollectiveKind::kAllReduce:
      case CollectiveKind::kAllGather:
      case CollectiveKind::kReduceScatter:
      case CollectiveKind::kAllToAll:
      case CollectiveKind::kBroadcast:
      case CollectiveKind::kReduce:
      case CollectiveKind::kGather:
      case CollectiveKind::kScatter:
        return {};
      default:
        return "copro-perf does not compare this collective with MPI";
    }
  }

  void run(const PeerCall& c) override {
    MPI_Datatype t = mpiType(c.dtype);
    MPI_Op op = mpiOp(c.op);
    // MPI counts are int; copro-perf's sizes stay far below 2^31 elements.
    const int n = static_cast<int>(c.count);
    void* send = const_cast<void*>(c.send);  // NOLINT: MPI-2 bindings of some collectives take void*
    int rc = MPI_SUCCESS;
    switch (c.kind) {
      case CollectiveKind::kAllReduce:
        rc = MPI_Allreduce(send, c.recv, n, t, op, comm_);
        break;
      case CollectiveKind::kAllGather:
        rc = MPI_Allgather(send, n, t, c.recv, n, t, comm_);
        break;
      case CollectiveKind::kReduceScatter:
        rc = MPI_Reduce_scatter_block(send, c.recv, n, t, op, comm_);
        break;
      case CollectiveKind::kAllToAll:
        rc = MPI_Alltoall(send, n, t, c.recv, n, t, comm_);
        break;
      case CollectiveKind::kBroadcast:
        // The root sends from its input (MPI_Bcast is in place); see Peer::output.
        rc = MPI_Bcast(rank_ == c.root ? send : c.recv, n, t, c.root, comm_);
        break;
      case CollectiveKind::kReduce:
        rc = MPI_Reduce(send, c.recv, n, t, op, c.root, comm_);
        break;
      case CollectiveKind::kGather:
        rc = MPI_Gather(send, n, t, c.recv, n, t, c.root, comm_);
        break;
      case CollectiveKind::kScatter:
        rc = MPI_Scatter(send, n, t, c.recv, n, t, c.root, comm_);
        break;
      default:
        throw Error(ErrorCode::kUnsupported, "copro-perf does not compare this collective with MPI");
    }
    if (rc != MPI_SUCCESS) {
      char text[MPI_MAX_ERROR_STRING];
      int len = 0;
      MPI_Error_string(rc, text, &len);
      throw Error(ErrorCode::kSystemError, "MPI collective failed on rank " + std::to_string(rank_) + ": " +
                                               std::string(text, static_cast<std::size_t>(len)));
    }
  }

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
};

}  // namespace

std::unique_ptr<Peer> makeMpiPeer(MPI_Comm comm) {
  return std::make_unique<MpiPeer>(comm);
}

}  // namespace copro::bench
