// Study (c): unified scale-up/scale-out vs today's split for EP64 MoE dispatch/combine. Today: deepseek-v3.yaml
// (8 H800 per server on NVSwitch at 160 GB/s, 8 x 400 Gb/s IB planes across servers). Unified: the same 64 GPUs
// on one NVLink-class switch domain (topologies/unified-64.yaml) at 160 GB/s (only the topology changes) and at
// 900 GB/s (NVLink 5). Both DeepEP paths, uniform and Zipf routing; the same tokens go to the same experts on
// every fabric (routing and plan use the 8-GPU servers of today's layout).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "plot.hpp"
#include "study_common.hpp"

namespace copro::tools::study {

namespace {

using collectives::MoePath;

constexpr std::int32_t kRanks = 64;
constexpr std::int32_t kGpusPerServer = 8;
constexpr double kZipf = 1.0;

struct Fabric {
  const char* key;    // CSV
  const char* label;  // table, plot
  const char* topology;
  std::vector<std::string> overrides;
  double nvlinkGBps;
};

}  // namespace

void runStudyC(const StudyOptions& o) {
  const auto wallStart = std::chrono::steady_clock::now();
  const StudyInfo& info = findStudy("c");
  const std::int32_t tokens = o.quick ? 32 : 512;
  const std::vector<Fabric> fabrics = {
      {"split", "today: NVLink 160 GB/s in a server + 8x400 Gb/s IB", "deepseek-v3", {}, 160},
      {"unified-160", "unified: one NVLink domain, 160 GB/s per GPU", "unified-64", {}, 160},
      {"unified-900", "unified: one NVLink domain, 900 GB/s per GPU", "unified-64", {"nvlink_bw=900GB/s"}, 900},
  };
  const std::vector<MoePath> paths = {MoePath::kForward, MoePath::kDirect};
  const std::vector<double> skews = o.quick ? std::vector<double>{0.0} : std::vector<double>{0.0, kZipf};
  // Today's servers for routing and plan on every fabric: node-limited routing (4 nodes per token) and the
  // forward path's per-server deduplication mean the same thing everywhere.
  std::vector<int> nodeOfRank(kRanks);
  for (int r = 0; r < kRanks; ++r) nodeOfRank[static_cast<std::size_t>(r)] = r / kGpusPerServer;

  std::vector<MoeCase> cases;
  for (const auto& f : fabrics) {
    for (MoePath p : paths) {
      for (double s : skews) {
        MoeCase c;
        c.topology = f.topology;
        c.overrides = f.overrides;
        c.ranks = kRanks;
        c.tokens = tokens;
        c.config = deepSeekV3MoeConfig(p);
        c.zipfExponent = s;
        c.nodeOfRank = nodeOfRank;
        c.label = std::string(f.key) + (s > 0 ? ", zipf" : ", uniform");
        cases.push_back(c);
      }
    }
  }
  std::fprintf(stderr, "copro-study c: %zu MoE simulations on %s\n", cases.size(), workersText(o).c_str());
  const auto results = runMoeCases(cases, o);
  const std::size_t nP = paths.size();
  const std::size_t nS = skews.size();
  auto at = [&](std::size_t f, std::size_t p, std::size_t s) -> const MoeSimResult& {
    return results[(f * nP + p) * nS + s].result;
  };
  auto total = [](const MoeSimResult& r) { return r.dispatch.microseconds() + r.combine.microseconds(); };
  auto routingName = [](double s) { return s > 0 ? "zipf:" + fmt("%.1f", s) : std::string("uniform"); };

  const std::string prefix = studyPrefix(o, info);
  std::ostringstream csv;
  csv << "fabric,topology,nvlink_GBps,path,routing,tokens,dispatch_us,combine_us,total_us,speedup_vs_split,"
         "dispatch_GBps,combine_GBps,scaleout_bytes,scaleup_bytes\n";
  for (std::size_t f = 0; f < fabrics.size(); ++f) {
    for (std::size_t p = 0; p < nP; ++p) {
      for (std::size_t s = 0; s < nS; ++s) {
        const auto& r = at(f, p, s);
        csv << fabrics[f].key << ',' << fabrics[f].topology << ',' << fabrics[f].nvlinkGBps << ','
            << collectives::moePathName(paths[p]) << ',' << routingName(skews[s]) << ',' << tokens << ','
            << fmt("%.3f", r.dispatch.microseconds()) << ',' << fmt("%.3f", r.combine.microseconds()) << ','
            << fmt("%.3f", total(r)) << ',' << fmt("%.4f", total(at(0, p, s)) / total(r)) << ','
            << fmt("%.2f", r.dispatchGBps) << ',' << fmt("%.2f", r.combineGBps) << ',' << r.scaleOutBytes << ','
            << r.scaleUpBytes << '\n';
      }
    }
  }
  writeStudyFile(o, prefix + ".csv", csv.str());

  std::vector<PlotSeries> series;
  for (std::size_t p = 0; p < nP; ++p) {
    for (std::size_t s = 0; s < nS; ++s) {
      PlotSeries ps;
      ps.name = std::string(collectives::moePathName(paths[p])) + " path, " + routingName(skews[s]) + " routing";
      for (std::size_t f = 0; f < fabrics.size(); ++f) {
        ps.x.push_back(static_cast<double>(f));
        ps.y.push_back(total(at(f, p, s)));
      }
      series.push_back(std::move(ps));
    }
  }
  PlotOptions po;
  po.title = "Study c: EP64 dispatch + combine, today's split fabric vs unified scale-up/scale-out";
  po.subtitle =
      "DeepSeek-V3 MoE: " + std::to_string(tokens) +
      " tokens per rank, hidden 7168, top-8 of 256 experts, <= 4 nodes per token, FP8 dispatch / BF16 combine";
  po.x.label = "fabric";
  po.x.includeZero = false;
  const char* tick[] = {"today (split)", "unified 160 GB/s", "unified 900 GB/s"};
  for (std::size_t f = 0; f < fabrics.size(); ++f) po.x.ticks.emplace_back(static_cast<double>(f), tick[f]);
  po.y.label = "dispatch + combine (us)";
  po.y.scale = AxisScale::kLog10;
  po.y.includeZero = false;
  po.width = 1000;
  writeStudyChart(o, prefix + ".svg", series, po);

  // Headline: best path on each fabric, uniform routing.
  auto best = [&](std::size_t f, std::size_t s) {
    std::size_t b = 0;
    for (std::size_t p = 1; p < nP; ++p) {
      if (total(at(f, p, s)) < total(at(f, b, s))) b = p;
    }
    return b;
  };
  const std::size_t b0 = best(0, 0);
  const std::size_t b1 = best(1, 0);
  const std::size_t b2 = best(2, 0);
  std::ostringstream headline;
  headline << "At the same 160 GB/s per GPU, unifying scale-up and scale-out makes an EP64 dispatch + combine "
           << fmt("%.2f", total(at(0, b0, 0)) / total(at(1, b1, 0))) << "x faster (" << fmt("%.0f", total(at(1, b1, 0)))
           << " us, " << collectives::moePathName(paths[b1]) << " path, vs " << fmt("%.0f", total(at(0, b0, 0)))
           << " us today, " << collectives::moePathName(paths[b0]) << " path; uniform routing, " << tokens
           << " tokens per rank), and " << fmt("%.2f", total(at(0, b0, 0)) / total(at(2, b2, 0)))
           << "x faster at 900 GB/s per GPU.";

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  std::ostringstream md;
  md << "# Study c: unified scale-up/scale-out vs today's split for EP64 dispatch/combine\n\n"
     << "_Generated by `" << reproduceCommand(o, info) << "` from the simulation results; do not edit by hand._\n\n"
     << "## Question\n\n"
     << "Today an H800 server has two fabrics: NVLink inside the server (160 GB/s per GPU achievable) and "
        "8 x 400 Gb/s InfiniBand NICs across servers (about 50 GB/s per GPU). DeepSeek-V3's expert-parallel "
        "all-to-all is shaped by that split: node-limited routing (a token reaches at most 4 nodes) and DeepEP's "
        "forward path (a token crosses IB once per target node, then fans out over NVLink) exist to spare the "
        "slow scale-out network. DeepSeek's ISCA'25 paper (arXiv:2505.09343) asks for scale-up and "
        "scale-out to converge into one fabric instead. How much faster would EP64 dispatch + combine be if every "
        "GPU reached every other GPU at NVLink-class bandwidth through one switch domain?\n\n"
     << "## Setup\n\n"
     << "- Today (split): `topologies/deepseek-v3.yaml` (2048 H800 on an 8-plane fat-tree), EP64 on its first 8 "
        "servers (ranks 0..63 on GPUs 0..63).\n"
     << "- Unified: `topologies/unified-64.yaml`: the same 64 GPUs (132 SMs, 3.35 TB/s HBM) on one NVLink "
        "switch domain at 160 GB/s per GPU per direction, i.e. today's NVLink bandwidth extended across "
        "servers (only the topology changes), and with `nvlink_bw=900GB/s` (NVLink 5, as in GB200 NVL72). "
        "Same initiation costs (device issue 0.7 us, 1.8 M ops/s per lane).\n"
     << "- MoE layer of DeepSeek-V3 (arXiv:2412.19437, sections 2.1.2, 3.2.2): " << tokens
     << " tokens per rank, hidden 7168, top-8 of 256 routed experts (4 per rank), at most 4 nodes per token, "
        "FP8 dispatch with one scale per 128 channels, BF16 combine (tools/moe_sim.hpp, docs/moe.md).\n"
     << "- Paths: **forward** (DeepEP normal mode: one scale-out copy per target node to the rank with the "
        "sender's local index, then NVLink fan-out; combine reduces at that relay) and **direct** (DeepEP low "
        "latency mode: every (token, expert) row straight to the expert's rank).\n"
     << "- Routing: uniform node-limited (seed 1)"
     << (nS > 1 ? ", and Zipf with exponent " + fmt("%.1f", kZipf) + " over experts (a skewed load; seed 1)" : "")
     << ". Routing and the forward path's relays use today's 8-GPU servers on every fabric, so every fabric "
        "moves the same tokens to the same experts.\n\n"
     << "## Results\n\n"
     << kHeadlineMarker << headline.str() << "\n\n"
     << "![dispatch + combine by fabric](" << info.id << "-" << info.slug << ".svg)\n\n";
  MarkdownTable t({"fabric", "path", "routing", "dispatch (us)", "combine (us)", "total (us)", "speed-up vs today",
                   "dispatch GB/s", "combine GB/s"},
                  {false, false, false, true, true, true, true, true, true});
  for (std::size_t f = 0; f < fabrics.size(); ++f) {
    for (std::size_t p = 0; p < nP; ++p) {
      for (std::size_t s = 0; s < nS; ++s) {
        const auto& r = at(f, p, s);
        t.addRow({fabrics[f].label, std::string(collectives::moePathName(paths[p])), routingName(skews[s]),
                  fmt("%.1f", r.dispatch.microseconds()), fmt("%.1f", r.combine.microseconds()), fmt("%.1f", total(r)),
                  fmt("%.2f", total(at(0, p, s)) / total(r)), fmt("%.1f", r.dispatchGBps), fmt("%.1f", r.combineGBps)});
      }
    }
  }
  md << t.render() << '\n'
     << "Speed-up: today's time for the same path and routing over this row's. DeepEP GB/s: received rows per "
        "rank x bytes per token / time (docs/moe.md). Data: ["
     << info.id << "-" << info.slug << ".csv](" << info.id << "-" << info.slug << ".csv).\n\n"
     << "Best path (uniform routing): " << collectives::moePathName(paths[b0]) << " today, "
     << collectives::moePathName(paths[b1]) << " on the unified fabric at 160 GB/s, "
     << collectives::moePathName(paths[b2])
     << " at 900 GB/s. The direct path sends every (token, expert) row on its own, so today it pays the "
        "scale-out network once per row instead of once per node, and rows between GPUs on different planes "
        "take the host's root complex (no PXN). On one switch domain the forward path's relay still saves the "
        "sender's bandwidth (a token leaves its GPU once per node, not once per expert) but adds a hop and a "
        "reduction at the relay; which of the two wins depends on the bandwidth, as the table shows. Skewed "
        "routing loads the GPUs of the popular experts, whose own links then bound the time on any fabric.\n\n"
     << "## Limits\n\n"
     << "- " << tokens
     << " tokens per rank instead of DeepEP's 4096 to keep the full study within about three minutes on two "
        "cores (an EP64 dispatch + combine with 4096 tokens takes from 40 s to several minutes of simulation); "
        "times grow about linearly with tokens at these sizes. `copro-sim moe -t deepseek-v3 --ep 64 "
        "--max-nodes 4` runs one 4096-token case.\n"
     << "- The unified fabric is an ideal non-blocking switch domain (one logical NVSwitch): no multi-stage "
        "switch network, no congestion control, and NVLink latencies of a single server. A real 64-GPU "
        "scale-up domain (NVL72, UALink, Ethernet-based scale-up) adds a stage or two.\n"
     << "- The routing keeps DeepSeek-V3's node limit (4 of 8 servers per token) on the unified fabric, where "
        "nothing requires it; without the limit a token's experts spread more, which matters only to the "
        "forward path.\n"
     << "- Compute and the SMs that DeepEP's kernels occupy are not modelled here (study b).\n\n"
     << "## Reproduce\n\n"
     << "```\n"
     << info.script << (o.quick ? " --quick" : "") << "    # builds copro-study, then runs:\n"
     << reproduceCommand(o, info) << "\n```\n\n"
     << cases.size() << " MoE simulations (each a dispatch and a combine); about " << fmt("%.0f", std::max(1.0, wall))
     << " s of wall time on " << workersText(o) << " when generated.\n";
  writeStudyFile(o, prefix + ".md", md.str());

  std::printf("study c: %s\n", headline.str().c_str());
  std::printf("  wrote %s.csv, %s.svg, %s.md (%.1f s)\n", prefix.c_str(), prefix.c_str(), prefix.c_str(), wall);
}

}  // namespace copro::tools::study
