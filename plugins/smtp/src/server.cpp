// plugins/smtp/src/server.cpp — the listener factory: settings, TLS context, credentials,
// metrics, services; the SDK's session_listener binds, accepts and runs the sessions. See
// server.hpp.
#include "server.hpp"

#include <openssl/ssl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "session.hpp"

namespace sluice::smtp {

namespace {

void register_metrics(server_state& st) {
  auto& mm = st.metrics;
  auto m = register_connection_metrics(st, mm, "smtp", "SMTP");
  if (!m) return;
  metric_labels l{{"listener", st.name}};
  const char* help = "SMTP messages by result";
  mm.messages_accepted =
      &m->get_counter("sluice_smtp_messages_total", help, with_label(l, "result", "accepted"));
  mm.messages_rejected =
      &m->get_counter("sluice_smtp_messages_total", help, with_label(l, "result", "rejected"));
  mm.messages_tempfail =
      &m->get_counter("sluice_smtp_messages_total", help, with_label(l, "result", "tempfail"));
  mm.messages_too_big =
      &m->get_counter("sluice_smtp_messages_total", help, with_label(l, "result", "too_big"));
  mm.messages_discarded =
      &m->get_counter("sluice_smtp_messages_total", help, with_label(l, "result", "discarded"));
  mm.accepted_bytes =
      &m->get_counter("sluice_smtp_accepted_bytes_total", "Bytes of the messages SMTP accepted", l);
  const char* ahelp = "SMTP AUTH attempts by result";
  mm.auth_success =
      &m->get_counter("sluice_smtp_auth_total", ahelp, with_label(l, "result", "success"));
  mm.auth_failure =
      &m->get_counter("sluice_smtp_auth_total", ahelp, with_label(l, "result", "failure"));
  mm.bytes_received =
      &m->get_counter("sluice_smtp_received_bytes_total", "Bytes read from SMTP clients", l);
}

}  // namespace

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx) {
  auto st = std::make_shared<server_state>(ctx.host, lctx);
  st->name = ctx.name;
  st->log = ctx.log;
  st->cfg = load_settings(ctx.config, ctx.host.config_dir());
  if (st->cfg.tls != tls_mode::off)
    st->tls = make_tls_server_context(ctx.config.at("tls"), st->cfg.tls_cert, st->cfg.tls_key);
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
    // check-config builds no services; the chaos service has declared itself.
    if (!st->chaos && !(ctx.check_only && services.declared(chaos_service::kind, st->cfg.chaos))) {
      ctx.config.at("chaos").fail("no chaos service named \"" + st->cfg.chaos +
                                  "\" (add one under services: with plugin: chaos)");
    }
  } else if (services.names(chaos_service::kind).size() == 1) {
    st->chaos = services.get<chaos_service>();
  }
  auto listen = st->cfg.listen;
  std::vector<log_field> fields{{"mode", st->cfg.lmtp ? "lmtp" : "smtp"}};
  return std::make_shared<session_listener<session, server_state>>(std::move(st), std::move(listen),
                                                                   std::move(fields));
}

}  // namespace sluice::smtp
