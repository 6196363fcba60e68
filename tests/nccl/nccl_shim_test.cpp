// libcopro_nccl in one process (label unit): NCCL's ABI values as nccl.h declares them, ncclCommInitAll's
// ranks over copro's inproc backend driven from one thread inside groups (every datatype and operator,
// a send/recv ring), and the argument checks that must return ncclInvalidArgument or ncclInvalidUsage with
// a message instead of crashing or hanging.
#include <gtest/gtest.h>
#include <nccl.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr int kRanks = 4;

TEST(NcclAbi, EnumValuesMatchNccl) {
  EXPECT_EQ(ncclSuccess, 0);
  EXPECT_EQ(ncclUnhandledCudaError, 1);
  EXPECT_EQ(ncclSystemError, 2);
  EXPECT_EQ(ncclInternalError, 3);
  EXPECT_EQ(ncclInvalidArgument, 4);
  EXPECT_EQ(ncclInvalidUsage, 5);
  EXPECT_EQ(ncclRemoteError, 6);
  EXPECT_EQ(ncclInProgress, 7);
  const int types[] = {ncclInt8,    ncclUint8,   ncclInt32,   ncclUint32,   ncclInt64,      ncclUint64,
                       ncclFloat16, ncclFloat32, ncclFloat64, ncclBfloat16, ncclFloat8e4m3, ncclFloat8e5m2};
  for (int i = 0; i < 12; ++i) EXPECT_EQ(types[i], i);
  EXPECT_EQ(ncclChar, ncclInt8);
  EXPECT_EQ(ncclInt, ncclInt32);
  EXPECT_EQ(ncclHalf, ncclFloat16);
  EXPECT_EQ(ncclFloat, ncclFloat32);
  EXPECT_EQ(ncclDouble, ncclFloat64);
  EXPECT_EQ(ncclNumTypes, 12);
  EXPECT_EQ(ncclSum, 0);
  EXPECT_EQ(ncclProd, 1);
  EXPECT_EQ(ncclMax, 2);
  EXPECT_EQ(ncclMin, 3);
  EXPECT_EQ(ncclAvg, 4);
  EXPECT_EQ(ncclNumOps, 5);
  EXPECT_EQ(static_cast<long>(ncclMaxRedOp), 0x7fffffffL);
  EXPECT_EQ(sizeof(ncclUniqueId), 128u);
  EXPECT_EQ(NCCL_SPLIT_NOCOLOR, -1);
}

TEST(NcclAbi, VersionEncodingAndConfigInitializer) {
  EXPECT_EQ(NCCL_VERSION(2, 28, 9), 22809);
  EXPECT_EQ(NCCL_VERSION(2, 8, 4), 2804);  // the old encoding up to 2.8
  int v = 0;
  ASSERT_EQ(ncclGetVersion(&v), ncclSuccess);
  EXPECT_EQ(v, NCCL_VERSION_CODE);
  EXPECT_EQ(v, NCCL_MAJOR * 10000 + NCCL_MINOR * 100 + NCCL_PATCH);
  EXPECT_EQ(ncclGetVersion(nullptr), ncclInvalidArgument);
  ncclConfig_t c = NCCL_CONFIG_INITIALIZER;
  EXPECT_EQ(c.size, sizeof(ncclConfig_t));
  EXPECT_EQ(c.magic, 0xcafebeefu);
  EXPECT_EQ(c.version, static_cast<unsigned>(NCCL_VERSION_CODE));
  EXPECT_EQ(c.blocking, INT_MIN);
  EXPECT_EQ(c.netName, nullptr);
  EXPECT_EQ(c.nvlinkCentricSched, INT_MIN);
}

TEST(NcclAbi, ErrorStringsAreDistinct) {
  std::vector<std::string> seen;
  for (int r = 0; r < ncclNumResults; ++r) {
    const char* s = ncclGetErrorString(static_cast<ncclResult_t>(r));
    ASSERT_NE(s, nullptr);
    for (const auto& t : seen) EXPECT_NE(t, s);
    seen.emplace_back(s);
  }
  EXPECT_NE(ncclGetErrorString(static_cast<ncclResult_t>(99)), nullptr);
}

/// The call's result, and its message must contain `needle`.
void expectError(ncclResult_t got, ncclResult_t want, const char* needle) {
  EXPECT_EQ(got, want) << ncclGetLastError(nullptr);
  EXPECT_NE(std::string(ncclGetLastError(nullptr)).find(needle), std::string::npos)
      << "message \"" << ncclGetLastError(nullptr) << "\" lacks \"" << needle << "\"";
}

