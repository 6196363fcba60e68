/* A C11 program written against copro's nccl.h (tests/nccl, label mp), run under mpirun with 4 processes:
 * rank 0 makes an ncclUniqueId, MPI broadcasts it, every process joins with ncclCommInitRank; then
 * all-reduce (float sum out of place, int max in place), broadcast, bcast, reduce, all-gather,
 * reduce-scatter, all-to-all, a ring of ncclSend/ncclRecv inside nested groups, registered buffers,
 * ncclCommSplit, and the error paths: an unsupported call gives ncclInvalidUsage, bad arguments give
 * ncclInvalidArgument, both with a message from ncclGetLastError; under COPRO_CHECK_CALLS=1 also a count that
 * differs between ranks. Every result is compared with the value
 * computed here; MPI is only the launcher. Prints "nccl_mp on N ranks: ok" when every check passed. */
#include <mpi.h>
#include <nccl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT 4099

static int g_rank;
static int g_failures;

static void expect(int ok, const char* what) {
  if (ok) return;
  fprintf(stderr, "rank %d: FAILED: %s (last error: %s)\n", g_rank, what, ncclGetLastError(NULL));
  ++g_failures;
}

static int ok(ncclResult_t r, const char* what) {
  if (r == ncclSuccess) return 1;
  fprintf(stderr, "rank %d: %s: %s: %s\n", g_rank, what, ncclGetErrorString(r), ncclGetLastError(NULL));
  ++g_failures;
  return 0;
}

static void check_allreduce(ncclComm_t comm, int rank, int n) {
  float* in = malloc(COUNT * sizeof(float));
  float* out = malloc(COUNT * sizeof(float));
  int32_t* v = malloc(COUNT * sizeof(int32_t));
  for (int i = 0; i < COUNT; ++i) {
    in[i] = (float)rank + 0.5f * (float)i;
    v[i] = (rank * 7 + i) % 13 - 6;
  }
  int bad = 0;
  if (ok(ncclAllReduce(in, out, COUNT, ncclFloat, ncclSum, comm, NULL), "ncclAllReduce float sum")) {
    for (int i = 0; i < COUNT; ++i) bad |= out[i] != (float)(n * (n - 1) / 2) + (float)n * 0.5f * (float)i;
    expect(!bad, "all-reduce float sum, out of place");
  }
  if (ok(ncclAllReduce(v, v, COUNT, ncclInt32, ncclMax, comm, NULL), "ncclAllReduce int max in place")) {
    bad = 0;
    for (int i = 0; i < COUNT; ++i) {
      int m = -1000;
      for (int r = 0; r < n; ++r) m = (r * 7 + i) % 13 - 6 > m ? (r * 7 + i) % 13 - 6 : m;
      bad |= v[i] != m;
    }
    expect(!bad, "all-reduce int32 max, in place");
  }
  free(in);
  free(out);
  free(v);
}

static void check_rooted(ncclComm_t comm, int rank, int n) {
  double* d = malloc(COUNT * sizeof(double));
  double* e = malloc(COUNT * sizeof(double));
  const int root_a = 2 % n, root_b = 1 % n; /* ranks 2 and 1 on 4 processes */
  for (int i = 0; i < COUNT; ++i) d[i] = rank == root_a ? 1.25 * i : -1.0;
  if (ok(ncclBroadcast(d, e, COUNT, ncclDouble, root_a, comm, NULL), "ncclBroadcast")) {
    int bad = 0;
    for (int i = 0; i < COUNT; ++i) bad |= e[i] != 1.25 * i;
    expect(!bad, "broadcast, out of place");
  }
  for (int i = 0; i < COUNT; ++i) d[i] = rank == root_b ? 3.0 * i : 0.0;
  if (ok(ncclBcast(d, COUNT, ncclFloat64, root_b, comm, NULL), "ncclBcast")) {
    int bad = 0;
    for (int i = 0; i < COUNT; ++i) bad |= d[i] != 3.0 * i;
    expect(!bad, "bcast, in place");
  }
  for (int i = 0; i < COUNT; ++i) d[i] = rank + i;
  if (ok(ncclReduce(d, e, COUNT, ncclDouble, ncclSum, n - 1, comm, NULL), "ncclReduce") && rank == n - 1) {
    int bad = 0;
    for (int i = 0; i < COUNT; ++i) bad |= e[i] != n * (n - 1) / 2.0 + (double)n * i;
    expect(!bad, "reduce sum to the last rank");
  }
  free(d);
  free(e);
}

