// libcopro_nccl.so: NCCL's host API (include/copro/nccl/nccl.h) over copro's C API, in host-buffer mode
// (docs/nccl.md). NCCL's enums are translated to copro's by table, every argument is checked before copro
// sees it, and results map back to ncclResult_t with the message kept per thread for ncclGetLastError.
// Groups are per thread and nest: inside one, collectives start without waiting and send/recv collect into
// a copro group per communicator; the outermost ncclGroupEnd starts those groups and drives every pending
// request of every communicator to completion together, so one thread may drive several ranks (InitAll).
// ncclCommInitRank inside a group is deferred to the outermost ncclGroupEnd, which creates several such
// ranks of one process on one thread each.
#include "copro/nccl/nccl.h"

#include <sched.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "copro/copro.h"
#include "copro/core/config.hpp"

struct ncclComm {
  copro_comm_t comm = nullptr;
  int rank = 0;
  int size = 0;
  bool finalized = false;
  bool p2pOpen = false;           ///< copro_group_start was called on it in the current ncclGroup
  std::vector<void*> registered;  ///< handles of ncclCommRegister not yet deregistered
};

namespace {

thread_local std::string tLastError;

/// An ncclCommInitRank made inside a group: run at the outermost ncclGroupEnd.
struct DeferredInit {
  ncclComm_t* out;
  int nranks;
  int rank;
  copro_unique_id_t id;
};

struct GroupState {
  int depth = 0;
  std::vector<DeferredInit> inits;       ///< communicators to create, in call order
  std::vector<ncclComm*> p2pComms;       ///< communicators with collected send/recv
  std::vector<copro_request_t> pending;  ///< started, not yet finished
};
thread_local GroupState tGroup;

ncclResult_t fail(ncclResult_t r, const std::string& message) {
  tLastError = message;
  return r;
}

ncclResult_t toNccl(copro_result_t r) {
  switch (r) {
    case copro_success:
      return ncclSuccess;
    case copro_invalid_argument:
      return ncclInvalidArgument;
    case copro_invalid_usage:
    case copro_unsupported:
      return ncclInvalidUsage;
    case copro_out_of_memory:
    case copro_system_error:
      return ncclSystemError;
    case copro_timeout:
    case copro_remote_error:
    case copro_aborted:
      return ncclRemoteError;
    default:
      return ncclInternalError;
  }
}

/// A copro result as an NCCL one; the message names the NCCL call and copro's reason.
ncclResult_t fromCopro(copro_result_t r, const char* what) {
  if (r == copro_success) return ncclSuccess;
  return fail(toNccl(r), std::string(what) + ": " + copro_result_string(r) + ": " + copro_last_error());
}

ncclResult_t checkComm(const ncclComm* comm, const char* what) {
  if (comm == nullptr) return fail(ncclInvalidArgument, std::string(what) + ": comm is NULL");
  if (comm->finalized) {
    return fail(
        ncclInvalidUsage,
        std::string(what) + ": the communicator was finalized (ncclCommFinalize); only ncclCommDestroy may follow");
  }
  return ncclSuccess;
}

ncclResult_t toCoproType(ncclDataType_t t, const char* what, copro_datatype_t* out) {
  static constexpr copro_datatype_t kTypes[ncclNumTypes] = {
      copro_int8,    copro_uint8,   copro_int32,   copro_uint32,   copro_int64,      copro_uint64,
      copro_float16, copro_float32, copro_float64, copro_bfloat16, copro_float8e4m3, copro_float8e5m2};
  const int v = static_cast<int>(t);
  if (v < 0 || v >= ncclNumTypes) {
    return fail(ncclInvalidArgument, std::string(what) + ": datatype " + std::to_string(v) +
                                         " is not an ncclDataType_t (0.." + std::to_string(ncclNumTypes - 1) + ")");
  }
  *out = kTypes[v];
  return ncclSuccess;
}

ncclResult_t toCoproOp(ncclRedOp_t op, const char* what, copro_redop_t* out) {
  static constexpr copro_redop_t kOps[ncclNumOps] = {copro_sum, copro_prod, copro_max, copro_min, copro_avg};
  const int v = static_cast<int>(op);
  if (v < 0 || v >= ncclNumOps) {
    return fail(ncclInvalidArgument, std::string(what) + ": reduction op " + std::to_string(v) +
                                         " is not a built-in ncclRedOp_t (ncclSum..ncclAvg); custom operators "
                                         "(ncclRedOpCreatePreMulSum) are not supported");
  }
  *out = kOps[v];
  return ncclSuccess;
}

std::size_t typeBytes(ncclDataType_t t) {
  static constexpr std::size_t kBytes[ncclNumTypes] = {1, 1, 4, 4, 8, 8, 2, 4, 8, 2, 1, 1};
  return kBytes[static_cast<int>(t)];
}

/// Runs one collective: blocking outside a group, started and left pending inside one.
template <typename Start>
ncclResult_t runCollective(const char* what, Start&& start) {
  if (tGroup.depth == 0) return fromCopro(start(nullptr), what);
  copro_request_t request = nullptr;
  const ncclResult_t r = fromCopro(start(&request), what);
  if (r == ncclSuccess && request != nullptr) tGroup.pending.push_back(request);
  return r;
}

/// Drives every pending request of this thread's group to completion, round robin, so that requests of
/// several communicators served by this one thread all progress; the first failure is returned.
ncclResult_t completePending() {
  ncclResult_t first = ncclSuccess;
  std::string firstMessage;
  auto& pending = tGroup.pending;
  if (pending.size() == 1) {  // nothing else to drive: a blocking wait (spins, then sleeps)
    const copro_result_t r = copro_request_free(pending[0]);
    pending.clear();
    return fromCopro(r, "ncclGroupEnd");
  }
  while (!pending.empty()) {
    bool progressed = false;
    for (std::size_t i = 0; i < pending.size();) {
      int done = 0;
      const copro_result_t t = copro_request_test(pending[i], &done);
      if (t != copro_success || done != 0) {
        const copro_result_t f = copro_request_free(pending[i]);
        const copro_result_t r = t != copro_success ? t : f;
        if (r != copro_success && first == ncclSuccess) {
          first = fromCopro(r, "ncclGroupEnd");
          firstMessage = tLastError;
        }
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(i));
        progressed = true;
      } else {
        ++i;
      }
    }
    if (!progressed) sched_yield();
  }
  if (first != ncclSuccess) tLastError = firstMessage;
  return first;
}