/// kRanks communicators of ncclCommInitAll, destroyed at the end of the test.
class NcclInproc : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(ncclCommInitAll(comms_, kRanks, nullptr), ncclSuccess) << ncclGetLastError(nullptr);
  }
  void TearDown() override {
    for (ncclComm_t c : comms_) EXPECT_EQ(ncclCommDestroy(c), ncclSuccess);
  }
  ncclComm_t comms_[kRanks] = {};
};

/// Every rank all-reduces one element of `bytes` bytes from `in[rank]`; returns rank 0's result bytes.
std::vector<unsigned char> allReduceOne(ncclComm_t* comms, ncclDataType_t t, ncclRedOp_t op, std::size_t bytes,
                                        const std::vector<std::vector<unsigned char>>& in) {
  std::vector<std::vector<unsigned char>> out(kRanks, std::vector<unsigned char>(bytes));
  EXPECT_EQ(ncclGroupStart(), ncclSuccess);
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(ncclAllReduce(in[r].data(), out[r].data(), 1, t, op, comms[r], nullptr), ncclSuccess)
        << ncclGetLastError(nullptr);
  }
  EXPECT_EQ(ncclGroupEnd(), ncclSuccess) << ncclGetLastError(nullptr);
  for (int r = 1; r < kRanks; ++r) EXPECT_EQ(out[r], out[0]);
  return out[0];
}

template <typename T>
std::vector<unsigned char> bytesOf(T v) {
  std::vector<unsigned char> b(sizeof(T));
  std::memcpy(b.data(), &v, sizeof(T));
  return b;
}

template <typename T>
void expectSum(ncclComm_t* comms, ncclDataType_t t) {
  std::vector<std::vector<unsigned char>> in;
  for (int r = 0; r < kRanks; ++r) in.push_back(bytesOf(static_cast<T>(r + 1)));
  EXPECT_EQ(allReduceOne(comms, t, ncclSum, sizeof(T), in), bytesOf(static_cast<T>(10))) << "datatype " << t;
}

TEST_F(NcclInproc, EveryDatatypeSumsInOneThreadGroup) {
  expectSum<std::int8_t>(comms_, ncclInt8);
  expectSum<std::uint8_t>(comms_, ncclUint8);
  expectSum<std::int32_t>(comms_, ncclInt32);
  expectSum<std::uint32_t>(comms_, ncclUint32);
  expectSum<std::int64_t>(comms_, ncclInt64);
  expectSum<std::uint64_t>(comms_, ncclUint64);
  expectSum<float>(comms_, ncclFloat32);
  expectSum<double>(comms_, ncclFloat64);
  // Every rank contributes 1.0; the sum is 4.0, exact in each format: IEEE half, bfloat16, OCP FP8.
  struct Narrow {
    ncclDataType_t type;
    std::vector<unsigned char> one, four;
  };
  const Narrow narrow[] = {{ncclFloat16, {0x00, 0x3c}, {0x00, 0x44}},
                           {ncclBfloat16, {0x80, 0x3f}, {0x80, 0x40}},
                           {ncclFloat8e4m3, {0x38}, {0x48}},
                           {ncclFloat8e5m2, {0x3c}, {0x44}}};
  for (const Narrow& n : narrow) {
    std::vector<std::vector<unsigned char>> in(kRanks, n.one);
    EXPECT_EQ(allReduceOne(comms_, n.type, ncclSum, n.one.size(), in), n.four) << "datatype " << n.type;
  }
}

TEST_F(NcclInproc, EveryOperatorMapsToItsOwn) {
  std::vector<std::vector<unsigned char>> in;
  const std::int32_t v[kRanks] = {3, -7, 12, 2};
  for (std::int32_t x : v) in.push_back(bytesOf(x));
  EXPECT_EQ(allReduceOne(comms_, ncclInt32, ncclSum, 4, in), bytesOf<std::int32_t>(10));
  EXPECT_EQ(allReduceOne(comms_, ncclInt32, ncclProd, 4, in), bytesOf<std::int32_t>(-504));
  EXPECT_EQ(allReduceOne(comms_, ncclInt32, ncclMax, 4, in), bytesOf<std::int32_t>(12));
  EXPECT_EQ(allReduceOne(comms_, ncclInt32, ncclMin, 4, in), bytesOf<std::int32_t>(-7));
  std::vector<std::vector<unsigned char>> f;
  for (float x : {1.0f, 2.0f, 3.0f, 6.0f}) f.push_back(bytesOf(x));
  EXPECT_EQ(allReduceOne(comms_, ncclFloat, ncclAvg, 4, f), bytesOf(3.0f));
}

