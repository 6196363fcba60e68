// copro-perf under mpirun (perf_mpi.hpp): MPI start-up and finalization, the MPI team that synchronizes the
// ranks and combines their figures on rank 0, each process's communicator and the --compare peers.
#include "perf_mpi.hpp"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>

#include "peers/mpi_peer.hpp"
#if COPRO_PERF_HAVE_GLOO
#include "peers/gloo_peer.hpp"
#endif
#include "copro/copro_mpi.hpp"

namespace copro::bench {

namespace {

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(ErrorCode::kSystemError,
                std::string(what) + " failed: " + std::string(text, static_cast<std::size_t>(len)));
  }
}

class MpiTeam final : public Team {
 public:
  explicit MpiTeam(MPI_Comm world) {
    check(MPI_Comm_dup(world, &comm_), "MPI_Comm_dup");
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiTeam() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized == 0) MPI_Comm_free(&comm_);
  }
  MpiTeam(const MpiTeam&) = delete;
  MpiTeam& operator=(const MpiTeam&) = delete;

  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] bool printer() const override { return rank_ == 0; }
  void forEachLocalRank(const std::function<void(int)>& fn) override { fn(0); }
  void barrier() override { check(MPI_Barrier(comm_), "MPI_Barrier"); }

  Result combine(int /*rank*/, double timeUs, std::uint64_t wrong, const std::string& error) override {
    Result out;
    check(MPI_Reduce(&timeUs, &out.maxTimeUs, 1, MPI_DOUBLE, MPI_MAX, 0, comm_), "MPI_Reduce");
    check(MPI_Reduce(&timeUs, &out.minTimeUs, 1, MPI_DOUBLE, MPI_MIN, 0, comm_), "MPI_Reduce");
    double sum = 0;
    check(MPI_Reduce(&timeUs, &sum, 1, MPI_DOUBLE, MPI_SUM, 0, comm_), "MPI_Reduce");
    out.avgTimeUs = sum / size_;
    out.timeUs = out.maxTimeUs;
    out.rank0TimeUs = timeUs;  // meaningful on rank 0, the printing rank
    std::uint64_t w = wrong;
    check(MPI_Reduce(&w, &out.wrong, 1, MPI_UINT64_T, MPI_SUM, 0, comm_), "MPI_Reduce");
    // The lowest failing rank's message reaches rank 0 (every rank prints its own on stderr as well).
    int mine = error.empty() ? size_ : rank_;
    int first = size_;
    check(MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm_), "MPI_Allreduce");
    if (first < size_) {
      out.supported = false;
      if (first == 0) {
        out.error = error;
      } else if (rank_ == first) {
        check(MPI_Send(error.data(), static_cast<int>(error.size()), MPI_CHAR, 0, kErrorTag, comm_), "MPI_Send");
      } else if (rank_ == 0) {
        MPI_Status st;
        check(MPI_Probe(first, kErrorTag, comm_, &st), "MPI_Probe");
        int len = 0;
        MPI_Get_count(&st, MPI_CHAR, &len);
        std::string text(static_cast<std::size_t>(len), '\0');
        check(MPI_Recv(text.data(), len, MPI_CHAR, first, kErrorTag, comm_, MPI_STATUS_IGNORE), "MPI_Recv");
        out.error = "rank " + std::to_string(first) + ": " + text;
      }
    }
    return out;
  }

  void coproFailed(int /*rank*/, const std::string& error) override {
    if (size_ < 2) return;
    // The other ranks may be stuck in a call of their own or stopped: waiting for them in MPI would hang.
    int world = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world);
    std::fprintf(stderr, "copro-perf: rank %d: %s\ncopro-perf: rank %d: aborting the MPI job (MPI_Abort)\n", world,
                 error.c_str(), world);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }

  double sum(int /*rank*/, double value) override {
    double total = 0;
    check(MPI_Reduce(&value, &total, 1, MPI_DOUBLE, MPI_SUM, 0, comm_), "MPI_Reduce");
    return total;
  }

 private:
  static constexpr int kErrorTag = 7;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
};

/// A fresh directory every rank sees (same host), made by rank 0 and broadcast.
std::string sharedTempDir(MPI_Comm comm, int rank) {
  std::string dir(4096, '\0');
  if (rank == 0) {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/copro-perf-gloo-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) templ.clear();
    std::copy(templ.begin(), templ.end(), dir.begin());
  }
  check(MPI_Bcast(dir.data(), static_cast<int>(dir.size()), MPI_CHAR, 0, comm), "MPI_Bcast");
  dir.resize(dir.find('\0'));
  if (dir.empty()) throw Error(ErrorCode::kSystemError, "cannot create a temporary directory for Gloo's rendezvous");
  return dir;
}

}  // namespace