/// Send or receive: as bytes (one copro group may then mix NCCL datatypes), collected into the
/// communicator's copro group inside an ncclGroup, standalone outside.
ncclResult_t pointToPoint(bool isSend, void* buf, std::size_t count, ncclDataType_t datatype, int peer,
                          ncclComm* comm) {
  const char* what = isSend ? "ncclSend" : "ncclRecv";
  if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
  copro_datatype_t unused{};
  if (const ncclResult_t r = toCoproType(datatype, what, &unused); r != ncclSuccess) return r;
  if (peer < 0 || peer >= comm->size) {
    return fail(ncclInvalidArgument, std::string(what) + ": peer " + std::to_string(peer) +
                                         " is not a rank of this communicator (0.." + std::to_string(comm->size - 1) +
                                         ")");
  }
  const std::size_t esize = typeBytes(datatype);
  if (count > SIZE_MAX / esize) return fail(ncclInvalidArgument, std::string(what) + ": count overflows size_t");
  const std::size_t bytes = count * esize;
  if (bytes > 0 && buf == nullptr) return fail(ncclInvalidArgument, std::string(what) + ": buffer is NULL");
  if (tGroup.depth > 0 && !comm->p2pOpen) {
    if (const ncclResult_t r = fromCopro(copro_group_start(comm->comm), what); r != ncclSuccess) return r;
    comm->p2pOpen = true;
    tGroup.p2pComms.push_back(comm);
  }
  copro_request_t* request = nullptr;
  return isSend ? fromCopro(copro_send(buf, bytes, copro_uint8, peer, comm->comm, request), what)
                : fromCopro(copro_recv(buf, bytes, copro_uint8, peer, comm->comm, request), what);
}

