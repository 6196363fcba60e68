#pragma once
/// JSON dump and load of materialized Programs (fixed rank count and sizes). Format: docs/program-ir.md.
#include <string>
#include <string_view>

#include "copro/core/program.hpp"

namespace copro::core {

/// Serializes every rank of `program` (materializing a lazy one). `indent` < 0: compact.
std::string programToJson(const ProgramSource& program, int indent = 1);
/// Parses a Program; throws Error(kParseError) naming the JSON path of the problem
/// ("ranks[2].lanes[0].ops[5].op: unknown op 'putt' (did you mean 'put'?)").
Program programFromJson(std::string_view json);
/// File variants; errors name the file.
void saveProgram(const ProgramSource& program, const std::string& path);
Program loadProgram(const std::string& path);

}  // namespace copro::core
