#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "copro/core/config.hpp"
#include "copro/core/log.hpp"
#include "copro/core/status.hpp"
#include "copro/core/units.hpp"

namespace copro::core {
namespace {

TEST(Status, CarriesCodeAndMessage) {
  Status ok;
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.toString(), "ok");
  Status bad(ErrorCode::kTimeout, "rank 3 never entered");
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(bad.toString(), "timeout: rank 3 never entered");
  try {
    bad.throwIfError();
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kTimeout);
    EXPECT_EQ(e.message(), "rank 3 never entered");
    EXPECT_STREQ(e.what(), "timeout: rank 3 never entered");
  }
}

TEST(Units, ParsesAndFormatsBytes) {
  EXPECT_EQ(parseBytes("4097"), 4097U);
  EXPECT_EQ(parseBytes("64M"), 64ULL << 20);
  EXPECT_EQ(parseBytes("1K"), 1024U);
  EXPECT_EQ(parseBytes("2GiB"), 2ULL << 30);
  // Every CLI takes K/M/G, Ki/Mi/Gi and KiB/MiB/GiB alike (powers of 1024, as nccl-tests' -b/-e).
  for (const char* same : {"1M", "1Mi", "1MiB", "1MB", "1m", "1mib"}) EXPECT_EQ(parseBytes(same), 1ULL << 20) << same;
  EXPECT_EQ(parseBytes("3Ki"), 3072U);
  EXPECT_EQ(parseBytes("1Gi"), 1ULL << 30);
  EXPECT_THROW(parseBytes("1Xi"), Error);
  EXPECT_THROW(parseBytes("1i"), Error);
  EXPECT_EQ(parseBytes("1.5M"), 3ULL << 19);
  EXPECT_EQ(parseBytes(" 8B "), 8U);
  EXPECT_EQ(formatBytes(64ULL << 20), "64M");
  EXPECT_EQ(formatBytes(4097), "4097");
  EXPECT_EQ(formatBytes(0), "0");
  EXPECT_THROW(parseBytes("12Q"), Error);
  EXPECT_THROW(parseBytes(""), Error);
  EXPECT_THROW(parseBytes("-1"), Error);
  EXPECT_THROW(parseBytes("0.3"), Error);
  try {
    parseBytes("abc");
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_NE(e.message().find("'abc'"), std::string::npos);
  }
}

TEST(Units, TimeAndBandwidth) {
  EXPECT_EQ(Time::us(1.5).picoseconds(), 1500000);
  EXPECT_EQ(Time::ns(3).picoseconds(), 3000);
  EXPECT_EQ((Time::ms(1) + Time::us(1)).picoseconds(), 1001000000);
  EXPECT_DOUBLE_EQ(Time::sec(2).seconds(), 2.0);
  // 400 Gb/s = 50 GB/s: 50 MB take 1 ms.
  EXPECT_EQ(Bandwidth::gbitps(400).transferTime(50'000'000).picoseconds(), Time::ms(1).picoseconds());
  EXPECT_DOUBLE_EQ(Bandwidth::gbps(160).gigabytesPerSecond(), 160.0);
  EXPECT_EQ(parseTime("200ms").picoseconds(), Time::ms(200).picoseconds());
  EXPECT_EQ(parseTime("3").picoseconds(), Time::sec(3).picoseconds());
  EXPECT_THROW(parseTime("3 parsecs"), Error);
}

TEST(Config, SetsFieldsByVariableOrShortName) {
  Config c;
  // Thread counts are bounded (core/limits.hpp): a typo is an error naming the limit, not a million threads.
  try {
    c.set("COPRO_THREADS", "1000000");
    ADD_FAILURE() << "COPRO_THREADS=1000000 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("0 to 4096"), std::string::npos) << e.message();
  }
  EXPECT_THROW(c.set("COPRO_THREADS", "2.5"), Error);
  c.set("COPRO_THREADS", "8");
  EXPECT_EQ(c.threads, 8);
  c.set("COPRO_THREADS", "0");
  c.set("COPRO_TIMEOUT", "2.5");
  EXPECT_DOUBLE_EQ(c.timeoutSec, 2.5);
  c.set("timeout", "500ms");
  EXPECT_DOUBLE_EQ(c.timeoutSec, 0.5);
  c.set("chunk_size", "256K");
  EXPECT_EQ(c.chunkBytes, 256U * 1024);
  c.set("COPRO_CHECK_CALLS", "1");
  EXPECT_TRUE(c.checkCalls);
  c.set("COPRO_INITIATION", "proxy");
  EXPECT_EQ(c.initiation, "proxy");
  EXPECT_THROW(c.set("COPRO_INITIATION", "telepathy"), Error);
  EXPECT_THROW(c.set("COPRO_TIMEOUT", "-1"), Error);
  EXPECT_THROW(c.set("COPRO_DEBUG", "LOUD"), Error);
  try {
    c.set("COPRO_TIMEOTU", "1");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("did you mean COPRO_TIMEOUT"), std::string::npos) << e.message();
  }
}

