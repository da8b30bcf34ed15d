// pipeline_test.cpp — the inline phase: verdicts, timeouts, on_error, the commit point.
#include <gtest/gtest.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <thread>

#include "pipeline.hpp"
#include "services_impl.hpp"

namespace {

namespace asio = boost::asio;
using namespace sluice;
using namespace sluice::kernel;

// A stage driven by a function, recording that it ran.
class fn_stage final : public stage {
 public:
  using fn_t = std::function<asio::awaitable<verdict>(std::shared_ptr<message>)>;
  explicit fn_stage(fn_t f) : f_(std::move(f)) {}
  asio::awaitable<verdict> process(std::shared_ptr<message> msg, const stage_call&) override {
    ++calls;
    co_return co_await f_(msg);
  }
  std::atomic<int> calls{0};

 private:
  fn_t f_;
};

std::shared_ptr<fn_stage> returns(verdict v) {
  return std::make_shared<fn_stage>(
      [v](std::shared_ptr<message>) -> asio::awaitable<verdict> { co_return v; });
}

stage_instance inst(std::string name, std::shared_ptr<stage> s, bool commits = false,
                    on_error_policy p = on_error_policy::tempfail,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  stage_instance i;
  i.name = std::move(name);
  i.impl = std::move(s);
  i.traits.commits = commits;
  i.on_error = p;
  i.timeout = timeout;
  return i;
}

struct fixture : ::testing::Test {
  asio::io_context io{2};
  metrics_impl m;
  pipeline_runner runner{io, m, logger("test")};
  std::thread t1, t2;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};

  void SetUp() override {
    t1 = std::thread([this] { io.run(); });
    t2 = std::thread([this] { io.run(); });
  }
  void TearDown() override {
    work.reset();
    io.stop();
    t1.join();
    t2.join();
  }
  void install(std::vector<stage_instance> stages) {
    auto p = std::make_shared<pipeline>();
    p->name = "p";
    p->inline_stages = std::move(stages);
    auto set = std::make_shared<pipeline_set>();
    set->pipelines["p"] = p;
    runner.swap(set);
  }
  submit_result submit() {
    auto msg = std::make_shared<message>();
    msg->raw = message_body::from_string("Subject: x\r\n\r\nbody\r\n");
    last = msg;
    return asio::co_spawn(io, runner.submit(pipeline_name, msg), asio::use_future).get();
  }
  std::shared_ptr<message> last;
  std::string pipeline_name = "p";
};

TEST_F(fixture, continue_through_to_commit_accepts_with_id) {
  auto sink = returns(verdict::next());
  install({inst("a", returns(verdict::next())), inst("store", sink, true)});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::accept);
  EXPECT_EQ(r.reply.code, 250);
  EXPECT_EQ(r.id, last->id);
  EXPECT_EQ(r.id.size(), 22u);
  EXPECT_NE(r.reply.text.find(r.id), std::string::npos);
  EXPECT_EQ(sink->calls, 1);
}

TEST_F(fixture, reject_stops_and_nothing_commits) {
  auto sink = returns(verdict::next());
  install({inst("a", returns(verdict::reject(550, "5.7.1", "no"))), inst("store", sink, true)});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::reject);
  EXPECT_EQ(r.reply.code, 550);
  EXPECT_EQ(r.reply.enhanced, "5.7.1");
  EXPECT_TRUE(r.id.empty());
  EXPECT_EQ(sink->calls, 0);
}

TEST_F(fixture, tempfail_carries_reply) {
  install({inst("a", returns(verdict::tempfail(451, "4.7.1", "later"))),
           inst("store", returns(verdict::next()), true)});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
  EXPECT_EQ(r.reply.code, 451);
  EXPECT_EQ(r.reply.text, "later");
}

TEST_F(fixture, discard_acknowledges_without_storing) {
  auto sink = returns(verdict::next());
  install({inst("a", returns(verdict::discard())), inst("store", sink, true)});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::discard);
  EXPECT_EQ(r.reply.code, 250);
  EXPECT_EQ(sink->calls, 0);
}

