#pragma once
/// Messages about an op that every lane engine words alike (the load/store engine and the remote
/// engine of mpi/ucx): unresolvable indirect geometry, and element counts a reduction cannot use. The
/// flat interpreter reports these as codes (it runs where strings cannot); the host turns them into text.
#include <cstdint>
#include <string>

#include "copro/core/flat_interpreter.hpp"
#include "copro/core/status.hpp"

namespace copro::transport::lanes {

/// The message of an indirect op whose geometry could not be resolved from `words` layout words.
std::string geometryFaultMessage(const core::FlatOp& op, const core::OpGeometry& g, std::uint64_t words);

/// Why `op` cannot reduce `bytes` bytes (an unknown type, a partial element, an unsupported
/// operation), or an empty string when it can; `code` is set with the message.
std::string elementsProblem(const core::FlatOp& op, std::uint64_t bytes, core::ErrorCode& code);

}  // namespace copro::transport::lanes
