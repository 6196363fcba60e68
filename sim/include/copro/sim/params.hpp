#pragma once
/// Text forms of simulator settings (the fabric's `sim:` section, `--set` overrides of the tools).
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/units.hpp"
#include "copro/sim/simulator.hpp"

namespace copro::sim {

/// "shortest", "ecmp", "adaptive", "rail_aware".
std::string_view routingName(Routing r) noexcept;
/// Reads a routing name (as routingName writes it; "rail-aware" too); false when unknown.
bool parseRouting(std::string_view text, Routing& out) noexcept;

/// Parses a bandwidth: "50GB/s", "400Gb/s", "400Gbps", "12.5 GiB/s", "2.5e10" (a bare number is bytes/s).
/// Decimal prefixes K/M/G/T are powers of 1000, KiB/MiB/GiB/TiB powers of 1024; a lower-case "b" means
/// bits. Throws core::Error(kParseError) naming the text.
core::Bandwidth parseBandwidth(std::string_view text);

/// Every key SimParams::fromFabric accepts, in documentation order.
const std::vector<std::string>& simParamKeys();

}  // namespace copro::sim
