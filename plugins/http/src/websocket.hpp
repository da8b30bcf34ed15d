// plugins/http/src/websocket.hpp — GET <base>api/events: Mailpit's event stream over
// WebSocket (RFC 6455), and the hub that feeds it from the `events` bus.
//
// The hub subscribes once to the bus. Bus callbacks run on the publisher's thread: the
// hub serialises each event once as {"Type":…, "Data":…} and hands the frame to every
// client of the event's mailbox (global events, such as SMTP "error" events, go to all),
// which posts it to its own strand. Change events (new, update, delete, truncate, prune)
// also schedule a "stats" frame for that mailbox, at most one per 250 ms, computed once
// for all its clients. A client also gets stats when it connects.
//
// A client whose queue exceeds limits.max_ws_queue frames is disconnected (Mailpit: a slow
// client is dropped rather than buffered without bound). The server pings every
// limits.ws_ping_interval (54 s) and drops a peer that has sent nothing (no pong, no frame)
// for limits.ws_pong_timeout (60 s). Client messages are
// read and ignored (at most 64 KiB each). On drain every client gets a 1001 close.
//
// Threading: hub members are thread-safe (a mutex guards the client set; stats timers run
// on the hub's strand). Each client runs on its connection's strand.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

#include "routing.hpp"
#include "sluice/gate.hpp"

namespace sluice::http {

struct server_state;

using tcp_stream = boost::beast::tcp_stream;
using tls_stream = boost::beast::ssl_stream<boost::beast::tcp_stream>;
using unix_stream = boost::beast::basic_stream<boost::asio::local::stream_protocol>;

// What the hub needs from a connected client.
class ws_client {
 public:
  virtual ~ws_client() = default;
  virtual const std::string& mailbox() const = 0;
  // Queues one text frame; called from any thread.
  virtual void deliver(std::shared_ptr<const std::string> frame) = 0;
  // Sends a 1001 "going away" close; called from any thread.
  virtual void shutdown() = 0;
};

class ws_hub : public std::enable_shared_from_this<ws_hub> {
 public:
  ws_hub(sluice::host& h, const api_env& env, std::size_t max_clients);
  void start();                                   // subscribes to the bus (no-op without one)
  void stop();                                    // unsubscribes and closes every client
  bool add(const std::shared_ptr<ws_client>& c);  // false when over max_websockets
  void remove(ws_client* c);
  std::size_t clients() const;
  // Bytes and count of "new" messages seen per mailbox since start (for the metrics).
  std::pair<std::uint64_t, std::uint64_t> accepted(const std::string& mailbox) const;

  // The {"Type":"stats",…} frame for a mailbox, queried now.
  static boost::asio::awaitable<std::shared_ptr<const std::string>> stats_frame(
      std::shared_ptr<mailbox_service> store, std::string mailbox, std::string version);

 private:
  void on_event(const event& e);
  void schedule_stats(const std::string& mailbox);
  boost::asio::awaitable<void> send_stats_later(std::string mailbox);

  // Copies, not a reference to the server state: a stats timer may outlive the listener.
  std::shared_ptr<mailbox_service> store_;
  std::shared_ptr<sluice::events> events_;
  std::string version_;
  sluice::logger log_;
  std::size_t max_clients_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  std::uint64_t token_ = 0;
  mutable std::mutex mu_;
  std::map<ws_client*, std::weak_ptr<ws_client>> clients_;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> accepted_;
  bool stopped_ = false;
  std::set<std::string> stats_pending_;  // on strand_
};

// Takes over a connection whose request is a valid WebSocket upgrade for `mailbox` (the
// caller has checked the Origin and the credentials). `holder` keeps the drain gate.
void run_websocket(std::shared_ptr<server_state> st, tcp_stream stream, request req,
                   std::string mailbox, gate::holder holder);
void run_websocket(std::shared_ptr<server_state> st, tls_stream stream, request req,
                   std::string mailbox, gate::holder holder);
void run_websocket(std::shared_ptr<server_state> st, unix_stream stream, request req,
                   std::string mailbox, gate::holder holder);

// The security headers every response carries (also the 101 of the upgrade).
void set_security_headers(bhttp::fields& f, const server_state& st, std::string_view nonce = {});

}  // namespace sluice::http
