// COPRO_WAIT resolved against the host's cores (transport/src/wait_policy.hpp, docs/latency.md): what each
// policy does between looks and how long it looks before sleeping.
#include <gtest/gtest.h>

#include <cmath>

#include "copro/core/config.hpp"
#include "wait_policy.hpp"

namespace copro::transport::calls {
namespace {

core::Config withWait(const char* policy) {
  core::Config c;
  c.set("COPRO_WAIT", policy);
  c.spinUs = 7;
  return c;
}

TEST(WaitPolicy, SpinPausesAndNeverSleeps) {
  const WaitPolicy p = WaitPolicy::resolve(withWait("spin"), 1000);
  EXPECT_FALSE(p.yield);
  EXPECT_TRUE(std::isinf(p.spinSec));
}

TEST(WaitPolicy, YieldGivesTheCoreAwayAndSleepsAfterSpinUs) {
  const WaitPolicy p = WaitPolicy::resolve(withWait("yield"), 1);
  EXPECT_TRUE(p.yield);
  EXPECT_DOUBLE_EQ(p.spinSec, 7e-6);
}

TEST(WaitPolicy, AdaptiveSpinsWhileRanksFitTheCoresAndYieldsBeyond) {
  const int cores = usableCores();
  ASSERT_GE(cores, 1);
  const WaitPolicy fits = WaitPolicy::resolve(withWait("adaptive"), cores);
  EXPECT_FALSE(fits.yield);
  EXPECT_DOUBLE_EQ(fits.spinSec, 7e-6);  // adaptive still sleeps after COPRO_SPIN_US
  const WaitPolicy over = WaitPolicy::resolve(withWait("adaptive"), cores + 1);
  EXPECT_TRUE(over.yield);
  EXPECT_DOUBLE_EQ(over.spinSec, 7e-6);
}

TEST(WaitPolicy, AdaptiveCountsTheCoresOfAllTheHostsRanks) {
  // shm passes the union of its processes' affinity masks: two ranks pinned to one core each still fit.
  EXPECT_FALSE(WaitPolicy::resolve(withWait("adaptive"), 2, 2).yield);
  EXPECT_TRUE(WaitPolicy::resolve(withWait("adaptive"), 3, 2).yield);
  EXPECT_TRUE(WaitPolicy::resolve(withWait("yield"), 1, 64).yield);
}

}  // namespace
}  // namespace copro::transport::calls
