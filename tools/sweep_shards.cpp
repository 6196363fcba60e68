/// SweepShards (sweep_shards.hpp): the MPI side of a distributed copro-sim sweep, one MPI_Gatherv of
/// length-prefixed records to rank 0.
#include "sweep_shards.hpp"

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "copro/core/status.hpp"

#if COPRO_SIM_MPI
#include <mpi.h>
#endif

namespace copro::tools {

namespace {

using core::Error;
using core::ErrorCode;

bool launchedByMpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMI_SIZE") != nullptr ||
         std::getenv("PMIX_RANK") != nullptr;
}

/// Records as "<index> <length>\n<bytes>" one after another.
std::string encode(const std::map<std::size_t, std::string>& records) {
  std::string out;
  for (const auto& [index, text] : records) {
    out += std::to_string(index) + " " + std::to_string(text.size()) + "\n" + text;
  }
  return out;
}

void decode(const std::string& blob, std::map<std::size_t, std::string>& into) {
  std::size_t at = 0;
  while (at < blob.size()) {
    const std::size_t eol = blob.find('\n', at);
    if (eol == std::string::npos) throw Error(ErrorCode::kInternal, "sweep: a gathered record has no header");
    const std::string head = blob.substr(at, eol - at);
    const std::size_t space = head.find(' ');
    const std::size_t index = std::stoull(head.substr(0, space));
    const std::size_t length = std::stoull(head.substr(space + 1));
    if (eol + 1 + length > blob.size()) throw Error(ErrorCode::kInternal, "sweep: a gathered record is cut short");
    into[index] = blob.substr(eol + 1, length);
    at = eol + 1 + length;
  }
}

}  // namespace

#if COPRO_SIM_MPI

SweepShards::SweepShards() {
  if (!launchedByMpirun()) return;
  int already = 0;
  MPI_Initialized(&already);
  if (already == 0) {
    MPI_Init(nullptr, nullptr);
    initialized_ = true;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

SweepShards::~SweepShards() {
  if (initialized_) MPI_Finalize();
}

std::map<std::size_t, std::string> SweepShards::gather(const std::map<std::size_t, std::string>& mine) const {
  std::map<std::size_t, std::string> all;
  if (size_ == 1) return mine;
  const std::string blob = encode(mine);
  int length = static_cast<int>(blob.size());
  if (blob.size() > static_cast<std::size_t>(1) << 30) {
    throw Error(ErrorCode::kUnsupported, "sweep: one rank's results exceed 1 GiB; split the sweep");
  }
  std::vector<int> lengths(static_cast<std::size_t>(size_));
  MPI_Gather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> offsets(static_cast<std::size_t>(size_), 0);
  std::size_t total = 0;
  for (std::size_t r = 0; r < lengths.size(); ++r) {
    offsets[r] = static_cast<int>(total);
    total += static_cast<std::size_t>(lengths[r]);
  }
  std::string gathered(rank_ == 0 ? total : 0, '\0');
  MPI_Gatherv(blob.data(), length, MPI_CHAR, gathered.data(), lengths.data(), offsets.data(), MPI_CHAR, 0,
              MPI_COMM_WORLD);
  if (rank_ == 0) decode(gathered, all);
  return all;
}

std::map<std::size_t, std::string> SweepShards::allGather(const std::map<std::size_t, std::string>& mine) const {
  if (size_ == 1) return mine;
  const std::map<std::size_t, std::string> gathered = gather(mine);  // complete on rank 0, empty elsewhere
  std::string blob = rank_ == 0 ? encode(gathered) : std::string();
  unsigned long long length = blob.size();
  MPI_Bcast(&length, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
  blob.resize(static_cast<std::size_t>(length));
  for (std::size_t at = 0; at < blob.size();) {  // MPI counts are ints: broadcast in pieces below 1 GiB
    const std::size_t piece = std::min<std::size_t>(blob.size() - at, std::size_t{1} << 30);
    MPI_Bcast(blob.data() + at, static_cast<int>(piece), MPI_CHAR, 0, MPI_COMM_WORLD);
    at += piece;
  }
  std::map<std::size_t, std::string> all;
  decode(blob, all);
  return all;
}

#else

SweepShards::SweepShards() {
  if (launchedByMpirun()) {
    throw Error(ErrorCode::kUnsupported,
                "this tool was started by mpirun but built without MPI: install libopenmpi-dev and configure again, "
                "or run it without mpirun");
  }
}

SweepShards::~SweepShards() = default;

std::map<std::size_t, std::string> SweepShards::gather(const std::map<std::size_t, std::string>& mine) const {
  (void)encode;
  (void)decode;
  return mine;
}

std::map<std::size_t, std::string> SweepShards::allGather(const std::map<std::size_t, std::string>& mine) const {
  return mine;
}

#endif

}  // namespace copro::tools
