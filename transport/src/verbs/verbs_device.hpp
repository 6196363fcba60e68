#pragma once
/// One opened RDMA device of this process, shared by every `verbs` transport (communicator) on it: the
/// context, one protection domain, the chosen port's attributes and GID, and the asynchronous-event thread
/// that turns QP, port and device events into errors the transports pick up (docs/verbs.md).
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "copro/core/config.hpp"
#include "copro/core/status.hpp"
#include "verbs_api.hpp"

namespace copro::transport::verbs {

/// What copro-topo probe and copro-info print about one device port.
struct PortSummary {
  std::string device;
  int port = 1;
  std::string state;      ///< "ACTIVE", "DOWN", ...
  std::string linkLayer;  ///< "InfiniBand" or "Ethernet"
  double gbps = 0;        ///< active width x per-lane speed
  int mtu = 0;            ///< active MTU in bytes
  std::uint16_t lid = 0;
};

class VerbsDevice {
 public:
  /// The device `config` selects (COPRO_IB_HCA, else `preferred` when non-empty, else the first device
  /// with an active port), opened once per process and name. Throws Error naming the problem.
  static std::shared_ptr<VerbsDevice> open(const core::Config& config, const std::string& preferred = {});
  ~VerbsDevice();
  VerbsDevice(const VerbsDevice&) = delete;
  VerbsDevice& operator=(const VerbsDevice&) = delete;

  [[nodiscard]] const VerbsApi& api() const { return *api_; }
  [[nodiscard]] ibv_context* context() const { return ctx_; }
  [[nodiscard]] ibv_pd* pd() const { return pd_; }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] const ibv_port_attr& portAttr() const { return portAttr_; }
  [[nodiscard]] const ibv_device_attr& deviceAttr() const { return devAttr_; }
  [[nodiscard]] const ibv_gid& gid() const { return gid_; }
  [[nodiscard]] int gidIndex() const { return gidIndex_; }
  [[nodiscard]] const std::string& name() const { return name_; }
  /// Global routing (GRH) is needed: RoCE, or a GID index was configured.
  [[nodiscard]] bool global() const { return global_; }

  /// Changes whenever the event thread recorded an error (a cheap check for the transports).
  [[nodiscard]] std::uint64_t errorEpoch() const { return errorEpoch_.load(std::memory_order_acquire); }
  /// The recorded error of QP `qpNum`, or of the port/device (empty: none).
  std::string qpError(std::uint32_t qpNum);
  std::string portError();
  /// Drops the recorded error of a destroyed QP (its number may be reused).
  void forgetQp(std::uint32_t qpNum);

 private:
  VerbsDevice() = default;
  void startEvents();
  void eventLoop();
  void record(const ibv_async_event& ev);

  const VerbsApi* api_ = nullptr;
  ibv_context* ctx_ = nullptr;
  ibv_pd* pd_ = nullptr;
  int port_ = 1;
  int gidIndex_ = 0;
  bool global_ = false;
  std::string name_;
  ibv_port_attr portAttr_{};
  ibv_device_attr devAttr_{};
  ibv_gid gid_{};
  std::thread events_;
  std::atomic<bool> stop_{false};
  int wakeFd_ = -1;  ///< eventfd the destructor writes so the event thread leaves its poll at once
  std::atomic<std::uint64_t> errorEpoch_{0};
  std::mutex mu_;
  std::map<std::uint32_t, std::string> qpErrors_;
  std::string portError_;
};

/// Every port of every device the provider lists (for copro-topo probe; empty when none).
std::vector<PortSummary> listPorts(const VerbsApi& api);

/// Gb/s of an active width/speed pair (ibv_port_attr encoding), 0 when unknown.
double portGbps(std::uint8_t width, std::uint32_t speed);

}  // namespace copro::transport::verbs
