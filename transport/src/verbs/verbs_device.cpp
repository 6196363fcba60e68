/// Opening the RDMA device of the `verbs` backend (verbs_device.hpp): provider load, ibv_fork_init, device
/// and port choice, the protection domain, the GID, and the asynchronous-event thread.
#include "verbs_device.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "copro/core/log.hpp"
#include "copro/transport/verbs.hpp"
#include "verbs_rails.hpp"

namespace copro::transport::verbs {

namespace {

using core::Error;
using core::ErrorCode;

/// The first active port of `ctx` (0: none).
int activePort(const VerbsApi& api, ibv_context* ctx, ibv_port_attr& attr) {
  ibv_device_attr dev{};
  if (api.queryDevice(ctx, &dev) != 0) return 0;
  for (int p = 1; p <= dev.phys_port_cnt; ++p) {
    if (api.queryPort(ctx, static_cast<std::uint8_t>(p), &attr) == 0 && attr.state == IBV_PORT_ACTIVE) return p;
  }
  return 0;
}

const char* portStateName(ibv_port_state s) {
  switch (s) {
    case IBV_PORT_ACTIVE:
      return "ACTIVE";
    case IBV_PORT_DOWN:
      return "DOWN";
    case IBV_PORT_INIT:
      return "INIT";
    case IBV_PORT_ARMED:
      return "ARMED";
    default:
      return "OTHER";
  }
}

int mtuBytes(ibv_mtu m) {
  return 256 << (static_cast<int>(m) - 1);  // IBV_MTU_256 = 1 ... IBV_MTU_4096 = 5
}

}  // namespace

double portGbps(std::uint8_t width, std::uint32_t speed) {
  const int lanes = width == 1 ? 1 : width == 2 ? 4 : width == 4 ? 8 : width == 8 ? 12 : width == 16 ? 2 : 0;
  double perLane = 0;
  switch (speed) {
    case 1:
      perLane = 2.5;
      break;
    case 2:
      perLane = 5.0;
      break;
    case 4:
    case 8:
      perLane = 10.0;
      break;
    case 16:
      perLane = 14.0;
      break;
    case 32:
      perLane = 25.0;
      break;
    case 64:
      perLane = 50.0;
      break;
    case 128:
      perLane = 100.0;
      break;
    case 256:
      perLane = 200.0;
      break;
    default:
      break;
  }
  return lanes * perLane;
}

std::vector<PortSummary> listPorts(const VerbsApi& api) {
  std::vector<PortSummary> out;
  int n = 0;
  ibv_device** list = api.getDeviceList(&n);
  for (int i = 0; list != nullptr && i < n; ++i) {
    ibv_context* ctx = api.openDevice(list[i]);
    if (ctx == nullptr) continue;
    ibv_device_attr dev{};
    for (int p = 1; api.queryDevice(ctx, &dev) == 0 && p <= dev.phys_port_cnt; ++p) {
      ibv_port_attr a{};
      if (api.queryPort(ctx, static_cast<std::uint8_t>(p), &a) != 0) continue;
      PortSummary s;
      s.device = api.getDeviceName(list[i]);
      s.port = p;
      s.state = portStateName(a.state);
      s.linkLayer = a.link_layer == IBV_LINK_LAYER_ETHERNET ? "Ethernet" : "InfiniBand";
      s.gbps = portGbps(a.active_width, a.active_speed);
      s.mtu = mtuBytes(a.active_mtu);
      s.lid = a.lid;
      out.push_back(s);
    }
    api.closeDevice(ctx);
  }
  if (list != nullptr) api.freeDeviceList(list);
  return out;
}

std::shared_ptr<VerbsDevice> VerbsDevice::open(const core::Config& config, const std::string& preferred) {
  static std::mutex mu;
  static std::map<std::string, std::weak_ptr<VerbsDevice>> opened;
  const VerbsApi* api = nullptr;
  loadVerbsApi(config, api).throwIfError();
  std::lock_guard<std::mutex> lock(mu);
  const std::string want = !config.ibHca.empty() ? config.ibHca : preferred;
  const std::string key = api->provider + "/" + want + "/" + std::to_string(config.ibGidIndex);
  if (auto d = opened[key].lock()) return d;
  static std::once_flag forkOnce;
  std::call_once(forkOnce, [api] {
    // Registered memory stays with this process across fork(), as system() and popen() need.
    if (api->forkInit() != 0) COPRO_LOG(Warn, Init, "verbs: ibv_fork_init failed; do not fork after init");
  });
  std::shared_ptr<VerbsDevice> d(new VerbsDevice());
  d->api_ = api;
  int n = 0;
  ibv_device** list = api->getDeviceList(&n);
  // The rail NIC (`preferred`) when it has an active port, else any device; COPRO_IB_HCA is strict.
  const bool strict = !config.ibHca.empty();
  for (int i = 0; list != nullptr && i < 2 * n && d->ctx_ == nullptr; ++i) {
    const std::string name = api->getDeviceName(list[i % n]);
    if (i < n ? (!want.empty() && name != want) : (strict || want.empty())) continue;
    ibv_context* ctx = api->openDevice(list[i % n]);
    if (ctx == nullptr) continue;
    const int port = activePort(*api, ctx, d->portAttr_);
    if (port == 0) {
      api->closeDevice(ctx);
      continue;
    }
    d->ctx_ = ctx;
    d->port_ = port;
    d->name_ = name;
  }
  if (list != nullptr) api->freeDeviceList(list);
  if (d->ctx_ == nullptr) {
    throw Error(ErrorCode::kUnsupported,
                "verbs: no RDMA device with an active port" + (strict ? " named '" + want + "'" : std::string()) +
                    " (check ibv_devinfo; COPRO_IB_HCA picks the device, COPRO_VERBS_PROVIDER=emu the emulator)");
  }
  api->queryDevice(d->ctx_, &d->devAttr_);
  d->gidIndex_ = config.ibGidIndex;
  d->global_ = d->portAttr_.link_layer == IBV_LINK_LAYER_ETHERNET || config.ibGidIndex != 0;
  if (api->queryGid(d->ctx_, static_cast<std::uint8_t>(d->port_), d->gidIndex_, &d->gid_) != 0) {
    throw Error(ErrorCode::kInvalidArgument, "verbs: COPRO_IB_GID_INDEX=" + std::to_string(d->gidIndex_) +
                                                 " is not in the GID table of " + d->name_ + " port " +
                                                 std::to_string(d->port_) + " (show_gids lists it)");
  }
  d->pd_ = api->allocPd(d->ctx_);
  if (d->pd_ == nullptr) throw Error(ErrorCode::kSystemError, "verbs: ibv_alloc_pd failed on " + d->name_);
  d->startEvents();
  COPRO_LOG(Info, Init,
            "verbs: " << d->name_ << " port " << d->port_ << " (" << api->provider << "), "
                      << portGbps(d->portAttr_.active_width, d->portAttr_.active_speed) << " Gb/s, MTU "
                      << mtuBytes(d->portAttr_.active_mtu) << (d->global_ ? ", GRH" : ", LID"));
  opened[key] = d;
  return d;
}

VerbsDevice::~VerbsDevice() {
  stop_.store(true);
  if (wakeFd_ >= 0) {
    const std::uint64_t one = 1;
    (void)!write(wakeFd_, &one, sizeof(one));
  }
  if (events_.joinable()) events_.join();
  if (wakeFd_ >= 0) close(wakeFd_);
  if (pd_ != nullptr) api_->deallocPd(pd_);
  if (ctx_ != nullptr) api_->closeDevice(ctx_);
}

void VerbsDevice::startEvents() {
  const int flags = fcntl(ctx_->async_fd, F_GETFL);
  fcntl(ctx_->async_fd, F_SETFL, flags | O_NONBLOCK);
  wakeFd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);  // without it (-1, ignored by poll) the stop waits <= 100 ms
  events_ = std::thread([this] { eventLoop(); });
}

