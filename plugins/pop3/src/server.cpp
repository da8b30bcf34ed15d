// plugins/pop3/src/server.cpp — the listener: users, TLS context, binding, accept loops,
// stop. See server.hpp.
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
#include "sluice/text.hpp"

namespace sluice::pop3 {
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
  mm.connections = &m->get_counter("sluice_pop3_connections_total", "POP3 connections accepted", l);
  mm.connections_refused = &m->get_counter("sluice_pop3_connections_refused_total",
                                           "POP3 connections refused (limit, drain)", l);
  mm.sessions_active = &m->get_gauge("sluice_pop3_sessions_active", "POP3 sessions open", l);
  const char* ahelp = "POP3 logins by result";
  mm.auth_success = &m->get_counter("sluice_pop3_logins_total", ahelp, with("result", "success"));
  mm.auth_failure = &m->get_counter("sluice_pop3_logins_total", ahelp, with("result", "failure"));
  mm.in_use = &m->get_counter("sluice_pop3_logins_total", ahelp, with("result", "in_use"));
  mm.messages_retrieved =
      &m->get_counter("sluice_pop3_messages_retrieved_total", "Messages sent by RETR", l);
  mm.messages_deleted = &m->get_counter("sluice_pop3_messages_deleted_total",
                                        "Messages removed in the UPDATE state", l);
  mm.bytes_sent =
      &m->get_counter("sluice_pop3_sent_bytes_total", "Bytes written to POP3 clients", l);
  mm.timeouts = &m->get_counter("sluice_pop3_timeouts_total", "POP3 sessions timed out", l);
}

// The user names of htpasswd text (what precedes the first ':' of each entry line).
std::vector<std::string> user_names(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = trim(text.substr(0, nl));
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (line.empty() || line.front() == '#') continue;
    std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && colon > 0) out.emplace_back(line.substr(0, colon));
  }
  return out;
}

class pop3_listener final : public listener, public std::enable_shared_from_this<pop3_listener> {
 public:
  explicit pop3_listener(std::shared_ptr<server_state> st)
      : st_(std::move(st)), strand_(asio::make_strand(st_->host.io())) {}

  ~pop3_listener() override { remove_unix_files(); }

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
    const char* tls = st_->cfg.tls == tls_mode::implicit   ? "implicit"
                      : st_->cfg.tls == tls_mode::starttls ? "starttls"
                                                           : "off";
    st_->log.info("listening", {{"endpoints", join(endpoints_)}, {"tls", tls}});
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

std::string server_state::mailbox_for(const std::string& user) const {
  if (auto it = cfg.mailboxes.find(user); it != cfg.mailboxes.end()) return it->second;
  std::string box = cfg.mailbox;
  for (auto p = box.find("{user}"); p != std::string::npos; p = box.find("{user}", p + user.size()))
    box.replace(p, 6, user);
  return box;
}

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx) {
  auto st = std::make_shared<server_state>(ctx.host, lctx);
  st->name = ctx.name;
  st->log = ctx.log;
  st->cfg = load_settings(ctx.config, ctx.host.config_dir());
  if (!lctx.pipeline().empty()) {
    ctx.config.fail("the pop3 listener reads mail and takes no pipeline: remove pipeline:");
  }
  if (!st->cfg.htpasswd.empty() && !st->cfg.users_pairs.empty()) {
    ctx.config.at("users").fail("set htpasswd or users, not both");
  }
  std::string text;
  std::string source;
  if (!st->cfg.htpasswd.empty()) {
    source = st->cfg.htpasswd.string();
    if (!ctx.check_only) {
      std::ifstream in(st->cfg.htpasswd, std::ios::binary);
      if (!in) ctx.config.at("htpasswd").fail("cannot read " + source);
      std::ostringstream ss;
      ss << in.rdbuf();
      text = ss.str();
    }
  } else {
    source = ctx.config.at("users").where();
    text = htpasswd_text_from_pairs(st->cfg.users_pairs);
  }
  auto users = std::make_shared<htpasswd>(htpasswd::parse(text, source));
  if (!ctx.check_only && users->size() == 0) {
    ctx.config.fail("no users in " + source);
  }
  if (st->cfg.apop) {
    for (const auto& u : user_names(text)) {
      if (users->plain_secret(u)) {
        st->apop_offered = true;
        break;
      }
    }
  }
  st->users = std::move(users);
  if (st->cfg.tls != tls_mode::off && !ctx.check_only)
    st->tls = make_tls_server_context(st->cfg.tls_cert, st->cfg.tls_key);
  auto& services = ctx.host.services();
  st->mailboxes = services.get<mailbox_service>(st->cfg.service);
  // Services are not built by check-config, so only a running server can tell.
  if (!st->mailboxes && !ctx.check_only) {
    std::string what = st->cfg.service.empty()
                           ? "no mailbox service (add a store under services:)"
                           : "no mailbox service named \"" + st->cfg.service + "\"";
    if (ctx.config.has("service")) ctx.config.at("service").fail(what);
    ctx.config.fail(what);
  }
  register_metrics(*st);
  return std::make_shared<pop3_listener>(std::move(st));
}

}  // namespace sluice::pop3
