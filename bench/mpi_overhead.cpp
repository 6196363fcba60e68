// copro-mpi-overhead: ring all-reduce written directly in MPI, two-sided and one-sided, next to copro's
// `mpi` backend (with and without pre-posted receives) and `ucx` backend running the same ring algorithm.
// The raw loops are the yardstick for the overhead of the Program executor (docs/mpi.md).
//
//   mpirun -np 4 --oversubscribe build/bench/copro-mpi-overhead [min_bytes max_bytes iterations [mpi-only]]
//
// Per size it prints the median time per call (max over ranks) of each variant and the overhead of copro's
// `mpi` backend over the raw two-sided loop, with pre-posted receives (the default) and without them (the
// path every put took before). Results are checked (small integers, exact in float). The last column
// counts, on rank 0 over all calls of the pre-posting communicator, the data receives posted at entry,
// those posted when the header came, and the planned messages already waiting when the call was entered.
#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "copro/copro_mpi.hpp"
#include "copro/transport/mpi.hpp"

namespace {

int gRank = 0;
int gSize = 1;

void sumInto(float* dst, const float* src, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] += src[i];
}

/// Ring all-reduce, two-sided: reduce-scatter then all-gather, one message of n/p per step.
void ringTwoSided(const float* in, float* out, std::size_t count, std::vector<float>& tmp) {
  const int p = gSize;
  const std::size_t blk = count / static_cast<std::size_t>(p);
  const int next = (gRank + 1) % p;
  const int prev = (gRank + p - 1) % p;
  std::memcpy(out, in, count * sizeof(float));
  tmp.resize(blk);
  for (int s = 0; s < p - 1; ++s) {
    const int sendBlk = (gRank - s + p) % p;
    const int recvBlk = (gRank - s - 1 + p) % p;
    MPI_Request r[2];
    MPI_Irecv(tmp.data(), static_cast<int>(blk), MPI_FLOAT, prev, 1, MPI_COMM_WORLD, &r[0]);
    MPI_Isend(out + static_cast<std::size_t>(sendBlk) * blk, static_cast<int>(blk), MPI_FLOAT, next, 1, MPI_COMM_WORLD,
              &r[1]);
    MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
    sumInto(out + static_cast<std::size_t>(recvBlk) * blk, tmp.data(), blk);
  }
  for (int s = 0; s < p - 1; ++s) {
    const int sendBlk = (gRank + 1 - s + p) % p;
    const int recvBlk = (gRank - s + p) % p;
    MPI_Request r[2];
    MPI_Irecv(out + static_cast<std::size_t>(recvBlk) * blk, static_cast<int>(blk), MPI_FLOAT, prev, 2, MPI_COMM_WORLD,
              &r[0]);
    MPI_Isend(out + static_cast<std::size_t>(sendBlk) * blk, static_cast<int>(blk), MPI_FLOAT, next, 2, MPI_COMM_WORLD,
              &r[1]);
    MPI_Waitall(2, r, MPI_STATUSES_IGNORE);
  }
}

/// Ring all-reduce, one-sided (passive target): MPI_Put of each block into the next rank's window, then
/// MPI_Win_flush and an MPI_Accumulate(+1) on its counter; the receiver polls its own counter. Two halves
/// of the window alternate between calls, so no credits are needed.
struct OneSided {
  MPI_Win data = MPI_WIN_NULL;
  MPI_Win flags = MPI_WIN_NULL;
  float* base = nullptr;
  std::int64_t* counter = nullptr;
  std::size_t count = 0;
  std::int64_t expected = 0;
  int iteration = 0;

