// session_test.cpp — sluice::session_lifecycle (deadlines and watchdog, connection slot
// and metrics, drain-gate hookup), register_connection_metrics and run_logging_failure.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "sluice/host.hpp"
#include "sluice/session.hpp"

namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using admission = sluice::session_lifecycle::admission;

// A counter or a gauge (value() overrides both).
class fake_value final : public sluice::counter, public sluice::gauge {
 public:
  void inc(double v) override { value_ += v; }
  void set(double v) override { value_ = v; }
  void add(double v) override { value_ += v; }
  double value() const override { return value_; }

 private:
  double value_ = 0;
};

class fake_histogram final : public sluice::histogram {
 public:
  void observe(double) override {}
};

// Keeps what was registered by name, with its help text.
class fake_metrics final : public sluice::metrics {
 public:
  sluice::counter& get_counter(std::string_view name, std::string_view help,
                               const sluice::metric_labels& labels) override {
    help_[std::string(name)] = help;
    labels_[std::string(name)] = labels;
    return counters_[std::string(name)];
  }
  sluice::gauge& get_gauge(std::string_view name, std::string_view help,
                           const sluice::metric_labels&) override {
    help_[std::string(name)] = help;
    return gauges_[std::string(name)];
  }
  sluice::histogram& get_histogram(std::string_view, std::string_view, const sluice::metric_labels&,
                                   std::vector<double>) override {
    return histogram_;
  }
  std::string render_prometheus() const override { return {}; }

  std::map<std::string, std::string> help_;
  std::map<std::string, sluice::metric_labels> labels_;
  std::map<std::string, fake_value> counters_;
  std::map<std::string, fake_value> gauges_;
  fake_histogram histogram_;
};

// Holds at most one service: the metrics registry, when set.
class fake_registry final : public sluice::service_registry {
 public:
  void add(std::string_view, std::string_view, std::shared_ptr<sluice::service>) override {
    throw std::logic_error("read-only");
  }
  std::shared_ptr<sluice::service> find(std::string_view kind, std::string_view) const override {
    return kind == sluice::metrics::kind ? metrics_ : nullptr;
  }
  std::vector<std::string> names(std::string_view) const override { return {}; }
  void declare(std::string_view, std::string_view) override { throw std::logic_error("read-only"); }
  bool declared(std::string_view kind, std::string_view name) const override {
    return find(kind, name) != nullptr;
  }

  std::shared_ptr<sluice::service> metrics_;
};

class fake_host final : public sluice::host {
 public:
  asio::io_context& io() override { return io_; }
  asio::thread_pool& workers() override { return pool_; }
  sluice::service_registry& services() override { return registry_; }
  const std::filesystem::path& spool_dir() const override { return dir_; }
  const std::filesystem::path& config_dir() const override { return dir_; }
  std::size_t spill_threshold() const override { return 0; }
  bool durability_full() const override { return false; }

  asio::io_context io_;
  asio::thread_pool pool_{1};
  fake_registry registry_;
  std::filesystem::path dir_;
};

class fake_context final : public sluice::listener_context {
 public:
  asio::awaitable<sluice::submit_result> submit(std::shared_ptr<sluice::message>) override {
    co_return sluice::submit_result{};
  }
  const std::string& pipeline() const override { return pipeline_; }
  std::shared_ptr<sluice::gate> drain_gate() const override { return gate_; }

  std::string pipeline_;
  std::shared_ptr<sluice::gate> gate_ = sluice::gate::make();
};

// Counts what the lifecycle does to the connection.
class fake_transport final : public sluice::transport {
 public:
  asio::awaitable<std::size_t> read_some(asio::mutable_buffer,
                                         boost::system::error_code&) override {
    co_return 0;
  }
  asio::awaitable<void> write(asio::const_buffer, boost::system::error_code&) override {
    co_return;
  }
  asio::awaitable<void> start_tls(asio::ssl::context&, boost::system::error_code& ec) override {
    ++handshakes;
    if (fail_tls) ec = asio::error::connection_reset;
    co_return;
  }
  asio::awaitable<void> shutdown_tls(std::chrono::milliseconds) override {
    ++tls_shutdowns;
    co_return;
  }
  void cancel() override { ++cancels; }
  void close() override { ++closes; }
  bool is_tls() const override { return tls; }
  std::string tls_version() const override { return {}; }
  std::string tls_cipher() const override { return {}; }

