/// SimParams from a fabric's `sim:` section, and the text parsers of simulator settings.
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <string>

#include "copro/core/config.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/sim/params.hpp"
#include "copro/sim/simulator.hpp"

#include "network_model.hpp"
#include "scaled_number.hpp"

namespace copro::sim {

namespace {

using core::Error;
using core::ErrorCode;

constexpr const char* kModes[3] = {"proxy", "device", "offload"};

double parseRate(std::string_view text) {
  double v = 0;
  if (!detail::parseScaledNumber(core::trimmed(text), /*perSecond=*/true, v)) {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) +
                                            "' is not a rate: use a number per second, e.g. 1.8e6, 1.8M, 21.6M/s "
                                            "or 989T (suffixes K, M, G, T, P)");
  }
  return v;
}

// Physical ranges of `sim:` quantities (docs/simulator.md): wide enough for any real machine, narrow
// enough that no single one of them makes a simulated time overflow int64 picoseconds.
constexpr double kMinRate = 1.0;                    // ops/s (0 = unlimited)
constexpr double kMaxRate = 1e12;                   // ops/s
constexpr double kMinBw = 1e6;                      // B/s (0 = free/unlimited)
constexpr double kMaxBw = 1e15;                     // B/s
constexpr double kMinFlops = 1e9;                   // FLOP/s
constexpr double kMaxFlops = 1e18;                  // FLOP/s
constexpr std::int64_t kMaxCostPs = 1000000000000;  // 1 s: an initiation cost

/// True when `text` is a bare number (no unit) other than 0.
bool bareNonZero(const std::string& text) {
  const std::string t = core::trimmed(text);
  char* end = nullptr;
  const double v = std::strtod(t.c_str(), &end);
  return !t.empty() && end != t.c_str() && *end == '\0' && v != 0.0;
}

/// A `sim:` duration needs its unit, as builder parameters do (a bare 0 aside), and lies in 0..1s.
core::Time parseSimDuration(const std::string& text) {
  if (bareNonZero(text)) {
    throw Error(ErrorCode::kParseError,
                "'" + text + "' has no unit: write e.g. 700ns, 1.5us or 2ms (ps, ns, us, ms, s)");
  }
  const core::Time t = core::parseTime(text);
  if (t.picoseconds() < 0 || t.picoseconds() > kMaxCostPs) {
    throw Error(ErrorCode::kParseError, "'" + text + "' is outside the range 0..1s of an initiation cost");
  }
  return t;
}

/// A `sim:` bandwidth needs its unit (a bare 0 aside); 0 or 1MB/s..1PB/s.
core::Bandwidth parseSimBandwidth(const std::string& text) {
  if (bareNonZero(text)) {
    throw Error(ErrorCode::kParseError, "'" + text + "' has no unit: write e.g. 50GB/s or 400Gb/s");
  }
  const core::Bandwidth b = parseBandwidth(text);
  const double v = b.bytesPerSecond();
  if (v != 0.0 && (v < kMinBw || v > kMaxBw)) {
    throw Error(ErrorCode::kParseError, "'" + text + "' is outside the range 1MB/s..1PB/s (or 0 for no limit)");
  }
  return b;
}

/// A message rate: 0 (no limit) or 1..1e12 ops/s.
double parseSimRate(const std::string& text) {
  const double v = parseRate(text);
  if (v != 0.0 && (v < kMinRate || v > kMaxRate)) {
    throw Error(ErrorCode::kParseError, "'" + text + "' is outside the range 1..1T ops/s (or 0 for no limit)");
  }
  return v;
}

std::int32_t parseCount(std::string_view text) {
  const std::string t = core::trimmed(text);
  char* end = nullptr;
  const long v = std::strtol(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || v < 0 || v > 1000000) {
    throw Error(ErrorCode::kParseError, "'" + std::string(text) + "' is not a count: use a non-negative integer");
  }
  return static_cast<std::int32_t>(v);
}

/// The `initiation.preset` values: every initiation key at once (docs/simulator.md, "Initiation cost models").
const std::vector<std::string>& presetNames() {
  static const std::vector<std::string> names = {"none", "hopper_cx7", "hopper_cx7_thread"};
  return names;
}