TEST(Config, EveryVariableIsDocumentedAndPrinted) {
  Config c;
  auto vals = c.values();
  const auto& vars = Config::variables();
  ASSERT_EQ(vals.size(), vars.size());
  for (std::size_t i = 0; i < vars.size(); ++i) {
    EXPECT_EQ(vals[i].first, vars[i].name);
    EXPECT_FALSE(vars[i].doc.empty()) << vars[i].name;
    EXPECT_EQ(vars[i].name.substr(0, 6), "COPRO_");
    // Setting the documented default round-trips to the printed value.
    Config d;
    if (!vars[i].defaultValue.empty()) d.set(vars[i].name, vars[i].defaultValue);
    EXPECT_EQ(d.values()[i].second, vals[i].second) << vars[i].name;
  }
}

TEST(Config, ReadsEnvironment) {
  ::setenv("COPRO_TIMEOUT", "7", 1);
  ::setenv("COPRO_ALGO", "allreduce=ring", 1);
  Config c = Config::fromEnvironment();
  EXPECT_DOUBLE_EQ(c.timeoutSec, 7.0);
  EXPECT_EQ(c.algo, "allreduce=ring");
  ::setenv("COPRO_TIMEOUT", "soon", 1);
  EXPECT_THROW(Config::fromEnvironment(), Error);
  ::unsetenv("COPRO_TIMEOUT");
  ::unsetenv("COPRO_ALGO");
}

// One malformed value of each kind of field (level, mask, duration, enum, whole number, flag, size, rate,
// name): the error names the variable, whether it comes from set(), the environment or readEnvironment.
TEST(Config, BadValueOfEachClassNamesTheVariable) {
  const std::vector<std::pair<std::string, std::string>> bad = {{"COPRO_DEBUG", "LOUD"},
                                                                {"COPRO_DEBUG_SUBSYS", "NETWORKING"},
                                                                {"COPRO_TIMEOUT", "soon"},
                                                                {"COPRO_INITIATION", "telepathy"},
                                                                {"COPRO_PXN", "3"},
                                                                {"COPRO_THREADS", "-2"},
                                                                {"COPRO_VALIDATE", "maybe"},
                                                                {"COPRO_CHUNK_SIZE", "lots"},
                                                                {"COPRO_PLAN_BW_GBPS", "fast"},
                                                                {"COPRO_IB_GID_INDEX", "300"},
                                                                {"COPRO_SHM_CMA", "2"},
                                                                {"COPRO_RANK", "-1"},
                                                                {"COPRO_WORLD_SIZE", "0"},
                                                                {"COPRO_NODE_ID", "node3"},
                                                                {"COPRO_TORCH_TRANSPORT", "shm ucx"},
                                                                {"COPRO_NCCL_BACKEND", ""},
                                                                {"COPRO_VERBS_EMU_FAULT", "die"},
                                                                {"COPRO_VERBS_PROVIDER", "mlx"}};
  for (const auto& [name, value] : bad) {
    Config c;
    try {
      c.set(name, value);
      ADD_FAILURE() << name << "='" << value << "' was accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(name), std::string::npos) << e.message();
    }
    ::setenv(name.c_str(), value.c_str(), 1);
    try {
      (void)Config::fromEnvironment();
      ADD_FAILURE() << name << "='" << value << "' from the environment was accepted";
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(name), std::string::npos) << e.message();
    }
    Config r;
    EXPECT_THROW(r.readEnvironment({name}), Error) << name;
    ::unsetenv(name.c_str());
  }
}

