// The SVG plot writer: tick choice, labels, well-formed and deterministic output.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "copro/core/status.hpp"
#include "plot.hpp"

namespace {

using copro::tools::AxisScale;
using copro::tools::PlotOptions;
using copro::tools::PlotSeries;
using copro::tools::TickFormat;

int countOf(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + needle.size())) ++n;
  return n;
}

TEST(PlotTicks, LinearTicksAreNiceAndCoverTheRange) {
  EXPECT_EQ(copro::tools::linearTicks(0, 370), (std::vector<double>{0, 100, 200, 300, 400}));
  EXPECT_EQ(copro::tools::linearTicks(0, 1), (std::vector<double>{0, 0.2, 0.4, 0.6000000000000001, 0.8, 1}));
  auto t = copro::tools::linearTicks(3.2, 47.9);
  EXPECT_EQ(t.front(), 0);
  EXPECT_EQ(t.back(), 50);
  EXPECT_EQ(t.size(), 6U);  // step 10
  auto u = copro::tools::linearTicks(0, 23);
  EXPECT_EQ(u, (std::vector<double>{0, 5, 10, 15, 20, 25}));
}

TEST(PlotTicks, LogTicksArePowers) {
  EXPECT_EQ(copro::tools::logTicks(1024, 64.0 * 1024 * 1024, 2).front(), 1024);
  EXPECT_EQ(copro::tools::logTicks(1024, 64.0 * 1024 * 1024, 2).back(), 64.0 * 1024 * 1024);
  // 2^10 .. 2^26 is 17 powers: thinned to every second one, aligned to even exponents.
  auto t = copro::tools::logTicks(1024, 64.0 * 1024 * 1024, 2);
  EXPECT_EQ(t.size(), 9U);
  EXPECT_EQ(t[1], 4096);
  EXPECT_EQ(copro::tools::logTicks(3, 700, 10), (std::vector<double>{1, 10, 100, 1000}));
  EXPECT_EQ(copro::tools::logTicks(12, 80, 10), (std::vector<double>{10, 20, 50, 100}));
}

TEST(PlotTicks, LabelsReadAsSizesAndNumbers) {
  EXPECT_EQ(copro::tools::formatTick(1 << 20, TickFormat::kBytes), "1M");
  EXPECT_EQ(copro::tools::formatTick(64.0 * (1 << 20), TickFormat::kBytes), "64M");
  EXPECT_EQ(copro::tools::formatTick(1536, TickFormat::kBytes), "1.5K");
  EXPECT_EQ(copro::tools::formatTick(512, TickFormat::kBytes), "512");
  EXPECT_EQ(copro::tools::formatTick(4.0 * (1ULL << 30), TickFormat::kBytes), "4G");
  EXPECT_EQ(copro::tools::formatTick(0.30000000000000004, TickFormat::kNumber), "0.3");
  EXPECT_EQ(copro::tools::formatTick(250, TickFormat::kNumber), "250");
  EXPECT_EQ(copro::tools::formatTick(3e6, TickFormat::kNumber), "3e+06");
}

PlotOptions sizeOptions() {
  PlotOptions o;
  o.title = "allreduce <ring> & tree";
  o.subtitle = "8 ranks";
  o.x.label = "size (bytes per rank)";
  o.x.scale = AxisScale::kLog2;
  o.x.format = TickFormat::kBytes;
  o.y.label = "busbw (GB/s)";
  return o;
}

std::vector<PlotSeries> sampleSeries() {
  PlotSeries a{"algo=ring", {1 << 20, 16 << 20, 64 << 20}, {40.5, 120.25, 150}};
  PlotSeries b{"algo=tree", {1 << 20, 16 << 20, 64 << 20}, {60, std::nan(""), 140}};
  return {a, b};
}

TEST(PlotSvg, HasTitleLabelsTicksLegendAndOneMarkerPerPoint) {
  const std::string svg = copro::tools::renderLineChart(sampleSeries(), sizeOptions());
  EXPECT_EQ(svg.rfind("<svg ", 0), 0U);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("allreduce &lt;ring&gt; &amp; tree"), std::string::npos);  // escaped title
  EXPECT_NE(svg.find(">size (bytes per rank)</text>"), std::string::npos);
  EXPECT_NE(svg.find(">busbw (GB/s)</text>"), std::string::npos);
  for (const char* tick : {">1M<", ">4M<", ">16M<", ">64M<", ">0<", ">50<", ">100<", ">150<"}) {
    EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  }
  EXPECT_NE(svg.find(">algo=ring</text>"), std::string::npos);
  EXPECT_NE(svg.find(">algo=tree</text>"), std::string::npos);
  // 5 data markers (the NaN point is left out) + 2 legend markers.
  EXPECT_EQ(countOf(svg, "<circle "), 7);
  // The NaN breaks tree's line into two one-point runs: polylines for ring (1) and tree (2).
  EXPECT_EQ(countOf(svg, "<polyline "), 3);
  EXPECT_EQ(svg, copro::tools::renderLineChart(sampleSeries(), sizeOptions()));
}

TEST(PlotSvg, MismatchedSeriesIsAnError) {
  PlotSeries bad{"x", {1, 2}, {1}};
  EXPECT_THROW(copro::tools::renderLineChart({bad}, PlotOptions{}), copro::Error);
}

TEST(PlotSvg, EmptyChartSaysNoData) {
  const std::string svg = copro::tools::renderLineChart({}, PlotOptions{});
  EXPECT_NE(svg.find("no data"), std::string::npos);
}

}  // namespace
