// plugins/pop3/src/server.cpp — the listener: users, TLS context, binding, accept loops,
// stop. See server.hpp.
#include "server.hpp"

#include <openssl/ssl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "session.hpp"
#include "sluice/text.hpp"

namespace sluice::pop3 {
namespace asio = boost::asio;

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

class pop3_listener final : public listener {
 public:
  explicit pop3_listener(std::shared_ptr<server_state> st)
      : st_(std::move(st)), acceptors_(st_->host.io(), st_->log) {}

  void start() override {
    acceptors_.bind(st_->cfg.listen);
    acceptors_.start(transport_handlers(
        [st = st_](std::unique_ptr<transport> t, asio::any_io_executor ex, peer_info peer) {
          auto s = std::make_shared<session>(st, std::move(t), ex, std::move(peer));
          asio::co_spawn(ex, s->run(), asio::detached);
        }));
    const char* tls = st_->cfg.tls == tls_mode::implicit   ? "implicit"
                      : st_->cfg.tls == tls_mode::starttls ? "starttls"
                                                           : "off";
    st_->log.info("listening", {{"endpoints", acceptors_.endpoints_text()}, {"tls", tls}});
  }

  std::vector<std::string> endpoints() const override { return acceptors_.endpoints(); }

  void stop() override { acceptors_.stop(); }

 private:
  std::shared_ptr<server_state> st_;
  acceptor_set acceptors_;
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