  int cancels = 0;
  int closes = 0;
  int handshakes = 0;
  int tls_shutdowns = 0;
  bool fail_tls = false;
  bool tls = false;
};

// One listener: its shared state, metrics, drain gate and io_context.
struct listener_fixture : ::testing::Test {
  listener_fixture() {
    st.log = sluice::logger("session_test");
    cm = sluice::register_connection_metrics(m, "test", "TEST", {});
  }
  fake_host host;
  fake_context ctx;
  sluice::listener_state st{host, ctx};
  fake_metrics m;
  sluice::connection_metrics cm;

  double counter(const std::string& name) { return m.counters_[name].value(); }
  double active() { return m.gauges_["sluice_test_sessions_active"].value(); }
};

// What a protocol session holds: its transport and, after it, the lifecycle.
struct fake_session {
  fake_session(listener_fixture& f, sluice::session_lifecycle::limits l)
      : life(f.host.io_.get_executor(), f.st, f.cm, t, l) {}
  fake_transport t;
  sluice::session_lifecycle life;
};

std::shared_ptr<sluice::session_lifecycle> alias(const std::shared_ptr<fake_session>& s) {
  return {s, &s->life};
}

constexpr sluice::session_lifecycle::limits long_limits{
    .idle_timeout = 10s, .session_timeout = 60s, .max_connections = 2};

using session_lifecycle_test = listener_fixture;

TEST_F(session_lifecycle_test, registers_the_connection_metrics_by_protocol) {
  EXPECT_EQ(m.help_["sluice_test_connections_total"], "TEST connections accepted");
  EXPECT_EQ(m.help_["sluice_test_connections_refused_total"],
            "TEST connections refused (limit, drain)");
  EXPECT_EQ(m.help_["sluice_test_sessions_active"], "TEST sessions open");
  EXPECT_EQ(m.help_["sluice_test_timeouts_total"], "TEST sessions timed out");
  EXPECT_EQ(cm.connections, &m.counters_["sluice_test_connections_total"]);
  EXPECT_EQ(cm.sessions_active, &m.gauges_["sluice_test_sessions_active"]);
  EXPECT_EQ(m.help_.size(), 4u);
}

TEST_F(session_lifecycle_test, registers_a_listeners_metrics_labelled_with_its_name) {
  st.name = "inbound";
  sluice::connection_metrics out;
  EXPECT_EQ(sluice::register_connection_metrics(st, out, "smtp", "SMTP"), nullptr);
  EXPECT_EQ(out.connections, nullptr);  // no metrics service: left alone

  auto reg = std::make_shared<fake_metrics>();
  host.registry_.metrics_ = reg;
  EXPECT_EQ(sluice::register_connection_metrics(st, out, "smtp", "SMTP"), reg);
  EXPECT_EQ(out.connections, &reg->counters_["sluice_smtp_connections_total"]);
  EXPECT_EQ(out.connections_refused, &reg->counters_["sluice_smtp_connections_refused_total"]);
  EXPECT_EQ(out.sessions_active, &reg->gauges_["sluice_smtp_sessions_active"]);
  EXPECT_EQ(out.timeouts, &reg->counters_["sluice_smtp_timeouts_total"]);
  EXPECT_EQ(reg->help_["sluice_smtp_connections_total"], "SMTP connections accepted");
  sluice::metric_labels want{{"listener", "inbound"}};
  EXPECT_EQ(reg->labels_["sluice_smtp_timeouts_total"], want);
  EXPECT_EQ(sluice::with_label(want, "result", "ok"),
            (sluice::metric_labels{{"listener", "inbound"}, {"result", "ok"}}));
}

