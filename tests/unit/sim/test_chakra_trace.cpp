/// Chakra execution traces (chakra_trace.hpp; docs/workloads.md, "Chakra execution traces"): traces
/// written here with the schema's messages are simulated with the timeline the DAG and the collective
/// times of sim::Communicator give, and corrupt traces are errors naming the file, the node and the field.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "copro/core/file_read.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/chakra_trace.hpp"
#include "copro/sim/communicator.hpp"
#include "copro/sim/workload.hpp"
#include "copro/sim/workload_comm.hpp"
#include "sim_fabrics.hpp"

#if COPRO_TEST_CHAKRA
#include <google/protobuf/util/delimited_message_util.h>

#include "chakra_et.pb.h"
#endif

namespace copro::sim {
namespace {

#if COPRO_TEST_CHAKRA

using core::Time;
namespace pb = ChakraProtoMsg;

/// A fresh directory for one test's trace files, removed at the end of the test.
class TraceDir {
 public:
  explicit TraceDir(const std::string& name)
      : dir_(std::filesystem::temp_directory_path() / ("copro_chakra_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~TraceDir() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  TraceDir(const TraceDir&) = delete;
  TraceDir& operator=(const TraceDir&) = delete;
  /// The trace prefix inside it.
  [[nodiscard]] std::string prefix() const { return (dir_ / "trace").string(); }

 private:
  std::filesystem::path dir_;
};

pb::Node node(std::uint64_t id, pb::NodeType type, std::vector<std::uint64_t> deps = {}) {
  pb::Node n;
  n.set_id(id);
  n.set_name("n" + std::to_string(id));
  n.set_type(type);
  for (const auto d : deps) n.add_data_deps(d);
  return n;
}

void intAttr(pb::Node& n, const std::string& name, std::int64_t v) {
  pb::AttributeProto* a = n.add_attr();
  a->set_name(name);
  a->set_int64_val(v);
}

pb::Node compute(std::uint64_t id, std::uint64_t us, std::vector<std::uint64_t> deps = {}) {
  pb::Node n = node(id, pb::COMP_NODE, std::move(deps));
  n.set_duration_micros(us);
  return n;
}

pb::Node collective(std::uint64_t id, pb::CollectiveCommType type, std::int64_t bytes,
                    std::vector<std::uint64_t> deps) {
  pb::Node n = node(id, pb::COMM_COLL_NODE, std::move(deps));
  intAttr(n, "comm_type", type);
  intAttr(n, "comm_size", bytes);
  return n;
}

pb::Node transfer(std::uint64_t id, bool send, std::int64_t peer, std::int64_t bytes, std::vector<std::uint64_t> deps) {
  pb::Node n = node(id, send ? pb::COMM_SEND_NODE : pb::COMM_RECV_NODE, std::move(deps));
  intAttr(n, send ? "comm_dst" : "comm_src", peer);
  intAttr(n, "comm_size", bytes);
  intAttr(n, "comm_tag", 7);
  return n;
}

/// Writes one rank's file: the metadata record, then the nodes, varint-delimited.
void writeRank(const std::string& prefix, std::int32_t rank, const std::vector<pb::Node>& nodes) {
  std::ofstream out(chakraTraceFile(prefix, rank), std::ios::binary);
  pb::GlobalMetadata meta;
  meta.set_version("0.0.4");
  ASSERT_TRUE(google::protobuf::util::SerializeDelimitedToOstream(meta, &out));
  for (const pb::Node& n : nodes) ASSERT_TRUE(google::protobuf::util::SerializeDelimitedToOstream(n, &out));
}

constexpr std::int64_t kArBytes = 1 << 20;
constexpr std::int64_t kP2pBytes = 256 << 10;

/// Rank 0: compute 100 us, all-reduce, send to rank 1, compute 30 us. Rank 1: compute 40 us, all-reduce,
/// compute 60 us beside the receive from rank 0, then compute 10 us after both.
void writeTwoRankTrace(const std::string& prefix) {
  writeRank(prefix, 0,
            {compute(1, 100), collective(2, pb::ALL_REDUCE, kArBytes, {1}), transfer(3, true, 1, kP2pBytes, {2}),
             compute(4, 30, {3})});
  writeRank(prefix, 1,
            {compute(1, 40), collective(2, pb::ALL_REDUCE, kArBytes, {1}), compute(3, 60, {2}),
             transfer(4, false, 0, kP2pBytes, {2}), compute(5, 10, {3, 4})});
}

const TaskTiming& timing(const WorkloadResult& r, const std::string& name) {
  for (const TaskTiming& t : r.tasks) {
    if (t.name == name) return t;
  }
  throw std::runtime_error("no task " + name);
}

/// The time of one call on `placement` of `f`, straight from sim::Communicator.
Time callTime(const topo::Fabric& f, collectives::CollectiveKind kind, std::uint64_t bytes,
              std::vector<std::int32_t> placement) {
  CommunicatorOptions where;
  where.placement = std::move(placement);
  where.ranks = static_cast<std::int32_t>(where.placement.size());
  Communicator comm(f, where);
  CollectiveCall call;
  call.kind = kind;
  call.size = bytes;
  return comm.run(*comm.prepare(call).program).time;
}

TEST(ChakraTrace, TwoRanksComputeAllReduceSendRecvTimeline) {
  const TraceDir dir("timeline");
  const std::string prefix = dir.prefix();
  writeTwoRankTrace(prefix);
  const Workload wl = loadChakraTrace(prefix);
  ASSERT_EQ(wl.ranks, 2);
  ASSERT_EQ(wl.tasks.size(), 7U);  // 5 compute, 1 collective, 1 transfer

  const auto bw = core::Bandwidth::gbitps(100);
  const topo::Fabric f = testing::starFabric(2, bw, Time::us(1), Time::ns(100));
  WorkloadComm comm(f);
  WorkloadOptions o;
  o.ranks = 2;
  o.compute = SimParams::fromFabric(f).compute;
  o.compute.commSms = 0;  // communication takes no SMs: compute keeps its recorded durations
  comm.bind(o);
  const WorkloadResult r = runWorkload(wl, o);

  const Time ar = callTime(f, collectives::CollectiveKind::kAllReduce, kArBytes, {0, 1});
  const Time p2p = callTime(f, collectives::CollectiveKind::kBroadcast, kP2pBytes, {0, 1});
  // A transfer of 256 KiB over one 100 Gb/s link takes at least its serialization, at most twice it plus
  // the two hops' latency and a few microseconds of initiation.
  const double wire = static_cast<double>(kP2pBytes) * 8 / 100e9 * 1e12;
  EXPECT_GE(static_cast<double>(p2p.picoseconds()), wire);
  EXPECT_LE(static_cast<double>(p2p.picoseconds()), 2 * wire + 20e6);
  EXPECT_GT(ar.picoseconds(), 0);

  const Time a = Time::us(100) + ar;  // the all-reduce waits for rank 0's 100 us
  const Time p = a + p2p;
  EXPECT_EQ(timing(r, "r0.1").end, Time::us(100));
  EXPECT_EQ(timing(r, "r1.1").end, Time::us(40));
  EXPECT_EQ(timing(r, "world.coll0").start, Time::us(100));
  EXPECT_EQ(timing(r, "world.coll0").end, a);
  EXPECT_EQ(timing(r, "p2p0-1.0").start, a);
  EXPECT_EQ(timing(r, "p2p0-1.0").end, p);
  EXPECT_EQ(timing(r, "r0.4").start, p);
  EXPECT_EQ(timing(r, "r0.4").end, p + Time::us(30));
  EXPECT_EQ(timing(r, "r1.3").start, a);
  EXPECT_EQ(timing(r, "r1.3").end, a + Time::us(60));
  const Time last = std::max(p, a + Time::us(60));
  EXPECT_EQ(timing(r, "r1.5").start, last);
  EXPECT_EQ(r.stepTime, std::max(last + Time::us(10), p + Time::us(30)));
}

TEST(ChakraTrace, ProcessGroupsAndNumOps) {
  const TraceDir dir("groups");
  const std::string prefix = dir.prefix();
  // Ranks 0 and 2 all-reduce in group "even"; rank 1 only computes (num_ops, no duration).
  pb::Node flops = node(1, pb::COMP_NODE);
  intAttr(flops, "num_ops", 2'000'000'000);
  for (const std::int32_t r : {0, 2}) {
    pb::Node c = collective(1, pb::ALL_REDUCE, kArBytes, {});
    pb::AttributeProto* g = c.add_attr();
    g->set_name("pg_name");
    g->set_string_val("even");
    writeRank(prefix, r, {c});
  }
  writeRank(prefix, 1, {flops});
  ChakraOptions opts;
  opts.groups = parseChakraGroups(R"({"even": [0, 2]})", "groups.json");
  const Workload wl = loadChakraTrace(prefix, opts);
  ASSERT_EQ(wl.tasks.size(), 2U);
  const Task& ar = wl.tasks[0];
  EXPECT_EQ(ar.comm.placement, (std::vector<std::int32_t>{0, 2}));
  EXPECT_EQ(ar.comm.groupSize, 2);
  EXPECT_DOUBLE_EQ(wl.tasks[1].flops, 2e9);
  // Without the group file the name is unknown.
  try {
    (void)loadChakraTrace(prefix);
    FAIL() << "no error";
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'even'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("node 1"), std::string::npos) << e.what();
  }
}

TEST(ChakraTrace, BundledPipelineExampleLoads) {
  // workloads/chakra/pp2-tp2 (docs/workloads.md): 4 ranks, TP groups of consecutive ranks, DP groups not.
  const std::filesystem::path dir =
      std::filesystem::path(COPRO_SOURCE_TOPOLOGY_DIR).parent_path() / "workloads" / "chakra";
  ChakraOptions opts;
  opts.groups =
      parseChakraGroups(core::readBoundedFile((dir / "pp2-tp2.groups.json").string(), "groups"), "pp2-tp2.groups.json");
  const Workload wl = loadChakraTrace((dir / "pp2-tp2").string(), opts);
  EXPECT_EQ(wl.ranks, 4);
  int compute = 0;
  int collectives = 0;
  int transfers = 0;
  for (const Task& t : wl.tasks) {
    if (t.kind == TaskKind::kCompute) {
      ++compute;
    } else if (t.name.rfind("p2p", 0) == 0) {
      ++transfers;
      EXPECT_EQ(t.comm.placement.size(), 2U) << t.name;
    } else {
      ++collectives;
      if (t.name.rfind("dp", 0) == 0) {
        EXPECT_EQ(t.comm.placement.size(), 2U) << t.name;
      } else {
        EXPECT_EQ(t.numRanks, 2) << t.name;
      }
    }
  }
  EXPECT_EQ(compute, 8);
  EXPECT_EQ(collectives, 6);  // two per TP group, one per DP group
  EXPECT_EQ(transfers, 4);    // activations 0->2, 1->3 and gradients back
}

/// The message of loading `prefix`, which must fail.
std::string errorOf(const std::string& prefix) {
  try {
    (void)loadChakraTrace(prefix);
  } catch (const core::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "loading " << prefix << " did not fail";
  return "";
}

void expectHas(const std::string& msg, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

TEST(ChakraTrace, TruncatedFileNamesTheFileAndTheLastNode) {
  const TraceDir dir("truncated");
  const std::string prefix = dir.prefix();
  writeTwoRankTrace(prefix);
  const std::string file = chakraTraceFile(prefix, 1);
  std::filesystem::resize_file(file, std::filesystem::file_size(file) - 3);
  expectHas(errorOf(prefix), {file, "after node 4", "truncated"});
}

TEST(ChakraTrace, BadDependencyNamesTheNodeAndTheField) {
  const TraceDir dir("baddep");
  const std::string prefix = dir.prefix();
  writeRank(prefix, 0, {compute(1, 5), compute(2, 5, {99})});
  expectHas(errorOf(prefix), {chakraTraceFile(prefix, 0), "node 2", "data_deps", "node 99"});
  writeRank(prefix, 0, {compute(1, 2'000'000'000'000)});
  expectHas(errorOf(prefix), {"node 1", "duration_micros"});
}

TEST(ChakraTrace, UnknownNodeTypeNamesTheNode) {
  const TraceDir dir("badtype");
  const std::string prefix = dir.prefix();
  writeRank(prefix, 0, {compute(1, 5), node(2, pb::MEM_LOAD_NODE), compute(3, 5)});
  expectHas(errorOf(prefix), {"node 2", "field type", "MEM_LOAD_NODE"});
  pb::Node odd = node(4, pb::COMP_NODE);
  odd.set_type(static_cast<pb::NodeType>(42));
  writeRank(prefix, 0, {odd});
  expectHas(errorOf(prefix), {"node 4", "node type 42"});
}

TEST(ChakraTrace, UnmatchedAndInconsistentCommunicationNamesTheNode) {
  const TraceDir dir("unmatched");
  const std::string prefix = dir.prefix();
  writeRank(prefix, 0, {transfer(1, true, 1, kP2pBytes, {})});
  writeRank(prefix, 1, {compute(1, 5)});
  expectHas(errorOf(prefix), {chakraTraceFile(prefix, 0), "node 1", "no matching receive on rank 1"});
  writeRank(prefix, 0, {collective(1, pb::ALL_REDUCE, kArBytes, {})});
  writeRank(prefix, 1, {collective(1, pb::ALL_REDUCE, 2 * kArBytes, {})});
  expectHas(errorOf(prefix), {chakraTraceFile(prefix, 1), "node 1", "2097152 bytes", "1048576 bytes"});
  writeRank(prefix, 1, {collective(1, pb::ALL_GATHER, kArBytes, {})});
  writeRank(prefix, 0, {collective(1, pb::ALL_REDUCE, kArBytes, {}), collective(2, pb::ALL_REDUCE, kArBytes, {1})});
  expectHas(errorOf(prefix), {"allgather", "allreduce"});
  pb::Node noType = node(1, pb::COMM_COLL_NODE);
  writeRank(prefix, 0, {noType});
  expectHas(errorOf(prefix), {"node 1", "comm_type"});
}

TEST(ChakraTrace, MissingFilesAndGroupFiles) {
  const TraceDir dir("missing");
  const std::string prefix = dir.prefix();
  expectHas(errorOf(prefix), {chakraTraceFile(prefix, 0)});
  EXPECT_THROW((void)parseChakraGroups("{\"g\": [0, 0]}", "g.json"), core::Error);
  EXPECT_THROW((void)parseChakraGroups("{\"g\": [\"x\"]}", "g.json"), core::Error);
  EXPECT_THROW((void)parseChakraGroups("[1, 2]", "g.json"), core::Error);
}

#else

TEST(ChakraTrace, NeedsProtobuf) {
  EXPECT_FALSE(chakraTracesSupported());
  GTEST_SKIP() << "copro was configured without protobuf (libprotobuf-dev, protobuf-compiler): no Chakra traces";
}

#endif

}  // namespace
}  // namespace copro::sim
