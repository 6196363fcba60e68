/// The `lanemachine` backend: every rank a thread of this process, and every lane of a call run by the
/// portable lane machine (copro/core/lane_machine.hpp) that the GPU backend's kernels run, here on host
/// threads standing in for thread blocks and host atomics for device atomics (docs/gpu.md). A call runs
/// as a kernel launch would: once every rank has started it, all lanes of all ranks run to completion on
/// a few worker threads, each interleaving its lanes; the next call starts after it. It exists so that CI
/// checks the GPU lanes' op meaning, ordering and semaphore rules on the CPU (the conformance suite runs
/// on it); it is not a fast backend. The `cuda` backend is the same world with each call run by the CUDA
/// plugin instead (cuda_plugin.hpp): one kernel per call, a thread block per lane, the same lane machine.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backend_registration.hpp"
#include "copro/core/flat_program.hpp"
#include "copro/core/lane_machine.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/transport/lanemachine.hpp"
#include "cuda_plugin.hpp"

namespace copro::transport {

namespace lanemachine {
namespace {

using core::ErrorCode;
using core::Status;
using Clock = std::chrono::steady_clock;

/// One rank's part of a call: its buffers as the lane machine sees them, and their storage.
struct RankPart {
  bool joined = false;
  Clock::time_point joinedAt;
  /// This rank's Program: rank r's ops come from rank r's own Program (a send/recv group's ops differ
  /// per rank; only the header is common).
  std::shared_ptr<const core::ProgramSource> program;
  core::CallBuffers user;
  core::FlatRankProgram flat;
  std::vector<core::LmBuffer> buffers;
  std::vector<std::byte> scratch;
  std::vector<std::uint64_t> layout;
  std::vector<std::uint64_t> sems;
  std::uint32_t lock = 0;
};

/// A call of the world: filled as ranks start it, run once all have.
struct WorldCall {
  std::shared_ptr<const core::ProgramSource> program;
  std::vector<RankPart> parts;
  int joined = 0;
  bool done = false;
  Status status;
};

/// Text of a lane machine fault.
std::string faultText(const core::LmFaultInfo& f) {
  const std::string rank = "rank " + std::to_string(f.rank);
  const std::string buf = core::bufferName(static_cast<core::BufferId>(f.buffer));
  switch (f.fault) {
    case core::LmFault::kNone:
      return "no fault";
    case core::LmFault::kUnknownOp:
      return "unknown op code";
    case core::LmFault::kGeometry:
      return "an indirect size or offset could not be resolved from the layout words";
    case core::LmFault::kRank:
      return rank + " is outside the communicator";
    case core::LmFault::kBuffer:
      return "buffer " + buf + " of " + rank + " does not exist in this call";
    case core::LmFault::kBounds:
      return buf + "[" + std::to_string(f.offset) + ", +" + std::to_string(f.bytes) + ") of " + rank +
             " is out of bounds (" + std::to_string(f.limit) + " bytes)";
    case core::LmFault::kReadOnly:
      return buf + " of " + rank + " is read-only (the input of an out-of-place call)";
    case core::LmFault::kSemaphore:
      return "semaphore " + std::to_string(f.offset) + " of " + rank + " is not declared by the Program";
    case core::LmFault::kElements:
      return std::to_string(f.bytes) + " bytes is not a whole number of elements (or the type or operator is unknown)";
    case core::LmFault::kOverlap:
      return "a source and the destination overlap partially";
    case core::LmFault::kLocalSource:
      return "the source names " + rank + ", but a put's or multicast's source is local";
    case core::LmFault::kNoTargets:
      return "a reduce without sources (or more than 64), or a multicast without targets";
  }
  return "unknown fault";
}

class World {
 public:
  /// `device`: the CUDA plugin that runs each call (the `cuda` backend); null runs lanes on host threads.
  World(int n, core::Config config, const CudaPlugin* device)
      : n_(n), config_(std::move(config)), device_(device), next_(static_cast<std::size_t>(n), 0) {
    runner_ = std::thread([this] { runnerMain(); });
  }
  ~World() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    runner_.join();
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  [[nodiscard]] int size() const { return n_; }
  [[nodiscard]] const core::Config& config() const { return config_; }
  [[nodiscard]] const CudaPlugin* device() const { return device_; }

