#include "conformance/harness.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "copro/core/config.hpp"
#include "copro/core/program.hpp"

namespace copro::test {

using collectives::CollectiveKind;

namespace {

constexpr DataType kTypes[] = {DataType::kInt8,    DataType::kUint8,   DataType::kInt32,      DataType::kUint32,
                               DataType::kInt64,   DataType::kUint64,  DataType::kFloat16,    DataType::kBfloat16,
                               DataType::kFloat32, DataType::kFloat64, DataType::kFloat8E4M3, DataType::kFloat8E5M2};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kProd, ReduceOp::kMin, ReduceOp::kMax, ReduceOp::kAvg};

std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

bool isUnsigned(DataType t) {
  return t == DataType::kUint8 || t == DataType::kUint32 || t == DataType::kUint64;
}
bool isNarrow8(DataType t) {
  return t == DataType::kFloat8E4M3 || t == DataType::kFloat8E5M2;
}

/// Input element i of rank r: small values every type holds exactly.
double inputValue(const Case& c, std::uint64_t seed, int r, std::uint64_t i) {
  std::uint64_t h = mix(seed ^ mix(static_cast<std::uint64_t>(r) * 0x100000001ULL + i));
  if (c.op == ReduceOp::kProd && isReduction(c.kind)) {
    if (!core::isFloatingPoint(c.dtype) || isNarrow8(c.dtype)) return 1.0 + static_cast<double>(h % 2 == 0 && r < 3);
    return (h % 4 == 0) ? -1.0 : ((h % 4 == 1) ? 2.0 : 1.0);
  }
  if (isNarrow8(c.dtype)) return static_cast<double>(h % 3) - 1.0;
  double v = static_cast<double>(h % 13);
  return isUnsigned(c.dtype) ? v : v - 6.0;
}

/// Integer reference with the wrap-around of the element type (sum/prod of integers wrap).
double wrapInt(DataType t, double v) {
  auto wrapBits = [&](int bits, bool sign) {
    long double m = std::ldexp(1.0L, bits);
    long double x = std::fmod(static_cast<long double>(v), m);
    if (x < 0) x += m;
    if (sign && x >= m / 2) x -= m;
    return static_cast<double>(x);
  };
  switch (t) {
    case DataType::kInt8:
      return wrapBits(8, true);
    case DataType::kUint8:
      return wrapBits(8, false);
    case DataType::kInt32:
      return wrapBits(32, true);
    case DataType::kUint32:
      return wrapBits(32, false);
    default:
      return v;  // 64-bit sums of small values never wrap
  }
}

struct Ref {
  double value;
  double scale;
};

Ref reduceRef(const Case& c, std::uint64_t seed, std::uint64_t i, int p) {
  double v = 0;
  double s = 0;
  for (int r = 0; r < p; ++r) {
    double x = inputValue(c, seed, r, i);
    s += std::fabs(x);
    if (r == 0) {
      v = x;
      continue;
    }
    switch (c.op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        v += x;
        break;
      case ReduceOp::kProd:
        v *= x;
        break;
      case ReduceOp::kMin:
        v = std::min(v, x);
        break;
      case ReduceOp::kMax:
        v = std::max(v, x);
        break;
    }
  }
  if (!core::isFloatingPoint(c.dtype)) {
    if (c.op == ReduceOp::kAvg)
      v = std::trunc(wrapInt(c.dtype, v) / p);
    else
      v = wrapInt(c.dtype, v);
  } else if (c.op == ReduceOp::kAvg) {
    v /= p;
  }
  return {v, s};
}

/// Per-rank counts for the v-collectives: irregular, with zeros.
std::vector<std::uint64_t> vCounts(const Case& c) {
  std::vector<std::uint64_t> out;
  for (int r = 0; r < c.ranks; ++r) {
    std::uint64_t n = c.count == 0 ? 0 : (r % 3 == 1 ? 0 : c.count + static_cast<std::uint64_t>(r % 4));
    out.push_back(n);
  }
  return out;
}

/// All-to-all-v matrix: elements rank `from` sends to rank `to`.
std::uint64_t a2avCount(const Case& c, int from, int to) {
  if (c.count == 0) return 0;
  int k = (from * 3 + to * 5) % 4;
  return k == 0 ? 0 : c.count + static_cast<std::uint64_t>(k) - 1;
}

struct CommKey {
  int ranks;
  bool nodes;
  std::string backend;
  bool operator<(const CommKey& o) const {
    return std::tie(ranks, nodes, backend) < std::tie(o.ranks, o.nodes, o.backend);
  }
};

std::mutex gCommsMutex;
std::map<CommKey, std::vector<Communicator>> gComms;

/// The per-rank body of runCaseOnRank (which checks the communicator and catches throws).
std::string runCaseOnRankImpl(const Case& c, std::uint64_t seed, Communicator& comm, int r);

std::vector<Communicator>& commsFor(const Case& c) {
  CommKey key{c.ranks, c.nodes, c.backend};
  auto it = gComms.find(key);
  if (it != gComms.end()) return it->second;
  Config cfg;
  cfg.timeoutSec = 60;
  cfg.validate = true;                          // every new Program goes through the validator first
  cfg.readEnvironment({"COPRO_LL_MAX_BYTES"});  // copro_conformance_ll_slot raises it to the mailbox slot
  core::ExecutorOptions options;
  options.nranks = c.ranks;
  options.config = cfg;
  options.nodeOfRank = caseNodeOfRank(c);
  return gComms[key] = createCommunicators(c.backend, options);
}

}  // namespace

