/* An external C program against the installed NCCL-compatible API: copro::nccl from find_package(copro),
 * `#include <nccl.h>` from <prefix>/include/copro/nccl. Two ranks of ncclCommInitAll (inproc), one thread
 * drives both through a group; exits 1 unless both all-reduce results are right. */
#include <nccl.h>
#include <stdio.h>

int main(void) {
  ncclComm_t comms[2];
  float in[2][3] = {{1, 2, 3}, {10, 20, 30}};
  float out[2][3] = {{0}};
  if (ncclCommInitAll(comms, 2, NULL) != ncclSuccess) {
    fprintf(stderr, "ncclCommInitAll: %s\n", ncclGetLastError(NULL));
    return 1;
  }
  ncclGroupStart();
  for (int r = 0; r < 2; ++r) ncclAllReduce(in[r], out[r], 3, ncclFloat, ncclSum, comms[r], NULL);
  ncclResult_t res = ncclGroupEnd();
  int bad = res != ncclSuccess;
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 3; ++i) bad |= out[r][i] != 11.0f * (float)(i + 1);
    ncclCommDestroy(comms[r]);
  }
  printf("consumer_nccl: %s\n", bad ? "wrong" : "ok");
  return bad;
}