  /// Rank `r` starts its next call.
  Status join(int r, std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& b,
              std::shared_ptr<WorldCall>& out) {
    const std::string who =
        std::string(device_ != nullptr ? "cuda" : "lanemachine") + " rank " + std::to_string(r) + ": ";
    if (!program) return {ErrorCode::kInvalidArgument, who + "start() was given no Program"};
    COPRO_RETURN_IF_ERROR(core::checkCallBuffers(program->header(), b, r, n_, who));
    std::lock_guard<std::mutex> lock(mu_);
    if (!broken_.ok()) return {broken_.code(), who + "the communicator is unusable: " + broken_.message()};
    const std::uint64_t seq = next_[static_cast<std::size_t>(r)]++;
    std::shared_ptr<WorldCall>& call = calls_[seq];
    if (!call) {
      call = std::make_shared<WorldCall>();
      call->program = program;
      call->parts.resize(static_cast<std::size_t>(n_));
    } else if (call->program->header().name != program->header().name) {
      return {ErrorCode::kInvalidUsage, who + "call " + std::to_string(seq) + " is '" + program->header().name +
                                            "' here but '" + call->program->header().name + "' on another rank"};
    }
    RankPart& part = call->parts[static_cast<std::size_t>(r)];
    part.joined = true;
    part.joinedAt = Clock::now();
    part.program = std::move(program);
    part.user = b;
    ++call->joined;
    out = call;
    if (call->joined == n_) cv_.notify_all();
    return {};
  }

  /// Waits until `call` finished; fails it when ranks stay missing for COPRO_TIMEOUT.
  Status wait(int r, const std::shared_ptr<WorldCall>& call, bool block, bool& done) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      if (call->done) {
        done = true;
        return call->status;
      }
      if (call->joined < n_ && timedOut(*call, r)) {
        failLocked(*call, missingRanks(*call));
        continue;
      }
      if (!block) {
        done = false;
        return {};
      }
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  }

  void abort(int r) {
    std::lock_guard<std::mutex> lock(mu_);
    const Status s(ErrorCode::kAborted, std::string(device_ != nullptr ? "cuda" : "lanemachine") +
                                            ": Executor::abort() was called on rank " + std::to_string(r));
    for (auto& [seq, call] : calls_) {
      if (!call->done && call->joined < n_) failLocked(*call, s);
    }
    if (broken_.ok()) broken_ = s;
    cv_.notify_all();
  }

 private:
  bool timedOut(const WorldCall& call, int r) const {
    const double t = config_.timeoutSec;
    if (t <= 0) return false;
    const auto since = call.parts[static_cast<std::size_t>(r)].joinedAt;
    return std::chrono::duration<double>(Clock::now() - since).count() > t;
  }

  Status missingRanks(const WorldCall& call) const {
    std::string list;
    for (int q = 0; q < n_; ++q) {
      if (!call.parts[static_cast<std::size_t>(q)].joined) list += (list.empty() ? "" : ", ") + std::to_string(q);
    }
    return {ErrorCode::kTimeout, call.program->header().name + ": timed out after " +
                                     std::to_string(config_.timeoutSec) + " s: rank(s) " + list +
                                     " never started this call"};
  }

  void failLocked(WorldCall& call, const Status& s) {
    call.status = s;
    call.done = true;
    if (broken_.ok()) broken_ = s;
    cv_.notify_all();
  }