bool isReduction(CollectiveKind k) {
  return k == CollectiveKind::kAllReduce || k == CollectiveKind::kReduceScatter ||
         k == CollectiveKind::kReduceScatterV || k == CollectiveKind::kReduce;
}

bool supportsInPlace(CollectiveKind k) {
  return k != CollectiveKind::kAllToAllV && k != CollectiveKind::kBarrier && k != CollectiveKind::kSendRecv;
}

std::string Case::describe() const {
  std::ostringstream os;
  os << collectives::collectiveName(kind) << "." << (algo.empty() ? "planner" : algo) << " "
     << core::dataTypeName(dtype);
  if (isReduction(kind)) os << " " << core::reduceOpName(op);
  os << " ranks=" << ranks << " count=" << count << (inPlace ? " in-place" : " out-of-place");
  if (kind == CollectiveKind::kBroadcast || kind == CollectiveKind::kReduce || kind == CollectiveKind::kGather ||
      kind == CollectiveKind::kScatter) {
    os << " root=" << root;
  }
  if (nodes) os << " nodes=2";
  if (loadStoreDomains.size() > 1) os << " lsdomains=" << loadStoreDomains.size();
  return os.str();
}

std::vector<std::pair<CollectiveKind, std::string>> collectiveAlgorithms() {
  std::vector<std::pair<CollectiveKind, std::string>> out;
  for (const auto& a : collectives::algorithms()) out.emplace_back(a.kind, a.name);
  return out;
}

/// What the Communicator passes as CollectiveArgs::llMaxBytes: COPRO_LL_MAX_BYTES, capped by the LL
/// mailboxes, which inproc and shm have up to 16 ranks (Executor::llMaxBytes).
std::uint64_t caseLLMaxBytes(const Case& c) {
  if ((c.backend != "inproc" && c.backend != "shm") || c.ranks > 16) return 0;
  static const std::uint64_t configured = [] {
    Config cfg;
    cfg.readEnvironment({"COPRO_LL_MAX_BYTES"});
    return cfg.llMaxBytes;
  }();
  return std::min(configured, core::kLLSlotBytes);
}

bool caseSupported(const Case& c) {
  if (c.inPlace && !supportsInPlace(c.kind)) return false;
  if (c.algo.empty()) return true;  // the planner picks an algorithm that can run the call
  collectives::CollectiveArgs a;
  a.kind = c.kind;
  a.nranks = c.ranks;
  a.count = c.count;
  a.dtype = c.dtype;
  a.op = c.op;
  a.root = c.root;
  a.inPlace = c.inPlace;
  a.nodeOfRank = caseNodeOfRank(c);
  if (c.loadStoreDomains.size() > 1) a.loadStoreDomains = c.loadStoreDomains;
  if (c.kind == CollectiveKind::kReduceScatterV || c.kind == CollectiveKind::kAllGatherV) a.counts = vCounts(c);
  if (c.kind == CollectiveKind::kSendRecv) a.rank = 0;
  a.llMaxBytes = caseLLMaxBytes(c);
  const auto* alg = collectives::findAlgorithm(c.kind, c.algo);
  return alg != nullptr && alg->unsupportedReason(a).empty();
}