/// Buffers, datatype and communicator of a collective; fills *dt.
ncclResult_t checkCollective(const char* what, const void* sendbuff, const void* recvbuff, std::size_t count,
                             ncclDataType_t datatype, const ncclComm* comm, copro_datatype_t* dt) {
  if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
  if (const ncclResult_t r = toCoproType(datatype, what, dt); r != ncclSuccess) return r;
  if (count > 0 && (sendbuff == nullptr || recvbuff == nullptr)) {
    return fail(ncclInvalidArgument, std::string(what) + ": sendbuff or recvbuff is NULL");
  }
  return ncclSuccess;
}

ncclResult_t checkRoot(const char* what, int root, const ncclComm* comm) {
  if (root >= 0 && root < comm->size) return ncclSuccess;
  return fail(ncclInvalidArgument, std::string(what) + ": root " + std::to_string(root) +
                                       " is not a rank of this communicator (0.." + std::to_string(comm->size - 1) +
                                       ")");
}

ncclResult_t checkConfig(const ncclConfig_t* config, const char* what) {
  if (config == nullptr || config->magic == NCCL_CONFIG_MAGIC) return ncclSuccess;
  return fail(ncclInvalidArgument,
              std::string(what) + ": config was not initialized with NCCL_CONFIG_INITIALIZER (bad magic)");
}

/// Wraps a new copro communicator; *out stays NULL on failure.
ncclResult_t wrap(copro_comm_t c, ncclComm_t* out) {
  auto* w = new ncclComm;
  w->comm = c;
  copro_comm_rank(c, &w->rank);
  copro_comm_size(c, &w->size);
  *out = w;
  return ncclSuccess;
}

/// The backend of multi-process communicators: COPRO_NCCL_BACKEND (through copro's Config), else shm.
/// A malformed value throws copro::Error naming the variable.
std::string backendName() {
  copro::Config env;
  env.readEnvironment({"COPRO_NCCL_BACKEND"});
  return env.ncclBackend;
}

ncclResult_t notInGroup(const char* what) {
  if (tGroup.depth == 0) return ncclSuccess;
  return fail(ncclInvalidUsage, std::string(what) +
                                    " inside ncclGroupStart/ncclGroupEnd is not supported in host-buffer mode "
                                    "(call it outside the group)");
}

/// Creates one rank of a multi-process communicator; *out stays NULL on failure.
ncclResult_t initRank(ncclComm_t* out, int nranks, int rank, const copro_unique_id_t& id) {
  copro_comm_t c = nullptr;
  std::string backend;
  try {
    backend = backendName();
  } catch (const std::exception& e) {
    return fail(ncclInvalidArgument, std::string("ncclCommInitRank: ") + e.what());
  }
  const std::string where = "ncclCommInitRank (backend " + backend + ")";
  if (const ncclResult_t r = fromCopro(copro_comm_init_rank(backend.c_str(), id, rank, nranks, &c), where.c_str());
      r != ncclSuccess) {
    return r;
  }
  return wrap(c, out);
}

/// The group's deferred ncclCommInitRank calls: one on this thread, several on one thread each (every one
/// waits until all ranks of its communicator joined). Returns the first failure, its message kept.
ncclResult_t runDeferredInits() {
  std::vector<DeferredInit> inits = std::move(tGroup.inits);
  tGroup.inits.clear();
  if (inits.size() == 1) return initRank(inits[0].out, inits[0].nranks, inits[0].rank, inits[0].id);
  std::vector<ncclResult_t> results(inits.size(), ncclSuccess);
  std::vector<std::string> messages(inits.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < inits.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] = initRank(inits[i].out, inits[i].nranks, inits[i].rank, inits[i].id);
      messages[i] = tLastError;
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < inits.size(); ++i) {
    if (results[i] != ncclSuccess) return fail(results[i], messages[i]);
  }
  return ncclSuccess;
}

