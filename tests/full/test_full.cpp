// The `full` label: the whole cross product, plus counts of 1 Mi + 13 (ctest -L full).
#include <gtest/gtest.h>

#include "conformance/harness.hpp"

namespace copro::test {
namespace {

constexpr std::uint64_t kSeed = 77;

TEST(Full, CrossProduct) {
  auto cases = crossProductCases({1, 2, 3, 4, 5, 7, 8, 16}, {0, 1, 7, 4097});
  std::printf("full cross product: %zu cases (seed %llu)\n", cases.size(), static_cast<unsigned long long>(kSeed));
  int failures = 0;
  for (const auto& c : cases) {
    std::string err = runCase(c, kSeed);
    if (!err.empty()) {
      ADD_FAILURE() << c.describe() << ": " << err;
      if (++failures > 20) break;
    }
  }
}

TEST(Full, LargeCounts) {
  for (const auto& c : crossProductCases({2, 3, 8}, {(1ULL << 20) + 13})) {
    if (c.dtype != DataType::kFloat32 && c.dtype != DataType::kBfloat16 && c.dtype != DataType::kInt32) continue;
    if (c.op != ReduceOp::kSum && c.op != ReduceOp::kAvg) continue;
    std::string err = runCase(c, kSeed);
    EXPECT_TRUE(err.empty()) << c.describe() << ": " << err;
  }
}

}  // namespace
}  // namespace copro::test
