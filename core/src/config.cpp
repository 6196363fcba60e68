#include "copro/core/config.hpp"
#include "copro/core/limits.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <functional>
#include <sstream>
#include <system_error>

#include "copro/core/log.hpp"
#include "copro/core/program.hpp"
#include "copro/core/status.hpp"
#include "copro/core/text.hpp"
#include "copro/core/units.hpp"

extern char** environ;  // NOLINT(readability-identifier-naming)

namespace copro::core {

namespace {

[[noreturn]] void badValue(std::string_view name, std::string_view value, std::string_view expected) {
  throw Error(ErrorCode::kInvalidArgument,
              std::string(name) + "='" + std::string(value) + "' is not valid: expected " + std::string(expected));
}

double parseDouble(std::string_view name, std::string_view value, double minValue) {
  std::string t = trimmed(value);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || !(v >= minValue)) {
    std::ostringstream os;
    os << "a number >= " << minValue;
    badValue(name, value, os.str());
  }
  return v;
}

bool parseBool(std::string_view name, std::string_view value) {
  std::string t = trimmed(value);
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (t == "1" || t == "true" || t == "yes" || t == "on") return true;
  if (t == "0" || t == "false" || t == "no" || t == "off" || t.empty()) return false;
  badValue(name, value, "0 or 1");
}

int parseWhole(std::string_view name, std::string_view value, long minValue, long maxValue) {
  const std::string t = trimmed(value);
  long x = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), x);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || x < minValue || x > maxValue) {
    badValue(name, value, "a whole number from " + std::to_string(minValue) + " to " + std::to_string(maxValue));
  }
  return static_cast<int>(x);
}

std::string formatOptionalInt(int v, int unset) {
  return v == unset ? std::string() : std::to_string(v);
}