std::vector<int> caseNodeOfRank(const Case& c) {
  std::vector<int> out;
  if (c.nodes) {
    for (int r = 0; r < c.ranks; ++r) out.push_back(r % 2);
  }
  return out;
}

std::string caseNodeMap(const Case& c) {
  std::string s;
  for (int n : caseNodeOfRank(c)) s += (s.empty() ? "" : ",") + std::to_string(n);
  return s;
}

std::string runCaseOnRank(const Case& c, std::uint64_t seed, Communicator& comm) {
  if (!comm.valid()) return "runCaseOnRank: the communicator is empty";
  const int r = comm.rank();
  if (comm.size() != c.ranks) {
    return "rank " + std::to_string(r) + ": the communicator has " + std::to_string(comm.size()) +
           " ranks, the case needs " + std::to_string(c.ranks);
  }
  // A user-visible throw (bad argument, backend error) is a failure of this rank, not of the harness.
  try {
    return runCaseOnRankImpl(c, seed, comm, r);
  } catch (const std::exception& e) {
    return "rank " + std::to_string(r) + ": threw " + e.what();
  }
}

std::string runCase(const Case& c, std::uint64_t seed) {
  std::lock_guard<std::mutex> lock(gCommsMutex);
  auto& comms = commsFor(c);
  const int p = c.ranks;
  std::vector<std::string> results(static_cast<std::size_t>(p));
  std::vector<std::thread> threads;
  for (int r = 0; r < p; ++r) {
    threads.emplace_back(
        [&, r] { results[static_cast<std::size_t>(r)] = runCaseOnRank(c, seed, comms[static_cast<std::size_t>(r)]); });
  }
  for (auto& t : threads) t.join();
  std::string all;
  for (const auto& res : results) {
    if (!res.empty()) all += (all.empty() ? "" : " | ") + res;
  }
  if (!all.empty()) gComms.erase(CommKey{c.ranks, c.nodes, c.backend});  // a failed call poisons the communicator
  return all;
}