template <typename F>
ncclResult_t guarded(const char* what, F&& f) noexcept {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(ncclSystemError, std::string(what) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(ncclInternalError, std::string(what) + ": " + e.what());
  }
}

}  // namespace

extern "C" {

ncclResult_t ncclGetVersion(int* version) {
  if (version == nullptr) return fail(ncclInvalidArgument, "ncclGetVersion: version is NULL");
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* uniqueId) {
  if (uniqueId == nullptr) return fail(ncclInvalidArgument, "ncclGetUniqueId: uniqueId is NULL");
  static_assert(sizeof(ncclUniqueId) == sizeof(copro_unique_id_t), "unique id sizes differ");
  copro_unique_id_t id;
  if (const ncclResult_t r = fromCopro(copro_get_unique_id(&id), "ncclGetUniqueId"); r != ncclSuccess) return r;
  static_assert(sizeof(uniqueId->internal) == sizeof(id.internal));
  for (std::size_t i = 0; i < sizeof(id.internal); ++i) uniqueId->internal[i] = id.internal[i];
  return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank, ncclConfig_t* config) {
  const char* what = "ncclCommInitRank";
  return guarded(what, [&] {
    if (comm == nullptr) return fail(ncclInvalidArgument, "ncclCommInitRank: comm is NULL");
    *comm = nullptr;
    if (const ncclResult_t r = checkConfig(config, what); r != ncclSuccess) return r;
    if (nranks <= 0 || rank < 0 || rank >= nranks) {
      return fail(ncclInvalidArgument, std::string(what) + ": rank " + std::to_string(rank) + " is not in 0.." +
                                           std::to_string(nranks - 1) + " (nranks " + std::to_string(nranks) + ")");
    }
    copro_unique_id_t id;
    for (std::size_t i = 0; i < sizeof(id.internal); ++i) id.internal[i] = commId.internal[i];
    if (tGroup.depth > 0) {  // created by the outermost ncclGroupEnd, as NCCL does
      tGroup.inits.push_back(DeferredInit{comm, nranks, rank, id});
      return ncclSuccess;
    }
    return initRank(comm, nranks, rank, id);
  });
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId commId, int rank) {
  return ncclCommInitRankConfig(comm, nranks, commId, rank, nullptr);
}

ncclResult_t ncclCommInitAll(ncclComm_t* comm, int ndev, const int* devlist) {
  (void)devlist;  // host-buffer mode: no devices
  return guarded("ncclCommInitAll", [&] {
    if (comm == nullptr) return fail(ncclInvalidArgument, "ncclCommInitAll: comm is NULL");
    if (ndev <= 0) return fail(ncclInvalidArgument, "ncclCommInitAll: ndev " + std::to_string(ndev) + " must be > 0");
    std::vector<copro_comm_t> made(static_cast<std::size_t>(ndev), nullptr);
    if (const ncclResult_t r = fromCopro(copro_comm_init_all("inproc", ndev, made.data()), "ncclCommInitAll");
        r != ncclSuccess) {
      return r;
    }
    for (int i = 0; i < ndev; ++i) wrap(made[static_cast<std::size_t>(i)], &comm[i]);
    return ncclSuccess;
  });
}

ncclResult_t ncclCommInitRankScalable(ncclComm_t* newcomm, int nranks, int myrank, int nId, ncclUniqueId* commIds,
                                      ncclConfig_t* config) {
  if (nId < 1 || commIds == nullptr) {
    if (newcomm != nullptr) *newcomm = nullptr;
    return fail(ncclInvalidArgument, "ncclCommInitRankScalable: nId must be >= 1 and commIds non-NULL");
  }
  return ncclCommInitRankConfig(newcomm, nranks, commIds[0], myrank, config);
}

ncclResult_t ncclCommSplit(ncclComm_t comm, int color, int key, ncclComm_t* newcomm, ncclConfig_t* config) {
  const char* what = "ncclCommSplit";
  return guarded(what, [&] {
    if (newcomm == nullptr) return fail(ncclInvalidArgument, "ncclCommSplit: newcomm is NULL");
    *newcomm = nullptr;
    if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
    if (const ncclResult_t r = checkConfig(config, what); r != ncclSuccess) return r;
    if (const ncclResult_t r = notInGroup(what); r != ncclSuccess) return r;
    if (color < NCCL_SPLIT_NOCOLOR) {
      return fail(ncclInvalidArgument, "ncclCommSplit: color " + std::to_string(color) +
                                           " is negative (NCCL_SPLIT_NOCOLOR, -1, leaves this rank out)");
    }
    copro_comm_t c = nullptr;
    if (const ncclResult_t r = fromCopro(copro_comm_split(comm->comm, color, key, &c), what); r != ncclSuccess) {
      return r;
    }
    return c == nullptr ? ncclSuccess : wrap(c, newcomm);
  });
}

ncclResult_t ncclCommFinalize(ncclComm_t comm) {
  if (const ncclResult_t r = checkComm(comm, "ncclCommFinalize"); r != ncclSuccess) return r;
  comm->finalized = true;  // host-buffer mode: every call has completed already
  return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  if (comm->p2pOpen || !tGroup.pending.empty()) {
    return fail(ncclInvalidUsage,
                "ncclCommDestroy: calls of an open group are not finished (call ncclGroupEnd first, or "
                "ncclCommAbort)");
  }
  const copro_result_t r = copro_comm_destroy(comm->comm);
  delete comm;
  return fromCopro(r, "ncclCommDestroy");
}

ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  copro_comm_abort(comm->comm);
  if (comm->p2pOpen) {  // its collected send/recv are dropped with it
    std::erase(tGroup.p2pComms, comm);
  }
  copro_comm_destroy(comm->comm);
  delete comm;
  return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* asyncError) {
  if (comm == nullptr || asyncError == nullptr) {
    return fail(ncclInvalidArgument, "ncclCommGetAsyncError: comm or asyncError is NULL");
  }
  copro_result_t e = copro_success;
  if (const ncclResult_t r = fromCopro(copro_comm_get_async_error(comm->comm, &e), "ncclCommGetAsyncError");
      r != ncclSuccess) {
    return r;
  }
  *asyncError = toNccl(e);
  if (e != copro_success) tLastError = std::string("communicator failed: ") + copro_last_error();
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  if (comm == nullptr || count == nullptr) return fail(ncclInvalidArgument, "ncclCommCount: comm or count is NULL");
  *count = comm->size;
  return ncclSuccess;
}

