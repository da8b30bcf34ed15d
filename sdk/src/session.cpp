// sdk/src/session.cpp — see sluice/session.hpp for the contract.
#include "sluice/session.hpp"

#include <exception>
#include <utility>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {
namespace asio = boost::asio;
using asio::awaitable;

connection_metrics register_connection_metrics(metrics& m, std::string_view protocol,
                                               std::string_view display,
                                               const metric_labels& labels) {
  const std::string p = "sluice_" + std::string(protocol);
  const std::string d(display);
  connection_metrics r;
  r.connections = &m.get_counter(p + "_connections_total", d + " connections accepted", labels);
  r.connections_refused = &m.get_counter(p + "_connections_refused_total",
                                         d + " connections refused (limit, drain)", labels);
  r.sessions_active = &m.get_gauge(p + "_sessions_active", d + " sessions open", labels);
  r.timeouts = &m.get_counter(p + "_timeouts_total", d + " sessions timed out", labels);
  return r;
}

std::shared_ptr<metrics> register_connection_metrics(const listener_state& st,
                                                     connection_metrics& out,
                                                     std::string_view protocol,
                                                     std::string_view display) {
  auto m = st.host.services().get<metrics>();
  if (m) out = register_connection_metrics(*m, protocol, display, {{"listener", st.name}});
  return m;
}

metric_labels with_label(metric_labels labels, std::string key, std::string value) {
  labels.emplace_back(std::move(key), std::move(value));
  return labels;
}

awaitable<void> run_logging_failure(awaitable<void> body, const logger& log) {
  try {
    co_await std::move(body);
  } catch (const std::exception& e) {
    log.error("session failed", {{"error", e.what()}});
  } catch (...) {
    log.error("session failed", {{"error", "unknown exception"}});
  }
}

session_lifecycle::session_lifecycle(asio::any_io_executor ex, listener_state& st,
                                     const connection_metrics& m, transport& t, limits l)
    : ex_(ex), st_(st), metrics_(m), t_(t), limits_(l), timer_(ex) {}

session_lifecycle::admission session_lifecycle::begin(std::shared_ptr<session_lifecycle> self,
                                                      const logger& log, std::string_view client) {
  started_ = clock::now();
  session_end_ = started_ + limits_.session_timeout;
  deadline_ = std::min(started_ + limits_.idle_timeout, session_end_);
  asio::co_spawn(
      ex_, [self]() { return self->watchdog(self); }, asio::detached);

  counted_ = true;
  std::size_t now_open = st_.connections.fetch_add(1) + 1;
  if (metrics_.connections) metrics_.connections->inc();
  if (metrics_.sessions_active) metrics_.sessions_active->add(1);

  if (auto g = st_.lctx.drain_gate()) {
    gate_holder_ = g->try_enter();
    if (!gate_holder_) {
      if (metrics_.connections_refused) metrics_.connections_refused->inc();
      return admission::draining;
    }
    // Runs on the thread that closes the gate: hop onto the session's strand.
    drain_token_ = g->on_close([w = std::weak_ptr<session_lifecycle>(self), ex = ex_] {
      asio::post(ex, [w] {
        if (auto s = w.lock()) s->on_drain();
      });
    });
  }
  if (now_open > limits_.max_connections) {
    if (metrics_.connections_refused) metrics_.connections_refused->inc();
    log.warn("connection refused: too many connections",
             {{"client", client}, {"limit", limits_.max_connections}});
    return admission::too_many;
  }
  return admission::admitted;
}

std::int64_t session_lifecycle::elapsed_ms() const noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started_).count();
}

awaitable<bool> session_lifecycle::start_tls(asio::ssl::context& ctx, const logger& log) {
  boost::system::error_code ec;
  arm();
  co_await t_.start_tls(ctx, ec);
  if (ec) {
    log.info("TLS handshake failed", {{"error", ec.message()}});
    co_return false;
  }
  co_return true;
}

awaitable<void> session_lifecycle::end_tls() {
  if (closed_ || timed_out_ || !t_.is_tls()) co_return;
  arm();  // the wait is bounded by tls_close_wait, not by an idle deadline falling inside it
  co_await t_.shutdown_tls(tls_close_wait);
}

bool session_lifecycle::close() {
  if (closed_) return false;
  closed_ = true;
  timer_.cancel();
  t_.close();
  if (drain_token_ != 0) {
    if (auto g = st_.lctx.drain_gate()) g->cancel(drain_token_);
  }
  if (counted_) {
    st_.connections.fetch_sub(1);
    if (metrics_.sessions_active) metrics_.sessions_active->add(-1);
  }
  return true;
}

awaitable<void> session_lifecycle::watchdog(
    [[maybe_unused]] std::shared_ptr<session_lifecycle> self) {  // keeps the session alive
  while (!closed_) {
    timer_.expires_at(deadline_);
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (closed_) co_return;
    auto now = clock::now();
    if (now < deadline_) continue;  // re-armed by I/O meanwhile
    if (!timed_out_) {
      // First expiry: abort the pending I/O; the session says why within the grace time.
      timed_out_ = true;
      if (metrics_.timeouts) metrics_.timeouts->inc();
      deadline_ = now + limits_.final_write_grace;
      t_.cancel();
    } else {
      t_.close();  // the peer does not even read our last reply
      co_return;
    }
  }
}

void session_lifecycle::on_drain() {
  if (closed_) return;
  draining_ = true;
  if (idle_) t_.cancel();
}

}  // namespace sluice
