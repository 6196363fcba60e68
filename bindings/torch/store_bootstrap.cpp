/// StoreBootstrap: copro's out-of-band exchange over torch's c10d::Store (see store_bootstrap.hpp). Every
/// collective exchange gets a sequence number (ranks call them in the same order), so its keys are
/// unique; point-to-point messages are numbered per (sender, receiver, tag).
#include "store_bootstrap.hpp"

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <algorithm>
#include <cstring>
#include <exception>
#include <tuple>
#include <vector>

namespace copro_torch {

namespace {

std::vector<std::uint8_t> toBytes(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const std::uint8_t*>(data);
  return {p, p + bytes};
}

}  // namespace

StoreBootstrap::StoreBootstrap(const c10::intrusive_ptr<c10d::Store>& store, std::string prefix, int rank, int size)
    : store_(store), prefix_(std::move(prefix)), rank_(rank), size_(size) {}

StoreBootstrap::~StoreBootstrap() = default;

template <typename Body>
copro::Status StoreBootstrap::guarded(const char* what, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    const bool timeout = msg.find("imeout") != std::string::npos || msg.find("timed out") != std::string::npos;
    return {timeout ? copro::ErrorCode::kTimeout : copro::ErrorCode::kSystemError,
            std::string("torch store bootstrap ") + what + " on rank " + std::to_string(rank_) + ": " + msg};
  }
}

void StoreBootstrap::release(const std::string& name, const std::vector<std::string>& keys) {
  if (store_->add(key(name + "/done"), 1) < size_) return;
  for (const std::string& k : keys) store_->deleteKey(k);
  store_->deleteKey(key(name + "/done"));
}

copro::Status StoreBootstrap::allGather(const void* in, void* out, std::size_t bytes) {
  const std::string name = "ag" + std::to_string(collectives_++);
  return guarded("allGather", [&]() -> copro::Status {
    store_->set(key(name + "/" + std::to_string(rank_)), toBytes(in, bytes));
    std::vector<std::string> keys;
    for (int r = 0; r < size_; ++r) {
      keys.push_back(key(name + "/" + std::to_string(r)));
      const std::vector<std::uint8_t> value = store_->get(keys.back());
      if (value.size() != bytes) {
        return {copro::ErrorCode::kInvalidUsage, "torch store bootstrap allGather: rank " + std::to_string(r) +
                                                     " sent " + std::to_string(value.size()) + " bytes, rank " +
                                                     std::to_string(rank_) + " expected " + std::to_string(bytes)};
      }
      if (bytes > 0) std::memcpy(static_cast<std::uint8_t*>(out) + r * bytes, value.data(), bytes);
    }
    release(name, keys);
    return {};
  });
}

copro::Status StoreBootstrap::barrier() {
  const std::string name = "bar" + std::to_string(collectives_++);
  return guarded("barrier", [&]() -> copro::Status {
    const std::string go = key(name + "/go");
    if (store_->add(key(name), 1) == size_) store_->set(go, {1});
    store_->wait({go});
    release(name, {key(name), go});
    return {};
  });
}

copro::Status StoreBootstrap::send(int peer, int tag, const void* data, std::size_t bytes) {
  const std::uint64_t seq = sent_[{peer, tag}]++;
  const std::string k = key("p2p/" + std::to_string(rank_) + ">" + std::to_string(peer) + "/" + std::to_string(tag) +
                            "/" + std::to_string(seq));
  return guarded("send", [&]() -> copro::Status {
    store_->set(k, toBytes(data, bytes));
    return {};
  });
}

copro::Status StoreBootstrap::recv(int peer, int tag, void* data, std::size_t bytes) {
  const std::uint64_t seq = received_[{peer, tag}]++;
  const std::string k = key("p2p/" + std::to_string(peer) + ">" + std::to_string(rank_) + "/" + std::to_string(tag) +
                            "/" + std::to_string(seq));
  return guarded("recv", [&]() -> copro::Status {
    const std::vector<std::uint8_t> value = store_->get(k);
    if (value.size() != bytes) {
      return {copro::ErrorCode::kInvalidUsage, "torch store bootstrap recv from rank " + std::to_string(peer) + ": " +
                                                   std::to_string(value.size()) + " bytes sent, " +
                                                   std::to_string(bytes) + " expected"};
    }
    if (bytes > 0) std::memcpy(data, value.data(), bytes);
    store_->deleteKey(k);
    return {};
  });
}

std::unique_ptr<copro::core::Bootstrap> StoreBootstrap::split(int color, int key) {
  const std::string name = "split" + std::to_string(collectives_);  // allGather below takes the next number
  std::vector<std::int32_t> all(2 * static_cast<std::size_t>(size_));
  const std::int32_t mine[2] = {color, key};
  allGather(mine, all.data(), sizeof(mine)).throwIfError();
  if (color < 0) return nullptr;
  std::vector<std::tuple<std::int32_t, int>> members;  // (key, old rank) of this color
  for (int r = 0; r < size_; ++r) {
    if (all[2 * r] == color) members.emplace_back(all[2 * r + 1], r);
  }
  std::sort(members.begin(), members.end());
  const auto it = std::find(members.begin(), members.end(), std::make_tuple(key, rank_));
  return std::make_unique<StoreBootstrap>(store_, prefix_ + name + "c" + std::to_string(color) + "/",
                                          static_cast<int>(it - members.begin()), static_cast<int>(members.size()));
}

std::shared_ptr<StoreBootstrap> StoreBootstrap::pair(int peer) const {
  const int lo = std::min(rank_, peer);
  const int hi = std::max(rank_, peer);
  return std::make_shared<StoreBootstrap>(
      store_, prefix_ + "pair" + std::to_string(lo) + "-" + std::to_string(hi) + "/", rank_ == lo ? 0 : 1, 2);
}

}  // namespace copro_torch
