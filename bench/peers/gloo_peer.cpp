#include "peers/gloo_peer.hpp"

#include <gloo/allgather.h>
#include <gloo/allreduce.h>
#include <gloo/alltoall.h>
#include <gloo/broadcast.h>
#include <gloo/gather.h>
#include <gloo/math.h>
#include <gloo/reduce.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/scatter.h>
#include <gloo/transport/tcp/device.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <vector>

#include "copro/core/status.hpp"

namespace copro::bench {
namespace {

using collectives::CollectiveKind;
using ReduceFn = void (*)(void*, const void*, const void*, std::size_t);

bool hasOp(CollectiveKind k) {
  return k == CollectiveKind::kAllReduce || k == CollectiveKind::kReduceScatter || k == CollectiveKind::kReduce;
}

template <typename T>
ReduceFn reduceFn(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum:
      return &gloo::sum<T>;
    case ReduceOp::kProd:
      return &gloo::product<T>;
    case ReduceOp::kMin:
      return &gloo::min<T>;
    case ReduceOp::kMax:
      return &gloo::max<T>;
    default:
      return nullptr;
  }
}

template <typename T>
void runTyped(const std::shared_ptr<gloo::Context>& ctx, const PeerCall& c, std::chrono::milliseconds timeout) {
  // Gloo takes non-const pointers even for inputs it only reads.
  T* send = static_cast<T*>(const_cast<void*>(c.send));  // NOLINT
  T* recv = static_cast<T*>(c.recv);
  const auto n = static_cast<std::size_t>(c.count);
  const auto p = static_cast<std::size_t>(ctx->size);
  switch (c.kind) {
    case CollectiveKind::kAllReduce: {
      gloo::AllreduceOptions o(ctx);
      o.setInput(send, n);
      o.setOutput(recv, n);
      o.setReduceFunction(reduceFn<T>(c.op));
      o.setTimeout(timeout);
      gloo::allreduce(o);
      break;
    }
    case CollectiveKind::kAllGather: {
      gloo::AllgatherOptions o(ctx);
      o.setInput(send, n);
      o.setOutput(recv, n * p);
      o.setTimeout(timeout);
      gloo::allgather(o);
      break;
    }
    case CollectiveKind::kAllToAll: {
      gloo::AlltoallOptions o(ctx);
      o.setInput(send, n * p);
      o.setOutput(recv, n * p);
      o.setTimeout(timeout);
      gloo::alltoall(o);
      break;
    }
    case CollectiveKind::kBroadcast: {
      // The root sends from its input, as MPI_Bcast does; see Peer::output.
      gloo::BroadcastOptions o(ctx);
      o.setOutput(ctx->rank == c.root ? send : recv, n);
      o.setRoot(c.root);
      o.setTimeout(timeout);
      gloo::broadcast(o);
      break;
    }
    case CollectiveKind::kReduce: {
      gloo::ReduceOptions o(ctx);
      o.setInput(send, n);
      o.setOutput(recv, n);
      o.setRoot(c.root);
      o.setReduceFunction(reduceFn<T>(c.op));
      o.setTimeout(timeout);
      gloo::reduce(o);
      break;
    }
    case CollectiveKind::kGather: {
      gloo::GatherOptions o(ctx);
      o.setInput(send, n);
      if (ctx->rank == c.root) o.setOutput(recv, n * p);
      o.setRoot(c.root);
      o.setTimeout(timeout);
      gloo::gather(o);
      break;
    }
    case CollectiveKind::kScatter: {
      gloo::ScatterOptions o(ctx);
      if (ctx->rank == c.root) {
        std::vector<T*> blocks(p);
        for (std::size_t q = 0; q < p; ++q) blocks[q] = send + q * n;
        o.setInputs(blocks, n);
      }
      o.setOutput(recv, n);
      o.setRoot(c.root);
      o.setTimeout(timeout);
      gloo::scatter(o);
      break;
    }
    default:
      throw Error(ErrorCode::kUnsupported, "copro-perf does not compare this collective with Gloo");
  }
}

class GlooPeer final : public Peer {
 public:
  explicit GlooPeer(const GlooRendezvous& rv)
      : timeout_(std::chrono::milliseconds(static_cast<std::int64_t>(rv.timeoutSec * 1000))) {
    try {
      gloo::transport::tcp::attr attr;
      attr.hostname = rv.hostname;
      auto device = gloo::transport::tcp::CreateDevice(attr);
      gloo::rendezvous::FileStore fileStore(rv.storeDir);
      gloo::rendezvous::PrefixStore store(rv.prefix, fileStore);
      auto ctx = std::make_shared<gloo::rendezvous::Context>(rv.rank, rv.size);
      ctx->setTimeout(timeout_);
      ctx->connectFullMesh(store, device);
      ctx_ = ctx;
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kSystemError,
                  "Gloo rendezvous in " + rv.storeDir + " failed on rank " + std::to_string(rv.rank) + ": " + e.what());
    }
  }

  [[nodiscard]] std::string name() const override { return "gloo"; }

  [[nodiscard]] std::string unsupportedReason(CollectiveKind kind, DataType dtype, ReduceOp op) const override {
    switch (dtype) {
      case DataType::kInt8:
      case DataType::kUint8:
      case DataType::kInt32:
      case DataType::kUint32:
      case DataType::kInt64:
      case DataType::kUint64:
      case DataType::kFloat32:
      case DataType::kFloat64:
        break;
      default:
        return "copro-perf runs Gloo on 8/32/64-bit integers, float and double only";
    }
    if (hasOp(kind) && op == ReduceOp::kAvg) return "Gloo has no avg reduction";
    switch (kind) {
      case CollectiveKind::kAllReduce:
      case CollectiveKind::kAllGather:
      case CollectiveKind::kAllToAll:
      case CollectiveKind::kBroadcast:
      case CollectiveKind::kReduce:
      case CollectiveKind::kGather:
      case CollectiveKind::kScatter:
        return {};
      case CollectiveKind::kReduceScatter:
        return "this Gloo (0.5, Debian) has no reduce-scatter in its options API";
      default:
        return "copro-perf does not compare this collective with Gloo";
    }
  }

  void run(const PeerCall& c) override {
    try {
      switch (c.dtype) {
        case DataType::kInt8:
          return runTyped<std::int8_t>(ctx_, c, timeout_);
        case DataType::kUint8:
          return runTyped<std::uint8_t>(ctx_, c, timeout_);
        case DataType::kInt32:
          return runTyped<std::int32_t>(ctx_, c, timeout_);
        case DataType::kUint32:
          return runTyped<std::uint32_t>(ctx_, c, timeout_);
        case DataType::kInt64:
          return runTyped<std::int64_t>(ctx_, c, timeout_);
        case DataType::kUint64:
          return runTyped<std::uint64_t>(ctx_, c, timeout_);
        case DataType::kFloat32:
          return runTyped<float>(ctx_, c, timeout_);
        case DataType::kFloat64:
          return runTyped<double>(ctx_, c, timeout_);
        default:
          throw Error(ErrorCode::kUnsupported, "copro-perf runs Gloo on 8/32/64-bit integers, float and double only");
      }
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kSystemError,
                  "Gloo collective failed on rank " + std::to_string(ctx_->rank) + ": " + e.what());
    }
  }

 private:
  std::chrono::milliseconds timeout_;
  std::shared_ptr<gloo::Context> ctx_;
};

}  // namespace

std::unique_ptr<Peer> makeGlooPeer(const GlooRendezvous& rendezvous) {
  return std::make_unique<GlooPeer>(rendezvous);
}

}  // namespace copro::bench
