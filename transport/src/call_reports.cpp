/// The words engines use about their calls (call_reports.hpp).
#include "call_reports.hpp"

#include <sstream>

namespace copro::transport::calls {

std::string rankList(const std::vector<int>& ranks) {
  std::string out = ranks.size() == 1 ? "rank " : "ranks ";
  constexpr std::size_t kMaxListed = 32;
  for (std::size_t i = 0; i < ranks.size() && i < kMaxListed; ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(ranks[i]);
  }
  if (ranks.size() > kMaxListed) out += " and " + std::to_string(ranks.size() - kMaxListed) + " more";
  return out;
}

std::string formatSeconds(double s) {
  std::ostringstream os;
  os << s;
  return os.str();
}

core::Status timeoutStatus(const std::string& label, double timeoutSec, const std::string& report) {
  return {core::ErrorCode::kTimeout, label + ": timed out after " + formatSeconds(timeoutSec) + " s: " + report};
}

std::string laneWaitText(const core::Op& op, bool semKnown, std::uint64_t semProgress, std::int32_t blockedOnRank) {
  if (semKnown) {
    return " waits for semaphore " + std::to_string(op.sem) + " >= " + std::to_string(op.value) + " (it is " +
           std::to_string(semProgress) + ")";
  }
  if (blockedOnRank >= 0) return " waits for rank " + std::to_string(blockedOnRank) + " to enter the call";
  return {};
}

}  // namespace copro::transport::calls