TEST(Config, ReadEnvironmentKeepsGivenValuesAndReportsWhatIsSet) {
  ::setenv("COPRO_NODE_ID", "3", 1);
  ::setenv("COPRO_ROOT_ADDR", "10.0.0.1:29400", 1);
  Config c;
  c.set("COPRO_ROOT_ADDR", "127.0.0.1:1");
  EXPECT_FALSE(c.isSet("COPRO_NODE_ID"));
  c.readEnvironment({"COPRO_NODE_ID", "COPRO_ROOT_ADDR", "COPRO_RANK"});
  EXPECT_EQ(c.nodeId, 3);
  EXPECT_EQ(c.rootAddr, "127.0.0.1:1");  // given by set(): the environment does not override it
  EXPECT_TRUE(c.isSet("COPRO_NODE_ID"));
  EXPECT_FALSE(c.isSet("COPRO_RANK"));
  EXPECT_EQ(c.rank, -1);
  EXPECT_TRUE(Config::fromEnvironment().isSet("COPRO_NODE_ID"));
  EXPECT_FALSE(Config::fromEnvironment().isSet("COPRO_TIMEOUT"));
  EXPECT_THROW(c.readEnvironment({"COPRO_NO_SUCH_THING"}), Error);
  ::unsetenv("COPRO_NODE_ID");
  ::unsetenv("COPRO_ROOT_ADDR");
  // The secret is never printed.
  Config t;
  t.set("COPRO_BOOTSTRAP_TOKEN", "hunter2");
  for (const auto& [name, value] : t.values()) EXPECT_EQ(value.find("hunter2"), std::string::npos) << name;
}

// docs/config.md's table lists every variable of the table exactly once, and nothing else.
TEST(Config, DocsTableListsEachVariableOnce) {
  std::ifstream in(std::string(COPRO_DOCS_DIR) + "/config.md");
  ASSERT_TRUE(in) << COPRO_DOCS_DIR "/config.md";
  std::map<std::string, int> rows;
  for (std::string line; std::getline(in, line) && line.rfind("## ", 0) != 0;) {  // the first table
    if (line.rfind("| `COPRO_", 0) == 0) ++rows[line.substr(3, line.find('`', 3) - 3)];
  }
  for (const auto& v : Config::variables()) {
    EXPECT_EQ(rows[std::string(v.name)], 1) << v.name << " rows in docs/config.md";
    rows.erase(std::string(v.name));
  }
  for (const auto& [name, n] : rows) {
    if (n > 0) ADD_FAILURE() << "docs/config.md lists " << name << ", which Config does not know";
  }
}

TEST(Config, NearestName) {
  EXPECT_EQ(nearestName("bandwith", {"bandwidth", "latency"}), "bandwidth");
  EXPECT_EQ(nearestName("zzzzzz", {"bandwidth", "latency"}), "");
}

TEST(Log, LevelsAndSubsystems) {
  EXPECT_EQ(parseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(parseLogLevel("TRACE"), LogLevel::kTrace);
  EXPECT_THROW(parseLogLevel("chatty"), Error);
  EXPECT_EQ(parseLogSubsysMask("INIT,COLL"),
            static_cast<std::uint32_t>(LogSubsys::kInit) | static_cast<std::uint32_t>(LogSubsys::kColl));
  EXPECT_EQ(parseLogSubsysMask("^COLL") & static_cast<std::uint32_t>(LogSubsys::kColl), 0U);
  EXPECT_THROW(parseLogSubsysMask("NETWORKING"), Error);
  setLogFilter(LogLevel::kInfo, static_cast<std::uint32_t>(LogSubsys::kColl));
  EXPECT_TRUE(logEnabled(LogLevel::kInfo, LogSubsys::kColl));
  EXPECT_FALSE(logEnabled(LogLevel::kTrace, LogSubsys::kColl));
  EXPECT_FALSE(logEnabled(LogLevel::kInfo, LogSubsys::kInit));
  testing::internal::CaptureStderr();
  COPRO_LOG(Info, Coll, "ring step " << 3);
  COPRO_LOG(Info, Init, "hidden");
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("INFO COLL"), std::string::npos) << out;
  EXPECT_NE(out.find("ring step 3"), std::string::npos);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  setLogFilter(LogLevel::kWarn, static_cast<std::uint32_t>(LogSubsys::kAll));
}

}  // namespace
}  // namespace copro::core
