/// The workload DAG scheduler against hand-computed schedules (docs/workloads.md, "The model"), the
/// compute model's SM sharing, and workload file errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/workload.hpp"

namespace copro::sim {
namespace {

using core::Time;

/// Communication tasks take the time listed here by name (a fixed-duration callback).
WorkloadOptions fixed(std::map<std::string, double> us, std::int32_t ranks = 8) {
  WorkloadOptions o;
  o.ranks = ranks;
  o.compute.sms = 132;
  o.compute.commSms = 20;
  o.compute.flops = 989e12;
  o.commTime = [us](const CommTask& t) { return Time::us(us.at(t.name)); };
  return o;
}

const TaskTiming& timing(const WorkloadResult& r, const std::string& name) {
  for (const TaskTiming& t : r.tasks) {
    if (t.name == name) return t;
  }
  throw std::runtime_error("no task " + name);
}

WorkloadResult run(const std::string& yaml, const WorkloadOptions& o) {
  return runWorkload(parseWorkload(yaml, "test.yaml"), o);
}

void expectUs(Time got, double wantUs, const char* what) {
  EXPECT_NEAR(static_cast<double>(got.picoseconds()), wantUs * 1e6, 1.0) << what;
}

TEST(Workload, SerialChain) {
  const auto r = run(R"(
tasks:
  - {name: a, type: compute, duration: 10us}
  - {name: b, type: collective, collective: allreduce, bytes: 1M, initiation: offload, after: a}
  - {name: c, type: compute, duration: 20us, after: [b]}
)",
                     fixed({{"b", 5}}));
  expectUs(timing(r, "a").start, 0, "a start");
  expectUs(timing(r, "a").end, 10, "a end");
  expectUs(timing(r, "b").start, 10, "b start");
  expectUs(timing(r, "b").end, 15, "b end");
  expectUs(timing(r, "c").start, 15, "c start");
  expectUs(r.stepTime, 35, "step");
  expectUs(r.exposedComm, 5, "b is exposed");
  expectUs(r.computeLost, 0, "nothing overlaps");
  expectUs(r.computeBusy, 30, "compute busy");
}

TEST(Workload, IndependentTasks) {
  // Two compute tasks on the same ranks share one compute stream: file order. On disjoint ranks they run
  // side by side. A communication task starts as soon as it is ready.
  const auto same = run(R"(
tasks:
  - {name: a, type: compute, duration: 10us}
  - {name: b, type: compute, duration: 20us}
)",
                        fixed({}));
  expectUs(timing(same, "b").start, 10, "b waits for the stream");
  expectUs(same.stepTime, 30, "serial");
  const auto disjoint = run(R"(
tasks:
  - {name: a, type: compute, duration: 10us, ranks: 0-3}
  - {name: b, type: compute, duration: 20us, ranks: 4-7}
)",
                            fixed({}));
  expectUs(timing(disjoint, "b").start, 0, "b starts at once");
  expectUs(disjoint.stepTime, 20, "parallel");
  const auto comm = run(R"(
tasks:
  - {name: a, type: compute, duration: 10us, ranks: 0-3}
  - {name: x, type: collective, collective: alltoall, bytes: 1M, group: 4, ranks: 4-7}
)",
                        fixed({{"x", 7}}));
  expectUs(timing(comm, "x").start, 0, "x starts at once");
  expectUs(comm.stepTime, 10, "step");
  expectUs(comm.exposedComm, 7, "ranks 4-7 only communicate");
}

