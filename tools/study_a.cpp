// Study (a): multi-plane fat-tree (MPFT, deepseek-v3.yaml) vs multi-rail fat-tree (MRFT, mrft-2048.yaml) on
// 2048 H800: all-to-all (EP64, packed and spread over leaves) and all-reduce over every GPU, by size.
#include <algorithm>
#include <chrono>
#include <cmath>
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

struct FabricSpec {
  std::string label;     ///< "MPFT"
  std::string topology;  ///< bundled name
};

struct Workload {
  std::string key;    ///< CSV value
  std::string label;  ///< table and plot
  CollectiveKind kind;
  std::string algorithm;
  std::int32_t ranks;
  std::int32_t spreadServers;  ///< > 0: that many servers, spreadStride apart
  std::int32_t spreadStride;
  std::vector<std::uint64_t> sizes;
};

std::string ratioPhrase(double r) {
  const double pct = std::abs(r - 1.0) * 100.0;
  if (pct < 0.05) return "level with MRFT (ratio " + fmt("%.3f", r) + ")";
  return "within " + fmt(pct < 10 ? "%.1f" : "%.0f", pct) + "% of MRFT (" + (r < 1 ? "faster" : "slower") + ", ratio " +
         fmt("%.3f", r) + ")";
}

std::string gb(std::uint64_t bytes) {
  return fmt("%.2f", static_cast<double>(bytes) / 1e9);
}

std::string describeFabric(const topo::Fabric& f) {
  std::int32_t leaves = 0;
  std::int32_t usedLeaves = 0;
  std::int32_t spines = 0;
  std::int32_t nics = 0;
  for (std::size_t i = 0; i < f.nodes().size(); ++i) {
    const auto& n = f.node(static_cast<std::int32_t>(i));
    if (n.kind == topo::NodeKind::kSwitch && n.tier == 0) {
      ++leaves;
      for (std::int32_t l : f.linksOf(static_cast<std::int32_t>(i))) {
        const auto& link = f.link(l);
        if (f.node(link.a).kind == topo::NodeKind::kNic || f.node(link.b).kind == topo::NodeKind::kNic) {
          ++usedLeaves;
          break;
        }
      }
    }
    if (n.kind == topo::NodeKind::kSwitch && n.tier == 1) ++spines;
    if (n.kind == topo::NodeKind::kNic) ++nics;
  }
  return std::to_string(f.gpus().size()) + " GPUs, " + std::to_string(nics) + " NICs, " + std::to_string(leaves) +
         " leaves (" + std::to_string(usedLeaves) + " with servers) + " + std::to_string(spines) +
         " spines, bisection " +
         (f.bisectionBandwidth ? fmt("%.1f", f.bisectionBandwidth->bytesPerSecond() / 1e12) + " TB/s per direction"
                               : std::string("unknown"));
}

}  // namespace

