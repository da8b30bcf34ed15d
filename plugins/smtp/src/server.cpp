// plugins/smtp/src/server.cpp — the listener: binding, accept loops, stop. See server.hpp.
#include "server.hpp"

#include <sys/stat.h>

#include <openssl/ssl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "session.hpp"

namespace sluice::smtp {
namespace asio = boost::asio;
using asio::awaitable;
using tcp = asio::ip::tcp;
using unix_proto = asio::local::stream_protocol;

namespace {

void register_metrics(server_state& st) {
  auto m = st.host.services().get<sluice::metrics>();
  if (!m) return;
  metric_labels l{{"listener", st.name}};
  auto with = [&](std::string k, std::string v) {
    metric_labels r = l;
    r.emplace_back(std::move(k), std::move(v));
    return r;
  };
  auto& mm = st.metrics;
  mm.connections = &m->get_counter("sluice_smtp_connections_total", "SMTP connections accepted", l);
  mm.connections_refused = &m->get_counter("sluice_smtp_connections_refused_total",
                                           "SMTP connections refused (limit, drain)", l);
  mm.sessions_active = &m->get_gauge("sluice_smtp_sessions_active", "SMTP sessions open", l);
  const char* help = "SMTP messages by result";
  mm.messages_accepted =
      &m->get_counter("sluice_smtp_messages_total", help, with("result", "accepted"));
  mm.messages_rejected =
      &m->get_counter("sluice_smtp_messages_total", help, with("result", "rejected"));
  mm.messages_tempfail =
      &m->get_counter("sluice_smtp_messages_total", help, with("result", "tempfail"));
  mm.messages_too_big =
      &m->get_counter("sluice_smtp_messages_total", help, with("result", "too_big"));
  mm.messages_discarded =
      &m->get_counter("sluice_smtp_messages_total", help, with("result", "discarded"));
  mm.accepted_bytes =
      &m->get_counter("sluice_smtp_accepted_bytes_total", "Bytes of the messages SMTP accepted", l);
  const char* ahelp = "SMTP AUTH attempts by result";
  mm.auth_success = &m->get_counter("sluice_smtp_auth_total", ahelp, with("result", "success"));
  mm.auth_failure = &m->get_counter("sluice_smtp_auth_total", ahelp, with("result", "failure"));
  mm.bytes_received =
      &m->get_counter("sluice_smtp_received_bytes_total", "Bytes read from SMTP clients", l);
  mm.timeouts = &m->get_counter("sluice_smtp_timeouts_total", "SMTP sessions timed out", l);
}

class smtp_listener final : public listener, public std::enable_shared_from_this<smtp_listener> {
 public:
  explicit smtp_listener(std::shared_ptr<server_state> st)
      : st_(std::move(st)), strand_(asio::make_strand(st_->host.io())) {}

  ~smtp_listener() override { remove_unix_files(); }

  void start() override {
    for (const auto& a : st_->cfg.listen) {
      if (a.unix_socket) {
        prepare_unix_path(a);
        auto acc = std::make_shared<unix_proto::acceptor>(strand_);
        acc->open();
        acc->bind(unix_proto::endpoint(a.path.string()));
        if (::chmod(a.path.c_str(), a.mode) != 0) {
          throw std::system_error(errno, std::generic_category(),
                                  "listen " + a.text + ": chmod " + a.path.string());
        }
        acc->listen(asio::socket_base::max_listen_connections);
        unix_files_.push_back(a.path);
        endpoints_.push_back("unix:" + a.path.string());
        unix_acceptors_.push_back(acc);
        asio::co_spawn(strand_, accept_unix(st_, acc, a.path.string()), asio::detached);
      } else {
        tcp::endpoint ep(asio::ip::make_address(a.host), a.port);
        auto acc = std::make_shared<tcp::acceptor>(strand_);
        acc->open(ep.protocol());
        acc->set_option(asio::socket_base::reuse_address(true));
        if (ep.address().is_v6()) acc->set_option(asio::ip::v6_only(true));
        try {
          acc->bind(ep);
        } catch (const boost::system::system_error& e) {
          throw std::system_error(e.code().value(), std::generic_category(), "listen " + a.text);
        }
        acc->listen(asio::socket_base::max_listen_connections);
        auto bound = acc->local_endpoint();
        std::string host = bound.address().to_string();
        if (bound.address().is_v6()) host = "[" + host + "]";
        endpoints_.push_back(host + ":" + std::to_string(bound.port()));
        tcp_acceptors_.push_back(acc);
        asio::co_spawn(strand_, accept_tcp(st_, acc), asio::detached);
      }
    }
    st_->log.info("listening",
                  {{"endpoints", join(endpoints_)}, {"mode", st_->cfg.lmtp ? "lmtp" : "smtp"}});
  }

  std::vector<std::string> endpoints() const override { return endpoints_; }

  void stop() override {
    // Acceptors live on strand_; close them there (Asio objects are not thread-safe).
    auto tcps = tcp_acceptors_;
    auto unixes = unix_acceptors_;
    asio::dispatch(strand_, [tcps, unixes] {
      boost::system::error_code ec;
      for (auto& a : tcps)
        a->close(ec);
      for (auto& a : unixes)
        a->close(ec);
    });
    remove_unix_files();
  }

