// plugins/smtp/src/server.cpp — the listener: binding, accept loops, stop. See server.hpp.
#include "server.hpp"

#include <openssl/ssl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "session.hpp"

namespace sluice::smtp {
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

class smtp_listener final : public listener {
 public:
  explicit smtp_listener(std::shared_ptr<server_state> st)
      : st_(std::move(st)), acceptors_(st_->host.io(), st_->log) {}

  void start() override {
    acceptors_.bind(st_->cfg.listen);
    acceptors_.start(transport_handlers(
        [st = st_](std::unique_ptr<transport> t, asio::any_io_executor ex, peer_info peer) {
          auto s = std::make_shared<session>(st, std::move(t), ex, std::move(peer));
          asio::co_spawn(ex, s->run(), asio::detached);
        }));
    st_->log.info("listening", {{"endpoints", acceptors_.endpoints_text()},
                                {"mode", st_->cfg.lmtp ? "lmtp" : "smtp"}});
  }

  std::vector<std::string> endpoints() const override { return acceptors_.endpoints(); }

  void stop() override { acceptors_.stop(); }

 private:
  std::shared_ptr<server_state> st_;
  acceptor_set acceptors_;
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
