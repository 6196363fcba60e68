#pragma once
/// The receives a target of the `mpi` backend posts for the planned puts of its current call
/// (put_plan.hpp, docs/mpi.md "Pre-posted receives"): posted straight into the destinations when the
/// rank enters the call, one tag per source lane (and call parity), so that MPI matches them in the
/// source lane's order; claimed in that order by the puts' headers, which must describe the planned put;
/// cancelled when the call ends without them (a failure, an abort, Programs that differ between ranks),
/// so that no receive outlives its call or writes into a buffer the user got back.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../remote_engine.hpp"
#include "mpi_common.hpp"
#include "put_plan.hpp"

namespace copro::transport::mpi {

class PrepostedReceives {
 public:
  /// Data tags of planned puts: kTagBase + 2 * lane + (call sequence number & 1).
  static constexpr int kTagBase = 64;
  [[nodiscard]] static int tag(std::uint32_t lane, std::uint64_t seq) {
    return kTagBase + 2 * static_cast<int>(lane) + static_cast<int>(seq & 1U);
  }
  /// Lanes that have tags when MPI's largest tag is `tagUb`.
  [[nodiscard]] static int lanesWithTags(int tagUb) { return tagUb < kTagBase + 1 ? 0 : (tagUb - kTagBase - 1) / 2; }

  PrepostedReceives() = default;
  PrepostedReceives(const PrepostedReceives&) = delete;
  PrepostedReceives& operator=(const PrepostedReceives&) = delete;
  ~PrepostedReceives() { cancel(); }

  /// Posts the receives of `plan->in` (may be null or inactive: nothing to post) for call `seq` into
  /// `regions`. A lane stops at its first put that does not fit its destination; that put's header then
  /// fails the call with the bounds error, as without a plan.
  core::Status post(MPI_Comm comm, int me, std::shared_ptr<const CallPlan> plan,
                    const std::vector<remote::Region>& regions, std::uint64_t seq);

  /// What a header of a planned put (as its initiator planned it) finds here.
  enum class Claim {
    kClaimed,   ///< `req` is the receive posted for it
    kPostNow,   ///< planned here too, but its receive was not posted: post it now with tag()
    kMismatch,  ///< this rank planned something else (`expected` when `hasExpected`): the Programs differ
  };
  Claim claim(int source, std::uint32_t lane, const PlannedPut& put, MPI_Request& req, PlannedPut& expected,
              bool& hasExpected);

  /// The first planned put not claimed yet: false when every one was.
  bool firstUnclaimed(int& source, int& lane, PlannedPut& put) const;

  /// Cancels every receive not claimed (waits briefly for those MPI already matched, then frees them).
  void cancel();

 private:
  struct Lane {
    const std::vector<PlannedPut>* plan = nullptr;
    std::vector<MPI_Request> reqs;  ///< posted receives, for plan entries [0, reqs.size())
    std::size_t claimed = 0;
  };
  std::shared_ptr<const CallPlan> plan_;
  std::vector<std::vector<Lane>> sources_;  ///< [source][lane]
};

/// Cancels the receives `reqs` (MPI_REQUEST_NULL entries are skipped): a receive MPI has not matched is
/// cancelled at once; one it matched is waited for a short while and then freed. Leaves them null.
void cancelReceives(std::vector<MPI_Request>& reqs);

}  // namespace copro::transport::mpi
