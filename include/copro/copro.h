/* copro C API: mirrors the C++ Communicator (include/copro/copro.hpp).
 *
 * Every function returns a copro_result_t; on error copro_last_error() gives the message (per thread).
 * Collectives take a copro_request_t* : NULL makes the call blocking; otherwise *request receives a handle
 * to wait on (copro_request_wait) and free (copro_request_free). */
#ifndef COPRO_COPRO_H_
#define COPRO_COPRO_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  copro_success = 0,
  copro_invalid_argument,
  copro_invalid_usage,
  copro_unsupported,
  copro_out_of_memory,
  copro_timeout,
  copro_remote_error,
  copro_aborted,
  copro_invalid_program,
  copro_parse_error,
  copro_system_error,
  copro_internal_error
} copro_result_t;

typedef enum {
  copro_int8 = 0,
  copro_uint8,
  copro_int32,
  copro_uint32,
  copro_int64,
  copro_uint64,
  copro_float16,
  copro_bfloat16,
  copro_float32,
  copro_float64,
  copro_float8e4m3,
  copro_float8e5m2
} copro_datatype_t;

typedef enum { copro_sum = 0, copro_prod, copro_min, copro_max, copro_avg } copro_redop_t;

typedef struct copro_comm* copro_comm_t;
typedef struct copro_request* copro_request_t;
typedef struct copro_graph* copro_graph_t;

/* Opaque rendezvous handle of a multi-process communicator (as ncclUniqueId): created by one process with
 * copro_get_unique_id, its 128 bytes copied to every rank (MPI_Bcast, a file, the launcher). */
#define COPRO_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[COPRO_UNIQUE_ID_BYTES];
} copro_unique_id_t;

const char* copro_version(void);
const char* copro_result_string(copro_result_t result);
/* The message of the last failed call on this thread ("" when none). */
const char* copro_last_error(void);

/* Creates nranks communicators of a backend that hosts every rank in this process ("inproc"). */
copro_result_t copro_comm_init_all(const char* backend, int nranks, copro_comm_t* comms);

/* Starts a rendezvous listener in this process (on 127.0.0.1, or COPRO_BOOTSTRAP_ADDR when set) and writes
 * its id. Call it on one process only, then give the id to every rank. */
copro_result_t copro_get_unique_id(copro_unique_id_t* id);
/* This process's rank of a multi-process communicator: backend "shm", "mpi", "ucx", "shm+ucx" or "shm+mpi".
 * Collective over the nranks processes that pass the same id; fails with copro_timeout naming the missing
 * ranks after COPRO_TIMEOUT. */
copro_result_t copro_comm_init_rank(const char* backend, copro_unique_id_t id, int rank, int nranks,
                                    copro_comm_t* comm);
/* The same with the rendezvous from the environment: COPRO_RANK, COPRO_WORLD_SIZE, COPRO_ROOT_ADDR
 * (host:port; rank 0 listens there), optional COPRO_BOOTSTRAP_TOKEN (docs/bootstrap.md). */
copro_result_t copro_comm_init_from_env(const char* backend, copro_comm_t* comm);
/* The first error that left the communicator unusable (a timeout, a dead or failed peer, an abort), seen by
 * any of its calls so far: *async_error is copro_success while there is none (as ncclCommGetAsyncError).
 * Its message is then copro_last_error(). Safe to call from another thread, e.g. a watchdog. */
copro_result_t copro_comm_get_async_error(copro_comm_t comm, copro_result_t* async_error);
copro_result_t copro_comm_destroy(copro_comm_t comm);
copro_result_t copro_comm_rank(copro_comm_t comm, int* rank);
copro_result_t copro_comm_size(copro_comm_t comm, int* size);
/* Collective. color < 0: *out is NULL. */
copro_result_t copro_comm_split(copro_comm_t comm, int color, int key, copro_comm_t* out);
copro_result_t copro_comm_dup(copro_comm_t comm, copro_comm_t* out);
copro_result_t copro_comm_abort(copro_comm_t comm);

