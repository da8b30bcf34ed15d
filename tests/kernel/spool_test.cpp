// spool_test.cpp — deferred stages from the spool: retries with backoff, permanent
// failure, expiry, and recovery after the process dies mid-attempt.
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <limits>
#include <mutex>
#include <thread>

#include "pipeline.hpp"
#include "services_impl.hpp"
#include "sluice_test.hpp"
#include "spool.hpp"

namespace {

namespace asio = boost::asio;
using namespace sluice;
using namespace sluice::kernel;

class scripted_stage final : public stage {
 public:
  explicit scripted_stage(std::function<verdict(unsigned attempt)> f) : f_(std::move(f)) {}
  asio::awaitable<verdict> process(std::shared_ptr<message> msg, const stage_call& call) override {
    std::lock_guard lock(mu);
    called_at.push_back(std::chrono::steady_clock::now());
    attributes.push_back(msg->attributes);
    attempts.push_back(call.attempt);
    phases.push_back(call.phase);
    bodies.push_back(msg->raw ? msg->raw->to_string() : "");
    outputs.push_back(msg->output());
    co_return f_(call.attempt);
  }
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> called_at;
  std::vector<boost::json::object> attributes;
  std::vector<unsigned> attempts;
  std::vector<phase> phases;
  std::vector<std::string> bodies;
  std::vector<std::string> outputs;  // with the header edits applied

 private:
  std::function<verdict(unsigned)> f_;
};

struct world {
  explicit world(std::filesystem::path dir, std::uint64_t min_free_space = 0)
      : dir_(std::move(dir)) {
    spool_ = std::make_shared<spool>(io, workers, dir_, false, min_free_space, runner, m, &ev,
                                     logger("spool"));
    spool_->prepare();
    runner.set_spool(spool_.get());
    thread = std::thread([this] { io.run(); });
  }
  ~world() {
    work.reset();
    io.stop();
    thread.join();
    workers.join();
  }
  // Pipeline "p": an inline storing stage, then the deferred stage "relay" and, when
  // `notify` is given, a deferred stage "notify" that runs after "relay" when its outcome is
  // `when`.
  void install(std::shared_ptr<stage> deferred, retry_policy retry,
               std::shared_ptr<stage> notify = nullptr, const std::string& when = {}) {
    auto p = std::make_shared<pipeline>();
    p->name = "p";
    stage_instance store;
    store.name = "store";
    store.traits.commits = true;
    store.impl = store_stage;
    p->inline_stages.push_back(store);
    auto add_deferred = [&](std::string name, std::shared_ptr<stage> impl) -> stage_instance& {
      stage_instance d;
      d.name = std::move(name);
      d.phase = phase::deferred;
      d.impl = std::move(impl);
      d.retry = retry;
      d.timeout = std::chrono::seconds(60);
      return p->deferred_stages.emplace_back(std::move(d));
    };
    add_deferred("relay", std::move(deferred));
    if (notify) {
      auto& n = add_deferred("notify", std::move(notify));
      n.after = "relay";
      n.when = when;
    }
    auto set = std::make_shared<pipeline_set>();
    set->pipelines["p"] = p;
    runner.swap(set);
  }
  void install_after(std::shared_ptr<stage> relay, std::shared_ptr<stage> notify,
                     const std::string& when, retry_policy retry) {
    install(std::move(relay), retry, std::move(notify), when);
  }
  submit_result submit(std::string body, std::string edit = "kept") {
    auto msg = std::make_shared<message>();
    msg->raw = message_body::from_string(std::move(body));
    msg->envelope.mail_from = "a@example.org";
    msg->envelope.recipients.push_back({"b@example.org", {}});
    msg->append_header("X-Edit", std::move(edit));
    return asio::co_spawn(io, runner.submit(pipeline_name, msg), asio::use_future).get();
  }
  std::string pipeline_name = "p";
  // The inline committing stage of "p"; what it does can be replaced before install().
  std::function<verdict(unsigned)> store_does = [](unsigned) { return verdict::next(); };
  std::shared_ptr<scripted_stage> store_stage =
      std::make_shared<scripted_stage>([this](unsigned a) { return store_does(a); });
  std::size_t files() const {
    std::size_t n = 0;
    for (auto& e : std::filesystem::directory_iterator(dir_ / "queue"))
      (void)e, ++n;
    return n;
  }

