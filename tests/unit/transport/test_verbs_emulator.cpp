// The emulated verbs provider (COPRO_VERBS_PROVIDER=emu, docs/verbs.md) through the same entry-point table
// the verbs transport uses: a loopback pair of RC QPs in this process. RDMA WRITE, READ, FETCH_AND_ADD and
// WRITE WITH IMMEDIATE move and signal the right bytes; a missing receive, a wrong rkey and a region
// without remote-write access fail with the verbs status a real HCA reports, and later requests of the pair
// complete flushed; port attributes and the configuration errors are what docs/verbs.md says.
#include <gtest/gtest.h>

#if COPRO_HAVE_VERBS

#include <sys/mman.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "../../../transport/src/verbs/verbs_api.hpp"
#include "../../../transport/src/verbs/verbs_device.hpp"
#include "copro/core/status.hpp"

namespace {

using copro::transport::verbs::VerbsApi;

const VerbsApi& emu() {
  copro::core::Config config;
  config.verbsProvider = "emu";
  const VerbsApi* api = nullptr;
  EXPECT_TRUE(copro::transport::verbs::loadVerbsApi(config, api).ok());
  return *api;
}

/// Two connected RC QPs (a -> b) on one emulated device, and two registered buffers.
class EmuLoopback : public ::testing::Test {
 protected:
  void SetUp() override {
    int n = 0;
    ibv_device** list = api_.getDeviceList(&n);
    ASSERT_EQ(n, 1);
    ctx_ = api_.openDevice(list[0]);
    api_.freeDeviceList(list);
    ASSERT_NE(ctx_, nullptr);
    pd_ = api_.allocPd(ctx_);
    cq_ = api_.createCq(ctx_, 256, nullptr, nullptr, 0);
    a_ = makeQp();
    b_ = makeQp();
    connect(a_, b_->qp_num);
    connect(b_, a_->qp_num);
    src_.assign(4096, 0);
    dst_.assign(4096, 0);
    srcMr_ = reg(src_, IBV_ACCESS_LOCAL_WRITE);
  }
  void TearDown() override {
    for (ibv_mr* m : mrs_) api_.deregMr(m);
    api_.destroyQp(a_);
    if (b_ != nullptr) api_.destroyQp(b_);
    api_.destroyCq(cq_);
    api_.deallocPd(pd_);
    api_.closeDevice(ctx_);
  }