  void runnerMain() {
    std::unique_lock<std::mutex> lock(mu_);
    std::uint64_t seq = 0;
    for (;;) {
      cv_.wait(lock, [&] {
        auto it = calls_.find(seq);
        return stop_ || (it != calls_.end() && (it->second->joined == n_ || it->second->done));
      });
      if (stop_) return;
      std::shared_ptr<WorldCall> call = calls_[seq];
      calls_.erase(seq);
      ++seq;
      if (call->done) continue;  // failed before every rank joined
      lock.unlock();
      Status s = device_ != nullptr ? runOnDevice(*call) : run(*call);
      lock.lock();
      call->status = s;
      call->done = true;
      if (!s.ok() && broken_.ok()) broken_ = s;
      cv_.notify_all();
    }
  }

  /// Lays out every rank's buffers, then runs all lanes on worker threads until done, failed or stalled.
  Status run(WorldCall& call) {
    const core::ProgramHeader& h = call.program->header();
    std::vector<core::LmRank> ranks(static_cast<std::size_t>(n_));
    try {
      for (int r = 0; r < n_; ++r) prepare(call, h, r, ranks[static_cast<std::size_t>(r)]);
    } catch (const core::Error& e) {
      return {e.code(), h.name + ": " + e.message()};
    }
    struct Lane {
      int rank;
      int lane;
      core::FlatLaneView view;
      std::uint32_t pc = 0;
    };
    std::vector<Lane> lanes;
    for (int r = 0; r < n_; ++r) {
      const core::FlatRankProgram& f = call.parts[static_cast<std::size_t>(r)].flat;
      for (std::size_t l = 0; l < f.lanes.size(); ++l) lanes.push_back({r, static_cast<int>(l), f.lane(l)});
    }
    const core::LmWorld world{ranks.data(), n_};
    std::atomic<std::uint64_t> progress{0};
    std::atomic<bool> stop{false};
    std::mutex errMu;
    Status error;
    auto fail = [&](Status s) {
      std::lock_guard<std::mutex> el(errMu);
      if (error.ok()) error = std::move(s);
      stop.store(true);
    };
    const int workers = static_cast<int>(std::min<std::size_t>(lanes.size(), 4));
    auto work = [&](int w) {
      auto lastProgress = Clock::now();
      std::uint64_t seen = progress.load();
      for (;;) {
        bool left = false;
        bool moved = false;
        for (std::size_t i = static_cast<std::size_t>(w); i < lanes.size(); i += static_cast<std::size_t>(workers)) {
          Lane& ln = lanes[i];
          core::LaneMachine<core::HostLaneMemory> m(world, ln.rank);
          while (ln.pc < ln.view.numOps && !stop.load(std::memory_order_relaxed)) {
            const core::OpStep st = m.step(ln.view, ln.pc);
            if (st == core::OpStep::kBlocked) break;
            if (st == core::OpStep::kFailed) {
              fail({ErrorCode::kInvalidProgram,
                    opLabel(h, ln.rank, ln.lane, ln.pc, ln.view) + ": " + faultText(m.fault())});
              return;
            }
            ++ln.pc;
            moved = true;
          }
          left = left || ln.pc < ln.view.numOps;
        }
        if (!left || stop.load()) return;
        if (moved) progress.fetch_add(1);
        const std::uint64_t p = progress.load();
        if (p != seen) {
          seen = p;
          lastProgress = Clock::now();
        } else if (config_.timeoutSec > 0 &&
                   std::chrono::duration<double>(Clock::now() - lastProgress).count() > config_.timeoutSec) {
          fail({ErrorCode::kTimeout, h.name + ": no lane progressed for " + std::to_string(config_.timeoutSec) +
                                         " s; blocked: " + blockedList(lanes, w, workers, h)});
          return;
        }
        std::this_thread::yield();
      }
    };
    std::vector<std::thread> threads;
    for (int w = 1; w < workers; ++w) threads.emplace_back(work, w);
    if (workers > 0) work(0);
    for (std::thread& t : threads) t.join();
    return error;
  }