static void check_gather_scatter(ncclComm_t comm, int rank, int n) {
  int64_t* mine = malloc(COUNT * sizeof(int64_t));
  int64_t* all = malloc((size_t)n * COUNT * sizeof(int64_t));
  for (int i = 0; i < COUNT; ++i) mine[i] = (int64_t)rank * 1000000 + i;
  if (ok(ncclAllGather(mine, all, COUNT, ncclInt64, comm, NULL), "ncclAllGather")) {
    int bad = 0;
    for (int r = 0; r < n; ++r)
      for (int i = 0; i < COUNT; ++i) bad |= all[(size_t)r * COUNT + i] != (int64_t)r * 1000000 + i;
    expect(!bad, "all-gather int64");
  }
  float* in = malloc((size_t)n * COUNT * sizeof(float));
  float* out = malloc(COUNT * sizeof(float));
  for (int j = 0; j < n * COUNT; ++j) in[j] = (float)(rank + 1) * (float)(j % 97);
  if (ok(ncclReduceScatter(in, out, COUNT, ncclFloat, ncclSum, comm, NULL), "ncclReduceScatter")) {
    int bad = 0;
    for (int i = 0; i < COUNT; ++i) bad |= out[i] != (float)(n * (n + 1) / 2) * (float)((rank * COUNT + i) % 97);
    expect(!bad, "reduce-scatter float sum");
  }
  for (int j = 0; j < n * COUNT; ++j) in[j] = (float)(rank * n * COUNT + j);
  float* got = malloc((size_t)n * COUNT * sizeof(float));
  if (ok(ncclAlltoAll(in, got, COUNT, ncclFloat, comm, NULL), "ncclAlltoAll")) {
    int bad = 0;
    for (int r = 0; r < n; ++r)
      for (int i = 0; i < COUNT; ++i) bad |= got[r * COUNT + i] != (float)(r * n * COUNT + rank * COUNT + i);
    expect(!bad, "all-to-all");
  }
  free(mine);
  free(all);
  free(in);
  free(out);
  free(got);
}

/* A ring in nested groups with an all-reduce among the sends: an int32 block to the next rank and a double
 * block from the previous one (two datatypes in one group; per pair of ranks the k-th send matches the k-th receive).
 */
static void check_ring(ncclComm_t comm, int rank, int n) {
  int32_t* s = malloc(COUNT * sizeof(int32_t));
  int32_t* r = malloc(COUNT * sizeof(int32_t));
  double ds[3] = {rank, rank * 2.0, -rank};
  double dr[3] = {0, 0, 0};
  for (int i = 0; i < COUNT; ++i) s[i] = rank * 100000 + i;
  const int next = (rank + 1) % n, prev = (rank + n - 1) % n;
  int good = ok(ncclGroupStart(), "ncclGroupStart");
  good &= ok(ncclGroupStart(), "ncclGroupStart (nested)");
  good &= ok(ncclSend(s, COUNT, ncclInt32, next, comm, NULL), "ncclSend");
  good &= ok(ncclRecv(r, COUNT, ncclInt32, prev, comm, NULL), "ncclRecv");
  good &= ok(ncclGroupEnd(), "ncclGroupEnd (nested)");
  good &= ok(ncclRecv(dr, 3, ncclDouble, prev, comm, NULL), "ncclRecv double");
  good &= ok(ncclSend(ds, 3, ncclDouble, next, comm, NULL), "ncclSend double");
  int sum = -1;
  good &= ok(ncclAllReduce(&rank, &sum, 1, ncclInt, ncclSum, comm, NULL), "ncclAllReduce in the group");
  good &= ok(ncclGroupEnd(), "ncclGroupEnd");
  if (good) {
    int bad = 0;
    for (int i = 0; i < COUNT; ++i) bad |= r[i] != prev * 100000 + i;
    expect(!bad, "ring send/recv int32 from the previous rank");
    expect(dr[0] == prev && dr[1] == prev * 2.0 && dr[2] == -prev, "ring send/recv double in the same group");
    expect(sum == n * (n - 1) / 2, "an all-reduce in the same group");
  }
  free(s);
  free(r);
}

