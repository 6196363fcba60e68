#pragma once
/// Builder parameters as text with where each came from, and the unit parsers of topology files.
/// Private to the topologies module.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/units.hpp"
#include "copro/topologies/topology.hpp"

namespace copro::topo::detail {

/// Parses "400Gb/s", "50GB/s", "3.35TB/s" (bits: b/s Kb/s Mb/s Gb/s Tb/s; bytes: B/s KB/s MB/s GB/s TB/s;
/// powers of 1000). A bare "0" is zero. Throws core::Error(kParseError) saying what is accepted.
core::Bandwidth parseBandwidth(std::string_view text);
/// Parses "500ns", "1.5us", "2µs", "0" (a unit is required for anything else: a bare number is ambiguous).
core::Time parseDuration(std::string_view text);

/// One parameter value and where it came from, e.g. "topology 'a.yaml' line 7" or "override 'nodes=16'".
struct ParamValue {
  std::string text;
  std::string where;
};

/// The parameters of one builder call: given values over the builder's defaults, with typed getters
/// whose errors name the origin, the parameter and its value.
class Params {
 public:
  /// `context` names the call for defaults and general errors ("topology 'a.yaml'", "builder 'mpft'").
  /// Throws (suggesting the nearest name) when `given` holds a parameter `info` does not list.
  Params(const BuilderInfo& info, std::map<std::string, ParamValue> given, std::string context);

  [[nodiscard]] const std::string& builder() const { return info_->name; }
  /// True when the parameter was given (and not empty).
  [[nodiscard]] bool given(const std::string& key) const;
  /// The value as text: given, else the default ("" when the default is decided elsewhere).
  [[nodiscard]] std::string text(const std::string& key) const;
  [[nodiscard]] std::int64_t integer(const std::string& key, std::int64_t min, std::int64_t max) const;
  [[nodiscard]] double real(const std::string& key, double min, double max) const;
  [[nodiscard]] core::Bandwidth bandwidth(const std::string& key) const;
  [[nodiscard]] core::Time time(const std::string& key) const;
  [[nodiscard]] bool flag(const std::string& key) const;
  /// One of `allowed`; an error lists them and suggests the nearest.
  [[nodiscard]] std::string choice(const std::string& key, const std::vector<std::string>& allowed) const;
  /// An oversubscription ratio "2:1", "1:1" or "2" (>= 1).
  [[nodiscard]] double ratio(const std::string& key) const;

  /// Throws core::Error(kInvalidArgument) "<where>: parameter 'key' = 'value': problem".
  [[noreturn]] void fail(const std::string& key, const std::string& problem) const;
  /// Throws core::Error(kInvalidArgument) "<context>: builder '<name>': problem".
  [[noreturn]] void failGeneral(const std::string& problem) const;

 private:
  [[nodiscard]] const BuilderParam& spec(const std::string& key) const;
  [[nodiscard]] std::string where(const std::string& key) const;

  const BuilderInfo* info_;
  std::map<std::string, ParamValue> given_;
  std::string context_;
};

}  // namespace copro::topo::detail