  /// Runs every lane of the call on the GPU through the plugin, then turns the lanes' ends into a Status.
  Status runOnDevice(WorldCall& call) {
    const core::ProgramHeader& h = call.program->header();
    std::vector<CoproCudaRank> ranks(static_cast<std::size_t>(n_));
    std::size_t numLanes = 0;
    try {
      for (int r = 0; r < n_; ++r) {
        describeForDevice(call, h, r, ranks[static_cast<std::size_t>(r)]);
        numLanes += call.parts[static_cast<std::size_t>(r)].flat.lanes.size();
      }
    } catch (const core::Error& e) {
      return {e.code(), h.name + ": " + e.message()};
    }
    std::vector<CoproCudaLaneResult> results(numLanes, CoproCudaLaneResult{0, 0, {}});
    COPRO_RETURN_IF_ERROR(device_->run(ranks, config_.timeoutSec, results));
    std::string blocked;
    int shown = 0;
    std::size_t i = 0;
    for (int r = 0; r < n_; ++r) {
      const core::FlatRankProgram& f = call.parts[static_cast<std::size_t>(r)].flat;
      for (std::size_t l = 0; l < f.lanes.size(); ++l, ++i) {
        const CoproCudaLaneResult& res = results[i];
        const std::string where = opLabel(h, r, static_cast<int>(l), res.pc, f.lane(l));
        if (res.state == 2) return {ErrorCode::kInvalidProgram, where + ": " + faultText(res.fault)};
        if (res.state != 1 && res.pc < f.lanes[l].numOps && shown < 4) blocked += (shown++ ? "; " : "") + where;
      }
    }
    if (blocked.empty()) return {};
    return {ErrorCode::kTimeout,
            h.name + ": no lane progressed for " + std::to_string(config_.timeoutSec) + " s; blocked: " + blocked};
  }

  /// Rank r's flat program and buffers as the plugin takes them (pointers into the call's RankPart).
  void describeForDevice(WorldCall& call, const core::ProgramHeader& h, int r, CoproCudaRank& out) {
    RankPart& p = call.parts[static_cast<std::size_t>(r)];
    const core::CallBuffers& b = p.user;
    const auto ri = static_cast<std::size_t>(r);
    p.flat = core::flatten(p.program->rank(r));
    const std::uint64_t inLimit = h.inputBytes.empty() ? 0 : std::min(h.inputBytes[ri], b.inputBytes);
    const std::uint64_t outLimit = h.outputBytes.empty() ? 0 : std::min(h.outputBytes[ri], b.outputBytes);
    out = CoproCudaRank{b.input,
                        b.input == nullptr ? 0 : inLimit,
                        b.output,
                        b.output == nullptr ? 0 : outLimit,
                        b.extra.data(),
                        b.extraBytes.data(),
                        static_cast<std::uint32_t>(b.extra.size()),
                        h.scratchBytes,
                        b.layoutInit.data(),
                        b.layoutInit.size(),
                        h.layoutWords,
                        h.numSemaphores,
                        p.flat.ops.data(),
                        static_cast<std::uint32_t>(p.flat.ops.size()),
                        p.flat.addrs.data(),
                        static_cast<std::uint32_t>(p.flat.addrs.size()),
                        p.flat.ranks.data(),
                        static_cast<std::uint32_t>(p.flat.ranks.size()),
                        p.flat.lanes.data(),
                        static_cast<std::uint32_t>(p.flat.lanes.size())};
  }

  template <typename Lanes>
  static std::string blockedList(const Lanes& lanes, int w, int workers, const core::ProgramHeader& h) {
    std::string out;
    int shown = 0;
    for (std::size_t i = static_cast<std::size_t>(w); i < lanes.size() && shown < 4;
         i += static_cast<std::size_t>(workers)) {
      if (lanes[i].pc >= lanes[i].view.numOps) continue;
      out += (shown++ ? "; " : "") + opLabel(h, lanes[i].rank, lanes[i].lane, lanes[i].pc, lanes[i].view);
    }
    return out;
  }