TEST_F(session_lifecycle_test, counts_the_connection_and_gives_the_slot_back_once) {
  auto s = std::make_shared<fake_session>(*this, long_limits);
  EXPECT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
  EXPECT_EQ(st.connections.load(), 1u);
  EXPECT_EQ(counter("sluice_test_connections_total"), 1);
  EXPECT_EQ(active(), 1);
  EXPECT_EQ(ctx.gate_->count(), 1u);
  EXPECT_FALSE(s->life.closed());

  EXPECT_TRUE(s->life.close());
  EXPECT_TRUE(s->life.closed());
  EXPECT_EQ(s->t.closes, 1);
  EXPECT_EQ(st.connections.load(), 0u);
  EXPECT_EQ(active(), 0);
  EXPECT_EQ(ctx.gate_->count(), 1u);  // held until leave()
  EXPECT_FALSE(s->life.close());      // only the first close counts
  EXPECT_EQ(s->t.closes, 1);
  EXPECT_EQ(st.connections.load(), 0u);
  s->life.leave();
  EXPECT_EQ(ctx.gate_->count(), 0u);
  host.io_.run();  // the watchdog ends once closed
  EXPECT_EQ(counter("sluice_test_timeouts_total"), 0);
}

TEST_F(session_lifecycle_test, refuses_over_max_connections_and_counts_the_refusal) {
  auto a = std::make_shared<fake_session>(*this, long_limits);
  auto b = std::make_shared<fake_session>(*this, long_limits);
  auto c = std::make_shared<fake_session>(*this, long_limits);
  EXPECT_EQ(a->life.begin(alias(a), st.log, "a"), admission::admitted);
  EXPECT_EQ(b->life.begin(alias(b), st.log, "b"), admission::admitted);
  EXPECT_EQ(c->life.begin(alias(c), st.log, "c"), admission::too_many);
  EXPECT_EQ(counter("sluice_test_connections_refused_total"), 1);
  EXPECT_EQ(counter("sluice_test_connections_total"), 3);
  EXPECT_EQ(st.connections.load(), 3u);  // the refused one is open until it closes
  c->life.close();
  EXPECT_EQ(st.connections.load(), 2u);
  a->life.close();
  // A slot given back admits the next connection.
  auto d = std::make_shared<fake_session>(*this, long_limits);
  EXPECT_EQ(d->life.begin(alias(d), st.log, "d"), admission::admitted);
  for (auto* s : {b.get(), d.get()})
    s->life.close();
  EXPECT_EQ(st.connections.load(), 0u);
  EXPECT_EQ(active(), 0);
  host.io_.run();
}

TEST_F(session_lifecycle_test, refuses_when_the_drain_gate_is_closed) {
  ctx.gate_->close();
  auto s = std::make_shared<fake_session>(*this, long_limits);
  EXPECT_EQ(s->life.begin(alias(s), st.log, "client"), admission::draining);
  EXPECT_EQ(counter("sluice_test_connections_refused_total"), 1);
  EXPECT_EQ(ctx.gate_->count(), 0u);
  s->life.close();
  EXPECT_EQ(st.connections.load(), 0u);
  host.io_.run();
}

TEST_F(session_lifecycle_test, drain_cancels_the_read_of_an_idle_session_only) {
  auto idle = std::make_shared<fake_session>(*this, long_limits);
  auto busy = std::make_shared<fake_session>(*this, long_limits);
  ASSERT_EQ(idle->life.begin(alias(idle), st.log, "idle"), admission::admitted);
  ASSERT_EQ(busy->life.begin(alias(busy), st.log, "busy"), admission::admitted);
  idle->life.set_idle(true);
  bool gate_idle = false;
  ctx.gate_->close([&] { gate_idle = true; });
  EXPECT_FALSE(idle->life.draining());  // posted to the session's executor
  host.io_.poll();
  EXPECT_TRUE(idle->life.draining());
  EXPECT_TRUE(busy->life.draining());
  EXPECT_EQ(idle->t.cancels, 1);
  EXPECT_EQ(busy->t.cancels, 0);
  for (auto* s : {idle.get(), busy.get()}) {
    s->life.close();
    s->life.leave();
  }
  EXPECT_TRUE(gate_idle);
  host.io_.run();
}

