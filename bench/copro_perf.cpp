// copro-perf: nccl-tests-style collective benchmark (flags, columns and bus-bandwidth factors follow
// nccl-tests so results can be compared directly). See docs/perf.md.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <barrier>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "copro/copro.hpp"
#include "copro/core/units.hpp"
#include "memory_bound.hpp"

namespace {

using copro::DataType;
using copro::ReduceOp;
using copro::collectives::CollectiveKind;

struct Options {
  CollectiveKind kind = CollectiveKind::kAllReduce;
  std::uint64_t minBytes = 32ULL << 20;
  std::uint64_t maxBytes = 32ULL << 20;
  std::uint64_t stepFactor = 2;
  int iters = 20;
  int warmup = 5;
  int check = 1;
  DataType dtype = DataType::kFloat32;
  ReduceOp op = ReduceOp::kSum;
  int root = 0;
  int ranks = 4;
  std::string transport = "inproc";
  std::string algo;
  std::string json;
  bool noBound = false;
};

struct Result {
  double timeUs = 0;
  std::uint64_t wrong = 0;
  bool supported = true;
  std::string error;
};

bool isRooted(CollectiveKind k) {
  return k == CollectiveKind::kBroadcast || k == CollectiveKind::kReduce || k == CollectiveKind::kGather ||
         k == CollectiveKind::kScatter;
}
bool hasOp(CollectiveKind k) {
  return k == CollectiveKind::kAllReduce || k == CollectiveKind::kReduceScatter || k == CollectiveKind::kReduce;
}

/// nccl-tests' bus bandwidth factor.
double busFactor(CollectiveKind k, int p) {
  switch (k) {
    case CollectiveKind::kAllReduce:
      return 2.0 * (p - 1) / p;
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kGather:
    case CollectiveKind::kScatter:
      return static_cast<double>(p - 1) / p;
    default:
      return 1.0;
  }
}

/// Elements per rank-level "count" for a total size as nccl-tests defines it.
std::uint64_t countFor(CollectiveKind k, std::uint64_t bytes, std::size_t esize, int p) {
  std::uint64_t elems = bytes / esize;
  switch (k) {
    case CollectiveKind::kAllGather:
    case CollectiveKind::kReduceScatter:
    case CollectiveKind::kAllToAll:
    case CollectiveKind::kGather:
    case CollectiveKind::kScatter:
      return elems / static_cast<std::uint64_t>(p);
    default:
      return elems;
  }
}

/// Input value of element i on rank r: small numbers every type represents exactly.
double inputValue(DataType t, ReduceOp op, int r, std::uint64_t i) {
  if (op == ReduceOp::kProd)
    return ((static_cast<std::uint64_t>(r) + i) % 3 == 0 && copro::core::isFloatingPoint(t)) ? -1.0 : 1.0;
  bool isUnsigned = t == DataType::kUint8 || t == DataType::kUint32 || t == DataType::kUint64;
  bool narrow8 = t == DataType::kFloat8E4M3 || t == DataType::kFloat8E5M2;
  double v = static_cast<double>((static_cast<std::uint64_t>(r) * 31 + i * 7) % (narrow8 ? 3 : 13));
  return isUnsigned ? v : v - (narrow8 ? 1 : 6);
}

/// Reference of a reduction of element i over all ranks, and the scale of its rounding error.
void reduceRef(const Options& o, int p, std::uint64_t i, double& value, double& sumAbs) {
  value = 0;
  sumAbs = 0;
  for (int r = 0; r < p; ++r) {
    double v = inputValue(o.dtype, o.op, r, i);
    sumAbs += std::fabs(v);
    if (r == 0) {
      value = v;
      continue;
    }
    switch (o.op) {
      case ReduceOp::kSum:
      case ReduceOp::kAvg:
        value += v;
        break;
      case ReduceOp::kProd:
        value *= v;
        break;
      case ReduceOp::kMin:
        value = std::min(value, v);
        break;
      case ReduceOp::kMax:
        value = std::max(value, v);
        break;
    }
  }
  if (o.op == ReduceOp::kAvg) {
    value = copro::core::isFloatingPoint(o.dtype) ? value / p : std::trunc(value / p);
  }
}

struct RankBuffers {
  std::vector<std::byte> send;
  std::vector<std::byte> recv;
};

class Bench {
 public:
  Bench(Options o, std::vector<copro::Communicator> comms) : o_(std::move(o)), comms_(std::move(comms)) {
    p_ = static_cast<int>(comms_.size());
    esize_ = copro::core::dataTypeSize(o_.dtype);
    times_.assign(static_cast<std::size_t>(p_), 0.0);
    wrong_.assign(static_cast<std::size_t>(p_), 0);
    errors_.assign(static_cast<std::size_t>(p_), std::string());
  }