void VerbsDevice::eventLoop() {
  while (!stop_.load()) {
    pollfd p[2] = {{ctx_->async_fd, POLLIN, 0}, {wakeFd_, POLLIN, 0}};
    if (::poll(p, 2, 100) <= 0 || (p[0].revents & POLLIN) == 0) continue;
    ibv_async_event ev{};
    while (api_->getAsyncEvent(ctx_, &ev) == 0) {
      record(ev);
      api_->ackAsyncEvent(&ev);
    }
  }
}

void VerbsDevice::record(const ibv_async_event& ev) {
  const std::string what = api_->eventTypeStr(ev.event_type);
  std::lock_guard<std::mutex> lock(mu_);
  switch (ev.event_type) {
    case IBV_EVENT_QP_FATAL:
    case IBV_EVENT_QP_REQ_ERR:
    case IBV_EVENT_QP_ACCESS_ERR:
    case IBV_EVENT_PATH_MIG_ERR:
      qpErrors_.emplace(ev.element.qp->qp_num, what);
      break;
    case IBV_EVENT_PORT_ERR:
    case IBV_EVENT_DEVICE_FATAL:
      portError_ = name_ + ": " + what;
      break;
    default:
      return;  // informational (port active, LID change, ...)
  }
  COPRO_LOG(Warn, Transport, "verbs: asynchronous event on " << name_ << ": " << what);
  errorEpoch_.fetch_add(1, std::memory_order_release);
}

