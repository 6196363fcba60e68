/// The torch-version-specific part of copro_torch: a c10d::ProcessGroup (torch 1.13; a later torch's
/// c10d::Backend has the same virtual methods) whose every op hands a Job to the Engine and returns a
/// WorkCopro completed by the engine's worker thread, with a future that DDP can chain on; and the Python
/// module `copro_torch._C` (create_process_group, transports, shutdown) that copro_torch/__init__.py
/// registers with torch.distributed.Backend.register_backend.
#include <pybind11/chrono.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <memory>
#include <utility>

#include "engine.hpp"

// torch/csrc/utils/pybind.h: torch binds its classes with intrusive_ptr holders, and converts
// torch.Tensor <-> at::Tensor.

namespace copro_torch {

namespace {

using c10d::OpType;

/// A collective in flight: completed (with its outputs or the error) by the engine's worker thread.
class WorkCopro final : public c10d::Work {
 public:
  WorkCopro(int rank, OpType type, std::vector<at::Tensor> outputs, std::weak_ptr<Engine> engine)
      : c10d::Work(rank, type),
        outputs_(std::move(outputs)),
        future_(c10::make_intrusive<c10::ivalue::Future>(c10::ListType::create(c10::TensorType::get()))),
        engine_(std::move(engine)) {}

  std::vector<at::Tensor> result() override { return outputs_; }

  /// A waiting thread runs the queued Jobs itself when the worker is idle (Engine::runQueuedUntil).
  bool wait(std::chrono::milliseconds timeout) override {
    if (const std::shared_ptr<Engine> engine = engine_.lock()) engine->runQueuedUntil([this] { return isCompleted(); });
    return c10d::Work::wait(timeout);
  }
  /// Observing the Work without waiting (DDP chains on the future; a user polls is_completed) hands the
  /// queued Jobs to the worker at once, so they progress without a wait().
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override {
    expedite();
    return future_;
  }
  bool isCompleted() override {
    if (c10d::Work::isCompleted()) return true;
    expedite();
    return false;
  }

  /// Marks the future and wakes wait() (on the thread that ran the Job).
  void complete(const std::exception_ptr& error) {
    if (error) {
      future_->setError(error);
    } else {
      future_->markCompleted(c10::IValue(outputs_));
    }
    finish(error);
  }

 private:
  std::vector<at::Tensor> outputs_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
  void expedite() {
    if (const std::shared_ptr<Engine> engine = engine_.lock()) engine->expedite();
  }

  std::weak_ptr<Engine> engine_;
};

Reduction reduction(const c10d::ReduceOp& op, const char* name) {
  switch (op.op_) {
    case c10d::ReduceOp::SUM:
      return Reduction::kSum;
    case c10d::ReduceOp::AVG:
      return Reduction::kAvg;
    case c10d::ReduceOp::PRODUCT:
      return Reduction::kProduct;
    case c10d::ReduceOp::MIN:
      return Reduction::kMin;
    case c10d::ReduceOp::MAX:
      return Reduction::kMax;
    default:
      break;
  }
  const char* names[] = {"SUM", "AVG", "PRODUCT", "MIN", "MAX", "BAND", "BOR", "BXOR", "PREMUL_SUM"};
  const char* opName = op.op_ < 9 ? names[op.op_] : "UNUSED";
  TORCH_CHECK_NOT_IMPLEMENTED(false, "copro_torch ", name, ": ReduceOp.", opName,
                              " is not supported; use SUM, AVG, PRODUCT, MIN or MAX (on torch.bool MIN/MAX are "
                              "logical and/or), or the gloo backend for it");
  return Reduction::kSum;  // not reached
}

const at::Tensor& single(const std::vector<at::Tensor>& tensors, const char* name) {
  TORCH_CHECK(tensors.size() == 1, "copro_torch ", name, ": takes exactly one tensor per call (got ", tensors.size(),
              "); lists of tensors on several devices are not supported");
  return tensors.front();
}

class ProcessGroupCopro final : public c10d::ProcessGroup {
 public:
  ProcessGroupCopro(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size, const std::string& transport,
                    std::chrono::milliseconds timeout)
      : c10d::ProcessGroup(rank, size), engine_(std::make_shared<Engine>(store, rank, size, transport, timeout)) {}

  const std::string getBackendName() const override { return "copro"; }
  const std::string& transport() const { return engine_->transport(); }
  Engine& engine() { return *engine_; }

  c10::intrusive_ptr<c10d::Work> broadcast(std::vector<at::Tensor>& tensors,
                                           const c10d::BroadcastOptions& opts) override {
    return launch(OpType::BROADCAST, engine_->broadcast(single(tensors, "broadcast"), root(opts.rootRank)));
  }

  c10::intrusive_ptr<c10d::Work> allreduce(std::vector<at::Tensor>& tensors,
                                           const c10d::AllreduceOptions& opts) override {
    const Reduction op = reduction(opts.reduceOp, "all_reduce");
    return launch(OpType::ALLREDUCE, engine_->allReduce(single(tensors, "all_reduce"), op));
  }

