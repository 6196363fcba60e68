#pragma once
// A reference library's collective, timed by copro-perf --compare on copro's own buffers.
#include <cstdint>
#include <string>

#include "copro/collectives/collective.hpp"
#include "copro/core/dtype.hpp"

namespace copro::bench {

/// One out-of-place call with NCCL's count conventions (the same arguments copro gets).
struct PeerCall {
  collectives::CollectiveKind kind = collectives::CollectiveKind::kAllReduce;
  const void* send = nullptr;
  void* recv = nullptr;
  std::uint64_t count = 0;  ///< all-reduce/broadcast/reduce: elements; all-gather/gather: per rank sent;
                            ///< reduce-scatter/scatter: per rank received; all-to-all: per peer
  DataType dtype = DataType::kFloat32;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
};

/// A library copro-perf compares with. One object per process (rank).
class Peer {
 public:
  virtual ~Peer() = default;
  /// Short name for column headers ("mpi", "gloo").
  [[nodiscard]] virtual std::string name() const = 0;
  /// Empty when the library runs this collective with this type and operator, else why not.
  [[nodiscard]] virtual std::string unsupportedReason(collectives::CollectiveKind kind, DataType dtype,
                                                      ReduceOp op) const = 0;
  /// One blocking call; throws copro::Error when the library reports a failure.
  virtual void run(const PeerCall& call) = 0;
  /// Where this rank's result lies after run(): the root of a broadcast sends from (and keeps its
  /// data in) `send`, every other output is in `recv`.
  [[nodiscard]] static const void* output(const PeerCall& call, int rank) {
    return call.kind == collectives::CollectiveKind::kBroadcast && rank == call.root ? call.send : call.recv;
  }
};

}  // namespace copro::bench
