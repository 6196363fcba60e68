#include "params.hpp"

#include <cmath>
#include <cstdlib>
#include <utility>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"

namespace copro::topo::detail {

using core::Error;
using core::ErrorCode;

namespace {

struct UnitScale {
  const char* unit;
  double bytesPerSecond;
};

// Bits first: "Gbit" is nearer to "Gb/s" than to "GB/s" only by case, and a rate in bits is what a
// link datasheet gives.
constexpr UnitScale kBandwidthUnits[] = {
    {"b/s", 1.0 / 8}, {"Kb/s", 1e3 / 8}, {"Mb/s", 1e6 / 8}, {"Gb/s", 1e9 / 8}, {"Tb/s", 1e12 / 8},
    {"B/s", 1.0},     {"KB/s", 1e3},     {"MB/s", 1e6},     {"GB/s", 1e9},     {"TB/s", 1e12},
};

/// Physical ranges of builder quantities (docs/config.md, "Limits"): far outside any real link or switch,
/// and small enough that no simulated time overflows int64 picoseconds because of them.
constexpr double kMinBytesPerSecond = 1e6;
constexpr double kMaxBytesPerSecond = 1e15;
constexpr core::Time kMaxDelay = core::Time::sec(1.0);

constexpr const char* kBandwidthHelp =
    "write a number and a unit, e.g. 400Gb/s or 50GB/s (bits: b/s, Kb/s, Mb/s, Gb/s, Tb/s; bytes: B/s, KB/s, MB/s, "
    "GB/s, TB/s; powers of 1000)";

}  // namespace

core::Bandwidth parseBandwidth(std::string_view text) {
  const std::string t = core::trimmed(text);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || !std::isfinite(v) || v < 0) {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) + "' is not a bandwidth: " + kBandwidthHelp);
  }
  const std::string unit = core::trimmed(std::string_view(end));
  if (unit.empty() && v == 0.0) return core::Bandwidth::bytesPerSec(0.0);
  for (const auto& u : kBandwidthUnits) {
    if (unit != u.unit) continue;
    const double bps = v * u.bytesPerSecond;
    if (bps != 0.0 && (bps < kMinBytesPerSecond || bps > kMaxBytesPerSecond)) {
      throw Error(ErrorCode::kParseError,
                  "'" + std::string(text) + "' is outside the physical range of a link, 1MB/s to 1PB/s (or 0)");
    }
    return core::Bandwidth::bytesPerSec(bps);
  }
  std::vector<std::string> names;
  for (const auto& u : kBandwidthUnits) names.emplace_back(u.unit);
  const std::string hint = unit.empty() ? std::string() : core::nearestName(unit, names);
  const std::string number(t.c_str(), static_cast<std::size_t>(end - t.c_str()));
  throw Error(ErrorCode::kParseError, "'" + std::string(text) + "' is not a bandwidth" +
                                          (hint.empty() ? "" : " (did you mean '" + number + hint + "'?)") + ": " +
                                          kBandwidthHelp);
}

core::Time parseDuration(std::string_view text) {
  std::string t = core::trimmed(text);
  // Accept the micro sign as well as "us".
  for (const std::string micro : {"\xC2\xB5s", "\xCE\xBCs"}) {
    const auto pos = t.find(micro);
    if (pos != std::string::npos) t.replace(pos, micro.size(), "us");
  }
  const std::string help = "write a number and a unit, e.g. 500ns, 1.5us, 2ms (units: ps, ns, us, ms, s)";
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || !std::isfinite(v) || v < 0) {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) + "' is not a duration: " + help);
  }
  if (*end == '\0') {
    if (v == 0.0) return core::Time{};
    throw Error(ErrorCode::kParseError, "'" + std::string(text) + "' has no unit: " + help);
  }
  core::Time d;
  try {
    d = core::parseTime(t);
  } catch (const Error& e) {
    // A well-formed duration past int64 picoseconds is a range error, not a syntax error.
    if (e.message().find("longest time") == std::string::npos) {
      throw Error(ErrorCode::kParseError, "'" + std::string(text) + "' is not a duration: " + help);
    }
    d = kMaxDelay + core::Time::ps(1);
  }
  if (d > kMaxDelay) {
    throw Error(ErrorCode::kParseError,
                "'" + std::string(text) + "' is outside the physical range of a latency or delay, 0 to 1s");
  }
  return d;
}

