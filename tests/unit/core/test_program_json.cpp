// Tests of Program JSON: exact round trips, the written form, and errors that name the JSON path.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "copro/core/flat_program.hpp"
#include "copro/core/program.hpp"
#include "copro/core/program_json.hpp"
#include "copro/core/status.hpp"
#include "program_fixtures.hpp"

namespace copro::core {
namespace {

using fixtures::on;
using fixtures::self;

/// A Program that uses every op, every field and every buffer kind.
Program kitchenSink() {
  ProgramHeader h;
  h.name = "test.kitchen-sink";
  h.nranks = 3;
  h.numSemaphores = 4;
  h.scratchBytes = 4096;
  h.layoutWords = 6;
  h.inputBytes = {128, 256, 384};
  h.outputBytes = {512, 512, 512};
  h.loadStoreDomains = {{0, 1}, {2}};
  Program p(h, {});
  RankProgram& r0 = p.mutableRank(0);
  r0.addLane(Initiation::kProxy);
  r0.emit(0, Op::put(1, on(1, BufferId::kScratch, 64), self(BufferId::kInput, 8), 32, 2, 3));
  r0.emit(0, Op::put(2, on(2, BufferId::kOutput), self(BufferId::kInput), 16));
  r0.emit(0, Op::get(1, self(BufferId::kScratch, 128), on(1, BufferId::kInput, 16), 24));
  r0.emit(0, Op::flush());
  r0.emit(0, Op::reduce(self(BufferId::kOutput, 8),
                        {self(BufferId::kInput), on(1, BufferId::kScratch, 64), self(BufferId::kScratch, 128)}, 6,
                        DataType::kBfloat16, ReduceOp::kAvg, 2));
  r0.emit(1, Op::wait(3, 12345678901234ULL));
  r0.lanes[1].initiation = Initiation::kOffload;
  RankProgram& r1 = p.mutableRank(1);
  r1.emit(0, Op::multicast({0, 2}, self(extraBuffer(2), 4), self(extraBuffer(0)), 8, 1));
  r1.emit(0, Op::putReduce(2, on(2, BufferId::kScratch, 0), self(BufferId::kInput, 32), 4, DataType::kFloat64,
                           ReduceOp::kMin));
  Op ind = Op::put(0, on(0, BufferId::kOutput), self(BufferId::kInput, 8), 0, 0);
  ind.indirect.bytesSlot = 0;
  ind.indirect.srcOffsetSlot = 3;
  ind.indirect.dstOffsetSlot = 5;
  ind.indirect.bytesScale = 4;
  r1.emit(0, ind);
  r1.emit(1, Op::copy(on(0, BufferId::kLayout, 8), self(BufferId::kLayout), 8));
  r1.emit(1, Op::signal(2, 0, 7));
  // Rank 2 has one empty lane; an op with fields its code does not use still round-trips.
  p.mutableRank(2).addLane();
  Op odd = Op::flush();
  odd.bytes = 5;
  odd.dtype = DataType::kFloat8E5M2;
  p.mutableRank(2).emit(1, odd);
  return p;
}

TEST(ProgramJson, RoundTripIsExact) {
  const Program p = kitchenSink();
  for (int indent : {-1, 0, 1, 2}) {
    const std::string text = programToJson(p, indent);
    const Program back = programFromJson(text);
    EXPECT_EQ(back, p) << "indent " << indent << "\n" << text;
    EXPECT_EQ(programToJson(back, indent), text);
  }
  const Program ring = fixtures::ringAllReduce(5, 3);
  EXPECT_EQ(programFromJson(programToJson(ring)), ring);
  EXPECT_EQ(programFromJson(programToJson(Program())), Program());
}

TEST(ProgramJson, LLProtocolRoundTrips) {
  ProgramHeader h;
  h.nranks = 2;
  h.numSemaphores = 2;
  h.scratchBytes = 16;
  h.inputBytes = {8, 8};
  h.outputBytes = {8, 8};
  Program p(h, {});
  p.mutableRank(0).emit(0, Op::putLL(1, Addr{1, BufferId::kScratch, 0}, Addr{kSelf, BufferId::kInput, 0}, 8, 0));
  p.mutableRank(1).emit(0, Op::waitLL(0, Addr{kSelf, BufferId::kScratch, 0}, 8, 0, 1));
  const std::string text = programToJson(p);
  EXPECT_NE(text.find("\"protocol\":\"ll\""), std::string::npos) << text;
  EXPECT_EQ(programFromJson(text), p);
  // The flat form keeps it too.
  EXPECT_EQ(unflatten(flatten(p.rank(1))), p.rank(1));
  // Simple ops do not mention it.
  EXPECT_EQ(programToJson(fixtures::ringAllReduce(2, 2)).find("protocol"), std::string::npos);
  std::string bad = text;
  bad.replace(bad.find("\"ll\""), 4, "\"lx\"");
  try {
    (void)programFromJson(bad);
    FAIL() << "an unknown protocol was accepted";
  } catch (const Error& e) {
    EXPECT_NE(e.message().find("unknown protocol 'lx'"), std::string::npos) << e.message();
    EXPECT_NE(e.message().find("did you mean 'll'"), std::string::npos) << e.message();
  }
}

TEST(ProgramJson, LazyProgramsAreWrittenLikeMaterializedOnes) {
  const Program ring = fixtures::ringAllGather(4, 8);
  LazyProgram lazy(ring.header(), [&](std::int32_t r, RankProgram& out) { out = ring.rank(r); });
  EXPECT_EQ(programToJson(lazy), programToJson(ring));
}

TEST(ProgramJson, WrittenFormOmitsDefaults) {
  ProgramHeader h;
  h.name = "example";
  h.nranks = 2;
  h.numSemaphores = 1;
  h.inputBytes = {8, 8};
  h.outputBytes = {8, 8};
  Program p(h, {});
  p.mutableRank(0).emit(0, Op::put(1, on(1, BufferId::kOutput), self(BufferId::kInput), 8, 0));
  p.mutableRank(1).emit(0, Op::wait(0, 1));
  p.mutableRank(1).emit(0, Op::flush());
  const std::string expected = R"({
 "format": "copro-program",
 "version": 1,
 "header": {"name":"example","nranks":2,"numSemaphores":1,"scratchBytes":0,"layoutWords":0,"inputBytes":[8,8],"outputBytes":[8,8]},
 "ranks": [
  {"lanes": [
   {"initiation": "device", "ops": [
    {"op":"put","peer":1,"dst":{"rank":1,"buf":"output","offset":0},"src":{"buf":"input","offset":0},"bytes":8,"sem":0,"value":1}
   ]}
  ]},
  {"lanes": [
   {"initiation": "device", "ops": [
    {"op":"wait","sem":0,"value":1},
    {"op":"flush"}
   ]}
  ]}
 ]
}
)";
  EXPECT_EQ(programToJson(p), expected);
  EXPECT_EQ(programFromJson(expected), p);
}