ncclResult_t ncclCommCuDevice(const ncclComm_t comm, int* device) {
  if (comm == nullptr || device == nullptr) {
    return fail(ncclInvalidArgument, "ncclCommCuDevice: comm or device is NULL");
  }
  *device = -1;  // host-buffer mode: the communicator has no device
  return ncclSuccess;
}

ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  if (comm == nullptr || rank == nullptr) return fail(ncclInvalidArgument, "ncclCommUserRank: comm or rank is NULL");
  *rank = comm->rank;
  return ncclSuccess;
}

ncclResult_t ncclCommRegister(const ncclComm_t comm, void* buff, size_t size, void** handle) {
  if (const ncclResult_t r = checkComm(comm, "ncclCommRegister"); r != ncclSuccess) return r;
  if (buff == nullptr || handle == nullptr) {
    return fail(ncclInvalidArgument, "ncclCommRegister: buff or handle is NULL");
  }
  *handle = nullptr;
  if (const ncclResult_t r = fromCopro(copro_register_buffer(comm->comm, buff, size), "ncclCommRegister");
      r != ncclSuccess) {
    return r;
  }
  *handle = buff;  // copro registers by address
  comm->registered.push_back(buff);
  return ncclSuccess;
}

ncclResult_t ncclCommDeregister(const ncclComm_t comm, void* handle) {
  if (const ncclResult_t r = checkComm(comm, "ncclCommDeregister"); r != ncclSuccess) return r;
  auto it = std::find(comm->registered.begin(), comm->registered.end(), handle);
  if (handle == nullptr || it == comm->registered.end()) {
    return fail(ncclInvalidArgument, "ncclCommDeregister: handle is NULL or not from ncclCommRegister on this comm");
  }
  comm->registered.erase(it);
  // A backend may have covered the buffer with a larger registration made before (ucx registers buffers of
  // earlier calls on demand); that one stays, and copro reports no registration starting at this address.
  const copro_result_t r = copro_deregister_buffer(comm->comm, handle);
  return r == copro_invalid_argument ? ncclSuccess : fromCopro(r, "ncclCommDeregister");
}