static void check_split(ncclComm_t comm, int rank, int n) {
  /* The last rank stays out; the others split by parity, ordered by descending rank. */
  const int color = rank == n - 1 ? NCCL_SPLIT_NOCOLOR : rank % 2;
  ncclComm_t sub = NULL;
  if (!ok(ncclCommSplit(comm, color, -rank, &sub, NULL), "ncclCommSplit")) return;
  if (color == NCCL_SPLIT_NOCOLOR) {
    expect(sub == NULL, "NCCL_SPLIT_NOCOLOR gives a NULL communicator");
    return;
  }
  int members = 0, below = 0, size = -1, me = -1;
  for (int r = 0; r < n - 1; ++r) members += r % 2 == color;
  for (int r = rank + 1; r < n - 1; ++r) below += r % 2 == color;
  ncclCommCount(sub, &size);
  ncclCommUserRank(sub, &me);
  expect(size == members && me == below, "split: size and rank ordered by key");
  int sum = 0, want = 0;
  for (int r = 0; r < n - 1; ++r) want += r % 2 == color ? r : 0;
  if (ok(ncclAllReduce(&rank, &sum, 1, ncclInt, ncclSum, sub, NULL), "ncclAllReduce on the split"))
    expect(sum == want, "all-reduce over the split communicator");
  ok(ncclCommDestroy(sub), "ncclCommDestroy (split)");
}

static void check_registered(ncclComm_t comm, int rank, int n) {
  uint8_t* buf = malloc(1 << 16);
  memset(buf, rank + 1, 1 << 16);
  void* handle = NULL;
  if (!ok(ncclCommRegister(comm, buf, 1 << 16, &handle), "ncclCommRegister")) return;
  if (ok(ncclAllReduce(buf, buf, 1 << 16, ncclUint8, ncclSum, comm, NULL), "ncclAllReduce registered"))
    expect(buf[0] == n * (n + 1) / 2 && buf[(1 << 16) - 1] == n * (n + 1) / 2, "all-reduce on a registered buffer");
  ok(ncclCommDeregister(comm, handle), "ncclCommDeregister");
  free(buf);
}

