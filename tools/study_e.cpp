// Study (e): PXN on/off on a rail-optimized fabric (rail-optimized-128.yaml): pairwise all-to-all by size and rank
// count, PXN levels 0/1/2: bytes through the spine switches (none with PXN; the study checks it) and time. Then
// the multi-plane fat-tree (deepseek-v3.yaml), where PXN moves cross-plane traffic off the host root complex.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "copro/core/status.hpp"
#include "plot.hpp"
#include "study_common.hpp"

namespace copro::tools::study {

namespace {

using collectives::CollectiveKind;

constexpr const char* kRail = "rail-optimized-128";
constexpr const char* kMpft = "deepseek-v3";

struct Point {
  const char* topology;
  std::int32_t ranks;
  std::uint64_t size;
};

std::string mb(std::uint64_t bytes) {
  return fmt("%.1f", static_cast<double>(bytes) / 1e6);
}

}  // namespace

void runStudyE(const StudyOptions& o) {
  const auto wallStart = std::chrono::steady_clock::now();
  const StudyInfo& info = findStudy("e");
  constexpr std::uint64_t kMiB = 1ULL << 20;
  // Sizes per rank count: PXN-off runs at 128 ranks and 64 MiB take minutes to simulate (every off-rail flow
  // shares the spines, one max-min component), so 64 MiB runs at 32 ranks only.
  std::vector<Point> points;
  if (o.quick) {
    points = {{kRail, 32, kMiB}, {kRail, 64, kMiB}, {kMpft, 64, kMiB}};
  } else {
    for (std::uint64_t s : {1U, 4U, 16U, 64U}) points.push_back({kRail, 32, s * kMiB});
    for (std::int32_t r : {64, 128}) {
      for (std::uint64_t s : {1U, 4U, 16U}) points.push_back({kRail, r, s * kMiB});
    }
    for (std::int32_t r : {64, 128}) {
      for (std::uint64_t s : {1U, 4U}) points.push_back({kMpft, r, s * kMiB});
    }
  }
  const std::vector<std::int32_t> levels = {0, 1, 2};
  std::vector<StudyCase> cases;
  for (const auto& p : points) {
    for (std::int32_t level : levels) {
      StudyCase c;
      c.topology = p.topology;
      c.kind = CollectiveKind::kAllToAll;
      c.algorithm = "pairwise";
      c.size = p.size;
      c.ranks = p.ranks;
      c.dtype = core::DataType::kFloat32;
      c.pxnLevel = level;
      cases.push_back(c);
    }
  }
  std::fprintf(stderr, "copro-study e: %zu simulations on %s\n", cases.size(), workersText(o).c_str());
  const auto results = runStudyCases(cases, o);
  const std::size_t nL = levels.size();
  auto at = [&](std::size_t p, std::size_t l) -> const StudyOutcome& { return results[p * nL + l]; };

  // The claim of PXN on a rail-optimized fabric: every byte stays on its rail's leaf, none reaches a spine;
  // without it, the off-rail puts of a multi-server group cross the spines.
  for (std::size_t p = 0; p < points.size(); ++p) {
    if (at(p, 0).nodes < 2) continue;
    // Multi-plane: the off-plane bytes leave the host root complex instead of the spines.
    const bool rail = std::string(points[p].topology) == kRail;
    for (std::size_t l = 0; l < nL; ++l) {
      const auto& r = at(p, l);
      const std::uint64_t b = rail ? r.spineBytes : r.hostBytes;
      const bool ok = levels[l] > 0 ? b == 0 : b > 0;
      if (!ok) {
        throw core::Error(core::ErrorCode::kInternal,
                          "study e: " + std::to_string(points[p].ranks) + " ranks, " + bytesText(points[p].size) +
                              ", PXN " + std::to_string(levels[l]) + " on " + points[p].topology + ": " +
                              std::to_string(b) + " B entered " + (rail ? "spine switches" : "host root complexes") +
                              "; expected " + (levels[l] > 0 ? "none with PXN" : "some without PXN") +
                              " (a regression of collectives::applyPxn or of the simulator's routing)");
      }
    }
  }

  const std::string prefix = studyPrefix(o, info);
  std::ostringstream csv;
  csv << "topology,ranks,servers,size,pxn,time_us,ratio_over_pxn0,algbw_GBps,busbw_GBps,spine_bytes,network_bytes,"
         "host_bytes,flows\n";
  for (std::size_t p = 0; p < points.size(); ++p) {
    for (std::size_t l = 0; l < nL; ++l) {
      const auto& r = at(p, l);
      csv << points[p].topology << ',' << points[p].ranks << ',' << r.nodes << ',' << r.bytes << ',' << levels[l] << ','
          << fmt("%.3f", r.timeUs) << ',' << fmt("%.4f", r.timeUs / at(p, 0).timeUs) << ',' << fmt("%.3f", r.algbwGBps)
          << ',' << fmt("%.3f", r.busbwGBps) << ',' << r.spineBytes << ',' << r.networkBytes << ',' << r.hostBytes
          << ',' << r.flows << '\n';
    }
  }
  writeStudyFile(o, prefix + ".csv", csv.str());

  // Plot: rail-optimized, time by size, one line per (ranks, PXN level).
  std::vector<std::int32_t> railRanks;
  for (const auto& p : points) {
    if (std::string(p.topology) == kRail && std::find(railRanks.begin(), railRanks.end(), p.ranks) == railRanks.end())
      railRanks.push_back(p.ranks);
  }
  std::vector<PlotSeries> series;
  for (std::int32_t rk : railRanks) {
    for (std::size_t l = 0; l < nL; ++l) {
      PlotSeries s;
      s.name = std::to_string(rk) + " ranks, PXN " + std::to_string(levels[l]);
      for (std::size_t p = 0; p < points.size(); ++p) {
        if (std::string(points[p].topology) != kRail || points[p].ranks != rk) continue;
        s.x.push_back(static_cast<double>(at(p, l).bytes));
        s.y.push_back(at(p, l).timeUs);
      }
      series.push_back(std::move(s));
    }
  }
  PlotOptions po;
  po.title = "Study e: pairwise all-to-all with and without PXN on a rail-optimized fabric";
  po.subtitle = "rail-optimized-128.yaml (16 H800 servers, 8 rail leaves, 2 spines); PXN 0 off, 1 relay, 2 aggregate";
  po.x.label = "size per rank (bytes)";
  po.x.scale = AxisScale::kLog2;
  po.x.format = TickFormat::kBytes;
  po.x.includeZero = false;
  po.y.label = "time (us)";
  po.y.scale = AxisScale::kLog2;
  po.y.includeZero = false;
  po.width = 1000;
  writeStudyChart(o, prefix + ".svg", series, po);

  // Headline: the largest rail point with the most ranks; the MPFT's host bytes.
  std::size_t h = 0;
  std::size_t m = points.size();
  for (std::size_t p = 0; p < points.size(); ++p) {
    if (std::string(points[p].topology) == kRail) {
      if (points[p].ranks > points[h].ranks || (points[p].ranks == points[h].ranks && points[p].size >= points[h].size))
        h = p;
    } else if (m == points.size() || points[p].ranks > points[m].ranks ||
               (points[p].ranks == points[m].ranks && points[p].size >= points[m].size)) {
      m = p;
    }
  }
  std::size_t bestL = 1;
  for (std::size_t l = 1; l < nL; ++l) {
    if (at(h, l).timeUs < at(h, bestL).timeUs) bestL = l;
  }
  std::ostringstream headline;
  headline << "With PXN no byte of a pairwise all-to-all reaches a spine switch of rail-optimized-128 (vs "
           << mb(at(h, 0).spineBytes) << " MB without, " << points[h].ranks << " ranks x " << bytesText(points[h].size)
           << "), and the all-to-all takes " << fmt("%.1f", at(h, bestL).timeUs) << " us with PXN " << levels[bestL]
           << " vs " << fmt("%.1f", at(h, 0).timeUs) << " us without ("
           << fmt("%.2f", at(h, 0).timeUs / at(h, bestL).timeUs) << "x)";
  if (m < points.size()) {
    headline << "; on deepseek-v3.yaml (multi-plane) PXN cuts the bytes through the host root complex from "
             << mb(at(m, 0).hostBytes) << " MB to " << mb(at(m, 1).hostBytes) << " MB (" << points[m].ranks
             << " ranks x " << bytesText(points[m].size) << ")";
  }
  headline << ".";

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wallStart).count();
  std::ostringstream md;
  md << "# Study e: PXN on a rail-optimized fabric\n\n"
     << "_Generated by `" << reproduceCommand(o, info) << "` from the simulation results; do not edit by hand._\n\n"
     << "## Question\n\n"
     << "On a rail-optimized network NIC i of every server sits on the rail-i leaf, so a message from GPU i of "
        "one server to GPU j != i of another must cross the spine layer. PXN (NCCL 2.12, \"PCI x NVLink\") first "
        "moves such a message over NVLink to the sender's local GPU j, which sends it on rail j: the spine layer "
        "carries nothing (docs/pxn.md). What does that do to the spine traffic and the time of an all-to-all, "
        "the collective that sends the most off-rail? And on DeepSeek-V3's multi-plane fat-tree, where the "
        "planes are not joined at all and an off-plane message goes through the host's PCIe root complex "
        "(DeepSeek's ISCA'25 paper, arXiv:2505.09343, discusses PXN on its multi-plane network)?\n\n"
     << "## Setup\n\n"
     << "- `topologies/" << kRail
     << ".yaml`: 16 H800 servers, 8 rail leaves (one per NIC index), 2 spines, 64-port switches, rail-aware "
        "routing; ranks packed onto servers in order.\n"
     << "- `topologies/" << kMpft << ".yaml`: 2048 H800 on an 8-plane fat-tree; ranks packed in order.\n"
     << "- Call: `pairwise` all-to-all (float32); size = bytes per rank (nccl-tests convention); PXN level "
        "`CollectiveArgs::pxnLevel`: 0 off, 1 relay every off-rail put through the rail-aligned local GPU, 2 "
        "also aggregate at the relay the puts of several local GPUs to one remote rank.\n"
     << "- Spine bytes: bytes entering tier-1 switches from leaves; host bytes: bytes entering a server's root "
        "complex. The study checks that every case spanning 2+ servers has zero spine bytes (rail-optimized) "
        "or host bytes (multi-plane) with PXN and some without, and fails otherwise.\n\n"
     << "## Results\n\n"
     << kHeadlineMarker << headline.str() << "\n\n"
     << "![time by size](" << info.id << "-" << info.slug << ".svg)\n\n";
  MarkdownTable t({"topology", "ranks", "size", "PXN", "time (us)", "vs PXN 0", "busbw (GB/s)", "spine MB",
                   "network MB", "host MB"},
                  {false, true, true, true, true, true, true, true, true, true});
  for (std::size_t p = 0; p < points.size(); ++p) {
    for (std::size_t l = 0; l < nL; ++l) {
      const auto& r = at(p, l);
      t.addRow({points[p].topology, std::to_string(points[p].ranks), bytesText(r.bytes), std::to_string(levels[l]),
                fmt("%.1f", r.timeUs), fmt("%.3f", r.timeUs / at(p, 0).timeUs), fmt("%.1f", r.busbwGBps),
                mb(r.spineBytes), mb(r.networkBytes), mb(r.hostBytes)});
    }
  }
  md << t.render() << '\n'
     << "Data: [" << info.id << "-" << info.slug << ".csv](" << info.id << "-" << info.slug << ".csv).\n\n";
  double lo = 1e300;
  double hi = 0;
  for (std::size_t p = 0; p < points.size(); ++p) {
    if (std::string(points[p].topology) != kRail || at(p, 0).nodes < 2) continue;
    for (std::size_t l = 1; l < nL; ++l) {
      lo = std::min(lo, at(p, l).timeUs / at(p, 0).timeUs);
      hi = std::max(hi, at(p, l).timeUs / at(p, 0).timeUs);
    }
  }
  md << "On rail-optimized-128, PXN's time ranges from " << fmt("%.2f", lo) << "x to " << fmt("%.2f", hi)
     << "x the time without it over these cases: with a non-blocking spine layer, moving the off-rail bytes off "
        "the spines saves little time, while the relay adds an NVLink hop and an issue per relayed put, and level 2 "
        "holds "
        "puts back until it can aggregate them. PXN's value here is the spine traffic it removes "
        "(and, on the multi-plane fabric, the root-complex traffic).\n\n"
     << "## Limits\n\n"
     << "- 64 MiB runs at 32 ranks only: without PXN, the simulation of 128 ranks at 64 MiB takes minutes (every "
        "off-rail flow shares the two spines, so every flow completion re-solves one large max-min component).\n"
     << "- The spine layer of `rail-optimized-128.yaml` is non-blocking; on an oversubscribed spine, PXN's gain "
        "in time would be larger. The relay's NVLink hop and its issue cost are what PXN pays.\n"
     << "- One all-to-all alone: no other job's traffic shares the spines or the root complexes.\n\n"
     << "## Reproduce\n\n"
     << "```\n"
     << info.script << (o.quick ? " --quick" : "") << "    # builds copro-study, then runs:\n"
     << reproduceCommand(o, info) << "\n```\n\n"
     << cases.size() << " simulations; about " << fmt("%.0f", std::max(1.0, wall)) << " s of wall time on "
     << workersText(o) << " when generated.\n";
  writeStudyFile(o, prefix + ".md", md.str());

  std::printf("study e: %s\n", headline.str().c_str());
  std::printf("  wrote %s.csv, %s.svg, %s.md (%.1f s)\n", prefix.c_str(), prefix.c_str(), prefix.c_str(), wall);
}

}  // namespace copro::tools::study