namespace {

std::string runCaseOnRankImpl(const Case& c, std::uint64_t seed, Communicator& comm, int r) {
  const int p = c.ranks;
  const std::size_t es = core::dataTypeSize(c.dtype);
  const auto vc = vCounts(c);
  std::vector<std::uint64_t> vdispl(static_cast<std::size_t>(p) + 1, 0);
  for (int q = 0; q < p; ++q)
    vdispl[static_cast<std::size_t>(q) + 1] = vdispl[static_cast<std::size_t>(q)] + vc[static_cast<std::size_t>(q)];
  const std::uint64_t n = c.count;
  const auto P = static_cast<std::uint64_t>(p);
  const bool isRoot = r == c.root;
  // Buffer sizes (elements) per collective.
  std::uint64_t sendElems = n;
  std::uint64_t recvElems = n;
  switch (c.kind) {
    case CollectiveKind::kReduceScatter:
      sendElems = n * P;
      break;
    case CollectiveKind::kReduceScatterV:
      sendElems = vdispl.back();
      recvElems = vc[static_cast<std::size_t>(r)];
      break;
    case CollectiveKind::kAllGather:
      recvElems = n * P;
      break;
    case CollectiveKind::kAllGatherV:
      sendElems = vc[static_cast<std::size_t>(r)];
      recvElems = vdispl.back();
      break;
    case CollectiveKind::kGather:
      recvElems = n * P;
      break;
    case CollectiveKind::kScatter:
      sendElems = n * P;
      break;
    case CollectiveKind::kAllToAll:
      sendElems = recvElems = n * P;
      break;
    default:
      break;
  }
  std::vector<std::uint64_t> sc, sd, rc, rd;
  if (c.kind == CollectiveKind::kAllToAllV) {
    std::uint64_t so = 0;
    std::uint64_t ro = 0;
    for (int q = 0; q < p; ++q) {
      sc.push_back(a2avCount(c, r, q));
      sd.push_back(so);
      so += sc.back() + 1;  // a gap of one element: displacements are not contiguous
      rc.push_back(a2avCount(c, q, r));
      rd.push_back(ro);
      ro += rc.back() + 2;
    }
    sendElems = so;
    recvElems = ro;
  }
  const std::uint64_t sentinel = 0xA5;
  std::vector<std::byte> sendBuf(std::max<std::uint64_t>(sendElems * es, 1));
  std::vector<std::byte> recvBuf(std::max<std::uint64_t>(recvElems * es, 1), std::byte{sentinel});
  void* send = sendBuf.data();
  void* recv = recvBuf.data();
  // The element index of the send buffer that holds global input element i of this rank.
  if (c.inPlace) {
    switch (c.kind) {
      case CollectiveKind::kAllGather:
        send = recvBuf.data() + n * es * static_cast<std::uint64_t>(r);
        break;
      case CollectiveKind::kAllGatherV:
        send = recvBuf.data() + vdispl[static_cast<std::size_t>(r)] * es;
        break;
      case CollectiveKind::kReduceScatter:
        recv = sendBuf.data() + n * es * static_cast<std::uint64_t>(r);
        break;
      case CollectiveKind::kReduceScatterV:
        recv = sendBuf.data() + vdispl[static_cast<std::size_t>(r)] * es;
        break;
      case CollectiveKind::kGather:
        send = recvBuf.data() + n * es * static_cast<std::uint64_t>(c.root);
        break;
      case CollectiveKind::kScatter:
        recv = sendBuf.data() + n * es * static_cast<std::uint64_t>(c.root);
        break;
      default:
        send = recv;
        break;
    }
  }
  // Fill inputs. For all-gather(v) rank r's input values are (r, i); elsewhere (r, i) over the send buffer.
  auto fill = [&](void* base, std::uint64_t elems, std::uint64_t offsetElems) {
    for (std::uint64_t i = 0; i < elems; ++i) {
      core::storeFromDouble(c.dtype, base, i, inputValue(c, seed, r, offsetElems + i));
    }
  };
  bool hasSend = true;
  if ((c.kind == CollectiveKind::kBroadcast || c.kind == CollectiveKind::kScatter) && !isRoot) hasSend = false;
  std::uint64_t fillElems = sendElems;
  if (c.kind == CollectiveKind::kAllGather || c.kind == CollectiveKind::kGather) fillElems = n;
  if (c.kind == CollectiveKind::kAllGatherV) fillElems = vc[static_cast<std::size_t>(r)];
  if (hasSend) fill(send, fillElems, 0);
  if (c.kind == CollectiveKind::kAllToAllV) {
    // Values are indexed by (destination, position) so the receiver can check them.
    for (int q = 0; q < p; ++q) {
      for (std::uint64_t i = 0; i < sc[static_cast<std::size_t>(q)]; ++i) {
        core::storeFromDouble(c.dtype, send, sd[static_cast<std::size_t>(q)] + i,
                              inputValue(c, seed, r, static_cast<std::uint64_t>(q) * 100000 + i));
      }
    }
  }
  // Send/recv: a ring (to r+1, from r-1) plus a message to self.
  std::vector<std::byte> p2pSend(std::max<std::uint64_t>(n * es, 1));
  std::vector<std::byte> p2pRecv(std::max<std::uint64_t>(n * es, 1), std::byte{sentinel});
  std::vector<std::byte> selfRecv(std::max<std::uint64_t>(n * es, 1), std::byte{sentinel});
  if (c.kind == CollectiveKind::kSendRecv) fill(p2pSend.data(), n, 0);

  CallOptions opts{c.algo};
  Request req;
  switch (c.kind) {
    case CollectiveKind::kAllReduce:
      req = comm.allReduce(send, recv, n, c.dtype, c.op, opts);
      break;
    case CollectiveKind::kReduceScatter:
      req = comm.reduceScatter(send, recv, n, c.dtype, c.op, opts);
      break;
    case CollectiveKind::kReduceScatterV:
      req = comm.reduceScatterV(send, recv, vc, c.dtype, c.op, opts);
      break;
    case CollectiveKind::kAllGather:
      req = comm.allGather(send, recv, n, c.dtype, opts);
      break;
    case CollectiveKind::kAllGatherV:
      req = comm.allGatherV(send, recv, vc, c.dtype, opts);
      break;
    case CollectiveKind::kBroadcast:
      req = comm.broadcast(send, recv, n, c.dtype, c.root, opts);
      break;
    case CollectiveKind::kReduce:
      req = comm.reduce(send, recv, n, c.dtype, c.op, c.root, opts);
      break;
    case CollectiveKind::kGather:
      req = comm.gather(send, recv, n, c.dtype, c.root, opts);
      break;
    case CollectiveKind::kScatter:
      req = comm.scatter(send, recv, n, c.dtype, c.root, opts);
      break;
    case CollectiveKind::kAllToAll:
      req = comm.allToAll(send, recv, n, c.dtype, opts);
      break;
    case CollectiveKind::kAllToAllV:
      req = comm.allToAllV(send, sc, sd, recv, rc, rd, c.dtype, opts);
      break;
    case CollectiveKind::kBarrier:
      req = comm.barrier(opts);
      break;
    case CollectiveKind::kSendRecv:
      comm.groupStart();
      (void)comm.send(p2pSend.data(), n, c.dtype, (r + 1) % p);
      (void)comm.recv(p2pRecv.data(), n, c.dtype, (r + p - 1) % p);
      (void)comm.send(p2pSend.data(), n, c.dtype, r);
      (void)comm.recv(selfRecv.data(), n, c.dtype, r);
      req = comm.groupEnd();
      break;
  }
  Status s = req.wait();
  if (!caseSupported(c)) {
    // The algorithm's restriction (e.g. one load/store domain) rules this backend out: the call must say so.
    if (s.code() == ErrorCode::kUnsupported) return "";
    return "rank " + std::to_string(r) + ": the algorithm cannot run this case, expected kUnsupported, got " +
           (s.ok() ? std::string("success") : s.toString());
  }
  if (!s.ok()) {
    return "rank " + std::to_string(r) + ": " + s.toString();
  }
  if (c.algo.size() > 0 && comm.lastProgramName().find(c.algo) == std::string::npos) {
    return "rank " + std::to_string(r) + ": ran " + comm.lastProgramName() + ", not the forced " + c.algo;
  }
  // Check.
  const double eps = core::unitRoundoff(c.dtype);
  int wrong = 0;
  std::ostringstream err;
  auto check = [&](const void* base, std::uint64_t idx, double expect, double scale, const char* what) {
    double got = core::loadAsDouble(c.dtype, base, idx);
    bool exact =
        c.op == ReduceOp::kMin || c.op == ReduceOp::kMax || !isReduction(c.kind) || !core::isFloatingPoint(c.dtype);
    double tol = exact ? 0.0 : (p + 1) * eps * std::max(scale, std::fabs(expect));
    if (!(std::fabs(got - expect) <= tol) && !(std::isnan(got) && std::isnan(expect))) {
      if (wrong < 3) err << " " << what << "[" << idx << "]=" << got << " expected " << expect << ";";
      ++wrong;
    }
  };
  switch (c.kind) {
    case CollectiveKind::kAllReduce:
      for (std::uint64_t i = 0; i < n; ++i) {
        Ref ref = reduceRef(c, seed, i, p);
        check(recv, i, ref.value, ref.scale, "out");
      }
      break;
    case CollectiveKind::kReduce:
      if (isRoot) {
        for (std::uint64_t i = 0; i < n; ++i) {
          Ref ref = reduceRef(c, seed, i, p);
          check(recv, i, ref.value, ref.scale, "out");
        }
      }
      break;
    case CollectiveKind::kReduceScatter:
      for (std::uint64_t i = 0; i < n; ++i) {
        Ref ref = reduceRef(c, seed, static_cast<std::uint64_t>(r) * n + i, p);
        check(recv, i, ref.value, ref.scale, "out");
      }
      break;
    case CollectiveKind::kReduceScatterV:
      for (std::uint64_t i = 0; i < vc[static_cast<std::size_t>(r)]; ++i) {
        Ref ref = reduceRef(c, seed, vdispl[static_cast<std::size_t>(r)] + i, p);
        check(recv, i, ref.value, ref.scale, "out");
      }
      break;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kGather:
      if (c.kind == CollectiveKind::kAllGather || isRoot) {
        for (int q = 0; q < p; ++q) {
          for (std::uint64_t i = 0; i < n; ++i) {
            check(recv, static_cast<std::uint64_t>(q) * n + i, inputValue(c, seed, q, i), 0, "out");
          }
        }
      }
      break;
    case CollectiveKind::kAllGatherV:
      for (int q = 0; q < p; ++q) {
        for (std::uint64_t i = 0; i < vc[static_cast<std::size_t>(q)]; ++i) {
          check(recv, vdispl[static_cast<std::size_t>(q)] + i, inputValue(c, seed, q, i), 0, "out");
        }
      }
      break;
    case CollectiveKind::kBroadcast:
      for (std::uint64_t i = 0; i < n; ++i) check(recv, i, inputValue(c, seed, c.root, i), 0, "out");
      break;
    case CollectiveKind::kScatter:
      for (std::uint64_t i = 0; i < n; ++i) {
        check(recv, i, inputValue(c, seed, c.root, static_cast<std::uint64_t>(r) * n + i), 0, "out");
      }
      break;
    case CollectiveKind::kAllToAll:
      for (int q = 0; q < p; ++q) {
        for (std::uint64_t i = 0; i < n; ++i) {
          check(recv, static_cast<std::uint64_t>(q) * n + i,
                inputValue(c, seed, q, static_cast<std::uint64_t>(r) * n + i), 0, "out");
        }
      }
      break;
    case CollectiveKind::kAllToAllV:
      for (int q = 0; q < p; ++q) {
        for (std::uint64_t i = 0; i < rc[static_cast<std::size_t>(q)]; ++i) {
          check(recv, rd[static_cast<std::size_t>(q)] + i,
                inputValue(c, seed, q, static_cast<std::uint64_t>(r) * 100000 + i), 0, "out");
        }
        // The gap after each block must be untouched.
        std::uint64_t gapIdx = rd[static_cast<std::size_t>(q)] + rc[static_cast<std::size_t>(q)];
        for (std::uint64_t b = 0; b < es; ++b) {
          if (recvBuf[gapIdx * es + b] != std::byte{sentinel}) {
            if (wrong < 3) err << " gap after block " << q << " overwritten;";
            ++wrong;
            break;
          }
        }
      }
      break;
    case CollectiveKind::kSendRecv: {
      int from = (r + p - 1) % p;
      for (std::uint64_t i = 0; i < n; ++i) {
        check(p2pRecv.data(), i, inputValue(c, seed, from, i), 0, "recv");
        check(selfRecv.data(), i, inputValue(c, seed, r, i), 0, "self");
      }
      break;
    }
    case CollectiveKind::kBarrier:
      break;
  }
  if (wrong > 0) return "rank " + std::to_string(r) + ": " + std::to_string(wrong) + " wrong:" + err.str();
  return "";
}

/// Nudges a case to a supported configuration: other rank counts first, then in-place off.
bool makeSupported(Case& c, const std::vector<int>& ranks) {
  if (caseSupported(c)) return true;
  Case orig = c;
  if (c.inPlace && !supportsInPlace(c.kind)) {
    c.inPlace = false;
    if (caseSupported(c)) return true;
  }
  for (int r : ranks) {
    c.ranks = r;
    c.root = orig.root % r;
    if (caseSupported(c)) return true;
  }
  c = orig;
  c.inPlace = false;
  for (int r : ranks) {
    c.ranks = r;
    c.root = orig.root % r;
    if (caseSupported(c)) return true;
  }
  return false;
}

Case baseCase(CollectiveKind k, const std::string& algo) {
  Case c;
  c.kind = k;
  c.algo = algo;
  c.nodes = algo == "hier";
  return c;
}

}  // namespace

