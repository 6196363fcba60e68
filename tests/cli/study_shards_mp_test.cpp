// study_shards_mp_test: shardedFor (tools/study_common.hpp) under `mpirun -np 2`: every rank gets every
// point's result in order, each point ran on exactly the rank that owns it, and an error thrown on rank 1
// comes out on both ranks as the same core::Error, naming the point and the rank, without a hang.
#include <cstdio>
#include <string>
#include <vector>

#include "copro/core/status.hpp"
#include "study_common.hpp"

namespace {

using copro::core::Error;
using copro::core::ErrorCode;
namespace study = copro::tools::study;

int failures = 0;

void check(bool ok, const std::string& what, int rank) {
  if (ok) return;
  std::fprintf(stderr, "rank %d: FAILED: %s\n", rank, what.c_str());
  ++failures;
}

}  // namespace

int main() {
  const copro::tools::SweepShards shards;
  const int rank = shards.rank();
  study::StudyOptions o;
  o.shards = &shards;
  check(shards.size() == 2, "expected 2 MPI ranks, got " + std::to_string(shards.size()), rank);
  // Results: point i says which rank ran it.
  const auto out =
      study::shardedFor(7, o, [&](std::size_t i) { return std::to_string(i) + "@" + std::to_string(rank); });
  check(out.size() == 7, "7 results", rank);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const std::string want = std::to_string(i) + "@" + std::to_string(i % 2);
    check(out[i] == want, "point " + std::to_string(i) + " gave '" + out[i] + "', expected '" + want + "'", rank);
  }
  // Errors: points 3 (rank 1) and 5 (rank 1) throw; every rank rethrows point 3's.
  try {
    (void)study::shardedFor(6, o, [&](std::size_t i) -> std::string {
      if (i == 3 || i == 5) throw Error(ErrorCode::kInvalidArgument, "bad point " + std::to_string(i));
      return "ok";
    });
    check(false, "an error on rank 1 did not reach rank " + std::to_string(rank), rank);
  } catch (const Error& e) {
    check(e.code() == ErrorCode::kInvalidArgument, std::string("error code kept: ") + e.what(), rank);
    check(std::string(e.what()).find("bad point 3 (point 3, on MPI rank 1)") != std::string::npos,
          std::string("error names point 3 and rank 1: ") + e.what(), rank);
  }
  if (failures == 0) std::printf("rank %d: sharded results and errors as expected\n", rank);
  return failures == 0 ? 0 : 1;
}
