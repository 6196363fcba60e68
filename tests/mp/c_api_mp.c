/* The multi-process C API under mpirun (label mp): rank 0 makes a unique id, MPI broadcasts its bytes,
 * every process joins with copro_comm_init_rank on the backend named by argv[1] and all-reduces; then a
 * second communicator from the environment (copro_comm_init_from_env, COPRO_RANK/COPRO_WORLD_SIZE/
 * COPRO_ROOT_ADDR set here from MPI's rank and a port rank 0 found free), and the asynchronous error query:
 * success while healthy, copro_aborted on the rank that aborted. MPI is only the launcher here. */
#include <arpa/inet.h>
#include <mpi.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "copro/copro.h"

#define COUNT 4099

static int check(copro_result_t r, const char* what, int rank) {
  if (r == copro_success) return 0;
  fprintf(stderr, "rank %d: %s: %s: %s\n", rank, what, copro_result_string(r), copro_last_error());
  return 1;
}

static int allreduce_ok(copro_comm_t comm, int rank, int nranks) {
  double* in = malloc(COUNT * sizeof(double));
  double* out = malloc(COUNT * sizeof(double));
  for (int i = 0; i < COUNT; ++i) in[i] = rank + 0.5 * i;
  int bad = check(copro_allreduce(in, out, COUNT, copro_float64, copro_sum, comm, NULL), "allreduce", rank);
  for (int i = 0; i < COUNT && !bad; ++i) {
    const double expect = nranks * (nranks - 1) / 2.0 + nranks * 0.5 * i;
    if (out[i] != expect) {
      fprintf(stderr, "rank %d: element %d is %g, expected %g\n", rank, i, out[i], expect);
      bad = 1;
    }
  }
  free(in);
  free(out);
  return bad;
}

/* A TCP port that was free a moment ago (the kernel's pick for port 0). */
static int free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr*)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr*)&a, &len) == 0) {
    port = ntohs(a.sin_port);
  }
  if (fd >= 0) close(fd);
  return port;
}

int main(int argc, char** argv) {
  const char* backend = argc > 1 ? argv[1] : "shm";
  MPI_Init(&argc, &argv);
  int rank = 0, nranks = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &nranks);
  int bad = 0;

  copro_unique_id_t id;
  memset(&id, 0, sizeof id);
  if (rank == 0) bad |= check(copro_get_unique_id(&id), "copro_get_unique_id", rank);
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  copro_comm_t comm = NULL;
  bad |= check(copro_comm_init_rank(backend, id, rank, nranks, &comm), "copro_comm_init_rank", rank);
  if (comm != NULL) {
    int r = -1, n = -1;
    copro_comm_rank(comm, &r);
    copro_comm_size(comm, &n);
    bad |= r != rank || n != nranks;
    bad |= allreduce_ok(comm, rank, nranks);
  }

  int port = rank == 0 ? free_port() : 0;
  MPI_Bcast(&port, 1, MPI_INT, 0, MPI_COMM_WORLD);
  char value[64];
  snprintf(value, sizeof value, "%d", rank);
  setenv("COPRO_RANK", value, 1);
  snprintf(value, sizeof value, "%d", nranks);
  setenv("COPRO_WORLD_SIZE", value, 1);
  snprintf(value, sizeof value, "127.0.0.1:%d", port);
  setenv("COPRO_ROOT_ADDR", value, 1);
  /* The environment form needs a shared secret (or COPRO_BOOTSTRAP_TRUSTED=1). */
  setenv("COPRO_BOOTSTRAP_TOKEN", "c-api-mp-test-secret", 1);
  copro_comm_t env_comm = NULL;
  bad |= check(copro_comm_init_from_env(backend, &env_comm), "copro_comm_init_from_env", rank);
  if (env_comm != NULL) bad |= allreduce_ok(env_comm, rank, nranks);

  /* Asynchronous errors: none so far; after the last rank aborts its communicator, that rank sees
   * copro_aborted and the others (which did not call anything since) still see success. */
  if (comm != NULL) {
    copro_result_t async_error = copro_internal_error;
    bad |= check(copro_comm_get_async_error(comm, &async_error), "copro_comm_get_async_error", rank);
    bad |= async_error != copro_success;
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == nranks - 1) {
      copro_comm_abort(comm);
      copro_comm_get_async_error(comm, &async_error);
      if (async_error != copro_aborted) {
        fprintf(stderr, "rank %d: async error after abort is %s\n", rank, copro_result_string(async_error));
        bad = 1;
      }
    }
  }
  int any_bad = 0;
  MPI_Allreduce(&bad, &any_bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (env_comm != NULL) copro_comm_destroy(env_comm);
  if (comm != NULL) copro_comm_destroy(comm);
  if (rank == 0) printf("c_api_mp on %s, %d ranks: %s\n", backend, nranks, any_bad ? "FAILED" : "ok");
  MPI_Finalize();
  return any_bad;
}
