#pragma once
/// The table of libibverbs entry points the `verbs` transport calls (docs/verbs.md). It is filled at run
/// time, never linked: by dlopen("libibverbs.so.1") and dlsym (as NCCL does), so that copro loads and runs
/// on machines without rdma-core, or by the in-tree emulated provider (emu_provider.hpp) when
/// COPRO_VERBS_PROVIDER=emu. The transport uses the real <infiniband/verbs.h> types either way; the
/// functions that verbs.h defines inline (post_send, post_recv, poll_cq) are wrapped here so that both
/// providers look alike to the transport.
#include <infiniband/verbs.h>

#include <memory>
#include <string>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"

namespace copro::transport::verbs {

struct VerbsApi {
  std::string provider;  ///< "libibverbs.so.1" or "emu"
  bool emulated = false;

  ibv_device** (*getDeviceList)(int* num) = nullptr;
  void (*freeDeviceList)(ibv_device** list) = nullptr;
  const char* (*getDeviceName)(ibv_device* device) = nullptr;
  ibv_context* (*openDevice)(ibv_device* device) = nullptr;
  int (*closeDevice)(ibv_context* context) = nullptr;
  int (*queryDevice)(ibv_context* context, ibv_device_attr* attr) = nullptr;
  int (*queryPort)(ibv_context* context, std::uint8_t port, ibv_port_attr* attr) = nullptr;
  int (*queryGid)(ibv_context* context, std::uint8_t port, int index, ibv_gid* gid) = nullptr;
  ibv_pd* (*allocPd)(ibv_context* context) = nullptr;
  int (*deallocPd)(ibv_pd* pd) = nullptr;
  ibv_mr* (*regMr)(ibv_pd* pd, void* addr, std::size_t length, int access) = nullptr;
  int (*deregMr)(ibv_mr* mr) = nullptr;
  ibv_cq* (*createCq)(ibv_context* context, int cqe, void* cqContext, ibv_comp_channel* channel,
                      int compVector) = nullptr;
  int (*destroyCq)(ibv_cq* cq) = nullptr;
  ibv_qp* (*createQp)(ibv_pd* pd, ibv_qp_init_attr* attr) = nullptr;
  int (*modifyQp)(ibv_qp* qp, ibv_qp_attr* attr, int mask) = nullptr;
  int (*destroyQp)(ibv_qp* qp) = nullptr;
  int (*postSend)(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) = nullptr;
  int (*postRecv)(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad) = nullptr;
  int (*pollCq)(ibv_cq* cq, int entries, ibv_wc* wc) = nullptr;
  int (*getAsyncEvent)(ibv_context* context, ibv_async_event* event) = nullptr;
  void (*ackAsyncEvent)(ibv_async_event* event) = nullptr;
  int (*forkInit)() = nullptr;
  const char* (*wcStatusStr)(ibv_wc_status status) = nullptr;
  const char* (*eventTypeStr)(ibv_event_type type) = nullptr;
};

/// The process's table for `config` (loaded once per provider; the table lives until exit). Fails with
/// kUnsupported naming COPRO_VERBS_PROVIDER when libibverbs cannot be loaded or has no device.
core::Status loadVerbsApi(const core::Config& config, const VerbsApi*& api);

/// The real libibverbs through dlopen, or nullptr with `why` set (missing library or symbol). A test hook:
/// the environment variable VERBS_TEST_HIDE_LIBIBVERBS=1 makes the load fail as on a machine without it.
const VerbsApi* loadLibibverbs(std::string& why);

/// Whether a real (non-emulated) RDMA device is present: libibverbs loads and lists at least one device.
bool realDevicePresent(std::string& detail);

}  // namespace copro::transport::verbs