TEST_F(session_lifecycle_test, a_closed_or_gone_session_is_not_told_of_the_drain) {
  auto closed = std::make_shared<fake_session>(*this, long_limits);
  auto gone = std::make_shared<fake_session>(*this, long_limits);
  ASSERT_EQ(closed->life.begin(alias(closed), st.log, "closed"), admission::admitted);
  ASSERT_EQ(gone->life.begin(alias(gone), st.log, "gone"), admission::admitted);
  closed->life.set_idle(true);
  closed->life.close();
  gone->life.close();
  gone->life.leave();
  host.io_.run();  // both watchdogs end and drop their references
  EXPECT_EQ(gone.use_count(), 1);
  gone.reset();
  ctx.gate_->close();
  host.io_.restart();
  host.io_.run();
  EXPECT_FALSE(closed->life.draining());
  EXPECT_EQ(closed->t.cancels, 0);
}

TEST_F(session_lifecycle_test, idle_timeout_cancels_then_closes_after_the_grace) {
  auto s = std::make_shared<fake_session>(
      *this, sluice::session_lifecycle::limits{.idle_timeout = 30ms,
                                               .session_timeout = 60s,
                                               .max_connections = 10,
                                               .final_write_grace = 40ms});
  // Before begin(): the deadline counts from begin()'s clock, so a later start could make
  // the measured wait look a little shorter than the timeout.
  auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
  while (s->t.cancels == 0 && std::chrono::steady_clock::now() - start < 5s)
    host.io_.run_one_for(100ms);
  EXPECT_EQ(s->t.cancels, 1);
  EXPECT_TRUE(s->life.timed_out());
  EXPECT_FALSE(s->life.session_time_exceeded());  // it was the idle deadline
  EXPECT_EQ(counter("sluice_test_timeouts_total"), 1);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 30ms);
  EXPECT_EQ(s->t.closes, 0);
  s->life.arm();  // the grace deadline stands
  // The session never closed: the watchdog closes the transport and ends.
  host.io_.run_for(5s);
  EXPECT_TRUE(host.io_.stopped());
  EXPECT_EQ(s->t.closes, 1);
  EXPECT_EQ(s->t.cancels, 1);
  EXPECT_EQ(counter("sluice_test_timeouts_total"), 1);
  EXPECT_EQ(s.use_count(), 1);  // the watchdog let go
  s->life.close();
}

TEST_F(session_lifecycle_test, arm_moves_the_idle_deadline) {
  auto s = std::make_shared<fake_session>(
      *this, sluice::session_lifecycle::limits{
                 .idle_timeout = 1s, .session_timeout = 60s, .max_connections = 10});
  ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
  auto start = std::chrono::steady_clock::now();
  // Activity every 20 ms for 1.5 s: never idle for 1 s.
  while (std::chrono::steady_clock::now() - start < 1500ms) {
    host.io_.run_for(20ms);
    s->life.arm();
  }
  EXPECT_EQ(s->t.cancels, 0);
  EXPECT_FALSE(s->life.timed_out());
  s->life.close();
  host.io_.run();
}

TEST_F(session_lifecycle_test, the_session_deadline_bounds_the_idle_one) {
  auto s = std::make_shared<fake_session>(
      *this, sluice::session_lifecycle::limits{
                 .idle_timeout = 10s, .session_timeout = 50ms, .max_connections = 10});
  ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
  auto start = std::chrono::steady_clock::now();
  while (s->t.cancels == 0 && std::chrono::steady_clock::now() - start < 5s) {
    s->life.arm();
    host.io_.run_one_for(10ms);
  }
  EXPECT_EQ(s->t.cancels, 1);
  EXPECT_TRUE(s->life.session_time_exceeded());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  s->life.close();
  host.io_.run();
}

