// plugins/pop3/src/server.cpp — the listener factory: users, TLS context, the mailbox
// service, metrics; the SDK's session_listener binds, accepts and runs the sessions. See
// server.hpp.
#include "server.hpp"

#include <openssl/ssl.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "session.hpp"
#include "sluice/text.hpp"

namespace sluice::pop3 {

namespace {

void register_metrics(server_state& st) {
  auto& mm = st.metrics;
  auto m = register_connection_metrics(st, mm, "pop3", "POP3");
  if (!m) return;
  metric_labels l{{"listener", st.name}};
  const char* ahelp = "POP3 logins by result";
  mm.auth_success =
      &m->get_counter("sluice_pop3_logins_total", ahelp, with_label(l, "result", "success"));
  mm.auth_failure =
      &m->get_counter("sluice_pop3_logins_total", ahelp, with_label(l, "result", "failure"));
  mm.in_use = &m->get_counter("sluice_pop3_logins_total", ahelp, with_label(l, "result", "in_use"));
  mm.messages_retrieved =
      &m->get_counter("sluice_pop3_messages_retrieved_total", "Messages sent by RETR", l);
  mm.messages_deleted = &m->get_counter("sluice_pop3_messages_deleted_total",
                                        "Messages removed in the UPDATE state", l);
  mm.bytes_sent =
      &m->get_counter("sluice_pop3_sent_bytes_total", "Bytes written to POP3 clients", l);
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
  // The file's entries and users together, as one credential set (as smtp's auth).
  std::string text;
  std::string source;
  if (!st->cfg.htpasswd.empty()) {
    source = st->cfg.htpasswd.string();
    std::ifstream in(st->cfg.htpasswd, std::ios::binary);
    if (!in) ctx.config.at("htpasswd").fail("cannot read " + source);
    std::ostringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    if (!text.empty() && text.back() != '\n') text += '\n';
  }
  if (!st->cfg.users_pairs.empty()) {
    source = source.empty() ? ctx.config.at("users").where() : source + " + users";
    text += htpasswd_text_from_pairs(st->cfg.users_pairs);
  }
  auto users = std::make_shared<htpasswd>(htpasswd::parse(text, source));
  if (users->size() == 0) {
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
  if (st->cfg.tls != tls_mode::off)
    st->tls = make_tls_server_context(ctx.config.at("tls"), st->cfg.tls_cert, st->cfg.tls_key);
  auto& services = ctx.host.services();
  st->mailboxes = services.get<mailbox_service>(st->cfg.service);
  // check-config builds no services; the store has declared the one it would register.
  if (!st->mailboxes &&
      !(ctx.check_only && services.declared(mailbox_service::kind, st->cfg.service))) {
    std::string what = st->cfg.service.empty()
                           ? "no mailbox service (add a store under services:)"
                           : "no mailbox service named \"" + st->cfg.service + "\"";
    if (ctx.config.has("service")) ctx.config.at("service").fail(what);
    ctx.config.fail(what);
  }
  register_metrics(*st);
  auto listen = st->cfg.listen;
  const char* tls = st->cfg.tls == tls_mode::implicit   ? "implicit"
                    : st->cfg.tls == tls_mode::starttls ? "starttls"
                                                        : "off";
  std::vector<log_field> fields{{"tls", tls}};
  return std::make_shared<session_listener<session, server_state>>(std::move(st), std::move(listen),
                                                                   std::move(fields));
}

}  // namespace sluice::pop3