  c10::intrusive_ptr<c10d::Work> allreduce_coalesced(std::vector<at::Tensor>& tensors,
                                                     const c10d::AllreduceCoalescedOptions& opts) override {
    const Reduction op = reduction(opts.reduceOp, "all_reduce_coalesced");
    return launch(OpType::ALLREDUCE_COALESCED, engine_->allReduceCoalesced(tensors, op));
  }

  c10::intrusive_ptr<c10d::Work> reduce(std::vector<at::Tensor>& tensors, const c10d::ReduceOptions& opts) override {
    const Reduction op = reduction(opts.reduceOp, "reduce");
    return launch(OpType::REDUCE, engine_->reduce(single(tensors, "reduce"), op, root(opts.rootRank)));
  }

  c10::intrusive_ptr<c10d::Work> allgather(std::vector<std::vector<at::Tensor>>& outputs,
                                           std::vector<at::Tensor>& inputs,
                                           const c10d::AllgatherOptions& /*opts*/) override {
    TORCH_CHECK(outputs.size() == 1, "copro_torch all_gather: takes one output list (got ", outputs.size(), ")");
    return launch(OpType::ALLGATHER, engine_->allGather(outputs.front(), single(inputs, "all_gather")));
  }

  c10::intrusive_ptr<c10d::Work> _allgather_base(at::Tensor& output, at::Tensor& input,
                                                 const c10d::AllgatherOptions& /*opts*/) override {
    return launch(OpType::_ALLGATHER_BASE, engine_->allGatherBase(output, input));
  }

  c10::intrusive_ptr<c10d::Work> allgather_coalesced(std::vector<std::vector<at::Tensor>>& outputs,
                                                     std::vector<at::Tensor>& inputs,
                                                     const c10d::AllgatherOptions& /*opts*/) override {
    return launch(OpType::ALLGATHER_COALESCED, engine_->allGatherCoalesced(outputs, inputs));
  }

  c10::intrusive_ptr<c10d::Work> gather(std::vector<std::vector<at::Tensor>>& outputs, std::vector<at::Tensor>& inputs,
                                        const c10d::GatherOptions& opts) override {
    const int r = root(opts.rootRank);
    std::vector<at::Tensor> list;
    if (getRank() == r) {
      TORCH_CHECK(outputs.size() == 1, "copro_torch gather: takes one output list on the root");
      list = outputs.front();
    }
    return launch(OpType::GATHER, engine_->gather(list, single(inputs, "gather"), r));
  }

  c10::intrusive_ptr<c10d::Work> scatter(std::vector<at::Tensor>& outputs, std::vector<std::vector<at::Tensor>>& inputs,
                                         const c10d::ScatterOptions& opts) override {
    const int r = root(opts.rootRank);
    std::vector<at::Tensor> list;
    if (getRank() == r) {
      TORCH_CHECK(inputs.size() == 1, "copro_torch scatter: takes one input list on the root");
      list = inputs.front();
    }
    return launch(OpType::SCATTER, engine_->scatter(single(outputs, "scatter"), list, r));
  }

  c10::intrusive_ptr<c10d::Work> reduce_scatter(std::vector<at::Tensor>& outputs,
                                                std::vector<std::vector<at::Tensor>>& inputs,
                                                const c10d::ReduceScatterOptions& opts) override {
    const Reduction op = reduction(opts.reduceOp, "reduce_scatter");
    TORCH_CHECK(inputs.size() == 1, "copro_torch reduce_scatter: takes one input list (got ", inputs.size(), ")");
    return launch(OpType::REDUCE_SCATTER,
                  engine_->reduceScatter(single(outputs, "reduce_scatter"), inputs.front(), op));
  }

  c10::intrusive_ptr<c10d::Work> _reduce_scatter_base(at::Tensor& output, at::Tensor& input,
                                                      const c10d::ReduceScatterOptions& opts) override {
    const Reduction op = reduction(opts.reduceOp, "reduce_scatter_tensor");
    return launch(OpType::_REDUCE_SCATTER_BASE, engine_->reduceScatterBase(output, input, op));
  }

  c10::intrusive_ptr<c10d::Work> alltoall_base(at::Tensor& output, at::Tensor& input,
                                               std::vector<std::int64_t>& outSplits,
                                               std::vector<std::int64_t>& inSplits,
                                               const c10d::AllToAllOptions& /*opts*/) override {
    return launch(OpType::ALLTOALL_BASE, engine_->allToAllBase(output, input, outSplits, inSplits));
  }

  c10::intrusive_ptr<c10d::Work> alltoall(std::vector<at::Tensor>& outputs, std::vector<at::Tensor>& inputs,
                                          const c10d::AllToAllOptions& /*opts*/) override {
    return launch(OpType::ALLTOALL, engine_->allToAll(outputs, inputs));
  }

  c10::intrusive_ptr<c10d::Work> barrier(const c10d::BarrierOptions& /*opts*/) override {
    return launch(OpType::BARRIER, engine_->barrier());
  }