std::string formatDouble(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

struct Entry {
  Config::Var var;
  std::function<void(Config&, std::string_view)> set;
  std::function<std::string(const Config&)> get;
};

/// A variable kept as written (trimmed) in `field`: addresses, folders, search paths.
Entry textEntry(Config::Var var, std::string Config::*field) {
  return {var, [field](Config& c, std::string_view v) { c.*field = trimmed(v); },
          [field](const Config& c) { return c.*field; }};
}

/// A variable naming one backend or transport (a single word) kept in `field`.
Entry nameEntry(Config::Var var, std::string Config::*field, std::string expected) {
  return {var,
          [var, field, expected](Config& c, std::string_view v) {
            const std::string t = trimmed(v);
            if (t.empty() || t.find_first_of(" \t,") != std::string::npos) badValue(var.name, v, expected);
            c.*field = t;
          },
          [field](const Config& c) { return c.*field; }};
}

/// A whole number from `minValue` to `maxValue` kept in `field`; empty leaves it `unset` (not given).
Entry wholeEntry(Config::Var var, int Config::*field, long minValue, long maxValue, int unset) {
  return {var,
          [var, field, minValue, maxValue, unset](Config& c, std::string_view v) {
            c.*field = trimmed(v).empty() ? unset : parseWhole(var.name, v, minValue, maxValue);
          },
          [field, unset](const Config& c) { return formatOptionalInt(c.*field, unset); }};
}

const std::vector<Entry>& entries() {
  static const std::vector<Entry> all = {
      {{"COPRO_DEBUG", "WARN", "Log level: NONE, WARN, INFO or TRACE."},
       [](Config& c, std::string_view v) {
         (void)parseLogLevel(v);
         c.debug = trimmed(v);
       },
       [](const Config& c) { return c.debug; }},
      {{"COPRO_DEBUG_SUBSYS", "ALL",
        "Comma-separated log subsystems (INIT, COLL, P2P, PLAN, PROGRAM, TRANSPORT, ALLOC, SIM, TOPO, ENV, ALL); "
        "a leading ^ excludes them."},
       [](Config& c, std::string_view v) {
         (void)parseLogSubsysMask(v);
         c.debugSubsys = trimmed(v);
       },
       [](const Config& c) { return c.debugSubsys; }},
      {{"COPRO_TIMEOUT", "300",
        "Seconds a call may wait for a peer (to enter the call or to signal) before it fails with an error "
        "naming the missing ranks. Accepts units: 500ms, 2s."},
       [](Config& c, std::string_view v) {
         std::string t = trimmed(v);
         double s = 0;
         if (!t.empty() && std::isalpha(static_cast<unsigned char>(t.back())) != 0) {
           s = parseTime(t).seconds();
         } else {
           s = parseDouble("COPRO_TIMEOUT", v, 0.0);
         }
         if (s <= 0) badValue("COPRO_TIMEOUT", v, "a positive duration");
         c.timeoutSec = s;
       },
       [](const Config& c) { return formatDouble(c.timeoutSec); }},
      {{"COPRO_INITIATION", "device",
        "Who runs the lanes of a call: 'device' (the calling thread, IBGDA style) or 'proxy' (progress threads "
        "post the operations, NCCL proxy style)."},
       [](Config& c, std::string_view v) {
         std::string t = trimmed(v);
         if (t != "device" && t != "proxy") badValue("COPRO_INITIATION", v, "'device' or 'proxy'");
         c.initiation = t;
       },
       [](const Config& c) { return c.initiation; }},
      {{"COPRO_INITIATION_SCALEUP", "",
        "Initiation of lanes whose work stays inside a node: 'device', 'proxy' or 'offload' (real backends run "
        "'offload' lanes on progress threads, as 'proxy'). Empty: COPRO_INITIATION."},
       [](Config& c, std::string_view v) {
         std::string t = trimmed(v);
         if (!t.empty() && t != "device" && t != "proxy" && t != "offload") {
           badValue("COPRO_INITIATION_SCALEUP", v, "'device', 'proxy', 'offload' or empty");
         }
         c.initiationScaleUp = t;
       },
       [](const Config& c) { return c.initiationScaleUp; }},
      {{"COPRO_INITIATION_SCALEOUT", "",
        "Initiation of lanes that send to other nodes: 'device', 'proxy' or 'offload'. Empty: COPRO_INITIATION."},
       [](Config& c, std::string_view v) {
         std::string t = trimmed(v);
         if (!t.empty() && t != "device" && t != "proxy" && t != "offload") {
           badValue("COPRO_INITIATION_SCALEOUT", v, "'device', 'proxy', 'offload' or empty");
         }
         c.initiationScaleOut = t;
       },
       [](const Config& c) { return c.initiationScaleOut; }},
      {{"COPRO_PXN", "0",
        "PXN (docs/pxn.md): 0 off; 1 a put to another node whose destination sits on another rail goes over "
        "the scale-up fabric to the local rank on the destination's rail, which relays it over its own NIC; "
        "2 as 1, and the relay aggregates messages of several local ranks to one remote rank."},
       [](Config& c, std::string_view v) {
         std::string t = trimmed(v);
         if (t != "0" && t != "1" && t != "2") badValue("COPRO_PXN", v, "0, 1 or 2");
         c.pxn = t[0] - '0';
       },
       [](const Config& c) { return std::to_string(c.pxn); }},
      {{"COPRO_THREADS", "0", "Progress threads of the inproc backend in proxy mode (0: one per core)."},
       [](Config& c, std::string_view v) {
         const double t = parseDouble("COPRO_THREADS", v, 0.0);
         if (t > static_cast<double>(kMaxThreads) || t != static_cast<double>(static_cast<int>(t))) {
           badValue("COPRO_THREADS", v, "a whole number of threads from 0 to " + std::to_string(kMaxThreads));
         }
         c.threads = static_cast<int>(t);
       },
       [](const Config& c) { return std::to_string(c.threads); }},
      {{"COPRO_SPIN_US", "20",
        "Microseconds a wait spins before it blocks (COPRO_WAIT=yield or adaptive; spin never blocks)."},
       [](Config& c, std::string_view v) { c.spinUs = parseDouble("COPRO_SPIN_US", v, 0.0); },
       [](const Config& c) { return formatDouble(c.spinUs); }},
      {{"COPRO_WAIT", "adaptive",
        "How a waiting thread uses its core (docs/latency.md): 'spin' busy-waits with a pause instruction and never "
        "sleeps; 'yield' gives the core away (sched_yield) between looks, then sleeps after COPRO_SPIN_US; "
        "'adaptive' spins as 'spin' does while the host's ranks fit its cores, as 'yield' does when they do not, "
        "and sleeps after COPRO_SPIN_US."},
       [](Config& c, std::string_view v) {
         std::string t = trimmed(v);
         if (t != "spin" && t != "yield" && t != "adaptive") badValue("COPRO_WAIT", v, "'spin', 'yield' or 'adaptive'");
         c.wait = t;
       },
       [](const Config& c) { return c.wait; }},
      {{"COPRO_BOOTSTRAP_TRUSTED", "0",
        "1: the environment bootstrap may run without COPRO_BOOTSTRAP_TOKEN (only the job's processes can reach "
        "COPRO_ROOT_ADDR)."},
       [](Config& c, std::string_view v) { c.bootstrapTrusted = parseBool("COPRO_BOOTSTRAP_TRUSTED", v); },
       [](const Config& c) { return std::string(c.bootstrapTrusted ? "1" : "0"); }},
      {{"COPRO_VALIDATE", "0", "1: validate every new Program (bounds, waits, deadlock, races) before its first run."},
       [](Config& c, std::string_view v) { c.validate = parseBool("COPRO_VALIDATE", v); },
       [](const Config& c) { return std::string(c.validate ? "1" : "0"); }},
      {{"COPRO_CHECK_CALLS", "0",
        "1: before each collective, verify across ranks that every rank made the same call (collective, count, "
        "dtype, op, root, sequence number) and report the first mismatch by rank."},
       [](Config& c, std::string_view v) { c.checkCalls = parseBool("COPRO_CHECK_CALLS", v); },
       [](const Config& c) { return std::string(c.checkCalls ? "1" : "0"); }},
      {{"COPRO_PROGRAM_CACHE", "256", "Programs cached per communicator (0 disables the cache)."},
       [](Config& c, std::string_view v) {
         c.programCacheEntries = static_cast<std::uint64_t>(parseDouble("COPRO_PROGRAM_CACHE", v, 0.0));
       },
       [](const Config& c) { return std::to_string(c.programCacheEntries); }},
      {{"COPRO_ALGO", "",
        "Force algorithms: one name for every collective that has it ('ring'), or per collective "
        "('allreduce=rhd,allgather=bruck'). Empty: the planner chooses."},
       [](Config& c, std::string_view v) { c.algo = trimmed(v); },
       [](const Config& c) { return c.algo; }},
      {{"COPRO_CHUNK_SIZE", "1M", "Pipelining chunk of ring, tree and chain algorithms (bytes; K/M suffixes)."},
       [](Config& c, std::string_view v) {
         std::uint64_t b = parseBytes(v);
         if (b == 0) badValue("COPRO_CHUNK_SIZE", v, "a size > 0");
         c.chunkBytes = b;
       },
       [](const Config& c) { return formatBytes(c.chunkBytes); }},
      {{"COPRO_LL_MAX_BYTES", "4K",
        "Largest per-rank payload the planner sends with the LL protocol on load/store backends (inproc, shm): "
        "data and flags in the same cache lines, no separate signal (bytes; K suffix; at most 16K; 0 turns LL off)."},
       [](Config& c, std::string_view v) {
         const std::uint64_t b = parseBytes(v);
         if (b > kLLSlotBytes) badValue("COPRO_LL_MAX_BYTES", v, "a size of at most 16K (an LL mailbox slot)");
         c.llMaxBytes = b;
       },
       [](const Config& c) { return formatBytes(c.llMaxBytes); }},
      {{"COPRO_NODE_MAP", "",
        "Rank -> node map for hierarchical algorithms: a list '0,0,1,1' or ranks per node '4'. Empty: one node."},
       [](Config& c, std::string_view v) { c.nodeMap = trimmed(v); },
       [](const Config& c) { return c.nodeMap; }},
      {{"COPRO_PLAN_ALPHA_US", "2", "Planner: latency of one message step inside a node (us)."},
       [](Config& c, std::string_view v) { c.planAlphaUs = parseDouble("COPRO_PLAN_ALPHA_US", v, 0.0); },
       [](const Config& c) { return formatDouble(c.planAlphaUs); }},
      {{"COPRO_PLAN_BW_GBPS", "10", "Planner: point-to-point bandwidth inside a node (GB/s)."},
       [](Config& c, std::string_view v) { c.planBandwidthGBps = parseDouble("COPRO_PLAN_BW_GBPS", v, 1e-9); },
       [](const Config& c) { return formatDouble(c.planBandwidthGBps); }},
      {{"COPRO_PLAN_INTER_ALPHA_US", "10", "Planner: latency of one inter-node step (us)."},
       [](Config& c, std::string_view v) { c.planInterAlphaUs = parseDouble("COPRO_PLAN_INTER_ALPHA_US", v, 0.0); },
       [](const Config& c) { return formatDouble(c.planInterAlphaUs); }},
      {{"COPRO_PLAN_INTER_BW_GBPS", "5", "Planner: inter-node bandwidth per rank (GB/s)."},
       [](Config& c, std::string_view v) {
         c.planInterBandwidthGBps = parseDouble("COPRO_PLAN_INTER_BW_GBPS", v, 1e-9);
       },
       [](const Config& c) { return formatDouble(c.planInterBandwidthGBps); }},
      {{"COPRO_PLAN_REDUCE_GBPS", "20", "Planner: reduction throughput per rank (GB/s of input)."},
       [](Config& c, std::string_view v) { c.planReduceGBps = parseDouble("COPRO_PLAN_REDUCE_GBPS", v, 1e-9); },
       [](const Config& c) { return formatDouble(c.planReduceGBps); }},
      {{"COPRO_PLAN_MEM_GBPS", "60",
        "Planner: memory bandwidth (bytes read + written per second) shared by a load/store domain (GB/s)."},
       [](Config& c, std::string_view v) { c.planMemoryGBps = parseDouble("COPRO_PLAN_MEM_GBPS", v, 1e-9); },
       [](const Config& c) { return formatDouble(c.planMemoryGBps); }},
      {{"COPRO_VERBS_PROVIDER", "",
        "verbs backend provider: empty for libibverbs.so.1 (a real InfiniBand/RoCE device), 'emu' for the "
        "emulated provider (processes on one host; CI and machines without RDMA hardware)."},
       [](Config& c, std::string_view v) {
         const std::string t = trimmed(v);
         if (!t.empty() && t != "emu") badValue("COPRO_VERBS_PROVIDER", v, "empty or 'emu'");
         c.verbsProvider = t;
       },
       [](const Config& c) { return c.verbsProvider; }},
      {{"COPRO_IB_HCA", "",
        "verbs backend: RDMA device to use (e.g. mlx5_0). Empty: the device closest to the rank's GPU or CPU "
        "by PCIe distance (hwloc), else the first device with an active port."},
       [](Config& c, std::string_view v) { c.ibHca = trimmed(v); },
       [](const Config& c) { return c.ibHca; }},
      {{"COPRO_IB_GID_INDEX", "0",
        "verbs backend: GID table index used for global routing (RoCE, or InfiniBand across subnets); "
        "show_gids lists the table (RoCE v2 is often 3)."},
       [](Config& c, std::string_view v) {
         const double g = parseDouble("COPRO_IB_GID_INDEX", v, 0.0);
         if (g != static_cast<int>(g) || g > 255) badValue("COPRO_IB_GID_INDEX", v, "a whole number 0..255");
         c.ibGidIndex = static_cast<int>(g);
       },
       [](const Config& c) { return std::to_string(c.ibGidIndex); }},
      {{"COPRO_IB_CHANNELS", "1",
        "verbs backend: RC queue pairs per peer; a Program's lanes are spread over them (lane mod channels)."},
       [](Config& c, std::string_view v) {
         const double n = parseDouble("COPRO_IB_CHANNELS", v, 1.0);
         if (n != static_cast<int>(n) || n > 16) badValue("COPRO_IB_CHANNELS", v, "a whole number 1..16");
         c.ibChannels = static_cast<int>(n);
       },
       [](const Config& c) { return std::to_string(c.ibChannels); }},
      {{"COPRO_VERBS_EMU_FAULT", "",
        "Emulated verbs provider only: inject a fault at this process's N-th posted work request: "
        "'qp-error@N' (the QP goes to the error state), 'bad-rkey@N' (its remote key is invalid), "
        "'die@N' (the process is killed). Empty: none."},
       [](Config& c, std::string_view v) {
         const std::string t = trimmed(v);
         const auto at = t.find('@');
         const std::string kind = t.substr(0, at);
         if (!t.empty() && (at == std::string::npos || (kind != "qp-error" && kind != "bad-rkey" && kind != "die") ||
                            parseDouble("COPRO_VERBS_EMU_FAULT", t.substr(at + 1), 1.0) < 1.0)) {
           badValue("COPRO_VERBS_EMU_FAULT", v, "'qp-error@N', 'bad-rkey@N' or 'die@N' with N >= 1");
         }
         c.verbsEmuFault = t;
       },
       [](const Config& c) { return c.verbsEmuFault; }},
      {{"COPRO_SHM_CMA", "1",
        "shm backend: 1 lets a rank read peers' private buffers with Cross Memory Attach (process_vm_readv) "
        "where the kernel allows it; 0 always stages them through shared memory (as where ptrace is denied)."},
       [](Config& c, std::string_view v) { c.shmCma = parseBool("COPRO_SHM_CMA", v); },
       [](const Config& c) { return std::string(c.shmCma ? "1" : "0"); }},
      wholeEntry({"COPRO_RANK", "",
                  "Environment bootstrap (copro::createFromEnvironment): this process's rank, 0 to "
                  "COPRO_WORLD_SIZE-1."},
                 &Config::rank, 0, 1L << 30, -1),
      wholeEntry({"COPRO_WORLD_SIZE", "", "Environment bootstrap: the number of ranks of the job."}, &Config::worldSize,
                 1, 1L << 30, 0),
      textEntry({"COPRO_ROOT_ADDR", "",
                 "Environment bootstrap: host:port where rank 0 listens and every rank connects (docs/bootstrap.md)."},
                &Config::rootAddr),
      {{"COPRO_BOOTSTRAP_TOKEN", "",
        "Environment bootstrap: the job's shared secret (every connection proves it by HMAC-SHA-256 "
        "challenge-response; it never crosses the wire). Required unless COPRO_BOOTSTRAP_TRUSTED=1. "
        "Printed as '(set)'."},
       [](Config& c, std::string_view v) { c.bootstrapToken = std::string(v); },
       [](const Config& c) { return std::string(c.bootstrapToken.empty() ? "" : "(set)"); }},
      textEntry({"COPRO_BOOTSTRAP_ADDR", "",
                 "Address the rendezvous root of copro::getUniqueId binds to (host or host:port). Empty: loopback."},
                &Config::bootstrapAddr),
      wholeEntry({"COPRO_NODE_ID", "",
                  "This process's (virtual) node, gathered from every rank at multi-process creation; wins over "
                  "COPRO_NODE_MAP (docs/virtual-nodes.md). Empty: no node id."},
                 &Config::nodeId, 0, 1L << 30, -1),
      textEntry({"COPRO_DATA_DIR", "",
                 "copro's data folder (share/copro, holding topologies/ and workloads/). Empty: beside the running "
                 "program's or the library's install prefix (docs/install.md)."},
                &Config::dataDir),
      textEntry({"COPRO_TOPOLOGY_PATH", "",
                 "Extra folders, ':'-separated, searched for topology names (deepseek-v3 -> deepseek-v3.yaml) "
                 "before the bundled ones (docs/topologies.md)."},
                &Config::topologyPath),
      nameEntry({"COPRO_TORCH_TRANSPORT", "auto",
                 "Transport of torch.distributed groups on the copro backend: auto, shm, ucx, mpi, shm+ucx "
                 "(docs/torch.md); copro_torch.set_transport overrides it."},
                &Config::torchTransport, "a transport name: auto, shm, ucx, mpi or shm+ucx"),
      nameEntry({"COPRO_NCCL_BACKEND", "shm",
                 "Backend of communicators created by libcopro_nccl's ncclCommInitRank: shm (one host), ucx, "
                 "shm+ucx (docs/nccl.md)."},
                &Config::ncclBackend, "a backend name: shm, ucx or shm+ucx"),
  };
  return all;
}

const Entry* findEntry(std::string_view name) {
  for (const auto& e : entries()) {
    if (e.var.name == name) return &e;
  }
  return nullptr;
}

/// Sets one entry; an error from a shared parser (sizes, log masks) that does not name the variable gets
/// the variable and the value in front.
void apply(const Entry& e, Config& c, std::string_view value) {
  try {
    e.set(c, value);
  } catch (const Error& err) {
    if (err.message().find(e.var.name) != std::string::npos) throw;
    throw Error(err.code(), std::string(e.var.name) + "='" + std::string(value) + "': " + err.message());
  }
}

std::vector<std::string> allNames() {
  std::vector<std::string> names;
  for (const auto& e : entries()) names.emplace_back(e.var.name);
  return names;
}

}  // namespace

