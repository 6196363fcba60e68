/// Filling the libibverbs entry-point table (verbs_api.hpp): dlopen of libibverbs.so.1 with every symbol
/// looked up by name (the versioned defaults, as a program linked against rdma-core would get), or the
/// emulated provider. The inline functions of verbs.h are wrapped through the context's ops, which is
/// what the inline versions do.
#include "verbs_api.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include "emu_provider.hpp"

namespace copro::transport::verbs {

namespace {

using core::ErrorCode;
using core::Status;

int realPostSend(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
  return qp->context->ops.post_send(qp, wr, bad);
}
int realPostRecv(ibv_qp* qp, ibv_recv_wr* wr, ibv_recv_wr** bad) {
  return qp->context->ops.post_recv(qp, wr, bad);
}
int realPollCq(ibv_cq* cq, int entries, ibv_wc* wc) {
  return cq->context->ops.poll_cq(cq, entries, wc);
}

template <typename Fn>
bool bind(void* lib, const char* name, Fn& slot, std::string& why) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    why = std::string("libibverbs.so.1 has no symbol ") + name;
    return false;
  }
  slot = reinterpret_cast<Fn>(sym);
  return true;
}

bool bindAll(void* lib, VerbsApi& a, std::string& why) {
  return bind(lib, "ibv_get_device_list", a.getDeviceList, why) &&
         bind(lib, "ibv_free_device_list", a.freeDeviceList, why) &&
         bind(lib, "ibv_get_device_name", a.getDeviceName, why) && bind(lib, "ibv_open_device", a.openDevice, why) &&
         bind(lib, "ibv_close_device", a.closeDevice, why) && bind(lib, "ibv_query_device", a.queryDevice, why) &&
         bind(lib, "ibv_query_port", a.queryPort, why) && bind(lib, "ibv_query_gid", a.queryGid, why) &&
         bind(lib, "ibv_alloc_pd", a.allocPd, why) && bind(lib, "ibv_dealloc_pd", a.deallocPd, why) &&
         bind(lib, "ibv_reg_mr", a.regMr, why) && bind(lib, "ibv_dereg_mr", a.deregMr, why) &&
         bind(lib, "ibv_create_cq", a.createCq, why) && bind(lib, "ibv_destroy_cq", a.destroyCq, why) &&
         bind(lib, "ibv_create_qp", a.createQp, why) && bind(lib, "ibv_modify_qp", a.modifyQp, why) &&
         bind(lib, "ibv_destroy_qp", a.destroyQp, why) && bind(lib, "ibv_get_async_event", a.getAsyncEvent, why) &&
         bind(lib, "ibv_ack_async_event", a.ackAsyncEvent, why) && bind(lib, "ibv_fork_init", a.forkInit, why) &&
         bind(lib, "ibv_wc_status_str", a.wcStatusStr, why) && bind(lib, "ibv_event_type_str", a.eventTypeStr, why);
}

}  // namespace

const VerbsApi* loadLibibverbs(std::string& why) {
  static std::once_flag once;
  static VerbsApi api;
  static std::string error;
  static bool ok = false;
  std::call_once(once, [] {
    const char* hide = std::getenv("VERBS_TEST_HIDE_LIBIBVERBS");
    if (hide != nullptr && std::strcmp(hide, "1") == 0) {
      error = "libibverbs.so.1 hidden by VERBS_TEST_HIDE_LIBIBVERBS=1 (test hook)";
      return;
    }
    void* lib = dlopen("libibverbs.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      const char* e = dlerror();
      error = std::string("cannot load libibverbs.so.1: ") + (e != nullptr ? e : "unknown error");
      return;
    }
    api.provider = "libibverbs.so.1";
    if (!bindAll(lib, api, error)) return;
    api.postSend = realPostSend;
    api.postRecv = realPostRecv;
    api.pollCq = realPollCq;
    ok = true;
  });
  why = error;
  return ok ? &api : nullptr;
}

bool realDevicePresent(std::string& detail) {
  const VerbsApi* api = loadLibibverbs(detail);
  if (api == nullptr) return false;
  int n = 0;
  ibv_device** list = api->getDeviceList(&n);
  if (list == nullptr || n == 0) {
    detail = "libibverbs.so.1 loaded, no RDMA device";
    if (list != nullptr) api->freeDeviceList(list);
    return false;
  }
  detail = std::to_string(n) + " device(s), first " + api->getDeviceName(list[0]);
  api->freeDeviceList(list);
  return true;
}

Status loadVerbsApi(const core::Config& config, const VerbsApi*& api) {
  if (config.verbsProvider == "emu") {
    api = &emu::emulatedVerbsApi(config);
    return {};
  }
  std::string why;
  if (!realDevicePresent(why)) {
    return {ErrorCode::kUnsupported,
            "verbs: no RDMA device (" + why +
                "); on a machine without InfiniBand/RoCE set COPRO_VERBS_PROVIDER=emu to run over the emulated "
                "provider"};
  }
  api = loadLibibverbs(why);
  return {};
}

}  // namespace copro::transport::verbs