TEST(Workload, DeviceCollectiveSlowsOverlappedComputeBySmShare) {
  // 100 us of compute next to a 40 us device-mode collective holding 20 of 132 SMs: for 40 us the compute
  // runs at 112/132, so it ends 40 * 20/132 us late.
  const std::string yaml = R"(
tasks:
  - {name: gemm, type: compute, duration: 100us}
  - {name: a2a, type: collective, collective: alltoall, bytes: 8M, initiation: MODE}
)";
  for (const char* mode : {"device", "proxy"}) {
    std::string y = yaml;
    y.replace(y.find("MODE"), 4, mode);
    const auto r = run(y, fixed({{"a2a", 40}}));
    expectUs(timing(r, "gemm").end, 100 + 40.0 * 20 / 132, mode);
    expectUs(timing(r, "gemm").lost, 40.0 * 20 / 132, mode);
    expectUs(r.computeLost, 40.0 * 20 / 132, mode);
    expectUs(r.exposedComm, 0, mode);
    EXPECT_EQ(timing(r, "a2a").sms, 20);
  }
  // The collective outlasts the compute: the compute runs at 112/132 throughout; the rest is exposed.
  const auto longComm = run(R"(
tasks:
  - {name: gemm, type: compute, duration: 30us}
  - {name: a2a, type: collective, collective: alltoall, bytes: 8M}
)",
                            fixed({{"a2a", 100}}));
  expectUs(timing(longComm, "gemm").end, 30.0 * 132 / 112, "slowed throughout");
  expectUs(longComm.exposedComm, 100 - 30.0 * 132 / 112, "exposed tail");
  // Two collectives at once hold 40 SMs: 92/132 of the speed while both run.
  const auto two = run(R"(
tasks:
  - {name: gemm, type: compute, duration: 100us}
  - {name: x, type: collective, collective: alltoall, bytes: 8M}
  - {name: y, type: collective, collective: allgather, bytes: 8M, sms: 20}
)",
                       fixed({{"x", 10}, {"y", 10}}));
  expectUs(timing(two, "gemm").end, 100 + 10.0 * 40 / 132, "two collectives");
}

TEST(Workload, OffloadLeavesComputeAtFullSpeed) {
  const auto r = run(R"(
tasks:
  - {name: gemm, type: compute, duration: 100us}
  - {name: a2a, type: collective, collective: alltoall, bytes: 8M, initiation: offload}
)",
                     fixed({{"a2a", 40}}));
  expectUs(timing(r, "gemm").end, 100, "offload");
  expectUs(r.computeLost, 0, "offload");
  EXPECT_EQ(timing(r, "a2a").sms, 0);
}

TEST(Workload, FlopsAtPeakTimesEfficiencyAndDefaults) {
  // 989 GFLOP at 989 TFLOP/s x 0.5 = 2 ms; `defaults` gives the efficiency to tasks that lack one.
  const auto w = parseWorkload(R"(
name: flops
ranks: 4
sim: {compute: {comm_sms: 24}}
set: [sim.routing=shortest]
defaults: {efficiency: 0.5, initiation: proxy, group: 2}
tasks:
  - {name: a, type: compute, flops: 989G}
  - {name: b, type: compute, flops: 989e9, efficiency: 1, after: a}
  - {name: c, type: moe_dispatch, tokens: 4096, hidden: 7168, topk: 8, experts: 256, after: b}
)",
                               "flops.yaml");
  EXPECT_EQ(w.name, "flops");
  EXPECT_EQ(w.ranks, 4);
  ASSERT_EQ(w.overrides.size(), 2U);
  EXPECT_EQ(w.overrides[0], "sim.compute.comm_sms=24");
  EXPECT_EQ(w.overrides[1], "sim.routing=shortest");
  EXPECT_EQ(w.tasks[2].comm.initiation, core::Initiation::kProxy);
  EXPECT_EQ(w.tasks[2].comm.groupSize, 2);
  EXPECT_EQ(w.tasks[2].comm.tokens, 4096);
  EXPECT_EQ(w.tasks[2].comm.kind, TaskKind::kMoeDispatch);
  EXPECT_EQ(w.tasks[2].origin, "flops.yaml:10");
  WorkloadOptions o = fixed({{"c", 50}}, 0);
  const auto r = runWorkload(w, o);
  expectUs(timing(r, "a").end, 2000, "a at half peak");
  expectUs(timing(r, "b").end, 3000, "b at peak");
  expectUs(r.stepTime, 3050, "step");
}

