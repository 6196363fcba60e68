/* C API smoke test: compiled as C, runs an all-reduce, a split and an error path on 4 in-process ranks. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "copro/copro.h"

#define NRANKS 4
#define COUNT 1000

static copro_comm_t comms[NRANKS];
static int failures = 0;
static char not_null; /* a request handle the capture must overwrite with NULL */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char* what, int rank) {
  pthread_mutex_lock(&lock);
  fprintf(stderr, "rank %d: %s (%s)\n", rank, what, copro_last_error());
  failures++;
  pthread_mutex_unlock(&lock);
}

static void* rank_main(void* arg) {
  int rank = (int)(size_t)arg;
  float* in = malloc(COUNT * sizeof(float));
  float* out = malloc(COUNT * sizeof(float));
  for (int i = 0; i < COUNT; ++i) in[i] = (float)(rank + i);
  if (copro_allreduce(in, out, COUNT, copro_float32, copro_sum, comms[rank], NULL) != copro_success) {
    fail("allreduce failed", rank);
  }
  for (int i = 0; i < COUNT; ++i) {
    float expect = (float)(0 + 1 + 2 + 3 + NRANKS * i);
    if (out[i] != expect) {
      fail("allreduce wrong result", rank);
      break;
    }
  }
  /* Asynchronous form. */
  copro_request_t req = NULL;
  if (copro_allreduce(in, out, COUNT, copro_float32, copro_max, comms[rank], &req) != copro_success ||
      copro_request_free(req) != copro_success || out[0] != (float)(NRANKS - 1)) {
    fail("async allreduce", rank);
  }
  /* Split into even and odd ranks; each group of two all-reduces its ranks. */
  copro_comm_t sub = NULL;
  if (copro_comm_split(comms[rank], rank % 2, rank, &sub) != copro_success || sub == NULL) {
    fail("split failed", rank);
  } else {
    int sub_size = 0;
    copro_comm_size(sub, &sub_size);
    int v = rank;
    int sum = 0;
    if (sub_size != 2 || copro_allreduce(&v, &sum, 1, copro_int32, copro_sum, sub, NULL) != copro_success ||
        sum != (rank % 2 == 0 ? 0 + 2 : 1 + 3)) {
      fail("split allreduce", rank);
    }
    copro_comm_destroy(sub);
  }
  /* Capture an all-reduce, then replay it on new input: the replay reads the buffer when it runs. */
  copro_graph_t graph = NULL;
  size_t calls = 0;
  copro_request_t captured = (copro_request_t)(void*)&not_null;
  if (copro_capture_begin(comms[rank]) != copro_success ||
      copro_allreduce(in, out, COUNT, copro_float32, copro_sum, comms[rank], &captured) != copro_success ||
      captured != NULL || copro_capture_end(comms[rank], &graph) != copro_success ||
      copro_graph_size(graph, &calls) != copro_success || calls != 1) {
    fail("capture", rank);
  } else {
    for (int round = 1; round <= 3; ++round) {
      for (int i = 0; i < COUNT; ++i) in[i] = (float)(round * rank + i);
      if (copro_graph_replay(graph, NULL) != copro_success || out[5] != (float)(round * (0 + 1 + 2 + 3) + NRANKS * 5)) {
        fail("replay", rank);
        break;
      }
    }
  }
  copro_graph_free(graph);
  /* An error names the problem: a NULL buffer with a non-zero count. */
  copro_result_t r = copro_allreduce(NULL, out, COUNT, copro_float32, copro_sum, comms[rank], NULL);
  if (r != copro_invalid_argument || strstr(copro_last_error(), "null") == NULL) {
    fail("NULL buffer not rejected with a message", rank);
  }
  free(in);
  free(out);
  return NULL;
}

int main(void) {
  printf("copro %s C API smoke test\n", copro_version());
  if (copro_comm_init_all("inproc", NRANKS, comms) != copro_success) {
    fprintf(stderr, "init failed: %s\n", copro_last_error());
    return 1;
  }
  pthread_t threads[NRANKS];
  for (int r = 0; r < NRANKS; ++r) pthread_create(&threads[r], NULL, rank_main, (void*)(size_t)r);
  for (int r = 0; r < NRANKS; ++r) pthread_join(threads[r], NULL);
  if (copro_comm_init_all("no-such-backend", 1, comms) != copro_unsupported) {
    fprintf(stderr, "unknown backend not rejected\n");
    failures++;
  } else {
    printf("unknown backend: %s\n", copro_last_error());
  }
  for (int r = 0; r < NRANKS; ++r) copro_comm_destroy(comms[r]);
  printf("%s\n", failures == 0 ? "PASS" : "FAIL");
  return failures == 0 ? 0 : 1;
}