  /// Runs one size on all ranks (threads); returns the out-of-place and in-place results.
  std::pair<Result, Result> runSize(std::uint64_t count, const std::string& algo) {
    std::pair<Result, Result> out;
    std::barrier sync(p_);
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(p_));
    for (int r = 0; r < p_; ++r) {
      threads.emplace_back([&, r] {
        runRank(r, count, algo, false, sync, out.first);
        runRank(r, count, algo, true, sync, out.second);
      });
    }
    for (auto& t : threads) t.join();
    return out;
  }

  [[nodiscard]] int ranks() const { return p_; }

 private:
  std::uint64_t sendElems(std::uint64_t count) const {
    switch (o_.kind) {
      case CollectiveKind::kReduceScatter:
      case CollectiveKind::kAllToAll:
      case CollectiveKind::kScatter:
        return count * static_cast<std::uint64_t>(p_);
      default:
        return count;
    }
  }
  std::uint64_t recvElems(std::uint64_t count) const {
    switch (o_.kind) {
      case CollectiveKind::kAllGather:
      case CollectiveKind::kAllToAll:
      case CollectiveKind::kGather:
        return count * static_cast<std::uint64_t>(p_);
      default:
        return count;
    }
  }

  copro::Request launch(int r, const void* send, void* recv, std::uint64_t count, const std::string& algo) {
    auto& c = comms_[static_cast<std::size_t>(r)];
    copro::CallOptions opts{algo};
    switch (o_.kind) {
      case CollectiveKind::kAllReduce:
        return c.allReduce(send, recv, count, o_.dtype, o_.op, opts);
      case CollectiveKind::kReduceScatter:
        return c.reduceScatter(send, recv, count, o_.dtype, o_.op, opts);
      case CollectiveKind::kAllGather:
        return c.allGather(send, recv, count, o_.dtype, opts);
      case CollectiveKind::kBroadcast:
        return c.broadcast(send, recv, count, o_.dtype, o_.root, opts);
      case CollectiveKind::kReduce:
        return c.reduce(send, recv, count, o_.dtype, o_.op, o_.root, opts);
      case CollectiveKind::kGather:
        return c.gather(send, recv, count, o_.dtype, o_.root, opts);
      case CollectiveKind::kScatter:
        return c.scatter(send, recv, count, o_.dtype, o_.root, opts);
      case CollectiveKind::kAllToAll:
        return c.allToAll(send, recv, count, o_.dtype, opts);
      default:
        throw copro::Error(copro::ErrorCode::kUnsupported, "copro-perf does not run this collective");
    }
  }

  /// Pointers for one rank, in place or not (in-place layouts follow NCCL).
  void pointers(int r, RankBuffers& b, std::uint64_t count, bool inPlace, const void*& send, void*& recv) const {
    send = b.send.data();
    recv = b.recv.data();
    if (!inPlace) return;
    const std::uint64_t blk = count * esize_ * static_cast<std::uint64_t>(r);
    switch (o_.kind) {
      case CollectiveKind::kAllGather:
        send = b.recv.data() + blk;
        break;
      case CollectiveKind::kReduceScatter:
        recv = b.send.data() + blk;
        break;
      case CollectiveKind::kGather:
        send = b.recv.data() + count * esize_ * static_cast<std::uint64_t>(o_.root);
        break;
      case CollectiveKind::kScatter:
        recv = b.send.data() + count * esize_ * static_cast<std::uint64_t>(o_.root);
        break;
      default:
        send = b.recv.data();
        break;
    }
  }