  std::filesystem::path dir_;
  asio::io_context io;
  asio::thread_pool workers{2};
  metrics_impl m;
  events_impl ev;
  pipeline_runner runner{io, m, logger("pipeline")};
  std::shared_ptr<spool> spool_;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread;
};

template <class F>
bool wait_for(F cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return cond();
}

retry_policy fast_retry() {
  retry_policy r;
  r.initial = std::chrono::milliseconds(40);
  r.max = std::chrono::milliseconds(200);
  r.lifetime = std::chrono::seconds(60);
  return r;
}

TEST(spool, retries_with_backoff_until_success_then_forgets) {
  sluice::test::temp_dir d;
  world w(d.path());
  auto st = std::make_shared<scripted_stage>([](unsigned a) {
    return a <= 3 ? verdict::tempfail(451, "4.4.1", "upstream down") : verdict::next();
  });
  w.install(st, fast_retry());
  auto start = std::chrono::steady_clock::now();
  auto r = w.submit("Subject: s\r\n\r\nhello\r\n");
  ASSERT_EQ(r.kind, verdict_kind::accept);
  // The files go before the queue count: wait for both.
  ASSERT_TRUE(wait_for(
      [&] { return st->attempts.size() == 4 && w.files() == 0 && w.spool_->queued() == 0; }));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st->attempts, (std::vector<unsigned>{1, 2, 3, 4}));
  for (auto p : st->phases)
    EXPECT_EQ(p, phase::deferred);
  // 40 + 80 + 160 ms of backoff at least (minus jitter).
  EXPECT_GT(took, std::chrono::milliseconds(200));
  EXPECT_EQ(st->bodies.back(), "Subject: s\r\n\r\nhello\r\n");  // the raw bytes, untouched
  EXPECT_EQ(w.spool_->queued(), 0u);
  auto text = w.m.render_prometheus();
  EXPECT_NE(text.find("sluice_deferred_attempts_total{stage=\"relay\",result=\"retry\"} 3"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("sluice_deferred_attempts_total{stage=\"relay\",result=\"done\"} 1"),
            std::string::npos)
      << text;
}

// A deferred stage that takes `hold` per attempt and records how many attempts ran at once
// and which message each attempt was for (its Subject).
class slow_stage final : public stage {
 public:
  explicit slow_stage(std::chrono::milliseconds hold) : hold_(hold) {}
  asio::awaitable<verdict> process(std::shared_ptr<message> msg, const stage_call&) override {
    {
      std::lock_guard lock(mu);
      max_running = std::max(max_running, ++running);
      order.push_back(msg->raw ? msg->raw->to_string() : "");
    }
    asio::steady_timer t(co_await asio::this_coro::executor, hold_);
    co_await t.async_wait(asio::use_awaitable);
    std::lock_guard lock(mu);
    --running;
    ++done;
    co_return verdict::next();
  }
  std::mutex mu;
  int running = 0, max_running = 0, done = 0;
  std::vector<std::string> order;

