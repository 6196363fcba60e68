/// The ucx backend's background entry notices (see ucx_entry_notices.hpp).
#include "ucx_entry_notices.hpp"

#include <utility>

namespace copro::transport::ucx {

namespace {

/// The status of a request that is no longer in progress (nullptr: completed at once), freed.
ucs_status_t finished(void* req) {
  if (req == nullptr) return UCS_OK;
  const ucs_status_t st = ucp_request_check_status(req);
  ucp_request_free(req);
  return st;
}

}  // namespace

void EntryNotices::push(std::shared_ptr<const std::vector<std::byte>> desc, std::uint64_t seq) {
  if (closed_) return;
  if (!queue_.empty() && queue_.back().stage == Stage::kQueued) {
    // Nothing of the older notice went out: the peer never needed that call's descriptor (this rank has
    // completed the call), so one put of the newer descriptor and one add announce both.
    Notice& n = queue_.back();
    n.desc = std::move(desc);
    n.seq = seq;
    ++n.calls;
    return;
  }
  Notice n;
  n.desc = std::move(desc);
  n.seq = seq;
  queue_.push_back(std::move(n));
}

ucs_status_t EntryNotices::start(Notice& n, const NoticeTarget& target) {
  ucp_request_param_t prm{};
  void* put = ucp_put_nbx(target.ep, n.desc->data(), n.desc->size(), target.mailboxAddr, target.rkey, &prm);
  if (UCS_PTR_IS_ERR(put)) return UCS_PTR_STATUS(put);
  // The flush below completes after the put: its request is not needed (the descriptor lives with `n`).
  if (UCS_PTR_IS_PTR(put)) ucp_request_free(put);
  void* flush = ucp_ep_flush_nbx(target.ep, &prm);
  if (UCS_PTR_IS_ERR(flush)) return UCS_PTR_STATUS(flush);
  n.req = UCS_PTR_IS_PTR(flush) ? flush : nullptr;
  n.stage = Stage::kFlushing;
  return UCS_OK;
}

ucs_status_t EntryNotices::add(Notice& n, const NoticeTarget& target) {
  n.operand = n.calls;
  ucp_request_param_t prm{};
  prm.op_attr_mask = UCP_OP_ATTR_FIELD_DATATYPE;
  prm.datatype = ucp_dt_make_contig(sizeof(std::uint64_t));
  void* r = ucp_atomic_op_nbx(target.ep, UCP_ATOMIC_OP_ADD, &n.operand, 1, target.enteredAddr, target.rkey, &prm);
  if (UCS_PTR_IS_ERR(r)) return UCS_PTR_STATUS(r);
  n.req = UCS_PTR_IS_PTR(r) ? r : nullptr;
  n.stage = Stage::kAdding;
  return UCS_OK;
}

ucs_status_t EntryNotices::advance(const NoticeTarget& target, bool& progressed) {
  while (!closed_ && !queue_.empty()) {
    Notice& n = queue_.front();
    if (n.req != nullptr && ucp_request_check_status(n.req) == UCS_INPROGRESS) return UCS_OK;
    ucs_status_t st = UCS_OK;
    switch (n.stage) {
      case Stage::kQueued:
        st = start(n, target);
        break;
      case Stage::kFlushing:
        st = finished(n.req);
        n.req = nullptr;
        // Descriptor delivered: the add may go (a later put of the next descriptor cannot overtake it).
        if (st == UCS_OK) st = add(n, target);
        break;
      case Stage::kAdding:
        st = finished(n.req);
        n.req = nullptr;
        if (st == UCS_OK) queue_.pop_front();
        break;
    }
    if (st != UCS_OK) return st;
    progressed = true;
  }
  return UCS_OK;
}

std::string EntryNotices::describe() const {
  if (queue_.empty()) return {};
  const Notice& n = queue_.front();
  std::string out = "the entry notice of call " + std::to_string(n.seq);
  switch (n.stage) {
    case Stage::kQueued:
      out += " is not sent yet";
      break;
    case Stage::kFlushing:
      out += " waits for its descriptor's endpoint flush (the peer's acknowledgement)";
      break;
    case Stage::kAdding:
      out += " waits for its atomic add to go out";
      break;
  }
  if (queue_.size() > 1) out += " (one more queued)";
  return out;
}

void EntryNotices::cancel(ucp_worker_h worker) {
  for (Notice& n : queue_) {
    if (n.req == nullptr) continue;
    if (ucp_request_check_status(n.req) == UCS_INPROGRESS) ucp_request_cancel(worker, n.req);
    ucp_request_free(n.req);
    n.req = nullptr;
  }
  closed_ = true;
}

}  // namespace copro::transport::ucx
