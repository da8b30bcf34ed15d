// sluice/session.hpp — the lifecycle of one client connection of a listener: what a
// session does before its first reply and after its last, whatever its protocol.
//
// The smtp and pop3 listeners build their sessions on it (the http listener shares
// listener_state); a third-party protocol plugin gets the same timeouts, connection
// limit, metrics and drain behaviour by doing the same:
//
//   struct server_state : sluice::listener_state {   // what every session shares
//     using listener_state::listener_state;
//     my_settings cfg;
//     my_metrics metrics;                              // derives from connection_metrics
//   };
//
//   class session : public std::enable_shared_from_this<session> {
//     ...
//     std::unique_ptr<sluice::transport> t_;
//     sluice::session_lifecycle life_;  // after t_: holds a reference to *t_
//   };
//   session::session(...) : ..., life_(ex, *st_, st_->metrics, *t_, {idle, total, max}) {}
//
//   awaitable<void> session::run() {       // what the listener co_spawns
//     auto self = shared_from_this();
//     co_await sluice::run_logging_failure(run_inner(), log_);
//     co_await life_.end_tls();  // close_notify, when the session speaks TLS
//     if (life_.close()) { log_.info("session close", ...); life_.leave(); }
//   }
//   awaitable<void> session::run_inner() {
//     switch (life_.begin({shared_from_this(), &life_}, log_, client_text)) {
//       case admission::draining: /* the protocol's "shutting down" reply */ co_return;
//       case admission::too_many: /* the protocol's "too many connections" */ co_return;
//       case admission::admitted: break;
//     }
//     ...   // life_.arm() before every read and write; life_.set_idle(true) around the
//           // read that waits for the next command; stop at life_.draining()
//   }
//
//   // The listener factory: one session per accepted connection.
//   return std::make_shared<sluice::session_listener<session, server_state>>(
//       st, st->cfg.listen, std::vector<sluice::log_field>{{"tls", "off"}});
//
// Threading: a session_lifecycle belongs to one session and is used only on that
// session's strand (the executor given to the constructor). The one cross-thread entry,
// the drain gate's on_close callback, posts to that strand. listener_state::connections
// is atomic: every session of a listener counts itself in it.
// Costs: begin() allocates the watchdog coroutine and the drain callback once per
// connection; arm(), the flags and set_idle() are inline and allocate nothing, so they
// may run per line.
// Failure: nothing here throws after construction; run_logging_failure() turns an
// exception escaping a session into one "session failed" error log line.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "sluice/acceptor.hpp"
#include "sluice/gate.hpp"
#include "sluice/host.hpp"
#include "sluice/listen.hpp"
#include "sluice/listener.hpp"
#include "sluice/log.hpp"
#include "sluice/metrics.hpp"
#include "sluice/transport.hpp"

namespace sluice {

// What every connection of one listener shares. A listener's own server_state derives
// from it and adds its settings, services and metrics; the listener and every session
// hold it by shared_ptr, so a session may outlive listener::stop(). The kernel keeps the
// listener_context alive until the drain gate, which sessions hold, is idle.
struct listener_state {
  listener_state(sluice::host& h, listener_context& l) : host(h), lctx(l) {}
  listener_state(const listener_state&) = delete;
  listener_state& operator=(const listener_state&) = delete;