/* Local errors: each returns without talking to the other ranks. */
static void check_errors(ncclComm_t comm) {
  float x[4] = {0, 0, 0, 0};
  ncclRedOp_t op;
  float scalar = 2.0f;
  expect(ncclRedOpCreatePreMulSum(&op, &scalar, ncclFloat, ncclScalarHostImmediate, comm) == ncclInvalidUsage,
         "ncclRedOpCreatePreMulSum is ncclInvalidUsage");
  expect(strstr(ncclGetLastError(comm), "not supported") != NULL, "the unsupported call's message says so");
  expect(ncclAllReduce(x, x, 4, (ncclDataType_t)99, ncclSum, comm, NULL) == ncclInvalidArgument, "bad datatype");
  expect(strstr(ncclGetLastError(comm), "datatype 99") != NULL, "the message names the bad datatype");
  expect(ncclAllReduce(x, x, 4, ncclFloat, (ncclRedOp_t)42, comm, NULL) == ncclInvalidArgument, "bad reduction op");
  expect(ncclAllReduce(x, x, 4, ncclFloat, ncclSum, NULL, NULL) == ncclInvalidArgument, "NULL communicator");
  expect(ncclAllReduce(NULL, x, 4, ncclFloat, ncclSum, comm, NULL) == ncclInvalidArgument, "NULL send buffer");
  expect(ncclSend(x, 4, ncclFloat, 99, comm, NULL) == ncclInvalidArgument, "send to a peer out of range");
  expect(strstr(ncclGetLastError(comm), "peer 99") != NULL, "the message names the bad peer");
  expect(ncclBroadcast(x, x, 4, ncclFloat, -1, comm, NULL) == ncclInvalidArgument, "broadcast from root -1");
  expect(ncclGroupEnd() == ncclInvalidUsage, "ncclGroupEnd without ncclGroupStart");
  expect(strcmp(ncclGetErrorString(ncclInvalidUsage), ncclGetErrorString(ncclInvalidArgument)) != 0,
         "distinct error strings");
  ncclResult_t async = ncclInternalError;
  expect(ncclCommGetAsyncError(comm, &async) == ncclSuccess && async == ncclSuccess, "no asynchronous error");
}

/* Under COPRO_CHECK_CALLS=1 (test nccl_mp_check_calls) a count that differs between ranks is reported on every
 * rank, and the communicator stays usable. */
static void check_mismatch(ncclComm_t comm, int rank, int n) {
  float x[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  expect(ncclAllReduce(x, x, rank == 0 ? 8 : 4, ncclFloat, ncclSum, comm, NULL) == ncclInvalidUsage,
         "a count that differs between ranks is ncclInvalidUsage under COPRO_CHECK_CALLS");
  expect(strstr(ncclGetLastError(comm), "COPRO_CHECK_CALLS") != NULL, "the mismatch message names the check");
  if (ok(ncclAllReduce(x, x, 4, ncclFloat, ncclSum, comm, NULL), "ncclAllReduce after a mismatch"))
    expect(x[0] == (float)n && x[3] == (float)n, "all-reduce after a reported mismatch");
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, n = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  g_rank = rank;

  int version = 0;
  ok(ncclGetVersion(&version), "ncclGetVersion");
  expect(version >= 22800, "ncclGetVersion reports NCCL 2.28 or later");
  ncclUniqueId id;
  memset(&id, 0, sizeof id);
  if (rank == 0) ok(ncclGetUniqueId(&id), "ncclGetUniqueId");
  MPI_Bcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD);
  ncclComm_t comm = NULL;
  if (ok(ncclCommInitRank(&comm, n, id, rank), "ncclCommInitRank")) {
    int count = -1, me = -1, dev = 0;
    ncclCommCount(comm, &count);
    ncclCommUserRank(comm, &me);
    ncclCommCuDevice(comm, &dev);
    expect(count == n && me == rank && dev == -1, "count, user rank, and device -1 in host-buffer mode");
    check_allreduce(comm, rank, n);
    check_rooted(comm, rank, n);
    check_gather_scatter(comm, rank, n);
    check_ring(comm, rank, n);
    check_split(comm, rank, n);
    check_registered(comm, rank, n);
    check_errors(comm);
    const char* check_calls = getenv("COPRO_CHECK_CALLS");
    if (check_calls != NULL && strcmp(check_calls, "1") == 0) check_mismatch(comm, rank, n);
    ok(ncclCommFinalize(comm), "ncclCommFinalize");
    float x = 0;
    expect(ncclAllReduce(&x, &x, 1, ncclFloat, ncclSum, comm, NULL) == ncclInvalidUsage,
           "a call after ncclCommFinalize is ncclInvalidUsage");
    ok(ncclCommDestroy(comm), "ncclCommDestroy");
  }
  int failures = 0;
  MPI_Allreduce(&g_failures, &failures, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0 && failures == 0) printf("nccl_mp on %d ranks: ok\n", n);
  MPI_Finalize();
  return failures == 0 ? 0 : 1;
}
