#pragma once
/// The emulated verbs provider (COPRO_VERBS_PROVIDER=emu, docs/verbs.md): the libibverbs entry points for
/// processes on one host, so that CI runs the `verbs` transport's own code without RDMA hardware.
///
/// Model: one emulated device per process ("copro_emu0", one RoCE port). Each device owns a memfd segment
/// holding, per queue pair, the ring of send work requests it posted; the peer process maps that segment
/// (through /proc/<pid>/fd/<fd>, named by the GID) and its *NIC thread* executes the requests, as the
/// responder's HCA would: RDMA WRITE and READ move bytes with process_vm_readv/writev (CMA), FETCH_AND_ADD is a
/// CPU atomic on the target word, WRITE WITH IMMEDIATE consumes a posted receive (receiver-not-ready is an
/// error when none is posted). Memory keys and access flags are checked by the responder, requests of one
/// QP execute in order, and a failed request moves both QPs of the pair to the error state (later requests
/// complete flushed). The requester polls completions from its own ring. Faults are injected with
/// COPRO_VERBS_EMU_FAULT; a dead peer process fails its QPs with "transport retry counter exceeded".
#include "copro/core/config.hpp"
#include "verbs_api.hpp"

namespace copro::transport::verbs::emu {

/// The emulated provider's table; the fault specification is taken from the first config that asks.
const VerbsApi& emulatedVerbsApi(const core::Config& config);

}  // namespace copro::transport::verbs::emu
