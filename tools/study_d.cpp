// Study (d), first version: IBGDA (device-initiated) vs CPU proxy for a decode-size all-to-all: 128 tokens x
// 7168 B (FP8) per rank, pairwise, EP 8..256 on deepseek-v3.yaml. Two ways to charge the proxy: per-lane
// initiation through CollectiveArgs (what buildProgram applies), and the proxy's costs set on every lane
// through sim.initiation.* overrides (independent of the per-lane assignment).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "copro/core/units.hpp"
#include "plot.hpp"
#include "study_common.hpp"

namespace copro::tools::study {

namespace {

using collectives::CollectiveKind;
using core::Initiation;

constexpr std::uint64_t kTokens = 128;
constexpr std::uint64_t kHiddenBytes = 7168;  // DeepSeek-V3 hidden size, FP8: one byte per element
constexpr const char* kTopology = "deepseek-v3";

std::string timeText(core::Time t) {
  const std::int64_t ps = t.picoseconds();
  if (ps % 1000000 == 0) return std::to_string(ps / 1000000) + "us";
  if (ps % 1000 == 0) return std::to_string(ps / 1000) + "ns";
  return std::to_string(ps) + "ps";
}

std::string numberText(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// Overrides that give device-initiated lanes the costs of `mode` (all of them, so the result does not
/// depend on which lanes the per-lane assignment would give which mode).
std::vector<std::string> costOverrides(const sim::SimParams& p, Initiation mode) {
  const auto& m = p.initiation[static_cast<int>(mode)];
  const auto& d = p.initiation[static_cast<int>(Initiation::kDevice)];
  const std::string k = "sim.initiation.device.";
  std::vector<std::string> o = {k + "issue=" + timeText(m.issue), k + "extra_latency=" + timeText(m.extraLatency),
                                k + "message_rate=" + numberText(m.messageRate)};
  // Keys of the shared-server and NIC ceilings only where either mode sets them.
  if (m.rankMessageRate > 0 || d.rankMessageRate > 0)
    o.push_back(k + "rank_message_rate=" + numberText(m.rankMessageRate));
  if (m.rankBandwidth.bytesPerSecond() > 0 || d.rankBandwidth.bytesPerSecond() > 0) {
    o.push_back(k + "rank_bw=" + numberText(m.rankBandwidth.bytesPerSecond()));
  }
  if (m.nicMessageRate > 0 || d.nicMessageRate > 0) o.push_back(k + "nic_message_rate=" + numberText(m.nicMessageRate));
  return o;
}

std::string costText(const sim::InitiationCost& c) {
  std::string s = timeText(c.issue) + " per op";
  if (c.extraLatency.picoseconds() > 0) s += ", +" + timeText(c.extraLatency) + " latency";
  if (c.messageRate > 0) s += ", " + fmt("%.3g", c.messageRate) + " ops/s per lane";
  if (c.rankMessageRate > 0) s += ", " + fmt("%.3g", c.rankMessageRate) + " ops/s per rank";
  if (c.rankBandwidth.bytesPerSecond() > 0) {
    s += ", " + fmt("%.3g", c.rankBandwidth.bytesPerSecond() / 1e9) + " GB/s per rank";
  }
  if (c.nicMessageRate > 0) s += ", " + fmt("%.3g", c.nicMessageRate) + " ops/s per NIC";
  return s;
}

}  // namespace

void runStudyD(const StudyOptions& o) {
  const auto wallStart = std::chrono::steady_clock::now();
  const StudyInfo& info = findStudy("d");
  const std::vector<std::int32_t> eps =
      o.quick ? std::vector<std::int32_t>{8, 64} : std::vector<std::int32_t>{8, 16, 32, 64, 128, 256};
  const std::uint64_t perRank = kTokens * kHiddenBytes;  // 917,504 B: the all-to-all send buffer
  const auto& fabric = loadFabric(kTopology);
  const sim::SimParams params = sim::SimParams::fromFabric(fabric);
  const auto proxyOverrides = costOverrides(params, Initiation::kProxy);

  // Variants: device; proxy on the lanes that reach other servers (CollectiveArgs, applied by
  // buildProgram); proxy costs on every lane (sim.initiation.device.* overrides).
  enum Variant : std::size_t { kDeviceV = 0, kProxyLanes = 1, kProxyParams = 2, kVariants = 3 };
  const char* variantKey[] = {"device", "proxy-lanes", "proxy-params"};
  const char* variantLabel[] = {"device (IBGDA)", "proxy, per-lane initiation", "proxy, costs on every lane"};
  std::vector<StudyCase> cases;
  for (std::int32_t ep : eps) {
    for (std::size_t v = 0; v < kVariants; ++v) {
      StudyCase c;
      c.topology = kTopology;
      c.kind = CollectiveKind::kAllToAll;
      c.algorithm = "pairwise";
      c.dtype = core::DataType::kFloat8E4M3;
      c.size = perRank;
      c.ranks = ep;
      if (v == kProxyLanes) c.scaleOutInitiation = Initiation::kProxy;
      if (v == kProxyParams) c.overrides = proxyOverrides;
      cases.push_back(c);
    }
  }
  std::fprintf(stderr, "copro-study d: %zu simulations on %s\n", cases.size(), workersText(o).c_str());
  const auto results = runStudyCases(cases, o);
  auto at = [&](std::size_t e, std::size_t v) -> const StudyOutcome& { return results[e * kVariants + v]; };

  const std::string prefix = studyPrefix(o, info);
  std::ostringstream csv;
  csv << "ep,servers,variant,size,block_bytes,time_us,ratio_over_device,algbw_GBps,busbw_GBps,flows\n";
  for (std::size_t e = 0; e < eps.size(); ++e) {
    for (std::size_t v = 0; v < kVariants; ++v) {
      const auto& r = at(e, v);
      csv << eps[e] << ',' << r.nodes << ',' << variantKey[v] << ',' << r.bytes << ','
          << r.bytes / static_cast<std::uint64_t>(eps[e]) << ',' << fmt("%.3f", r.timeUs) << ','
          << fmt("%.4f", r.timeUs / at(e, kDeviceV).timeUs) << ',' << fmt("%.3f", r.algbwGBps) << ','
          << fmt("%.3f", r.busbwGBps) << ',' << r.flows << '\n';
    }
  }
  writeStudyFile(o, prefix + ".csv", csv.str());

  std::vector<PlotSeries> series;
  for (std::size_t v = 0; v < kVariants; ++v) {
    PlotSeries s;
    s.name = variantLabel[v];
    for (std::size_t e = 0; e < eps.size(); ++e) {
      s.x.push_back(eps[e]);
      s.y.push_back(at(e, v).timeUs);
    }
    series.push_back(std::move(s));
  }
  PlotOptions po;
  po.title = "Study d: IBGDA vs CPU proxy, decode all-to-all (128 tokens x 7168 B FP8 per rank)";
  po.subtitle = "deepseek-v3.yaml (2048 H800, MPFT); pairwise all-to-all; 917,504 B per rank";
  po.x.label = "expert-parallel group (ranks)";
  po.x.scale = AxisScale::kLog2;
  po.x.includeZero = false;
  for (std::int32_t ep : eps) po.x.ticks.emplace_back(ep, std::to_string(ep));
  po.y.label = "time (us)";
  po.width = 1000;
  writeStudyChart(o, prefix + ".svg", series, po);

  // Headline: per-lane initiation (proxy on the lanes that leave the server) once buildProgram applies it;
  // until then the cost-override variant. At EP64 if run; the range over the multi-server groups.
  std::size_t h = 0;
  for (std::size_t e = 0; e < eps.size(); ++e) {
    if (eps[e] <= 64) h = e;
  }
  bool lanesEffect = false;
  for (std::size_t e = 0; e < eps.size(); ++e) {
    lanesEffect = lanesEffect || at(e, kProxyLanes).timeUs != at(e, kDeviceV).timeUs;
  }
  const std::size_t hv = lanesEffect ? kProxyLanes : kProxyParams;
  auto ratio = [&](std::size_t e) { return at(e, hv).timeUs / at(e, kDeviceV).timeUs; };
  std::size_t lo = 0;
  while (lo + 1 < eps.size() && at(lo, kDeviceV).nodes < 2) ++lo;
  const std::size_t hi = eps.size() - 1;
  std::ostringstream headline;
  headline << "A decode-size all-to-all (" << perRank << " B per rank, pairwise) takes " << fmt("%.2f", ratio(h))
           << "x as long with the CPU proxy as with IBGDA at EP" << eps[h] << " (" << fmt("%.1f", at(h, hv).timeUs)
           << " vs " << fmt("%.1f", at(h, kDeviceV).timeUs) << " us), from " << fmt("%.2f", ratio(lo)) << "x at EP"
           << eps[lo] << " to " << fmt("%.2f", ratio(hi)) << "x at EP" << eps[hi] << " ("
           << (lanesEffect ? "proxy on the lanes that leave the server" : "proxy costs on every lane") << ").";
  // How much of the device time is the one lane issuing its EP-1 puts back to back.
  const auto& devCost = params.initiation[static_cast<int>(Initiation::kDevice)];
  const double issueUs = static_cast<double>(eps[hi] - 1) * devCost.issue.microseconds();

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  std::ostringstream md;
  md << "# Study d: IBGDA vs CPU proxy for decode-size all-to-all\n\n"
     << "_Generated by `" << reproduceCommand(o, info)
     << "` from the simulation results; do not edit by hand. First version: plain pairwise all-to-all (the "
        "MoE dispatch/combine simulation replaces it later)._\n\n"
     << "## Question\n\n"
     << "In decoding, each rank of an expert-parallel group sends only a few tokens to each expert, so the "
        "all-to-all is small and latency- and message-rate-bound. How much does the way transfers are started "
        "matter: the GPU ringing the NIC's doorbell itself (IBGDA, `device` lanes) or a CPU proxy thread "
        "posting work requests for it (`proxy` lanes), as the expert-parallel group grows from one server "
        "(EP8) to 32 servers (EP256)? (DeepSeek-V3 decodes with EP320 on 40 servers, DeepSeek-V3 "
        "technical report, arXiv:2412.19437, section 3.4; its DeepEP kernels use IBGDA, which the ISCA'25 "
        "paper arXiv:2505.09343 discusses.)\n\n"
     << "## Setup\n\n"
     << "- Fabric: `topologies/" << kTopology
     << ".yaml` (2048 H800 on an 8-plane 2-tier fat-tree), ranks "
        "0..EP-1 packed onto servers in order, ECMP routing.\n"
     << "- Call: `pairwise` all-to-all, FP8 (`float8e4m3`), " << kTokens << " tokens x " << kHiddenBytes
     << " B = " << perRank << " B per rank (the send buffer; EP blocks of " << perRank << "/EP B).\n"
     << "- Initiation costs of the topology's `sim.initiation` section: device "
     << costText(params.initiation[static_cast<int>(Initiation::kDevice)]) << "; proxy "
     << costText(params.initiation[static_cast<int>(Initiation::kProxy)])
     << " (docs/simulator.md, \"Initiation cost models\").\n"
     << "- Variants:\n"
     << "  - **device**: every lane device-initiated (the default);\n"
     << "  - **proxy, per-lane initiation**: `CollectiveArgs::scaleOutInitiation = proxy` (lanes that reach "
        "another server get the proxy, the others stay device), applied by `collectives::buildProgram`;\n"
     << "  - **proxy, costs on every lane**: every lane device-initiated but charged the proxy's costs "
        "through the overrides";
  for (const auto& ov : proxyOverrides) md << " `" << ov << "`";
  md << ".\n\n"
     << "## Results\n\n"
     << kHeadlineMarker << headline.str() << "\n\n"
     << "![time by EP size](" << info.id << "-" << info.slug << ".svg)\n\n";
  MarkdownTable t(
      {"EP", "servers", "block (B)", "device (us)", "proxy per-lane (us)", "ratio", "proxy costs (us)", "ratio"});
  for (std::size_t e = 0; e < eps.size(); ++e) {
    const auto& d = at(e, kDeviceV);
    t.addRow({std::to_string(eps[e]), std::to_string(d.nodes),
              std::to_string(d.bytes / static_cast<std::uint64_t>(eps[e])), fmt("%.2f", d.timeUs),
              fmt("%.2f", at(e, kProxyLanes).timeUs), fmt("%.3f", at(e, kProxyLanes).timeUs / d.timeUs),
              fmt("%.2f", at(e, kProxyParams).timeUs), fmt("%.3f", at(e, kProxyParams).timeUs / d.timeUs)});
  }
  md << t.render() << '\n'
     << "Data: [" << info.id << "-" << info.slug << ".csv](" << info.id << "-" << info.slug << ".csv).\n\n";
  if (!lanesEffect) {
    md << "The per-lane variant equals the device one at every EP size: this build does not yet assign "
          "initiation per lane (`collectives::assignInitiation` is the identity), so only the cost-override "
          "variant shows the proxy. Rerun the study once it does.\n\n";
  }
  md << "## Limits\n\n"
     << "- `pairwise` issues a rank's EP-1 puts from one lane, so at these sizes the time is mostly issue "
        "cost: at EP"
     << eps[hi] << ", " << eps[hi] - 1 << " puts x " << timeText(devCost.issue) << " = " << fmt("%.1f", issueUs)
     << " us of the device variant's " << fmt("%.1f", at(hi, kDeviceV).timeUs)
     << " us, and the ratio approaches the ratio of the issue costs. DeepEP spreads its puts over many warps "
        "and queue pairs; a multi-lane all-to-all would shrink both times and show the NIC and proxy-thread "
        "ceilings instead.\n"
     << "- Plain pairwise all-to-all with equal blocks, not DeepEP's dispatch/combine (top-8 routing, "
        "token deduplication per node, FP8 dispatch and BF16 combine): the MoE simulation will replace it.\n"
     << "- The proxy and IBGDA are cost models (per-op issue time, extra latency, message-rate ceilings), "
        "with the figures of the topology file; no PCIe doorbell or host-memory traffic is simulated.\n"
     << "- The cost-override variant charges the proxy's costs on NVLink transfers too (inside a server a "
        "real system uses GPU copies): it bounds the proxy's cost from above, most visibly at EP8.\n"
     << "- No PXN: on this multi-plane fabric, pairs on different planes take the simulator's slow path "
        "through the host (study e covers PXN).\n\n"
     << "## Reproduce\n\n"
     << "```\n"
     << info.script << (o.quick ? " --quick" : "") << "    # builds copro-study, then runs:\n"
     << reproduceCommand(o, info) << "\n```\n\n"
     << cases.size() << " simulations; about " << fmt("%.0f", std::max(1.0, wall)) << " s of wall time on "
     << workersText(o) << " when generated.\n";
  writeStudyFile(o, prefix + ".md", md.str());

  std::printf("study d: %s\n", headline.str().c_str());
  std::printf("  wrote %s.csv, %s.svg, %s.md (%.1f s)\n", prefix.c_str(), prefix.c_str(), prefix.c_str(), wall);
}

}  // namespace copro::tools::study
