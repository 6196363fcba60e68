/// SimParams from a fabric's `sim:` section, and the text parsers of simulator settings.
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/simulator.hpp"

namespace copro::sim {

namespace {

using core::Error;
using core::ErrorCode;

constexpr const char* kModes[3] = {"proxy", "device", "offload"};

double parseRate(std::string_view text) {
  const std::string t = core::trimmed(text);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  std::string suffix(end);
  if (suffix.size() >= 2 && suffix.substr(suffix.size() - 2) == "/s") suffix.resize(suffix.size() - 2);
  double mult = 1.0;
  if (suffix == "K" || suffix == "k") {
    mult = 1e3;
  } else if (suffix == "M") {
    mult = 1e6;
  } else if (suffix == "G") {
    mult = 1e9;
  } else if (!suffix.empty()) {
    mult = -1.0;
  }
  if (t.empty() || end == t.c_str() || mult < 0 || !std::isfinite(v) || v < 0) {
    throw Error(ErrorCode::kParseError,
                "'" + std::string(text) + "' is not a message rate: use ops per second, e.g. 1.8e6, 1.8M or 21.6M/s");
  }
  return v * mult;
}

}  // namespace

std::string_view routingName(Routing r) noexcept {
  switch (r) {
    case Routing::kShortest:
      return "shortest";
    case Routing::kEcmp:
      return "ecmp";
    case Routing::kAdaptive:
      return "adaptive";
    case Routing::kRailAware:
      return "rail_aware";
  }
  return "unknown";
}

bool parseRouting(std::string_view text, Routing& out) noexcept {
  for (const Routing r : {Routing::kShortest, Routing::kEcmp, Routing::kAdaptive, Routing::kRailAware}) {
    if (text == routingName(r)) {
      out = r;
      return true;
    }
  }
  if (text == "rail-aware") {
    out = Routing::kRailAware;
    return true;
  }
  return false;
}

core::Bandwidth parseBandwidth(std::string_view text) {
  const std::string t = core::trimmed(text);
  const auto fail = [&]() -> core::Bandwidth {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) +
                                            "' is not a bandwidth: use e.g. 50GB/s, 400Gb/s, 400Gbps, 12.5GiB/s "
                                            "or 2.5e10 (bytes per second)");
  };
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end == t.c_str() || !std::isfinite(v) || v < 0) return fail();
  std::string unit = core::trimmed(std::string_view(end));
  if (unit.empty()) return core::Bandwidth::bytesPerSec(v);
  bool bits = false;
  if (unit.size() >= 3 && unit.substr(unit.size() - 3) == "bps") {
    bits = true;
    unit.resize(unit.size() - 3);
  } else if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "/s") {
    unit.resize(unit.size() - 2);
    if (unit.empty()) return fail();
    if (unit.back() == 'b') {
      bits = true;
    } else if (unit.back() != 'B') {
      return fail();
    }
    unit.pop_back();
  } else {
    return fail();
  }
  double mult = 1.0;
  bool binary = false;
  if (unit.size() == 2 && unit[1] == 'i') {
    binary = true;
    unit.pop_back();
  }
  if (unit.size() > 1) return fail();
  if (!unit.empty()) {
    const char p = static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0])));
    const double base = binary ? 1024.0 : 1000.0;
    if (p == 'K') {
      mult = base;
    } else if (p == 'M') {
      mult = base * base;
    } else if (p == 'G') {
      mult = base * base * base;
    } else if (p == 'T') {
      mult = base * base * base * base;
    } else {
      return fail();
    }
  } else if (binary) {
    return fail();
  }
  return core::Bandwidth::bytesPerSec(v * mult / (bits ? 8.0 : 1.0));
}

const std::vector<std::string>& simParamKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = {"routing"};
    for (const char* mode : kModes) {
      for (const char* field : {"issue", "extra_latency", "message_rate"}) {
        k.push_back(std::string("initiation.") + mode + "." + field);
      }
    }
    for (const char* rest : {"reduce_bw", "copy_bw", "signal_bytes", "chunk_size", "ecmp_seed"}) k.emplace_back(rest);
    return k;
  }();
  return keys;
}

SimParams SimParams::fromFabric(const topo::Fabric& fabric) {
  SimParams p;
  for (const auto& [key, value] : fabric.simParams) {
    const auto originIt = fabric.simParamOrigin.find(key);
    const std::string where = originIt != fabric.simParamOrigin.end()
                                  ? originIt->second
                                  : (fabric.name.empty() ? std::string("fabric") : "fabric '" + fabric.name + "'");
    const auto bad = [&](const std::string& why) {
      throw Error(ErrorCode::kInvalidArgument, where + ": sim key '" + key + "': " + why);
    };
    try {
      if (key == "routing") {
        if (!parseRouting(value, p.routing)) {
          const std::string hint = core::nearestName(value, {"shortest", "ecmp", "adaptive", "rail_aware"});
          bad("unknown routing '" + value + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
              "; use shortest, ecmp, adaptive or rail_aware");
        }
      } else if (key == "reduce_bw") {
        p.reduceBandwidth = parseBandwidth(value);
      } else if (key == "copy_bw") {
        p.copyBandwidth = parseBandwidth(value);
      } else if (key == "signal_bytes") {
        p.signalBytes = core::parseBytes(value);
      } else if (key == "chunk_size") {
        p.chunkBytes = core::parseBytes(value);
      } else if (key == "ecmp_seed") {
        const std::string t = core::trimmed(value);
        char* end = nullptr;
        const unsigned long long v = std::strtoull(t.c_str(), &end, 0);
        if (t.empty() || *end != '\0' || t[0] == '-') bad("'" + value + "' is not a non-negative integer");
        p.ecmpSeed = v;
      } else {
        bool known = false;
        for (int m = 0; m < 3 && !known; ++m) {
          const std::string prefix = std::string("initiation.") + kModes[m] + ".";
          if (key.rfind(prefix, 0) != 0) continue;
          const std::string field = key.substr(prefix.size());
          InitiationCost& c = p.initiation[m];
          if (field == "issue") {
            c.issue = core::parseTime(value);
            known = true;
          } else if (field == "extra_latency") {
            c.extraLatency = core::parseTime(value);
            known = true;
          } else if (field == "message_rate") {
            c.messageRate = parseRate(value);
            known = true;
          }
        }
        if (!known) {
          const std::string hint = core::nearestName(key, simParamKeys());
          throw Error(ErrorCode::kInvalidArgument, where + ": unknown sim key '" + key + "'" +
                                                       (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                                                       "; docs/simulator.md lists the keys");
        }
      }
    } catch (const Error& e) {
      if (e.code() == ErrorCode::kInvalidArgument) throw;
      bad(e.message());
    }
  }
  for (const InitiationCost& c : p.initiation) {
    if (c.issue.picoseconds() < 0 || c.extraLatency.picoseconds() < 0) {
      throw Error(ErrorCode::kInvalidArgument, "sim: initiation costs must not be negative");
    }
  }
  return p;
}

}  // namespace copro::sim