  ibv_qp* makeQp(std::uint32_t depth = 64) {
    ibv_qp_init_attr a{};
    a.send_cq = cq_;
    a.recv_cq = cq_;
    a.qp_type = IBV_QPT_RC;
    a.cap.max_send_wr = depth;
    a.cap.max_recv_wr = 4;
    a.cap.max_send_sge = 1;
    a.cap.max_inline_data = 64;
    ibv_qp* qp = api_.createQp(pd_, &a);
    EXPECT_NE(qp, nullptr);
    ibv_qp_attr init{};
    init.qp_state = IBV_QPS_INIT;
    init.port_num = 1;
    init.qp_access_flags = IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC;
    EXPECT_EQ(api_.modifyQp(qp, &init, IBV_QP_STATE | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS), 0);
    return qp;
  }
  void connect(ibv_qp* qp, std::uint32_t remoteQpn) {
    ibv_qp_attr rtr{};
    rtr.qp_state = IBV_QPS_RTR;
    rtr.dest_qp_num = remoteQpn;
    rtr.ah_attr.is_global = 1;
    ASSERT_EQ(api_.queryGid(ctx_, 1, 0, &rtr.ah_attr.grh.dgid), 0);
    ASSERT_EQ(api_.modifyQp(qp, &rtr, IBV_QP_STATE | IBV_QP_AV | IBV_QP_DEST_QPN), 0);
    ibv_qp_attr rts{};
    rts.qp_state = IBV_QPS_RTS;
    ASSERT_EQ(api_.modifyQp(qp, &rts, IBV_QP_STATE), 0);
  }
  ibv_mr* reg(std::vector<std::uint8_t>& buf, int access) {
    ibv_mr* m = api_.regMr(pd_, buf.data(), buf.size(), access);
    EXPECT_NE(m, nullptr);
    mrs_.push_back(m);
    return m;
  }
  /// Posts one signalled request on a_ and returns its completion.
  ibv_wc run(ibv_wr_opcode op, void* local, std::uint32_t len, std::uint32_t lkey, std::uint64_t raddr,
             std::uint32_t rkey, std::uint64_t add = 0, std::uint32_t imm = 0) {
    ibv_sge sge{reinterpret_cast<std::uint64_t>(local), len, lkey};
    ibv_send_wr wr{};
    wr.wr_id = ++id_;
    wr.opcode = op;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = IBV_SEND_SIGNALED;
    wr.imm_data = imm;
    if (op == IBV_WR_ATOMIC_FETCH_AND_ADD) {
      wr.wr.atomic.remote_addr = raddr;
      wr.wr.atomic.rkey = rkey;
      wr.wr.atomic.compare_add = add;
    } else {
      wr.wr.rdma.remote_addr = raddr;
      wr.wr.rdma.rkey = rkey;
    }
    ibv_send_wr* bad = nullptr;
    EXPECT_EQ(api_.postSend(a_, &wr, &bad), 0);
    return waitFor(a_->qp_num);
  }
  ibv_wc waitFor(std::uint32_t qpNum) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < end) {
      ibv_wc wc{};
      while (api_.pollCq(cq_, 1, &wc) == 1) {
        if (wc.qp_num == qpNum) return wc;
        others_.push_back(wc);
      }
      std::this_thread::yield();
    }
    ADD_FAILURE() << "no completion within 10 s";
    return ibv_wc{};
  }

  const VerbsApi& api_ = emu();
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* a_ = nullptr;
  ibv_qp* b_ = nullptr;
  std::vector<std::uint8_t> src_, dst_;
  ibv_mr* srcMr_ = nullptr;
  std::vector<ibv_mr*> mrs_;
  std::vector<ibv_wc> others_;
  std::uint64_t id_ = 0;
};

TEST_F(EmuLoopback, WriteReadAndFetchAdd) {
  ibv_mr* dstMr =
      reg(dst_, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_ATOMIC);
  for (std::size_t i = 0; i < src_.size(); ++i) src_[i] = static_cast<std::uint8_t>(i * 7 + 1);
  ibv_wc wc = run(IBV_WR_RDMA_WRITE, src_.data(), 3000, srcMr_->lkey,
                  reinterpret_cast<std::uint64_t>(dst_.data() + 100), dstMr->rkey);
  ASSERT_EQ(wc.status, IBV_WC_SUCCESS) << api_.wcStatusStr(wc.status);
  EXPECT_EQ(wc.opcode, IBV_WC_RDMA_WRITE);
  EXPECT_EQ(std::memcmp(dst_.data() + 100, src_.data(), 3000), 0);
  EXPECT_EQ(dst_[99], 0);
  EXPECT_EQ(dst_[3100], 0);

  std::fill(src_.begin(), src_.end(), 0);
  wc = run(IBV_WR_RDMA_READ, src_.data(), 500, srcMr_->lkey, reinterpret_cast<std::uint64_t>(dst_.data() + 200),
           dstMr->rkey);
  ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
  EXPECT_EQ(std::memcmp(src_.data(), dst_.data() + 200, 500), 0);

  std::uint64_t word = 40;
  std::memcpy(dst_.data() + 3200, &word, 8);
  wc = run(IBV_WR_ATOMIC_FETCH_AND_ADD, src_.data(), 8, srcMr_->lkey,
           reinterpret_cast<std::uint64_t>(dst_.data() + 3200), dstMr->rkey, 2);
  ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
  std::uint64_t old = 0;
  std::memcpy(&old, src_.data(), 8);
  std::memcpy(&word, dst_.data() + 3200, 8);
  EXPECT_EQ(old, 40U);
  EXPECT_EQ(word, 42U);
}

