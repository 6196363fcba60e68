/// simulateFlows: the max-min network alone, for the sharing tests and the SimGrid comparison bench.
#include <string>

#include "copro/core/status.hpp"
#include "copro/sim/simulator.hpp"
#include "event_queue.hpp"
#include "flow_network.hpp"

namespace copro::sim {

std::vector<core::Time> simulateFlows(const topo::Fabric& fabric, const std::vector<FlowSpec>& flows) {
  using detail::EventKind;
  const auto numChannels = static_cast<std::int32_t>(2 * fabric.links().size());
  std::vector<std::int64_t> latency(flows.size(), 0);
  for (std::size_t i = 0; i < flows.size(); ++i) {
    const FlowSpec& f = flows[i];
    if (f.start.picoseconds() < 0) {
      throw core::Error(core::ErrorCode::kInvalidArgument,
                        "simulateFlows: flow " + std::to_string(i) + " starts at a negative time");
    }
    for (std::size_t h = 0; h < f.channels.size(); ++h) {
      const std::int32_t ch = f.channels[h];
      if (ch < 0 || ch >= numChannels) {
        throw core::Error(core::ErrorCode::kInvalidArgument,
                          "simulateFlows: flow " + std::to_string(i) + " uses channel " + std::to_string(ch) +
                              ", but the fabric has channels 0.." + std::to_string(numChannels - 1));
      }
      const topo::Link& l = fabric.link(ch / 2);
      latency[i] += l.latency.picoseconds();
      if (h + 1 < f.channels.size()) latency[i] += fabric.node(ch % 2 == 0 ? l.b : l.a).delay.picoseconds();
    }
  }
  std::vector<core::Time> done(flows.size());
  detail::FlowNetwork net(fabric);
  detail::EventQueue queue;
  // kLaneRun stands for "flow a starts" here.
  for (std::size_t i = 0; i < flows.size(); ++i) {
    queue.push(flows[i].start.picoseconds(), EventKind::kLaneRun, static_cast<std::int32_t>(i));
  }
  bool recomputeScheduled = false;
  std::vector<detail::FlowNetwork::Finish> finishes;
  while (!queue.empty()) {
    const detail::Event e = queue.pop();
    const std::int64_t now = e.time;
    switch (e.kind) {
      case EventKind::kLaneRun: {
        const FlowSpec& f = flows[static_cast<std::size_t>(e.a)];
        if (f.channels.empty() || f.bytes == 0) {
          done[static_cast<std::size_t>(e.a)] = core::Time::ps(now + latency[static_cast<std::size_t>(e.a)]);
          break;
        }
        net.start(now, f.channels.data(), f.channels.size(), f.bytes, static_cast<std::uint32_t>(e.a));
        if (!recomputeScheduled) {
          queue.push(now, EventKind::kRecompute, 0, 0, true);
          recomputeScheduled = true;
        }
        break;
      }
      case EventKind::kFlowFinish: {
        if (!net.isCurrent(e.a, e.b)) break;
        const std::uint32_t id = net.tagOf(e.a);
        net.finish(e.a, now);
        done[id] = core::Time::ps(now + latency[id]);
        if (!recomputeScheduled) {
          queue.push(now, EventKind::kRecompute, 0, 0, true);
          recomputeScheduled = true;
        }
        break;
      }
      case EventKind::kRecompute:
        recomputeScheduled = false;
        finishes.clear();
        net.recompute(now, finishes);
        for (const auto& f : finishes) queue.push(f.time, EventKind::kFlowFinish, f.flow, f.version);
        break;
      case EventKind::kDeliver:
      case EventKind::kFlowStart:
        break;
    }
  }
  return done;
}

}  // namespace copro::sim