  c10::intrusive_ptr<c10d::Work> send(std::vector<at::Tensor>& tensors, int dst, int /*tag*/) override {
    return pointToPoint({true, single(tensors, "send"), dst}, OpType::SEND);
  }

  c10::intrusive_ptr<c10d::Work> recv(std::vector<at::Tensor>& tensors, int src, int /*tag*/) override {
    return pointToPoint({false, single(tensors, "recv"), src}, OpType::RECV);
  }

  c10::intrusive_ptr<c10d::Work> recvAnysource(std::vector<at::Tensor>& /*tensors*/, int /*tag*/) override {
    TORCH_CHECK_NOT_IMPLEMENTED(false, "copro_torch recv: receiving from any source is not supported; pass src=");
    return {};  // not reached
  }

  // batch_isend_irecv: the sends and receives between these two calls run as one copro group.
  void startCoalescing() override { coalescing_ = true; }

  void endCoalescing(std::vector<c10::intrusive_ptr<c10d::Work>>& /*reqs*/) override {
    coalescing_ = false;
    if (groupOps_.empty()) return;
    std::vector<c10::intrusive_ptr<WorkCopro>> works = std::move(groupWorks_);
    engine_->submit(engine_->p2p(groupOps_), [works](const std::exception_ptr& e) {
      for (const auto& w : works) w->complete(e);
    });
    groupOps_.clear();
    groupWorks_.clear();
  }

 private:
  int root(std::int64_t r) const {
    TORCH_CHECK(r >= 0 && r < getSize(), "copro_torch: root rank ", r, " is outside the group of size ", getSize());
    return static_cast<int>(r);
  }

  c10::intrusive_ptr<c10d::Work> launch(OpType type, Job job) {
    auto work = c10::make_intrusive<WorkCopro>(getRank(), type, job.outputs, engine_);
    engine_->submit(std::move(job), [work](const std::exception_ptr& e) { work->complete(e); });
    return work;
  }

  c10::intrusive_ptr<c10d::Work> pointToPoint(Engine::P2P op, OpType type) {
    engine_->checkP2P(op, op.isSend ? "send" : "recv");
    if (!coalescing_) return launch(type, engine_->p2p({op}));
    auto work = c10::make_intrusive<WorkCopro>(getRank(), type, std::vector<at::Tensor>{op.tensor}, engine_);
    groupOps_.push_back(std::move(op));
    groupWorks_.push_back(work);
    return work;
  }

  std::shared_ptr<Engine> engine_;
  bool coalescing_ = false;
  std::vector<Engine::P2P> groupOps_;
  std::vector<c10::intrusive_ptr<WorkCopro>> groupWorks_;
};

c10::intrusive_ptr<c10d::ProcessGroup> createProcessGroup(const c10::intrusive_ptr<c10d::Store>& store, int rank,
                                                          int size, std::chrono::milliseconds timeout,
                                                          const std::string& transport) {
  pybind11::gil_scoped_release release;  // creation waits on the store, which other threads may serve
  return c10::make_intrusive<ProcessGroupCopro>(store, rank, size, transport, timeout);
}

ProcessGroupCopro& coproGroup(const c10::intrusive_ptr<c10d::ProcessGroup>& pg) {
  auto* copro = dynamic_cast<ProcessGroupCopro*>(pg.get());
  TORCH_CHECK(copro != nullptr, "copro_torch: not a copro process group");
  return *copro;
}

std::string transportOf(const c10::intrusive_ptr<c10d::ProcessGroup>& pg) {
  return coproGroup(pg).transport();
}

at::Tensor emptyShared(const c10::intrusive_ptr<c10d::ProcessGroup>& pg, std::int64_t bytes) {
  return coproGroup(pg).engine().emptyShared(bytes);
}

}  // namespace

}  // namespace copro_torch

PYBIND11_MODULE(_C, m) {
  m.doc() = "copro's torch.distributed backend (see copro_torch)";
  m.def("create_process_group", &copro_torch::createProcessGroup, pybind11::arg("store"), pybind11::arg("rank"),
        pybind11::arg("world_size"), pybind11::arg("timeout"), pybind11::arg("transport"),
        "Creates this rank's copro process group (collective over the group; bootstraps through `store`).");
  m.def("transport_of", &copro_torch::transportOf, "The transport a copro process group runs on.");
  m.def("empty_shared", &copro_torch::emptyShared, pybind11::arg("group"), pybind11::arg("bytes"),
        "A uint8 CPU tensor in memory every rank of the copro group maps (see copro_torch.empty).");
  m.def("transports", &copro_torch::availableTransports, "The transports this build offers.");
  m.def(
      "configured_transport", [] { return copro::Config::fromEnvironment().torchTransport; },
      "COPRO_TORCH_TRANSPORT through copro's Config (auto when unset).");
  m.def(
      "shutdown", [] { copro_torch::shutdownAll(); },
      "Stops every copro process group of this process (called at exit).");
}