void runStudyA(const StudyOptions& o) {
  const auto wallStart = std::chrono::steady_clock::now();
  const StudyInfo& info = findStudy("a");
  const std::vector<FabricSpec> fabricSpecs = {{"MPFT", "deepseek-v3"}, {"MRFT", "mrft-2048"}};
  const std::uint64_t M = 1ULL << 20;
  const std::vector<std::uint64_t> a2aSizes =
      o.quick ? std::vector<std::uint64_t>{M, 2 * M}
              : std::vector<std::uint64_t>{M, 2 * M, 4 * M, 8 * M, 16 * M, 32 * M, 64 * M};
  const std::vector<std::uint64_t> arSizes =
      o.quick ? std::vector<std::uint64_t>{M} : std::vector<std::uint64_t>{M, 4 * M, 16 * M, 64 * M};
  // Both fabrics put 32 servers on a leaf (per plane / per rail): 8 servers 32 apart sit on 8 leaves.
  const std::vector<Workload> workloads = {
      {"a2a-ep64", "all-to-all EP64 (8 servers, one leaf)", CollectiveKind::kAllToAll, "pairwise", 64, 0, 0, a2aSizes},
      {"a2a-ep64-spread", "all-to-all EP64 spread (8 servers on 8 leaves)", CollectiveKind::kAllToAll, "pairwise", 64,
       8, 32, a2aSizes},
      {"ar-2048", "all-reduce 2048 GPUs (hier)", CollectiveKind::kAllReduce, "hier", 2048, 0, 0, arSizes},
  };

  std::vector<StudyCase> cases;
  struct Key {
    std::size_t workload;
    std::size_t fabric;
    std::uint64_t size;
  };
  std::vector<Key> keys;
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    const auto& wl = workloads[w];
    for (std::size_t f = 0; f < fabricSpecs.size(); ++f) {
      const auto& fabric = loadFabric(fabricSpecs[f].topology);
      for (std::uint64_t size : wl.sizes) {
        StudyCase c;
        c.topology = fabricSpecs[f].topology;
        c.kind = wl.kind;
        c.algorithm = wl.algorithm;
        c.size = size;
        c.ranks = wl.ranks;
        if (wl.spreadServers > 0) c.placement = spreadPlacement(fabric, wl.spreadServers, wl.spreadStride);
        cases.push_back(c);
        keys.push_back({w, f, size});
      }
    }
  }
  // Longest first, so the threads finish together (the 2048-rank all-reduce at the largest size dominates).
  std::vector<std::size_t> order(cases.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    return std::make_pair(cases[x].ranks, cases[x].size) > std::make_pair(cases[y].ranks, cases[y].size);
  });
  std::vector<StudyCase> sorted;
  sorted.reserve(order.size());
  for (std::size_t i : order) sorted.push_back(cases[i]);
  std::fprintf(stderr, "copro-study a: %zu simulations on %s\n", cases.size(), workersText(o).c_str());
  const auto sortedOut = runStudyCases(sorted, o);
  std::vector<StudyOutcome> results(cases.size());
  for (std::size_t i = 0; i < order.size(); ++i) results[order[i]] = sortedOut[i];

  auto find = [&](std::size_t w, std::size_t f, std::uint64_t size) -> const StudyOutcome* {
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].workload == w && keys[i].fabric == f && keys[i].size == size) return &results[i];
    }
    return nullptr;
  };

  // CSV: one row per (workload, fabric, size); deterministic (no wall-clock figures).
  const std::string prefix = studyPrefix(o, info);
  std::ostringstream csv;
  csv << "workload,fabric,topology,collective,algorithm,ranks,servers,size,time_us,algbw_GBps,busbw_GBps,"
         "ratio_mpft_over_mrft,spine_bytes,network_bytes,host_bytes,bytes_put,flows\n";
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto& k = keys[i];
    const auto& r = results[i];
    const StudyOutcome* mpft = find(k.workload, 0, k.size);
    const StudyOutcome* mrft = find(k.workload, 1, k.size);
    const double ratio = mpft->timeUs / mrft->timeUs;
    csv << workloads[k.workload].key << ',' << fabricSpecs[k.fabric].label << ',' << r.topologyName << ','
        << collectives::collectiveName(cases[i].kind) << ',' << r.algorithm << ',' << r.ranks << ',' << r.nodes << ','
        << r.bytes << ',' << fmt("%.3f", r.timeUs) << ',' << fmt("%.3f", r.algbwGBps) << ',' << fmt("%.3f", r.busbwGBps)
        << ',' << fmt("%.4f", ratio) << ',' << r.spineBytes << ',' << r.networkBytes << ',' << r.hostBytes << ','
        << r.bytesPut << ',' << r.flows << '\n';
  }
  writeStudyFile(o, prefix + ".csv", csv.str());

  // Plot: bus bandwidth by size, one line per (workload, fabric).
  std::vector<PlotSeries> series;
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    for (std::size_t f = 0; f < fabricSpecs.size(); ++f) {
      PlotSeries s;
      s.name = workloads[w].label + " - " + fabricSpecs[f].label;
      for (std::uint64_t size : workloads[w].sizes) {
        const auto* r = find(w, f, size);
        s.x.push_back(static_cast<double>(r->bytes));
        s.y.push_back(r->busbwGBps);
      }
      series.push_back(std::move(s));
    }
  }
  PlotOptions po;
  po.title = "Study a: multi-plane (MPFT) vs multi-rail (MRFT) fat-tree, 2048 H800";
  po.subtitle = "deepseek-v3.yaml vs mrft-2048.yaml; pairwise all-to-all on EP64, hier all-reduce on 2048 GPUs";
  po.x.label = "size per rank (bytes, nccl-tests convention)";
  po.x.scale = AxisScale::kLog2;
  po.x.format = TickFormat::kBytes;
  po.y.label = "bus bandwidth (GB/s)";
  po.width = 1100;
  writeStudyChart(o, prefix + ".svg", series, po);

  // The headline: at 16 MiB (or the largest size run, under --quick).
  auto headlineSize = [&](const Workload& wl) {
    std::uint64_t best = wl.sizes.front();
    for (std::uint64_t s : wl.sizes) {
      if (s <= 16 * M) best = s;
    }
    return best;
  };
  const std::uint64_t hA2a = headlineSize(workloads[0]);
  const std::uint64_t hAr = headlineSize(workloads[2]);
  const double rA2a = find(0, 0, hA2a)->timeUs / find(0, 1, hA2a)->timeUs;
  const double rSpread = find(1, 0, hA2a)->timeUs / find(1, 1, hA2a)->timeUs;
  const double rAr = find(2, 0, hAr)->timeUs / find(2, 1, hAr)->timeUs;
  std::ostringstream headline;
  headline << "At " << bytesText(hA2a) << " per rank, MPFT is " << ratioPhrase(rA2a) << " for EP64 all-to-all ("
           << fmt("%.1f", find(0, 0, hA2a)->timeUs) << " vs " << fmt("%.1f", find(0, 1, hA2a)->timeUs) << " us), "
           << ratioPhrase(rSpread) << " with the group spread over 8 leaves, and " << ratioPhrase(rAr)
           << " for the 2048-GPU all-reduce at " << bytesText(hAr) << " (" << fmt("%.1f", find(2, 0, hAr)->timeUs)
           << " vs " << fmt("%.1f", find(2, 1, hAr)->timeUs) << " us); packed EP64 sends "
           << gb(find(0, 1, hA2a)->spineBytes) << " GB through MRFT's spines and " << gb(find(0, 0, hA2a)->spineBytes)
           << " GB through MPFT's, whose cross-plane pairs cross the hosts (" << gb(find(0, 0, hA2a)->hostBytes)
           << " GB) instead.";

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  std::ostringstream md;
  md << "# Study a: multi-plane vs multi-rail fat-tree on 2048 H800\n\n"
     << "_Generated by `" << reproduceCommand(o, info) << "` from the simulation results; do not edit by hand._\n\n"
     << "## Question\n\n"
     << "DeepSeek-V3 was trained on a **multi-plane fat-tree** (MPFT): each of a server's 8 NICs sits in its own "
        "plane, an independent 2-tier fat-tree, so a GPU reaches another plane only through a peer GPU of its "
        "server. The usual alternative is a **multi-rail fat-tree** (MRFT): NIC i of every server on the rail-i "
        "leaves, and one shared spine layer joining the rails. The DeepSeek-V3 ISCA'25 paper (Zhao et al., "
        "\"Insights into DeepSeek-V3: Scaling Challenges and Reflections on Hardware for AI Architectures\", "
        "arXiv:2505.09343, in its section on the multi-plane network) reports that the two perform nearly the same in "
        "all-to-all tests and "
        "training while MPFT costs less and scales to 16,384 GPUs in two tiers. Does the simulator agree, by "
        "message size, for the expert-parallel all-to-all and the data-parallel all-reduce?\n\n"
     << "## Setup\n\n";
  MarkdownTable fabrics({"fabric", "topology file", "what"}, {false, false, false});
  for (const auto& f : fabricSpecs) {
    fabrics.addRow({f.label, "`topologies/" + f.topology + ".yaml`", describeFabric(loadFabric(f.topology))});
  }
  md << fabrics.render() << '\n';
  const auto& mp = loadFabric("deepseek-v3");
  const sim::SimParams params = sim::SimParams::fromFabric(mp);
  const auto& dev = params.initiation[static_cast<int>(core::Initiation::kDevice)];
  md << "Both: HGX H800 servers (8 GPUs on NVSwitch at 160 GB/s per direction, one 400 Gb/s CX7 NIC per GPU), "
        "64-port switches, ECMP routing, "
     << bytesText(params.chunkBytes) << " chunks, device-initiated lanes (" << fmt("%.2f", dev.issue.microseconds())
     << " us per op" << (dev.messageRate > 0 ? ", " : "")
     << (dev.messageRate > 0 ? fmt("%.3g", dev.messageRate) + " ops/s per lane" : std::string()) << ").\n\n"
     << "Workloads (float32; sizes are the nccl-tests size per rank):\n\n"
     << "- **all-to-all EP64**: `pairwise` on ranks 0-63 (8 servers; both fabrics put them on one leaf per "
        "plane/rail, so only MRFT's cross-rail pairs go through a spine);\n"
     << "- **all-to-all EP64 spread**: the same on 8 servers 32 apart (servers 0, 32, ..., 224: one per leaf), so "
        "every inter-server byte crosses the spine layer;\n"
     << "- **all-reduce 2048**: `hier` over every GPU (ring reduce-scatter inside each server over NVLink, an "
        "all-reduce of each piece along its rail across the 256 servers, ring all-gather inside each server; "
        "docs/algorithms.md): all its network traffic stays on one rail / plane.\n\n"
     << "Spine bytes are the bytes entering tier-1 switches from leaves; host bytes are the bytes that "
        "cross a server's host root complex (the simulator's slow path when the source's NIC cannot reach "
        "the destination's: MPFT's cross-plane pairs without PXN).\n\n"
     << "## Results\n\n"
     << kHeadlineMarker << headline.str() << "\n\n"
     << "![bus bandwidth by size](" << info.id << "-" << info.slug << ".svg)\n\n";
  MarkdownTable t({"workload", "size", "MPFT time (us)", "MRFT time (us)", "MPFT/MRFT", "MPFT busbw (GB/s)",
                   "MRFT busbw (GB/s)", "MPFT spine (GB)", "MRFT spine (GB)", "MPFT host (GB)"},
                  {false, true, true, true, true, true, true, true, true, true});
  for (std::size_t w = 0; w < workloads.size(); ++w) {
    for (std::uint64_t size : workloads[w].sizes) {
      const auto* a = find(w, 0, size);
      const auto* b = find(w, 1, size);
      t.addRow({workloads[w].label, bytesText(a->bytes), fmt("%.1f", a->timeUs), fmt("%.1f", b->timeUs),
                fmt("%.3f", a->timeUs / b->timeUs), fmt("%.1f", a->busbwGBps), fmt("%.1f", b->busbwGBps),
                gb(a->spineBytes), gb(b->spineBytes), gb(a->hostBytes)});
    }
  }
  md << t.render() << '\n'
     << "Data: [" << info.id << "-" << info.slug << ".csv](" << info.id << "-" << info.slug
     << ".csv) (every figure above, plus algbw, network bytes, flows).\n\n"
     << "## Limits\n\n"
     << "- Flow-level model (max-min fair sharing, no packets, queues or congestion control): ECMP hash "
        "collisions show as shared links, but not incast, PFC or adaptive-routing effects the paper's "
        "measurements include.\n"
     << "- No PXN here: an MPFT pair on different planes takes the simulator's slow path over PCIe through "
        "the host root complex; with NCCL's PXN it would relay over NVLink instead (study e). MRFT keeps "
        "such traffic in the network through a spine.\n"
     << "- One algorithm per collective (pairwise all-to-all, hierarchical all-reduce), one job on an idle "
        "fabric; no background traffic, failures or job placement effects beyond the two placements shown.\n"
     << "- The paper's comparison used NCCL all-to-all tests and training runs on real clusters; the numbers "
        "here are simulated, so only the trend (MPFT close to MRFT) is comparable, not the figures.\n\n"
     << "## Reproduce\n\n"
     << "```\n"
     << info.script << (o.quick ? " --quick" : "") << "    # builds copro-study, then runs:\n"
     << reproduceCommand(o, info) << "\n```\n\n"
     << cases.size() << " simulations; about " << fmt("%.0f", std::max(1.0, wall)) << " s of wall time on "
     << workersText(o) << " when generated.\n";
  writeStudyFile(o, prefix + ".md", md.str());

  std::printf("study a: %s\n", headline.str().c_str());
  std::printf("  wrote %s.csv, %s.svg, %s.md (%.1f s)\n", prefix.c_str(), prefix.c_str(), prefix.c_str(), wall);
}

}  // namespace copro::tools::study