  void fillInputs(int r, RankBuffers& b, std::uint64_t count, bool inPlace) const {
    const void* send = nullptr;
    void* recv = nullptr;
    pointers(r, b, count, inPlace, send, recv);
    std::memset(b.recv.data(), 0, b.recv.size());
    std::uint64_t n = sendElems(count);
    if (o_.kind == CollectiveKind::kGather || o_.kind == CollectiveKind::kAllGather) {
      // Rank r's block sits at block r of the all-gather output, i.e. values (r, i).
    }
    for (std::uint64_t i = 0; i < n; ++i) {
      copro::core::storeFromDouble(o_.dtype, const_cast<void*>(send), i, inputValue(o_.dtype, o_.op, r, i));  // NOLINT
    }
  }

  std::uint64_t checkOutputs(int r, const void* recv, std::uint64_t count) const {
    std::uint64_t wrong = 0;
    const double eps = copro::core::unitRoundoff(o_.dtype);
    auto cmp = [&](std::uint64_t idx, double expect, double scale) {
      double got = copro::core::loadAsDouble(o_.dtype, recv, idx);
      double tol = (o_.op == ReduceOp::kMin || o_.op == ReduceOp::kMax) ? 0.0 : p_ * eps * scale;
      if (!(std::fabs(got - expect) <= tol)) ++wrong;
    };
    switch (o_.kind) {
      case CollectiveKind::kAllReduce:
      case CollectiveKind::kReduce:
        if (o_.kind == CollectiveKind::kReduce && r != o_.root) return 0;
        for (std::uint64_t i = 0; i < count; ++i) {
          double v = 0;
          double s = 0;
          reduceRef(o_, p_, i, v, s);
          cmp(i, v, s);
        }
        break;
      case CollectiveKind::kReduceScatter:
        for (std::uint64_t i = 0; i < count; ++i) {
          double v = 0;
          double s = 0;
          reduceRef(o_, p_, static_cast<std::uint64_t>(r) * count + i, v, s);
          cmp(i, v, s);
        }
        break;
      case CollectiveKind::kAllGather:
      case CollectiveKind::kGather:
        if (o_.kind == CollectiveKind::kGather && r != o_.root) return 0;
        for (int q = 0; q < p_; ++q) {
          for (std::uint64_t i = 0; i < count; ++i) {
            cmp(static_cast<std::uint64_t>(q) * count + i, inputValue(o_.dtype, o_.op, q, i), 0);
          }
        }
        break;
      case CollectiveKind::kBroadcast:
        for (std::uint64_t i = 0; i < count; ++i) cmp(i, inputValue(o_.dtype, o_.op, o_.root, i), 0);
        break;
      case CollectiveKind::kScatter:
        for (std::uint64_t i = 0; i < count; ++i) {
          cmp(i, inputValue(o_.dtype, o_.op, o_.root, static_cast<std::uint64_t>(r) * count + i), 0);
        }
        break;
      case CollectiveKind::kAllToAll:
        for (int q = 0; q < p_; ++q) {
          for (std::uint64_t i = 0; i < count; ++i) {
            cmp(static_cast<std::uint64_t>(q) * count + i,
                inputValue(o_.dtype, o_.op, q, static_cast<std::uint64_t>(r) * count + i), 0);
          }
        }
        break;
      default:
        break;
    }
    return wrong;
  }