/// The minimal valid document around one op, for error tests.
std::string withOp(const std::string& op) {
  return R"({"format":"copro-program","version":1,"header":{"nranks":1,"numSemaphores":1},
            "ranks":[{"lanes":[{"ops":[{"op":"flush"},)" +
         op + "]}]}]}";
}

void expectParseError(const std::string& text, const std::string& message) {
  try {
    (void)programFromJson(text);
    ADD_FAILURE() << "expected a parse error: " << message;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_EQ(e.message(), message);
  }
}

TEST(ProgramJson, ErrorsNameTheJsonPath) {
  expectParseError(withOp(R"({"op":"putt"})"), "ranks[0].lanes[0].ops[1].op: unknown op 'putt' (did you mean 'put'?)");
  expectParseError(withOp(R"({"op":"put","byts":8})"),
                   "ranks[0].lanes[0].ops[1].byts: unknown key 'byts' (did you mean 'bytes'?)");
  expectParseError(withOp(R"({"op":"put","bytes":"8"})"),
                   "ranks[0].lanes[0].ops[1].bytes: expected an integer, found string");
  expectParseError(withOp(R"({"op":"put","bytes":-8})"), "ranks[0].lanes[0].ops[1].bytes: -8 is negative");
  expectParseError(withOp(R"({"op":"put","bytes":1.5})"),
                   "ranks[0].lanes[0].ops[1].bytes: expected an integer, found number");
  expectParseError(withOp(R"({"op":"put","peer":4294967296})"),
                   "ranks[0].lanes[0].ops[1].peer: 4294967296 is out of range");
  expectParseError(withOp(R"({"op":"put","dst":{"buf":"scrach"}})"),
                   "ranks[0].lanes[0].ops[1].dst.buf: unknown buffer 'scrach' (did you mean 'scratch'?); buffers are "
                   "input, output, scratch, layout, extra<i>");
  expectParseError(withOp(R"({"op":"put","dst":{"offset":0}})"), "ranks[0].lanes[0].ops[1].dst.buf: missing");
  expectParseError(withOp(R"({"op":"reduce","srcs":[{"buf":"input"},{"buf":"extra01"}]})"),
                   "ranks[0].lanes[0].ops[1].srcs[1].buf: unknown buffer 'extra01' (did you mean 'extra0'?); buffers "
                   "are input, output, scratch, layout, extra<i>");
  expectParseError(withOp(R"({"op":"reduce","dtype":"flaot32"})"),
                   "ranks[0].lanes[0].ops[1].dtype: unknown data type 'flaot32' (did you mean 'float32'?)");
  expectParseError(withOp(R"({"op":"reduce","redop":"summ"})"),
                   "ranks[0].lanes[0].ops[1].redop: unknown reduce op 'summ' (did you mean 'sum'?)");
  expectParseError(withOp(R"({"op":"multicast","ranks":[0,"1"]})"),
                   "ranks[0].lanes[0].ops[1].ranks[1]: expected an integer, found string");
  expectParseError(
      withOp(R"({"op":"put","indirect":{"bytesSlott":1}})"),
      "ranks[0].lanes[0].ops[1].indirect.bytesSlott: unknown key 'bytesSlott' (did you mean 'bytesSlot'?)");
  expectParseError(withOp(R"(["op","put"])"), "ranks[0].lanes[0].ops[1]: expected an object, found array");

  expectParseError(
      R"({"format":"copro-program","version":1,"header":{"nranks":1},"ranks":[{"lanes":[{"initiation":"gpu"}]}]})",
      "ranks[0].lanes[0].initiation: unknown initiation 'gpu'");
  expectParseError(R"({"format":"copro-program","version":1,"header":{"nranks":2},"ranks":[{}]})",
                   "ranks: 1 entries for header.nranks 2");
  expectParseError(R"({"format":"copro-program","version":1,"header":{"name":"x"},"ranks":[]})",
                   "header.nranks: missing");
  expectParseError(R"({"format":"copro-program","version":1,"header":{"nranks":2,"inputBytes":[1]},"ranks":[{},{}]})",
                   "header.inputBytes: 1 entries for nranks 2");
  expectParseError(R"({"format":"copro-program","version":1,"header":{"nranks":0,"numSemaphore":1},"ranks":[]})",
                   "header.numSemaphore: unknown key 'numSemaphore' (did you mean 'numSemaphores'?)");
  expectParseError(R"({"format":"copro-plan","version":1,"header":{"nranks":0},"ranks":[]})",
                   "format: expected 'copro-program', found 'copro-plan'");
  expectParseError(R"({"format":"copro-program","version":2,"header":{"nranks":0},"ranks":[]})",
                   "version: version 2 is not supported (this copro reads version 1)");
  expectParseError(R"({"format":"copro-program","version":1,"header":{"nranks":0},"rank":[]})",
                   "rank: unknown key 'rank' (did you mean 'ranks'?)");
  try {
    (void)programFromJson(R"({"format": "copro-program", "version": 1,)");
    ADD_FAILURE() << "expected a syntax error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_EQ(e.message().rfind("JSON syntax error at byte", 0), 0U) << e.message();
  }
}

TEST(ProgramJson, SizesAreBoundedBeforeAnythingIsAllocated) {
  const auto header = [](const std::string& fields) {
    return R"({"format":"copro-program","version":1,"header":{)" + fields + R"(},"ranks":[]})";
  };
  expectParseError(header(R"("nranks":1,"numSemaphores":1000000000)"),
                   "header.numSemaphores: 1000000000 is outside 0..1048576");
  expectParseError(header(R"("nranks":2000000000,"numSemaphores":1)"),
                   "header.nranks: 2000000000 is outside 0..1048576");
}

TEST(ProgramJson, AliasesAreAccepted) {
  // The reader takes the nccl-tests spellings of data types as well.
  const Program p = programFromJson(withOp(R"({"op":"reduce","dtype":"half","redop":"max","bytes":4})"));
  EXPECT_EQ(p.rank(0).lanes[0].ops[1].dtype, DataType::kFloat16);
  EXPECT_EQ(p.rank(0).lanes[0].ops[1].redop, ReduceOp::kMax);
}

TEST(ProgramJson, SaveAndLoadFiles) {
  const Program p = kitchenSink();
  const std::string path = ::testing::TempDir() + "copro_program_json_test.json";
  saveProgram(p, path);
  EXPECT_EQ(loadProgram(path), p);
  {
    std::ofstream f(path, std::ios::trunc);
    f << withOp(R"({"op":"putt"})");
  }
  try {
    (void)loadProgram(path);
    ADD_FAILURE() << "expected a parse error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kParseError);
    EXPECT_EQ(e.message(),
              "Program file '" + path + "': ranks[0].lanes[0].ops[1].op: unknown op 'putt' (did you mean 'put'?)");
  }
  std::remove(path.c_str());
  try {
    (void)loadProgram(path);
    ADD_FAILURE() << "expected an error for a missing file";
  } catch (const Error& e) {
    // core::readBoundedFile, shared by every file reader: a missing file is a bad argument.
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
  }
  EXPECT_THROW(saveProgram(p, ::testing::TempDir() + "no/such/dir/p.json"), Error);
}

}  // namespace
}  // namespace copro::core
