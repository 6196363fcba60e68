#pragma once
/// Routing of GPU-to-GPU transfers over a topo::Fabric (docs/simulator.md, "Routing").
///
/// A path has up to three segments: inside the source server (GPU -> NIC over PCIe; or the whole path over
/// NVLink / PCIe when both GPUs share a server or an NVLink domain), the network (NIC's switch -> ... ->
/// the peer NIC's switch), and inside the destination server. Segments inside servers are found by BFS
/// over the links a server may use and cached (bounded); the network part walks a cached switch-level
/// distance table towards the destination's switch and picks among equal-cost next hops by the policy.
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "copro/sim/simulator.hpp"
#include "copro/topologies/fabric.hpp"

namespace copro::sim::detail {

class Router {
 public:
  Router(const topo::Fabric& fabric, Routing routing, std::uint64_t seed);

  /// Appends the channels from GPU rank `src` to GPU rank `dst` (src != dst) to `out` and returns the
  /// path latency in ps (link latencies + delays of intermediate nodes). `load` (active flows per channel)
  /// is used by adaptive routing; may be null. Throws core::Error naming both GPUs when there is no path.
  std::int64_t route(std::int32_t src, std::int32_t dst, std::uint64_t flowHash, const std::int32_t* load,
                     std::vector<std::int32_t>& out);
  /// True when the last route() made no per-flow or load-dependent choice: every transfer between the same
  /// two GPUs then takes that path, and the caller may reuse it.
  [[nodiscard]] bool lastRouteFixed() const { return lastFixed_; }

 private:
  enum class Domain : std::uint8_t { kNvLink = 0, kPcie = 1 };
  struct Segment {
    std::vector<std::int32_t> channels;
    bool found = false;
  };

  [[nodiscard]] std::string gpuName(std::int32_t rank) const;
  /// Shortest path over one server-local domain; cached when it is unique or the policy is kShortest.
  const Segment& localSegment(std::int32_t from, std::int32_t to, Domain domain, std::int32_t srcRank,
                              std::int32_t dstRank, std::uint64_t flowHash, const std::int32_t* load);
  bool bfsLocal(std::int32_t from, std::int32_t to, Domain domain, std::uint64_t hash, const std::int32_t* load,
                std::vector<std::int32_t>& out, bool& unique);
  [[nodiscard]] bool allowedTransit(std::int32_t node, Domain domain, std::int32_t hostA, std::int32_t hostB) const;
  /// The PCIe segment between GPU `rank` and a NIC (`toNic`: GPU -> NIC, else NIC -> GPU); a path to a NIC of
  /// the GPU's server is kept per (GPU, NIC) once found (no hash lookup per transfer), others go to
  /// localSegment.
  const Segment& nicSegment(std::int32_t rank, bool toNic, std::int32_t from, std::int32_t to, std::int32_t srcRank,
                            std::int32_t dstRank, std::uint64_t flowHash, const std::int32_t* load);
  const std::vector<std::uint16_t>& switchDistances(std::int32_t dstSwitch);
  void networkWalk(std::int32_t fromSwitch, std::int32_t toSwitch, std::int32_t srcRank, std::int32_t dstRank,
                   std::int32_t nic, std::uint64_t flowHash, const std::int32_t* load, std::vector<std::int32_t>& out);
  /// Index among `n` equal-cost choices.
  std::size_t choose(const std::vector<std::int32_t>& links, std::int32_t at, std::int32_t srcRank,
                     std::int32_t dstRank, std::uint64_t flowHash, const std::int32_t* load, std::int32_t nic);
  /// The (src NIC, dst NIC) pair of an inter-server transfer: own NICs when they reach each other, else the
  /// slow path through the server (PCIe + root complex) to a NIC that does.
  bool pickNics(std::int32_t src, std::int32_t dst, std::int32_t& srcNic, std::int32_t& dstNic) const;

  const topo::Fabric& fabric_;
  bool lastFixed_ = false;
  Routing routing_;
  std::uint64_t seed_;
  std::vector<std::uint8_t> hasNvLink_;    ///< per GPU rank
  std::vector<std::int32_t> nvComp_;       ///< per GPU rank: its component of the NVLink links
  std::vector<std::int32_t> attachOf_;     ///< per GPU rank: NIC node, or the GPU itself on a switch, or -1
  std::vector<std::int32_t> switchLink_;   ///< per node: its first network link to a switch (NIC/GPU), or -1
  std::vector<std::int32_t> switchIndex_;  ///< per node: compact switch index, or -1
  std::vector<std::int32_t> switchComp_;   ///< per node (switch/NIC/attached GPU): switch-graph component
  std::vector<std::vector<std::int32_t>> nicsOfHost_;
  struct SwitchNeighbour {
    std::int32_t link;
    std::int32_t peerIndex;  ///< switch index of the link's other end
  };
  std::vector<std::vector<SwitchNeighbour>> switchNbrs_;  ///< per switch index
  std::vector<std::int32_t> nicIndexInHost_;  ///< per node: a NIC's index in nicsOfHost_ of its server, or -1
  std::int32_t maxNicsPerHost_ = 0;
  std::vector<std::int32_t> hostOf_;      ///< per node: its server (Node::host)
  std::vector<std::int64_t> hopPs_;       ///< per channel: link latency + delay of the node it enters
  std::vector<std::int64_t> endDelayPs_;  ///< per channel: delay of the node it enters
  std::vector<Segment> nicUp_;            ///< per (GPU rank, NIC index in its server): GPU -> NIC, once found
  std::vector<Segment> nicDown_;          ///< per (GPU rank, NIC index in its server): NIC -> GPU, once found
  std::unordered_map<std::int32_t, std::vector<std::uint16_t>> distCache_;
  std::size_t distCacheBytes_ = 0;
  std::unordered_map<std::uint64_t, Segment> segCache_;
  Segment scratchSeg_;
  // BFS scratch, reset through `touched_`.
  std::vector<std::int32_t> dist_;
  std::vector<std::int32_t> touched_;
  std::vector<std::int32_t> queue_;
  std::vector<std::int32_t> choices_;
  std::vector<std::int32_t> railChoices_;
};

}  // namespace copro::sim::detail