ncclResult_t ncclCommShrink(ncclComm_t comm, int* excludeRanksList, int excludeRanksCount, ncclComm_t* newcomm,
                            ncclConfig_t* config, int shrinkFlags) {
  (void)comm, (void)excludeRanksList, (void)excludeRanksCount, (void)config, (void)shrinkFlags;
  if (newcomm != nullptr) *newcomm = nullptr;
  return fail(ncclInvalidUsage,
              "ncclCommShrink is not supported by copro's NCCL shim (ncclCommSplit over the surviving ranks, with "
              "NCCL_SPLIT_NOCOLOR elsewhere, builds the same communicator when every rank can still call it)");
}

ncclResult_t ncclCommRevoke(ncclComm_t comm, int revokeFlags) {
  (void)comm, (void)revokeFlags;
  return fail(ncclInvalidUsage, "ncclCommRevoke is not supported by copro's NCCL shim (ncclCommAbort is)");
}

ncclResult_t ncclCommWindowRegister(ncclComm_t comm, void* buff, size_t size, ncclWindow_t* win, int winFlags) {
  (void)comm, (void)buff, (void)size, (void)winFlags;
  if (win != nullptr) *win = nullptr;
  return fail(ncclInvalidUsage,
              "ncclCommWindowRegister: symmetric windows are not supported by copro's NCCL shim in host-buffer mode "
              "(ncclCommRegister is)");
}

ncclResult_t ncclCommWindowDeregister(ncclComm_t comm, ncclWindow_t win) {
  (void)comm, (void)win;
  return fail(ncclInvalidUsage, "ncclCommWindowDeregister: symmetric windows are not supported by copro's NCCL shim");
}

void ncclResetDebugInit(void) {}

ncclResult_t ncclMemAlloc(void** ptr, size_t size) {
  if (ptr == nullptr) return fail(ncclInvalidArgument, "ncclMemAlloc: ptr is NULL");
  *ptr = nullptr;
  if (size == 0) return ncclSuccess;
  if (posix_memalign(ptr, NCCL_WIN_REQUIRED_ALIGNMENT, size) != 0) {
    *ptr = nullptr;
    return fail(ncclSystemError, "ncclMemAlloc: " + std::to_string(size) + " bytes of host memory are not available");
  }
  return ncclSuccess;
}

ncclResult_t ncclMemFree(void* ptr) {
  std::free(ptr);
  return ncclSuccess;
}

const char* ncclGetErrorString(ncclResult_t result) {
  switch (result) {
    case ncclSuccess:
      return "no error";
    case ncclUnhandledCudaError:
      return "unhandled cuda error";
    case ncclSystemError:
      return "unhandled system error (out of memory, a system call failed)";
    case ncclInternalError:
      return "internal error (a bug in copro's NCCL shim or copro)";
    case ncclInvalidArgument:
      return "invalid argument";
    case ncclInvalidUsage:
      return "invalid usage (or not supported by copro's NCCL shim in host-buffer mode)";
    case ncclRemoteError:
      return "remote process exited, failed, timed out or the communicator was aborted";
    case ncclInProgress:
      return "NCCL operation in progress";
    default:
      return "unknown result code";
  }
}

