#include "plot.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>

#include "copro/core/status.hpp"

namespace copro::tools {

namespace {

// Category palette ("tab10"); beyond ten series the lines also change dash pattern.
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr const char* kDashes[] = {"", "6,3", "2,2", "8,3,2,3"};
constexpr int kFontSize = 12;
constexpr double kCharWidth = 7.0;  // average glyph advance of a 12 px sans-serif font

std::string escapeXml(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string px(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

double logOf(double v, AxisScale s) {
  return s == AxisScale::kLog2 ? std::log2(v) : std::log10(v);
}

bool usable(double v, AxisScale s) {
  return std::isfinite(v) && (s == AxisScale::kLinear || v > 0);
}

/// Data range, ticks and the mapping of one axis.
struct AxisLayout {
  AxisScale scale = AxisScale::kLinear;
  double lo = 0;  // domain ends in data units
  double hi = 1;
  std::vector<std::pair<double, std::string>> ticks;

  [[nodiscard]] double t(double v) const { return scale == AxisScale::kLinear ? v : logOf(v, scale); }
  /// Position in [0, 1] along the axis.
  [[nodiscard]] double frac(double v) const {
    const double a = t(lo);
    const double b = t(hi);
    return b > a ? (t(v) - a) / (b - a) : 0.5;
  }
};

AxisLayout layoutAxis(const PlotAxis& axis, std::vector<double> values) {
  AxisLayout L;
  L.scale = axis.scale;
  values.erase(std::remove_if(values.begin(), values.end(), [&](double v) { return !usable(v, axis.scale); }),
               values.end());
  for (const auto& [v, label] : axis.ticks) {
    if (usable(v, axis.scale)) values.push_back(v);
  }
  double lo =
      values.empty() ? (axis.scale == AxisScale::kLinear ? 0.0 : 1.0) : *std::min_element(values.begin(), values.end());
  double hi = values.empty() ? lo : *std::max_element(values.begin(), values.end());
  if (!axis.ticks.empty()) {
    // Explicit ticks (categories): the data range plus a margin, so edge points do not sit on the frame.
    if (axis.scale == AxisScale::kLinear) {
      double pad = hi > lo ? 0.05 * (hi - lo) : 0.5;
      L.lo = lo - pad;
      L.hi = hi + pad;
    } else {
      double f = hi > lo ? std::pow(hi / lo, 0.05) : 2.0;
      L.lo = lo / f;
      L.hi = hi * f;
    }
    for (const auto& tk : axis.ticks) {
      if (usable(tk.first, axis.scale)) L.ticks.push_back(tk);
    }
    return L;
  }
  std::vector<double> tv;
  if (axis.scale == AxisScale::kLinear) {
    if (axis.includeZero) {
      lo = std::min(lo, 0.0);
      hi = std::max(hi, 0.0);
    }
    if (hi <= lo) {
      hi = lo + (lo == 0 ? 1.0 : std::fabs(lo));
    }
    tv = linearTicks(lo, hi);
  } else {
    const double base = axis.scale == AxisScale::kLog2 ? 2.0 : 10.0;
    if (hi <= lo) {
      lo /= base;
      hi *= base;
    }
    tv = logTicks(lo, hi, static_cast<int>(base));
  }
  L.lo = tv.front();
  L.hi = tv.back();
  for (double v : tv) L.ticks.emplace_back(v, formatTick(v, axis.format));
  return L;
}

}  // namespace

std::vector<double> linearTicks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo, lo + 1};
  target = std::max(2, target);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * mag >= raw * (1 - 1e-9)) {
      step = m * mag;
      break;
    }
  }
  const auto first = static_cast<long long>(std::floor(lo / step + 1e-9));
  const auto last = static_cast<long long>(std::ceil(hi / step - 1e-9));
  std::vector<double> ticks;
  for (long long k = first; k <= last; ++k) {
    double v = static_cast<double>(k) * step;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0" or 1e-17 labels
    ticks.push_back(v);
  }
  return ticks;
}

std::vector<double> logTicks(double lo, double hi, int base) {
  const double b = base;
  if (!(lo > 0) || !(hi > 0)) return {1.0, b};
  const auto lg = [&](double v) { return std::log(v) / std::log(b); };
  int e0 = static_cast<int>(std::floor(lg(lo) + 1e-9));
  int e1 = static_cast<int>(std::ceil(lg(hi) - 1e-9));
  if (e1 <= e0) e1 = e0 + 1;
  std::vector<double> ticks;
  if (base == 10 && e1 - e0 <= 1) {
    for (int e = e0; e <= e1; ++e) {
      const double p = std::pow(b, e);
      ticks.push_back(p);
      if (e < e1) {
        ticks.push_back(2 * p);
        ticks.push_back(5 * p);
      }
    }
    return ticks;
  }
  const int stride = std::max(1, (e1 - e0 + 11) / 12);
  // Align the thinned powers to multiples of the stride (2^0, 2^2, 2^4 ... reads as 1, 4, 16, 64).
  int start = e0 - (((e0 % stride) + stride) % stride);
  int e = start;
  for (; e < e1; e += stride) ticks.push_back(std::pow(b, e));
  ticks.push_back(std::pow(b, e));
  return ticks;
}