std::vector<Case> pairwiseCases(const std::vector<int>& ranks, const std::vector<std::uint64_t>& counts) {
  std::vector<Case> out;
  auto cas = collectiveAlgorithms();
  const int nt = static_cast<int>(std::size(kTypes));
  // A Latin-style construction: for each (collective, algorithm) one case per dtype, the other factors
  // rotating with both indices; then a fix-up pass adds a case for every pair still uncovered.
  for (std::size_t i = 0; i < cas.size(); ++i) {
    for (int j = 0; j < nt; ++j) {
      Case c = baseCase(cas[i].first, cas[i].second);
      auto ii = static_cast<int>(i);
      c.dtype = kTypes[j];
      c.op = kOps[(ii + j) % 5];
      c.ranks = ranks[static_cast<std::size_t>((j + 3 * ii) % static_cast<int>(ranks.size()))];
      c.count = counts[static_cast<std::size_t>((j + ii + j / 4) % static_cast<int>(counts.size()))];
      c.inPlace = ((ii * 7 + j + j / 2) % 2) == 1;
      c.root = (ii + j) % c.ranks;
      if (makeSupported(c, ranks)) out.push_back(c);
    }
  }
  // Fix-up: walk the uncovered pairs and add a case for each.
  for (int round = 0; round < 2; ++round) {
    auto miss = uncoveredPairs(out, ranks, counts);
    if (miss.empty()) break;
    // Cover dtype x op, ranks x counts, ranks x dtype... by adding allreduce.ring-like cases built from the
    // missing pair encoded in the string "factorA=valA factorB=valB".
    for (const auto& m : miss) {
      Case c = baseCase(CollectiveKind::kAllReduce, "ring");
      std::istringstream is(m);
      std::string kv;
      while (is >> kv) {
        auto eq = kv.find('=');
        std::string k = kv.substr(0, eq);
        std::string v = kv.substr(eq + 1);
        if (k == "coll") {
          auto dot = v.find('.');
          collectives::parseCollectiveKind(v.substr(0, dot), c.kind);
          c.algo = v.substr(dot + 1);
          c.nodes = c.algo == "hier";
        } else if (k == "dtype") {
          c.dtype = *core::parseDataType(v);
        } else if (k == "op") {
          c.op = *core::parseReduceOp(v);
        } else if (k == "ranks") {
          c.ranks = std::stoi(v);
        } else if (k == "count") {
          c.count = std::stoull(v);
        } else if (k == "inplace") {
          c.inPlace = v == "1";
        }
      }
      if (caseSupported(c)) out.push_back(c);
    }
  }
  return out;
}