const char* ncclGetLastError(ncclComm_t comm) {
  (void)comm;  // messages are kept per thread
  return tLastError.c_str();
}

ncclResult_t ncclRedOpCreatePreMulSum(ncclRedOp_t* op, void* scalar, ncclDataType_t datatype,
                                      ncclScalarResidence_t residence, ncclComm_t comm) {
  (void)op, (void)scalar, (void)datatype, (void)residence, (void)comm;
  return fail(ncclInvalidUsage,
              "ncclRedOpCreatePreMulSum: custom reduction operators are not supported by copro's NCCL shim "
              "(scale the input, then use ncclSum)");
}

ncclResult_t ncclRedOpDestroy(ncclRedOp_t op, ncclComm_t comm) {
  (void)comm;
  return fail(ncclInvalidArgument,
              "ncclRedOpDestroy: op " + std::to_string(static_cast<int>(op)) + " was not created by ncclRedOpCreate*");
}

ncclResult_t ncclAllReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclAllReduce";
  copro_datatype_t dt{};
  copro_redop_t o{};
  if (const ncclResult_t r = checkCollective(what, sendbuff, recvbuff, count, datatype, comm, &dt); r != ncclSuccess)
    return r;
  if (const ncclResult_t r = toCoproOp(op, what, &o); r != ncclSuccess) return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_allreduce(sendbuff, recvbuff, count, dt, o, comm->comm, q); });
}

ncclResult_t ncclReduce(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclRedOp_t op,
                        int root, ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclReduce";
  copro_datatype_t dt{};
  copro_redop_t o{};
  if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
  if (const ncclResult_t r = checkRoot(what, root, comm); r != ncclSuccess) return r;
  // recvbuff matters on the root only.
  const void* needed = comm->rank == root ? recvbuff : sendbuff;
  if (const ncclResult_t r = checkCollective(what, sendbuff, needed, count, datatype, comm, &dt); r != ncclSuccess)
    return r;
  if (const ncclResult_t r = toCoproOp(op, what, &o); r != ncclSuccess) return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_reduce(sendbuff, recvbuff, count, dt, o, root, comm->comm, q); });
}

ncclResult_t ncclBroadcast(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                           ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclBroadcast";
  copro_datatype_t dt{};
  if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
  if (const ncclResult_t r = checkRoot(what, root, comm); r != ncclSuccess) return r;
  // sendbuff matters on the root only.
  const void* needed = comm->rank == root ? sendbuff : recvbuff;
  if (const ncclResult_t r = checkCollective(what, needed, recvbuff, count, datatype, comm, &dt); r != ncclSuccess)
    return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_broadcast(sendbuff, recvbuff, count, dt, root, comm->comm, q); });
}

ncclResult_t ncclBcast(void* buff, size_t count, ncclDataType_t datatype, int root, ncclComm_t comm,
                       cudaStream_t stream) {
  return ncclBroadcast(buff, buff, count, datatype, root, comm, stream);
}

ncclResult_t ncclReduceScatter(const void* sendbuff, void* recvbuff, size_t recvcount, ncclDataType_t datatype,
                               ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclReduceScatter";
  copro_datatype_t dt{};
  copro_redop_t o{};
  if (const ncclResult_t r = checkCollective(what, sendbuff, recvbuff, recvcount, datatype, comm, &dt);
      r != ncclSuccess)
    return r;
  if (const ncclResult_t r = toCoproOp(op, what, &o); r != ncclSuccess) return r;
  return runCollective(what, [&](copro_request_t* q) {
    return copro_reduce_scatter(sendbuff, recvbuff, recvcount, dt, o, comm->comm, q);
  });
}

ncclResult_t ncclAllGather(const void* sendbuff, void* recvbuff, size_t sendcount, ncclDataType_t datatype,
                           ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclAllGather";
  copro_datatype_t dt{};
  if (const ncclResult_t r = checkCollective(what, sendbuff, recvbuff, sendcount, datatype, comm, &dt);
      r != ncclSuccess)
    return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_allgather(sendbuff, recvbuff, sendcount, dt, comm->comm, q); });
}