  /// Runs one configuration on rank r; rank 0 writes the combined result into `shared`.
  void runRank(int r, std::uint64_t count, const std::string& algo, bool inPlace, std::barrier<>& sync,
               Result& shared) {
    auto& errs = errors_[static_cast<std::size_t>(r)];
    errs.clear();
    RankBuffers b;
    b.send.resize(std::max<std::uint64_t>(sendElems(count) * esize_, 1));
    b.recv.resize(std::max<std::uint64_t>(recvElems(count) * esize_, 1));
    const void* send = nullptr;
    void* recv = nullptr;
    pointers(r, b, count, inPlace, send, recv);
    std::uint64_t wrong = 0;
    try {
      if (o_.check != 0) {
        fillInputs(r, b, count, inPlace);
        sync.arrive_and_wait();
        copro::Status s = launch(r, send, recv, count, algo).wait();
        if (!s.ok()) throw copro::Error(s.code(), s.message());
        wrong = checkOutputs(r, recv, count);
      }
      for (int i = 0; i < o_.warmup; ++i) {
        copro::Status s = launch(r, send, recv, count, algo).wait();
        if (!s.ok()) throw copro::Error(s.code(), s.message());
      }
      sync.arrive_and_wait();
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < o_.iters; ++i) {
        copro::Status s = launch(r, send, recv, count, algo).wait();
        if (!s.ok()) throw copro::Error(s.code(), s.message());
      }
      times_[static_cast<std::size_t>(r)] =
          std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
          std::max(1, o_.iters);
    } catch (const copro::Error& e) {
      errs = e.what();
      times_[static_cast<std::size_t>(r)] = 0;
    }
    wrong_[static_cast<std::size_t>(r)] = wrong;
    sync.arrive_and_wait();
    if (r == 0) {
      shared.timeUs = *std::max_element(times_.begin(), times_.end());
      shared.wrong = 0;
      for (auto w : wrong_) shared.wrong += w;
      for (const auto& e : errors_) {
        if (!e.empty()) {
          shared.error = e;
          shared.supported = false;
        }
      }
    }
    sync.arrive_and_wait();
  }

  Options o_;
  std::vector<copro::Communicator> comms_;
  int p_ = 0;
  std::size_t esize_ = 4;
  std::vector<double> times_;
  std::vector<std::uint64_t> wrong_;
  std::vector<std::string> errors_;
};