std::string VerbsDevice::qpError(std::uint32_t qpNum) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = qpErrors_.find(qpNum);
  return it == qpErrors_.end() ? std::string() : it->second;
}

void VerbsDevice::forgetQp(std::uint32_t qpNum) {
  std::lock_guard<std::mutex> lock(mu_);
  qpErrors_.erase(qpNum);
}

std::string VerbsDevice::portError() {
  std::lock_guard<std::mutex> lock(mu_);
  return portError_;
}

}  // namespace copro::transport::verbs

namespace copro::transport {

bool verbsRealDevicePresent(std::string& detail) {
  return verbs::realDevicePresent(detail);
}

std::string describeVerbsPorts(const core::Config& config) {
  const verbs::VerbsApi* api = nullptr;
  if (!verbs::loadVerbsApi(config, api).ok()) return {};
  std::string out;
  for (const verbs::PortSummary& s : verbs::listPorts(*api)) {
    out += s.device + " port " + std::to_string(s.port) + ": " + s.state + ", " + s.linkLayer + ", " +
           std::to_string(static_cast<int>(s.gbps)) + " Gb/s, MTU " + std::to_string(s.mtu) + ", LID " +
           std::to_string(s.lid) + (api->emulated ? " (emulated)" : "") + "\n";
  }
  return out;
}

std::string describeRailAffinity(const core::Config& /*config*/) {
  // Without an RDMA device there is no GPU-NIC pair to map, and hwloc's PCI discovery is not loaded: its
  // plugin is unloaded with allocations still held, which LeakSanitizer reports in every probe.
  std::string detail;
  if (!verbs::realDevicePresent(detail)) return "# rail: no RDMA device (" + detail + "): no GPU-NIC map\n";
  verbs::RailMap map;
  std::string error;
  if (!verbs::loadRailMap({}, map, error)) return "# rail: no map (" + error + ")\n";
  if (map.gpus.empty() || map.nics.empty()) {
    return "# rail: hwloc found " + std::to_string(map.gpus.size()) + " GPU(s) and " + std::to_string(map.nics.size()) +
           " RDMA NIC(s): no GPU-NIC pairs (ranks use the NICs round-robin)\n";
  }
  std::string out;
  for (std::size_t g = 0; g < map.gpus.size(); ++g) {
    out += "# rail: GPU " + map.gpus[g] + " -> " + map.nics[static_cast<std::size_t>(map.nicOfGpu[g])] + " (" +
           std::to_string(map.hops[g]) + " PCIe hops)\n";
  }
  return out;
}

}  // namespace copro::transport
