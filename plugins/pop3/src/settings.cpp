// plugins/pop3/src/settings.cpp — see settings.hpp.
#include "settings.hpp"

#include <charconv>

#include <boost/asio/ip/address.hpp>

namespace sluice::pop3 {
bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > max_label_length) return false;
  for (char c : label) {
    // No < or >: clients find the APOP timestamp as the first <...> of the greeting.
    if (c < 0x20 || c > 0x7e || c == '<' || c == '>') return false;
  }
  return true;
}

bool valid_mailbox_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

settings load_settings(const config_node& cfg, const std::filesystem::path& config_dir) {
  settings s;
  s.listen = parse_listen_list(cfg, config_dir, "127.0.0.1:1110");
  s.hostname = cfg.get_string("hostname", "");
  if (s.hostname.empty()) s.hostname = default_hostname();
  if (!valid_hostname(s.hostname)) {
    if (cfg.has("hostname")) cfg.at("hostname").fail("not a host name: letters, digits, - . _");
    s.hostname = "localhost";
  }
  if (cfg.has("label")) {
    s.label = cfg.get_string("label", "");
    if (!valid_label(s.label)) {
      cfg.at("label").fail("expected 1 to " + std::to_string(max_label_length) +
                           " printable ASCII characters, without < and > (no control characters, "
                           "no CR/LF)");
    }
  }

  s.service = cfg.get_string("service", "");
  s.mailbox = cfg.get_string("mailbox", "default");
  {
    std::string probe = s.mailbox;
    for (auto p = probe.find("{user}"); p != std::string::npos; p = probe.find("{user}"))
      probe.replace(p, 6, "u");
    if (!valid_mailbox_name(probe)) {
      cfg.at("mailbox").fail("not a mailbox name (1..200 bytes, no control characters)");
    }
  }
  if (auto m = cfg.find("mailboxes")) {
    if (!m->is_map()) m->fail("expected a map of user: mailbox");
    for (auto& [user, node] : m->entries()) {
      std::string box = node.as_string();
      if (!valid_mailbox_name(box)) {
        node.fail("not a mailbox name (1..200 bytes, no control characters)");
      }
      s.mailboxes.emplace(user, std::move(box));
    }
  }

  auto resolve = [&](const std::string& p) { return resolve_config_path(config_dir, p); };
  if (std::string f = cfg.get_string("htpasswd", ""); !f.empty()) s.htpasswd = resolve(f);
  s.users_pairs = cfg.get_string("users", "");
  if (s.htpasswd.empty() && s.users_pairs.empty()) {
    cfg.fail("POP3 needs users: set htpasswd (a file) or users (\"user:pass ...\")");
  }
  s.apop = cfg.get_bool("apop", true);
  s.allow_insecure = cfg.get_bool("allow_insecure", false);

  if (auto tls = cfg.find("tls")) {
    static constexpr tls_mode modes[] = {tls_mode::off, tls_mode::starttls, tls_mode::implicit};
    s.tls = modes[parse_tls_block(*tls, {"off", "starttls", "implicit"}, config_dir, s.tls_cert,
                                  s.tls_key)];
  }
  // RFC 2595 §4 and RFC 1939 §13: passwords in the clear are refused unless allowed; a
  // listener without TLS could then only log users in with APOP.
  if (s.tls == tls_mode::off && !s.allow_insecure && !s.apop) {
    cfg.fail("no way to log in: without tls, set allow_insecure: true (or keep apop)");
  }

  auto positive = [&](std::string_view key, std::int64_t fallback) -> std::int64_t {
    std::int64_t v = cfg.get_int(key, fallback);
    if (v <= 0) cfg.at(key).fail("must be a positive number");
    return v;
  };
  {
    std::int64_t v = cfg.get_int("max_messages", 0);
    if (v < 0) cfg.at("max_messages").fail("must be 0 (no limit) or more");
    s.max_messages = static_cast<std::uint64_t>(v);
  }
  s.max_line_length = cfg.get_size("max_line_length", s.max_line_length);
  if (s.max_line_length < 255 || s.max_line_length > 65536) {
    cfg.at("max_line_length").fail("must be between 255 (RFC 2449) and 64KB");
  }
  s.max_auth_line = cfg.get_size("max_auth_line", s.max_auth_line);
  if (s.max_auth_line < 1024 || s.max_auth_line > 65536) {
    cfg.at("max_auth_line").fail("must be between 1KB and 64KB");
  }
  s.max_auth_failures = static_cast<unsigned>(positive("max_auth_failures", 3));
  s.max_errors = static_cast<unsigned>(positive("max_errors", 20));
  s.idle_timeout = cfg.get_duration("idle_timeout", s.idle_timeout);
  if (s.idle_timeout.count() <= 0) cfg.at("idle_timeout").fail("must be positive");
  s.session_timeout = cfg.get_duration("session_timeout", s.session_timeout);
  if (s.session_timeout.count() <= 0) cfg.at("session_timeout").fail("must be positive");
  s.max_connections = static_cast<std::size_t>(positive("max_connections", 100));
  s.transcript = cfg.get_bool("transcript", false);
  return s;
}

}  // namespace sluice::pop3
