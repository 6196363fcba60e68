#pragma once
/// A copro::core::Bootstrap over the c10d::Store torch hands a process-group backend (TCPStore,
/// FileStore, PrefixStore, ...): all-gather, barrier and point-to-point messages become set/get/add/wait
/// on keys under a prefix, so creating a copro communicator needs nothing beyond what
/// torch.distributed.init_process_group already set up. Keys of finished exchanges are deleted by the
/// last rank to read them. Used only at creation and split, never on the data path.
#include <c10/util/intrusive_ptr.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "copro/copro.hpp"

namespace c10d {
class Store;
}

namespace copro_torch {

class StoreBootstrap final : public copro::core::Bootstrap {
 public:
  /// `prefix` keeps these keys apart from torch's own (and from other communicators').
  StoreBootstrap(const c10::intrusive_ptr<c10d::Store>& store, std::string prefix, int rank, int size);
  ~StoreBootstrap() override;  // out of line: c10d::Store is complete only in store_bootstrap.cpp
  StoreBootstrap(const StoreBootstrap&) = delete;
  StoreBootstrap& operator=(const StoreBootstrap&) = delete;

  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  copro::Status allGather(const void* in, void* out, std::size_t bytes) override;
  copro::Status barrier() override;
  copro::Status send(int peer, int tag, const void* data, std::size_t bytes) override;
  copro::Status recv(int peer, int tag, void* data, std::size_t bytes) override;
  std::unique_ptr<copro::core::Bootstrap> split(int color, int key) override;
  /// A bootstrap of this rank and `peer` only (rank 0: the lower one), for the pair's point-to-point
  /// communicator. Not collective: only the two ranks take part when they create it.
  [[nodiscard]] std::shared_ptr<StoreBootstrap> pair(int peer) const;

 private:
  /// Runs `body` (store calls), turning torch's exceptions into a Status naming `what`.
  template <typename Body>
  copro::Status guarded(const char* what, Body&& body);
  /// Counts one reader of exchange `name`; the last of `size_` deletes `keys`.
  void release(const std::string& name, const std::vector<std::string>& keys);
  [[nodiscard]] std::string key(const std::string& name) const { return prefix_ + name; }

  c10::intrusive_ptr<c10d::Store> store_;
  std::string prefix_;
  int rank_;
  int size_;
  std::uint64_t collectives_ = 0;  ///< all-gathers, barriers and splits so far (the same on every rank)
  std::map<std::pair<int, int>, std::uint64_t> sent_;      ///< (peer, tag) -> messages sent
  std::map<std::pair<int, int>, std::uint64_t> received_;  ///< (peer, tag) -> messages received
};

}  // namespace copro_torch