TEST_F(session_lifecycle_test, limit_session_end_brings_the_deadline_forward_until_restored) {
  auto s = std::make_shared<fake_session>(*this, long_limits);
  ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
  s->life.limit_session_end(std::chrono::steady_clock::now());
  EXPECT_TRUE(s->life.session_time_exceeded());
  s->life.restore_session_end();
  EXPECT_FALSE(s->life.session_time_exceeded());
  s->life.close();
  host.io_.run();
}

TEST_F(session_lifecycle_test, start_tls_reports_a_failed_handshake) {
  auto s = std::make_shared<fake_session>(*this, long_limits);
  ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
  asio::ssl::context tls(asio::ssl::context::tls_server);
  std::optional<bool> first, second;
  asio::co_spawn(
      host.io_,
      [&]() -> asio::awaitable<void> {
        first = co_await s->life.start_tls(tls, st.log);
        s->t.fail_tls = true;
        second = co_await s->life.start_tls(tls, st.log);
        s->life.close();
      },
      asio::detached);
  host.io_.run();
  EXPECT_EQ(first, true);
  EXPECT_EQ(second, false);
  EXPECT_EQ(s->t.handshakes, 2);
}

// end_tls sends close_notify only on a live TLS session: not in plain text, not after a
// timeout (the peer stopped reading), not once closed.
TEST_F(session_lifecycle_test, end_tls_shuts_tls_down_only_when_it_can) {
  auto run_end_tls = [&](fake_session& s) {
    asio::co_spawn(host.io_, s.life.end_tls(), asio::detached);
    host.io_.restart();
    host.io_.run_for(1s);
  };
  {
    auto s = std::make_shared<fake_session>(*this, long_limits);
    ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
    run_end_tls(*s);
    EXPECT_EQ(s->t.tls_shutdowns, 0);  // plain text
    s->t.tls = true;
    run_end_tls(*s);
    EXPECT_EQ(s->t.tls_shutdowns, 1);
    s->life.close();
    run_end_tls(*s);
    EXPECT_EQ(s->t.tls_shutdowns, 1);  // closed
  }
  {
    auto s = std::make_shared<fake_session>(
        *this, sluice::session_lifecycle::limits{.idle_timeout = 20ms,
                                                 .session_timeout = 60s,
                                                 .max_connections = 10,
                                                 .final_write_grace = 5s});
    s->t.tls = true;
    ASSERT_EQ(s->life.begin(alias(s), st.log, "client"), admission::admitted);
    host.io_.restart();
    const auto start = std::chrono::steady_clock::now();
    while (!s->life.timed_out() && std::chrono::steady_clock::now() - start < 5s)
      host.io_.run_one_for(100ms);
    ASSERT_TRUE(s->life.timed_out());
    run_end_tls(*s);
    EXPECT_EQ(s->t.tls_shutdowns, 0);  // timed out
    s->life.close();
    host.io_.restart();
    host.io_.run_for(100ms);
  }
}

TEST(run_logging_failure, swallows_what_the_body_throws) {
  asio::io_context io;
  sluice::logger log("session_test");
  int after = 0;
  auto throwing = []() -> asio::awaitable<void> {
    throw std::runtime_error("boom");
    co_return;
  };
  auto fine = [](int& n) -> asio::awaitable<void> {
    ++n;
    co_return;
  };
  std::exception_ptr escaped;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await sluice::run_logging_failure(throwing(), log);
        co_await sluice::run_logging_failure(fine(after), log);
        ++after;
      },
      [&](std::exception_ptr e) { escaped = e; });
  io.run();
  EXPECT_FALSE(escaped);
  EXPECT_EQ(after, 2);
}

}  // namespace
