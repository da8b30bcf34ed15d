// gate_test.cpp — the drain gate.
#include <gtest/gtest.h>

#include <thread>

#include "sluice/gate.hpp"

namespace {

TEST(gate, close_waits_for_holders_and_refuses_new_ones) {
  auto g = sluice::gate::make();
  auto h1 = g->try_enter();
  auto h2 = g->try_enter();
  ASSERT_TRUE(h1);
  EXPECT_EQ(g->count(), 2u);
  int told = 0, idle = 0;
  g->on_close([&] { ++told; });
  g->close([&] { ++idle; });
  EXPECT_EQ(told, 1);
  EXPECT_EQ(idle, 0);
  EXPECT_FALSE(g->try_enter());
  h1.release();
  EXPECT_EQ(idle, 0);
  h2 = {};
  EXPECT_EQ(idle, 1);
}

TEST(gate, idle_runs_at_once_when_empty_and_late_on_close_runs_now) {
  auto g = sluice::gate::make();
  int idle = 0, late = 0;
  g->close([&] { ++idle; });
  EXPECT_EQ(idle, 1);
  g->on_close([&] { ++late; });
  EXPECT_EQ(late, 1);
}

TEST(gate, concurrent_enter_leave) {
  auto g = sluice::gate::make();
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([g] {
      for (int i = 0; i < 10000; ++i) {
        auto h = g->try_enter();
      }
    });
  }
  for (auto& t : ts)
    t.join();
  EXPECT_EQ(g->count(), 0u);
}

}  // namespace
