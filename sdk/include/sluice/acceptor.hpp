// sluice/acceptor.hpp — the listening half of a listener plugin: binds every configured
// listen_address (TCP or unix socket) and runs one accept loop per address, handing each
// accepted connection to the plugin on a strand of its own.
//
// The smtp, pop3 and http listeners use it, so they bind, report and survive accept
// errors the same way; a third-party protocol plugin gets the same behaviour by building
// on it:
//
//   acceptors_ = std::make_unique<sluice::acceptor_set>(host.io(), log);
//   acceptors_->bind(cfg.listen);                        // throws; nothing accepted yet
//   acceptors_->start({.tcp = [st](auto sock, sluice::connection_peer p) { ... },
//                      .unix_socket = [st](auto sock, sluice::connection_peer p) { ... }});
//   ...
//   acceptors_->stop();                                  // from listener::stop()
//
// Binding: TCP with SO_REUSEADDR (and IPV6_V6ONLY for v6 addresses); a unix socket file
// goes through prepare_unix_path (a stale one is replaced, a live one refused), gets its
// mode before listen() so no client connects while it is wrong, and is removed again by
// stop() and by the destructor. Port 0 binds an ephemeral port; endpoints() reports the
// bound one.
//
// Accepting: each accepted socket is created on a new strand of the io_context, which
// becomes the connection's executor. A TCP socket has TCP_NODELAY set (replies must not
// wait for Nagle) and is dropped when the peer is already gone (no remote endpoint). An
// accept error (EMFILE and friends) is logged and retried after 100 ms instead of spinning.
//
// Threading: bind() and start() run at startup on the listener's thread; the handlers run
// on the acceptors' own strand, one connection at a time, and must not block (they start
// a session coroutine and return). stop() may be called from any thread, more than once.
// Failure: bind() throws std::system_error naming the address ("listen 127.0.0.1:25: ...")
// or config_error (from prepare_unix_path); nothing else throws.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "sluice/listen.hpp"
#include "sluice/log.hpp"

namespace sluice {

// Where an accepted connection came from and which listening address took it.
struct connection_peer {
  bool unix_socket = false;
  boost::asio::ip::address address;  // TCP: the client's address; unspecified for unix
  std::uint16_t port = 0;            // TCP: the client's port
  std::string local_address;         // "127.0.0.1:1025", "[::1]:25" or "unix:/path"
};

// "127.0.0.1:25" or "[::1]:25".
std::string format_endpoint(const boost::asio::ip::address& a, std::uint16_t port);

class acceptor_set {
 public:
  using tcp_socket = boost::asio::ip::tcp::socket;
  using unix_stream = boost::asio::local::stream_protocol::socket;
  struct handlers {
    std::function<void(tcp_socket, connection_peer)> tcp;
    std::function<void(unix_stream, connection_peer)> unix_socket;
  };

  acceptor_set(boost::asio::io_context& io, logger log);
  ~acceptor_set();  // removes the unix socket files; call stop() first to close the acceptors
  acceptor_set(const acceptor_set&) = delete;
  acceptor_set& operator=(const acceptor_set&) = delete;

  // Binds and listens on every address, in order; on an error the addresses bound so far
  // stay bound until stop() or destruction.
  void bind(const std::vector<listen_address>& addresses);
  // Starts accepting on every bound address. Both handlers must be set when the set has
  // an address of that kind.
  void start(handlers h);
  void stop();

  // The bound addresses, as "host:port" (the real port when 0 was asked) or "unix:/path".
  const std::vector<std::string>& endpoints() const;
  // endpoints() joined by single spaces, for a log line.
  std::string endpoints_text() const;

 private:
  struct impl;
  std::shared_ptr<impl> impl_;  // shared with the accept loops, which may outlive stop()
};

}  // namespace sluice