  explicit OneSided(std::size_t n) : count(n) {
    MPI_Win_allocate(static_cast<MPI_Aint>(2 * n * sizeof(float)), sizeof(float), MPI_INFO_NULL, MPI_COMM_WORLD, &base,
                     &data);
    MPI_Win_allocate(sizeof(std::int64_t), sizeof(std::int64_t), MPI_INFO_NULL, MPI_COMM_WORLD, &counter, &flags);
    *counter = 0;
    MPI_Win_lock_all(0, data);
    MPI_Win_lock_all(0, flags);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  ~OneSided() {
    MPI_Win_unlock_all(flags);
    MPI_Win_unlock_all(data);
    MPI_Win_free(&flags);
    MPI_Win_free(&data);
  }
  void signalNext(int next) {
    const std::int64_t one = 1;
    MPI_Win_flush(next, data);
    MPI_Accumulate(&one, 1, MPI_INT64_T, next, 0, 1, MPI_INT64_T, MPI_SUM, flags);
    MPI_Win_flush(next, flags);
  }
  void waitCounter() {
    ++expected;
    while (true) {
      std::int64_t v = 0;
      const std::int64_t zero = 0;
      MPI_Fetch_and_op(&zero, &v, MPI_INT64_T, gRank, 0, MPI_NO_OP, flags);
      MPI_Win_flush(gRank, flags);
      if (v >= expected) return;
    }
  }
  void run(const float* in, float* out) {
    const int p = gSize;
    const std::size_t blk = count / static_cast<std::size_t>(p);
    const int next = (gRank + 1) % p;
    const std::size_t half = static_cast<std::size_t>(iteration++ % 2) * count;
    std::memcpy(out, in, count * sizeof(float));
    for (int s = 0; s < p - 1; ++s) {
      const int sendBlk = (gRank - s + p) % p;
      const int recvBlk = (gRank - s - 1 + p) % p;
      MPI_Put(out + static_cast<std::size_t>(sendBlk) * blk, static_cast<int>(blk), MPI_FLOAT, next,
              static_cast<MPI_Aint>(half + static_cast<std::size_t>(sendBlk) * blk), static_cast<int>(blk), MPI_FLOAT,
              data);
      signalNext(next);
      waitCounter();
      MPI_Win_sync(data);
      sumInto(out + static_cast<std::size_t>(recvBlk) * blk, base + half + static_cast<std::size_t>(recvBlk) * blk,
              blk);
    }
    for (int s = 0; s < p - 1; ++s) {
      const int sendBlk = (gRank + 1 - s + p) % p;
      const int recvBlk = (gRank - s + p) % p;
      MPI_Put(out + static_cast<std::size_t>(sendBlk) * blk, static_cast<int>(blk), MPI_FLOAT, next,
              static_cast<MPI_Aint>(half + static_cast<std::size_t>(sendBlk) * blk), static_cast<int>(blk), MPI_FLOAT,
              data);
      signalNext(next);
      waitCounter();
      MPI_Win_sync(data);
      std::memcpy(out + static_cast<std::size_t>(recvBlk) * blk, base + half + static_cast<std::size_t>(recvBlk) * blk,
                  blk * sizeof(float));
    }
  }
};

/// Seconds of one call, max over ranks.
double timeOnce(const std::function<void()>& call) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  call();
  double t = MPI_Wtime() - t0;
  double worst = 0;
  MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

bool check(const std::vector<float>& out) {
  for (std::size_t i = 0; i < out.size(); ++i) {
    float ref = 0;
    for (int r = 0; r < gSize; ++r) ref += static_cast<float>((r + i) % 7);
    if (out[i] != ref) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int provided = 0;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &gRank);
  MPI_Comm_size(MPI_COMM_WORLD, &gSize);
  const std::size_t minBytes = argc > 1 ? std::strtoull(argv[1], nullptr, 0) : (std::size_t{1} << 20);
  const std::size_t maxBytes = argc > 2 ? std::strtoull(argv[2], nullptr, 0) : (std::size_t{32} << 20);
  const int iters = argc > 3 ? std::atoi(argv[3]) : 10;
  const bool withUcx = !(argc > 4 && std::string(argv[4]) == "mpi-only");
  {
    copro::Config config = copro::Config::fromEnvironment();
    copro::Communicator mpiComm = copro::createFromMpi(MPI_COMM_WORLD, "mpi", config);
    copro::transport::setMpiPrepostedReceives(false);
    copro::Communicator lateComm = copro::createFromMpi(MPI_COMM_WORLD, "mpi", config);
    copro::transport::setMpiPrepostedReceives(true);
    copro::Communicator ucxComm;
    if (withUcx) ucxComm = copro::createFromMpi(MPI_COMM_WORLD, "ucx", config);
    if (gRank == 0) {
      std::printf("# ring all-reduce, float32 sum, %d ranks, median of %d calls (max over ranks), ms per call\n", gSize,
                  iters);
      std::printf("# %12s %12s %12s %12s %14s %12s %10s %14s %16s\n", "bytes", "mpi-2sided", "mpi-1sided", "copro-mpi",
                  "copro-mpi-late", "copro-ucx", "overhead", "overhead-late", "pre/hdr/waiting");
    }
    for (std::size_t bytes = minBytes; bytes <= maxBytes; bytes *= 2) {
      const std::size_t count =
          bytes / sizeof(float) / static_cast<std::size_t>(gSize) * static_cast<std::size_t>(gSize);
      std::vector<float> in(count);
      std::vector<float> out(count);
      std::vector<float> tmp;
      for (std::size_t i = 0; i < count; ++i) in[i] = static_cast<float>((gRank + i) % 7);
      auto coproCall = [&](copro::Communicator& c) {
        copro::Status st =
            c.allReduce(in.data(), out.data(), count, copro::DataType::kFloat32, copro::ReduceOp::kSum, {"ring"})
                .wait();
        if (!st.ok()) {
          std::fprintf(stderr, "rank %d: %s\n", gRank, st.toString().c_str());
          MPI_Abort(MPI_COMM_WORLD, 1);
        }
      };
      // How the data of the pre-posting communicator's puts met their receives on this rank.
      copro::transport::MpiReceiveCounters met;
      auto countedCall = [&](copro::Communicator& c) {
        const copro::transport::MpiReceiveCounters a = copro::transport::mpiReceiveCounters();
        coproCall(c);
        const copro::transport::MpiReceiveCounters b = copro::transport::mpiReceiveCounters();
        met.preposted += b.preposted - a.preposted;
        met.postedAtHeader += b.postedAtHeader - a.postedAtHeader;
        met.foundWaiting += b.foundWaiting - a.foundWaiting;
      };
      OneSided os(count);
      std::vector<std::function<void()>> variants = {[&] { ringTwoSided(in.data(), out.data(), count, tmp); },
                                                     [&] { os.run(in.data(), out.data()); },
                                                     [&] { countedCall(mpiComm); }, [&] { coproCall(lateComm); }};
      if (withUcx) variants.emplace_back([&] { coproCall(ucxComm); });
      // Variants take turns call by call (an untimed call, then the timed one), so that drifting load on a
      // shared machine hits them alike; the median of the timed calls is reported.
      const int warm = 2;
      std::vector<std::vector<double>> times(variants.size());
      bool ok = true;
      for (int it = 0; it < warm + iters; ++it) {
        for (std::size_t i = 0; i < variants.size(); ++i) {
          // copro-mpi and copro-mpi-late swap places every other round, so neither always follows the raw loops.
          const std::size_t v = (it % 2 == 1 && (i == 2 || i == 3)) ? 5 - i : i;
          // The timed call is the variant's second in a row: the first copro call after the raw loops took
          // milliseconds more at 2 ranks, whichever communicator it was on (docs/mpi.md).
          variants[v]();
          std::fill(out.begin(), out.end(), -1.0F);
          const double t = timeOnce(variants[v]);
          if (it >= warm) times[v].push_back(t);
          ok = ok && check(out);
        }
      }
      const double two = median(times[0]);
      const double one = median(times[1]);
      const double cm = median(times[2]);
      const double late = median(times[3]);
      const double cu = withUcx ? median(times[4]) : 0;
      int allOk = ok ? 1 : 0;
      int good = 0;
      MPI_Allreduce(&allOk, &good, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
      if (gRank == 0) {
        std::printf("  %12zu %12.3f %12.3f %12.3f %14.3f %12.3f %9.1f%% %13.1f%% %6llu/%llu/%llu%s\n",
                    count * sizeof(float), two * 1e3, one * 1e3, cm * 1e3, late * 1e3, cu * 1e3, (cm / two - 1) * 100,
                    (late / two - 1) * 100, static_cast<unsigned long long>(met.preposted),
                    static_cast<unsigned long long>(met.postedAtHeader),
                    static_cast<unsigned long long>(met.foundWaiting), good != 0 ? "" : "  WRONG RESULT");
      }
    }
  }
  MPI_Finalize();
  return 0;
}
