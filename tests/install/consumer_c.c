/* The external C consumer of the install test, built with `pkg-config --cflags --libs copro` alone: a 2-rank
 * all-reduce (ranks in this process, started as non-blocking requests) and the asynchronous error query. */
#include <stdio.h>

#include "copro/copro.h"

int main(void) {
  copro_comm_t comms[2];
  if (copro_comm_init_all("inproc", 2, comms) != copro_success) {
    fprintf(stderr, "init: %s\n", copro_last_error());
    return 1;
  }
  int in[2][64], out[2][64];
  copro_request_t req[2];
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 64; ++i) in[r][i] = (r + 1) * i;
    if (copro_allreduce(in[r], out[r], 64, copro_int32, copro_sum, comms[r], &req[r]) != copro_success) {
      fprintf(stderr, "allreduce: %s\n", copro_last_error());
      return 1;
    }
  }
  int bad = 0;
  for (int r = 0; r < 2; ++r) {
    copro_result_t async_error = copro_internal_error;
    bad |= copro_request_free(req[r]) != copro_success;
    bad |= copro_comm_get_async_error(comms[r], &async_error) != copro_success || async_error != copro_success;
    for (int i = 0; i < 64; ++i) bad |= out[r][i] != 3 * i;
    copro_comm_destroy(comms[r]);
  }
  printf("consumer_c: copro %s: 2-rank all-reduce %s\n", copro_version(), bad ? "WRONG" : "ok");
  return bad;
}
