// acceptor.cpp — see sluice/acceptor.hpp.
#include "sluice/acceptor.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <system_error>
#include <type_traits>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_proto = asio::local::stream_protocol;

std::string format_endpoint(const asio::ip::address& a, std::uint16_t port) {
  std::string host = a.to_string();
  if (a.is_v6()) host = "[" + host + "]";
  return host + ":" + std::to_string(port);
}

struct acceptor_set::impl {
  impl(asio::io_context& i, logger l) : io(i), log(std::move(l)), strand(asio::make_strand(i)) {}

  asio::io_context& io;
  logger log;
  asio::strand<asio::io_context::executor_type> strand;  // the acceptors live here
  std::vector<std::shared_ptr<tcp::acceptor>> tcp_acceptors;
  std::vector<std::pair<std::shared_ptr<unix_proto::acceptor>, std::string>> unix_acceptors;
  std::vector<std::string> endpoints;
  std::vector<std::filesystem::path> unix_files;
  handlers on_accept;

  void remove_unix_files() {
    for (const auto& p : unix_files) {
      std::error_code ec;
      std::filesystem::remove(p, ec);
    }
    unix_files.clear();
  }

  // After a failed accept: logs, waits 100 ms, and says whether to go on.
  template <class Acceptor>
  asio::awaitable<bool> back_off(Acceptor& acc, const boost::system::error_code& why) {
    log.warn("accept failed", {{"error", why.message()}});
    asio::steady_timer t(acc.get_executor(), std::chrono::milliseconds(100));
    boost::system::error_code ignored;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    co_return acc.is_open();
  }

  // One address's accept loop; `path` is the socket file of a unix acceptor.
  template <class Protocol>
  static asio::awaitable<void> accept_loop(std::shared_ptr<impl> self,
                                           std::shared_ptr<typename Protocol::acceptor> acc,
                                           std::string path) {
    while (acc->is_open()) {
      typename Protocol::socket sock(asio::make_strand(self->io));
      boost::system::error_code ec;
      co_await acc->async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      if (ec) {
        if (!co_await self->back_off(*acc, ec)) co_return;
        continue;
      }
      connection_peer peer;
      if constexpr (std::is_same_v<Protocol, tcp>) {
        boost::system::error_code e1, e2;
        const auto remote = sock.remote_endpoint(e1);
        if (e1) continue;  // the client is already gone
        peer.address = remote.address();
        peer.port = remote.port();
        if (const auto local = sock.local_endpoint(e2); !e2)
          peer.local_address = format_endpoint(local.address(), local.port());
        sock.set_option(tcp::no_delay(true), e1);
        self->on_accept.tcp(std::move(sock), std::move(peer));
      } else {
        peer.unix_socket = true;
        peer.local_address = "unix:" + path;
        self->on_accept.unix_socket(std::move(sock), std::move(peer));
      }
    }
  }
};

acceptor_set::acceptor_set(asio::io_context& io, logger log)
    : impl_(std::make_shared<impl>(io, std::move(log))) {}

// Only the files: dispatching to the strand is for a running io_context, which the
// destructor cannot assume. Unstopped loops end with the io_context.
acceptor_set::~acceptor_set() {
  impl_->remove_unix_files();
}

void acceptor_set::bind(const std::vector<listen_address>& addresses) {
  impl& m = *impl_;
  for (const auto& a : addresses) {
    if (a.unix_socket) {
      prepare_unix_path(a);
      auto acc = std::make_shared<unix_proto::acceptor>(m.strand);
      acc->open();
      try {
        acc->bind(unix_proto::endpoint(a.path.string()));
      } catch (const boost::system::system_error& e) {
        throw std::system_error(e.code().value(), std::generic_category(), "listen " + a.text);
      }
      m.unix_files.push_back(a.path);
      // The mode is set before listen(): no client can connect while it is wrong.
      if (::chmod(a.path.c_str(), a.mode) != 0) {
        throw std::system_error(errno, std::generic_category(),
                                "listen " + a.text + ": chmod " + a.path.string());
      }
      acc->listen(asio::socket_base::max_listen_connections);
      m.endpoints.push_back("unix:" + a.path.string());
      m.unix_acceptors.emplace_back(std::move(acc), a.path.string());
    } else {
      tcp::endpoint ep(asio::ip::make_address(a.host), a.port);
      auto acc = std::make_shared<tcp::acceptor>(m.strand);
      acc->open(ep.protocol());
      acc->set_option(asio::socket_base::reuse_address(true));
      if (ep.address().is_v6()) acc->set_option(asio::ip::v6_only(true));
      try {
        acc->bind(ep);
      } catch (const boost::system::system_error& e) {
        throw std::system_error(e.code().value(), std::generic_category(), "listen " + a.text);
      }
      acc->listen(asio::socket_base::max_listen_connections);
      const auto bound = acc->local_endpoint();
      m.endpoints.push_back(format_endpoint(bound.address(), bound.port()));
      m.tcp_acceptors.push_back(std::move(acc));
    }
  }
}

void acceptor_set::start(handlers h) {
  impl_->on_accept = std::move(h);
  for (auto& acc : impl_->tcp_acceptors)
    asio::co_spawn(impl_->strand, impl::accept_loop<tcp>(impl_, acc, {}), asio::detached);
  for (auto& [acc, path] : impl_->unix_acceptors)
    asio::co_spawn(impl_->strand, impl::accept_loop<unix_proto>(impl_, acc, path), asio::detached);
}

void acceptor_set::stop() {
  // Acceptors live on the strand; close them there (Asio objects are not thread-safe).
  auto self = impl_;
  asio::dispatch(self->strand, [self] {
    boost::system::error_code ec;
    for (auto& a : self->tcp_acceptors)
      a->close(ec);
    for (auto& a : self->unix_acceptors)
      a.first->close(ec);
  });
  impl_->remove_unix_files();
}

const std::vector<std::string>& acceptor_set::endpoints() const {
  return impl_->endpoints;
}

std::string acceptor_set::endpoints_text() const {
  std::string s;
  for (const auto& e : impl_->endpoints)
    s += (s.empty() ? "" : " ") + e;
  return s;
}

}  // namespace sluice
