// sluice/transport.hpp — one client connection's byte stream for a line protocol: a TCP
// or unix socket, optionally wrapped in TLS after STARTTLS/STLS (or from the start,
// implicit TLS). The smtp and pop3 listeners use it.
//
// The session sees one interface whatever the socket type, so STARTTLS can swap the
// stream in place. Threading: a transport belongs to one session and is used only on that
// session's strand; cancel()/close() too. Errors come back as error_code, never thrown.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include "sluice/acceptor.hpp"

namespace sluice {

class transport {
 public:
  virtual ~transport() = default;
  virtual boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer b,
                                                        boost::system::error_code& ec) = 0;
  virtual boost::asio::awaitable<void> write(boost::asio::const_buffer b,
                                             boost::system::error_code& ec) = 0;
  // Server-side TLS handshake; on success later reads and writes are encrypted.
  virtual boost::asio::awaitable<void> start_tls(boost::asio::ssl::context& ctx,
                                                 boost::system::error_code& ec) = 0;
  // Ends TLS as RFC 8446 §6.1 asks: sends close_notify, then waits up to `wait` for the
  // peer's (or its end of the connection). No-op without an established TLS session.
  virtual boost::asio::awaitable<void> shutdown_tls(std::chrono::milliseconds wait) = 0;
  // Aborts pending operations (they complete with operation_aborted); the stream stays open.
  virtual void cancel() = 0;
  virtual void close() = 0;
  virtual bool is_tls() const = 0;
  virtual std::string tls_version() const = 0;
  virtual std::string tls_cipher() const = 0;
};

template <class Socket>
class socket_transport final : public transport {
 public:
  explicit socket_transport(Socket s) : socket_(std::move(s)) {}

  boost::asio::awaitable<std::size_t> read_some(boost::asio::mutable_buffer b,
                                                boost::system::error_code& ec) override {
    using boost::asio::redirect_error;
    using boost::asio::use_awaitable;
    if (tls_) co_return co_await tls_->async_read_some(b, redirect_error(use_awaitable, ec));
    co_return co_await socket_.async_read_some(b, redirect_error(use_awaitable, ec));
  }

  boost::asio::awaitable<void> write(boost::asio::const_buffer b,
                                     boost::system::error_code& ec) override {
    using boost::asio::redirect_error;
    using boost::asio::use_awaitable;
    if (tls_) {
      co_await boost::asio::async_write(*tls_, b, redirect_error(use_awaitable, ec));
    } else {
      co_await boost::asio::async_write(socket_, b, redirect_error(use_awaitable, ec));
    }
  }

  boost::asio::awaitable<void> start_tls(boost::asio::ssl::context& ctx,
                                         boost::system::error_code& ec) override {
    tls_.emplace(socket_, ctx);
    co_await tls_->async_handshake(boost::asio::ssl::stream_base::server,
                                   boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    tls_up_ = !ec;
  }

  boost::asio::awaitable<void> shutdown_tls(std::chrono::milliseconds wait) override {
    if (!tls_ || !tls_up_) co_return;
    tls_up_ = false;
    using namespace boost::asio::experimental::awaitable_operators;
    using boost::asio::redirect_error;
    using boost::asio::use_awaitable;
    boost::asio::steady_timer timer(socket_.get_executor(), wait);
    boost::system::error_code ec;
    boost::system::error_code timer_ec;
    // Whichever ends first: the shutdown (its close_notify is written before it waits for
    // the peer's), or the timer, which cancels it. Both outcomes just end the session.
    co_await (tls_->async_shutdown(redirect_error(use_awaitable, ec)) ||
              timer.async_wait(redirect_error(use_awaitable, timer_ec)));
  }

  void cancel() override {
    boost::system::error_code ignored;
    socket_.cancel(ignored);
  }
  void close() override {
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  bool is_tls() const override { return tls_.has_value(); }
  std::string tls_version() const override {
    if (!tls_) return {};
    return SSL_get_version(tls_->native_handle());
  }
  std::string tls_cipher() const override {
    if (!tls_) return {};
    const char* c = SSL_get_cipher_name(tls_->native_handle());
    return c ? c : "";
  }

  Socket& socket() { return socket_; }

 private:
  Socket socket_;
  // References socket_; declared after it so it is destroyed first.
  mutable std::optional<boost::asio::ssl::stream<Socket&>> tls_;
  bool tls_up_ = false;  // the handshake succeeded and no shutdown was sent yet
};

// acceptor_set handlers that wrap every accepted TCP or unix socket in a socket_transport
// and pass it on with the socket's executor (the connection's own strand), for a session
// to be started there.
using transport_start =
    std::function<void(std::unique_ptr<transport>, boost::asio::any_io_executor, connection_peer)>;
inline acceptor_set::handlers transport_handlers(transport_start start) {
  auto wrap = [start]<class Socket>(Socket sock, connection_peer peer) {
    auto ex = sock.get_executor();
    start(std::make_unique<socket_transport<Socket>>(std::move(sock)), std::move(ex),
          std::move(peer));
  };
  return {.tcp = wrap, .unix_socket = wrap};
}

}  // namespace sluice
