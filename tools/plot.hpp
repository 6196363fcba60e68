#pragma once
/// A small SVG line-chart writer for the tools and benchmarks (copro-sim sweep/whatif, copro-perf): several
/// series, linear / log2 / log10 axes, nice ticks, byte-size tick labels, legend, title. The output is
/// plain SVG 1.1 (opens in any browser) and deterministic: the same data give the same bytes.
#include <string>
#include <utility>
#include <vector>

namespace copro::tools {

/// One line of the chart. Points with a non-finite coordinate, or a non-positive one on a log axis, are
/// left out and break the line there.
struct PlotSeries {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
};

enum class AxisScale { kLinear, kLog2, kLog10 };
/// How tick values are written: plain numbers ("0.5", "250", "1.2e+06") or byte sizes ("4K", "64M").
enum class TickFormat { kNumber, kBytes };

struct PlotAxis {
  std::string label;  ///< e.g. "bus bandwidth (GB/s)"
  AxisScale scale = AxisScale::kLinear;
  TickFormat format = TickFormat::kNumber;
  /// Linear axes: extend the range to 0 (bandwidths read better from a zero baseline).
  bool includeZero = true;
  /// Explicit (value, label) ticks, e.g. categories; empty: chosen automatically.
  std::vector<std::pair<double, std::string>> ticks;
};

struct PlotOptions {
  std::string title;
  std::string subtitle;  ///< a smaller second line under the title (topology, ranks, ...)
  PlotAxis x;
  PlotAxis y;
  int width = 900;  ///< pixels; the legend takes extra room on the right
  int height = 540;
};

/// The chart as SVG text. Throws core::Error(kInvalidArgument) when a series' x and y differ in length.
std::string renderLineChart(const std::vector<PlotSeries>& series, const PlotOptions& options);
/// Writes renderLineChart() to `path`; throws core::Error(kSystemError) naming the file on failure.
void writeLineChart(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options);

/// Tick values of a linear axis over [lo, hi]: multiples of 1, 2, 2.5 or 5 x 10^k, about `target` of
/// them, covering the range (the first <= lo, the last >= hi).
std::vector<double> linearTicks(double lo, double hi, int target = 6);
/// Tick values of a log axis (base 2 or 10) covering [lo, hi] (lo > 0): whole powers, thinned to at most
/// about a dozen; a log10 axis spanning less than a decade also gets 2x and 5x ticks.
std::vector<double> logTicks(double lo, double hi, int base);
/// A tick label: bytes as "512", "4K", "1.5M" (powers of 1024); numbers compactly ("0.25", "1200", "3e+06").
std::string formatTick(double v, TickFormat format);

}  // namespace copro::tools
