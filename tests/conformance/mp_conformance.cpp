// The conformance matrix over the multi-process backends, under mpirun (one rank per process):
//
//   mpirun -np 4 --oversubscribe copro_conformance_mp --backend=shm   (also mpi, ucx; a list "mpi,shm")
//
// The same pairwise-covering cases as the inproc run (harness.hpp: collective x algorithm x dtype x op x
// ranks x count x in-place) at ranks {2, 3, 4} and counts {0, 1, 7, 4097}, plus every hierarchical
// algorithm on 2 virtual nodes x 2 ranks. Communicators come from MPI: the 4-rank one from
// copro::createFromMpi(MPI_COMM_WORLD, backend) (for shm, if that is refused, a copro::UniqueId broadcast
// with MPI_Bcast), the 2- and 3-rank ones from Communicator::split, and the virtual-node ones from
// MPI_Comm_split + createFromMpi with Config::nodeMap. Every rank runs harness runCaseOnRank on its own
// rank; the per-rank errors are gathered over MPI so that rank 0 prints them and every rank fails the same
// test. COPRO_TIMEOUT (30 s unless set) turns a hang on one rank into an error on all of them.
//
// Options (before the GoogleTest ones): --backend=LIST (default: every multi-process backend built),
// --uniqueid (every communicator from a copro::UniqueId broadcast with MPI_Bcast and the TCP bootstrap,
// instead of createFromMpi), --full (the cross product instead of the pairwise set: minutes), --list (print
// the cases and exit), --seed=N (default 20261129).
#include <gtest/gtest.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "conformance/harness.hpp"
#include "copro/copro_mpi.hpp"
#include "copro/transport/mpi.hpp"

