#include "copro/core/units.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "copro/core/status.hpp"
#include "copro/core/text.hpp"

namespace copro::core {

Time Bandwidth::transferTime(std::uint64_t bytes) const {
  if (bps_ <= 0.0) return Time::ps(std::numeric_limits<std::int64_t>::max());
  return Time::ps(static_cast<std::int64_t>(std::llround(static_cast<double>(bytes) * 1e12 / bps_)));
}

std::uint64_t parseBytes(std::string_view text) {
  std::string t = trimmed(text);
  auto fail = [&]() -> std::uint64_t {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) +
                                            "' is not a size: use a number with an optional K, M, G or T suffix, "
                                            "alone or as Ki/KiB/KB (all powers of 1024), e.g. 4097, 64K, 1Mi, 1.5GiB");
  };
  if (t.empty()) return fail();
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end == t.c_str() || !(v >= 0) || !std::isfinite(v)) return fail();
  std::string suffix(end);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.size() >= 2 && suffix.substr(suffix.size() - 2) == "IB") {
    suffix.resize(suffix.size() - 2);
  } else if (!suffix.empty() && suffix.back() == 'B') {
    suffix.pop_back();
  } else if (suffix.size() == 2 && suffix.back() == 'I') {
    suffix.pop_back();  // Ki, Mi, Gi, Ti
  }
  double mult = 1;
  if (suffix.empty()) {
    mult = 1;
  } else if (suffix == "K") {
    mult = 1024.0;
  } else if (suffix == "M") {
    mult = 1024.0 * 1024;
  } else if (suffix == "G") {
    mult = 1024.0 * 1024 * 1024;
  } else if (suffix == "T") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return fail();
  }
  double bytes = v * mult;
  if (bytes > 1.8e19 || std::floor(bytes) != bytes) return fail();
  return static_cast<std::uint64_t>(bytes);
}

std::string formatBytes(std::uint64_t bytes) {
  const char* suffixes[] = {"", "K", "M", "G", "T"};
  int i = 0;
  while (i < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++i;
  }
  return std::to_string(bytes) + suffixes[i];
}

Time parseTime(std::string_view text) {
  std::string t = trimmed(text);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  auto fail = [&]() -> Time {
    throw Error(ErrorCode::kParseError,
                "'" + std::string(text) + "' is not a duration: use e.g. 5s, 200ms, 10us, 3ns, 7ps");
  };
  if (t.empty() || end == t.c_str() || !std::isfinite(v)) return fail();
  std::string unit(end);
  double perUnit = 0;  // picoseconds
  if (unit.empty() || unit == "s") {
    perUnit = 1e12;
  } else if (unit == "ms") {
    perUnit = 1e9;
  } else if (unit == "us") {
    perUnit = 1e6;
  } else if (unit == "ns") {
    perUnit = 1e3;
  } else if (unit == "ps") {
    perUnit = 1;
  } else {
    return fail();
  }
  // Time is int64 picoseconds: a duration past about 106 days (or before -106) has no representation.
  const double ps = v * perUnit;
  if (!(std::fabs(ps) < 0x1p63)) {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) +
                                            "' is longer than the longest time copro represents (2^63 ps, about "
                                            "106 days)");
  }
  return Time::ps(static_cast<std::int64_t>(std::llround(ps)));
}

}  // namespace copro::core
