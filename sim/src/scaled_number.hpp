#pragma once
/// Non-negative numbers with an SI suffix (K, M, G, T, P), as the `sim:` section and workload files write
/// rates and FLOP counts: "1.8e6", "21.6M", "989T". Shared by sim_params.cpp and workload_file.cpp.
#include <cmath>
#include <cstdlib>
#include <string>

namespace copro::sim::detail {

/// Parses `text` (already trimmed); with `perSecond`, a trailing "/s" is accepted. Returns false for
/// anything else (empty, negative, not finite, unknown suffix).
inline bool parseScaledNumber(const std::string& text, bool perSecond, double& out) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  std::string suffix(end);
  if (perSecond && suffix.size() >= 2 && suffix.compare(suffix.size() - 2, 2, "/s") == 0) {
    suffix.resize(suffix.size() - 2);
  }
  double mult = 1.0;
  if (suffix == "K" || suffix == "k") {
    mult = 1e3;
  } else if (suffix == "M") {
    mult = 1e6;
  } else if (suffix == "G") {
    mult = 1e9;
  } else if (suffix == "T") {
    mult = 1e12;
  } else if (suffix == "P") {
    mult = 1e15;
  } else if (!suffix.empty()) {
    return false;
  }
  if (text.empty() || end == text.c_str() || !std::isfinite(v) || v < 0) return false;
  out = v * mult;
  return std::isfinite(out);
}

}  // namespace copro::sim::detail