copro_result_t copro_mem_alloc(copro_comm_t comm, size_t bytes, void** ptr);
copro_result_t copro_mem_free(copro_comm_t comm, void* ptr);
copro_result_t copro_register_buffer(copro_comm_t comm, void* ptr, size_t bytes);
copro_result_t copro_deregister_buffer(copro_comm_t comm, void* ptr);

copro_result_t copro_allreduce(const void* send, void* recv, size_t count, copro_datatype_t dtype, copro_redop_t op,
                               copro_comm_t comm, copro_request_t* request);
copro_result_t copro_reduce_scatter(const void* send, void* recv, size_t recv_count, copro_datatype_t dtype,
                                    copro_redop_t op, copro_comm_t comm, copro_request_t* request);
copro_result_t copro_allgather(const void* send, void* recv, size_t send_count, copro_datatype_t dtype,
                               copro_comm_t comm, copro_request_t* request);
copro_result_t copro_broadcast(const void* send, void* recv, size_t count, copro_datatype_t dtype, int root,
                               copro_comm_t comm, copro_request_t* request);
copro_result_t copro_reduce(const void* send, void* recv, size_t count, copro_datatype_t dtype, copro_redop_t op,
                            int root, copro_comm_t comm, copro_request_t* request);
copro_result_t copro_gather(const void* send, void* recv, size_t send_count, copro_datatype_t dtype, int root,
                            copro_comm_t comm, copro_request_t* request);
copro_result_t copro_scatter(const void* send, void* recv, size_t recv_count, copro_datatype_t dtype, int root,
                             copro_comm_t comm, copro_request_t* request);
copro_result_t copro_alltoall(const void* send, void* recv, size_t count, copro_datatype_t dtype, copro_comm_t comm,
                              copro_request_t* request);
/* Counts and displacements in elements, one per rank. */
copro_result_t copro_alltoallv(const void* send, const size_t* send_counts, const size_t* send_displs, void* recv,
                               const size_t* recv_counts, const size_t* recv_displs, copro_datatype_t dtype,
                               copro_comm_t comm, copro_request_t* request);
copro_result_t copro_barrier(copro_comm_t comm, copro_request_t* request);

/* Point-to-point; inside copro_group_start/copro_group_end they run together. */
copro_result_t copro_group_start(copro_comm_t comm);
copro_result_t copro_group_end(copro_comm_t comm, copro_request_t* request);
copro_result_t copro_send(const void* buf, size_t count, copro_datatype_t dtype, int peer, copro_comm_t comm,
                          copro_request_t* request);
copro_result_t copro_recv(void* buf, size_t count, copro_datatype_t dtype, int peer, copro_comm_t comm,
                          copro_request_t* request);

/* Capture and replay (as a CUDA graph; docs/latency.md): between copro_capture_begin and copro_capture_end,
 * collectives, groups and sends/receives are checked and planned but not run; they return copro_success with
 * *request set to NULL (a blocking form returns at once). copro_capture_end hands the recorded calls over as a
 * graph; copro_graph_replay starts them again in order with the same buffers, skipping argument checks and
 * planning. Every rank replays the same graphs in the same order; buffers must stay valid while a graph may
 * be replayed. A graph keeps what it needs of its communicator alive; free it with copro_graph_free. */
copro_result_t copro_capture_begin(copro_comm_t comm);
copro_result_t copro_capture_end(copro_comm_t comm, copro_graph_t* graph);
/* Number of recorded calls. */
copro_result_t copro_graph_size(copro_graph_t graph, size_t* calls);
copro_result_t copro_graph_replay(copro_graph_t graph, copro_request_t* request);
copro_result_t copro_graph_free(copro_graph_t graph);

copro_result_t copro_request_wait(copro_request_t request);
/* *done = 1 when finished. */
copro_result_t copro_request_test(copro_request_t request, int* done);
/* Waits if unfinished, then frees. */
copro_result_t copro_request_free(copro_request_t request);

#ifdef __cplusplus
}
#endif

#endif /* COPRO_COPRO_H_ */
