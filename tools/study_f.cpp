// Study (f): NIC bandwidth (200/400/800 Gb/s) x NVLink bandwidth (160/320/450/900 GB/s) for an EP64 MoE dispatch
// + combine (DeepEP's forward path, DeepSeek-V3 routing) on deepseek-v3.yaml, through the node template's
// `nic_bw` and `nvlink_bw` overrides.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "plot.hpp"
#include "study_common.hpp"

namespace copro::tools::study {

void runStudyF(const StudyOptions& o) {
  const auto wallStart = std::chrono::steady_clock::now();
  const StudyInfo& info = findStudy("f");
  constexpr const char* kTopology = "deepseek-v3";
  constexpr std::int32_t kRanks = 64;
  constexpr int kGen5NicGbps = 400;  // the fastest NIC a PCIe Gen5 x16 link (64 GB/s) carries
  const std::int32_t tokens = o.quick ? 128 : 512;
  const std::vector<int> nics = o.quick ? std::vector<int>{400, 800} : std::vector<int>{200, 400, 800};  // Gb/s
  const std::vector<int> nvlinks =
      o.quick ? std::vector<int>{160, 900} : std::vector<int>{160, 320, 450, 900};  // GB/s per direction

  std::vector<MoeCase> cases;
  for (int nv : nvlinks) {
    for (int nic : nics) {
      MoeCase c;
      c.topology = kTopology;
      c.overrides = {"nic_bw=" + std::to_string(nic) + "Gb/s", "nvlink_bw=" + std::to_string(nv) + "GB/s"};
      // An 800 Gb/s NIC (100 GB/s) needs PCIe Gen6 (128 GB/s per direction); Gen5's 64 GB/s would cap it.
      if (nic > kGen5NicGbps) c.overrides.push_back("pcie_bw=128GB/s");
      c.ranks = kRanks;
      c.tokens = tokens;
      c.config = deepSeekV3MoeConfig(collectives::MoePath::kForward);
      c.label = "NIC " + std::to_string(nic) + " Gb/s, NVLink " + std::to_string(nv) + " GB/s";
      cases.push_back(c);
    }
  }
  std::fprintf(stderr, "copro-study f: %zu MoE simulations on %s\n", cases.size(), workersText(o).c_str());
  const auto results = runMoeCases(cases, o);
  auto at = [&](std::size_t v, std::size_t n) -> const MoeSimResult& { return results[v * nics.size() + n].result; };
  auto total = [](const MoeSimResult& r) { return r.dispatch.microseconds() + r.combine.microseconds(); };
  auto indexOf = [](const std::vector<int>& v, int x) {
    return static_cast<std::size_t>(std::find(v.begin(), v.end(), x) - v.begin());
  };
  // Reference point: today's H800 (160 GB/s NVLink, 400 Gb/s NICs) where the sweep has it.
  const std::size_t v0 = 0;
  const std::size_t n0 = std::min(indexOf(nics, 400), nics.size() - 1);
  const double ref = total(at(v0, n0));

  const std::string prefix = studyPrefix(o, info);
  std::ostringstream csv;
  csv << "nic_Gbps,nvlink_GBps,tokens,dispatch_us,combine_us,total_us,speedup_vs_reference,dispatch_GBps,"
         "combine_GBps,scaleout_bytes,scaleup_bytes\n";
  for (std::size_t v = 0; v < nvlinks.size(); ++v) {
    for (std::size_t n = 0; n < nics.size(); ++n) {
      const auto& r = at(v, n);
      csv << nics[n] << ',' << nvlinks[v] << ',' << tokens << ',' << fmt("%.3f", r.dispatch.microseconds()) << ','
          << fmt("%.3f", r.combine.microseconds()) << ',' << fmt("%.3f", total(r)) << ',' << fmt("%.4f", ref / total(r))
          << ',' << fmt("%.2f", r.dispatchGBps) << ',' << fmt("%.2f", r.combineGBps) << ',' << r.scaleOutBytes << ','
          << r.scaleUpBytes << '\n';
    }
  }
  writeStudyFile(o, prefix + ".csv", csv.str());

  std::vector<PlotSeries> series;
  for (std::size_t v = 0; v < nvlinks.size(); ++v) {
    PlotSeries s;
    s.name = "NVLink " + std::to_string(nvlinks[v]) + " GB/s";
    for (std::size_t n = 0; n < nics.size(); ++n) {
      s.x.push_back(nics[n]);
      s.y.push_back(total(at(v, n)));
    }
    series.push_back(std::move(s));
  }
  PlotOptions po;
  po.title = "Study f: EP64 dispatch + combine vs NIC bandwidth, one line per NVLink bandwidth";
  po.subtitle = "deepseek-v3.yaml (H800 servers, 8 NICs each); DeepEP forward path; " + std::to_string(tokens) +
                " tokens per rank, top-8 of 256 experts, <= 4 nodes per token";
  po.x.label = "NIC bandwidth (Gb/s per NIC)";
  po.x.scale = AxisScale::kLog2;
  po.x.includeZero = false;
  for (int nic : nics) po.x.ticks.emplace_back(nic, std::to_string(nic));
  po.y.label = "dispatch + combine (us)";
  po.width = 1000;
  writeStudyChart(o, prefix + ".svg", series, po);

  // Headline: what doubling the NICs buys against what faster NVLink buys, from today's point.
  const std::size_t nHi = nics.size() - 1;
  const std::size_t vHi = nvlinks.size() - 1;
  std::ostringstream headline;
  headline << "From today's H800 (NVLink " << nvlinks[v0] << " GB/s, " << nics[n0] << " Gb/s NICs: " << fmt("%.0f", ref)
           << " us for an EP64 dispatch + combine), " << nics[nHi] << " Gb/s NICs alone give "
           << fmt("%.2f", ref / total(at(v0, nHi))) << "x, NVLink at " << nvlinks[vHi] << " GB/s alone "
           << fmt("%.2f", ref / total(at(vHi, n0))) << "x, and both " << fmt("%.2f", ref / total(at(vHi, nHi))) << "x ("
           << fmt("%.0f", total(at(vHi, nHi))) << " us).";

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  std::ostringstream md;
  md << "# Study f: NIC and NVLink bandwidth sweep for EP64 MoE dispatch/combine\n\n"
     << "_Generated by `" << reproduceCommand(o, info) << "` from the simulation results; do not edit by hand._\n\n"
     << "## Question\n\n"
     << "DeepEP's forward path moves a token once over the scale-out network per target node and then fans it "
        "out over NVLink, so an EP64 dispatch/combine loads both fabrics. Which upgrade pays more: faster NICs "
        "(200, 400, 800 Gb/s per GPU) or faster NVLink (160 GB/s as on H800, 320, 450 as on H100, 900 as on "
        "GB200)? The DeepSeek-V3 report (arXiv:2412.19437, section 3.2.2) designs its routing around the ratio "
        "of the two (NVLink 160 GB/s is 3.2x IB's 50 GB/s).\n\n"
     << "## Setup\n\n"
     << "- Fabric: `topologies/" << kTopology
     << ".yaml` (2048 H800, 8-plane fat-tree) with the node template's overrides `nic_bw=<N>Gb/s` (each NIC and "
        "its leaf link) and `nvlink_bw=<B>GB/s` (each GPU's NVSwitch link, per direction); EP64 on the first 8 "
        "servers.\n"
     << "- MoE layer of DeepSeek-V3: " << tokens
     << " tokens per rank, hidden 7168, top-8 of 256 routed experts, at most 4 nodes per token (uniform "
        "node-limited routing, seed 1), FP8 dispatch with scales, BF16 combine, DeepEP's forward path "
        "(tools/moe_sim.hpp, docs/moe.md).\n"
     << "- Reference: NVLink " << nvlinks[v0] << " GB/s with " << nics[n0] << " Gb/s NICs.\n\n"
     << "## Results\n\n"
     << kHeadlineMarker << headline.str() << "\n\n"
     << "![dispatch + combine by NIC bandwidth](" << info.id << "-" << info.slug << ".svg)\n\n";
  MarkdownTable t({"NVLink (GB/s)", "NIC (Gb/s)", "dispatch (us)", "combine (us)", "total (us)", "speed-up",
                   "dispatch GB/s", "combine GB/s"});
  for (std::size_t v = 0; v < nvlinks.size(); ++v) {
    for (std::size_t n = 0; n < nics.size(); ++n) {
      const auto& r = at(v, n);
      t.addRow({std::to_string(nvlinks[v]), std::to_string(nics[n]), fmt("%.1f", r.dispatch.microseconds()),
                fmt("%.1f", r.combine.microseconds()), fmt("%.1f", total(r)), fmt("%.2f", ref / total(r)),
                fmt("%.1f", r.dispatchGBps), fmt("%.1f", r.combineGBps)});
    }
  }
  md << t.render() << '\n'
     << "Speed-up: the reference's time over this row's. DeepEP GB/s: received rows per rank x bytes per token "
        "/ time (docs/moe.md). Data: ["
     << info.id << "-" << info.slug << ".csv](" << info.id << "-" << info.slug << ".csv).\n\n"
     << "## Limits\n\n"
     << "- " << tokens
     << " tokens per rank instead of DeepEP's 4096, to keep the study within about three minutes on two cores; "
        "times scale close to linearly with tokens at these sizes.\n"
     << "- Only the link rates change: NVLink and NIC latencies, the device's issue cost (0.7 us per put) and "
        "message rate (1.8 M ops/s per lane), PCIe (64 GB/s per direction) and memory bandwidth stay as on "
        "H800, except that NICs faster than 400 Gb/s get PCIe Gen6 links (`pcie_bw=128GB/s`; Gen5's 64 GB/s "
        "would cap an 800 Gb/s NIC at 512 Gb/s).\n"
     << "- EP64 sits on the first 8 servers, whose NICs share a leaf in every plane: no spine traffic, so the "
        "network core's bandwidth does not enter.\n"
     << "- Forward path only, uniform routing; study c compares the paths and a skewed routing.\n\n"
     << "## Reproduce\n\n"
     << "```\n"
     << info.script << (o.quick ? " --quick" : "") << "    # builds copro-study, then runs:\n"
     << reproduceCommand(o, info) << "\n```\n\n"
     << cases.size() << " MoE simulations (each a dispatch and a combine); about " << fmt("%.0f", std::max(1.0, wall))
     << " s of wall time on " << workersText(o) << " when generated.\n";
  writeStudyFile(o, prefix + ".md", md.str());

  std::printf("study f: %s\n", headline.str().c_str());
  std::printf("  wrote %s.csv, %s.svg, %s.md (%.1f s)\n", prefix.c_str(), prefix.c_str(), prefix.c_str(), wall);
}

}  // namespace copro::tools::study