std::string formatTick(double v, TickFormat format) {
  char buf[32];
  if (format == TickFormat::kBytes && std::fabs(v) >= 1024) {
    const char* units = "KMGTPE";
    double x = v;
    int u = -1;
    while (std::fabs(x) >= 1024 && u < 5) {
      x /= 1024;
      ++u;
    }
    std::snprintf(buf, sizeof buf, "%.3g%c", x, units[u]);
    return buf;
  }
  if (v == 0) return "0";
  std::snprintf(buf, sizeof buf, (std::fabs(v) >= 1e6 || std::fabs(v) < 1e-3) ? "%.3g" : "%.6g", v);
  return buf;
}

std::string renderLineChart(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  std::vector<double> xs;
  std::vector<double> ys;
  std::size_t longestName = 0;
  for (const auto& s : series) {
    if (s.x.size() != s.y.size()) {
      throw core::Error(core::ErrorCode::kInvalidArgument, "plot series '" + s.name + "' has " +
                                                               std::to_string(s.x.size()) + " x values but " +
                                                               std::to_string(s.y.size()) + " y values");
    }
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (usable(s.x[i], o.x.scale) && usable(s.y[i], o.y.scale)) {
        xs.push_back(s.x[i]);
        ys.push_back(s.y[i]);
      }
    }
    longestName = std::max(longestName, s.name.size());
  }
  const AxisLayout X = layoutAxis(o.x, xs);
  const AxisLayout Y = layoutAxis(o.y, ys);

  // Margins: room for the y tick labels and label on the left, the x ticks and label below, the title
  // above and the legend on the right.
  std::size_t yLabelChars = 1;
  for (const auto& t : Y.ticks) yLabelChars = std::max(yLabelChars, t.second.size());
  const double left = 36 + kCharWidth * static_cast<double>(yLabelChars) + 12;
  const double top = o.subtitle.empty() ? 48 : 64;
  const double legendWidth = series.empty() ? 0 : std::min(360.0, 44 + kCharWidth * static_cast<double>(longestName));
  const double width = o.width + legendWidth;
  const double right = width - legendWidth - 24;
  const double bottom = o.height - 56.0;
  const double plotW = right - left;
  const double plotH = bottom - top;
  auto mapX = [&](double v) { return left + X.frac(v) * plotW; };
  auto mapY = [&](double v) { return bottom - Y.frac(v) * plotH; };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << px(width) << "\" height=\"" << o.height
      << "\" viewBox=\"0 0 " << px(width) << ' ' << o.height << "\" font-family=\"Helvetica, Arial, sans-serif\" "
      << "font-size=\"" << kFontSize << "\">\n";
  svg << "<rect x=\"0\" y=\"0\" width=\"" << px(width) << "\" height=\"" << o.height << "\" fill=\"white\"/>\n";
  if (!o.title.empty()) {
    svg << "<text x=\"" << px(left + plotW / 2) << "\" y=\"24\" text-anchor=\"middle\" font-size=\"16\" "
        << "font-weight=\"bold\">" << escapeXml(o.title) << "</text>\n";
  }
  if (!o.subtitle.empty()) {
    svg << "<text x=\"" << px(left + plotW / 2) << "\" y=\"44\" text-anchor=\"middle\" fill=\"#555\">"
        << escapeXml(o.subtitle) << "</text>\n";
  }

  // Grid and ticks.
  svg << "<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n";
  for (const auto& t : X.ticks) {
    svg << "<line x1=\"" << px(mapX(t.first)) << "\" y1=\"" << px(top) << "\" x2=\"" << px(mapX(t.first)) << "\" y2=\""
        << px(bottom) << "\"/>\n";
  }
  for (const auto& t : Y.ticks) {
    svg << "<line x1=\"" << px(left) << "\" y1=\"" << px(mapY(t.first)) << "\" x2=\"" << px(right) << "\" y2=\""
        << px(mapY(t.first)) << "\"/>\n";
  }
  svg << "</g>\n";
  svg << "<rect x=\"" << px(left) << "\" y=\"" << px(top) << "\" width=\"" << px(plotW) << "\" height=\"" << px(plotH)
      << "\" fill=\"none\" stroke=\"#333\" stroke-width=\"1\"/>\n";
  svg << "<g fill=\"#333\">\n";
  for (const auto& t : X.ticks) {
    svg << "<line x1=\"" << px(mapX(t.first)) << "\" y1=\"" << px(bottom) << "\" x2=\"" << px(mapX(t.first))
        << "\" y2=\"" << px(bottom + 5) << "\" stroke=\"#333\"/>";
    svg << "<text x=\"" << px(mapX(t.first)) << "\" y=\"" << px(bottom + 19) << "\" text-anchor=\"middle\">"
        << escapeXml(t.second) << "</text>\n";
  }
  for (const auto& t : Y.ticks) {
    svg << "<line x1=\"" << px(left - 5) << "\" y1=\"" << px(mapY(t.first)) << "\" x2=\"" << px(left) << "\" y2=\""
        << px(mapY(t.first)) << "\" stroke=\"#333\"/>";
    svg << "<text x=\"" << px(left - 8) << "\" y=\"" << px(mapY(t.first) + 4) << "\" text-anchor=\"end\">"
        << escapeXml(t.second) << "</text>\n";
  }
  svg << "</g>\n";
  if (!o.x.label.empty()) {
    svg << "<text x=\"" << px(left + plotW / 2) << "\" y=\"" << px(bottom + 42) << "\" text-anchor=\"middle\">"
        << escapeXml(o.x.label) << "</text>\n";
  }
  if (!o.y.label.empty()) {
    const double lx = 18;
    const double ly = top + plotH / 2;
    svg << "<text x=\"" << px(lx) << "\" y=\"" << px(ly) << "\" text-anchor=\"middle\" transform=\"rotate(-90 "
        << px(lx) << ' ' << px(ly) << ")\">" << escapeXml(o.y.label) << "</text>\n";
  }
  if (xs.empty()) {
    svg << "<text x=\"" << px(left + plotW / 2) << "\" y=\"" << px(top + plotH / 2)
        << "\" text-anchor=\"middle\" fill=\"#999\">no data</text>\n";
  }

  // Series: a polyline per run of usable points, a marker on each point.
  for (std::size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    const char* color = kColors[si % std::size(kColors)];
    const char* dash = kDashes[(si / std::size(kColors)) % std::size(kDashes)];
    std::string dashAttr = *dash != '\0' ? std::string(" stroke-dasharray=\"") + dash + "\"" : std::string();
    svg << "<g stroke=\"" << color << "\" fill=\"" << color << "\">\n";
    std::string points;
    auto flush = [&] {
      if (!points.empty()) {
        svg << "<polyline fill=\"none\" stroke-width=\"2\"" << dashAttr << " points=\"" << points << "\"/>\n";
      }
      points.clear();
    };
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], o.x.scale) || !usable(s.y[i], o.y.scale)) {
        flush();
        continue;
      }
      if (!points.empty()) points.push_back(' ');
      points += px(mapX(s.x[i])) + "," + px(mapY(s.y[i]));
    }
    flush();
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], o.x.scale) || !usable(s.y[i], o.y.scale)) continue;
      svg << "<circle cx=\"" << px(mapX(s.x[i])) << "\" cy=\"" << px(mapY(s.y[i])) << "\" r=\"3\"><title>"
          << escapeXml(s.name) << ": " << formatTick(s.x[i], o.x.format) << ", "
          << formatTick(s.y[i], TickFormat::kNumber) << "</title></circle>\n";
    }
    svg << "</g>\n";
  }

  // Legend, right of the plot.
  const double lx = right + 16;
  for (std::size_t si = 0; si < series.size(); ++si) {
    const double ly = top + 8 + 20.0 * static_cast<double>(si);
    const char* color = kColors[si % std::size(kColors)];
    const char* dash = kDashes[(si / std::size(kColors)) % std::size(kDashes)];
    svg << "<line x1=\"" << px(lx) << "\" y1=\"" << px(ly) << "\" x2=\"" << px(lx + 24) << "\" y2=\"" << px(ly)
        << "\" stroke=\"" << color << "\" stroke-width=\"2\""
        << (*dash != '\0' ? std::string(" stroke-dasharray=\"") + dash + "\"" : std::string()) << "/>";
    svg << "<circle cx=\"" << px(lx + 12) << "\" cy=\"" << px(ly) << "\" r=\"3\" fill=\"" << color << "\"/>";
    svg << "<text x=\"" << px(lx + 32) << "\" y=\"" << px(ly + 4) << "\">" << escapeXml(series[si].name) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

void writeLineChart(const std::string& path, const std::vector<PlotSeries>& series, const PlotOptions& options) {
  const std::string text = renderLineChart(series, options);
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw core::Error(core::ErrorCode::kSystemError, "cannot write plot file '" + path + "'");
  f << text;
  f.flush();
  if (!f) throw core::Error(core::ErrorCode::kSystemError, "writing plot file '" + path + "' failed");
}

}  // namespace copro::tools
