#pragma once
// Conformance harness: runs one collective call through the public Communicator API on every rank of a
// backend and checks every output element against a float64 reference.
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
  [[nodiscard]] std::string describe() const;
};

/// GoogleTest prints parameters with this instead of a byte dump.
inline void PrintTo(const Case& c, std::ostream* os) {
  *os << c.describe();
}

/// Runs the case; returns "" when every rank's output matched, else a description of the first errors.
std::string runCase(const Case& c, std::uint64_t seed);

/// The (collective, algorithm) pairs the harness covers, from the algorithm registry.
std::vector<std::pair<collectives::CollectiveKind, std::string>> collectiveAlgorithms();

/// Pairwise-covering cases over (collective,algorithm) x dtype x op x ranks x count x in-place.
std::vector<Case> pairwiseCases(const std::vector<int>& ranks, const std::vector<std::uint64_t>& counts);
/// The full cross product (for the `full` label).
std::vector<Case> crossProductCases(const std::vector<int>& ranks, const std::vector<std::uint64_t>& counts);
/// Pairs of factor values that `cases` leaves uncovered (empty when the cases are pairwise-complete).
std::vector<std::string> uncoveredPairs(const std::vector<Case>& cases, const std::vector<int>& ranks,
                                        const std::vector<std::uint64_t>& counts);

/// Whether the case can run at all (algorithm restrictions), adjusting nothing.
bool caseSupported(const Case& c);
bool isReduction(collectives::CollectiveKind k);
bool supportsInPlace(collectives::CollectiveKind k);

}  // namespace copro::test
