#pragma once
/// The ucx backend's entry notices to one peer (docs/ucx.md, "Entering a call"). Entering call k, a rank
/// writes its call descriptor into the peer's mailbox, flushes the endpoint, and then adds 1 to the peer's
/// `entered` word. Over tcp that flush completes only when the peer's worker has acknowledged the put, and a
/// peer that takes no part in the call (a send/recv ring, a broadcast chain) may have completed it already
/// and gone on to wait elsewhere: so a notice must never hold up the call that sent it. Notices run in the
/// background, in call order: the front one goes put -> flush -> add as the worker progresses, and a notice
/// that has not started when the next call enters is merged into it (the newer descriptor, an add of 2),
/// so a peer that never progresses costs at most two queued notices.
#include <ucp/api/ucp.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

namespace copro::transport::ucx {

/// Where a peer's notices go: its endpoint, and its control region (mailbox and `entered` word of this rank).
struct NoticeTarget {
  ucp_ep_h ep = nullptr;
  std::uint64_t mailboxAddr = 0;
  std::uint64_t enteredAddr = 0;
  ucp_rkey_h rkey = nullptr;
};

/// The entry notices of this rank to one peer, oldest first. Not copyable (requests point into it).
class EntryNotices {
 public:
  EntryNotices() = default;
  EntryNotices(const EntryNotices&) = delete;
  EntryNotices& operator=(const EntryNotices&) = delete;
  EntryNotices(EntryNotices&&) = default;
  EntryNotices& operator=(EntryNotices&&) = default;

  /// Queues the notice of call `seq`: `desc` (shared by the notices to every peer) into the mailbox.
  void push(std::shared_ptr<const std::vector<std::byte>> desc, std::uint64_t seq);
  /// Moves the notices on as far as they go without waiting; `progressed` when one changed stage.
  /// Returns the status of the first UCX call or request that failed (UCS_OK otherwise).
  ucs_status_t advance(const NoticeTarget& target, bool& progressed);
  [[nodiscard]] bool empty() const { return queue_.empty(); }
  /// What the front notice waits for ("the entry notice of call 45 waits for its endpoint flush"), or "".
  [[nodiscard]] std::string describe() const;
  /// Cancels and frees the requests in flight and stops (the endpoint is closing). The notices stay in
  /// place with this object, so UCX may still read their descriptors and operands until the worker goes.
  void cancel(ucp_worker_h worker);

 private:
  enum class Stage { kQueued, kFlushing, kAdding };
  struct Notice {
    std::shared_ptr<const std::vector<std::byte>> desc;
    std::uint64_t seq = 0;    ///< the newest call this notice announces
    std::uint64_t calls = 1;  ///< calls merged into it: the amount added to `entered`
    Stage stage = Stage::kQueued;
    void* req = nullptr;        ///< the endpoint flush (kFlushing) or the atomic add (kAdding)
    std::uint64_t operand = 0;  ///< the atomic's operand, alive until it completed
  };
  ucs_status_t start(Notice& n, const NoticeTarget& target);
  ucs_status_t add(Notice& n, const NoticeTarget& target);

  std::deque<Notice> queue_;  ///< a deque: elements keep their address while UCX reads `operand`
  bool closed_ = false;
};

}  // namespace copro::transport::ucx
