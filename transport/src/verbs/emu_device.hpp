#pragma once
/// Internal state of the emulated verbs provider (emu_provider.hpp): the shared-memory layout of a
/// device's send rings, and the process-local objects behind the ibv_* handles. emu_objects.cpp implements
/// the entry points, emu_nic.cpp the NIC thread that executes the peers' requests.
#include <infiniband/verbs.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace copro::transport::verbs::emu {

constexpr int kMaxQps = 256;     ///< queue pairs per emulated device
constexpr int kRingDepth = 512;  ///< send work requests a QP may have outstanding (max_qp_wr)
constexpr int kMaxInline = 128;  ///< max_inline_data
/// What the NIC thread returns for a WRITE WITH IMMEDIATE that waits for a receive (rnr_retry 7).
constexpr std::uint32_t kWaitForReceive = 0xffffU;
constexpr std::uint64_t kMagic = 0x636f70726f656d75ULL;  // "coproemu"

/// One posted send work request, as the responder's NIC thread reads it.
struct WireWr {
  std::uint32_t opcode = 0;  ///< ibv_wr_opcode
  std::uint32_t flags = 0;   ///< ibv_send_flags
  std::uint64_t wrId = 0;
  std::uint64_t localAddr = 0;  ///< requester's buffer (source of a write, destination of a read/atomic)
  std::uint64_t length = 0;
  std::uint64_t remoteAddr = 0;
  std::uint32_t rkey = 0;
  std::uint32_t imm = 0;
  std::uint64_t add = 0;
  std::uint32_t status = 0;  ///< ibv_wc_status, written by the responder before `executed` moves
  std::uint32_t pad = 0;
  std::byte inlineData[kMaxInline] = {};
};

/// A QP's send ring: the owner advances `posted`, the peer's NIC thread `executed`.
struct SlotHeader {
  std::atomic<std::uint64_t> posted{0};
  std::atomic<std::uint64_t> executed{0};
  std::atomic<std::uint32_t> error{0};  ///< nonzero: the QP pair is in the error state (an ibv_wc_status + 1)
  std::atomic<std::uint32_t> generation{0};
};
struct Slot {
  SlotHeader h;
  WireWr ring[kRingDepth];
};

/// The memfd segment of one device.
struct DeviceSegment {
  std::uint64_t magic = 0;
  std::atomic<std::uint32_t> doorbell{0};  ///< futex word the NIC thread sleeps on
  std::atomic<std::uint32_t> sleeping{0};
  Slot slots[kMaxQps];
};

/// Another process's device segment, mapped.
struct RemoteDevice {
  pid_t pid = 0;
  DeviceSegment* seg = nullptr;
};

struct EmuContext;

struct EmuMr {
  ibv_mr mr{};
  int access = 0;
  int users = 0;  ///< NIC accesses in progress (MrUse); ibv_dereg_mr waits for 0; under ctx->mu
};

struct EmuCq {
  ibv_cq cq{};
  std::mutex mu;
  std::deque<ibv_wc> recvWcs;  ///< receive completions (WRITE WITH IMMEDIATE), pushed by the NIC thread
};

struct EmuQp {
  ibv_qp qp{};
  EmuContext* ctx = nullptr;
  int slot = 0;
  std::uint32_t maxSendWr = 0;
  std::uint32_t maxRecvWr = 0;
  int accessFlags = 0;
  int rnrRetry = 0;  ///< 7: retry forever (the request waits for a receive), else receiver-not-ready fails it
  std::atomic<int> state{IBV_QPS_RESET};
  std::uint64_t polled = 0;  ///< own requests whose completion poll_cq has consumed
  std::chrono::steady_clock::time_point lastProgress = std::chrono::steady_clock::now();
  // Connection (set at RTR).
  RemoteDevice peer;
  int peerSlot = -1;
  std::uint32_t peerGen = 0;
  std::deque<std::uint64_t> recvs;  ///< posted receives (wr_id); under ctx->mu
  bool destroyed = false;           ///< ibv_destroy_qp was called: no more events; under ctx->mu
  int unackedEvents = 0;            ///< events handed out by ibv_get_async_event, not yet acked; under ctx->mu
};

/// Parsed COPRO_VERBS_EMU_FAULT.
struct FaultSpec {
  std::string kind;  ///< "", "qp-error", "bad-rkey", "die"
  std::uint64_t at = 0;
};

struct EmuContext {
  ibv_context ctx{};
  int memfd = -1;
  DeviceSegment* seg = nullptr;
  pid_t pid = 0;
  std::mutex mu;                              ///< qps, mrs, recvs, events, remotes
  std::map<int, std::shared_ptr<EmuQp>> qps;  ///< by slot
  std::map<std::uint32_t, EmuMr*> mrsByRkey;
  std::map<std::uint32_t, EmuMr*> mrsByLkey;
  std::uint32_t nextKey = 0x1000;
  std::map<pid_t, RemoteDevice> remotes;
  std::deque<ibv_async_event> events;
  std::thread nic;
  /// Held by the NIC thread while it serves requests (one pass over the QPs). ibv_destroy_qp takes it
  /// after unpublishing the QP, so when it returns the NIC no longer serves that QP, as on an HCA: the
  /// caller may destroy its CQs and unmap what it reached at once.
  std::mutex nicPass;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> postedCount{0};
  FaultSpec fault;
  bool rkeyFaultPending = false;  ///< bad-rkey fell on a zero-byte request: corrupt the next one with bytes
};

/// Whether process `pid` still runs (a zombie does not).
bool processAlive(pid_t pid);
/// Starts the NIC thread of `ctx` (once).
void startNic(EmuContext& ctx);
/// Stops it (device close).
void stopNic(EmuContext& ctx);
/// Whether events of `type` name a QP (ev.element.qp) rather than the port or device.
bool isQpEvent(ibv_event_type type);
/// Queues an asynchronous event for `qp` (or the port when qp is null) and wakes ibv_get_async_event;
/// dropped when the QP is being destroyed.
void raiseAsyncEvent(EmuContext& ctx, ibv_qp* qp, ibv_event_type type);
/// Moves `qp` and its pair to the error state with `status` as the reason.
void qpToError(EmuQp& qp, ibv_wc_status status);
/// Wakes the NIC thread that serves `seg` (after a post).
void ringDoorbell(DeviceSegment& seg);
/// The NIC's use of the local memory region `rkey` names, when it covers [addr, addr+len) with `access`
/// (else false), for as long as the NIC copies into or out of it: ibv_dereg_mr waits until it ends, so its
/// caller may unmap the memory at once (as an HCA's deregistration waits for the DMA in flight).
class MrUse {
 public:
  MrUse(EmuContext& ctx, std::uint32_t rkey, std::uint64_t addr, std::uint64_t len, int access);
  ~MrUse();
  MrUse(const MrUse&) = delete;
  MrUse& operator=(const MrUse&) = delete;
  explicit operator bool() const { return mr_ != nullptr; }

 private:
  EmuContext& ctx_;
  EmuMr* mr_ = nullptr;
};

}  // namespace copro::transport::verbs::emu