TEST_F(NcclInproc, SendRecvRingAcrossCommunicatorsOfOneGroup) {
  constexpr std::size_t kCount = 100000;
  std::vector<std::vector<float>> send(kRanks), recv(kRanks, std::vector<float>(kCount, -1.0f));
  for (int r = 0; r < kRanks; ++r) {
    send[r].resize(kCount);
    for (std::size_t i = 0; i < kCount; ++i) send[r][i] = static_cast<float>(r * 1000 + static_cast<int>(i % 1000));
  }
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  for (int r = 0; r < kRanks; ++r) {
    ASSERT_EQ(ncclSend(send[r].data(), kCount, ncclFloat, (r + 1) % kRanks, comms_[r], nullptr), ncclSuccess);
    ASSERT_EQ(ncclRecv(recv[r].data(), kCount, ncclFloat, (r + kRanks - 1) % kRanks, comms_[r], nullptr), ncclSuccess);
  }
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess) << ncclGetLastError(nullptr);
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(recv[r], send[(r + kRanks - 1) % kRanks]) << "rank " << r;
}

TEST_F(NcclInproc, CollectivesOfOneGroupAllFinishAtGroupEnd) {
  std::vector<std::vector<std::int64_t>> all(kRanks, std::vector<std::int64_t>(kRanks * 3, 0));
  std::vector<std::int64_t> mine[kRanks];
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  for (int r = 0; r < kRanks; ++r) {
    mine[r] = {r, r * 10, r * 100};
    ASSERT_EQ(ncclAllGather(mine[r].data(), all[r].data(), 3, ncclInt64, comms_[r], nullptr), ncclSuccess);
  }
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess) << ncclGetLastError(nullptr);
  for (int r = 0; r < kRanks; ++r) {
    for (int s = 0; s < kRanks; ++s) {
      EXPECT_EQ(all[r][s * 3 + 2], s * 100) << "rank " << r << " block " << s;
    }
  }
}

TEST_F(NcclInproc, DestroyInAnOpenGroupIsRefusedAbortDropsTheRankSends) {
  float x[2] = {1, 2};
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  ASSERT_EQ(ncclSend(x, 2, ncclFloat, 1, comms_[0], nullptr), ncclSuccess);
  expectError(ncclCommDestroy(comms_[0]), ncclInvalidUsage, "open group");
  EXPECT_EQ(ncclCommAbort(comms_[0]), ncclSuccess);
  comms_[0] = nullptr;
  EXPECT_EQ(ncclGroupEnd(), ncclSuccess) << ncclGetLastError(nullptr);  // nothing left to run
}

TEST_F(NcclInproc, QueriesAndRegistration) {
  for (int r = 0; r < kRanks; ++r) {
    int n = 0, me = -2, dev = 0;
    EXPECT_EQ(ncclCommCount(comms_[r], &n), ncclSuccess);
    EXPECT_EQ(ncclCommUserRank(comms_[r], &me), ncclSuccess);
    EXPECT_EQ(ncclCommCuDevice(comms_[r], &dev), ncclSuccess);
    EXPECT_EQ(n, kRanks);
    EXPECT_EQ(me, r);
    EXPECT_EQ(dev, -1);
    ncclResult_t async = ncclInternalError;
    EXPECT_EQ(ncclCommGetAsyncError(comms_[r], &async), ncclSuccess);
    EXPECT_EQ(async, ncclSuccess);
  }
  std::vector<char> buf(4096);
  void* handle = nullptr;
  ASSERT_EQ(ncclCommRegister(comms_[0], buf.data(), buf.size(), &handle), ncclSuccess) << ncclGetLastError(nullptr);
  EXPECT_NE(handle, nullptr);
  EXPECT_EQ(ncclCommDeregister(comms_[0], handle), ncclSuccess) << ncclGetLastError(nullptr);
  EXPECT_EQ(ncclCommRegister(comms_[0], buf.data(), buf.size(), nullptr), ncclInvalidArgument);
  EXPECT_EQ(ncclCommDeregister(comms_[0], nullptr), ncclInvalidArgument);
  expectError(ncclCommDeregister(comms_[0], handle), ncclInvalidArgument, "not from ncclCommRegister");
}