std::string fmtCol(const Result& r, double bytes, double factor, char* buf, std::size_t n) {
  if (!r.supported) {
    std::snprintf(buf, n, "%10s %7s %7s %6s", "N/A", "N/A", "N/A", "N/A");
  } else {
    double algbw = bytes / (r.timeUs * 1e-6) / 1e9;
    std::snprintf(buf, n, "%10.2f %7.2f %7.2f %6llu", r.timeUs, algbw, algbw * factor,
                  static_cast<unsigned long long>(r.wrong));
  }
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"copro-perf: nccl-tests-style benchmark of copro collectives"};
  Options o;
  std::string collective = "allreduce";
  std::string minB = "32M";
  std::string maxB = "32M";
  std::string dtype = "float";
  std::string op = "sum";
  app.add_option("collective", collective,
                 "allreduce, allgather, reducescatter, broadcast, reduce, gather, scatter, alltoall");
  app.add_option("-b,--minbytes", minB, "minimum size (K/M/G suffixes), default 32M");
  app.add_option("-e,--maxbytes", maxB, "maximum size, default 32M");
  app.add_option("-f,--stepfactor", o.stepFactor, "multiplication factor between sizes, default 2");
  app.add_option("-n,--iters", o.iters, "timed iterations, default 20");
  app.add_option("-w,--warmup_iters", o.warmup, "warm-up iterations, default 5");
  app.add_option("-c,--check", o.check, "check results (0/1), default 1");
  app.add_option("-d,--datatype", dtype, "float, half, bfloat16, double, int32, ..., default float");
  app.add_option("-o,--op", op, "sum, prod, min, max, avg, default sum");
  app.add_option("-r,--root", o.root, "root of rooted collectives, default 0");
  app.add_option("--algo", o.algo, "algorithm name, a comma list, or 'all' (default: the planner)");
  app.add_option("--transport", o.transport, "backend (inproc)");
  app.add_option("--ranks", o.ranks, "ranks for in-process backends, default 4");
  app.add_option("--json", o.json, "also write the rows to this JSON file");
  app.add_flag("--no-bound", o.noBound, "skip the memory bandwidth probe");
  CLI11_PARSE(app, argc, argv);

  try {
    if (!copro::collectives::parseCollectiveKind(collective, o.kind)) {
      throw copro::Error(copro::ErrorCode::kInvalidArgument, "unknown collective '" + collective + "'");
    }
    auto t = copro::core::parseDataType(dtype);
    if (!t) throw copro::Error(copro::ErrorCode::kInvalidArgument, "unknown data type '" + dtype + "'");
    o.dtype = *t;
    auto ro = copro::core::parseReduceOp(op);
    if (!ro) throw copro::Error(copro::ErrorCode::kInvalidArgument, "unknown reduction '" + op + "'");
    o.op = *ro;
    o.minBytes = copro::core::parseBytes(minB);
    o.maxBytes = copro::core::parseBytes(maxB);
    if (o.stepFactor < 2) o.stepFactor = 2;
    if (o.ranks <= 0) throw copro::Error(copro::ErrorCode::kInvalidArgument, "--ranks must be > 0");
    if (o.transport != "inproc") {
      throw copro::Error(copro::ErrorCode::kUnsupported,
                         "--transport " + o.transport + " is not built yet; this build has: inproc");
    }

    copro::Config cfg = copro::Config::fromEnvironment();
    auto comms = copro::createInproc(o.ranks, cfg);
    Bench bench(o, std::move(comms));
    const int p = bench.ranks();
    const std::size_t esize = copro::core::dataTypeSize(o.dtype);

    std::vector<std::string> algos;
    if (o.algo == "all") {
      // Every algorithm that can run on this communicator (hier needs a node map: COPRO_NODE_MAP).
      copro::collectives::CollectiveArgs probe;
      probe.kind = o.kind;
      probe.nranks = p;
      probe.count = 1024;
      probe.dtype = o.dtype;
      probe.op = o.op;
      probe.nodeOfRank = copro::collectives::parseNodeMap(cfg.nodeMap, p);
      for (const auto* a : copro::collectives::algorithmsFor(o.kind)) {
        std::string why = a->unsupportedReason(probe);
        if (why.empty()) {
          algos.push_back(a->name);
        } else {
          std::printf("# skipping %s: %s\n", a->name.c_str(), why.c_str());
        }
      }
    } else if (!o.algo.empty()) {
      std::size_t pos = 0;
      while (pos <= o.algo.size()) {
        std::size_t c = o.algo.find(',', pos);
        if (c == std::string::npos) c = o.algo.size();
        if (c > pos) algos.push_back(o.algo.substr(pos, c - pos));
        pos = c + 1;
      }
    } else {
      algos.emplace_back();
    }

    const bool showBound = o.kind == CollectiveKind::kAllReduce && !o.noBound;
    double copyBw = 0;
    std::printf("# copro-perf %s: collective %s, %d ranks, transport %s, initiation %s\n", copro::version(),
                std::string(copro::collectives::collectiveName(o.kind)).c_str(), p, o.transport.c_str(),
                cfg.initiation.c_str());
    if (showBound) {
      copyBw = copro::bench::measureCopyBandwidth();
      std::printf("# memory bandwidth probe: copy with %u threads moves %.2f GB/s (read + write)\n",
                  std::max(1U, std::thread::hardware_concurrency()), copyBw / 1e9);
      std::printf(
          "# %%bound = (2 * ranks * size / probe) / out-of-place time: the fraction of the memory-traffic "
          "bound reached\n");
    }
    nlohmann::json rows = nlohmann::json::array();
    int exitCode = 0;
    for (const auto& algo : algos) {
      std::printf("#\n# algorithm: %s\n", algo.empty() ? "(planner)" : algo.c_str());
      std::printf("#%64s%s%34s\n", "out-of-place", showBound ? "        " : "", "in-place");
      std::printf("# %10s %12s %8s %6s %6s %10s %7s %7s %6s%s %10s %7s %7s %6s\n", "size", "count", "type", "redop",
                  "root", "time", "algbw", "busbw", "#wrong", showBound ? " %bound" : "", "time", "algbw", "busbw",
                  "#wrong");
      std::printf("# %10s %12s %8s %6s %6s %10s %7s %7s %6s%s %10s %7s %7s %6s\n", "(B)", "(elements)", "", "", "",
                  "(us)", "(GB/s)", "(GB/s)", "", showBound ? "       " : "", "(us)", "(GB/s)", "(GB/s)", "");
      for (std::uint64_t bytes = o.minBytes; bytes <= o.maxBytes; bytes *= o.stepFactor) {
        std::uint64_t count = countFor(o.kind, bytes, esize, p);
        std::uint64_t realBytes = (o.kind == CollectiveKind::kAllReduce || o.kind == CollectiveKind::kBroadcast ||
                                   o.kind == CollectiveKind::kReduce)
                                      ? count * esize
                                      : count * esize * static_cast<std::uint64_t>(p);
        auto [oop, ip] = bench.runSize(count, algo);
        double factor = busFactor(o.kind, p);
        char a[128];
        char b[128];
        std::string bound;
        double fraction = 0;
        if (showBound) {
          char tmp[16];
          if (oop.supported && oop.timeUs > 0) {
            fraction = copro::bench::allReduceMemoryBoundSec(realBytes, p, copyBw) / (oop.timeUs * 1e-6);
            std::snprintf(tmp, sizeof tmp, " %6.1f%%", 100.0 * fraction);
          } else {
            std::snprintf(tmp, sizeof tmp, " %7s", "N/A");
          }
          bound = tmp;
        }
        std::printf("  %10llu %12llu %8s %6s %6s %s%s %s\n", static_cast<unsigned long long>(realBytes),
                    static_cast<unsigned long long>(count), std::string(copro::core::dataTypeName(o.dtype)).c_str(),
                    hasOp(o.kind) ? std::string(copro::core::reduceOpName(o.op)).c_str() : "none",
                    isRooted(o.kind) ? std::to_string(o.root).c_str() : "-",
                    fmtCol(oop, static_cast<double>(realBytes), factor, a, sizeof a).c_str(), bound.c_str(),
                    fmtCol(ip, static_cast<double>(realBytes), factor, b, sizeof b).c_str());
        std::fflush(stdout);
        for (const auto* r : {&oop, &ip}) {
          if (!r->error.empty()) {
            std::fprintf(stderr, "copro-perf: %s\n", r->error.c_str());
            exitCode = 1;
          }
          if (r->wrong > 0) exitCode = 1;
        }
        auto row = [&](const Result& r) {
          nlohmann::json j;
          j["supported"] = r.supported;
          if (r.supported) {
            j["time_us"] = r.timeUs;
            j["algbw_GBps"] = static_cast<double>(realBytes) / (r.timeUs * 1e-6) / 1e9;
            j["busbw_GBps"] = j["algbw_GBps"].get<double>() * factor;
            j["wrong"] = r.wrong;
          }
          if (!r.error.empty()) j["error"] = r.error;
          return j;
        };
        nlohmann::json jr = {{"collective", copro::collectives::collectiveName(o.kind)},
                             {"algorithm", algo.empty() ? "planner" : algo},
                             {"ranks", p},
                             {"size", realBytes},
                             {"count", count},
                             {"type", copro::core::dataTypeName(o.dtype)},
                             {"redop", copro::core::reduceOpName(o.op)},
                             {"out_of_place", row(oop)},
                             {"in_place", row(ip)}};
        if (showBound) {
          jr["copy_bandwidth_GBps"] = copyBw / 1e9;
          jr["memory_bound_fraction"] = fraction;
        }
        rows.push_back(jr);
        if (bytes > o.maxBytes / o.stepFactor) break;
      }
    }
    if (!o.json.empty()) {
      std::ofstream f(o.json);
      if (!f) throw copro::Error(copro::ErrorCode::kSystemError, "cannot write " + o.json);
      f << nlohmann::json{{"tool", "copro-perf"}, {"version", copro::version()}, {"rows", rows}}.dump(1) << "\n";
    }
    return exitCode;
  } catch (const copro::Error& e) {
    std::fprintf(stderr, "copro-perf: %s\n", e.what());
    return 1;
  }
}
