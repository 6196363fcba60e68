#include "copro/copro.hpp"

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "copro/transport/bootstrap_tcp.hpp"
#include "copro/transport/inproc.hpp"
#include "copro/transport/lanemachine.hpp"
#include "copro/transport/shm.hpp"
#include "copro/transport/vnode.hpp"
#if COPRO_HAVE_MPI
#include "copro/copro_mpi.hpp"
#include "copro/transport/mpi.hpp"
#endif
#if COPRO_HAVE_UCX
#include "copro/transport/ucx.hpp"
#endif
#if COPRO_HAVE_VERBS
#include "copro/transport/verbs.hpp"
#endif

namespace copro {

void registerBuiltinBackends() {
  static std::once_flag once;
  std::call_once(once, [] {
    transport::registerInproc(core::ExecutorRegistry::instance());
    transport::registerShm(core::ExecutorRegistry::instance());
    transport::registerLaneMachine(core::ExecutorRegistry::instance());
#if COPRO_HAVE_MPI
    transport::registerMpi(core::ExecutorRegistry::instance());
#endif
#if COPRO_HAVE_UCX
    transport::registerUcx(core::ExecutorRegistry::instance());
    transport::registerVirtualNodes(core::ExecutorRegistry::instance());  // shm+ucx, shm+mpi, shm+verbs
#endif
#if COPRO_HAVE_VERBS
    transport::registerVerbs(core::ExecutorRegistry::instance());
#endif
  });
}

std::vector<Communicator> createCommunicators(const std::string& backend, const core::ExecutorOptions& options) {
  registerBuiltinBackends();
  return Communicator::createAll(backend, options);
}

std::vector<Communicator> createInproc(int nranks, const Config& config, std::vector<int> nodeOfRank) {
  if (nranks <= 0) {
    throw Error(ErrorCode::kInvalidArgument, "createInproc: nranks must be > 0, got " + std::to_string(nranks));
  }
  if (!nodeOfRank.empty() && static_cast<int>(nodeOfRank.size()) != nranks) {
    throw Error(ErrorCode::kInvalidArgument, "createInproc: nodeOfRank has " + std::to_string(nodeOfRank.size()) +
                                                 " entries for " + std::to_string(nranks) + " ranks");
  }
  core::ExecutorOptions options;
  options.nranks = nranks;
  options.config = config;
  options.nodeOfRank = std::move(nodeOfRank);
  return createCommunicators("inproc", options);
}

#if COPRO_HAVE_MPI
Communicator createFromMpi(MPI_Comm comm, const std::string& backend, const Config& config) {
  core::ExecutorOptions options;
  options.config = config;
  options.bootstrap = transport::createMpiBootstrap(comm);
  options.nranks = options.bootstrap->size();
  std::vector<Communicator> comms = createCommunicators(backend, options);
  if (comms.size() != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "createFromMpi: backend '" + backend + "' made " + std::to_string(comms.size()) +
                    " ranks in this process; use a multi-process backend (mpi, ucx, shm+ucx, shm+mpi)");
  }
  return std::move(comms.front());
}
#endif

// ---- multi-process communicators (TCP/environment bootstrap) ----

namespace {
transport::UniqueId toTransport(const UniqueId& id) {
  transport::UniqueId t;
  static_assert(sizeof(t.bytes) == sizeof(id.internal), "UniqueId sizes differ");
  std::memcpy(t.bytes.data(), id.internal.data(), t.bytes.size());
  return t;
}
}  // namespace

UniqueId getUniqueId(const std::string& bindAddr) {
  const Config config = Config::fromEnvironment();
  const std::string addr = bindAddr == "127.0.0.1" && !config.bootstrapAddr.empty() ? config.bootstrapAddr : bindAddr;
  const transport::UniqueId t = transport::createUniqueId(addr, config);
  UniqueId id;
  std::memcpy(id.internal.data(), t.bytes.data(), id.internal.size());
  return id;
}

std::shared_ptr<core::Bootstrap> createBootstrap(const UniqueId& id, int rank, int nranks, const Config& config) {
  return transport::createTcpBootstrap(toTransport(id), rank, nranks, config);
}

std::shared_ptr<core::Bootstrap> createBootstrapFromEnvironment(const Config& config) {
  return transport::createEnvironmentBootstrap(config);
}

Communicator createCommunicator(const std::string& backend, std::shared_ptr<core::Bootstrap> bootstrap,
                                const Config& config) {
  if (!bootstrap) throw Error(ErrorCode::kInvalidArgument, "createCommunicator: the bootstrap is null");
  core::ExecutorOptions options;
  options.config = config;
  options.nranks = bootstrap->size();
  // Node ids: COPRO_NODE_ID of every process, gathered; else COPRO_NODE_MAP (the Communicator reads it);
  // else one node. Collective, like the rest of creation.
  Config given = config;  // COPRO_NODE_ID: the config's, else the environment's (a hand-built config)
  given.readEnvironment({"COPRO_NODE_ID"});
  std::int32_t mine = given.nodeId;
  std::vector<std::int32_t> ids(static_cast<std::size_t>(bootstrap->size()));
  bootstrap->allGather(&mine, ids.data(), sizeof(mine)).throwIfError();
  std::vector<int> unset;
  for (std::size_t r = 0; r < ids.size(); ++r) {
    if (ids[r] < 0) unset.push_back(static_cast<int>(r));
  }
  if (unset.size() != ids.size()) {
    if (!unset.empty()) {
      std::string list;
      for (int r : unset) list += (list.empty() ? "" : ", ") + std::to_string(r);
      throw Error(ErrorCode::kInvalidArgument, "COPRO_NODE_ID is set on some ranks but not on rank(s) " + list +
                                                   ": set it on every process or on none");
    }
    options.nodeOfRank.assign(ids.begin(), ids.end());
    options.config.nodeMap.clear();  // the gathered ids take precedence over COPRO_NODE_MAP
  }
  options.bootstrap = std::move(bootstrap);
  std::vector<Communicator> comms = createCommunicators(backend, options);
  if (comms.size() != 1) {
    throw Error(ErrorCode::kInvalidArgument,
                "createCommunicator: backend '" + backend + "' made " + std::to_string(comms.size()) +
                    " ranks in this process; use a multi-process backend (shm, mpi, ucx, shm+ucx)");
  }
  return std::move(comms.front());
}

Communicator createCommunicator(const std::string& backend, const UniqueId& id, int rank, int nranks,
                                const Config& config) {
  return createCommunicator(backend, createBootstrap(id, rank, nranks, config), config);
}

Communicator createFromEnvironment(const std::string& backend, const Config& config) {
  return createCommunicator(backend, createBootstrapFromEnvironment(config), config);
}

const char* version() {
  return COPRO_VERSION;
}

}  // namespace copro
