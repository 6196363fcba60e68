// Study (b): co-processor offload vs communication kernels on SMs (DeepEP uses 20 of the H800's 132 SMs) for
// the workloads workloads/moe-layer.yaml and workloads/dualpipe-step.yaml on deepseek-v3.yaml, with the workload
// engine (sim::runWorkload): step time, exposed communication, compute lost to the SMs communication holds, and
// the speed-up of offload; a sweep of the SMs held (10/20/32).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "copro/core/data_dir.hpp"
#include "copro/core/status.hpp"
#include "copro/sim/workload.hpp"
#include "plot.hpp"
#include "sim_runner.hpp"
#include "study_common.hpp"

namespace copro::tools::study {

namespace {

using core::Error;
using core::ErrorCode;
using core::Initiation;

struct Variant {
  std::string key;                              // CSV
  std::string label;                            // table
  Initiation initiation = Initiation::kDevice;  // kOffload: every communication task; else the file's own
  std::int32_t commSms = 20;                    // compute.comm_sms (device and proxy tasks)
};

std::string workloadPath(const std::string& file) {
  // The bundled workloads: share/copro/workloads of the install or build tree (core/data_dir.hpp).
  return (std::filesystem::path(core::dataPath("workloads")) / file).string();
}

/// What determines a communication task's time (its SMs and the compute model do not).
std::string commKey(const sim::CommTask& t) {
  std::ostringstream k;
  if (t.kind == sim::TaskKind::kCollective) {
    k << "coll|" << t.collective << '|' << t.bytes << '|' << t.algorithm << '|' << t.groupSize;
  } else {
    // Dispatch and combine of one shape come from one simulation (combine is always BF16).
    const int elem = t.kind == sim::TaskKind::kMoeDispatch && t.elementBytes == 2 ? 2 : 1;
    k << "moe|" << t.groupSize << '|' << t.tokens << '|' << t.hidden << '|' << t.topk << '|' << t.experts << '|'
      << (t.path.empty() ? "forward" : t.path) << '|' << t.maxNodes << '|' << elem;
  }
  k << '|' << core::initiationName(t.initiation);
  return k.str();
}

struct WorkloadRun {
  sim::WorkloadResult result;
  double computeNominalUs = 0;  // sum over compute tasks of their time alone
};

}  // namespace

void runStudyB(const StudyOptions& o) {
  const auto wallStart = std::chrono::steady_clock::now();
  const StudyInfo& info = findStudy("b");
  // --quick: the MoE layer only, scaled to 128 tokens per rank (communication and FLOPs alike).
  constexpr std::int64_t kQuickTokens = 128;
  std::vector<std::string> files = {"moe-layer.yaml"};
  if (!o.quick) files.emplace_back("dualpipe-step.yaml");
  const std::vector<std::int32_t> smsSweep =
      o.quick ? std::vector<std::int32_t>{20} : std::vector<std::int32_t>{10, 20, 32};
  std::vector<Variant> variants;
  variants.reserve(smsSweep.size() + 1);
  for (std::int32_t s : smsSweep) {
    variants.push_back({"sm" + std::to_string(s), "kernels on " + std::to_string(s) + " SMs", Initiation::kDevice, s});
  }
  variants.push_back({"offload", "offload (0 SMs)", Initiation::kOffload, 0});
  const std::size_t nV = variants.size();
  const std::size_t ref = std::min<std::size_t>(
      static_cast<std::size_t>(std::find(smsSweep.begin(), smsSweep.end(), 20) - smsSweep.begin()),
      nV - 2);  // the 20-SM variant
  const std::size_t off = nV - 1;

  std::vector<sim::Workload> workloads;
  for (const auto& f : files) {
    sim::Workload wl = sim::loadWorkload(workloadPath(f));
    if (o.quick) {
      for (sim::Task& t : wl.tasks) {
        if (t.kind == sim::TaskKind::kCompute) {
          const double scale = static_cast<double>(kQuickTokens) / 4096.0;
          t.flops *= scale;
          t.duration = core::Time::ps(static_cast<std::int64_t>(static_cast<double>(t.duration.picoseconds()) * scale));
        } else if (t.kind != sim::TaskKind::kCollective) {
          t.comm.tokens = kQuickTokens;
        }
      }
    }
    if (wl.topology.empty()) {
      throw Error(ErrorCode::kInvalidArgument, "workload '" + f + "' names no topology; study b needs one");
    }
    workloads.push_back(std::move(wl));
  }
  auto withVariant = [](sim::Workload wl, const Variant& v) {
    if (v.initiation == Initiation::kOffload) {
      for (sim::Task& t : wl.tasks) t.comm.initiation = Initiation::kOffload;
    }
    return wl;
  };
  auto computeOf = [&](const sim::Workload& wl, const Variant& v) {
    sim::ComputeParams cp = sim::SimParams::fromFabric(loadFabric(wl.topology, wl.overrides)).compute;
    cp.commSms = v.commSms;
    return cp;
  };

  // Pass 1: the distinct communication tasks of every workload and variant (the engine calls back once per
  // task, in file order, before scheduling).
  struct Job {
    sim::CommTask task;
    const sim::Workload* workload = nullptr;
  };
  std::map<std::string, std::size_t> jobIndex;
  std::vector<Job> jobs;
  for (const auto& wl : workloads) {
    for (const auto& v : variants) {
      const sim::Workload w = withVariant(wl, v);
      sim::WorkloadOptions opts;
      opts.compute = computeOf(w, v);
      opts.commTime = [&](const sim::CommTask& t) {
        const std::string k = w.topology + '\n' + commKey(t);
        if (jobIndex.emplace(k, jobs.size()).second) jobs.push_back({t, &wl});
        return core::Time::us(1);
      };
      (void)sim::runWorkload(w, opts);
    }
  }
  // Pass 2: simulate them, `jobs` at a time (fabrics loaded first on this thread).
  for (const auto& j : jobs) (void)loadFabric(j.workload->topology, j.workload->overrides);
  std::fprintf(stderr, "copro-study b: %zu distinct communication tasks on %s\n", jobs.size(), workersText(o).c_str());
  // Per job: its time (collective), or the dispatch and the combine of its shape (MoE).
  std::vector<core::Time> firstTime(jobs.size());
  std::vector<core::Time> combineTime(jobs.size());
  std::mutex printMutex;
  // Under mpirun each rank simulates its share; a job travels as its two times in picoseconds.
  const std::vector<std::string> records = shardedFor(jobs.size(), o, [&](std::size_t i) {
    const sim::CommTask& t = jobs[i].task;
    const sim::Workload& wl = *jobs[i].workload;
    const auto t0 = std::chrono::steady_clock::now();
    core::Time first{};
    core::Time combine{};
    if (t.kind == sim::TaskKind::kCollective) {
      FabricCache fabrics;  // one per job: FabricCache is not thread-safe
      SimCase c;
      c.topology = wl.topology;
      c.overrides = wl.overrides;
      c.kind = parseRunnableCollective(t.collective);
      c.algorithm = t.algorithm;
      c.size = t.bytes;
      c.ranks = t.groupSize;
      c.scaleUpInitiation = t.initiation;
      c.scaleOutInitiation = t.initiation;
      first = runCase(fabrics, c).result.time;
    } else {
      const MoeSimResult r = simulateMoeTask(loadFabric(wl.topology, wl.overrides), t);
      first = r.dispatch;
      combine = r.combine;
    }
    if (!o.quiet) {
      const std::lock_guard<std::mutex> lock(printMutex);
      std::fprintf(stderr, "  [%zu/%zu] %s (%s): %.1f us%s (%.1f s)\n", i + 1, jobs.size(), t.name.c_str(),
                   std::string(core::initiationName(t.initiation)).c_str(), first.microseconds(),
                   t.kind == sim::TaskKind::kCollective
                       ? ""
                       : (" + " + fmt("%.1f", combine.microseconds()) + " us combine").c_str(),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return std::to_string(first.picoseconds()) + ' ' + std::to_string(combine.picoseconds());
  });
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    std::istringstream in(records[i]);
    std::int64_t firstPs = 0;
    std::int64_t combinePs = 0;
    in >> firstPs >> combinePs;
    firstTime[i] = core::Time::ps(firstPs);
    combineTime[i] = core::Time::ps(combinePs);
  }
  auto timeOf = [&](const std::string& topology, const sim::CommTask& t) {
    const std::size_t i = jobIndex.at(topology + '\n' + commKey(t));
    return t.kind == sim::TaskKind::kMoeCombine ? combineTime[i] : firstTime[i];
  };

  // Pass 3: the workloads with those times.
  std::vector<WorkloadRun> runs;  // [workload][variant]
  for (const auto& wl : workloads) {
    for (const auto& v : variants) {
      const sim::Workload w = withVariant(wl, v);
      sim::WorkloadOptions opts;
      opts.compute = computeOf(w, v);
      opts.commTime = [&](const sim::CommTask& t) { return timeOf(w.topology, t); };
      WorkloadRun run;
      run.result = sim::runWorkload(w, opts);
      for (const auto& tt : run.result.tasks) {
        if (tt.kind == sim::TaskKind::kCompute) run.computeNominalUs += tt.nominal.microseconds();
      }
      runs.push_back(std::move(run));
    }
  }
  auto at = [&](std::size_t w, std::size_t v) -> const WorkloadRun& { return runs[w * nV + v]; };
  auto stepMs = [&](std::size_t w, std::size_t v) { return at(w, v).result.stepTime.microseconds() / 1000.0; };
  auto slowdown = [&](std::size_t w, std::size_t v) {
    return 100.0 * at(w, v).result.computeLost.microseconds() / at(w, v).computeNominalUs;
  };

  const std::string prefix = studyPrefix(o, info);
  std::ostringstream csv;
  csv << "workload,variant,initiation,comm_sms,step_us,exposed_comm_us,compute_lost_us,compute_busy_us,"
         "compute_alone_us,compute_slowdown_pct,offload_speedup\n";
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    for (std::size_t v = 0; v < nV; ++v) {
      const auto& r = at(w, v).result;
      csv << workloads[w].name << ',' << variants[v].key << ','
          << (variants[v].initiation == Initiation::kOffload ? "offload" : "file") << ',' << variants[v].commSms << ','
          << fmt("%.3f", r.stepTime.microseconds()) << ',' << fmt("%.3f", r.exposedComm.microseconds()) << ','
          << fmt("%.3f", r.computeLost.microseconds()) << ',' << fmt("%.3f", r.computeBusy.microseconds()) << ','
          << fmt("%.3f", at(w, v).computeNominalUs) << ',' << fmt("%.3f", slowdown(w, v)) << ','
          << fmt("%.4f", stepMs(w, v) / stepMs(w, off)) << '\n';
    }
  }
  writeStudyFile(o, prefix + ".csv", csv.str());

  // Plot: step time (relative to offload) by SMs held by communication, one line per workload.
  std::vector<PlotSeries> series;
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    PlotSeries s;
    s.name = workloads[w].name + " (offload: " + fmt("%.2f", stepMs(w, off)) + " ms)";
    s.x.push_back(0);
    s.y.push_back(1.0);
    for (std::size_t v = 0; v + 1 < nV; ++v) {
      s.x.push_back(variants[v].commSms);
      s.y.push_back(stepMs(w, v) / stepMs(w, off));
    }
    series.push_back(std::move(s));
  }
  PlotOptions po;
  po.title = "Study b: step time with communication kernels on SMs vs a co-processor (0 SMs)";
  po.subtitle = "deepseek-v3.yaml, H800 (132 SMs, 989 TFLOP/s x 0.6); x = 0: offload; workloads/*.yaml";
  po.x.label = "SMs held by communication while in flight (0 = co-processor offload)";
  po.x.ticks.emplace_back(0, "0 (offload)");
  for (std::size_t v = 0; v + 1 < nV; ++v)
    po.x.ticks.emplace_back(variants[v].commSms, std::to_string(variants[v].commSms));
  po.y.label = "step time / offload step time";
  po.y.includeZero = false;
  po.width = 1000;
  writeStudyChart(o, prefix + ".svg", series, po);