TEST_F(fixture, quarantine_skips_filters_but_commits_flagged) {
  auto filter = returns(verdict::next());
  bool flagged = false;
  auto sink = std::make_shared<fn_stage>(
      [&flagged](std::shared_ptr<message> m) -> asio::awaitable<verdict> {
        flagged = m->quarantined;
        co_return verdict::next();
      });
  install({inst("q", returns(verdict::quarantine())), inst("filter", filter),
           inst("store", sink, true)});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::quarantine);
  EXPECT_EQ(r.reply.code, 250);
  EXPECT_EQ(filter->calls, 0);
  EXPECT_EQ(sink->calls, 1);
  EXPECT_TRUE(flagged);
}

TEST_F(fixture, accept_skips_filters_but_still_commits) {
  auto filter = returns(verdict::reject(550, "5.0.0", "never"));
  auto sink = returns(verdict::next());
  install(
      {inst("a", returns(verdict::accept())), inst("filter", filter), inst("store", sink, true)});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::accept);
  EXPECT_EQ(filter->calls, 0);
  EXPECT_EQ(sink->calls, 1);
}

TEST_F(fixture, throwing_stage_applies_on_error) {
  auto thrower =
      std::make_shared<fn_stage>([](std::shared_ptr<message>) -> asio::awaitable<verdict> {
        throw std::runtime_error("boom");
        co_return verdict::next();
      });
  install({inst("t", thrower), inst("store", returns(verdict::next()), true)});
  EXPECT_EQ(submit().reply.code, 451);  // default tempfail
  install({inst("t", thrower, false, on_error_policy::reject),
           inst("store", returns(verdict::next()), true)});
  EXPECT_EQ(submit().reply.code, 554);
  install({inst("t", thrower, false, on_error_policy::continue_),
           inst("store", returns(verdict::next()), true)});
  EXPECT_EQ(submit().kind, verdict_kind::accept);
}

TEST_F(fixture, hung_stage_times_out_and_is_cancelled) {
  std::atomic<bool> cancelled{false};
  auto hang = std::make_shared<fn_stage>(
      [&cancelled](std::shared_ptr<message>) -> asio::awaitable<verdict> {
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
        try {
          co_await t.async_wait(asio::use_awaitable);
        } catch (const boost::system::system_error&) {
          cancelled = true;
          throw;
        }
        co_return verdict::next();
      });
  install({inst("hang", hang, false, on_error_policy::tempfail, std::chrono::milliseconds(100)),
           inst("store", returns(verdict::next()), true)});
  auto start = std::chrono::steady_clock::now();
  auto r = submit();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
  EXPECT_EQ(r.reply.code, 451);
  EXPECT_LT(took, std::chrono::seconds(5));
  for (int i = 0; i < 100 && !cancelled; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(cancelled) << "the timed-out stage was not told to stop";
}

TEST_F(fixture, stage_ignoring_cancellation_does_not_block_the_reply) {
  auto stubborn =
      std::make_shared<fn_stage>([](std::shared_ptr<message>) -> asio::awaitable<verdict> {
        // Ignores cancellation: waits on a timer with cancellation filtered out.
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(800));
        co_await asio::this_coro::reset_cancellation_state(asio::disable_cancellation());
        co_await t.async_wait(asio::use_awaitable);
        co_return verdict::next();
      });
  install({inst("s", stubborn, false, on_error_policy::tempfail, std::chrono::milliseconds(50)),
           inst("store", returns(verdict::next()), true)});
  auto start = std::chrono::steady_clock::now();
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(700));
  std::this_thread::sleep_for(std::chrono::milliseconds(900));  // let it finish before teardown
}