std::vector<Case> crossProductCases(const std::vector<int>& ranks, const std::vector<std::uint64_t>& counts) {
  std::vector<Case> out;
  for (const auto& [k, algo] : collectiveAlgorithms()) {
    for (DataType t : kTypes) {
      for (ReduceOp op : kOps) {
        if (!isReduction(k) && op != ReduceOp::kSum) continue;
        for (int r : ranks) {
          for (auto n : counts) {
            for (bool ip : {false, true}) {
              Case c = baseCase(k, algo);
              c.dtype = t;
              c.op = op;
              c.ranks = r;
              c.count = n;
              c.inPlace = ip;
              c.root = r - 1;
              if (caseSupported(c)) out.push_back(c);
            }
          }
        }
      }
    }
  }
  return out;
}

std::vector<std::string> uncoveredPairs(const std::vector<Case>& cases, const std::vector<int>& ranks,
                                        const std::vector<std::uint64_t>& counts) {
  // Factor values as strings; op only counts for reductions, in-place only where supported.
  auto values = [&](const Case& c) {
    std::vector<std::string> v;
    v.push_back("coll=" + std::string(collectives::collectiveName(c.kind)) + "." + c.algo);
    v.push_back("dtype=" + std::string(core::dataTypeName(c.dtype)));
    v.push_back(isReduction(c.kind) ? "op=" + std::string(core::reduceOpName(c.op)) : "");
    v.push_back("ranks=" + std::to_string(c.ranks));
    v.push_back("count=" + std::to_string(c.count));
    v.push_back(supportsInPlace(c.kind) ? std::string("inplace=") + (c.inPlace ? "1" : "0") : "");
    return v;
  };
  std::set<std::string> covered;
  for (const auto& c : cases) {
    auto v = values(c);
    for (std::size_t a = 0; a < v.size(); ++a) {
      for (std::size_t b = a + 1; b < v.size(); ++b) {
        if (!v[a].empty() && !v[b].empty()) covered.insert(v[a] + " " + v[b]);
      }
    }
  }
  // Every pair that some supported case could contain must be covered.
  std::vector<std::string> missing;
  std::set<std::string> possible;
  for (const auto& c : crossProductCases(ranks, counts)) {
    auto v = values(c);
    for (std::size_t a = 0; a < v.size(); ++a) {
      for (std::size_t b = a + 1; b < v.size(); ++b) {
        if (!v[a].empty() && !v[b].empty()) possible.insert(v[a] + " " + v[b]);
      }
    }
  }
  for (const auto& pr : possible) {
    if (covered.count(pr) == 0) missing.push_back(pr);
  }
  return missing;
}

}  // namespace copro::test