  sluice::host& host;
  listener_context& lctx;
  std::string name;  // listener instance name
  sluice::logger log;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null when TLS is off
  std::atomic<std::size_t> connections{0};         // sessions open now
};

// A listener's connection metrics; any handle may be null (no metrics service). A
// protocol's own metrics struct derives from it and adds the rest.
struct connection_metrics {
  counter* connections = nullptr;          // connections accepted
  counter* connections_refused = nullptr;  // refused: over max_connections or draining
  gauge* sessions_active = nullptr;        // sessions open now
  counter* timeouts = nullptr;             // sessions ended by the idle or total timeout
};

// Registers the four in `m` with `labels`, named for `protocol` (lower case, e.g. "pop3")
// and helped for `display` (e.g. "POP3"): sluice_<protocol>_connections_total
// ("<display> connections accepted"), sluice_<protocol>_connections_refused_total
// ("<display> connections refused (limit, drain)"), sluice_<protocol>_sessions_active
// ("<display> sessions open") and sluice_<protocol>_timeouts_total ("<display> sessions
// timed out"). Registering twice returns the same handles.
connection_metrics register_connection_metrics(metrics& m, std::string_view protocol,
                                               std::string_view display,
                                               const metric_labels& labels);

// The same for a listener: registers them in st's host's metrics service with the label
// listener=<st.name> into `out`, and returns that service (for the protocol's own
// metrics). Null, and `out` left alone, when the host has no metrics service.
std::shared_ptr<metrics> register_connection_metrics(const listener_state& st,
                                                     connection_metrics& out,
                                                     std::string_view protocol,
                                                     std::string_view display);

// `labels` with one more pair; for a metric family split by a label such as result.
metric_labels with_label(metric_labels labels, std::string key, std::string value);

// Awaits `body` and swallows what it throws, logging it to `log` as the error
// "session failed" with the exception's message ("unknown exception" when it is not a
// std::exception). For a session's run(): nothing escapes into co_spawn.
boost::asio::awaitable<void> run_logging_failure(boost::asio::awaitable<void> body,
                                                 const logger& log);

// One connection's deadlines, watchdog, connection slot and drain-gate entry.
//
// Deadlines: begin() starts the clock. Each arm() (call it before every read and write)
// moves the idle deadline to now + idle_timeout, never past the total session deadline
// (start + session_timeout). When the deadline passes, the watchdog counts a timeout,
// cancels the transport's pending I/O (the read or write completes with
// operation_aborted) and gives the session limits::final_write_grace to say why and end;
// if it has not closed by then, the watchdog closes the transport.
//
// Drain: when the listener's drain gate closes, draining() becomes true and, if the
// session is idle (set_idle(true): waiting for the next command), its pending read is
// cancelled; a busy session finishes its work and sees draining() at the next command.
class session_lifecycle {
 public:
  using clock = std::chrono::steady_clock;

  struct limits {
    std::chrono::milliseconds idle_timeout;     // between two I/O operations
    std::chrono::milliseconds session_timeout;  // the whole connection
    std::size_t max_connections;                // sessions open at once on the listener
    // How long a timed-out session has to write its last reply before it is closed.
    std::chrono::milliseconds final_write_grace{std::chrono::seconds(10)};
  };

  enum class admission : std::uint8_t {
    admitted,  // go on: greet the client
    draining,  // the drain gate is closed: send the protocol's "shutting down" and end
    too_many,  // over max_connections: send the protocol's "try again later" and end
  };

  // st, m and t must outlive this object (the session holds them); nothing starts yet.
  session_lifecycle(boost::asio::any_io_executor ex, listener_state& st,
                    const connection_metrics& m, transport& t, limits l);
  session_lifecycle(const session_lifecycle&) = delete;
  session_lifecycle& operator=(const session_lifecycle&) = delete;

  // Starts the deadlines and the watchdog, counts the connection (connections, the
  // listener's open count, sessions_active), enters the drain gate (when there is one)
  // and checks max_connections, in that order. `self` points at this object and shares
  // ownership of the session holding it (the aliasing shared_ptr constructor): the
  // watchdog keeps it until it ends, the drain callback keeps only a weak_ptr. A refusal
  // counts connections_refused; too_many also logs the warning "connection refused: too
  // many connections" with `client` and the limit to `log`. Call once, before any I/O.
  admission begin(std::shared_ptr<session_lifecycle> self, const logger& log,
                  std::string_view client);

  // Moves the idle deadline (see above); after a timeout the grace deadline stands.
  void arm() noexcept {
    if (timed_out_) return;
    deadline_ = std::min(clock::now() + limits_.idle_timeout, session_end_);
  }
  // Brings the total deadline forward to `t` at the latest (e.g. a PROXY header must
  // arrive within its own timeout), until restore_session_end().
  void limit_session_end(clock::time_point t) noexcept { session_end_ = std::min(session_end_, t); }
  void restore_session_end() noexcept { session_end_ = started_ + limits_.session_timeout; }

