// The default conformance run: every collective x algorithm x data type x op pairwise, at rank counts
// {1, 2, 3, 4, 5, 7, 8, 16} and counts {0, 1, 7, 4097}, in and out of place, through the public API on
// the inproc backend, each output checked against a float64 reference. The multi-process backends run the
// same matrix under mpirun: mp_conformance.cpp (docs/conformance.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "conformance/harness.hpp"
#include "copro/transport/lanemachine.hpp"

namespace copro::test {
namespace {

const std::vector<int> kRanks = {1, 2, 3, 4, 5, 7, 8, 16};
const std::vector<std::uint64_t> kCounts = {0, 1, 7, 4097};
constexpr std::uint64_t kSeed = 20261129;

TEST(Conformance, CasesArePairwiseComplete) {
  auto cases = pairwiseCases(kRanks, kCounts);
  auto missing = uncoveredPairs(cases, kRanks, kCounts);
  std::string first;
  for (std::size_t i = 0; i < missing.size() && i < 10; ++i) first += "\n  " + missing[i];
  EXPECT_TRUE(missing.empty()) << missing.size() << " pairs uncovered, e.g." << first;
  EXPECT_GT(cases.size(), 100U);
}

class PairwiseCase : public ::testing::TestWithParam<Case> {};

TEST_P(PairwiseCase, MatchesReference) {
  const Case& c = GetParam();
  std::string err = runCase(c, kSeed);
  EXPECT_TRUE(err.empty()) << c.describe() << " (seed " << kSeed << "): " << err;
}

std::string caseName(const ::testing::TestParamInfo<Case>& info) {
  std::string s = std::to_string(info.index) + "_" + info.param.describe();
  for (auto& ch : s) {
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(Inproc, PairwiseCase, ::testing::ValuesIn(pairwiseCases(kRanks, kCounts)), caseName);

/// The same matrix through the portable lane machine that the GPU kernels run (docs/gpu.md), on host
/// threads: a wrong op meaning, ordering or semaphore rule of the device lanes fails here, on the CPU.
std::vector<Case> laneMachineCases() {
  std::vector<Case> cases = pairwiseCases(kRanks, kCounts);
  for (Case& c : cases) c.backend = "lanemachine";
  return cases;
}

INSTANTIATE_TEST_SUITE_P(LaneMachine, PairwiseCase, ::testing::ValuesIn(laneMachineCases()), caseName);

/// The LL all-reduce (oneshot_ll) for every data type and op, at 2-4 ranks, from one element up to the LL
/// limit (COPRO_LL_MAX_BYTES; the ctest entry copro_conformance_ll_slot raises it to the mailbox slot), in
/// and out of place, on inproc; and the LL all-gather and broadcast (oneshot_ll). Every case must be one the
/// planner lets LL run.
std::vector<Case> llCases() {
  Case probe;
  const std::uint64_t limit = caseLLMaxBytes(probe);
  std::vector<Case> out;
  for (int t = 0; t < core::kNumDataTypes; ++t) {
    for (int o = 0; o < core::kNumReduceOps; ++o) {
      for (int ranks : {2, 3, 4}) {
        Case c;
        c.algo = "oneshot_ll";
        c.dtype = static_cast<DataType>(t);
        c.op = static_cast<ReduceOp>(o);
        c.ranks = ranks;
        c.inPlace = (t + o + ranks) % 2 == 0;
        for (std::uint64_t count : {std::uint64_t{1}, limit / core::dataTypeSize(c.dtype)}) {
          c.count = count;
          if (caseSupported(c)) out.push_back(c);
        }
      }
    }
  }
  // All-gather and broadcast over LL (oneshot_ll): they move bytes and reduce nothing, so two data types
  // suffice; roots 0 and 1.
  for (const collectives::CollectiveKind kind :
       {collectives::CollectiveKind::kAllGather, collectives::CollectiveKind::kBroadcast}) {
    for (const DataType dtype : {DataType::kUint8, DataType::kFloat64}) {
      for (int ranks : {2, 3, 4}) {
        for (int place = 0; place < 2; ++place) {
          Case c;
          c.kind = kind;
          c.algo = "oneshot_ll";
          c.dtype = dtype;
          c.ranks = ranks;
          c.inPlace = place == 1;
          c.root = (ranks + place) % ranks;
          for (std::uint64_t count : {std::uint64_t{1}, std::uint64_t{13}, limit / core::dataTypeSize(dtype)}) {
            c.count = count;
            if (caseSupported(c)) out.push_back(c);
          }
        }
      }
    }
  }
  return out;
}

TEST(LLConformance, CoversEveryDataTypeUpToTheLimit) {
  const std::vector<Case> cases = llCases();
  EXPECT_GE(cases.size(), static_cast<std::size_t>(core::kNumDataTypes) * 3 * 2);
  std::uint64_t largest = 0;
  for (const Case& c : cases) largest = std::max(largest, c.count * core::dataTypeSize(c.dtype));
  EXPECT_EQ(largest, caseLLMaxBytes(Case{}));
}

INSTANTIATE_TEST_SUITE_P(LL, PairwiseCase, ::testing::ValuesIn(llCases()), caseName);

}  // namespace
}  // namespace copro::test

namespace copro::test {
namespace {

/// The same matrix on the `cuda` backend (one kernel per call, docs/gpu.md): only in the ctest entry
/// cuda_conformance (label gpu), which sets CUDA_CONFORMANCE=1, and only where a GPU is visible.
bool cudaRequested() {
  return std::getenv("CUDA_CONFORMANCE") != nullptr;
}
bool gpuVisible() {
  const std::string s = transport::cudaStatus();
  return s.rfind("compiled, ", 0) == 0 && s.find("no device") == std::string::npos;
}

std::vector<Case> cudaCases() {
  if (!cudaRequested() || !gpuVisible()) return {};
  std::vector<Case> cases = pairwiseCases(kRanks, kCounts);
  for (Case& c : cases) c.backend = "cuda";
  return cases;
}

TEST(CudaConformance, HasAGpu) {
  if (!cudaRequested()) GTEST_SKIP() << "the cuda matrix runs in the ctest entry cuda_conformance (label gpu)";
  if (!gpuVisible()) GTEST_SKIP() << "no cuda matrix: " << transport::cudaStatus();
  EXPECT_GT(cudaCases().size(), 100U);
}

INSTANTIATE_TEST_SUITE_P(Cuda, PairwiseCase, ::testing::ValuesIn(cudaCases()), caseName);

}  // namespace
}  // namespace copro::test