TEST_F(NcclInproc, BadArgumentsAreInvalidArgument) {
  float x[8] = {};
  ncclComm_t c = comms_[0];
  expectError(ncclAllReduce(x, x, 8, static_cast<ncclDataType_t>(12), ncclSum, c, nullptr), ncclInvalidArgument,
              "datatype 12");
  expectError(ncclAllReduce(x, x, 8, static_cast<ncclDataType_t>(-1), ncclSum, c, nullptr), ncclInvalidArgument,
              "datatype -1");
  expectError(ncclAllReduce(x, x, 8, ncclFloat, static_cast<ncclRedOp_t>(5), c, nullptr), ncclInvalidArgument,
              "reduction op 5");
  expectError(ncclAllReduce(x, x, 8, ncclFloat, ncclSum, nullptr, nullptr), ncclInvalidArgument, "comm is NULL");
  expectError(ncclAllReduce(x, nullptr, 8, ncclFloat, ncclSum, c, nullptr), ncclInvalidArgument, "NULL");
  expectError(ncclReduce(x, x, 8, ncclFloat, ncclSum, kRanks, c, nullptr), ncclInvalidArgument, "root 4");
  expectError(ncclBroadcast(x, x, 8, ncclFloat, -2, c, nullptr), ncclInvalidArgument, "root -2");
  expectError(ncclGather(x, x, 1, ncclFloat, 7, c, nullptr), ncclInvalidArgument, "root 7");
  expectError(ncclSend(x, 8, ncclFloat, kRanks, c, nullptr), ncclInvalidArgument, "peer 4");
  expectError(ncclRecv(x, 8, ncclFloat, -1, c, nullptr), ncclInvalidArgument, "peer -1");
  expectError(ncclSend(nullptr, 8, ncclFloat, 1, c, nullptr), ncclInvalidArgument, "buffer is NULL");
  expectError(ncclCommSplit(c, 0, 0, nullptr, nullptr), ncclInvalidArgument, "newcomm is NULL");
  ncclComm_t sub = nullptr;
  expectError(ncclCommSplit(c, -5, 0, &sub, nullptr), ncclInvalidArgument, "color -5");
  ncclConfig_t bad = NCCL_CONFIG_INITIALIZER;
  bad.magic = 0;
  expectError(ncclCommSplit(c, 0, 0, &sub, &bad), ncclInvalidArgument, "NCCL_CONFIG_INITIALIZER");
  ncclComm_t more[2];
  expectError(ncclCommInitAll(more, 0, nullptr), ncclInvalidArgument, "ndev 0");
  expectError(ncclCommInitAll(nullptr, 2, nullptr), ncclInvalidArgument, "comm is NULL");
  ncclUniqueId id{};
  expectError(ncclCommInitRank(more, 4, id, 4), ncclInvalidArgument, "rank 4");
  expectError(ncclGetUniqueId(nullptr), ncclInvalidArgument, "NULL");
  int n = 0;
  expectError(ncclCommCount(nullptr, &n), ncclInvalidArgument, "NULL");
  // No argument error left a group open or a request pending: a collective still works.
  std::int32_t one[kRanks] = {1, 1, 1, 1}, sum[kRanks] = {};
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  for (int r = 0; r < kRanks; ++r) ncclAllReduce(&one[r], &sum[r], 1, ncclInt32, ncclSum, comms_[r], nullptr);
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
  for (int r = 0; r < kRanks; ++r) EXPECT_EQ(sum[r], kRanks);
}

TEST_F(NcclInproc, UnsupportedCallsAreInvalidUsage) {
  ncclRedOp_t op = ncclSum;
  float scalar = 0.5f;
  expectError(ncclRedOpCreatePreMulSum(&op, &scalar, ncclFloat, ncclScalarHostImmediate, comms_[0]), ncclInvalidUsage,
              "not supported");
  expectError(ncclRedOpDestroy(static_cast<ncclRedOp_t>(7), comms_[0]), ncclInvalidArgument, "op 7");
  expectError(ncclGroupEnd(), ncclInvalidUsage, "no ncclGroupStart");
  ncclUniqueId id{};
  ncclComm_t other = nullptr;
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  expectError(ncclCommSplit(comms_[0], 0, 0, &other, nullptr), ncclInvalidUsage, "inside ncclGroupStart");
  EXPECT_EQ(other, nullptr);
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
  ncclComm_t shrunk = comms_[0];
  int exclude[1] = {3};
  expectError(ncclCommShrink(comms_[0], exclude, 1, &shrunk, nullptr, NCCL_SHRINK_DEFAULT), ncclInvalidUsage,
              "ncclCommShrink");
  EXPECT_EQ(shrunk, nullptr);
  expectError(ncclCommRevoke(comms_[0], NCCL_REVOKE_DEFAULT), ncclInvalidUsage, "ncclCommRevoke");
  ncclWindow_t win = nullptr;
  float w[4] = {};
  expectError(ncclCommWindowRegister(comms_[0], w, sizeof w, &win, NCCL_WIN_DEFAULT), ncclInvalidUsage, "windows");
  expectError(ncclCommWindowDeregister(comms_[0], win), ncclInvalidUsage, "windows");
  ncclSimInfo_t sim = NCCL_SIM_INFO_INITIALIZER;
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  expectError(ncclGroupSimulateEnd(&sim), ncclInvalidUsage, "ncclGroupSimulateEnd");
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess);
  expectError(ncclCommInitRankScalable(&other, 2, 0, 0, &id, nullptr), ncclInvalidArgument, "nId");
  // A finalized communicator takes no more calls; destroying it is still fine (TearDown).
  ASSERT_EQ(ncclCommFinalize(comms_[3]), ncclSuccess);
  float x = 0;
  expectError(ncclAllReduce(&x, &x, 1, ncclFloat, ncclSum, comms_[3], nullptr), ncclInvalidUsage, "finalized");
  EXPECT_EQ(ncclCommDestroy(nullptr), ncclSuccess);
  EXPECT_EQ(ncclCommAbort(nullptr), ncclSuccess);
}

