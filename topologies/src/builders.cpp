// Builders: node templates (H800, H100, GB200 trays), single switch, fat-trees, rail-optimized, multi-plane
// fat-tree and dragonfly. Figures and their sources are in docs/topologies.md.
#include "builders.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "copro/core/limits.hpp"
#include "copro/core/status.hpp"

namespace copro::topo::detail {

namespace {

using core::Bandwidth;
using core::Time;

// ---------------------------------------------------------------------------------------------------------
// Servers from node templates.

/// A server (HGX board, GB200 tray, or a single GPU with its NIC) as the builders instantiate it.
struct ServerSpec {
  std::string templateName;
  std::int32_t gpus = 8;
  std::int32_t sms = 132;
  Bandwidth memoryBw;
  bool nvswitch = true;  ///< one NVSwitch node per server (false: a single GPU, or a rack-level switch)
  Bandwidth nvlinkBw;
  Time nvlinkLatency;
  Time nvswitchDelay;
  bool nvls = true;  ///< NVSwitch in-switch reduction and multicast (NVLink SHARP)
  std::int32_t pcieSwitches = 8;
  Bandwidth pcieBw;
  Time pcieLatency;
  Time pcieSwitchDelay;
  Bandwidth nicBw;
  Time nicLatency;
};

/// Template defaults as text, so that `copro-topo builders` and the docs show the same values the code uses.
struct TemplateDefaults {
  const char* name;
  const char* doc;
  const char* gpus;
  const char* sms;
  const char* memoryBw;
  const char* nvlinkBw;
  const char* nvlinkLatency;
  const char* nvswitchDelay;
  const char* nvls;
  const char* pcieSwitches;
  const char* pcieBw;
  const char* pcieLatency;
  const char* pcieSwitchDelay;
  const char* nicBw;
  const char* nicLatency;
};

// Latencies are calibrated (docs/topologies.md, "Latency calibration") so that, with the 0.7 us device
// issue cost of deepseek-v3.yaml, a 64-B write takes 2.8 us to a NIC on the same IB leaf and 3.7 us across
// leaves (DeepSeek-V3 paper); NVLink paths stay shorter in latency than PCIe paths between the same GPUs.
// Rates are achievable, not nominal (docs/simulator.md, "Link rates and per-message costs"): NVLink is its
// nominal rate x 0.8, the ratio the DeepSeek-V3 report measures on H800 (160 of 200 GB/s per direction):
// H100 450 -> 360 GB/s, GB200 (NVLink 5, the same ratio assumed) 900 -> 720 GB/s; NICs and PCIe keep their
// nominal rates (DeepEP reaches ~50 GB/s on a 400 Gb/s CX7; PCIe never bounds a template's paths).
constexpr TemplateDefaults kTemplates[] = {
    {"h800", "HGX H800: 8 GPUs x 132 SMs, NVSwitch at 160 GB/s achievable per direction, 8 CX7 400 Gb/s NICs", "8",
     "132", "3.35TB/s", "160GB/s", "150ns", "100ns", "true", "8", "64GB/s", "200ns", "150ns", "400Gb/s", "400ns"},
    {"h100", "HGX H100: 8 GPUs x 132 SMs, NVSwitch at 360 GB/s achievable per direction, 8 CX7 400 Gb/s NICs", "8",
     "132", "3.35TB/s", "360GB/s", "150ns", "100ns", "true", "8", "64GB/s", "200ns", "150ns", "400Gb/s", "400ns"},
    {"gb200", "GB200 compute tray: 4 GPUs x 148 SMs (NVLink to the rack's switch at 720 GB/s achievable), 4 CX7 NICs",
     "4", "148", "8TB/s", "720GB/s", "150ns", "100ns", "true", "4", "64GB/s", "200ns", "150ns", "400Gb/s", "400ns"},
    {"gpu", "one GPU with its own 400 Gb/s NIC on a PCIe link (1 GPU per host)", "1", "132", "3.35TB/s", "160GB/s",
     "150ns", "100ns", "false", "0", "64GB/s", "200ns", "150ns", "400Gb/s", "400ns"},
};

const TemplateDefaults* findTemplate(const std::string& name) {
  for (const auto& t : kTemplates) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

std::vector<std::string> templateNames() {
  std::vector<std::string> names;
  for (const auto& t : kTemplates) names.emplace_back(t.name);
  return names;
}

/// Parameters of builders that instantiate servers. With `withTemplate`, the `node` parameter picks the
/// template (default `defaultTemplate`); the others default to the template's values.
std::vector<BuilderParam> serverParams(bool withTemplate, const std::string& templ) {
  // A builder with a fixed template (h800_node) shows the template's values as defaults; one with a `node`
  // parameter shows "" (the chosen template decides).
  const TemplateDefaults* t = withTemplate ? nullptr : findTemplate(templ);
  auto d = [&](const char* TemplateDefaults::*field) { return t != nullptr ? std::string(t->*field) : std::string(); };
  std::vector<BuilderParam> p;
  if (withTemplate) {
    p.push_back({"node", templ, "node template: h800, h100, gb200 (tray) or gpu (1 GPU + 1 NIC per host)"});
  }
  const std::string of = withTemplate ? " (default: the template's)" : "";
  p.push_back({"gpus_per_node", d(&TemplateDefaults::gpus), "GPUs per server, each with its NIC" + of});
  p.push_back({"sms", d(&TemplateDefaults::sms), "streaming multiprocessors per GPU" + of});
  p.push_back({"memory_bw", d(&TemplateDefaults::memoryBw), "HBM bandwidth per GPU" + of});
  p.push_back({"nvlink_bw", d(&TemplateDefaults::nvlinkBw), "NVLink bandwidth per GPU per direction" + of});
  p.push_back({"nvlink_latency", d(&TemplateDefaults::nvlinkLatency), "GPU-NVSwitch link latency" + of});
  p.push_back({"nvswitch_delay", d(&TemplateDefaults::nvswitchDelay), "NVSwitch forwarding delay" + of});
  p.push_back({"nvls", d(&TemplateDefaults::nvls), "NVSwitch in-switch reduce and multicast (NVLink SHARP)" + of});
  p.push_back({"pcie_switches", d(&TemplateDefaults::pcieSwitches),
               "PCIe switches per server, GPUs and NICs spread evenly; 0: GPU-NIC link" + of});
  p.push_back({"pcie_bw", d(&TemplateDefaults::pcieBw), "PCIe link bandwidth per direction" + of});
  p.push_back({"pcie_latency", d(&TemplateDefaults::pcieLatency), "GPU-PCIe switch and PCIe switch-host latency" + of});
  p.push_back({"pcie_switch_delay", d(&TemplateDefaults::pcieSwitchDelay),
               "PCIe switch and root complex forwarding delay" + of});
  p.push_back({"nic_bw", d(&TemplateDefaults::nicBw), "NIC line rate per direction (also its leaf link)" + of});
  p.push_back({"nic_latency", d(&TemplateDefaults::nicLatency), "NIC-PCIe link latency incl. NIC processing" + of});
  return p;
}

ServerSpec serverFromParams(const Params& params, const std::string& fixedTemplate) {
  const std::string name = fixedTemplate.empty() ? params.text("node") : fixedTemplate;
  const TemplateDefaults* t = findTemplate(name);
  if (t == nullptr) {
    (void)params.choice("node", templateNames());  // throws, naming the templates
    params.fail("node", "unknown node template");
  }
  // Each value is parsed through Params so that errors name the parameter; defaults come from the template.
  ServerSpec s;
  s.templateName = name;
  auto integer = [&](const std::string& key, const char* fallback, std::int64_t lo, std::int64_t hi) {
    if (params.given(key)) return static_cast<std::int32_t>(params.integer(key, lo, hi));
    return static_cast<std::int32_t>(std::stoll(fallback));
  };
  auto bandwidth = [&](const std::string& key, const char* fallback) {
    if (params.given(key)) return params.bandwidth(key);
    return parseBandwidth(fallback);
  };
  auto time = [&](const std::string& key, const char* fallback) {
    if (params.given(key)) return params.time(key);
    return parseDuration(fallback);
  };
  s.gpus = integer("gpus_per_node", t->gpus, 1, 1024);
  s.sms = integer("sms", t->sms, 0, 100000);
  s.memoryBw = bandwidth("memory_bw", t->memoryBw);
  s.nvswitch = s.gpus > 1;
  s.nvlinkBw = bandwidth("nvlink_bw", t->nvlinkBw);
  s.nvlinkLatency = time("nvlink_latency", t->nvlinkLatency);
  s.nvswitchDelay = time("nvswitch_delay", t->nvswitchDelay);
  s.nvls = params.given("nvls") ? params.flag("nvls") : std::string(t->nvls) == "true";
  s.pcieSwitches = integer("pcie_switches", t->pcieSwitches, 0, 1024);
  s.pcieBw = bandwidth("pcie_bw", t->pcieBw);
  s.pcieLatency = time("pcie_latency", t->pcieLatency);
  s.pcieSwitchDelay = time("pcie_switch_delay", t->pcieSwitchDelay);
  s.nicBw = bandwidth("nic_bw", t->nicBw);
  s.nicLatency = time("nic_latency", t->nicLatency);
  if (s.pcieSwitches > 0 && s.gpus % s.pcieSwitches != 0) {
    params.fail(params.given("pcie_switches") ? "pcie_switches" : "gpus_per_node",
                "the " + std::to_string(s.gpus) + " GPUs of a server must spread evenly over its " +
                    std::to_string(s.pcieSwitches) + " PCIe switches");
  }
  for (const auto& [key, bw] :
       {std::pair<const char*, Bandwidth>{"nvlink_bw", s.nvlinkBw}, {"pcie_bw", s.pcieBw}, {"nic_bw", s.nicBw}}) {
    if (!(bw.bytesPerSecond() > 0)) params.fail(key, "must be positive");
  }
  return s;
}

/// Adds one server; returns its NIC node ids by local index. `planes` > 0 puts NIC i in plane i % planes.
/// `withNvSwitch` false leaves the GPUs' NVLink to the caller (GB200: one switch for the rack).
std::vector<std::int32_t> addServer(Fabric& f, const ServerSpec& s, std::int32_t host, std::int32_t planes,
                                    bool withNvSwitch) {
  const std::string prefix = "n" + std::to_string(host) + ".";
  std::vector<std::int32_t> gpus(static_cast<std::size_t>(s.gpus));
  for (std::int32_t i = 0; i < s.gpus; ++i) {
    Node g;
    g.kind = NodeKind::kGpu;
    g.name = prefix + "gpu" + std::to_string(i);
    g.host = host;
    g.local = i;
    g.sms = s.sms;
    g.memoryBandwidth = s.memoryBw;
    gpus[static_cast<std::size_t>(i)] = f.addNode(std::move(g));
  }
  if (withNvSwitch && s.nvswitch) {
    Node sw;
    sw.kind = NodeKind::kNvSwitch;
    sw.name = prefix + "nvswitch";
    sw.host = host;
    sw.delay = s.nvswitchDelay;
    sw.inSwitchReduce = s.nvls;
    sw.multicast = s.nvls;
    const std::int32_t swId = f.addNode(std::move(sw));
    for (std::int32_t g : gpus) f.addLink(g, swId, LinkKind::kNvLink, s.nvlinkBw, s.nvlinkLatency);
  }
  std::vector<std::int32_t> nics(static_cast<std::size_t>(s.gpus));
  for (std::int32_t i = 0; i < s.gpus; ++i) {
    Node n;
    n.kind = NodeKind::kNic;
    n.name = prefix + "nic" + std::to_string(i);
    n.host = host;
    n.local = i;
    n.rail = i;
    n.plane = planes > 0 ? i % planes : -1;
    nics[static_cast<std::size_t>(i)] = f.addNode(std::move(n));
  }
  if (s.pcieSwitches == 0) {
    // No PCIe switch: each GPU talks to its NIC directly (the GPU-NIC latency still counts both parts).
    for (std::int32_t i = 0; i < s.gpus; ++i) {
      f.addLink(gpus[static_cast<std::size_t>(i)], nics[static_cast<std::size_t>(i)], LinkKind::kPcie, s.pcieBw,
                s.pcieLatency + s.nicLatency);
    }
    return nics;
  }
  Node rc;
  rc.kind = NodeKind::kHost;
  rc.name = prefix + "host";
  rc.host = host;
  rc.delay = s.pcieSwitchDelay;
  const std::int32_t rcId = f.addNode(std::move(rc));
  const std::int32_t perSwitch = s.gpus / s.pcieSwitches;
  for (std::int32_t k = 0; k < s.pcieSwitches; ++k) {
    Node ps;
    ps.kind = NodeKind::kPcieSwitch;
    ps.name = prefix + "pcie" + std::to_string(k);
    ps.host = host;
    ps.delay = s.pcieSwitchDelay;
    const std::int32_t psId = f.addNode(std::move(ps));
    f.addLink(psId, rcId, LinkKind::kPcie, s.pcieBw, s.pcieLatency);
    for (std::int32_t i = k * perSwitch; i < (k + 1) * perSwitch; ++i) {
      f.addLink(gpus[static_cast<std::size_t>(i)], psId, LinkKind::kPcie, s.pcieBw, s.pcieLatency);
      f.addLink(nics[static_cast<std::size_t>(i)], psId, LinkKind::kPcie, s.pcieBw, s.nicLatency);
    }
  }
  return nics;
}

// ---------------------------------------------------------------------------------------------------------
// Network tiers.

struct NetworkSpec {
  Bandwidth nicBw;   ///< NIC-leaf links
  Bandwidth linkBw;  ///< switch-switch links
  Time linkLatency;  ///< every network link
  Time switchDelay;  ///< every network switch
  std::int32_t radix = 64;
  double oversubscription = 1.0;
  std::int32_t down = 32;  ///< leaf ports toward endpoints
  std::int32_t up = 32;    ///< leaf ports toward the next tier
  bool sharp = false;      ///< every network switch reduces and replicates in the network (SHARP)
};

std::vector<BuilderParam> networkParams(const std::string& defaultRadix) {
  return {
      {"radix", defaultRadix, "ports per network switch"},
      {"oversubscription", "1:1", "leaf downlinks per uplink, e.g. 2:1 (a leaf uses radix*o/(o+1) ports down)"},
      {"network", "ib", "ib or roce: picks the default link latency and switch delay"},
      {"link_bw", "", "switch-switch link bandwidth per direction (default: nic_bw)"},
      {"link_latency", "", "network link latency (default: ib 150ns, roce 400ns)"},
      {"switch_delay", "", "network switch forwarding delay (default: ib 300ns, roce 600ns)"},
      {"sharp", "false", "network switches reduce and multicast in the network (SHARP-style in_switch_reduce)"},
  };
}

NetworkSpec networkFromParams(const Params& p, Bandwidth nicBw) {
  NetworkSpec n;
  n.nicBw = nicBw;
  n.radix = static_cast<std::int32_t>(p.integer("radix", 2, core::kMaxSwitchRadix));
  n.oversubscription = p.ratio("oversubscription");
  const std::string kind = p.choice("network", {"ib", "roce"});
  n.linkBw = p.given("link_bw") ? p.bandwidth("link_bw") : nicBw;
  if (!(n.linkBw.bytesPerSecond() > 0)) p.fail("link_bw", "must be positive");
  // 2 links + 1 switch between NICs on one leaf, +2 links + 2 switches across leaves: IB 2.8/3.7 us and
  // RoCE 3.6/5.6 us end to end with the server side of the templates (docs/topologies.md).
  n.linkLatency = p.given("link_latency") ? p.time("link_latency") : Time::ns(kind == "ib" ? 150 : 400);
  n.switchDelay = p.given("switch_delay") ? p.time("switch_delay") : Time::ns(kind == "ib" ? 300 : 600);
  n.sharp = p.flag("sharp");
  n.down = static_cast<std::int32_t>(std::floor(n.radix * n.oversubscription / (n.oversubscription + 1.0)));
  n.up = static_cast<std::int32_t>(std::floor(n.down / n.oversubscription));
  if (n.down < 1 || n.up < 1) p.fail("radix", "too few ports for oversubscription " + p.text("oversubscription"));
  return n;
}

std::int32_t addSwitch(Fabric& f, std::string name, std::int32_t tier, std::int32_t radix, std::int32_t plane,
                       std::int32_t rail, Time delay, bool sharp = false) {
  Node sw;
  sw.inSwitchReduce = sharp;
  sw.multicast = sharp;
  sw.kind = NodeKind::kSwitch;
  sw.name = std::move(name);
  sw.tier = tier;
  sw.radix = radix;
  sw.plane = plane;
  sw.rail = rail;
  sw.delay = delay;
  return f.addNode(std::move(sw));
}

std::int64_t ceilDiv(std::int64_t a, std::int64_t b) {
  return (a + b - 1) / b;
}

/// Leaves for `endpoints` (NIC ids), packed `down` per leaf in order; returns the leaf ids.
std::vector<std::int32_t> addLeaves(Fabric& f, const std::vector<std::int32_t>& endpoints, std::int64_t leaves,
                                    const NetworkSpec& n, const std::string& prefix, std::int32_t plane,
                                    std::int32_t rail) {
  std::vector<std::int32_t> ids;
  for (std::int64_t l = 0; l < leaves; ++l) {
    ids.push_back(addSwitch(f, prefix + "leaf" + std::to_string(l), 0, n.radix, plane, rail, n.switchDelay, n.sharp));
  }
  for (std::size_t e = 0; e < endpoints.size(); ++e) {
    f.addLink(endpoints[e], ids[e / static_cast<std::size_t>(n.down)], LinkKind::kNetwork, n.nicBw, n.linkLatency);
  }
  return ids;
}

/// Spines above `leaves`, each leaf with `up` uplinks spread round-robin so that every leaf meets every
/// spine (needs leaves <= radix) and no spine exceeds the radix. Returns the spine count.
std::int64_t addSpines(Fabric& f, const std::vector<std::int32_t>& leaves, std::int32_t up, const NetworkSpec& n,
                       const std::string& prefix, std::int32_t plane) {
  const auto nl = static_cast<std::int64_t>(leaves.size());
  const std::int64_t spines = ceilDiv(nl * up, n.radix);
  std::vector<std::int32_t> ids;
  for (std::int64_t s = 0; s < spines; ++s) {
    ids.push_back(addSwitch(f, prefix + "spine" + std::to_string(s), 1, n.radix, plane, -1, n.switchDelay, n.sharp));
  }
  for (std::int64_t l = 0; l < nl; ++l) {
    for (std::int32_t u = 0; u < up; ++u) {
      const std::int64_t s = (l * up + u) % spines;
      f.addLink(leaves[static_cast<std::size_t>(l)], ids[static_cast<std::size_t>(s)], LinkKind::kNetwork, n.linkBw,
                n.linkLatency);
    }
  }
  return spines;
}

/// The leaf count of a 2-tier network for `endpoints` NICs: "auto" (as many as needed), "full" (radix: the
/// largest 2-tier network of these switches) or a number.
std::int64_t leafCount(const Params& p, std::int64_t endpoints, const NetworkSpec& n, const std::string& what) {
  const std::string t = p.text("leaves");
  const std::int64_t needed = std::max<std::int64_t>(1, ceilDiv(endpoints, n.down));
  const std::int64_t most = n.radix;
  if (needed > most) {
    p.fail("nodes", what + ": " + std::to_string(endpoints) + " endpoints, but a 2-tier fat-tree of " +
                        std::to_string(n.radix) + "-port switches at " + p.text("oversubscription") + " reaches " +
                        std::to_string(most * n.down) + " (" + std::to_string(most) + " leaves x " +
                        std::to_string(n.down) + " ports): radix exceeded; raise 'radix', use 3 tiers, or fewer nodes");
  }
  if (t == "auto") return needed;
  if (t == "full") return most;
  const std::int64_t v = p.integer("leaves", 1, most);
  if (v < needed) {
    p.fail("leaves", std::to_string(endpoints) + " endpoints need at least " + std::to_string(needed) + " leaves");
  }
  return v;
}

/// Uplinks per leaf: a full leaf's share (down / oversubscription), but no more than the most endpoints
/// any leaf holds needs (a small network is not cabled for capacity nobody attaches). "full" networks are
/// cabled completely.
std::int32_t uplinksPerLeaf(const NetworkSpec& n, std::int64_t endpoints, std::int64_t leaves, bool full) {
  if (full) return n.up;
  const std::int64_t most = std::min<std::int64_t>(n.down, ceilDiv(endpoints, leaves));
  const auto need = static_cast<std::int32_t>(std::ceil(static_cast<double>(most) / n.oversubscription));
  return std::max(1, std::min(n.up, need));
}

/// Fails before anything is built when `copies` 2-level networks of `leaves` leaves with `up` uplinks
/// each would pass the fabric's link limit (docs/config.md, "Limits"), naming the parameter that sized them.
void checkNetworkSize(const Params& p, const NetworkSpec& n, std::int64_t leaves, std::int32_t up,
                      std::int64_t copies) {
  const std::int64_t links = copies * leaves * (std::int64_t{up} + n.down);
  if (links <= core::kMaxFabricLinks) return;
  const std::string key = p.text("leaves") == "full" ? "radix" : "leaves";
  p.fail(key, "the network would have about " + std::to_string(links) + " links (" + std::to_string(copies * leaves) +
                  " leaves x " + std::to_string(std::int64_t{up} + n.down) + " ports), above the limit of " +
                  std::to_string(core::kMaxFabricLinks) +
                  " links of one fabric; lower 'radix' or use leaves: auto (docs/config.md, \"Limits\")");
}

/// Fails naming 'nodes' when `nodes` servers would hold more GPUs than a job may have ranks.
void checkServers(const Params& p, const ServerSpec& s, std::int64_t nodes) {
  if (nodes * s.gpus <= core::kMaxRanks) return;
  p.fail("nodes", std::to_string(nodes) + " servers x " + std::to_string(s.gpus) +
                      " GPUs = " + std::to_string(nodes * s.gpus) + " GPUs, above the limit of " +
                      std::to_string(core::kMaxRanks) + " ranks (docs/config.md, \"Limits\")");
}

/// Bisection of a 2-level network: half the smaller of the endpoint capacity and the uplink capacity of
/// the leaves that hold endpoints (exact for packed fat-trees split along leaves).
double twoTierBisection(const NetworkSpec& n, std::int64_t endpoints, std::int32_t up) {
  const std::int64_t usedLeaves = ceilDiv(endpoints, n.down);
  const double edge = static_cast<double>(endpoints) * n.nicBw.bytesPerSecond();
  const double upper = static_cast<double>(usedLeaves) * up * n.linkBw.bytesPerSecond();
  return std::min(edge, upper) / 2.0;
}

std::vector<BuilderParam> concat(std::vector<BuilderParam> a, const std::vector<BuilderParam>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// ---------------------------------------------------------------------------------------------------------
// Builders.

void buildServerNode(Fabric& f, const Params& p, const std::string& templ) {
  const ServerSpec s = serverFromParams(p, templ);
  (void)addServer(f, s, 0, 0, true);
}
void buildH800Node(Fabric& f, const Params& p) {
  buildServerNode(f, p, "h800");
}
void buildH100Node(Fabric& f, const Params& p) {
  buildServerNode(f, p, "h100");
}

/// One rack's NVLink switch domain: every GPU of its trays on one logical NVSwitch (the rack's 18 switch
/// chips act as one non-blocking stage at the template's NVLink rate per GPU per direction). Returns the trays' NICs.
std::vector<std::vector<std::int32_t>> addGb200Rack(Fabric& f, const ServerSpec& s, std::int32_t rack,
                                                    std::int32_t trays, bool onlyRack) {
  Node sw;
  sw.kind = NodeKind::kNvSwitch;
  sw.name = onlyRack ? std::string("rack.nvswitch") : "r" + std::to_string(rack) + ".nvswitch";
  sw.delay = s.nvswitchDelay;
  sw.inSwitchReduce = s.nvls;
  sw.multicast = s.nvls;
  const std::int32_t swId = f.addNode(std::move(sw));
  const std::size_t firstGpu = f.gpus().size();
  std::vector<std::vector<std::int32_t>> nicsByTray;
  for (std::int32_t t = 0; t < trays; ++t) nicsByTray.push_back(addServer(f, s, rack * trays + t, 0, false));
  for (std::size_t g = firstGpu; g < f.gpus().size(); ++g) {
    f.addLink(f.gpus()[g], swId, LinkKind::kNvLink, s.nvlinkBw, s.nvlinkLatency);
  }
  return nicsByTray;
}

/// The scale-out network of several racks: `fat_tree` (every NIC on 2-tier leaves in tray order) or `rail`
/// (NIC i of every tray on rail-i leaves, one spine layer); returns the bisection bandwidth of the network.
double addGb200ScaleOut(Fabric& f, const Params& p, const ServerSpec& s,
                        const std::vector<std::vector<std::int32_t>>& nicsByTray, const std::string& kind) {
  const NetworkSpec n = networkFromParams(p, s.nicBw);
  const auto trays = static_cast<std::int64_t>(nicsByTray.size());
  if (kind == "fat_tree") {
    std::vector<std::int32_t> nics;
    for (const auto& t : nicsByTray) nics.insert(nics.end(), t.begin(), t.end());
    const auto endpoints = static_cast<std::int64_t>(nics.size());
    const std::int64_t leaves = leafCount(p, endpoints, n, std::to_string(endpoints) + " NICs");
    const std::int32_t up = uplinksPerLeaf(n, endpoints, leaves, false);
    checkNetworkSize(p, n, leaves, up, 1);
    (void)addSpines(f, addLeaves(f, nics, leaves, n, "", -1, -1), up, n, "", -1);
    return twoTierBisection(n, endpoints, up);
  }
  const std::int64_t leavesPerRail = leafCount(p, trays, n, "each rail of " + std::to_string(trays) + " trays");
  if (leavesPerRail * s.gpus > n.radix) {
    p.fail("radix", std::to_string(s.gpus) + " rails x " + std::to_string(leavesPerRail) +
                        " leaves exceed what one spine layer of " + std::to_string(n.radix) +
                        "-port switches connects: raise 'radix' or use scale_out: fat_tree");
  }
  const std::int32_t up = uplinksPerLeaf(n, trays, leavesPerRail, false);
  checkNetworkSize(p, n, leavesPerRail, up, s.gpus);
  std::vector<std::int32_t> leafIds;
  for (std::int32_t r = 0; r < s.gpus; ++r) {
    std::vector<std::int32_t> rail;
    for (const auto& t : nicsByTray) rail.push_back(t[static_cast<std::size_t>(r)]);
    auto ids = addLeaves(f, rail, leavesPerRail, n, "rail" + std::to_string(r) + ".", -1, r);
    leafIds.insert(leafIds.end(), ids.begin(), ids.end());
  }
  (void)addSpines(f, leafIds, up, n, "", -1);
  return twoTierBisection(n, trays, up) * s.gpus;
}

void buildGb200(Fabric& f, const Params& p) {
  const ServerSpec s = serverFromParams(p, "gb200");
  const auto trays = static_cast<std::int32_t>(p.integer("trays", 1, 4096));
  const auto racks = static_cast<std::int32_t>(p.integer("racks", 1, 4096));
  checkServers(p, s, std::int64_t{racks} * trays);
  std::string scaleOut = p.choice("scale_out", {"auto", "none", "fat_tree", "rail"});
  if (scaleOut == "auto") scaleOut = racks > 1 ? "fat_tree" : "none";
  if (racks > 1 && scaleOut == "none") {
    p.fail("scale_out",
           "racks share no NVLink: " + std::to_string(racks) + " racks need a scale-out network (fat_tree or rail)");
  }
  std::vector<std::vector<std::int32_t>> nicsByTray;
  for (std::int32_t r = 0; r < racks; ++r) {
    auto rack = addGb200Rack(f, s, r, trays, racks == 1);
    nicsByTray.insert(nicsByTray.end(), rack.begin(), rack.end());
  }
  // One rack: the NVLink domain's bisection. Several: the racks meet only through the scale-out network.
  const double nvlinkHalf = static_cast<double>(f.gpus().size()) / 2.0 * s.nvlinkBw.bytesPerSecond();
  const double bisection = scaleOut == "none" ? nvlinkHalf : addGb200ScaleOut(f, p, s, nicsByTray, scaleOut);
  f.bisectionBandwidth = Bandwidth::bytesPerSec(racks > 1 ? bisection : nvlinkHalf);
}

void buildSingleSwitch(Fabric& f, const Params& p) {
  std::int64_t gpus = p.integer("gpus", 1, 1 << 24);
  if (p.given("ports")) {
    const std::int64_t ports = p.integer("ports", 1, 1 << 24);
    if (p.given("gpus") && ports != gpus) p.fail("ports", "'ports' and 'gpus' name the same count; give one");
    gpus = ports;
  }
  const Bandwidth bw = p.bandwidth("bw");
  if (!(bw.bytesPerSecond() > 0)) p.fail("bw", "must be positive");
  const Time latency = p.time("latency");
  const auto radix = static_cast<std::int32_t>(p.integer("radix", 0, 1 << 24));
  Node swNode;
  swNode.kind = NodeKind::kSwitch;
  swNode.name = "switch";
  swNode.tier = 0;
  swNode.radix = radix == 0 ? static_cast<std::int32_t>(gpus) : radix;
  swNode.delay = p.time("switch_delay");
  swNode.inSwitchReduce = p.flag("in_switch_reduce");
  swNode.multicast = p.flag("multicast");
  const std::int32_t sw = f.addNode(std::move(swNode));
  const auto sms = static_cast<std::int32_t>(p.integer("sms", 0, 100000));
  const Bandwidth mem = p.bandwidth("memory_bw");
  for (std::int64_t i = 0; i < gpus; ++i) {
    Node g;
    g.kind = NodeKind::kGpu;
    g.name = "gpu" + std::to_string(i);
    g.host = static_cast<std::int32_t>(i);
    g.local = 0;
    g.sms = sms;
    g.memoryBandwidth = mem;
    const std::int32_t id = f.addNode(std::move(g));
    f.addLink(id, sw, LinkKind::kNetwork, bw, latency);
  }
  const std::int64_t half = gpus / 2;  // an odd GPU out stays on one side
  f.bisectionBandwidth = Bandwidth::bytesPerSec(static_cast<double>(half) * bw.bytesPerSecond());
}

std::vector<std::int32_t> addServers(Fabric& f, const ServerSpec& s, std::int64_t nodes, std::int32_t planes,
                                     std::vector<std::vector<std::int32_t>>* nicsByHost) {
  std::vector<std::int32_t> all;
  for (std::int64_t h = 0; h < nodes; ++h) {
    auto nics = addServer(f, s, static_cast<std::int32_t>(h), planes, true);
    all.insert(all.end(), nics.begin(), nics.end());
    if (nicsByHost != nullptr) nicsByHost->push_back(std::move(nics));
  }
  return all;
}

void buildFatTree(Fabric& f, const Params& p) {
  const ServerSpec s = serverFromParams(p, "");
  const NetworkSpec n = networkFromParams(p, s.nicBw);
  const std::int64_t nodes = p.integer("nodes", 1, 1 << 20);
  checkServers(p, s, nodes);
  const auto tiers = p.integer("tiers", 2, 3);
  const std::int64_t endpoints = nodes * s.gpus;
  if (tiers == 2) {
    const std::int64_t leaves = leafCount(p, endpoints, n, std::to_string(nodes) + " nodes");
    const std::vector<std::int32_t> nics = addServers(f, s, nodes, 0, nullptr);
    const auto leafIds = addLeaves(f, nics, leaves, n, "", -1, -1);
    const std::int32_t up = uplinksPerLeaf(n, endpoints, leaves, p.text("leaves") == "full");
    checkNetworkSize(p, n, leaves, up, 1);
    (void)addSpines(f, leafIds, up, n, "", -1);
    f.bisectionBandwidth = Bandwidth::bytesPerSec(twoTierBisection(n, endpoints, up));
    return;
  }
  // Three tiers (k-ary fat-tree generalized to an oversubscribed leaf): pods of radix/2 edge switches,
  // `up` aggregation switches per pod (one link from each edge to each), and `up` groups of radix/2 core
  // switches; aggregation switch j of every pod links to each core of group j.
  if (p.text("leaves") != "auto") p.fail("leaves", "a 3-tier fat-tree sizes its pods itself; leave 'leaves' out");
  const std::int32_t edgesPerPod = n.radix / 2;
  const std::int32_t aggUp = n.radix - edgesPerPod;
  const std::int64_t perPod = static_cast<std::int64_t>(edgesPerPod) * n.down;
  const std::int64_t pods = std::max<std::int64_t>(1, ceilDiv(endpoints, perPod));
  if (pods > n.radix) {
    p.fail("nodes", std::to_string(endpoints) + " endpoints need " + std::to_string(pods) +
                        " pods but a core switch of radix " + std::to_string(n.radix) + " reaches " +
                        std::to_string(n.radix) + " pods (" + std::to_string(n.radix * perPod) +
                        " endpoints): radix exceeded; raise 'radix' or use fewer nodes");
  }
  if (n.up > edgesPerPod + aggUp) p.fail("radix", "too small for this oversubscription");
  const std::vector<std::int32_t> nics = addServers(f, s, nodes, 0, nullptr);
  std::vector<std::int32_t> cores;
  for (std::int32_t j = 0; j < n.up; ++j) {
    for (std::int32_t c = 0; c < aggUp; ++c) {
      cores.push_back(addSwitch(f, "core" + std::to_string(j * aggUp + c), 2, n.radix, -1, -1, n.switchDelay, n.sharp));
    }
  }
  for (std::int64_t pod = 0; pod < pods; ++pod) {
    const std::string prefix = "pod" + std::to_string(pod) + ".";
    std::vector<std::int32_t> aggs;
    for (std::int32_t j = 0; j < n.up; ++j) {
      const std::int32_t a =
          addSwitch(f, prefix + "agg" + std::to_string(j), 1, n.radix, -1, -1, n.switchDelay, n.sharp);
      aggs.push_back(a);
      for (std::int32_t c = 0; c < aggUp; ++c) {
        f.addLink(a, cores[static_cast<std::size_t>(j) * static_cast<std::size_t>(aggUp) + static_cast<std::size_t>(c)],
                  LinkKind::kNetwork, n.linkBw, n.linkLatency);
      }
    }
    for (std::int32_t e = 0; e < edgesPerPod; ++e) {
      const std::int32_t edge =
          addSwitch(f, prefix + "edge" + std::to_string(e), 0, n.radix, -1, -1, n.switchDelay, n.sharp);
      for (std::int32_t a : aggs) f.addLink(edge, a, LinkKind::kNetwork, n.linkBw, n.linkLatency);
      const std::int64_t first = (pod * edgesPerPod + e) * n.down;
      for (std::int64_t k = first; k < std::min<std::int64_t>(endpoints, first + n.down); ++k) {
        f.addLink(nics[static_cast<std::size_t>(k)], edge, LinkKind::kNetwork, n.nicBw, n.linkLatency);
      }
    }
  }
  const double edge = static_cast<double>(endpoints) * n.nicBw.bytesPerSecond();
  const double leafUp = static_cast<double>(ceilDiv(endpoints, n.down)) * n.up * n.linkBw.bytesPerSecond();
  const double aggUpCap = static_cast<double>(pods) * n.up * aggUp * n.linkBw.bytesPerSecond();
  f.bisectionBandwidth = Bandwidth::bytesPerSec(std::min({edge, leafUp, aggUpCap}) / 2.0);
}

void buildRailOptimized(Fabric& f, const Params& p) {
  const ServerSpec s = serverFromParams(p, "");
  const NetworkSpec n = networkFromParams(p, s.nicBw);
  const std::int64_t nodes = p.integer("nodes", 1, 1 << 20);
  if (s.gpus < 2) p.fail("node", "a rail-optimized network needs servers with several GPUs (rails)");
  const std::int64_t leavesPerRail = leafCount(p, nodes, n, "each rail of " + std::to_string(nodes) + " nodes");
  const std::int64_t allLeaves = leavesPerRail * s.gpus;
  if (allLeaves > n.radix) {
    p.fail("radix", std::to_string(s.gpus) + " rails x " + std::to_string(leavesPerRail) +
                        " leaves exceed what one spine layer of " + std::to_string(n.radix) +
                        "-port switches connects fully (" + std::to_string(n.radix) +
                        " leaves): radix exceeded; raise 'radix' or use fewer nodes");
  }
  checkServers(p, s, nodes);
  checkNetworkSize(p, n, leavesPerRail, uplinksPerLeaf(n, nodes, leavesPerRail, p.text("leaves") == "full"), s.gpus);
  std::vector<std::vector<std::int32_t>> nicsByHost;
  (void)addServers(f, s, nodes, 0, &nicsByHost);
  std::vector<std::int32_t> leafIds;
  for (std::int32_t r = 0; r < s.gpus; ++r) {
    std::vector<std::int32_t> rail;
    rail.reserve(nicsByHost.size());
    for (const auto& hostNics : nicsByHost) rail.push_back(hostNics[static_cast<std::size_t>(r)]);
    auto ids = addLeaves(f, rail, leavesPerRail, n, "rail" + std::to_string(r) + ".", -1, r);
    leafIds.insert(leafIds.end(), ids.begin(), ids.end());
  }
  const std::int32_t up = uplinksPerLeaf(n, nodes, leavesPerRail, p.text("leaves") == "full");
  (void)addSpines(f, leafIds, up, n, "", -1);
  // Halving the nodes: each rail is a 2-level network of its own as far as capacity goes.
  f.bisectionBandwidth = Bandwidth::bytesPerSec(twoTierBisection(n, nodes, up) * s.gpus);
}

void buildMpft(Fabric& f, const Params& p) {
  const ServerSpec s = serverFromParams(p, "");
  const NetworkSpec n = networkFromParams(p, s.nicBw);
  const std::int64_t nodes = p.integer("nodes", 1, 1 << 20);
  const auto planes = static_cast<std::int32_t>(p.integer("planes", 1, 1024));
  if (s.gpus % planes != 0) {
    p.fail("planes", "the " + std::to_string(s.gpus) + " NICs of a server must spread evenly over the planes");
  }
  const std::int64_t perPlane = nodes * (s.gpus / planes);
  const std::int64_t leaves = leafCount(p, perPlane, n, std::to_string(nodes) + " nodes (per plane)");
  const std::int32_t up = uplinksPerLeaf(n, perPlane, leaves, p.text("leaves") == "full");
  checkServers(p, s, nodes);
  checkNetworkSize(p, n, leaves, up, planes);
  std::vector<std::vector<std::int32_t>> nicsByHost;
  (void)addServers(f, s, nodes, planes, &nicsByHost);
  for (std::int32_t pl = 0; pl < planes; ++pl) {
    std::vector<std::int32_t> members;
    for (const auto& hostNics : nicsByHost) {
      for (std::size_t i = static_cast<std::size_t>(pl); i < hostNics.size(); i += static_cast<std::size_t>(planes)) {
        members.push_back(hostNics[i]);
      }
    }
    const std::string prefix = "p" + std::to_string(pl) + ".";
    auto leafIds = addLeaves(f, members, leaves, n, prefix, pl, -1);
    (void)addSpines(f, leafIds, up, n, prefix, pl);
  }
  f.bisectionBandwidth = Bandwidth::bytesPerSec(twoTierBisection(n, perPlane, up) * planes);
}

void buildDragonfly(Fabric& f, const Params& p) {
  const ServerSpec s = serverFromParams(p, "");
  const auto groups = p.integer("groups", 2, 1 << 16);
  const auto routers = p.integer("routers", 1, 1 << 12);
  const auto hostsPerRouter = p.integer("hosts_per_router", 1, 1 << 12);
  const auto global = p.integer("global_links", 1, 1 << 12);
  if (groups - 1 > routers * global) {
    p.fail("groups", "each group has " + std::to_string(routers * global) +
                         " global links (routers x global_links) but needs one to each of the other " +
                         std::to_string(groups - 1) + " groups: use at most " + std::to_string(routers * global + 1) +
                         " groups or more global links");
  }
  const std::string kind = p.choice("network", {"ib", "roce"});
  const Time linkLatency = p.given("link_latency") ? p.time("link_latency") : Time::ns(kind == "ib" ? 150 : 400);
  const Time switchDelay = p.given("switch_delay") ? p.time("switch_delay") : Time::ns(kind == "ib" ? 300 : 600);
  const Bandwidth localBw = p.given("local_bw") ? p.bandwidth("local_bw") : s.nicBw;
  const Bandwidth globalBw = p.given("global_bw") ? p.bandwidth("global_bw") : s.nicBw;
  const std::int64_t ports = hostsPerRouter * s.gpus + (routers - 1) + global;
  std::int64_t radix = p.integer("radix", 0, 1 << 20);
  if (radix == 0) radix = ports;
  if (ports > radix) {
    p.fail("radix", "a router needs " + std::to_string(ports) + " ports (" + std::to_string(hostsPerRouter * s.gpus) +
                        " NICs + " + std::to_string(routers - 1) + " local + " + std::to_string(global) +
                        " global): radix exceeded");
  }
  const std::int64_t nodes = groups * routers * hostsPerRouter;
  std::vector<std::vector<std::int32_t>> nicsByHost;
  (void)addServers(f, s, nodes, 0, &nicsByHost);
  std::vector<std::int32_t> ids;
  for (std::int64_t g = 0; g < groups; ++g) {
    for (std::int64_t r = 0; r < routers; ++r) {
      const std::int32_t id = addSwitch(f, "g" + std::to_string(g) + ".r" + std::to_string(r), 0,
                                        static_cast<std::int32_t>(radix), -1, -1, switchDelay);
      ids.push_back(id);
      for (std::int64_t h = 0; h < hostsPerRouter; ++h) {
        for (std::int32_t nic : nicsByHost[static_cast<std::size_t>((g * routers + r) * hostsPerRouter + h)]) {
          f.addLink(nic, id, LinkKind::kNetwork, s.nicBw, linkLatency);
        }
      }
    }
    for (std::int64_t a = 0; a < routers; ++a) {
      for (std::int64_t b = a + 1; b < routers; ++b) {
        f.addLink(ids[static_cast<std::size_t>(g * routers + a)], ids[static_cast<std::size_t>(g * routers + b)],
                  LinkKind::kNetwork, localBw, linkLatency);
      }
    }
  }
  // Global links: group i's slot c*(groups-1) + (d-1) goes to group (i+d) % groups, whose slot for the way
  // back is c*(groups-1) + (groups-d-1); slot k belongs to router k / global_links. Every pair of groups
  // gets the same number of links, and no router more than global_links.
  const std::int64_t copies = (routers * global) / (groups - 1);
  for (std::int64_t i = 0; i < groups; ++i) {
    for (std::int64_t d = 1; d < groups; ++d) {
      const std::int64_t j = (i + d) % groups;
      if (j < i) continue;
      for (std::int64_t c = 0; c < copies; ++c) {
        const std::int64_t slotI = c * (groups - 1) + (d - 1);
        const std::int64_t slotJ = c * (groups - 1) + (groups - d - 1);
        f.addLink(ids[static_cast<std::size_t>(i * routers + slotI / global)],
                  ids[static_cast<std::size_t>(j * routers + slotJ / global)], LinkKind::kNetwork, globalBw,
                  linkLatency);
      }
    }
  }
  const std::int64_t smallHalf = groups / 2;  // the groups split as evenly as they can
  const double half = static_cast<double>(smallHalf) * static_cast<double>(groups - smallHalf);
  const double globalCut = half * static_cast<double>(copies) * globalBw.bytesPerSecond();
  const double edge = static_cast<double>(nodes * s.gpus) * s.nicBw.bytesPerSecond() / 2.0;
  f.bisectionBandwidth = Bandwidth::bytesPerSec(std::min(globalCut, edge));
}

std::vector<BuilderEntry> makeRegistry() {
  std::vector<BuilderEntry> r;
  r.push_back({{"h800_node",
                "one HGX H800 server: 8 GPUs x 132 SMs on an NVSwitch (160 GB/s per direction), one PCIe switch per "
                "GPU/NIC pair under the host root complex, 8 CX7 400 Gb/s NICs on rails 0..7 (no network)",
                serverParams(false, "h800")},
               buildH800Node});
  r.push_back(
      {{"h100_node", "one HGX H100 server: as h800_node with NVLink at 360 GB/s achievable per direction (450 nominal)",
        serverParams(false, "h100")},
       buildH100Node});
  r.push_back(
      {{"gb200_nvl72",
        "GB200 NVL72 racks: per rack 18 trays x 4 GPUs on one NVLink switch domain (720 GB/s achievable per GPU per "
        "direction, 900 nominal), each tray with its Grace host and 4 NICs; several racks joined by a scale-out "
        "network of the "
        "trays' NICs (fat_tree or rail)",
        concat(concat({{"racks", "1", "racks (NVLink domains); more than one needs a scale-out network"},
                       {"trays", "18", "compute trays per rack (4 GPUs each): 18 makes the 72-GPU rack"},
                       {"scale_out", "auto",
                        "auto (none for one rack, fat_tree for several), none, fat_tree (2-tier, NICs in tray "
                        "order) or rail (NIC i of every tray on rail i's leaves, one spine layer)"},
                       {"leaves", "auto", "scale-out leaves (per rail for rail): auto or a number"}},
                      serverParams(false, "gb200")),
               networkParams("64"))},
       buildGb200});
  r.push_back({{"single_switch",
                "N GPUs, each on its own host, each linked directly to one switch: alpha = 2 x latency + "
                "switch_delay, beta = 1/bw (for formula checks)",
                {{"gpus", "1024", "GPUs (= switch ports used)"},
                 {"ports", "", "alias of gpus"},
                 {"bw", "400Gb/s", "GPU-switch link bandwidth per direction"},
                 {"latency", "500ns", "GPU-switch link latency"},
                 {"switch_delay", "0", "switch forwarding delay"},
                 {"radix", "0", "switch ports (0: as many as GPUs)"},
                 {"in_switch_reduce", "false", "the switch reduces in the network (SHARP-like)"},
                 {"multicast", "false", "the switch replicates multicasts"},
                 {"sms", "132", "SMs per GPU"},
                 {"memory_bw", "3.35TB/s", "HBM bandwidth per GPU"}}},
               buildSingleSwitch});
  r.push_back({{"fat_tree",
                "servers on a 2- or 3-tier fat-tree: NICs packed onto leaves in server order, radix-port "
                "switches, optional oversubscription at the leaf",
                concat(concat({{"nodes", "128", "servers"},
                               {"tiers", "2", "2 (leaf-spine) or 3 (edge-aggregation-core pods)"},
                               {"leaves", "auto", "2 tiers: auto (as needed), full (radix leaves) or a number"}},
                              serverParams(true, "h800")),
                       networkParams("64"))},
               buildFatTree});
  r.push_back(
      {{"rail_optimized",
        "servers whose NIC i connects to rail-i leaves (GPU i of every server on rail i); one spine "
        "layer connects the rails",
        concat(concat({{"nodes", "16", "servers"}, {"leaves", "auto", "leaves per rail: auto, full or a number"}},
                      serverParams(true, "h800")),
               networkParams("64"))},
       buildRailOptimized});
  r.push_back({{"mpft",
                "multi-plane fat-tree: NIC i of every server in plane i % planes; each plane an independent 2-tier "
                "fat-tree of radix-port switches (8 planes x 64-port switches reach 16,384 GPUs)",
                concat(concat({{"nodes", "256", "servers"},
                               {"planes", "8", "network planes (divides the NICs per server)"},
                               {"leaves", "full",
                                "leaves per plane: full (radix; the complete plane), auto or a "
                                "number"}},
                              serverParams(true, "h800")),
                       networkParams("64"))},
               buildMpft});
  r.push_back(
      {{"dragonfly",
        "groups of routers fully connected inside a group, one or more global links between every pair of groups",
        concat({{"groups", "9", "groups (at most routers x global_links + 1)"},
                {"routers", "4", "routers per group"},
                {"hosts_per_router", "2", "servers per router"},
                {"global_links", "2", "global links per router"},
                {"radix", "0", "router ports (0: as many as needed)"},
                {"network", "ib", "ib or roce: picks the default link latency and switch delay"},
                {"local_bw", "", "router-router link bandwidth in a group (default: nic_bw)"},
                {"global_bw", "", "global link bandwidth (default: nic_bw)"},
                {"link_latency", "", "network link latency (default: ib 150ns, roce 400ns)"},
                {"switch_delay", "", "router forwarding delay (default: ib 300ns, roce 600ns)"}},
               serverParams(true, "gpu"))},
       buildDragonfly});
  r.push_back({{"graph",
                "explicit graph from the file: nodes: [{name, kind, host, local, rail, plane, tier, sms, memory_bw, "
                "delay, radix, in_switch_reduce, multicast}], links: [{a, b, kind, bw, latency}]",
                {{"bisection_bw", "", "the network's bisection bandwidth, if known (shown by copro-topo show)"}}},
               nullptr});
  return r;
}

}  // namespace

const std::vector<BuilderEntry>& builderRegistry() {
  static const std::vector<BuilderEntry> registry = makeRegistry();
  return registry;
}

const BuilderEntry* findBuilder(const std::string& name) {
  for (const auto& e : builderRegistry()) {
    if (e.info.name == name) return &e;
  }
  return nullptr;
}

}  // namespace copro::topo::detail
