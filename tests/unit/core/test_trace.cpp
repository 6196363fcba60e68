// The Chrome-trace writer: exact ps-precision timestamps, valid JSON, deterministic bytes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "copro/core/status.hpp"
#include "copro/core/trace.hpp"

namespace {

using copro::core::Time;
using copro::core::TraceWriter;

TEST(TraceFormat, MicrosecondsAreExactDecimalsOfPicoseconds) {
  EXPECT_EQ(copro::core::formatTraceMicros(Time::ps(0)), "0");
  EXPECT_EQ(copro::core::formatTraceMicros(Time::ps(1)), "0.000001");
  EXPECT_EQ(copro::core::formatTraceMicros(Time::ps(1234567)), "1.234567");
  EXPECT_EQ(copro::core::formatTraceMicros(Time::us(2)), "2");
  EXPECT_EQ(copro::core::formatTraceMicros(Time::ns(1500)), "1.5");
  EXPECT_EQ(copro::core::formatTraceMicros(Time::ps(-2500000)), "-2.5");
  // 10^6 s in ps: large values keep every digit.
  EXPECT_EQ(copro::core::formatTraceMicros(Time::ps(1000000000000000001LL)), "1000000000000.000001");
}

TEST(TraceFormat, StringsAreEscaped) {
  EXPECT_EQ(copro::core::jsonQuoted("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

std::string sampleTrace() {
  std::ostringstream os;
  {
    TraceWriter w(os);
    w.processName(0, "rank 0 (n0.gpu0)");
    w.processSortIndex(0, 0);
    w.threadName(0, 1, "lane 1");
    w.threadSortIndex(0, 1, 1);
    w.complete(0, 1, "put", "op", Time::ps(1500000), Time::ps(250), {{"peer", 3}, {"bytes", std::uint64_t{1} << 40}});
    w.asyncSlice(0, 0, 7, "flow", "flow", Time::ns(10), Time::ns(20), {{"dst", 1}, {"route", "a->b"}});
    w.counter(9, "n0.gpu0->sw0", Time::ns(5), "util", 0.25);
    w.counter(9, "n0.gpu0->sw0", Time::ns(6), "util", std::nan(""));
    w.instant(0, 0, "done", "mark", Time::us(1), {{"ratio", 0.5}});
    EXPECT_EQ(w.eventCount(), 10U);
  }  // the destructor closes the JSON
  return os.str();
}

TEST(TraceWriter, WritesValidJsonWithEveryPhase) {
  const std::string text = sampleTrace();
  nlohmann::json j = nlohmann::json::parse(text);
  const auto& ev = j.at("traceEvents");
  ASSERT_EQ(ev.size(), 10U);
  EXPECT_EQ(j.at("displayTimeUnit"), "ns");
  EXPECT_EQ(ev[0].at("ph"), "M");
  EXPECT_EQ(ev[0].at("name"), "process_name");
  EXPECT_EQ(ev[0].at("args").at("name"), "rank 0 (n0.gpu0)");
  EXPECT_EQ(ev[2].at("args").at("name"), "lane 1");
  const auto& x = ev[4];
  EXPECT_EQ(x.at("ph"), "X");
  EXPECT_EQ(x.at("tid"), 1);
  EXPECT_DOUBLE_EQ(x.at("ts").get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(x.at("dur").get<double>(), 0.00025);
  EXPECT_EQ(x.at("args").at("bytes").get<std::uint64_t>(), std::uint64_t{1} << 40);
  EXPECT_EQ(ev[5].at("ph"), "b");
  EXPECT_EQ(ev[6].at("ph"), "e");
  EXPECT_EQ(ev[5].at("id"), 7);
  EXPECT_EQ(ev[6].at("id"), 7);
  EXPECT_DOUBLE_EQ(ev[6].at("ts").get<double>(), 0.02);
  EXPECT_EQ(ev[5].at("args").at("route"), "a->b");
  EXPECT_EQ(ev[7].at("ph"), "C");
  EXPECT_DOUBLE_EQ(ev[7].at("args").at("util").get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(ev[8].at("args").at("util").get<double>(), 0.0);  // NaN is not JSON
  EXPECT_EQ(ev[9].at("ph"), "i");
}

TEST(TraceWriter, SameEventsGiveSameBytes) {
  EXPECT_EQ(sampleTrace(), sampleTrace());
}

TEST(TraceWriter, EmptyTraceIsValid) {
  std::ostringstream os;
  {
    TraceWriter w(os);
    w.finish();
    w.finish();  // idempotent
  }
  nlohmann::json j = nlohmann::json::parse(os.str());
  EXPECT_TRUE(j.at("traceEvents").empty());
}

TEST(TraceWriter, UnwritablePathNamesTheFile) {
  try {
    TraceWriter w(std::string("/nonexistent-dir/t.json"));
    FAIL() << "expected an error";
  } catch (const copro::Error& e) {
    EXPECT_EQ(e.code(), copro::ErrorCode::kSystemError);
    EXPECT_NE(e.message().find("/nonexistent-dir/t.json"), std::string::npos) << e.message();
  }
}

}  // namespace