 private:
  std::chrono::milliseconds hold_;
};

// More messages due than the stage's concurrency: at most that many run at once, the rest
// wait their turn in the order they came due, and each runs once.
TEST(spool, attempts_beyond_the_stage_concurrency_wait_in_order_for_a_free_slot) {
  sluice::test::temp_dir d;
  world w(d.path());
  auto st = std::make_shared<slow_stage>(std::chrono::milliseconds(30));
  auto retry = fast_retry();
  retry.concurrency = 2;
  w.install(st, retry);
  std::vector<std::string> bodies;
  for (int i = 0; i < 12; ++i) {
    bodies.push_back("Subject: " + std::to_string(i) + "\r\n\r\nx\r\n");
    ASSERT_EQ(w.submit(bodies.back()).kind, verdict_kind::accept);
  }
  ASSERT_TRUE(wait_for([&] { return w.spool_->queued() == 0 && w.files() == 0; }));
  std::lock_guard lock(st->mu);
  EXPECT_EQ(st->done, 12);
  EXPECT_EQ(st->max_running, 2);
  // Started in the order they came due; each attempt reads its record on the worker pool
  // first, so attempts started together may reach the stage in either order, never farther
  // apart than the concurrency.
  ASSERT_EQ(st->order.size(), bodies.size());
  for (std::size_t i = 0; i < bodies.size(); ++i) {
    auto at = std::find(st->order.begin(), st->order.end(), bodies[i]);
    ASSERT_NE(at, st->order.end()) << bodies[i];
    const auto pos = static_cast<std::size_t>(at - st->order.begin());
    EXPECT_LT(pos > i ? pos - i : i - pos, 2u) << bodies[i] << " ran at position " << pos;
  }
  auto text = w.m.render_prometheus();
  EXPECT_NE(text.find("sluice_deferred_attempts_total{stage=\"relay\",result=\"done\"} 12"),
            std::string::npos)
      << text;
}

TEST(spool, reject_is_permanent_and_published) {
  sluice::test::temp_dir d;
  world w(d.path());
  std::vector<std::string> statuses;
  std::mutex mu;
  w.ev.subscribe([&](const event& e) {
    if (e.type != "delivery") return;
    std::lock_guard lock(mu);
    statuses.emplace_back(e.data.as_object().at("Status").as_string());
  });
  auto st = std::make_shared<scripted_stage>(
      [](unsigned) { return verdict::reject(550, "5.1.1", "no such user"); });
  w.install(st, fast_retry());
  ASSERT_EQ(w.submit("x\r\n").kind, verdict_kind::accept);
  ASSERT_TRUE(wait_for([&] {
    std::lock_guard lock(mu);
    return statuses.size() == 1;
  }));
  EXPECT_EQ(statuses[0], "failed");
  EXPECT_EQ(st->attempts.size(), 1u);
  EXPECT_TRUE(wait_for([&] { return w.files() == 0; }));
}

TEST(spool, expires_after_lifetime) {
  sluice::test::temp_dir d;
  world w(d.path());
  auto st = std::make_shared<scripted_stage>(
      [](unsigned) { return verdict::tempfail(451, "4.0.0", "no"); });
  auto r = fast_retry();
  r.lifetime = std::chrono::milliseconds(150);
  w.install(st, r);
  ASSERT_EQ(w.submit("x\r\n").kind, verdict_kind::accept);
  ASSERT_TRUE(wait_for([&] { return w.files() == 0; }));
  EXPECT_GE(st->attempts.size(), 1u);
  EXPECT_LE(st->attempts.size(), 5u);
  auto text = w.m.render_prometheus();
  EXPECT_NE(text.find("result=\"expired\"} 1"), std::string::npos) << text;
}

// A deferred stage whose attempt never ends (until its process "dies").
struct hanging final : stage {
  std::atomic<bool> started{false};
  asio::awaitable<verdict> process(std::shared_ptr<message>, const stage_call&) override {
    started = true;
    asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::hours(1));
    co_await t.async_wait(asio::use_awaitable);
    co_return verdict::next();
  }
};

TEST(spool, survives_a_crash_mid_attempt_and_keeps_edits) {
  sluice::test::temp_dir d;
  {
    world w(d.path());
    // The first process hangs in the deferred stage, then "dies" (its io_context stops
    // with the attempt still in flight).
    auto h = std::make_shared<hanging>();
    w.install(h, fast_retry());
    ASSERT_EQ(w.submit("Subject: crash\r\n\r\nbody\r\n").kind, verdict_kind::accept);
    ASSERT_TRUE(wait_for([&] { return h->started.load(); }));
    EXPECT_EQ(w.files(), 2u);  // .eml + .json
  }
  world w2(d.path());
  auto st = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w2.install(st, fast_retry());
  w2.spool_->recover();
  ASSERT_TRUE(wait_for([&] { return st->attempts.size() == 1 && w2.files() == 0; }));
  EXPECT_EQ(st->bodies[0], "Subject: crash\r\n\r\nbody\r\n");
}

