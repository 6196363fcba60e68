// The C API: thin wrappers that turn exceptions and Status into copro_result_t + a per-thread message.
#include "copro/copro.h"

#include <cstring>
#include <string>
#include <vector>

#include "copro/copro.hpp"

struct copro_comm {
  copro::Communicator comm;
};
struct copro_request {
  copro::Request request;
};
struct copro_graph {
  copro::CallGraph graph;
};

namespace {

thread_local std::string tLastError;

copro_result_t toResult(copro::ErrorCode code) {
  return static_cast<copro_result_t>(static_cast<int>(code));
}

copro_result_t fail(copro::ErrorCode code, const std::string& message) {
  tLastError = message;
  return toResult(code);
}

copro_result_t fromStatus(const copro::Status& s) {
  if (s.ok()) return copro_success;
  return fail(s.code(), s.message());
}

template <typename F>
copro_result_t guarded(F&& f) {
  try {
    return f();
  } catch (const copro::Error& e) {
    return fail(e.code(), e.message());
  } catch (const std::bad_alloc&) {
    return fail(copro::ErrorCode::kOutOfMemory, "out of memory");
  } catch (const std::exception& e) {
    return fail(copro::ErrorCode::kInternal, e.what());
  }
}

copro_result_t checkComm(copro_comm_t comm) {
  if (comm == nullptr || !comm->comm.valid()) return fail(copro::ErrorCode::kInvalidArgument, "communicator is NULL");
  return copro_success;
}

/// Blocking when request is NULL; otherwise hands the request out.
copro_result_t finish(copro::Request r, copro_request_t* request) {
  if (!r.valid()) {  // recorded by a capture (or collected into an open group): nothing runs now
    if (request != nullptr) *request = nullptr;
    return copro_success;
  }
  if (request == nullptr) return fromStatus(r.wait());
  if (r.test()) {
    // Report argument errors right away, as the blocking form would.
    copro::Status s = r.wait();
    if (!s.ok()) {
      *request = nullptr;
      return fromStatus(s);
    }
  }
  *request = new copro_request{std::move(r)};
  return copro_success;
}

copro::DataType dt(copro_datatype_t t) {
  return static_cast<copro::DataType>(t);
}
copro::ReduceOp rop(copro_redop_t o) {
  return static_cast<copro::ReduceOp>(o);
}

std::vector<std::uint64_t> vec(const size_t* p, int n) {
  if (p == nullptr) throw copro::Error(copro::ErrorCode::kInvalidArgument, "alltoallv: a counts/displs array is NULL");
  return std::vector<std::uint64_t>(p, p + n);
}

}  // namespace

#define COPRO_C_CHECK_COMM(c)                       \
  do {                                              \
    copro_result_t copro_r_ = checkComm(c);         \
    if (copro_r_ != copro_success) return copro_r_; \
  } while (0)

