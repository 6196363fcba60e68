#pragma once
// Each algorithm family appends its algorithms here; registry.cpp calls them in this order.
#include <vector>

#include "copro/collectives/collective.hpp"

namespace copro::collectives::detail {

void addAllReduceAlgorithms(std::vector<Algorithm>& out);      // alg_allreduce.cpp
void addReduceScatterAlgorithms(std::vector<Algorithm>& out);  // alg_reducescatter.cpp (incl. reducescatterv)
void addAllGatherAlgorithms(std::vector<Algorithm>& out);      // alg_allgather.cpp (incl. allgatherv)
void addHierarchicalAlgorithms(std::vector<Algorithm>& out);   // alg_hierarchical.cpp
void addRootedAlgorithms(std::vector<Algorithm>& out);         // alg_rooted.cpp: broadcast, reduce, gather, scatter
void addAllToAllAlgorithms(std::vector<Algorithm>& out);       // alg_alltoall.cpp (incl. alltoallv)
void addSyncAlgorithms(std::vector<Algorithm>& out);           // alg_sync.cpp: barrier, sendrecv

}  // namespace copro::collectives::detail