TEST_F(EmuLoopback, WriteWithImmediateNeedsAPostedReceive) {
  ibv_mr* dstMr = reg(dst_, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  ibv_recv_wr rwr{};
  rwr.wr_id = 77;
  ibv_recv_wr* rbad = nullptr;
  ASSERT_EQ(api_.postRecv(b_, &rwr, &rbad), 0);
  ibv_wc wc = run(IBV_WR_RDMA_WRITE_WITH_IMM, src_.data(), 16, srcMr_->lkey,
                  reinterpret_cast<std::uint64_t>(dst_.data()), dstMr->rkey, 0, 0xabcd);
  ASSERT_EQ(wc.status, IBV_WC_SUCCESS);
  const ibv_wc recv = others_.empty() ? waitFor(b_->qp_num) : others_.front();
  EXPECT_EQ(recv.wr_id, 77U);
  EXPECT_EQ(recv.opcode, IBV_WC_RECV_RDMA_WITH_IMM);
  EXPECT_EQ(recv.imm_data, 0xabcdU);
  // No receive posted any more: receiver not ready.
  wc = run(IBV_WR_RDMA_WRITE_WITH_IMM, src_.data(), 16, srcMr_->lkey, reinterpret_cast<std::uint64_t>(dst_.data()),
           dstMr->rkey, 0, 1);
  EXPECT_EQ(wc.status, IBV_WC_RNR_RETRY_EXC_ERR) << api_.wcStatusStr(wc.status);
}

TEST_F(EmuLoopback, BadKeyFailsAndFlushesLaterRequests) {
  ibv_mr* dstMr = reg(dst_, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  ibv_wc wc = run(IBV_WR_RDMA_WRITE, src_.data(), 64, srcMr_->lkey, reinterpret_cast<std::uint64_t>(dst_.data()),
                  dstMr->rkey + 1000);
  EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_STREQ(api_.wcStatusStr(wc.status), "remote access error");
  wc = run(IBV_WR_RDMA_WRITE, src_.data(), 64, srcMr_->lkey, reinterpret_cast<std::uint64_t>(dst_.data()), dstMr->rkey);
  EXPECT_EQ(wc.status, IBV_WC_WR_FLUSH_ERR);
}

TEST_F(EmuLoopback, AccessFlagsAndBoundsAreChecked) {
  ibv_mr* readOnly = reg(dst_, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_READ);
  ibv_wc wc = run(IBV_WR_RDMA_WRITE, src_.data(), 64, srcMr_->lkey, reinterpret_cast<std::uint64_t>(dst_.data()),
                  readOnly->rkey);
  EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR);
}

TEST_F(EmuLoopback, WriteBeyondTheRegionIsARemoteAccessError) {
  ibv_mr* dstMr = reg(dst_, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  ibv_wc wc = run(IBV_WR_RDMA_WRITE, src_.data(), 64, srcMr_->lkey,
                  reinterpret_cast<std::uint64_t>(dst_.data() + dst_.size() - 32), dstMr->rkey);
  EXPECT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR);
  EXPECT_EQ(dst_[dst_.size() - 1], 0);
}

/// Posts `count` requests on `qp` at the 8-byte words of `page`, only the last one signalled:
/// FETCH_AND_ADDs and inline 8-byte writes, alternately.
void postBurst(const VerbsApi& api, ibv_qp* qp, std::uint64_t* page, std::uint32_t rkey, std::uint8_t* sink,
               std::uint32_t lkey, int count) {
  for (int i = 0; i < count; ++i) {
    const bool add = i % 2 == 0;
    std::uint64_t one = 1;
    ibv_sge sge{add ? reinterpret_cast<std::uint64_t>(sink) : reinterpret_cast<std::uint64_t>(&one), 8, add ? lkey : 0};
    ibv_send_wr wr{};
    wr.wr_id = static_cast<std::uint64_t>(i + 1);
    wr.opcode = add ? IBV_WR_ATOMIC_FETCH_AND_ADD : IBV_WR_RDMA_WRITE;
    wr.sg_list = &sge;
    wr.num_sge = 1;
    wr.send_flags = (add ? 0 : IBV_SEND_INLINE) | (i + 1 == count ? IBV_SEND_SIGNALED : 0);
    const auto addr = reinterpret_cast<std::uint64_t>(page + i % 64);
    if (add) {
      wr.wr.atomic.remote_addr = addr;
      wr.wr.atomic.rkey = rkey;
      wr.wr.atomic.compare_add = 1;
    } else {
      wr.wr.rdma.remote_addr = addr;
      wr.wr.rdma.rkey = rkey;
    }
    ibv_send_wr* bad = nullptr;
    ASSERT_EQ(api.postSend(qp, &wr, &bad), 0);
  }
}

// ibv_dereg_mr returns once the NIC no longer touches the region, so the memory may be unmapped at once:
// the emulated NIC used to check the key, drop its lock and then add to (or copy into) the word, so a
// region deregistered and unmapped in between took a SIGSEGV in the NIC thread (a teardown while a peer
// still wrote). Here the requests are executing when the region goes: the burst either completed or
// fails with a remote access error, and nothing touches the unmapped page.
TEST_F(EmuLoopback, DeregisteringWhileRequestsExecuteIsSafe) {
  for (int round = 0; round < 50; ++round) {
    ibv_qp* a = makeQp(512);
    ibv_qp* b = makeQp(512);
    connect(a, b->qp_num);
    connect(b, a->qp_num);
    void* m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    auto* page = static_cast<std::uint64_t*>(m);
    ibv_mr* mr =
        api_.regMr(pd_, page, 4096, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_ATOMIC);
    ASSERT_NE(mr, nullptr);
    postBurst(api_, a, page, mr->rkey, src_.data(), srcMr_->lkey, 500);
    // Unmap while the NIC thread is in the middle of the burst.
    while (std::atomic_ref<std::uint64_t>(page[0]).load() == 0) std::this_thread::yield();
    ASSERT_EQ(api_.deregMr(mr), 0);
    ASSERT_EQ(munmap(m, 4096), 0);
    const ibv_wc wc = waitFor(a->qp_num);
    EXPECT_TRUE(wc.status == IBV_WC_SUCCESS || wc.status == IBV_WC_REM_ACCESS_ERR || wc.status == IBV_WC_WR_FLUSH_ERR)
        << api_.wcStatusStr(wc.status);
    api_.destroyQp(a);
    api_.destroyQp(b);
    others_.clear();
  }
}

// As ibv_destroy_qp: once it returns, no asynchronous event names the QP (the transport's event thread
// reads the QP number through the pointer). A QP whose peer's key was wrong got an access-error event;
// destroyed before the event was read, the event goes with it.
TEST_F(EmuLoopback, DestroyedQpLeavesNoEventBehind) {
  ibv_mr* dstMr = reg(dst_, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
  const ibv_wc wc = run(IBV_WR_RDMA_WRITE, src_.data(), 64, srcMr_->lkey, reinterpret_cast<std::uint64_t>(dst_.data()),
                        dstMr->rkey + 1000);
  ASSERT_EQ(wc.status, IBV_WC_REM_ACCESS_ERR);
  ibv_qp* gone = b_;
  api_.destroyQp(b_);
  b_ = nullptr;
  ibv_async_event ev{};
  int events = 0;
  while (api_.getAsyncEvent(ctx_, &ev) == 0) {
    ++events;
    EXPECT_NE(ev.element.qp, gone) << "an event names a destroyed QP: " << api_.eventTypeStr(ev.event_type);
    api_.ackAsyncEvent(&ev);
  }
  EXPECT_LE(events, 1);  // a_'s own error event, if any
}

TEST(EmuDevice, PortAttributesAndConfiguration) {
  const VerbsApi& api = emu();
  const auto ports = copro::transport::verbs::listPorts(api);
  ASSERT_EQ(ports.size(), 1U);
  EXPECT_EQ(ports[0].device, "copro_emu0");
  EXPECT_EQ(ports[0].state, "ACTIVE");
  EXPECT_EQ(ports[0].gbps, 200.0);
  EXPECT_EQ(ports[0].mtu, 4096);
  copro::core::Config config;
  EXPECT_THROW(config.set("COPRO_VERBS_PROVIDER", "mlx"), copro::core::Error);
  EXPECT_THROW(config.set("COPRO_VERBS_EMU_FAULT", "qp-error"), copro::core::Error);
  EXPECT_THROW(config.set("COPRO_IB_GID_INDEX", "1.5"), copro::core::Error);
  config.set("COPRO_VERBS_EMU_FAULT", "die@3");
  EXPECT_EQ(config.verbsEmuFault, "die@3");
}

}  // namespace

#endif  // COPRO_HAVE_VERBS