extern "C" {

const char* copro_version(void) {
  return copro::version();
}

const char* copro_result_string(copro_result_t result) {
  return copro::core::errorCodeName(static_cast<copro::ErrorCode>(result)).data();
}

const char* copro_last_error(void) {
  return tLastError.c_str();
}

copro_result_t copro_comm_init_all(const char* backend, int nranks, copro_comm_t* comms) {
  return guarded([&] {
    if (backend == nullptr || comms == nullptr) return fail(copro::ErrorCode::kInvalidArgument, "NULL argument");
    copro::core::ExecutorOptions options;
    options.nranks = nranks;
    if (nranks <= 0) return fail(copro::ErrorCode::kInvalidArgument, "nranks must be > 0");
    auto all = copro::createCommunicators(backend, options);
    for (std::size_t i = 0; i < all.size(); ++i) comms[i] = new copro_comm{std::move(all[i])};
    return copro_success;
  });
}

copro_result_t copro_get_unique_id(copro_unique_id_t* id) {
  return guarded([&] {
    if (id == nullptr) return fail(copro::ErrorCode::kInvalidArgument, "copro_get_unique_id: id is NULL");
    static_assert(sizeof(id->internal) == sizeof(copro::UniqueId::internal), "unique id sizes differ");
    const copro::UniqueId made = copro::getUniqueId();
    std::memcpy(id->internal, made.internal.data(), sizeof(id->internal));
    return copro_success;
  });
}

copro_result_t copro_comm_init_rank(const char* backend, copro_unique_id_t id, int rank, int nranks,
                                    copro_comm_t* comm) {
  return guarded([&] {
    if (backend == nullptr || comm == nullptr) {
      return fail(copro::ErrorCode::kInvalidArgument, "copro_comm_init_rank: backend or comm is NULL");
    }
    *comm = nullptr;
    if (nranks <= 0 || rank < 0 || rank >= nranks) {
      return fail(copro::ErrorCode::kInvalidArgument,
                  "copro_comm_init_rank: rank " + std::to_string(rank) + " is not in 0.." + std::to_string(nranks - 1));
    }
    copro::UniqueId uid;
    std::memcpy(uid.internal.data(), id.internal, uid.internal.size());
    *comm = new copro_comm{copro::createCommunicator(backend, uid, rank, nranks)};
    return copro_success;
  });
}

copro_result_t copro_comm_init_from_env(const char* backend, copro_comm_t* comm) {
  return guarded([&] {
    if (backend == nullptr || comm == nullptr) {
      return fail(copro::ErrorCode::kInvalidArgument, "copro_comm_init_from_env: backend or comm is NULL");
    }
    *comm = nullptr;
    *comm = new copro_comm{copro::createFromEnvironment(backend)};
    return copro_success;
  });
}

copro_result_t copro_comm_get_async_error(copro_comm_t comm, copro_result_t* async_error) {
  COPRO_C_CHECK_COMM(comm);
  if (async_error == nullptr) return fail(copro::ErrorCode::kInvalidArgument, "async_error is NULL");
  const copro::Status s = comm->comm.asyncError();
  *async_error = s.ok() ? copro_success : toResult(s.code());
  if (!s.ok()) tLastError = s.message();
  return copro_success;
}

copro_result_t copro_comm_destroy(copro_comm_t comm) {
  delete comm;
  return copro_success;
}

copro_result_t copro_comm_rank(copro_comm_t comm, int* rank) {
  COPRO_C_CHECK_COMM(comm);
  *rank = comm->comm.rank();
  return copro_success;
}

copro_result_t copro_comm_size(copro_comm_t comm, int* size) {
  COPRO_C_CHECK_COMM(comm);
  *size = comm->comm.size();
  return copro_success;
}

copro_result_t copro_comm_split(copro_comm_t comm, int color, int key, copro_comm_t* out) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] {
    copro::Communicator c = comm->comm.split(color, key);
    *out = c.valid() ? new copro_comm{std::move(c)} : nullptr;
    return copro_success;
  });
}

copro_result_t copro_comm_dup(copro_comm_t comm, copro_comm_t* out) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] {
    *out = new copro_comm{comm->comm.dup()};
    return copro_success;
  });
}

copro_result_t copro_comm_abort(copro_comm_t comm) {
  COPRO_C_CHECK_COMM(comm);
  comm->comm.abort();
  return copro_success;
}

copro_result_t copro_mem_alloc(copro_comm_t comm, size_t bytes, void** ptr) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] {
    *ptr = comm->comm.allocate(bytes);
    return *ptr != nullptr || bytes == 0 ? copro_success : fail(copro::ErrorCode::kOutOfMemory, "allocation failed");
  });
}

copro_result_t copro_mem_free(copro_comm_t comm, void* ptr) {
  COPRO_C_CHECK_COMM(comm);
  comm->comm.deallocate(ptr);
  return copro_success;
}

copro_result_t copro_register_buffer(copro_comm_t comm, void* ptr, size_t bytes) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return fromStatus(comm->comm.registerBuffer(ptr, bytes)); });
}

copro_result_t copro_deregister_buffer(copro_comm_t comm, void* ptr) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return fromStatus(comm->comm.deregisterBuffer(ptr)); });
}

copro_result_t copro_allreduce(const void* send, void* recv, size_t count, copro_datatype_t dtype, copro_redop_t op,
                               copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.allReduce(send, recv, count, dt(dtype), rop(op)), request); });
}

copro_result_t copro_reduce_scatter(const void* send, void* recv, size_t recv_count, copro_datatype_t dtype,
                                    copro_redop_t op, copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.reduceScatter(send, recv, recv_count, dt(dtype), rop(op)), request); });
}

copro_result_t copro_allgather(const void* send, void* recv, size_t send_count, copro_datatype_t dtype,
                               copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.allGather(send, recv, send_count, dt(dtype)), request); });
}

