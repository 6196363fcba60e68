#pragma once
// Gloo's collectives as a --compare peer (built only where Gloo is installed).
#include <memory>
#include <string>

#include "peers/peer.hpp"

namespace copro::bench {

/// Where and how the Gloo ranks meet.
struct GlooRendezvous {
  int rank = 0;
  int size = 1;
  std::string storeDir;                ///< a directory every rank sees (gloo::rendezvous::FileStore)
  std::string prefix = "copro-perf";   ///< keys of this run in the store
  std::string hostname = "127.0.0.1";  ///< the TCP device's address (loopback: one host)
  double timeoutSec = 300.0;
};

/// Connects a full mesh of Gloo TCP pairs (collective over all ranks; blocks until every rank joined)
/// and runs gloo::allreduce, allgather, alltoall, broadcast, reduce, gather and scatter.
std::unique_ptr<Peer> makeGlooPeer(const GlooRendezvous& rendezvous);

}  // namespace copro::bench
