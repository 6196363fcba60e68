#pragma once
/// Every COPRO_* environment variable is a field of `Config` (documented in docs/config.md, printed by
/// `copro-info --config`). Communicators take a copy, so tests can build their own.
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace copro::core {

struct Config {
  // Logging.
  std::string debug = "WARN";       ///< COPRO_DEBUG: NONE, WARN, INFO, TRACE
  std::string debugSubsys = "ALL";  ///< COPRO_DEBUG_SUBSYS: e.g. "INIT,COLL" or "^PROGRAM"
  // Execution.
  double timeoutSec = 300.0;          ///< COPRO_TIMEOUT: seconds a call may wait for a peer before failing
  std::string initiation = "device";  ///< COPRO_INITIATION: proxy (progress threads post) or device (caller's thread)
  std::string
      initiationScaleUp;  ///< COPRO_INITIATION_SCALEUP: lanes with only intra-node work (empty: COPRO_INITIATION)
  std::string initiationScaleOut;  ///< COPRO_INITIATION_SCALEOUT: lanes with inter-node work (empty: COPRO_INITIATION)
  int pxn = 0;                     ///< COPRO_PXN: 0 off, 1 relay off-rail puts, 2 relay and aggregate (docs/pxn.md)
  int threads = 0;                 ///< COPRO_THREADS: inproc proxy progress threads (0: one per core)
  double spinUs = 20.0;            ///< COPRO_SPIN_US: spin this long on a wait before blocking
  std::string wait = "adaptive";   ///< COPRO_WAIT: spin, yield or adaptive (how a waiting thread spins)
  bool bootstrapTrusted = false;   ///< COPRO_BOOTSTRAP_TRUSTED: the environment bootstrap may run without a secret
  bool validate = false;           ///< COPRO_VALIDATE: validate every new Program before its first run
  bool checkCalls = false;         ///< COPRO_CHECK_CALLS: verify that every rank made the same call
  std::uint64_t programCacheEntries = 256;  ///< COPRO_PROGRAM_CACHE: Programs kept per communicator
  // Algorithms.
  std::string algo;                     ///< COPRO_ALGO: "ring" or "allreduce=ring,allgather=bruck"
  std::uint64_t chunkBytes = 1U << 20;  ///< COPRO_CHUNK_SIZE: pipelining chunk of ring/tree/chain algorithms
  std::uint64_t llMaxBytes = 4096;      ///< COPRO_LL_MAX_BYTES: LL protocol up to this many bytes (0: off)
  std::string nodeMap;                  ///< COPRO_NODE_MAP: rank->node map "0,0,1,1" or ranks per node "4"
  // Planner cost model (alpha-beta-gamma), see docs/planner.md.
  double planAlphaUs = 2.0;             ///< COPRO_PLAN_ALPHA_US: latency per message step (scale-up)
  double planBandwidthGBps = 10.0;      ///< COPRO_PLAN_BW_GBPS: point-to-point bandwidth (scale-up)
  double planInterAlphaUs = 10.0;       ///< COPRO_PLAN_INTER_ALPHA_US: latency per inter-node step
  double planInterBandwidthGBps = 5.0;  ///< COPRO_PLAN_INTER_BW_GBPS: inter-node bandwidth per rank
  double planReduceGBps = 20.0;         ///< COPRO_PLAN_REDUCE_GBPS: reduction throughput per rank
  double planMemoryGBps = 60.0;         ///< COPRO_PLAN_MEM_GBPS: memory bandwidth shared by a load/store domain
  // The verbs backend (docs/verbs.md).
  std::string verbsProvider;  ///< COPRO_VERBS_PROVIDER: "" (libibverbs.so.1) or "emu" (the emulated provider)
  std::string ibHca;          ///< COPRO_IB_HCA: RDMA device name to use ("" : chosen by rail, else the first)
  int ibGidIndex = 0;         ///< COPRO_IB_GID_INDEX: GID table index for RoCE / global routing
  int ibChannels = 1;         ///< COPRO_IB_CHANNELS: RC queue pairs per peer (lanes spread over them)
  std::string verbsEmuFault;  ///< COPRO_VERBS_EMU_FAULT: emulator fault injection "qp-error@N" etc.
  bool shmCma = true;         ///< COPRO_SHM_CMA: shm may read peers' memory with Cross Memory Attach (0: stage)
  // Launch and bootstrap (docs/bootstrap.md), read by copro::createFromEnvironment and getUniqueId.
  int rank = -1;               ///< COPRO_RANK: this process's rank in the environment bootstrap (-1: not given)
  int worldSize = 0;           ///< COPRO_WORLD_SIZE: ranks of the environment bootstrap (0: not given)
  std::string rootAddr;        ///< COPRO_ROOT_ADDR: host:port where rank 0 of the environment bootstrap listens
  std::string bootstrapToken;  ///< COPRO_BOOTSTRAP_TOKEN: the job's shared secret (printed as "(set)")
  std::string bootstrapAddr;   ///< COPRO_BOOTSTRAP_ADDR: address getUniqueId's root binds to ("": loopback)
  int nodeId = -1;             ///< COPRO_NODE_ID: this process's (virtual) node, gathered at creation (-1: none)
  // Files and frameworks.
  std::string dataDir;                  ///< COPRO_DATA_DIR: copro's data folder ("": found beside the binaries)
  std::string topologyPath;             ///< COPRO_TOPOLOGY_PATH: extra topology folders, ':'-separated
  std::string torchTransport = "auto";  ///< COPRO_TORCH_TRANSPORT: transport of copro_torch process groups
  std::string ncclBackend = "shm";      ///< COPRO_NCCL_BACKEND: backend of libcopro_nccl's communicators

  /// Names of the variables given a value by set() or by the environment (what isSet answers from).
  std::vector<std::string> givenNames;

  /// Reads every COPRO_* variable from the environment; throws Error naming a bad value. Unknown
  /// COPRO_* variables produce a warning suggesting the nearest known name.
  static Config fromEnvironment();
  /// Sets one field by its variable name (COPRO_TIMEOUT) or short name (timeout); throws on error.
  void set(std::string_view name, std::string_view value);
  /// Sets the named variables from the environment, through the same table and parsers as
  /// fromEnvironment (a bad value throws Error naming the variable), unless set() already gave them a
  /// value; others are left alone and unknown COPRO_* variables are not reported. For code that runs
  /// where no Config is at hand, or with one built by hand: logging, the data folder, the bootstrap.
  void readEnvironment(std::initializer_list<std::string_view> names);
  /// Whether set() or the environment gave the variable (full name, COPRO_TIMEOUT) a value.
  [[nodiscard]] bool isSet(std::string_view name) const;
  /// Current values as (variable, value) in documentation order.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> values() const;

  /// Documentation of one variable.
  struct Var {
    std::string_view name;
    std::string_view defaultValue;
    std::string_view doc;
  };
  static const std::vector<Var>& variables();

 private:
  void markGiven(std::string_view name);
};

/// Levenshtein-nearest candidate to `word` (empty when nothing is close): for "did you mean" messages.
std::string nearestName(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace copro::core

namespace copro {
using core::Config;
}