copro_result_t copro_broadcast(const void* send, void* recv, size_t count, copro_datatype_t dtype, int root,
                               copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.broadcast(send, recv, count, dt(dtype), root), request); });
}

copro_result_t copro_reduce(const void* send, void* recv, size_t count, copro_datatype_t dtype, copro_redop_t op,
                            int root, copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.reduce(send, recv, count, dt(dtype), rop(op), root), request); });
}

copro_result_t copro_gather(const void* send, void* recv, size_t send_count, copro_datatype_t dtype, int root,
                            copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.gather(send, recv, send_count, dt(dtype), root), request); });
}

copro_result_t copro_scatter(const void* send, void* recv, size_t recv_count, copro_datatype_t dtype, int root,
                             copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.scatter(send, recv, recv_count, dt(dtype), root), request); });
}

copro_result_t copro_alltoall(const void* send, void* recv, size_t count, copro_datatype_t dtype, copro_comm_t comm,
                              copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.allToAll(send, recv, count, dt(dtype)), request); });
}

copro_result_t copro_alltoallv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                               const size_t* recv_counts, const size_t* recv_displs, copro_datatype_t dtype,
                               copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] {
    int p = comm->comm.size();
    return finish(comm->comm.allToAllV(send, vec(send_counts, p), vec(send_displs, p), recv, vec(recv_counts, p),
                                       vec(recv_displs, p), dt(dtype)),
                  request);
  });
}

copro_result_t copro_barrier(copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.barrier(), request); });
}

copro_result_t copro_group_start(copro_comm_t comm) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] {
    comm->comm.groupStart();
    return copro_success;
  });
}

copro_result_t copro_group_end(copro_comm_t comm, copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.groupEnd(), request); });
}

copro_result_t copro_send(const void* buf, size_t count, copro_datatype_t dtype, int peer, copro_comm_t comm,
                          copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  // Inside a group the call is collected: *request is set to NULL (finish).
  return guarded([&] { return finish(comm->comm.send(buf, count, dt(dtype), peer), request); });
}

copro_result_t copro_recv(void* buf, size_t count, copro_datatype_t dtype, int peer, copro_comm_t comm,
                          copro_request_t* request) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] { return finish(comm->comm.recv(buf, count, dt(dtype), peer), request); });
}

copro_result_t copro_capture_begin(copro_comm_t comm) {
  COPRO_C_CHECK_COMM(comm);
  return guarded([&] {
    comm->comm.beginCapture();
    return copro_success;
  });
}

copro_result_t copro_capture_end(copro_comm_t comm, copro_graph_t* graph) {
  COPRO_C_CHECK_COMM(comm);
  if (graph == nullptr) return fail(copro::ErrorCode::kInvalidArgument, "copro_capture_end: graph is NULL");
  return guarded([&] {
    *graph = new copro_graph{comm->comm.endCapture()};
    return copro_success;
  });
}

copro_result_t copro_graph_size(copro_graph_t graph, size_t* calls) {
  if (graph == nullptr || calls == nullptr) {
    return fail(copro::ErrorCode::kInvalidArgument, "copro_graph_size: graph or calls is NULL");
  }
  *calls = graph->graph.size();
  return copro_success;
}

copro_result_t copro_graph_replay(copro_graph_t graph, copro_request_t* request) {
  if (graph == nullptr) return fail(copro::ErrorCode::kInvalidArgument, "copro_graph_replay: graph is NULL");
  return guarded([&] { return finish(graph->graph.replay(), request); });
}

copro_result_t copro_graph_free(copro_graph_t graph) {
  delete graph;
  return copro_success;
}

copro_result_t copro_request_wait(copro_request_t request) {
  if (request == nullptr) return copro_success;
  return guarded([&] { return fromStatus(request->request.wait()); });
}

copro_result_t copro_request_test(copro_request_t request, int* done) {
  if (request == nullptr) {
    *done = 1;
    return copro_success;
  }
  return guarded([&] {
    *done = request->request.test() ? 1 : 0;
    if (*done != 0) return fromStatus(request->request.wait());
    return copro_success;
  });
}

copro_result_t copro_request_free(copro_request_t request) {
  if (request == nullptr) return copro_success;
  copro_result_t r = copro_request_wait(request);
  delete request;
  return r;
}

}  // extern "C"
