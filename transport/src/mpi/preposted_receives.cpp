/// Posting, claiming and cancelling the `mpi` backend's pre-posted receives (see preposted_receives.hpp).
#include "preposted_receives.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

namespace copro::transport::mpi {

void cancelReceives(std::vector<MPI_Request>& reqs) {
  const bool any = std::any_of(reqs.begin(), reqs.end(), [](MPI_Request r) { return r != MPI_REQUEST_NULL; });
  int finalized = 0;
  if (any) (void)MPI_Finalized(&finalized);
  if (!any || finalized != 0) {  // nothing to cancel, or too late to release anything (the user finalized)
    reqs.clear();
    return;
  }
  for (MPI_Request& r : reqs) {
    if (r != MPI_REQUEST_NULL) (void)MPI_Cancel(&r);
  }
  // A cancelled receive completes at once; one MPI matched before the cancel completes when its data is in.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  for (MPI_Request& r : reqs) {
    while (r != MPI_REQUEST_NULL) {
      int flag = 0;
      const bool failed = MPI_Test(&r, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS;
      if (r != MPI_REQUEST_NULL && (failed || std::chrono::steady_clock::now() > deadline)) {
        (void)MPI_Request_free(&r);
      }
    }
  }
  reqs.clear();
}

core::Status PrepostedReceives::post(MPI_Comm comm, int me, std::shared_ptr<const CallPlan> plan,
                                     const std::vector<remote::Region>& regions, std::uint64_t seq) {
  cancel();
  plan_ = std::move(plan);
  sources_.clear();
  if (!plan_ || !plan_->anyIn) return {};
  sources_.resize(plan_->in.size());
  for (std::size_t s = 0; s < plan_->in.size(); ++s) {
    if (static_cast<int>(s) == me) continue;
    const LanePuts& lanes = plan_->in[s];
    sources_[s].resize(lanes.size());
    for (std::size_t lane = 0; lane < lanes.size(); ++lane) {
      Lane& l = sources_[s][lane];
      l.plan = &lanes[lane];
      if (l.plan->empty()) continue;
      const int tag = PrepostedReceives::tag(static_cast<std::uint32_t>(lane), seq);
      int waiting = 0;
      if (MPI_Iprobe(static_cast<int>(s), tag, comm, &waiting, MPI_STATUS_IGNORE) == MPI_SUCCESS && waiting != 0) {
        countReceive(ReceiveKind::kFoundWaiting);
      }
      l.reqs.reserve(l.plan->size());
      for (const PlannedPut& p : *l.plan) {
        if (p.buf >= regions.size()) break;
        const remote::Region& reg = regions[p.buf];
        if (!reg.writable || p.offset > reg.limit || p.bytes > reg.limit - p.offset) break;
        MPI_Request r = MPI_REQUEST_NULL;
        COPRO_RETURN_IF_ERROR(mpiStatus(
            MPI_Irecv(reg.base + p.offset, static_cast<int>(p.bytes), MPI_BYTE, static_cast<int>(s), tag, comm, &r),
            "MPI_Irecv"));
        l.reqs.push_back(r);
      }
    }
  }
  return {};
}

PrepostedReceives::Claim PrepostedReceives::claim(int source, std::uint32_t lane, const PlannedPut& put,
                                                  MPI_Request& req, PlannedPut& expected, bool& hasExpected) {
  hasExpected = false;
  if (source < 0 || static_cast<std::size_t>(source) >= sources_.size()) return Claim::kMismatch;
  std::vector<Lane>& lanes = sources_[static_cast<std::size_t>(source)];
  if (lane >= lanes.size()) return Claim::kMismatch;
  Lane& l = lanes[lane];
  if (l.plan == nullptr || l.claimed >= l.plan->size()) return Claim::kMismatch;
  expected = (*l.plan)[l.claimed];
  hasExpected = true;
  if (!expected.same(put.opIndex, put.buf, put.offset, put.bytes)) return Claim::kMismatch;
  const std::size_t k = l.claimed++;
  if (k >= l.reqs.size()) return Claim::kPostNow;
  req = l.reqs[k];
  l.reqs[k] = MPI_REQUEST_NULL;
  return Claim::kClaimed;
}

bool PrepostedReceives::firstUnclaimed(int& source, int& lane, PlannedPut& put) const {
  for (std::size_t s = 0; s < sources_.size(); ++s) {
    for (std::size_t i = 0; i < sources_[s].size(); ++i) {
      const Lane& l = sources_[s][i];
      if (l.plan == nullptr || l.claimed >= l.plan->size()) continue;
      source = static_cast<int>(s);
      lane = static_cast<int>(i);
      put = (*l.plan)[l.claimed];
      return true;
    }
  }
  return false;
}

void PrepostedReceives::cancel() {
  for (std::vector<Lane>& lanes : sources_) {
    for (Lane& l : lanes) cancelReceives(l.reqs);
  }
  sources_.clear();
  plan_.reset();
}

}  // namespace copro::transport::mpi
