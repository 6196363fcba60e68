// MoE routing files (MoeRouting::fromFile, docs/moe.md): every number is range-checked before use, the file
// must be a regular file under the size limit, and topk cannot exceed the experts. Each error names the file,
// the line, the field, its value and the allowed range.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "copro/collectives/moe.hpp"
#include "copro/core/status.hpp"

namespace copro {
namespace {

using collectives::MoeConfig;
using collectives::MoeRouting;
using collectives::MoeRoutingLimits;
using core::Error;
using core::ErrorCode;

/// Writes `text` to a temp file named after the running test and returns its path.
std::string writeRouting(const std::string& text) {
  const std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
  const std::string path = ::testing::TempDir() + "moe_limits_" + name + ".csv";
  std::FILE* f = std::fopen(path.c_str(), "w");
  EXPECT_NE(f, nullptr);
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return path;
}

/// The run of the issue: 8 ranks, 16 tokens, 32 experts.
MoeRoutingLimits run8x16x32() {
  MoeRoutingLimits l;
  l.ranks = 8;
  l.tokens = 16;
  l.experts = 32;
  return l;
}

/// fromFile's error; fails the test when there is none or the code differs.
std::string routingError(const std::string& path, const MoeRoutingLimits& limits, ErrorCode code) {
  try {
    (void)MoeRouting::fromFile(path, limits);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.message();
    return e.message();
  }
  ADD_FAILURE() << "no error for " << path;
  return "";
}

void expectHas(const std::string& message, const std::string& part) {
  EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

TEST(MoeRoutingLimits, HugeTokenIsRejectedBeforeAllocating) {
  const std::string path = writeRouting("0,2000000000,1\n");
  const std::string m = routingError(path, run8x16x32(), ErrorCode::kParseError);
  expectHas(m, "'" + path + "' line 1: token 2000000000 is out of range [0, 16)");
  expectHas(m, "--tokens");
}

TEST(MoeRoutingLimits, HugeTokenWithoutLimitsIsAMissingTokenNotAnAllocation) {
  const std::string path = writeRouting("0,2000000000,1\n");
  const std::string m = routingError(path, MoeRoutingLimits{}, ErrorCode::kParseError);
  expectHas(m, "rank 0 token 0 is missing");
}

TEST(MoeRoutingLimits, ExpertIdDoesNotWrapAround) {
  const std::string path = writeRouting("0,0,4294967297\n");
  expectHas(routingError(path, run8x16x32(), ErrorCode::kParseError),
            "line 1: expert id 4294967297 is out of range [-1, 32)");
  // Without a run's experts the id is still bounded by int32.
  expectHas(routingError(path, MoeRoutingLimits{}, ErrorCode::kParseError),
            "expert id 4294967297 is out of range [-1, 2147483647)");
}

TEST(MoeRoutingLimits, NumbersBeyond64BitsAreOutOfRange) {
  const std::string path = writeRouting("0,0,99999999999999999999999\n");
  expectHas(routingError(path, run8x16x32(), ErrorCode::kParseError),
            "expert id '99999999999999999999999' is out of range [-1, 32)");
}

TEST(MoeRoutingLimits, NotANumberNamesTheField) {
  expectHas(routingError(writeRouting("0,0,1,2;0.5,x\n"), run8x16x32(), ErrorCode::kParseError),
            "line 1: 'x' is not a number (a weight field)");
  expectHas(routingError(writeRouting("0,1e3,1\n"), run8x16x32(), ErrorCode::kParseError),
            "line 1: '1e3' is not a number (the token field)");
}

TEST(MoeRoutingLimits, ExpertIdBelowMinusOne) {
  const std::string path = writeRouting("0,0,-2\n");
  expectHas(routingError(path, run8x16x32(), ErrorCode::kParseError), "expert id -2 is out of range [-1, 32)");
}

TEST(MoeRoutingLimits, RankBeyondTheRun) {
  const std::string path = writeRouting("8,0,1\n");
  const std::string m = routingError(path, run8x16x32(), ErrorCode::kParseError);
  expectHas(m, "line 1: rank 8 is out of range [0, 8)");
  expectHas(m, "--ep");
}

TEST(MoeRoutingLimits, NegativeRankAndToken) {
  expectHas(routingError(writeRouting("-1,0,1\n"), run8x16x32(), ErrorCode::kParseError),
            "rank -1 is out of range [0, 8)");
}

TEST(MoeRoutingLimits, BadWeights) {
  for (const char* w : {"nan", "inf", "-inf", "-0.5", "1e300"}) {
    const std::string path = writeRouting("0,0,1,2;0.5," + std::string(w) + "\n");
    const std::string m = routingError(path, run8x16x32(), ErrorCode::kParseError);
    expectHas(m, "line 1: weight " + std::string(w) + " is out of range");
    expectHas(m, "finite and >= 0");
  }
}

TEST(MoeRoutingLimits, TopkAboveTheExperts) {
  MoeRoutingLimits l = run8x16x32();
  l.experts = 2;
  expectHas(routingError(writeRouting("0,0,0,1,-1\n"), l, ErrorCode::kParseError),
            "topk 3 (expert ids per line) is out of range [1, 2]");
}

TEST(MoeRoutingLimits, MoreLinesThanRanksTimesTokens) {
  MoeRoutingLimits l;
  l.ranks = 1;
  l.tokens = 1;
  l.experts = 4;
  expectHas(routingError(writeRouting("0,0,1\n0,0,2\n"), l, ErrorCode::kParseError),
            "line 2: more lines than ranks x tokens (1)");
}

TEST(MoeRoutingLimits, DuplicateAndMissingTokens) {
  expectHas(routingError(writeRouting("0,0,1\n0,1,2\n0,1,3\n"), MoeRoutingLimits{}, ErrorCode::kParseError),
            "line 3: rank 0 token 1 appears twice");
  expectHas(routingError(writeRouting("0,0,1\n0,2,2\n"), MoeRoutingLimits{}, ErrorCode::kParseError),
            "rank 0 token 1 is missing");
  expectHas(routingError(writeRouting("0,0,1\n0,1,2\n1,0,3\n"), MoeRoutingLimits{}, ErrorCode::kParseError),
            "rank 1 token 1 is missing");
}

TEST(MoeRoutingLimits, NotARegularFile) {
  const std::string dir = ::testing::TempDir() + "moe_limits_dir";
  std::filesystem::create_directories(dir);
  expectHas(routingError(dir, run8x16x32(), ErrorCode::kInvalidArgument), "is not a regular file");
  expectHas(routingError(dir + "/absent.csv", run8x16x32(), ErrorCode::kInvalidArgument), "no such file");
}

TEST(MoeRoutingLimits, FileOverTheSizeLimit) {
  const std::string path = writeRouting("0,0,1\n");
  std::filesystem::resize_file(path, collectives::kMoeRoutingFileMaxBytes + 1);
  const std::string m = routingError(path, run8x16x32(), ErrorCode::kInvalidArgument);
  expectHas(m, "is 268435457 bytes; the limit is 268435456 (256 MiB)");
  std::filesystem::remove(path);
}

TEST(MoeRoutingLimits, AGoodFileWithinTheLimitsReads) {
  const MoeRouting r = MoeRouting::fromFile(writeRouting("0,0,1,31;0.25,0.75\n0,1,-1,0\n"), [] {
    MoeRoutingLimits l;
    l.ranks = 1;
    l.tokens = 2;
    l.experts = 32;
    return l;
  }());
  EXPECT_EQ(r.numTokens, 2);
  EXPECT_EQ(r.topk, 2);
  EXPECT_EQ(r.topkIdx[0], (std::vector<std::int32_t>{1, 31, -1, 0}));
  EXPECT_EQ(r.weights[0][1], 0.75F);
  EXPECT_EQ(r.weights[0][2], 0.5F);
}

TEST(MoeRoutingLimits, TopkAboveTheExpertsInTheConfigAndGenerators) {
  MoeConfig c;
  c.hidden = 256;
  c.topk = 300;
  c.numExperts = 256;
  try {
    collectives::checkMoeConfig(c, 8);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    expectHas(e.message(), "topk 300 is out of range [1, 256]");
  }
  try {
    (void)MoeRouting::uniform(8, 4, 300, 256, 0, {}, 1);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    expectHas(e.message(), "topk 300 is out of range [1, 256]");
  }
}

}  // namespace
}  // namespace copro