ncclResult_t ncclAlltoAll(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, ncclComm_t comm,
                          cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclAlltoAll";
  copro_datatype_t dt{};
  if (const ncclResult_t r = checkCollective(what, sendbuff, recvbuff, count, datatype, comm, &dt); r != ncclSuccess)
    return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_alltoall(sendbuff, recvbuff, count, dt, comm->comm, q); });
}

ncclResult_t ncclGather(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                        ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclGather";
  copro_datatype_t dt{};
  if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
  if (const ncclResult_t r = checkRoot(what, root, comm); r != ncclSuccess) return r;
  const void* needed = comm->rank == root ? recvbuff : sendbuff;
  if (const ncclResult_t r = checkCollective(what, sendbuff, needed, count, datatype, comm, &dt); r != ncclSuccess)
    return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_gather(sendbuff, recvbuff, count, dt, root, comm->comm, q); });
}

ncclResult_t ncclScatter(const void* sendbuff, void* recvbuff, size_t count, ncclDataType_t datatype, int root,
                         ncclComm_t comm, cudaStream_t stream) {
  (void)stream;
  const char* what = "ncclScatter";
  copro_datatype_t dt{};
  if (const ncclResult_t r = checkComm(comm, what); r != ncclSuccess) return r;
  if (const ncclResult_t r = checkRoot(what, root, comm); r != ncclSuccess) return r;
  const void* needed = comm->rank == root ? sendbuff : recvbuff;
  if (const ncclResult_t r = checkCollective(what, needed, recvbuff, count, datatype, comm, &dt); r != ncclSuccess)
    return r;
  return runCollective(
      what, [&](copro_request_t* q) { return copro_scatter(sendbuff, recvbuff, count, dt, root, comm->comm, q); });
}

ncclResult_t ncclSend(const void* sendbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  (void)stream;
  return guarded("ncclSend",
                 [&] { return pointToPoint(true, const_cast<void*>(sendbuff), count, datatype, peer, comm); });
}

ncclResult_t ncclRecv(void* recvbuff, size_t count, ncclDataType_t datatype, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  (void)stream;
  return guarded("ncclRecv", [&] { return pointToPoint(false, recvbuff, count, datatype, peer, comm); });
}

ncclResult_t ncclGroupStart(void) {
  ++tGroup.depth;
  return ncclSuccess;
}

ncclResult_t ncclGroupEnd(void) {
  if (tGroup.depth == 0) return fail(ncclInvalidUsage, "ncclGroupEnd: no ncclGroupStart on this thread");
  if (--tGroup.depth > 0) return ncclSuccess;
  return guarded("ncclGroupEnd", [&] {
    ncclResult_t first = tGroup.inits.empty() ? ncclSuccess : runDeferredInits();
    std::string firstMessage = tLastError;
    for (ncclComm* c : tGroup.p2pComms) {
      c->p2pOpen = false;
      copro_request_t request = nullptr;
      const ncclResult_t r = fromCopro(copro_group_end(c->comm, &request), "ncclGroupEnd (send/recv)");
      if (r == ncclSuccess && request != nullptr) tGroup.pending.push_back(request);
      if (r != ncclSuccess && first == ncclSuccess) {
        first = r;
        firstMessage = tLastError;
      }
    }
    tGroup.p2pComms.clear();
    const ncclResult_t done = completePending();
    if (first != ncclSuccess) {
      tLastError = firstMessage;
      return first;
    }
    return done;
  });
}

ncclResult_t ncclGroupSimulateEnd(ncclSimInfo_t* simInfo) {
  (void)simInfo;
  return fail(ncclInvalidUsage, "ncclGroupSimulateEnd is not supported by copro's NCCL shim (ncclGroupEnd is)");
}

}  // extern "C"