const std::vector<Config::Var>& Config::variables() {
  static const std::vector<Var> vars = [] {
    std::vector<Var> v;
    for (const auto& e : entries()) v.push_back(e.var);
    return v;
  }();
  return vars;
}

void Config::set(std::string_view name, std::string_view value) {
  std::string full(name);
  std::transform(full.begin(), full.end(), full.begin(),
                 [](unsigned char c) { return static_cast<char>(c == '-' ? '_' : std::toupper(c)); });
  if (full.rfind("COPRO_", 0) != 0) full = "COPRO_" + full;
  for (const auto& e : entries()) {
    if (e.var.name == full) {
      apply(e, *this, value);
      markGiven(e.var.name);
      return;
    }
  }
  std::string hint = nearestName(full, allNames());
  throw Error(ErrorCode::kInvalidArgument, "unknown setting '" + std::string(name) + "'" +
                                               (hint.empty() ? "" : " (did you mean " + hint + "?)") +
                                               "; copro-info --config lists them");
}

void Config::markGiven(std::string_view name) {
  if (!isSet(name)) givenNames.emplace_back(name);
}

bool Config::isSet(std::string_view name) const {
  return std::find(givenNames.begin(), givenNames.end(), name) != givenNames.end();
}

void Config::readEnvironment(std::initializer_list<std::string_view> names) {
  for (std::string_view name : names) {
    const Entry* e = findEntry(name);
    if (e == nullptr) throw Error(ErrorCode::kInternal, "readEnvironment: " + std::string(name) + " is no variable");
    if (isSet(name)) continue;
    if (const char* v = std::getenv(std::string(name).c_str())) {
      apply(*e, *this, v);
      markGiven(name);
    }
  }
}