  static std::string opLabel(const core::ProgramHeader& h, int rank, int lane, std::uint32_t pc,
                             const core::FlatLaneView& v) {
    const core::FlatOp& op = v.ops[pc];
    return h.name + " rank " + std::to_string(rank) + " lane " + std::to_string(lane) + " op " + std::to_string(pc) +
           " (" + std::string(core::opCodeName(op.code)) + ")";
  }

  /// Rank r's flat program and buffers (scratch and layout in memory of this call).
  void prepare(WorldCall& call, const core::ProgramHeader& h, int r, core::LmRank& out) {
    RankPart& p = call.parts[static_cast<std::size_t>(r)];
    const core::CallBuffers& b = p.user;
    const auto ri = static_cast<std::size_t>(r);
    p.flat = core::flatten(p.program->rank(r));
    p.scratch.assign(h.scratchBytes, std::byte{0});
    p.layout.assign(h.layoutWords, 0);
    std::copy(
        b.layoutInit.begin(),
        b.layoutInit.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(b.layoutInit.size(), p.layout.size())),
        p.layout.begin());
    p.sems.assign(static_cast<std::size_t>(std::max(h.numSemaphores, 0)), 0);
    p.buffers.assign(static_cast<std::size_t>(core::kNumBuffers) + b.extra.size(), core::LmBuffer{});
    const std::uint64_t inLimit = h.inputBytes.empty() ? 0 : std::min(h.inputBytes[ri], b.inputBytes);
    const std::uint64_t outLimit = h.outputBytes.empty() ? 0 : std::min(h.outputBytes[ri], b.outputBytes);
    p.buffers[0] = {static_cast<std::byte*>(const_cast<void*>(b.input)), b.input == nullptr ? 0 : inLimit,
                    b.input == b.output ? 1U : 0U};
    p.buffers[1] = {static_cast<std::byte*>(b.output), b.output == nullptr ? 0 : outLimit, 1U};
    p.buffers[2] = {p.scratch.data(), p.scratch.size(), 1U};
    p.buffers[3] = {reinterpret_cast<std::byte*>(p.layout.data()), p.layout.size() * sizeof(std::uint64_t), 1U};
    for (std::size_t e = 0; e < b.extra.size(); ++e) {
      p.buffers[static_cast<std::size_t>(core::kNumBuffers) + e] = {static_cast<std::byte*>(b.extra[e]),
                                                                    b.extraBytes[e], 1U};
    }
    out = core::LmRank{p.buffers.data(), static_cast<std::uint32_t>(p.buffers.size()),
                       p.sems.data(),    static_cast<std::int32_t>(p.sems.size()),
                       &p.lock,          p.layout.data(),
                       p.layout.size()};
  }

  const int n_;
  const core::Config config_;
  const CudaPlugin* device_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, std::shared_ptr<WorldCall>> calls_;
  std::vector<std::uint64_t> next_;
  Status broken_;
  bool stop_ = false;
  std::thread runner_;
};

class Handle final : public core::CallHandle {
 public:
  Handle(std::shared_ptr<World> world, int rank, std::shared_ptr<WorldCall> call)
      : world_(std::move(world)), rank_(rank), call_(std::move(call)) {}
  Status test(bool& done) override { return world_->wait(rank_, call_, false, done); }
  Status wait() override {
    bool done = false;
    return world_->wait(rank_, call_, true, done);
  }

 private:
  std::shared_ptr<World> world_;
  int rank_;
  std::shared_ptr<WorldCall> call_;
};

class LaneMachineExecutor final : public SharedWorldExecutor<World> {
 public:
  LaneMachineExecutor(std::shared_ptr<World> world, int rank, std::vector<int> nodes)
      : SharedWorldExecutor(std::move(world), rank), nodes_(std::move(nodes)) {}

