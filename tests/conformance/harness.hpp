#pragma once
// Conformance harness: runs one collective call through the public Communicator API on every rank of a
// backend and checks every output element against a float64 reference. runCase drives all ranks of the
// inproc backend from threads; runCaseOnRank is the part one process runs on its own rank (multi-process
// backends, tests/conformance/mp_conformance.cpp).
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "copro/copro.hpp"

namespace copro::test {

struct Case {
  collectives::CollectiveKind kind = collectives::CollectiveKind::kAllReduce;
  std::string algo;  ///< empty: the planner
  DataType dtype = DataType::kFloat32;
  ReduceOp op = ReduceOp::kSum;
  int ranks = 2;
  std::uint64_t count = 7;
  bool inPlace = false;
  int root = 0;
  bool nodes = false;  ///< run on two virtual nodes (rank r on node r % 2) for hierarchical algorithms
  std::string backend = "inproc";
  /// The backend's load/store domains for these ranks (Executor::loadStoreDomains; empty: one domain).
  /// A case whose algorithm needs fewer domains must fail with kUnsupported on every rank.
  std::vector<std::vector<std::int32_t>> loadStoreDomains;
  [[nodiscard]] std::string describe() const;
};

/// GoogleTest prints parameters with this instead of a byte dump.
inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.describe();
}

/// Runs the case on the `inproc` backend (every rank a thread of this process, communicators cached per
/// rank count and node layout); returns "" when every rank's output matched, else a description of the
/// first errors of every failing rank.
std::string runCase(const Case& c, std::uint64_t seed);

/// The per-rank part of a case, for a process that holds one rank of a communicator of any backend: builds
/// this rank's inputs from `seed`, runs the call on `comm`, and checks this rank's output against the
/// float64 reference. Every rank of `comm` must call it with the same case and seed. `comm.size()` must be
/// `c.ranks`; for `c.nodes` its node layout must be caseNodeOfRank(c). Returns "" when this rank's output
/// matched, else "rank R: " and the first wrong elements (or the status / exception of the call).
std::string runCaseOnRank(const Case& c, std::uint64_t seed, Communicator& comm);

/// The node of every rank when `c.nodes` (rank r on node r % 2); empty otherwise (one node).
std::vector<int> caseNodeOfRank(const Case& c);
/// The same as a Config::nodeMap / COPRO_NODE_MAP string ("0,1,0,1"); empty when !c.nodes.
std::string caseNodeMap(const Case& c);

/// The (collective, algorithm) pairs the harness covers, from the algorithm registry.
std::vector<std::pair<collectives::CollectiveKind, std::string>> collectiveAlgorithms();

/// Pairwise-covering cases over (collective,algorithm) x dtype x op x ranks x count x in-place.
std::vector<Case> pairwiseCases(const std::vector<int>& ranks, const std::vector<std::uint64_t>& counts);
/// The full cross product (for the `full` label).
std::vector<Case> crossProductCases(const std::vector<int>& ranks, const std::vector<std::uint64_t>& counts);
/// Pairs of factor values that `cases` leaves uncovered (empty when the cases are pairwise-complete).
std::vector<std::string> uncoveredPairs(const std::vector<Case>& cases, const std::vector<int>& ranks,
                                        const std::vector<std::uint64_t>& counts);

/// Whether the case can run at all (algorithm restrictions, including c.loadStoreDomains), adjusting
/// nothing. runCaseOnRank expects an unsupported case to fail with kUnsupported on every rank.
bool caseSupported(const Case& c);
/// CollectiveArgs::llMaxBytes of the case's backend: what the Communicator passes (COPRO_LL_MAX_BYTES,
/// capped by the LL mailboxes that inproc and shm have up to 16 ranks).
std::uint64_t caseLLMaxBytes(const Case& c);
bool isReduction(collectives::CollectiveKind k);
bool supportsInPlace(collectives::CollectiveKind k);

}  // namespace copro::test