namespace copro::test {
namespace {

const std::vector<int> kMpRanks = {2, 3, 4};
const std::vector<std::uint64_t> kMpCounts = {0, 1, 7, 4097};
std::uint64_t gSeed = 20261129;
bool gUniqueId = false;  ///< --uniqueid: bootstrap over TCP with a UniqueId from MPI_Bcast, not createFromMpi
bool gFull = false;      ///< --full: the cross product instead of the pairwise set

int worldRank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int worldSize() {
  int n = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

/// The cases of one backend: the pairwise set, plus each hierarchical (collective, algorithm) and the
/// planner's all-reduce on 2 virtual nodes x 2 ranks where the pairwise set has no such case.
std::vector<Case> mpCases(const std::string& backend) {
  std::vector<Case> cases = gFull ? crossProductCases(kMpRanks, kMpCounts) : pairwiseCases(kMpRanks, kMpCounts);
  std::set<std::string> hierAt4;
  for (const Case& c : cases) {
    if (c.nodes && c.ranks == 4) hierAt4.insert(std::string(collectives::collectiveName(c.kind)) + "." + c.algo);
  }
  for (const auto& [kind, algo] : collectiveAlgorithms()) {
    const std::string name = std::string(collectives::collectiveName(kind)) + "." + algo;
    if (algo != "hier" || hierAt4.count(name) != 0) continue;
    Case c;
    c.kind = kind;
    c.algo = algo;
    c.nodes = true;
    c.ranks = 4;
    c.count = 4097;
    c.dtype = DataType::kFloat32;
    c.root = 3;
    if (caseSupported(c)) cases.push_back(c);
  }
  Case planner;  // the planner sees two nodes and may pick a hierarchical algorithm by itself
  planner.nodes = true;
  planner.ranks = 4;
  planner.count = 4097;
  planner.dtype = DataType::kBfloat16;
  cases.push_back(planner);
  for (Case& c : cases) c.backend = backend;
  return cases;
}

Config baseConfig() {
  Config cfg = Config::fromEnvironment();
  // A failing case must not hang the others for COPRO_TIMEOUT's default of minutes.
  if (!cfg.isSet("COPRO_TIMEOUT")) cfg.timeoutSec = 30;
  cfg.validate = true;  // every new Program goes through the validator first, as in the inproc run
  cfg.nodeMap.clear();  // node layouts come from the cases, not from COPRO_NODE_MAP
  return cfg;
}

/// The load/store domains of the backend over MPI_COMM_WORLD, from a probe executor made the way
/// createFromMpi makes one (the Communicator does not expose them). Collective; throws on failure.
std::vector<std::vector<std::int32_t>> probeDomains(const std::string& backend) {
  registerBuiltinBackends();
  core::ExecutorOptions options;
  options.config = baseConfig();
  options.bootstrap = transport::createMpiBootstrap(MPI_COMM_WORLD);
  options.nranks = options.bootstrap->size();
  auto execs = core::ExecutorRegistry::instance().create(backend, options);
  if (execs.size() != 1) throw Error(ErrorCode::kInvalidArgument, backend + " made several ranks in one process");
  return execs.front()->loadStoreDomains();
}

/// The domains of world ranks 0..ranks-1 (every sub-communicator here holds the first `ranks` world ranks in
/// order); empty when they share one domain, as the Communicator reports it to the algorithms.
std::vector<std::vector<std::int32_t>> restrictDomains(const std::vector<std::vector<std::int32_t>>& world, int ranks) {
  std::vector<std::vector<std::int32_t>> out;
  for (const auto& d : world) {
    std::vector<std::int32_t> kept;
    for (std::int32_t r : d) {
      if (r < ranks) kept.push_back(r);
    }
    if (!kept.empty()) out.push_back(std::move(kept));
  }
  if (out.size() <= 1) out.clear();
  return out;
}

/// Rank 0's error text from every rank's: gathered to rank 0 and broadcast back, so every rank decides
/// pass/fail on the same text.
std::string gatherErrors(const std::string& mine) {
  const int n = worldSize();
  const int me = worldRank();
  int len = static_cast<int>(mine.size());
  std::vector<int> lens(static_cast<std::size_t>(n));
  MPI_Gather(&len, 1, MPI_INT, lens.data(), 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<int> displs(static_cast<std::size_t>(n), 0);
  int total = 0;
  for (int r = 0; r < n && me == 0; ++r) {
    displs[static_cast<std::size_t>(r)] = total;
    total += lens[static_cast<std::size_t>(r)];
  }
  std::vector<char> all(static_cast<std::size_t>(total) + 1);
  MPI_Gatherv(mine.data(), len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, 0, MPI_COMM_WORLD);
  std::string joined;
  for (int r = 0; r < n && me == 0; ++r) {
    if (lens[static_cast<std::size_t>(r)] == 0) continue;
    joined += (joined.empty() ? "" : " | ") + std::string(all.data() + displs[static_cast<std::size_t>(r)],
                                                          static_cast<std::size_t>(lens[static_cast<std::size_t>(r)]));
  }
  int jl = static_cast<int>(joined.size());
  MPI_Bcast(&jl, 1, MPI_INT, 0, MPI_COMM_WORLD);
  joined.resize(static_cast<std::size_t>(jl));
  MPI_Bcast(joined.data(), jl, MPI_CHAR, 0, MPI_COMM_WORLD);
  return joined;
}

/// One communicator over the processes of `comm` (collective over it): createFromMpi, or for a backend
/// that refuses the MPI bootstrap on every rank, a UniqueId from the rank 0 broadcast with MPI_Bcast.
Communicator fromMpi(MPI_Comm comm, const std::string& backend, const Config& cfg, std::string& how) {
  std::string error;
  Communicator out;
  if (gUniqueId) {
    error = "not tried (--uniqueid)";
  } else {
    try {
      out = createFromMpi(comm, backend, cfg);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  int bad = error.empty() ? 0 : 1;
  int all = 0;
  MPI_Allreduce(&bad, &all, 1, MPI_INT, MPI_MIN, comm);
  if (all == 0) {
    if (bad != 0) throw Error(ErrorCode::kSystemError, "createFromMpi(" + backend + ") failed on some ranks: " + error);
    how = "createFromMpi";
    return out;
  }
  int r = 0;
  int n = 0;
  MPI_Comm_rank(comm, &r);
  MPI_Comm_size(comm, &n);
  UniqueId id;
  if (r == 0) id = getUniqueId();
  MPI_Bcast(id.internal.data(), static_cast<int>(id.internal.size()), MPI_BYTE, 0, comm);
  how = "UniqueId over MPI_Bcast (createFromMpi: " + error + ")";
  return createCommunicator(backend, id, r, n, cfg);
}

/// The communicators of one backend, created on first use (collectively over MPI_COMM_WORLD, in the same
/// order on every rank since every rank runs the same tests) and dropped after a failed case.
class BackendComms {
 public:
  explicit BackendComms(std::string backend) : backend_(std::move(backend)) {}
  BackendComms(const BackendComms&) = delete;
  BackendComms& operator=(const BackendComms&) = delete;
  ~BackendComms() { clear(); }

  /// This rank's communicator for the case's (ranks, nodes), or an invalid one when this rank is not in
  /// it. Throws what creation throws (on every rank: creation failures are agreed on).
  Communicator& get(const Case& c) {
    const std::pair<int, bool> key{c.ranks, c.nodes};
    if (auto it = comms_.find(key); it != comms_.end()) return it->second.comm;
    Entry e;
    std::string error;
    const bool member = worldRank() < c.ranks;
    Config cfg = baseConfig();
    if (!c.nodes && c.ranks == worldSize()) {
      try {
        e.comm = fromMpi(MPI_COMM_WORLD, backend_, cfg, how_);
      } catch (const std::exception& ex) {
        error = ex.what();
      }
    } else if (!c.nodes) {
      // A sub-communicator of the world one: exercises the backend's split.
      Case world = c;
      world.ranks = worldSize();
      Communicator& parent = get(world);
      try {
        e.comm = parent.split(member ? 0 : -1, worldRank());
      } catch (const std::exception& ex) {
        error = ex.what();
      }
    } else {
      // Virtual nodes: an MPI sub-communicator and the case's node map in the Config.
      MPI_Comm_split(MPI_COMM_WORLD, member ? 0 : MPI_UNDEFINED, worldRank(), &e.mpiComm);
      cfg.nodeMap = caseNodeMap(c);
      if (member) {
        try {
          std::string how;
          e.comm = fromMpi(e.mpiComm, backend_, cfg, how);
        } catch (const std::exception& ex) {
          error = ex.what();
        }
      }
    }
    if (member && error.empty() && (!e.comm.valid() || e.comm.size() != c.ranks)) {
      error = "the communicator has " + std::string(e.comm.valid() ? std::to_string(e.comm.size()) : "no") +
              " ranks, want " + std::to_string(c.ranks);
    }
    const std::string all = gatherErrors(error.empty() ? "" : "rank " + std::to_string(worldRank()) + ": " + error);
    if (!all.empty()) {
      e.release();
      throw Error(ErrorCode::kSystemError, "creating the " + backend_ + " communicator for ranks=" +
                                               std::to_string(c.ranks) + (c.nodes ? " nodes=2" : "") + ": " + all);
    }
    return comms_.emplace(key, std::move(e)).first->second.comm;
  }

  /// Drops the communicator of the case (every rank, after a failure everyone agreed on).
  void drop(const Case& c) {
    auto it = comms_.find({c.ranks, c.nodes});
    if (it == comms_.end()) return;
    it->second.release();
    comms_.erase(it);
  }

  void clear() {
    // The world communicator last: the 2- and 3-rank ones were split from it.
    const std::pair<int, bool> world{worldSize(), false};
    for (auto& [key, e] : comms_) {
      if (key != world) e.release();
    }
    for (auto& [key, e] : comms_) e.release();
    comms_.clear();
  }

  const std::string& how() const { return how_; }

 private:
  struct Entry {
    Communicator comm;
    MPI_Comm mpiComm = MPI_COMM_NULL;
    void release() {
      comm = Communicator();
      if (mpiComm != MPI_COMM_NULL) MPI_Comm_free(&mpiComm);
    }
  };
  std::string backend_;
  std::string how_;
  std::map<std::pair<int, bool>, Entry> comms_;
};

std::map<std::string, std::unique_ptr<BackendComms>>& allComms() {
  static std::map<std::string, std::unique_ptr<BackendComms>> m;
  return m;
}

struct Tally {
  int ran = 0;
  int failed = 0;
  double seconds = 0;
};
std::map<std::string, Tally>& tallies() {
  static std::map<std::string, Tally> m;
  return m;
}

class MpCaseTest : public ::testing::Test {
 public:
  explicit MpCaseTest(Case c) : case_(std::move(c)) {}
  void TestBody() override {
    auto& comms = *allComms().at(case_.backend);
    const auto t0 = std::chrono::steady_clock::now();
    std::string mine;
    Communicator* comm = nullptr;
    try {
      comm = &comms.get(case_);
    } catch (const std::exception& e) {
      ++tallies()[case_.backend].ran;
      ++tallies()[case_.backend].failed;
      FAIL() << case_.describe() << " on " << case_.backend << ": " << e.what();
    }
    if (comm->valid()) mine = runCaseOnRank(case_, gSeed, *comm);
    const std::string all = gatherErrors(mine);
    Tally& t = tallies()[case_.backend];
    ++t.ran;
    t.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!all.empty()) {
      ++t.failed;
      comms.drop(case_);  // a failed call may leave the communicator unusable: the next case gets a new one
    }
    EXPECT_TRUE(all.empty()) << "[" << case_.backend << "] " << case_.describe() << " (seed " << gSeed << "): " << all;
  }

 private:
  Case case_;
};

std::vector<std::string> availableBackends() {
  std::vector<std::string> out;
#if COPRO_HAVE_MPI
  out.push_back("mpi");
#endif
#if COPRO_HAVE_UCX
  out.push_back("ucx");
#endif
  out.push_back("shm");
  return out;
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace
}  // namespace copro::test

int main(int argc, char** argv) {
  using namespace copro::test;
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  ::testing::InitGoogleTest(&argc, argv);
  std::vector<std::string> backends = availableBackends();
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--backend=", 0) == 0) {
      backends = splitList(a.substr(10));
    } else if (a == "--uniqueid") {
      gUniqueId = true;
    } else if (a == "--full") {
      gFull = true;
    } else if (a == "--list") {
      list = true;
    } else if (a.rfind("--seed=", 0) == 0) {
      gSeed = std::strtoull(a.c_str() + 7, nullptr, 10);
    } else {
      if (worldRank() == 0) {
        std::fprintf(
            stderr,
            "copro_conformance_mp: unknown option '%s' (--backend=mpi,ucx,shm --uniqueid --full --list --seed=N)\n",
            argv[i]);
      }
      MPI_Finalize();
      return 2;
    }
  }
  const bool root = worldRank() == 0;
  if (worldSize() < 4 && root) {
    std::fprintf(stderr, "copro_conformance_mp: needs 4 processes (mpirun -np 4), has %d\n", worldSize());
  }
  if (worldSize() < 4) {
    MPI_Finalize();
    return 2;
  }
  for (const std::string& b : backends) {
    auto cases = mpCases(b);
    std::vector<std::vector<std::int32_t>> domains;
    std::string error;
    try {
      domains = probeDomains(b);
    } catch (const std::exception& e) {
      error = "rank " + std::to_string(worldRank()) + ": " + e.what();
    }
    // A backend that cannot be created at all fails its first case (creation errors are gathered there).
    if (const std::string all = gatherErrors(error); !all.empty() && root) {
      std::fprintf(stderr, "copro_conformance_mp: probing backend %s: %s\n", b.c_str(), all.c_str());
    }
    int unsupported = 0;
    for (Case& c : cases) {
      c.loadStoreDomains = restrictDomains(domains, c.ranks);
      if (!caseSupported(c)) ++unsupported;
    }
    if (root) {
      std::printf(
          "copro_conformance_mp: backend %s: %zu cases (%d of them must fail with kUnsupported: the algorithm "
          "needs fewer load/store domains than the backend has), seed %llu\n",
          b.c_str(), cases.size(), unsupported, static_cast<unsigned long long>(gSeed));
    }
    allComms()[b] = std::make_unique<BackendComms>(b);
    for (std::size_t i = 0; i < cases.size(); ++i) {
      if (list) {
        if (root) std::printf("  %s\n", cases[i].describe().c_str());
        continue;
      }
      std::string name = std::to_string(i) + "_" + cases[i].describe();
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      const Case c = cases[i];
      ::testing::RegisterTest(("Mp_" + b).c_str(), name.c_str(), nullptr, nullptr, __FILE__, __LINE__,
                              [c]() -> ::testing::Test* { return new MpCaseTest(c); });
    }
  }
  if (list) {
    MPI_Finalize();
    return 0;
  }
  if (!root) {
    // One report, from rank 0 (every rank sees the gathered errors, so the exit codes agree).
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int rc = RUN_ALL_TESTS();
  if (root) {
    for (const auto& [b, t] : tallies()) {
      std::printf("copro_conformance_mp: backend %s (%s): %d cases ran, %d failed, %.1f s\n", b.c_str(),
                  allComms()[b]->how().c_str(), t.ran, t.failed, t.seconds);
    }
  }
  allComms().clear();  // communicators go before MPI_Finalize
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return worst;
}
