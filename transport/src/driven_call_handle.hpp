#pragma once
/// The CallHandle of every engine, written once: test() drives the engine once, wait() until the call
/// finished. `Drive` is a callable `core::Status(bool block, bool& done)` that holds what it needs (the
/// engine and the call) alive.
#include <memory>
#include <utility>

#include "copro/core/executor.hpp"

namespace copro::transport::calls {

template <typename Drive>
class DrivenCallHandle final : public core::CallHandle {
 public:
  explicit DrivenCallHandle(Drive drive) : drive_(std::move(drive)) {}
  core::Status test(bool& done) override { return drive_(false, done); }
  core::Status wait() override {
    bool done = false;
    return drive_(true, done);
  }

 private:
  Drive drive_;
};

/// A handle over `drive`.
template <typename Drive>
std::unique_ptr<core::CallHandle> makeCallHandle(Drive drive) {
  return std::make_unique<DrivenCallHandle<Drive>>(std::move(drive));
}

}  // namespace copro::transport::calls