  [[nodiscard]] std::string_view backend() const override {
    return world_->device() != nullptr ? "cuda" : "lanemachine";
  }
  [[nodiscard]] std::vector<int> nodeOfRank() const override { return nodes_; }
  Status start(std::shared_ptr<const core::ProgramSource> program, const core::CallBuffers& buffers,
               std::unique_ptr<core::CallHandle>& handle) override {
    std::shared_ptr<WorldCall> call;
    COPRO_RETURN_IF_ERROR(world_->join(rank_, std::move(program), buffers, call));
    handle = std::make_unique<Handle>(world_, rank_, std::move(call));
    return {};
  }
  std::unique_ptr<core::Executor> split(int color, int /*key*/) override {
    if (color < 0) return nullptr;
    throw core::Error(ErrorCode::kUnsupported, std::string(backend()) +
                                                   ": split is not supported (create a communicator of the size "
                                                   "you need)");
  }
  /// Host memory (lanemachine), or managed memory the GPU uses in place (cuda).
  void* allocate(std::size_t bytes) override {
    const CudaPlugin* d = world_->device();
    return d != nullptr ? d->allocate(bytes) : std::malloc(std::max<std::size_t>(bytes, 1));
  }
  void deallocate(void* ptr) override {
    if (const CudaPlugin* d = world_->device()) {
      d->release(ptr);
    } else {
      std::free(ptr);
    }
  }

 private:
  std::vector<int> nodes_;
};

std::vector<std::unique_ptr<core::Executor>> createWorld(const core::ExecutorOptions& o, const CudaPlugin* device) {
  const char* name = device != nullptr ? "cuda" : "lanemachine";
  if (o.nranks < 1 || o.nranks > 4096) {
    throw core::Error(ErrorCode::kInvalidArgument,
                      std::string(name) + ": nranks " + std::to_string(o.nranks) + " is outside 1..4096");
  }
  std::vector<int> nodes = o.nodeOfRank;
  if (nodes.empty()) nodes.assign(static_cast<std::size_t>(o.nranks), 0);
  if (nodes.size() != static_cast<std::size_t>(o.nranks)) {
    throw core::Error(ErrorCode::kInvalidArgument, std::string(name) + ": nodeOfRank has " +
                                                       std::to_string(nodes.size()) + " entries for " +
                                                       std::to_string(o.nranks) + " ranks");
  }
  auto world = std::make_shared<World>(o.nranks, o.config, device);
  std::vector<std::unique_ptr<core::Executor>> out;
  for (int r = 0; r < o.nranks; ++r) out.push_back(std::make_unique<LaneMachineExecutor>(world, r, nodes));
  return out;
}

std::vector<std::unique_ptr<core::Executor>> createAll(const core::ExecutorOptions& o) {
  return createWorld(o, nullptr);
}

/// The `cuda` backend: fails, saying what is missing, without the plugin or a visible GPU.
std::vector<std::unique_ptr<core::Executor>> createCuda(const core::ExecutorOptions& o) {
  std::string why;
  const CudaPlugin* plugin = CudaPlugin::load(why);
  if (plugin == nullptr) throw core::Error(ErrorCode::kUnsupported, "cuda: " + why);
  if (plugin->deviceCount(why) == 0) {
    throw core::Error(ErrorCode::kUnsupported,
                      "cuda: no GPU is visible (" + why +
                          "); run on a machine with an NVIDIA GPU, or use the lanemachine backend to run the same "
                          "device lanes on the CPU");
  }
  return createWorld(o, plugin);
}

}  // namespace
}  // namespace lanemachine

void registerLaneMachine(core::ExecutorRegistry& registry) {
  registry.add("lanemachine", lanemachine::createAll,
               "ranks are threads of this process; every lane runs on the portable lane machine the GPU kernels "
               "run (docs/gpu.md): a CPU check of the device lanes, not a fast backend");
  registry.add("cuda", lanemachine::createCuda,
               "ranks share this process's GPU; each call is one kernel, a thread block per lane running the "
               "portable lane machine (docs/gpu.md); needs the CUDA plugin (COPRO_CUDA) and a GPU");
}

std::string cudaStatus() {
  return describeCuda();
}

}  // namespace copro::transport