  std::ostringstream headline;
  headline << "Against DeepEP-style kernels on " << variants[ref].commSms << " of 132 SMs, a communication "
           << "co-processor (0 SMs) shortens ";
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    if (w > 0) headline << (w + 1 == workloads.size() ? " and " : ", ");
    headline << workloads[w].name << " from " << fmt("%.2f", stepMs(w, ref)) << " to " << fmt("%.2f", stepMs(w, off))
             << " ms (" << fmt("%.3f", stepMs(w, ref) / stepMs(w, off)) << "x; compute slowed by "
             << fmt("%.1f", slowdown(w, ref)) << "% with kernels)";
  }
  headline << (o.quick ? " (quick: 128 tokens per rank)." : ".");

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  std::ostringstream md;
  md << "# Study b: co-processor offload vs communication kernels on SMs\n\n"
     << "_Generated by `" << reproduceCommand(o, info) << "` from the simulation results; do not edit by hand._\n\n"
     << "## Question\n\n"
     << "DeepSeek-V3 overlaps its expert-parallel all-to-all with computation, but the communication kernels "
        "(DeepEP) occupy 20 of the H800's 132 SMs while they run, and the computation overlapped with them "
        "slows down accordingly (DeepSeek-V3 technical report, arXiv:2412.19437, sections 3.2.2 and 3.5.1, which "
        "asks for the communication to be offloaded to a co-processor). How much step time would such a "
        "co-processor save on one MoE layer and on a DualPipe-like training step, and how does it depend on the "
        "SMs the kernels take?\n\n"
     << "## Setup\n\n"
     << "- Workloads (docs/workloads.md): ";
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    md << (w > 0 ? ", " : "") << "`workloads/" << files[w] << "` (" << workloads[w].name << ", " << workloads[w].ranks
       << " ranks, " << workloads[w].tasks.size() << " tasks)";
  }
  md << ", on `topologies/" << workloads[0].topology
     << ".yaml`; the engine `sim::runWorkload` schedules the DAG: one compute stream per rank, communication "
        "tasks start when ready, and while a device- or proxy-mode task is in flight on a rank it holds "
        "`compute.comm_sms` SMs, so overlapped compute runs at (132 - held)/132 of its speed.\n"
     << "- Compute: 989 TFLOP/s (H800 BF16 dense) x 0.6 efficiency, as the workload files set.\n"
     << "- Communication: every distinct task simulated alone (MoE dispatch/combine with tools/moe_sim.hpp, "
        "uniform node-limited routing, seed 1; the gradient all-reduce with the planner's algorithm).\n"
     << "- Variants: the files' own initiation (device for the MoE tasks, proxy for the gradient all-reduce) "
        "with `compute.comm_sms` = ";
  for (std::size_t v = 0; v + 1 < nV; ++v) md << (v > 0 ? ", " : "") << variants[v].commSms;
  md << "; and **offload**: every communication task on a co-processor (`initiation: offload`, 0 SMs, the "
        "offload lane costs of the topology's initiation preset).\n";
  if (o.quick) md << "- Quick run: the MoE layer only, at " << kQuickTokens << " tokens per rank (FLOPs scaled).\n";
  md << "\n## Results\n\n"
     << kHeadlineMarker << headline.str() << "\n\n"
     << "![step time by SMs held](" << info.id << "-" << info.slug << ".svg)\n\n";
  MarkdownTable t({"workload", "variant", "step (ms)", "exposed comm (ms)", "compute lost (ms)", "compute slowdown",
                   "offload speed-up"},
                  {false, false, true, true, true, true, true});
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    for (std::size_t v = 0; v < nV; ++v) {
      const auto& r = at(w, v).result;
      t.addRow({workloads[w].name, variants[v].label, fmt("%.3f", stepMs(w, v)),
                fmt("%.3f", r.exposedComm.microseconds() / 1000.0), fmt("%.3f", r.computeLost.microseconds() / 1000.0),
                fmt("%.1f", slowdown(w, v)) + "%", fmt("%.3f", stepMs(w, v) / stepMs(w, off)) + "x"});
    }
  }
  md << t.render() << '\n'
     << "Exposed communication: the most, over ranks, of time with communication in flight and no compute "
        "running. Compute lost: the extra time compute tasks took because communication held SMs, summed over "
        "tasks; slowdown: that over the tasks' time alone. Offload speed-up: this row's step time over "
        "offload's. Communication tasks (time alone):\n\n";
  MarkdownTable ct({"communication", "initiation", "time alone (us)"}, {false, false, true});
  for (std::size_t i = 0; i < jobs.size(); ++i) {
    const auto& tk = jobs[i].task;
    const std::string mode(core::initiationName(tk.initiation));
    if (tk.kind == sim::TaskKind::kCollective) {
      ct.addRow({tk.collective + " " + bytesText(tk.bytes) + ", " + std::to_string(tk.groupSize) + " ranks", mode,
                 fmt("%.1f", firstTime[i].microseconds())});
    } else {
      const std::string shape = "EP" + std::to_string(tk.groupSize) + ", " + std::to_string(tk.tokens) +
                                " tokens per rank, " + (tk.path.empty() ? "forward" : tk.path) + " path";
      ct.addRow({"dispatch (" +
                     std::string(tk.kind == sim::TaskKind::kMoeDispatch && tk.elementBytes == 2 ? "BF16" : "FP8") +
                     "), " + shape,
                 mode, fmt("%.1f", firstTime[i].microseconds())});
      ct.addRow({"combine (BF16), " + shape, mode, fmt("%.1f", combineTime[i].microseconds())});
    }
  }
  md << ct.render() << '\n'
     << "Data: [" << info.id << "-" << info.slug << ".csv](" << info.id << "-" << info.slug << ".csv).\n\n"
     << "## Limits\n\n"
     << "- Communication tasks are simulated alone: two overlapping all-to-alls (DualPipe's forward and "
        "backward chunks) do not contend for links, and the SMs held do not change a task's own speed.\n"
     << "- The SM model is proportional: compute overlapped with communication runs at (132 - held)/132 of "
        "its speed; memory-bandwidth interference between the kernels is not modelled.\n"
     << "- An MoE task's lanes all pay its mode's initiation costs (issue time, extra latency, message rate), "
        "set through the simulator's parameters as `copro-sim workload` does.\n"
     << "- The workloads are simplified (docs/workloads.md): one MoE layer per stage, no pipeline sends, "
        "DualPipe's ordering replaced by the scheduler's.\n\n"
     << "## Reproduce\n\n"
     << "```\n"
     << info.script << (o.quick ? " --quick" : "") << "    # builds copro-study, then runs:\n"
     << reproduceCommand(o, info) << "\n```\n\n"
     << jobs.size() << " communication simulations and " << runs.size() << " workload schedules; about "
     << fmt("%.0f", std::max(1.0, wall)) << " s of wall time on " << workersText(o) << " when generated.\n";
  writeStudyFile(o, prefix + ".md", md.str());

  std::printf("study b: %s\n", headline.str().c_str());
  std::printf("  wrote %s.csv, %s.svg, %s.md (%.1f s)\n", prefix.c_str(), prefix.c_str(), prefix.c_str(), wall);
}

}  // namespace copro::tools::study