TEST(NcclGroupInit, InitRankInsideAGroupCreatesTheRanksAtGroupEnd) {
  // As nccl-tests does with several GPUs per process: every rank of this process joins inside one group.
  ncclUniqueId id;
  ASSERT_EQ(ncclGetUniqueId(&id), ncclSuccess) << ncclGetLastError(nullptr);
  ncclComm_t comms[2] = {};
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  for (int r = 0; r < 2; ++r) ASSERT_EQ(ncclCommInitRank(&comms[r], 2, id, r), ncclSuccess);
  EXPECT_EQ(comms[0], nullptr);  // not before ncclGroupEnd
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess) << ncclGetLastError(nullptr);
  ASSERT_NE(comms[0], nullptr);
  ASSERT_NE(comms[1], nullptr);
  double in[2][3] = {{1, 2, 3}, {4, 5, 6}}, out[2][3] = {};
  ASSERT_EQ(ncclGroupStart(), ncclSuccess);
  for (int r = 0; r < 2; ++r) {
    int me = -1;
    ncclCommUserRank(comms[r], &me);
    EXPECT_EQ(me, r);
    ASSERT_EQ(ncclAllReduce(in[r], out[r], 3, ncclDouble, ncclSum, comms[r], nullptr), ncclSuccess);
  }
  ASSERT_EQ(ncclGroupEnd(), ncclSuccess) << ncclGetLastError(nullptr);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(out[r][0], 5.0);
    EXPECT_EQ(out[r][2], 9.0);
    EXPECT_EQ(ncclCommDestroy(comms[r]), ncclSuccess);
  }
}

TEST(NcclHostMemory, MemAllocIsPageAlignedHostMemory) {
  void* p = nullptr;
  ASSERT_EQ(ncclMemAlloc(&p, 1 << 20), ncclSuccess);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % NCCL_WIN_REQUIRED_ALIGNMENT, 0u);
  std::memset(p, 1, 1 << 20);
  EXPECT_EQ(ncclMemFree(p), ncclSuccess);
  EXPECT_EQ(ncclMemAlloc(nullptr, 16), ncclInvalidArgument);
}

TEST(NcclInprocSplit, SplitByParityAndNoColor) {
  ncclComm_t comms[kRanks] = {};
  ASSERT_EQ(ncclCommInitAll(comms, kRanks, nullptr), ncclSuccess) << ncclGetLastError(nullptr);
  // A split is collective: the ranks of one process need one thread each.
  ncclComm_t subs[kRanks] = {};
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      const int color = r == 3 ? NCCL_SPLIT_NOCOLOR : r % 2;
      EXPECT_EQ(ncclCommSplit(comms[r], color, -r, &subs[r], nullptr), ncclSuccess) << ncclGetLastError(nullptr);
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(subs[3], nullptr);
  int n = 0, me = 0;
  ASSERT_NE(subs[0], nullptr);
  ncclCommCount(subs[0], &n);
  ncclCommUserRank(subs[0], &me);
  EXPECT_EQ(n, 2);
  EXPECT_EQ(me, 1);  // keys -0 and -2: rank 2 comes first
  ncclCommCount(subs[1], &n);
  EXPECT_EQ(n, 1);
  for (ncclComm_t s : subs) EXPECT_EQ(ncclCommDestroy(s), ncclSuccess);
  for (int r = 0; r < kRanks - 1; ++r) EXPECT_EQ(ncclCommDestroy(comms[r]), ncclSuccess);
  EXPECT_EQ(ncclCommAbort(comms[kRanks - 1]), ncclSuccess);  // aborts and frees
}

}  // namespace