Params::Params(const BuilderInfo& info, std::map<std::string, ParamValue> given, std::string context)
    : info_(&info), given_(std::move(given)), context_(std::move(context)) {
  std::vector<std::string> names;
  for (const auto& p : info_->params) names.push_back(p.name);
  for (const auto& [key, value] : given_) {
    bool known = false;
    for (const auto& p : info_->params) known = known || p.name == key;
    if (known) continue;
    const std::string hint = core::nearestName(key, names);
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    throw Error(ErrorCode::kInvalidArgument,
                (value.where.empty() ? context_ : value.where) + ": unknown parameter '" + key + "' of builder '" +
                    info_->name + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                    (names.empty() ? "; it takes no parameters" : "; its parameters are " + list));
  }
}

const BuilderParam& Params::spec(const std::string& key) const {
  for (const auto& p : info_->params) {
    if (p.name == key) return p;
  }
  // A builder asking for a parameter it does not declare is a bug in this module, not in the file.
  throw Error(ErrorCode::kInternal, "builder '" + info_->name + "' reads undeclared parameter '" + key + "'");
}

bool Params::given(const std::string& key) const {
  (void)spec(key);
  auto it = given_.find(key);
  return it != given_.end() && !core::trimmed(it->second.text).empty();
}

std::string Params::text(const std::string& key) const {
  const BuilderParam& p = spec(key);
  auto it = given_.find(key);
  if (it != given_.end() && !core::trimmed(it->second.text).empty()) return core::trimmed(it->second.text);
  return p.defaultValue;
}

std::string Params::where(const std::string& key) const {
  auto it = given_.find(key);
  if (it != given_.end() && !it->second.where.empty()) return it->second.where;
  return context_ + " (default of builder '" + info_->name + "')";
}

void Params::fail(const std::string& key, const std::string& problem) const {
  throw Error(ErrorCode::kInvalidArgument, where(key) + ": parameter '" + key + "' = '" + text(key) + "': " + problem);
}

void Params::failGeneral(const std::string& problem) const {
  throw Error(ErrorCode::kInvalidArgument, context_ + ": builder '" + info_->name + "': " + problem);
}

std::int64_t Params::integer(const std::string& key, std::int64_t min, std::int64_t max) const {
  const std::string t = text(key);
  char* end = nullptr;
  const long long v = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0') fail(key, "expected a whole number");
  if (v < min || v > max) {
    fail(key, "must be between " + std::to_string(min) + " and " + std::to_string(max));
  }
  return v;
}

double Params::real(const std::string& key, double min, double max) const {
  const std::string t = text(key);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !std::isfinite(v)) fail(key, "expected a number");
  if (v < min || v > max) fail(key, "out of range");
  return v;
}

core::Bandwidth Params::bandwidth(const std::string& key) const {
  try {
    return parseBandwidth(text(key));
  } catch (const Error& e) {
    fail(key, e.message());
  }
}

core::Time Params::time(const std::string& key) const {
  try {
    return parseDuration(text(key));
  } catch (const Error& e) {
    fail(key, e.message());
  }
}

bool Params::flag(const std::string& key) const {
  const std::string t = text(key);
  if (t == "true" || t == "yes" || t == "on" || t == "1") return true;
  if (t == "false" || t == "no" || t == "off" || t == "0") return false;
  fail(key, "expected true or false");
}

std::string Params::choice(const std::string& key, const std::vector<std::string>& allowed) const {
  std::string t = text(key);
  std::string list;
  for (const auto& a : allowed) {
    if (a == t) return t;
    list += (list.empty() ? "" : ", ") + a;
  }
  const std::string hint = core::nearestName(t, allowed);
  fail(key, "expected one of " + list + (hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
}

double Params::ratio(const std::string& key) const {
  const std::string t = text(key);
  const auto colon = t.find(':');
  char* end = nullptr;
  double v = 0.0;
  if (colon == std::string::npos) {
    v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end != '\0') fail(key, "expected a ratio such as 2:1 or 1:1");
  } else {
    const std::string num = t.substr(0, colon);
    const std::string den = t.substr(colon + 1);
    char* e1 = nullptr;
    char* e2 = nullptr;
    const double a = std::strtod(num.c_str(), &e1);
    const double b = std::strtod(den.c_str(), &e2);
    if (num.empty() || den.empty() || *e1 != '\0' || *e2 != '\0' || !(b > 0)) {
      fail(key, "expected a ratio such as 2:1 or 1:1");
    }
    v = a / b;
  }
  if (!std::isfinite(v) || v < 1.0) fail(key, "must be at least 1:1 (downlinks per uplink)");
  return v;
}

}  // namespace copro::topo::detail
