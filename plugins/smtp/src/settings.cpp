// plugins/smtp/src/settings.cpp — see settings.hpp.
#include "settings.hpp"

#include <algorithm>
#include <boost/asio/ip/address.hpp>
#include <charconv>

namespace sluice::smtp {
namespace {

network_list parse_networks(const config_node& cfg, std::string_view key,
                            std::vector<std::string> fallback) {
  network_list list;
  std::optional<config_node> node = cfg.find(key);
  std::vector<std::string> items = node ? node->as_string_list() : std::move(fallback);
  for (const auto& item : items) {
    network n;
    if (!parse_network(item, n)) {
      (node ? *node : cfg)
          .fail("not a network (CIDR like 10.0.0.0/8, an IP, or \"unix\"): \"" + item + "\"");
    }
    list.add(n);
  }
  return list;
}

}  // namespace

bool valid_label(std::string_view label) {
  if (label.empty() || label.size() > max_label_length) return false;
  return std::all_of(label.begin(), label.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

settings load_settings(const config_node& cfg, const std::filesystem::path& config_dir) {
  settings s;
  s.listen = parse_listen_list(cfg, config_dir, "127.0.0.1:1025");
  s.hostname = cfg.get_string("hostname", "");
  if (s.hostname.empty()) s.hostname = default_hostname();
  // It goes into the greeting, every reply's text and Received: a CR/LF would be a second
  // reply line (the greeting "220 mx\r\n250 injected").
  if (!valid_hostname(s.hostname)) {
    if (cfg.has("hostname"))
      cfg.at("hostname").fail("not a host name: 1 to 253 letters, digits, - . _");
    s.hostname = "localhost";
  }
  if (cfg.has("label")) {
    s.label = cfg.get_string("label", "");
    if (!valid_label(s.label)) {
      cfg.at("label").fail("expected 1 to " + std::to_string(max_label_length) +
                           " printable ASCII characters (no control characters, no CR/LF)");
    }
  }
  {
    std::string mode = cfg.get_string("mode", "smtp");
    if (mode == "lmtp")
      s.lmtp = true;
    else if (mode != "smtp")
      cfg.at("mode").fail("expected smtp or lmtp, got \"" + mode + "\"");
  }
  s.max_message_size = cfg.get_size("max_message_size", s.max_message_size);
  auto positive = [&](std::string_view key, std::int64_t fallback) -> std::size_t {
    std::int64_t v = cfg.get_int(key, fallback);
    if (v <= 0) cfg.at(key).fail("must be a positive number");
    return static_cast<std::size_t>(v);
  };
  s.max_recipients = positive("max_recipients", 100);
  s.max_line_length = cfg.get_size("max_line_length", s.max_line_length);
  if (s.max_line_length < 512) cfg.at("max_line_length").fail("must be at least 512 (RFC 5321)");
  s.max_data_line_length = cfg.get_size("max_data_line_length", s.max_data_line_length);
  if (s.max_data_line_length < 1000) {
    cfg.at("max_data_line_length").fail("must be at least 1000 (RFC 5321)");
  }
  s.idle_timeout = cfg.get_duration("idle_timeout", s.idle_timeout);
  if (s.idle_timeout.count() <= 0) cfg.at("idle_timeout").fail("must be positive");
  s.session_timeout = cfg.get_duration("session_timeout", s.session_timeout);
  if (s.session_timeout.count() <= 0) cfg.at("session_timeout").fail("must be positive");
  s.max_connections = positive("max_connections", 1000);
  s.max_errors = static_cast<unsigned>(positive("max_errors", 20));
  s.transcript = cfg.get_bool("transcript", false);
  s.chaos = cfg.get_string("chaos", "");

  auto resolve = [&](const std::string& p) { return resolve_config_path(config_dir, p); };

  if (auto tls = cfg.find("tls")) {
    static constexpr tls_mode modes[] = {tls_mode::off, tls_mode::starttls,
                                         tls_mode::starttls_required, tls_mode::implicit};
    s.tls = modes[parse_tls_block(*tls, {"off", "starttls", "starttls-required", "implicit"},
                                  config_dir, s.tls_cert, s.tls_key)];
  }

  if (auto auth = cfg.find("auth")) {
    std::string mode = auth->get_string("mode", "off");
    if (mode == "off")
      s.auth = auth_mode::off;
    else if (mode == "accept-any")
      s.auth = auth_mode::accept_any;
    else if (mode == "optional")
      s.auth = auth_mode::optional;
    else if (mode == "required")
      s.auth = auth_mode::required;
    else
      auth->at("mode").fail("expected off, accept-any, optional or required");
    std::string file = auth->get_string("htpasswd", "");
    s.users_pairs = auth->get_string("users", "");
    s.allow_insecure = auth->get_bool("allow_insecure", false);
    if (auth->has("mechanisms")) {
      s.mech_plain = s.mech_login = s.mech_cram_md5 = false;
      auto node = auth->at("mechanisms");
      for (const auto& m : node.as_string_list()) {
        if (m == "PLAIN")
          s.mech_plain = true;
        else if (m == "LOGIN")
          s.mech_login = true;
        else if (m == "CRAM-MD5")
          s.mech_cram_md5 = true;
        else
          node.fail("unknown mechanism \"" + m + "\" (PLAIN, LOGIN, CRAM-MD5)");
      }
      if (!s.mech_plain && !s.mech_login && !s.mech_cram_md5) node.fail("no mechanism left");
    }
    if (s.auth == auth_mode::optional || s.auth == auth_mode::required) {
      if (file.empty() && s.users_pairs.empty())
        auth->fail("auth.mode " + mode + " needs auth.htpasswd or auth.users");
    }
    if (!file.empty()) s.htpasswd = resolve(file);
    // RFC 4954 §4: cleartext mechanisms need a protected channel. Refuse a configuration
    // that could only ever offer them in the clear, unless explicitly allowed.
    if (s.auth != auth_mode::off && s.tls == tls_mode::off && !s.allow_insecure &&
        !s.mech_cram_md5) {
      auth->fail("PLAIN/LOGIN need TLS: set tls.mode, or auth.allow_insecure: true");
    }
  }

  if (auto ar = cfg.find("allowed_recipients")) {
    for (const auto& item : ar->is_sequence() ? ar->items() : std::vector<config_node>{*ar}) {
      try {
        s.allowed_recipients.emplace_back(item.as_string(),
                                          std::regex::ECMAScript | std::regex::icase);
      } catch (const std::regex_error& e) {
        item.fail(std::string("not a regular expression: ") + e.what());
      }
    }
  }
  s.ignore_rejected_recipients = cfg.get_bool("ignore_rejected_recipients", false);
  s.reject_bare_cr_in_headers = cfg.get_bool("reject_bare_cr_in_headers", false);
  if (s.ignore_rejected_recipients && s.allowed_recipients.empty()) {
    cfg.at("ignore_rejected_recipients").fail("needs allowed_recipients (nothing is rejected)");
  }
  if (s.ignore_rejected_recipients && s.lmtp) {
    // LMTP answers DATA once per accepted RCPT; a dropped one would lack its reply.
    cfg.at("ignore_rejected_recipients").fail("is not available in mode lmtp");
  }

  s.xclient_trusted = parse_networks(cfg, "xclient_trusted", {});
  s.proxy_protocol = cfg.get_bool("proxy_protocol", false);
  s.proxy_trusted = parse_networks(cfg, "proxy_trusted", {"127.0.0.0/8", "::1/128", "unix"});
  s.proxy_timeout = cfg.get_duration("proxy_timeout", s.proxy_timeout);
  return s;
}

}  // namespace sluice::smtp
