#pragma once
/// The validator's rules for LL ops (Protocol::kLL, docs/program-ir.md "Protocols"): which op kinds may
/// carry the protocol, the sizes a mailbox slot holds, and the one-to-one pairing of each LL put with the
/// receiver's LL wait on a semaphore of their own. Kept apart from validator.cpp, which calls it once.
#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "program_access.hpp"

namespace copro::core::detail {

/// One broken LL rule, at an op (`op` -1: none in particular).
struct LLIssue {
  std::int32_t rank = 0;
  int lane = 0;
  std::int64_t op = -1;
  std::string message;
};

/// Every broken LL rule of `program` (empty when it has no LL op).
std::vector<LLIssue> llProtocolIssues(const ProgramSource& program, const DomainMap& domains);

}  // namespace copro::core::detail
