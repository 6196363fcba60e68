/// SimGrid peer of copro-sim-bench: a star platform built with the s4u NetZone API and the ring
/// all-reduce / raw flows of the comparison, under SimGrid's CM02 max-min model. See simgrid_peer.hpp.
#include "simgrid_peer.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "copro/core/status.hpp"

#if COPRO_BENCH_HAVE_SIMGRID
#include <xbt/log.h>
#include <simgrid/s4u.hpp>
#endif

namespace copro::bench {

namespace {

void checkPlatform(const StarPlatform& platform) {
  if (platform.hosts < 2) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "SimGrid peer: the star needs at least 2 hosts (got " + std::to_string(platform.hosts) + ")");
  }
  if (!(platform.bandwidth > 0.0) || platform.latency < 0.0 || platform.reduceRate < 0.0) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "SimGrid peer: bandwidth must be > 0 and latency, reduce rate >= 0 (got bandwidth " +
                          std::to_string(platform.bandwidth) + " B/s, latency " + std::to_string(platform.latency) +
                          " s, reduce rate " + std::to_string(platform.reduceRate) + " B/s)");
  }
}

}  // namespace

std::vector<std::string> simgridSettings() {
  // CM02 is SimGrid's plain max-min model: a transfer takes latency + size / (max-min share). The
  // factors are pinned to 1 (CM02's defaults, set anyway so a site config cannot change them), the
  // TCP-window bound (rate <= gamma / 2·latency) and the 5% reverse "ACK" flow of cross-traffic are
  // switched off, because copro's flow model has neither.
  return {"network/model:CM02", "network/latency-factor:1", "network/bandwidth-factor:1",
          "network/weight-S:0", "network/TCP-gamma:0",      "network/crosstraffic:0"};
}

#if COPRO_BENCH_HAVE_SIMGRID

namespace sg4 = simgrid::s4u;

namespace {

/// The engine, configured; the star platform, built. Host i is `host(i)`.
class StarWorld {
 public:
  explicit StarWorld(const StarPlatform& platform) {
    checkPlatform(platform);
    // SimGrid's engine takes argv; --log first so configuration messages are silenced too.
    args_.emplace_back("copro-sim-bench");
    args_.emplace_back("--log=root.thresh:warning");
    for (const std::string& s : simgridSettings()) args_.push_back("--cfg=" + s);
    for (std::string& a : args_) argv_.push_back(a.data());
    argv_.push_back(nullptr);
    int argc = static_cast<int>(args_.size());
    engine_ = std::make_unique<sg4::Engine>(&argc, argv_.data());

    auto* zone = sg4::create_star_zone("star");
    // Host speed is the reduction rate: an Exec of `bytes` flops then lasts bytes / reduceRate.
    const double speed = platform.reduceRate > 0.0 ? platform.reduceRate : 1e9;
    hosts_.reserve(static_cast<std::size_t>(platform.hosts));
    for (std::int32_t i = 0; i < platform.hosts; ++i) {
      const std::string id = std::to_string(i);
      sg4::Host* host = zone->create_host("h" + id, speed);
      // Two simplex links per host model one full-duplex cable: each direction has the full bandwidth.
      sg4::Link* up = zone->create_link("up" + id, platform.bandwidth)->set_latency(platform.latency)->seal();
      sg4::Link* down = zone->create_link("down" + id, platform.bandwidth)->set_latency(platform.latency)->seal();
      zone->add_route(host->get_netpoint(), nullptr, nullptr, nullptr, {sg4::LinkInRoute(up)}, false);
      zone->add_route(nullptr, host->get_netpoint(), nullptr, nullptr, {sg4::LinkInRoute(down)}, false);
      hosts_.push_back(host);
    }
    zone->seal();
  }

  void run() const { engine_->run(); }
  [[nodiscard]] sg4::Host* host(std::size_t i) const { return hosts_[i]; }

