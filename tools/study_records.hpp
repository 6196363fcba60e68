#pragma once
/// What travels between the MPI ranks of a sharded copro-study run (sweep_shards.hpp, study_common.hpp's
/// shardedFor): a study case's outcome as bytes and back, every field bit for bit (doubles and times copied,
/// not printed), so that a study run by `mpirun -np N copro-study ...` writes the same files as a serial run.
/// Also the record of an error raised while running a point on another rank.
#include <cstddef>
#include <exception>
#include <string>

#include "copro/core/status.hpp"
#include "study_common.hpp"

namespace copro::tools::study {

std::string encodeOutcome(const StudyOutcome& o);
/// Throws core::Error(kInternal) when `bytes` is not a whole StudyOutcome record.
StudyOutcome decodeStudyOutcome(const std::string& bytes);

std::string encodeOutcome(const MoeOutcome& o);
/// Throws core::Error(kInternal) when `bytes` is not a whole MoeOutcome record.
MoeOutcome decodeMoeOutcome(const std::string& bytes);

/// The error `e` (a core::Error keeps its code; anything else becomes kInternal) as a record.
std::string encodeError(const std::exception_ptr& e);
/// The error of point `index` (a record of encodeError), run by MPI rank `rank`, as the exception to throw.
core::Error decodeError(const std::string& bytes, std::size_t index, int rank);

}  // namespace copro::tools::study