/// hopper_cx7_thread: the bundled hardware templates' one per-message convention (docs/simulator.md, "Link
/// rates and per-message costs"): the same hardware as hopper_cx7, but a device lane posts from one thread,
/// so the whole 0.7 us issue is serial and one lane reaches 1.8 M/s; the proxy's 1.5 us descriptor write.
void applyThreadPreset(SimParams& p) {
  InitiationCost& device = p.initiation[static_cast<int>(core::Initiation::kDevice)];
  device.issue = core::Time::ns(700);
  device.messageRate = 1.8e6;
  device.nicMessageRate = 260e6;
  InitiationCost& proxy = p.initiation[static_cast<int>(core::Initiation::kProxy)];
  proxy.issue = core::Time::ns(1500);
  proxy.extraLatency = core::Time::us(1.0);
  proxy.rankMessageRate = 2e6;
  proxy.nicMessageRate = 260e6;
  InitiationCost& offload = p.initiation[static_cast<int>(core::Initiation::kOffload)];
  offload.rankMessageRate = 260e6;
  offload.nicMessageRate = 260e6;
}

void applyPreset(const std::string& name, SimParams& p) {
  for (InitiationCost& c : p.initiation) c = InitiationCost{};
  if (name == "none") return;
  if (name == "hopper_cx7_thread") {
    applyThreadPreset(p);
    return;
  }
  // hopper_cx7: H100/H800-class GPU with ConnectX-7 (docs/design.md, "Reference figures"; docs/simulator.md).
  InitiationCost& device = p.initiation[static_cast<int>(core::Initiation::kDevice)];
  device.messageRate = 21.6e6;                           // one warp per lane on one queue
  device.issue = core::Time::ps(46296);                  // 1 / 21.6 M/s: the warp's serial share of an op
  device.extraLatency = core::Time::ps(700000 - 46296);  // an 8-B write issues in ~0.7 us in all
  device.nicMessageRate = 260e6;                         // the NIC's ceiling
  InitiationCost& proxy = p.initiation[static_cast<int>(core::Initiation::kProxy)];
  proxy.issue = core::Time::ps(46296);       // the GPU still writes the descriptor (to host memory)
  proxy.extraLatency = core::Time::us(1.0);  // the hop through host memory: NCCL's PCIe LL hop
  proxy.rankMessageRate = 2e6;               // one proxy thread per GPU (an assumption)
  proxy.nicMessageRate = 260e6;
  InitiationCost& offload = p.initiation[static_cast<int>(core::Initiation::kOffload)];
  offload.rankMessageRate = 260e6;  // a co-processor able to feed its NIC at the ceiling
  offload.nicMessageRate = 260e6;
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
    std::vector<std::string> k = {"routing", "network", "initiation.preset"};
    for (const char* mode : kModes) {
      for (const char* field :
           {"issue", "extra_latency", "message_rate", "rank_message_rate", "rank_bw", "nic_message_rate"}) {
        k.push_back(std::string("initiation.") + mode + "." + field);
      }
    }
    for (const char* rest : {"reduce_bw", "reduce_streams", "channels", "copy_bw", "signal_bytes", "chunk_size",
                             "ecmp_seed", "compute.sms", "compute.flops", "compute.comm_sms", "compute.efficiency",
                             "moe.recv_row_cost", "moe.forward_scaleup_efficiency"}) {
      k.emplace_back(rest);
    }
    return k;
  }();
  return keys;
}