std::string errorOf(const std::string& yaml, const WorkloadOptions& o = fixed({{"x", 1}})) {
  try {
    (void)run(yaml, o);
  } catch (const core::Error& e) {
    return e.message();
  }
  return "no error";
}

TEST(Workload, FileErrorsNameTheLineAndKey) {
  // Rank counts are bounded before anything is sized from them (core/limits.hpp).
  EXPECT_EQ(errorOf("ranks: 1e9\ntasks:\n  - {name: a, type: compute, duration: 1us}\n"),
            "workload 'test.yaml' line 1: key 'ranks': 1000000000 is outside 1..1048576 (leave it out to use every "
            "GPU of the topology)");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duration: 1us, ranks: 2147483647}\n"),
            "workload 'test.yaml' line 2: task 'a': key 'ranks': '2147483647' goes past rank 1048575, the most a "
            "workload may have");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duraton: 1us}\n"),
            "workload 'test.yaml' line 2: task 'a': unknown key 'duraton' for a compute task (did you mean "
            "'duration'?)");
  EXPECT_EQ(errorOf("tasks:\n  - name: a\n    type: compute\n    duration: 1us\n    bytes: 4M\n"),
            "workload 'test.yaml' line 5: task 'a': unknown key 'bytes' for a compute task (it belongs to another "
            "task type)");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: comput, duration: 1us}\n"),
            "workload 'test.yaml' line 2: task 'a': unknown type 'comput' (did you mean 'compute'?); use compute, "
            "collective, moe_dispatch or moe_combine");
  EXPECT_EQ(errorOf("tasks:\n  - {name: x, type: collective, collective: allreduce, bytes: 1M, initiation: gpu}\n")
                .substr(0, 70),
            "workload 'test.yaml' line 2: task 'x': key 'initiation': unknown mode ");
  EXPECT_EQ(errorOf("taks: []\n"),
            "workload 'test.yaml' line 1: unknown key 'taks' (did you mean 'tasks'?); docs/workloads.md lists the "
            "keys");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duration: 1us, after: b}\n"),
            "test.yaml:2: task 'a': `after` names 'b', which is no task");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duration: 1us, after: b}\n"
                    "  - {name: b, type: compute, duration: 1us, after: a}\n"),
            "workload 'test.yaml': the `after` dependencies form a cycle through 'a', 'b'; remove one of them");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duration: 1us, ranks: 4-9}\n"),
            "test.yaml:2: task 'a': ranks 4-9 are outside the job's ranks 0-7");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute}\n"),
            "workload 'test.yaml' line 2: task 'a': a compute task needs exactly one of `duration` and `flops`");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duration: 1us}\n  - {name: a, type: compute, "
                    "duration: 1us}\n"),
            "workload 'test.yaml' line 3: task name 'a' is used twice");
  EXPECT_EQ(errorOf("tasks:\n  - {name: a, type: compute, duration: 1us\n"),
            "workload 'test.yaml' line 3 column 1: YAML syntax error: end of map flow not found");
}

TEST(Workload, BundledExamplesParseAndSchedule) {
  const std::filesystem::path dir = std::filesystem::path(COPRO_SOURCE_TOPOLOGY_DIR).parent_path() / "workloads";
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    const Workload w = loadWorkload(entry.path().string());
    WorkloadOptions o;
    o.ranks = w.ranks > 0 ? w.ranks : 64;
    o.commTime = [](const CommTask&) { return Time::us(100); };
    const WorkloadResult r = runWorkload(w, o);
    EXPECT_GT(r.stepTime.picoseconds(), 0) << entry.path();
    EXPECT_EQ(r.tasks.size(), w.tasks.size());
  }
  EXPECT_GE(files, 2);
}

}  // namespace
}  // namespace copro::sim