// A header edit may keep 8-bit text that is not UTF-8 (a rewrite of a Latin-1 Subject): the
// record holding it must still load after a restart, or the deferred stages never run.
TEST(spool, a_record_with_an_edit_that_is_not_utf8_survives_a_restart) {
  sluice::test::temp_dir d;
  const std::string latin1 = "[tag] caf\xe9 \xff\xfe";
  {
    world w(d.path());
    auto h = std::make_shared<hanging>();
    w.install(h, fast_retry());
    ASSERT_EQ(w.submit("Subject: s\r\n\r\nbody\r\n", latin1).kind, verdict_kind::accept);
    ASSERT_TRUE(wait_for([&] { return h->started.load(); }));
  }
  world w2(d.path());
  auto st = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w2.install(st, fast_retry());
  w2.spool_->recover();
  ASSERT_TRUE(wait_for([&] { return st->attempts.size() == 1 && w2.files() == 0; }));
  EXPECT_EQ(st->outputs[0], "Subject: s\r\nX-Edit: " + latin1 + "\r\n\r\nbody\r\n");
}

}  // namespace

namespace {

// A stage with `after: relay, when: failed` runs once the relay failed for good, and sees
// how it ended in the attribute "deferred"; it never runs when the relay succeeded.
TEST(spool, after_failed_runs_only_once_the_stage_it_follows_failed) {
  sluice::test::temp_dir d;
  world w(d.path());
  auto relay = std::make_shared<scripted_stage>([](unsigned a) {
    return a < 3 ? verdict::tempfail(451, "4.4.1", "upstream down")
                 : verdict::reject(550, "5.1.1", "no such user");
  });
  auto notify = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w.install_after(relay, notify, "failed", fast_retry());
  ASSERT_EQ(w.submit("x\r\n").kind, verdict_kind::accept);
  ASSERT_TRUE(wait_for([&] { return w.files() == 0 && w.spool_->queued() == 0; }));
  std::lock_guard l1(relay->mu), l2(notify->mu);
  EXPECT_EQ(relay->attempts, (std::vector<unsigned>{1, 2, 3}));
  ASSERT_EQ(notify->attempts, (std::vector<unsigned>{1}));
  EXPECT_GE(notify->called_at[0], relay->called_at.back());
  const auto& deferred = notify->attributes[0].at("deferred").as_object();
  const auto& r = deferred.at("relay").as_object();
  EXPECT_EQ(r.at("status").as_string(), "failed");
  EXPECT_EQ(r.at("reply").as_string(), "550 5.1.1 no such user");
  EXPECT_EQ(r.at("attempts").as_int64(), 3);
}

TEST(spool, after_failed_is_skipped_when_the_stage_it_follows_succeeds) {
  sluice::test::temp_dir d;
  world w(d.path());
  auto relay = std::make_shared<scripted_stage>(
      [](unsigned a) { return a < 2 ? verdict::tempfail(451, "4.4.1", "down") : verdict::next(); });
  auto notify = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w.install_after(relay, notify, "failed", fast_retry());
  ASSERT_EQ(w.submit("x\r\n").kind, verdict_kind::accept);
  ASSERT_TRUE(wait_for([&] { return w.files() == 0 && w.spool_->queued() == 0; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard l1(relay->mu), l2(notify->mu);
  EXPECT_EQ(relay->attempts.size(), 2u);
  EXPECT_TRUE(notify->attempts.empty());
}

// `when: done` waits for the relay's retries and runs after its success; `settled` runs after
// either outcome.
TEST(spool, after_done_and_settled_wait_for_the_outcome) {
  for (const std::string when : {"done", "settled"}) {
    sluice::test::temp_dir d;
    world w(d.path());
    auto relay = std::make_shared<scripted_stage>([](unsigned a) {
      return a < 3 ? verdict::tempfail(451, "4.4.1", "down") : verdict::next();
    });
    auto notify = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
    w.install_after(relay, notify, when, fast_retry());
    ASSERT_EQ(w.submit("x\r\n").kind, verdict_kind::accept);
    ASSERT_TRUE(wait_for([&] { return w.files() == 0 && w.spool_->queued() == 0; })) << when;
    std::lock_guard l1(relay->mu), l2(notify->mu);
    EXPECT_EQ(relay->attempts.size(), 3u) << when;
    ASSERT_EQ(notify->attempts.size(), 1u) << when;
    EXPECT_GE(notify->called_at[0], relay->called_at.back()) << when;
    EXPECT_EQ(notify->attributes[0].at("deferred").at("relay").at("status").as_string(), "done");
  }
}

// A waiting stage survives a restart: the record keeps `after`/`when`, and the stage is
// released when the stage it follows settles in the next process.
TEST(spool, a_waiting_stage_survives_a_restart) {
  sluice::test::temp_dir d;
  {
    world w(d.path());
    auto relay = std::make_shared<scripted_stage>(
        [](unsigned) { return verdict::tempfail(451, "4.4.1", "down"); });
    auto notify = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
    retry_policy slow = fast_retry();
    slow.initial = std::chrono::seconds(30);
    slow.max = std::chrono::seconds(60);
    w.install_after(relay, notify, "failed", slow);
    ASSERT_EQ(w.submit("x\r\n").kind, verdict_kind::accept);
    ASSERT_TRUE(wait_for([&] {
      std::lock_guard l(relay->mu);
      return relay->attempts.size() == 1;
    }));
    std::lock_guard l(notify->mu);
    EXPECT_TRUE(notify->attempts.empty());
  }
  std::filesystem::path meta;
  for (auto& e : std::filesystem::directory_iterator(d.path() / "queue"))
    if (e.path().extension() == ".json") meta = e.path();
  const std::string record = sluice::test::read_file(meta);
  EXPECT_NE(record.find("\"status\":\"waiting\""), std::string::npos) << record;
  EXPECT_NE(record.find("\"after\":\"relay\""), std::string::npos) << record;
  // The relay's next attempt is 30 s away: make it due now, as if the time had passed.
  auto v = boost::json::parse(record);
  v.at("stages").at(0).as_object()["next_ms"] = 0;
  sluice::test::write_file(meta, boost::json::serialize(v));
  world w(d.path());
  auto relay = std::make_shared<scripted_stage>(
      [](unsigned) { return verdict::reject(550, "5.7.1", "refused"); });
  auto notify = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w.install_after(relay, notify, "failed", fast_retry());
  w.spool_->recover();
  ASSERT_TRUE(wait_for([&] { return w.files() == 0 && w.spool_->queued() == 0; }));
  std::lock_guard l1(relay->mu), l2(notify->mu);
  EXPECT_EQ(relay->attempts, (std::vector<unsigned>{2}));
  ASSERT_EQ(notify->attempts.size(), 1u);
  EXPECT_EQ(notify->attributes[0].at("deferred").at("relay").at("reply").as_string(),
            "550 5.7.1 refused");
}

// The spool takes the message before the committing stage stores it: held while the stage
// runs, in the spool once it accepts, gone when it refuses.
TEST(spool, a_message_is_held_while_the_committing_stage_runs) {
  sluice::test::temp_dir d;
  world w(d.path());
  std::vector<std::string> seen;  // the queue's file names while the store stage runs
  bool refuse = false;
  w.store_does = [&](unsigned) {
    for (auto& e : std::filesystem::directory_iterator(d.path() / "queue"))
      seen.push_back(e.path().filename().string());
    return refuse ? verdict::tempfail(451, "4.3.0", "store failed") : verdict::next();
  };
  auto relay = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w.install(relay, fast_retry());
  auto r = w.submit("Subject: held\r\n\r\nbody\r\n");
  ASSERT_EQ(r.kind, verdict_kind::accept);
  ASSERT_EQ(seen.size(), 2u);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen[0], r.id + ".eml");
  EXPECT_EQ(seen[1], r.id + ".json.held");
  ASSERT_TRUE(wait_for([&] {
    std::lock_guard l(relay->mu);
    return relay->attempts.size() == 1 && w.files() == 0;
  }));
  EXPECT_EQ(relay->bodies[0], "Subject: held\r\n\r\nbody\r\n");

  // The store refuses: nothing stays in the spool and no deferred stage runs.
  refuse = true;
  seen.clear();
  r = w.submit("Subject: refused\r\n\r\nbody\r\n");
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(w.files(), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard l(relay->mu);
  EXPECT_EQ(relay->attempts.size(), 1u);
}

// What the committing stage adds to the message reaches the deferred stages: the held
// record is rewritten when the message changed after it was written.
TEST(spool, what_the_committing_stage_adds_is_in_the_spooled_record) {
  sluice::test::temp_dir d;
  world w(d.path());
  class tagging final : public stage {
   public:
    asio::awaitable<verdict> process(std::shared_ptr<message> msg, const stage_call&) override {
      msg->attributes["stored_as"] = "42";
      co_return verdict::next();
    }
  };
  auto relay = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w.install(relay, fast_retry());
  // Replace the committing stage of the installed pipeline with the tagging one.
  auto set = std::make_shared<pipeline_set>(*w.runner.current());
  auto p = std::make_shared<pipeline>(*set->pipelines["p"]);
  p->inline_stages[0].impl = std::make_shared<tagging>();
  set->pipelines["p"] = p;
  w.runner.swap(set);
  ASSERT_EQ(w.submit("Subject: tag\r\n\r\nbody\r\n").kind, verdict_kind::accept);
  ASSERT_TRUE(wait_for([&] {
    std::lock_guard l(relay->mu);
    return relay->attempts.size() == 1;
  }));
  std::lock_guard l(relay->mu);
  EXPECT_EQ(relay->attributes[0].at("stored_as").as_string(), "42");
}

// A crash between the hold and the release: the message was never acknowledged, so the
// restart removes it and runs nothing for it.
TEST(spool, a_held_message_found_at_start_is_removed_unrun) {
  sluice::test::temp_dir d;
  std::string id;
  {
    world w(d.path());
    auto relay = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
    w.install(relay, fast_retry());
    ASSERT_EQ(w.submit("Subject: a\r\n\r\nbody\r\n").kind, verdict_kind::accept);
    ASSERT_TRUE(wait_for([&] { return w.files() == 0; }));
  }
  // What a process killed inside the store stage leaves behind.
  sluice::test::write_file(d.path() / "queue/M1.eml", "Subject: b\r\n\r\nbody\r\n");
  sluice::test::write_file(
      d.path() / "queue/M1.json.held",
      R"({"id":"M1","pipeline":"p","created_ms":1,"stages":[{"name":"relay",)"
      R"("status":"pending","attempts":0,"next_ms":1,"last":""}],"message":{}})");
  world w2(d.path());
  auto relay = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w2.install(relay, fast_retry());
  w2.spool_->recover();
  EXPECT_EQ(w2.files(), 0u);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::lock_guard l(relay->mu);
  EXPECT_TRUE(relay->attempts.empty());
  EXPECT_EQ(w2.spool_->queued(), 0u);
}

// Below min_free_space the spool refuses before the committing stage runs: 452 4.3.1, and
// nothing was stored that the client's retry would store again.
TEST(spool, below_min_free_space_the_message_is_refused_before_it_is_stored) {
  sluice::test::temp_dir d;
  world w(d.path(), std::numeric_limits<std::uint64_t>::max() / 2);
  auto relay = std::make_shared<scripted_stage>([](unsigned) { return verdict::next(); });
  w.install(relay, fast_retry());
  auto r = w.submit("Subject: full\r\n\r\nbody\r\n");
  EXPECT_EQ(r.kind, verdict_kind::tempfail);
  EXPECT_EQ(r.reply.code, 452);
  EXPECT_EQ(r.reply.enhanced, "4.3.1");
  std::lock_guard l(w.store_stage->mu);
  EXPECT_TRUE(w.store_stage->attempts.empty());
  EXPECT_EQ(w.files(), 0u);
}

}  // namespace
