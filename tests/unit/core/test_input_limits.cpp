// Hostile inputs to core's readers (issue 16, docs/config.md "Limits"): the bounded file reader refuses
// devices, directories and oversized files before reading; Program JSON refuses duplicate keys and deep
// nesting; durations that int64 picoseconds cannot hold are errors, not wrapped values.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "copro/core/file_read.hpp"
#include "copro/core/program_json.hpp"
#include "copro/core/status.hpp"
#include "copro/core/units.hpp"

namespace copro::core {
namespace {

std::string errorOf(const auto& f, ErrorCode expected) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), expected) << e.message();
    return e.message();
  }
  ADD_FAILURE() << "no error";
  return {};
}

std::string tempFile(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "input_limits_" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  return path;
}

TEST(BoundedFile, ReadsARegularFile) {
  const std::string path = tempFile("ok.txt", "hello\n");
  EXPECT_EQ(readBoundedFile(path, "test file"), "hello\n");
}

TEST(BoundedFile, RefusesDevicesDirectoriesAndMissingFiles) {
  EXPECT_NE(errorOf([] { (void)readBoundedFile("/dev/zero", "file '/dev/zero'"); }, ErrorCode::kInvalidArgument)
                .find("file '/dev/zero' is not a regular file"),
            std::string::npos);
  EXPECT_NE(errorOf([] { (void)readBoundedFile("/dev/urandom", "x"); }, ErrorCode::kInvalidArgument)
                .find("is not a regular file"),
            std::string::npos);
  EXPECT_NE(errorOf([] { (void)readBoundedFile(::testing::TempDir(), "x"); }, ErrorCode::kInvalidArgument)
                .find("is not a regular file (a directory)"),
            std::string::npos);
  EXPECT_NE(errorOf([] { (void)readBoundedFile("/nonexistent/file.yaml", "x"); }, ErrorCode::kInvalidArgument)
                .find("no such file"),
            std::string::npos);
}

TEST(BoundedFile, RefusesAnOversizedFileBeforeReading) {
  const std::string path = tempFile("big.txt", std::string(101, 'x'));
  const std::string m =
      errorOf([&] { (void)readBoundedFile(path, "file 'big.txt'", 100); }, ErrorCode::kInvalidArgument);
  EXPECT_NE(m.find("file 'big.txt' is 101 bytes; the limit is 100"), std::string::npos) << m;
  // A sparse file far past the default limit: refused from its size alone.
  const std::string sparse = tempFile("sparse.txt", "");
  std::filesystem::resize_file(sparse, kMaxInputFileBytes + 1);
  const std::string m2 = errorOf([&] { (void)readBoundedFile(sparse, "f"); }, ErrorCode::kInvalidArgument);
  EXPECT_NE(m2.find("is " + std::to_string(kMaxInputFileBytes + 1) + " bytes; the limit is " +
                    std::to_string(kMaxInputFileBytes) + " (64 MiB)"),
            std::string::npos)
      << m2;
  std::filesystem::remove(sparse);
}

TEST(ProgramJsonLimits, DuplicateKeysAreErrors) {
  const std::string m =
      errorOf([] { (void)programFromJson(R"({"format": "copro-program", "format": "x"})"); }, ErrorCode::kParseError);
  EXPECT_NE(m.find("duplicate JSON key 'format'"), std::string::npos) << m;
  // Nested objects too; the same key in sibling objects is fine (it fails later, on content).
  const std::string m2 =
      errorOf([] { (void)programFromJson(R"({"header": {"nranks": 1, "nranks": 2}})"); }, ErrorCode::kParseError);
  EXPECT_NE(m2.find("duplicate JSON key 'nranks'"), std::string::npos) << m2;
  const std::string m3 =
      errorOf([] { (void)programFromJson(R"({"a": {"k": 1}, "b": {"k": 1}})"); }, ErrorCode::kParseError);
  EXPECT_EQ(m3.find("duplicate"), std::string::npos) << m3;
}

TEST(ProgramJsonLimits, DeepNestingIsAnErrorNotAStackOverflow) {
  for (const char* open : {"[", "{\"a\":"}) {
    std::string text;
    const int depth = 1000000;
    text.reserve(static_cast<std::size_t>(depth) * 6);
    for (int i = 0; i < depth; ++i) text += open;
    text += "1";
    for (int i = 0; i < depth; ++i) text += open[0] == '[' ? "]" : "}";
    const std::string m = errorOf([&] { (void)programFromJson(text); }, ErrorCode::kParseError);
    EXPECT_NE(m.find("JSON nests deeper than 64 levels"), std::string::npos) << m;
  }
}

TEST(TimeLimits, DurationsPastInt64PicosecondsAreErrors) {
  EXPECT_EQ(parseTime("9e6s").picoseconds(), 9000000000000000000LL);
  for (const char* t : {"9.3e6s", "1e300s", "-1e7s", "1e20ms"}) {
    const std::string m = errorOf([&] { (void)parseTime(t); }, ErrorCode::kParseError);
    EXPECT_NE(m.find("longer than the longest time copro represents"), std::string::npos) << t << ": " << m;
  }
  EXPECT_EQ(parseTime("1.5us").picoseconds(), 1500000);
  EXPECT_EQ(parseTime("7ps").picoseconds(), 7);
}

}  // namespace
}  // namespace copro::core