bool underMpiLauncher() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"}) {
    if (std::getenv(v) != nullptr) return true;
  }
  return false;
}

struct MpiRun::Comms {
  MPI_Comm world = MPI_COMM_NULL;
};

MpiRun::MpiRun(ThreadLevel level) : comms_(std::make_unique<Comms>()) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized == 0) {
    int provided = 0;
    const int wanted = level == ThreadLevel::kMultiple     ? MPI_THREAD_MULTIPLE
                       : level == ThreadLevel::kSerialized ? MPI_THREAD_SERIALIZED
                                                           : MPI_THREAD_FUNNELED;
    check(MPI_Init_thread(nullptr, nullptr, wanted, &provided), "MPI_Init_thread");
    initializedHere_ = true;
    if (provided < wanted) {
      throw Error(ErrorCode::kUnsupported,
                  "this MPI provides thread level " + std::to_string(provided) + ", below the " +
                      std::to_string(wanted) +
                      " that --transport mpi needs (MPI_THREAD_MULTIPLE with COPRO_INITIATION=proxy)");
    }
  }
  check(MPI_Comm_dup(MPI_COMM_WORLD, &comms_->world), "MPI_Comm_dup");
  MPI_Comm_rank(comms_->world, &rank_);
  MPI_Comm_size(comms_->world, &size_);
}

MpiRun::~MpiRun() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized != 0) return;
  MPI_Comm_free(&comms_->world);
  if (initializedHere_) MPI_Finalize();
}

std::unique_ptr<Team> MpiRun::team() {
  return std::make_unique<MpiTeam>(comms_->world);
}

Communicator MpiRun::communicator(const std::string& backend, const Config& config) {
  // createFromMpi takes virtual nodes from COPRO_NODE_MAP; COPRO_NODE_ID (one per process, as
  // createCommunicator reads it) becomes that map here, gathered over MPI.
  Config cfg = config;
  cfg.readEnvironment({"COPRO_NODE_ID"});
  int mine = cfg.nodeId;
  std::vector<int> ids(static_cast<std::size_t>(size_));
  check(MPI_Allgather(&mine, 1, MPI_INT, ids.data(), 1, MPI_INT, comms_->world), "MPI_Allgather");
  const auto unset = std::count(ids.begin(), ids.end(), -1);
  if (unset != 0 && unset != size_) {
    throw Error(ErrorCode::kInvalidArgument, "COPRO_NODE_ID is set on some processes but not on " +
                                                 std::to_string(unset) + ": set it on every process or on none");
  }
  if (unset == 0) {
    std::string map;
    for (int id : ids) map += (map.empty() ? "" : ",") + std::to_string(id);
    cfg.nodeMap = map;
  }
  return createFromMpi(comms_->world, backend, cfg);
}

std::vector<std::unique_ptr<Peer>> MpiRun::peers(const std::string& list, double timeoutSec) {
  std::vector<std::unique_ptr<Peer>> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t c = list.find(',', pos);
    if (c == std::string::npos) c = list.size();
    const std::string name = list.substr(pos, c - pos);
    pos = c + 1;
    if (name.empty()) continue;
    if (name == "mpi") {
      out.push_back(makeMpiPeer(comms_->world));
    } else if (name == "gloo") {
#if COPRO_PERF_HAVE_GLOO
      GlooRendezvous rv;
      rv.rank = rank_;
      rv.size = size_;
      rv.storeDir = sharedTempDir(comms_->world, rank_);
      rv.timeoutSec = timeoutSec;
      out.push_back(makeGlooPeer(rv));
      // Every rank has read the store once the mesh is up; the directory is no longer needed.
      check(MPI_Barrier(comms_->world), "MPI_Barrier");
      if (rank_ == 0) {
        std::error_code ec;
        std::filesystem::remove_all(rv.storeDir, ec);
      }
#else
      (void)timeoutSec;
      throw Error(ErrorCode::kUnsupported, "--compare gloo: this copro-perf was built without Gloo (libgloo-dev)");
#endif
    } else {
      throw Error(ErrorCode::kInvalidArgument, "--compare: unknown library '" + name + "' (known: mpi, gloo)");
    }
  }
  return out;
}

void MpiRun::abortAll(int code) {
  MPI_Abort(MPI_COMM_WORLD, code);
}

}  // namespace copro::bench
