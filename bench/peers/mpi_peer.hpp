#pragma once
// Open MPI's own collectives as a --compare peer (built only with MPI).
#include <mpi.h>

#include <memory>

#include "peers/peer.hpp"

namespace copro::bench {

/// MPI_Allreduce, MPI_Allgather, MPI_Reduce_scatter_block, MPI_Alltoall, MPI_Bcast, MPI_Reduce,
/// MPI_Gather and MPI_Scatter on a duplicate of `comm` (so its messages never match the benchmark's).
std::unique_ptr<Peer> makeMpiPeer(MPI_Comm comm);

}  // namespace copro::bench