 private:
  std::vector<sg4::Host*> hosts_;
  std::vector<std::string> args_;
  std::vector<char*> argv_;
  std::unique_ptr<sg4::Engine> engine_;
};

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

bool simgridAvailable() noexcept {
  return true;
}

PeerRun simgridRingAllReduce(const StarPlatform& platform, std::uint64_t bytesPerRank, std::uint64_t elemSize) {
  checkPlatform(platform);
  const auto p = static_cast<std::uint64_t>(platform.hosts);
  if (elemSize == 0 || bytesPerRank % elemSize != 0 || (bytesPerRank / elemSize) % p != 0) {
    throw core::Error(core::ErrorCode::kInvalidArgument,
                      "SimGrid peer: the ring mirror needs equal blocks: " + std::to_string(bytesPerRank) +
                          " bytes of " + std::to_string(elemSize) + "-byte elements do not split into " +
                          std::to_string(p) + " equal blocks (use a count that is a multiple of p)");
  }
  const auto t0 = std::chrono::steady_clock::now();
  StarWorld world(platform);
  const std::uint64_t block = bytesPerRank / p;
  const double reduceFlops = platform.reduceRate > 0.0 ? static_cast<double>(block) : 0.0;

  std::vector<sg4::Mailbox*> mailboxes;
  for (std::uint64_t i = 0; i < p; ++i) mailboxes.push_back(sg4::Mailbox::by_name("ring" + std::to_string(i)));
  // Every host declares itself the permanent receiver of its mailbox before anyone sends: a put then
  // flows as soon as it is posted, like copro's one-sided put, instead of waiting for a matching get.
  sg4::BarrierPtr ready = sg4::Barrier::create(static_cast<unsigned>(p));
  static char token = 0;

  for (std::uint64_t i = 0; i < p; ++i) {
    sg4::Mailbox* mine = mailboxes[i];
    sg4::Mailbox* next = mailboxes[(i + 1) % p];
    sg4::Actor::create("rank" + std::to_string(i), world.host(i), [mine, next, ready, p, block, reduceFlops] {
      mine->set_receiver(sg4::Actor::self());
      ready->wait();
      const auto put = [&] { next->put_init(&token, block)->detach(); };
      const auto receive = [&] { mine->get<char>(); };
      const auto reduce = [&] {
        if (reduceFlops > 0.0) sg4::this_actor::execute(reduceFlops);
      };
      // Reduce-scatter: p-1 sends; each received block is reduced with our own before it moves on.
      put();
      for (std::uint64_t s = 1; s + 1 < p; ++s) {
        receive();
        reduce();
        put();
      }
      receive();
      reduce();
      // All-gather: p-1 sends of finished blocks, no reduction.
      put();
      for (std::uint64_t s = 1; s + 1 < p; ++s) {
        receive();
        put();
      }
      receive();
      mine->set_receiver(nullptr);
    });
  }
  world.run();
  PeerRun out;
  out.predictedSeconds = sg4::Engine::get_clock();
  out.wallSeconds = secondsSince(t0);
  out.comms = 2 * (p - 1) * p;
  out.execs = reduceFlops > 0.0 ? (p - 1) * p : 0;
  return out;
}

std::vector<double> simgridFlows(const StarPlatform& platform, const std::vector<PeerFlow>& flows, PeerRun* run) {
  checkPlatform(platform);
  for (std::size_t f = 0; f < flows.size(); ++f) {
    const PeerFlow& fl = flows[f];
    if (fl.src < 0 || fl.dst < 0 || fl.src >= platform.hosts || fl.dst >= platform.hosts || fl.src == fl.dst ||
        fl.bytes == 0 || fl.start < 0.0) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "SimGrid peer: flow " + std::to_string(f) + " (" + std::to_string(fl.src) + " -> " +
                            std::to_string(fl.dst) + ", " + std::to_string(fl.bytes) +
                            " bytes) needs two distinct hosts of the star, bytes > 0 and a start >= 0");
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  StarWorld world(platform);
  std::vector<double> done(flows.size(), -1.0);
  for (std::size_t f = 0; f < flows.size(); ++f) {
    const PeerFlow fl = flows[f];
    sg4::Host* from = world.host(static_cast<std::size_t>(fl.src));
    sg4::Host* to = world.host(static_cast<std::size_t>(fl.dst));
    double* slot = &done[f];
    sg4::Actor::create("flow" + std::to_string(f), from, [fl, from, to, slot] {
      if (fl.start > 0.0) sg4::this_actor::sleep_until(fl.start);
      sg4::Comm::sendto(from, to, fl.bytes);
      *slot = sg4::Engine::get_clock();
    });
  }
  world.run();
  if (run != nullptr) {
    run->predictedSeconds = sg4::Engine::get_clock();
    run->wallSeconds = secondsSince(t0);
    run->comms = flows.size();
    run->execs = 0;
  }
  return done;
}

#else  // no SimGrid in this build

bool simgridAvailable() noexcept {
  return false;
}

PeerRun simgridRingAllReduce(const StarPlatform& /*platform*/, std::uint64_t /*bytesPerRank*/,
                             std::uint64_t /*elemSize*/) {
  throw core::Error(core::ErrorCode::kUnsupported,
                    "SimGrid peer: this build has no SimGrid (install libsimgrid-dev and reconfigure)");
}

std::vector<double> simgridFlows(const StarPlatform& /*platform*/, const std::vector<PeerFlow>& /*flows*/,
                                 PeerRun* /*run*/) {
  throw core::Error(core::ErrorCode::kUnsupported,
                    "SimGrid peer: this build has no SimGrid (install libsimgrid-dev and reconfigure)");
}

#endif

}  // namespace copro::bench