SimParams SimParams::fromFabric(const topo::Fabric& fabric) {
  SimParams p;
  if (!fabric.gpus().empty()) {
    const std::int32_t sms = fabric.node(fabric.gpus()[0]).sms;
    if (sms > 0) p.compute.sms = sms;
  }
  const auto whereOf = [&](const std::string& key) {
    const auto originIt = fabric.simParamOrigin.find(key);
    return originIt != fabric.simParamOrigin.end()
               ? originIt->second
               : (fabric.name.empty() ? std::string("fabric") : "fabric '" + fabric.name + "'");
  };
  // The preset first, whatever the key order: the individual keys then override it.
  if (const auto it = fabric.simParams.find("initiation.preset"); it != fabric.simParams.end()) {
    const std::string name = core::trimmed(it->second);
    bool found = false;
    for (const std::string& n : presetNames()) found = found || n == name;
    if (!found) {
      const std::string hint = core::nearestName(name, presetNames());
      throw Error(ErrorCode::kInvalidArgument, whereOf(it->first) + ": sim key 'initiation.preset': unknown preset '" +
                                                   name + "'" +
                                                   (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
                                                   "; use none, hopper_cx7 or hopper_cx7_thread");
    }
    applyPreset(name, p);
  }
  for (const auto& entry : fabric.simParams) {
    // Named references, not a structured binding: clang 14 (the fuzz build) cannot capture bindings in a lambda.
    const std::string& key = entry.first;
    const std::string& value = entry.second;
    const std::string where = whereOf(key);
    const auto bad = [&](const std::string& why) {
      throw Error(ErrorCode::kInvalidArgument, where + ": sim key '" + key + "': " + why);
    };
    try {
      if (key == "initiation.preset") {
        continue;
      } else if (key == "compute.sms") {
        p.compute.sms = parseCount(value);
        if (p.compute.sms == 0) bad("a GPU needs at least one SM");
      } else if (key == "compute.comm_sms") {
        p.compute.commSms = parseCount(value);
      } else if (key == "compute.flops") {
        p.compute.flops = parseRate(value);
        if (!(p.compute.flops >= kMinFlops && p.compute.flops <= kMaxFlops)) {
          bad("peak FLOP/s '" + value + "' is outside the range 1G..1000P (1e9..1e18), e.g. 989T");
        }
      } else if (key == "compute.efficiency") {
        const std::string t = core::trimmed(value);
        char* end = nullptr;
        const double e = std::strtod(t.c_str(), &end);
        if (t.empty() || *end != '\0' || !(e > 0.0) || e > 1.0) {
          bad("'" + value + "' is not an efficiency: use a fraction of peak in (0, 1], e.g. 0.6");
        }
        p.compute.efficiency = e;
      } else if (key == "routing") {
        if (!parseRouting(value, p.routing)) {
          const std::string hint = core::nearestName(value, {"shortest", "ecmp", "adaptive", "rail_aware"});
          bad("unknown routing '" + value + "'" + (hint.empty() ? "" : " (did you mean '" + hint + "'?)") +
              "; use shortest, ecmp, adaptive or rail_aware");
        }
      } else if (key == "network") {
        p.network = core::trimmed(value);
        if (!detail::isNetworkModel(p.network)) bad(detail::unknownNetworkModel(p.network));
      } else if (key == "reduce_bw") {
        p.reduceBandwidth = parseSimBandwidth(value);
      } else if (key == "channels") {
        const std::string t = core::trimmed(value);
        char* end = nullptr;
        const long v = std::strtol(t.c_str(), &end, 10);
        if (t.empty() || *end != '\0' || v < 1 || v > 64) bad("'" + value + "' is not a channel count in 1..64");
        p.channels = static_cast<std::int32_t>(v);
      } else if (key == "reduce_streams") {
        const std::string t = core::trimmed(value);
        if (t != "true" && t != "false") bad("'" + value + "' is not a boolean: use true or false");
        p.reduceStreams = t == "true";
      } else if (key == "moe.recv_row_cost") {
        p.moeRecvRowCost = parseSimDuration(value);
      } else if (key == "moe.forward_scaleup_efficiency") {
        const std::string t = core::trimmed(value);
        char* end = nullptr;
        const double v = std::strtod(t.c_str(), &end);
        if (t.empty() || *end != '\0' || !(v > 0.0 && v <= 1.0)) bad("'" + value + "' is not a fraction in (0, 1]");
        p.moeForwardScaleUpEfficiency = v;
      } else if (key == "copy_bw") {
        p.copyBandwidth = parseSimBandwidth(value);
      } else if (key == "signal_bytes") {
        p.signalBytes = core::parseBytes(value);
        if (p.signalBytes > (std::uint64_t{1} << 20))
          bad("'" + value + "' is outside the range 0..1M of a signal's size");
      } else if (key == "chunk_size") {
        p.chunkBytes = core::parseBytes(value);
        if (p.chunkBytes > (std::uint64_t{1} << 36)) bad("'" + value + "' is outside the range 0..64G of a chunk size");
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
            c.issue = parseSimDuration(value);
            known = true;
          } else if (field == "extra_latency") {
            c.extraLatency = parseSimDuration(value);
            known = true;
          } else if (field == "message_rate") {
            c.messageRate = parseSimRate(value);
            known = true;
          } else if (field == "rank_message_rate") {
            c.rankMessageRate = parseSimRate(value);
            known = true;
          } else if (field == "rank_bw") {
            c.rankBandwidth = parseSimBandwidth(value);
            known = true;
          } else if (field == "nic_message_rate") {
            c.nicMessageRate = parseSimRate(value);
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
  if (p.compute.commSms > p.compute.sms) {
    throw Error(ErrorCode::kInvalidArgument,
                whereOf("compute.comm_sms") + ": sim key 'compute.comm_sms': " + std::to_string(p.compute.commSms) +
                    " SMs for communication but the GPU has " + std::to_string(p.compute.sms) +
                    " (compute.sms); use at most compute.sms");
  }
  return p;
}

}  // namespace copro::sim