 private:
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& e : v)
      s += (s.empty() ? "" : " ") + e;
    return s;
  }

  void remove_unix_files() {
    for (const auto& p : unix_files_) {
      std::error_code ec;
      std::filesystem::remove(p, ec);
    }
    unix_files_.clear();
  }

  static awaitable<void> accept_tcp(std::shared_ptr<server_state> st,
                                    std::shared_ptr<tcp::acceptor> acc) {
    while (acc->is_open()) {
      auto strand = asio::make_strand(st->host.io());
      tcp::socket sock(strand);
      boost::system::error_code ec;
      co_await acc->async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      if (ec) {
        st->log.warn("accept failed", {{"error", ec.message()}});
        // EMFILE and friends: back off briefly instead of spinning.
        asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(100));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      peer_info peer;
      boost::system::error_code e1, e2;
      auto remote = sock.remote_endpoint(e1);
      auto local = sock.local_endpoint(e2);
      if (e1) continue;  // the client is already gone
      peer.address = remote.address();
      peer.port = remote.port();
      if (!e2) {
        std::string h = local.address().to_string();
        peer.local_address =
            (local.address().is_v6() ? "[" + h + "]" : h) + ":" + std::to_string(local.port());
      }
      sock.set_option(tcp::no_delay(true), e1);  // replies must not wait for Nagle
      auto s = std::make_shared<session>(
          st, std::make_unique<socket_transport<tcp::socket>>(std::move(sock)), strand, peer);
      asio::co_spawn(strand, s->run(), asio::detached);
    }
  }

  static awaitable<void> accept_unix(std::shared_ptr<server_state> st,
                                     std::shared_ptr<unix_proto::acceptor> acc, std::string path) {
    while (acc->is_open()) {
      auto strand = asio::make_strand(st->host.io());
      unix_proto::socket sock(strand);
      boost::system::error_code ec;
      co_await acc->async_accept(sock, asio::redirect_error(asio::use_awaitable, ec));
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      if (ec) {
        st->log.warn("accept failed", {{"error", ec.message()}});
        asio::steady_timer t(acc->get_executor(), std::chrono::milliseconds(100));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      peer_info peer;
      peer.unix_socket = true;
      peer.local_address = "unix:" + path;
      auto s = std::make_shared<session>(
          st, std::make_unique<socket_transport<unix_proto::socket>>(std::move(sock)), strand,
          peer);
      asio::co_spawn(strand, s->run(), asio::detached);
    }
  }

  std::shared_ptr<server_state> st_;
  asio::strand<asio::io_context::executor_type> strand_;
  std::vector<std::shared_ptr<tcp::acceptor>> tcp_acceptors_;
  std::vector<std::shared_ptr<unix_proto::acceptor>> unix_acceptors_;
  std::vector<std::string> endpoints_;
  std::vector<std::filesystem::path> unix_files_;
};

}  // namespace

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx) {
  auto st = std::make_shared<server_state>(ctx.host, lctx);
  st->name = ctx.name;
  st->log = ctx.log;
  st->cfg = load_settings(ctx.config, ctx.host.config_dir());
  if (st->cfg.tls != tls_mode::off)
    st->tls = make_tls_server_context(st->cfg.tls_cert, st->cfg.tls_key);
  if (!st->cfg.users_pairs.empty()) {
    // The file's entries and auth.users together, as one credential set.
    std::string text;
    std::string source = ctx.config.path() + ".auth.users";
    if (!st->cfg.htpasswd.empty()) {
      std::ifstream in(st->cfg.htpasswd, std::ios::binary);
      if (!in) throw config_error(st->cfg.htpasswd.string() + ": cannot read the htpasswd file");
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
      if (!text.empty() && text.back() != '\n') text += '\n';
      source = st->cfg.htpasswd.string() + " + auth.users";
    }
    text += htpasswd_text_from_pairs(st->cfg.users_pairs);
    st->users = std::make_shared<const htpasswd>(htpasswd::parse(text, source));
  } else if (!st->cfg.htpasswd.empty()) {
    st->users = std::make_shared<const htpasswd>(htpasswd::load(st->cfg.htpasswd.string()));
  }
  register_metrics(*st);
  auto& services = ctx.host.services();
  st->events = services.get<sluice::events>();
  if (!st->cfg.chaos.empty()) {
    st->chaos = services.get<chaos_service>(st->cfg.chaos);
    // Services are not built by check-config, so only a running server can tell.
    if (!st->chaos && !ctx.check_only) {
      ctx.config.at("chaos").fail("no chaos service named \"" + st->cfg.chaos +
                                  "\" (add one under services: with plugin: chaos)");
    }
  } else if (services.names(chaos_service::kind).size() == 1) {
    st->chaos = services.get<chaos_service>();
  }
  return std::make_shared<smtp_listener>(std::move(st));
}

}  // namespace sluice::smtp
