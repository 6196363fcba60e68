#pragma once
/// The Program validator: bounds, satisfiable waits, deadlock, data races (scratch overwritten before
/// it is consumed). Every message names rank, lane and op index ("rank 2 lane 0 op 7 (wait): ...").
#include <cstdint>
#include <string>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::core {

struct ValidationIssue {
  enum class Kind : std::uint8_t {
    kMalformed,          ///< bad rank, semaphore, buffer, zero sources, dtype-size mismatch
    kOutOfBounds,        ///< an access beyond a buffer's declared size
    kUnsatisfiableWait,  ///< the signals into (rank, sem) can never reach the threshold
    kLeftoverSignals,    ///< signals into (rank, sem) exceed the largest wait (would corrupt the next epoch)
    kDeadlock,           ///< lanes block each other forever
    kRace,               ///< two accesses to the same bytes, one a write, not ordered (scratch reuse without credits)
    kDomain,             ///< a direct access to a peer outside the rank's load/store domain
  };
  Kind kind = Kind::kMalformed;
  std::int32_t rank = -1;
  int lane = -1;
  std::int64_t opIndex = -1;
  std::string message;  ///< complete sentence, starting "rank R lane L op I (code): ..."
};

struct ValidatorOptions {
  bool checkRaces = true;
  /// Race checking is quadratic in the accesses to one buffer; above this many ops in total it is skipped
  /// (and reported as skipped in the result's note).
  std::uint64_t maxOpsForRaceCheck = 200000;
  /// Layout words per rank for checking indirect ops; empty: indirect sizes/offsets are not bounds-checked.
  std::vector<std::vector<std::uint64_t>> layout;
};

struct ValidationResult {
  std::vector<ValidationIssue> issues;
  std::string note;  ///< e.g. "race check skipped: 3e6 ops"
  [[nodiscard]] bool ok() const { return issues.empty(); }
  /// All messages, one per line (at most `maxLines`, then "... and N more").
  [[nodiscard]] std::string summary(std::size_t maxLines = 20) const;
};

/// Checks a Program. Never throws for a bad Program (that is what the result is for).
ValidationResult validateProgram(const ProgramSource& program, const ValidatorOptions& options = {});
/// validateProgram, then Error(kInvalidProgram) with the summary when it finds anything.
void requireValidProgram(const ProgramSource& program, const ValidatorOptions& options = {});

}  // namespace copro::core
