#pragma once
/// The reference interpreter: runs a whole Program, every rank, in one thread over real memory.
///
/// It is the oracle that algorithms are tested with and that the real executors are compared against:
/// each op executes atomically and in full (puts write at once, then add their signal), lanes interleave
/// in a seeded pseudo-random order, every access is bounds-checked, and a deadlock is reported with the
/// lanes that block. See docs/program-ir.md.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "copro/core/program.hpp"
#include "copro/core/status.hpp"

namespace copro::core {

/// One rank's memory for an interpreted call. Fill the inputs; the interpreter writes the outputs.
struct InterpreterRank {
  /// Inputs (sizes are the buffers' sizes; they must hold at least the header's inputBytes/outputBytes).
  std::vector<std::byte> input;
  std::vector<std::byte> output;              ///< also an input: its contents at the start are what the Program sees
  std::vector<std::uint64_t> layoutInit;      ///< first Layout words; the rest start at zero
  std::vector<std::vector<std::byte>> extra;  ///< BufferId::kExtra0 + i

  /// Written by the interpreter: the final scratch (header.scratchBytes; starts as seeded garbage so a
  /// Program that reads scratch it never wrote gives seed-dependent results), Layout words and
  /// semaphore values (relative to a zero epoch base).
  std::vector<std::byte> scratch;
  std::vector<std::uint64_t> layout;
  std::vector<std::uint64_t> semaphores;
};

/// Runs every lane of every rank of `program` to completion.
///
/// `ranks` must have header().nranks entries. With `inPlace`, every access to a rank's Input goes to its
/// Output memory at the same offset (the in-place call: input and output share a base pointer) and
/// `input` is ignored. `seed` picks the interleaving of lanes. Returns an error naming rank, lane and op
/// for a malformed op or an out-of-bounds access, and naming every blocked lane on a deadlock.
Status interpretProgram(const ProgramSource& program, std::vector<InterpreterRank>& ranks, bool inPlace = false,
                        std::uint64_t seed = 0);

/// Runs `runs` times from copies of `ranks`, with seeds seed, seed+1, ...; every run must succeed and give
/// byte-identical input, output, extra and Layout buffers (a difference means the result depends on the
/// interleaving: a missing wait or flush). `ranks` receives the first run's state.
Status interpretProgramRepeated(const ProgramSource& program, std::vector<InterpreterRank>& ranks, int runs,
                                bool inPlace = false, std::uint64_t seed = 0);

}  // namespace copro::core