// A committing stage past the point of withdrawing (a store whose commit is syncing) is
// awaited after its timeout, and its answer stands: the message it stored is acknowledged.
// The stage receives the cancellation (as the store does) and, as the SDK says, keeps later
// co_awaits from throwing with throw_if_cancelled(false).
TEST_F(fixture, a_committing_stage_finishing_after_its_timeout_is_awaited_and_stands) {
  std::atomic<bool> was_cancelled{false};
  auto committing = std::make_shared<fn_stage>(
      [&was_cancelled](std::shared_ptr<message>) -> asio::awaitable<verdict> {
        co_await asio::this_coro::throw_if_cancelled(false);
        auto ex = co_await asio::this_coro::executor;
        asio::steady_timer t(ex, std::chrono::milliseconds(400));
        // The commit itself cannot be interrupted (no cancellation slot on this wait).
        co_await t.async_wait(
            asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
        was_cancelled = (co_await asio::this_coro::cancellation_state).cancelled() !=
                        asio::cancellation_type::none;
        co_await asio::post(ex, asio::use_awaitable);  // work after the commit
        co_return verdict::next();
      });
  install(
      {inst("store", committing, true, on_error_policy::tempfail, std::chrono::milliseconds(100))});
  auto start = std::chrono::steady_clock::now();
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::accept);
  EXPECT_EQ(r.reply.code, 250);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(400));
  EXPECT_EQ(committing->calls, 1);
  EXPECT_TRUE(was_cancelled) << "the stage was not told of its timeout";
  EXPECT_NE(
      m.render_prometheus().find("sluice_stage_errors_total{stage=\"store\",reason=\"late\"} 1"),
      std::string::npos)
      << m.render_prometheus();
}

// A committing stage that withdraws on the cancellation (sluice::withdraw(): nothing
// written) answers at once; that answer is the timeout, so on_error applies (here: reject).
TEST_F(fixture, a_committing_stage_withdrawing_on_cancellation_is_a_timeout) {
  std::atomic<bool> withdrew{false};
  auto withdrawing =
      std::make_shared<fn_stage>([&withdrew](std::shared_ptr<message>) -> asio::awaitable<verdict> {
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
        auto [ec] = co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) {
          withdrew = true;
          sluice::withdraw();
        }
        co_return verdict::next();
      });
  install(
      {inst("store", withdrawing, true, on_error_policy::reject, std::chrono::milliseconds(100))});
  auto start = std::chrono::steady_clock::now();
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::reject);
  EXPECT_EQ(r.reply.code, 554);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_TRUE(withdrew);
  EXPECT_NE(
      m.render_prometheus().find("sluice_stage_errors_total{stage=\"store\",reason=\"timeout\"} 1"),
      std::string::npos)
      << m.render_prometheus();
}

// A committing stage whose write failed for real after its timeout (say the disk filled
// while it committed) answers tempfail: that is its answer and it stands, on_error
// (here: reject) does not turn a transient failure into a permanent one.
TEST_F(fixture, a_committing_stage_tempfailing_after_its_timeout_keeps_its_tempfail) {
  auto failing =
      std::make_shared<fn_stage>([](std::shared_ptr<message>) -> asio::awaitable<verdict> {
        co_await asio::this_coro::throw_if_cancelled(false);
        asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(300));
        co_await t.async_wait(
            asio::bind_cancellation_slot(asio::cancellation_slot(), asio::use_awaitable));
        co_return verdict::tempfail(452, "4.3.1", "Insufficient system storage");
      });
  install({inst("store", failing, true, on_error_policy::reject, std::chrono::milliseconds(100))});
  auto r = submit();
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
  EXPECT_EQ(r.reply.code, 452);
  EXPECT_EQ(r.reply.enhanced, "4.3.1");
  EXPECT_NE(
      m.render_prometheus().find("sluice_stage_errors_total{stage=\"store\",reason=\"late\"} 1"),
      std::string::npos)
      << m.render_prometheus();
}

TEST_F(fixture, unknown_pipeline_is_a_local_error) {
  install({inst("store", returns(verdict::next()), true)});
  auto msg = std::make_shared<message>();
  msg->raw = message_body::from_string("x");
  std::string nope = "nope";
  auto r = asio::co_spawn(io, runner.submit(nope, msg), asio::use_future).get();
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
}

TEST_F(fixture, verdicts_and_durations_are_counted) {
  install({inst("store", returns(verdict::next()), true)});
  submit();
  auto text = m.render_prometheus();
  EXPECT_NE(
      text.find(
          "sluice_stage_verdicts_total{pipeline=\"p\",stage=\"store\",verdict=\"continue\"} 1"),
      std::string::npos)
      << text;
}

}  // namespace