  // Marks the session idle (waiting for the next command) or busy; a drain notice
  // cancels the pending read of an idle session only.
  void set_idle(bool idle) noexcept { idle_ = idle; }
  bool idle() const noexcept { return idle_; }
  bool draining() const noexcept { return draining_; }
  // The watchdog fired: pending I/O was cancelled for a timeout.
  bool timed_out() const noexcept { return timed_out_; }
  // The total session deadline has passed (after timed_out(): it was not the idle one).
  bool session_time_exceeded() const noexcept { return clock::now() >= session_end_; }
  bool closed() const noexcept { return closed_; }
  // Milliseconds since begin().
  std::int64_t elapsed_ms() const noexcept;

  // Arms, then runs the server-side TLS handshake on the transport; false, with the info
  // log "TLS handshake failed" and the error, when it failed.
  boost::asio::awaitable<bool> start_tls(boost::asio::ssl::context& ctx, const logger& log);

  // Sends TLS close_notify (RFC 8446 §6.1) and waits briefly (tls_close_wait) for the
  // peer's, unless the connection is plain, already closed, or timed out (a peer that
  // stopped reading gets no more time). Call after the last reply, before close().
  boost::asio::awaitable<void> end_tls();
  static constexpr std::chrono::milliseconds tls_close_wait{500};

  // Ends the connection, the first time only (then true; false afterwards): stops the
  // watchdog, closes the transport, stops listening for the drain and gives the
  // connection slot back. The drain-gate entry stays held until leave(), so the session
  // can log its end before the kernel sees it gone.
  bool close();
  // Leaves the drain gate (no-op when not entered or already left).
  void leave() { gate_holder_.release(); }

 private:
  boost::asio::awaitable<void> watchdog(std::shared_ptr<session_lifecycle> self);
  void on_drain();

  boost::asio::any_io_executor ex_;
  listener_state& st_;
  const connection_metrics& metrics_;
  transport& t_;
  limits limits_;
  boost::asio::steady_timer timer_;
  gate::holder gate_holder_;
  std::uint64_t drain_token_ = 0;
  clock::time_point started_;
  clock::time_point session_end_;
  clock::time_point deadline_;
  bool counted_ = false;
  bool idle_ = false;
  bool draining_ = false;
  bool timed_out_ = false;
  bool closed_ = false;
};

// A listener that runs one Session per connection: start() binds `listen`, accepts on
// every address (TCP and unix sockets, through socket_transport) and, for each
// connection, makes std::make_shared<Session>(state, transport, executor, peer) and
// co_spawns its run() on the connection's own strand; then it logs the info line
// "listening" with the endpoints and `fields`. stop() closes the acceptors; sessions
// learn of the drain from the gate. State derives from listener_state; Session::run()
// must not throw (see run_logging_failure). start() throws like acceptor_set::bind().
template <class Session, class State>
class session_listener final : public listener {
 public:
  session_listener(std::shared_ptr<State> st, std::vector<listen_address> listen,
                   std::vector<log_field> fields)
      : st_(std::move(st)),
        listen_(std::move(listen)),
        fields_(std::move(fields)),
        acceptors_(st_->host.io(), st_->log) {}

  void start() override {
    acceptors_.bind(listen_);
    acceptors_.start(
        transport_handlers([st = st_](std::unique_ptr<transport> t, boost::asio::any_io_executor ex,
                                      connection_peer peer) {
          auto s = std::make_shared<Session>(st, std::move(t), ex, std::move(peer));
          boost::asio::co_spawn(ex, s->run(), boost::asio::detached);
        }));
    std::vector<log_field> f{{"endpoints", acceptors_.endpoints_text()}};
    f.insert(f.end(), fields_.begin(), fields_.end());
    st_->log.info("listening", std::move(f));
  }

  std::vector<std::string> endpoints() const override { return acceptors_.endpoints(); }

  void stop() override { acceptors_.stop(); }

 private:
  std::shared_ptr<State> st_;
  std::vector<listen_address> listen_;
  std::vector<log_field> fields_;
  acceptor_set acceptors_;
};

}  // namespace sluice