Config Config::fromEnvironment() {
  Config c;
  for (const auto& e : entries()) {
    if (const char* v = std::getenv(std::string(e.var.name).c_str())) {
      apply(e, c, v);
      c.markGiven(e.var.name);
    }
  }
  // Unknown COPRO_* variables are most likely typos: say which known one was meant.
  for (char** env = environ; env != nullptr && *env != nullptr; ++env) {
    std::string_view kv(*env);
    if (kv.rfind("COPRO_", 0) != 0) continue;
    std::string key(kv.substr(0, kv.find('=')));
    if (findEntry(key) == nullptr) {
      std::string hint = nearestName(key, allNames());
      COPRO_LOG(Warn, Env,
                "unknown environment variable " << key << (hint.empty() ? "" : " (did you mean ") << hint
                                                << (hint.empty() ? "" : "?)"));
    }
  }
  return c;
}

std::vector<std::pair<std::string, std::string>> Config::values() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : entries()) out.emplace_back(std::string(e.var.name), e.get(*this));
  return out;
}

std::string nearestName(std::string_view word, const std::vector<std::string>& candidates) {
  auto lower = [](std::string_view s) {
    std::string o;
    for (char c : s) o.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    return o;
  };
  const std::string w = lower(word);
  std::string best;
  std::size_t bestDist = std::string::npos;
  for (const auto& cand : candidates) {
    const std::string c = lower(cand);
    std::vector<std::size_t> prev(c.size() + 1);
    std::vector<std::size_t> cur(c.size() + 1);
    for (std::size_t j = 0; j <= c.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= w.size(); ++i) {
      cur[0] = i;
      for (std::size_t j = 1; j <= c.size(); ++j) {
        std::size_t sub = prev[j - 1] + (w[i - 1] == c[j - 1] ? 0 : 1);
        cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      }
      std::swap(prev, cur);
    }
    std::size_t d = prev[c.size()];
    if (d < bestDist) {
      bestDist = d;
      best = cand;
    }
  }
  // Only suggest when the edit distance is small relative to the word.
  if (best.empty() || bestDist > std::max<std::size_t>(2, w.size() / 3)) return {};
  return best;
}

}  // namespace copro::core
