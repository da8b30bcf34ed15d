// mailpit_flags.cpp — see mailpit_flags.hpp. The table below is the whole facade: one row
// per Mailpit flag (Mailpit v1.30, docs/configuration), what Sluice does with it.
#include "mailpit_flags.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <optional>
#include <sstream>

#include "sluice/config.hpp"
#include "sluice/text.hpp"

namespace sluice::kernel::mailpit {
namespace {

enum class kind {
  text,          // takes a value, translated
  boolean,       // takes no value (or =true/=false), translated
  ignored,       // boolean accepted and without effect in Sluice (documented why)
  ignored_text,  // value accepted and without effect
  refused,       // boolean Sluice cannot honour: an error when set
  refused_text,  // value Sluice cannot honour: an error when set
};

struct flag_spec {
  std::string_view name;  // long name without "--"
  char short_name;        // 0: none
  std::string_view env;   // the MP_* twin; empty: none
  kind k;
  std::string_view help;           // one line for --help; for refused flags, why
  std::string_view alias_of = {};  // a deprecated spelling of another flag
};

constexpr flag_spec flags[] = {
    // General / storage (Mailpit docs: configuration/runtime-options)
    {"database", 'd', "MP_DATABASE", kind::text,
     "SQLite file of the store (a directory gets sluice.db); default: a temporary directory"},
    {"db-file", 0, "MP_DATA_FILE", kind::text, "", "database"},
    {"max", 'm', "MP_MAX_MESSAGES", kind::text,
     "keep the newest N messages (0 = all; default 500)"},
    {"max-age", 0, "MP_MAX_AGE", kind::text, "prune messages older than <n>h or <n>d"},
    {"max-message-size", 0, "MP_MAX_MESSAGE_SIZE", kind::text,
     "largest message in MB for SMTP and the send API (default 50, 0 = 1 GB)"},
    {"compression", 0, "MP_COMPRESSION", kind::text, "zstd level of stored messages: 0-3"},
    {"label", 0, "MP_LABEL", kind::text,
     "label shown in the web UI, the SMTP and POP3 greetings, and sent to webhooks"},
    {"quiet", 'q', "MP_QUIET", kind::boolean, "log errors only"},
    {"verbose", 'v', "MP_VERBOSE", kind::boolean, "log debug messages"},
    {"disable-version-check", 0, "MP_DISABLE_VERSION_CHECK", kind::ignored,
     "accepted (Sluice never checks for new versions)"},
    {"disable-auto-vacuum", 0, "MP_DISABLE_AUTO_VACUUM", kind::ignored,
     "accepted (the store frees pages in small steps after pruning, never a full VACUUM)"},
    {"disable-html-check", 0, "MP_DISABLE_HTML_CHECK", kind::ignored,
     "accepted (deprecated in Mailpit, no effect there either)"},
    {"disable-wal", 0, "MP_DISABLE_WAL", kind::refused,
     "the store always uses SQLite's WAL journal; keep the database on a local file system"},
    {"tenant-id", 0, "MP_TENANT_ID", kind::refused_text,
     "tenants sharing one database are not supported; give each instance its own --database, "
     "or use mailboxes in a configuration file (plugins/store/README.md)"},
    {"use-message-dates", 0, "MP_USE_MESSAGE_DATES", kind::boolean,
     "date messages by their Date header instead of their arrival"},
    {"ignore-duplicate-ids", 0, "MP_IGNORE_DUPLICATE_IDS", kind::boolean,
     "a message whose Message-ID is already stored gets 250 and is dropped"},
    {"log-file", 0, "MP_LOG_FILE", kind::text,
     "append the log to this file instead of standard error"},
    // HTTP
    {"listen", 'l', "MP_UI_BIND_ADDR", kind::text,
     "web UI and API address <ip>:<port> or unix:<path>[:<mode>] (default 127.0.0.1:8025)"},
    {"webroot", 0, "MP_WEBROOT", kind::text, "URL path prefix of the web UI and API"},
    {"ui-auth-file", 0, "MP_UI_AUTH_FILE", kind::text,
     "htpasswd file for HTTP Basic authentication (also MP_UI_AUTH=\"user:pass ...\")"},
    {"ui-tls-cert", 0, "MP_UI_TLS_CERT", kind::text, "PEM certificate for HTTPS"},
    {"ui-tls-key", 0, "MP_UI_TLS_KEY", kind::text, "PEM key for HTTPS"},
    {"ui-ssl-cert", 0, "MP_UI_SSL_CERT", kind::text, "", "ui-tls-cert"},
    {"ui-ssl-key", 0, "MP_UI_SSL_KEY", kind::text, "", "ui-tls-key"},
    {"api-cors", 0, "MP_API_CORS", kind::text, "allowed Origin hosts, comma-separated (* = any)"},
    {"disable-http-compression", 0, "MP_DISABLE_HTTP_COMPRESSION", kind::boolean,
     "no gzip responses, no WebSocket compression"},
    {"send-api-auth-file", 0, "MP_SEND_API_AUTH_FILE", kind::text,
     "htpasswd file for POST /api/v1/send (also MP_SEND_API_AUTH)"},
    {"send-api-auth-accept-any", 0, "MP_SEND_API_AUTH_ACCEPT_ANY", kind::boolean,
     "POST /api/v1/send needs no credentials"},
    {"hide-delete-all-button", 0, "MP_HIDE_DELETE_ALL_BUTTON", kind::ignored,
     "accepted (the button stays)"},
    {"disable-link-check-rate-limit", 0, "MP_DISABLE_LINK_CHECK_RATE_LIMIT", kind::boolean,
     "the link check neither caches results for 60 s nor limits requests per host"},
    {"allow-internal-http-requests", 0, "MP_ALLOW_INTERNAL_HTTP_REQUESTS", kind::boolean,
     "the link check may request loopback, private and other internal addresses"},
    {"allow-untrusted-tls", 0, "MP_ALLOW_UNTRUSTED_TLS", kind::boolean,
     "the link check accepts any TLS certificate"},
    {"block-remote-css-and-fonts", 0, "MP_BLOCK_REMOTE_CSS_AND_FONTS", kind::boolean,
     "the HTML view loads no style sheets or fonts from remote hosts"},
    {"enable-prometheus", 0, "MP_ENABLE_PROMETHEUS", kind::text,
     "true: /metrics on the web server (always served); a separate address is not supported"},
    // SMTP
    {"smtp", 's', "MP_SMTP_BIND_ADDR", kind::text,
     "SMTP address <ip>:<port> or unix:<path>[:<mode>] (default 127.0.0.1:1025)"},
    {"smtp-tls-cert", 0, "MP_SMTP_TLS_CERT", kind::text, "PEM certificate: offer STARTTLS"},
    {"smtp-tls-key", 0, "MP_SMTP_TLS_KEY", kind::text, "PEM key for STARTTLS"},
    {"smtp-ssl-cert", 0, "MP_SMTP_SSL_CERT", kind::text, "", "smtp-tls-cert"},
    {"smtp-ssl-key", 0, "MP_SMTP_SSL_KEY", kind::text, "", "smtp-tls-key"},
    {"smtp-require-starttls", 0, "MP_SMTP_REQUIRE_STARTTLS", kind::boolean,
     "refuse mail before STARTTLS"},
    {"smtp-tls-required", 0, "MP_SMTP_TLS_REQUIRED", kind::boolean, "", "smtp-require-starttls"},
    {"smtp-require-tls", 0, "MP_SMTP_REQUIRE_TLS", kind::boolean,
     "implicit TLS (SMTPS) instead of STARTTLS"},
    {"smtp-auth-file", 0, "MP_SMTP_AUTH_FILE", kind::text,
     "htpasswd file: SMTP AUTH required (also MP_SMTP_AUTH=\"user:pass ...\")"},
    {"smtp-auth-accept-any", 0, "MP_SMTP_AUTH_ACCEPT_ANY", kind::boolean,
     "offer AUTH and accept any credentials, or none"},
    {"smtp-auth-allow-insecure", 0, "MP_SMTP_AUTH_ALLOW_INSECURE", kind::boolean,
     "allow AUTH PLAIN/LOGIN without TLS"},
    {"smtp-max-recipients", 0, "MP_SMTP_MAX_RECIPIENTS", kind::text,
     "recipients per message (default 100)"},
    {"smtp-allowed-recipients", 0, "MP_SMTP_ALLOWED_RECIPIENTS", kind::text,
     "regular expression: other recipients get 550"},
    {"smtp-disable-rdns", 0, "MP_SMTP_DISABLE_RDNS", kind::ignored,
     "accepted (Sluice never looks up client names)"},
    {"smtp-ignore-rejected-recipients", 0, "MP_SMTP_IGNORE_REJECTED_RECIPIENTS", kind::boolean,
     "recipients --smtp-allowed-recipients rejects get 250 and are dropped"},
    {"smtp-strict-rfc-headers", 0, "MP_SMTP_STRICT_RFC_HEADERS", kind::boolean,
     "refuse messages whose headers hold <CR><CR><LF> (a CR not followed by LF)"},
    {"smtp-forward-config", 0, "MP_SMTP_FORWARD_CONFIG", kind::refused_text,
     "forwarding a copy of every message is not supported by the facade; use a configuration "
     "file with a rewrite and a relay stage (plugins/relay/README.md)"},
    {"smtp-relay-config", 0, "MP_SMTP_RELAY_CONFIG", kind::text,
     "Mailpit's relay YAML: enables POST /api/v1/message/{ID}/release"},
    {"smtp-relay-all", 0, "MP_SMTP_RELAY_ALL", kind::boolean,
     "relay every message to its recipients (from the spool, retried)"},
    {"smtp-relay-matching", 0, "MP_SMTP_RELAY_MATCHING", kind::text,
     "relay messages to recipients matching this regular expression"},
    {"enable-spamassassin", 0, "MP_ENABLE_SPAMASSASSIN", kind::text,
     "spamd <host>:<port> or unix:<path>: score messages for the SpamAssassin check"},
    // POP3
    {"pop3", 0, "MP_POP3_BIND_ADDR", kind::text, "POP3 address (default 127.0.0.1:1110)"},
    {"pop3-auth-file", 0, "MP_POP3_AUTH_FILE", kind::text,
     "htpasswd file; POP3 runs only with users (also MP_POP3_AUTH)"},
    {"pop3-tls-cert", 0, "MP_POP3_TLS_CERT", kind::text, "PEM certificate: POP3 over TLS"},
    {"pop3-tls-key", 0, "MP_POP3_TLS_KEY", kind::text, "PEM key for POP3 over TLS"},
    // Tags
    {"tag", 't', "MP_TAG", kind::text, "tagging rules: 'tag1,tag2=search ...'"},
    {"tags-config", 0, "MP_TAGS_CONFIG", kind::text, "YAML file of filters: [{match, tags}]"},
    {"tags-title-case", 0, "MP_TAGS_TITLE_CASE", kind::boolean, "Title Case automatic tags"},
    {"tags-disable", 0, "MP_TAGS_DISABLE", kind::text,
     "automatic tags to turn off: x-tags, plus-addresses"},
    {"tags-username", 0, "MP_TAGS_USERNAME", kind::boolean, "tag with the authenticated user"},
    // Chaos, webhook
    {"enable-chaos", 0, "MP_ENABLE_CHAOS", kind::boolean,
     "allow chaos triggers (set through the API)"},
    {"chaos-triggers", 0, "MP_CHAOS_TRIGGERS", kind::text,
     "Sender:<code>:<pct>,Recipient:...,Authentication:... (enables chaos)"},
    {"webhook-url", 0, "MP_WEBHOOK_URL", kind::text, "POST each new message's summary here"},
    {"webhook-limit", 0, "MP_WEBHOOK_LIMIT", kind::text,
     "at most one webhook call per N seconds (delayed, not dropped; 0 = no limit)"},
    {"webhook-delay", 0, "MP_WEBHOOK_DELAY", kind::ignored_text,
     "accepted (the call is made after the message is stored)"},
};

// Env-only variables (Mailpit reads them; no flag).
constexpr std::string_view env_only[] = {
    "MP_UI_AUTH",
    "MP_SMTP_AUTH",
    "MP_POP3_AUTH",
    "MP_SEND_API_AUTH",
    "MP_SMTP_RELAY_HOST",
    "MP_SMTP_RELAY_PORT",
    "MP_SMTP_RELAY_STARTTLS",
    "MP_SMTP_RELAY_TLS",
    "MP_SMTP_RELAY_ALLOW_INSECURE",
    "MP_SMTP_RELAY_AUTH",
    "MP_SMTP_RELAY_USERNAME",
    "MP_SMTP_RELAY_PASSWORD",
    "MP_SMTP_RELAY_SECRET",
    "MP_SMTP_RELAY_RETURN_PATH",
    "MP_SMTP_RELAY_OVERRIDE_FROM",
    "MP_SMTP_RELAY_ALLOWED_RECIPIENTS",
    "MP_SMTP_RELAY_BLOCKED_RECIPIENTS",
    "MP_SMTP_RELAY_PRESERVE_MESSAGE_IDS",
    "MP_SMTP_RELAY_FWD_SMTP_ERRORS",
    "MP_STRICT_RFC_HEADERS",
};

const flag_spec* find_long(std::string_view name) {
  for (const auto& f : flags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

const flag_spec* find_short(char c) {
  if (c == 0) return nullptr;  // 0 marks "no short form" in the table
  for (const auto& f : flags) {
    if (f.short_name == c) return &f;
  }
  return nullptr;
}

bool takes_value(const flag_spec& f) {
  return f.k == kind::text || f.k == kind::ignored_text || f.k == kind::refused_text;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// For messages: control bytes (a NUL would cut what() short) shown as '?'.
std::string printable(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

// One setting: its value and where it came from, for error messages.
struct value {
  std::string text;
  std::string origin;  // "--max" or "MP_MAX_MESSAGES"
};

class settings {
 public:
  std::map<std::string, value, std::less<>> v;

  const value* get(std::string_view name) const {
    auto it = v.find(name);
    return it == v.end() ? nullptr : &it->second;
  }
  bool has(std::string_view name) const { return get(name) != nullptr; }
  std::string str(std::string_view name, std::string fallback = {}) const {
    auto* x = get(name);
    return x ? x->text : fallback;
  }
  bool on(std::string_view name) const {
    auto* x = get(name);
    return x && x->text == "true";
  }
  std::string origin(std::string_view name) const {
    auto* x = get(name);
    return x ? x->origin : "--" + std::string(name);
  }
  [[noreturn]] void fail(std::string_view name, std::string_view why) const {
    throw flag_error(origin(name) + ": " + std::string(why));
  }
};

// Mailpit: env booleans are true only for 1, true, yes (any case).
bool env_bool(std::string_view s) {
  auto l = lower(s);
  return l == "1" || l == "true" || l == "yes";
}

// pflag's strconv.ParseBool, for --flag=VALUE.
std::optional<bool> flag_bool(std::string_view s) {
  for (auto t : {"1", "t", "T", "TRUE", "true", "True"})
    if (s == t) return true;
  for (auto f : {"0", "f", "F", "FALSE", "false", "False"})
    if (s == f) return false;
  return std::nullopt;
}

settings collect(const std::vector<std::string>& args, const env_map& env) {
  settings s;
  auto set = [&](const flag_spec& f, std::string text, std::string origin) {
    const flag_spec& target = f.alias_of.empty() ? f : *find_long(f.alias_of);
    s.v[std::string(target.name)] = value{std::move(text), std::move(origin)};
  };
  // The environment first: the flags override it.
  for (const auto& f : flags) {
    if (f.env.empty()) continue;
    auto it = env.find(f.env);
    if (it == env.end() || it->second.empty()) continue;
    if (takes_value(f))
      set(f, it->second, std::string(f.env));
    else
      set(f, env_bool(it->second) ? "true" : "false", std::string(f.env));
  }
  if (auto it = env.find("MP_STRICT_RFC_HEADERS"); it != env.end() && !it->second.empty())
    set(*find_long("smtp-strict-rfc-headers"), env_bool(it->second) ? "true" : "false",
        "MP_STRICT_RFC_HEADERS");
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const flag_spec* f = nullptr;
    std::optional<std::string> val;
    std::string shown;
    if (a.starts_with("--")) {
      auto eq = a.find('=');
      std::string name = a.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
      f = find_long(name);
      shown = "--" + name;
      if (eq != std::string::npos) val = a.substr(eq + 1);
    } else if (a.size() >= 2 && a[0] == '-') {
      f = find_short(a[1]);
      shown = a.substr(0, 2);
      if (a.size() > 2) val = a.substr(a[2] == '=' ? 3 : 2);
    }
    if (!f) {
      throw flag_error(printable(a) +
                       ": unknown flag (neither a sluice option nor a Mailpit flag; see "
                       "sluice --help)");
    }
    if (takes_value(*f)) {
      if (!val) {
        if (i + 1 >= args.size()) throw flag_error(shown + ": needs a value");
        val = args[++i];
      }
      set(*f, *val, shown);
    } else {
      bool b = true;
      if (val) {
        auto parsed = flag_bool(*val);
        if (!parsed) throw flag_error(shown + ": expected true or false, got \"" + *val + "\"");
        b = *parsed;
      }
      set(*f, b ? "true" : "false", shown);
    }
  }
  // What Sluice cannot honour is refused once set, wherever it came from.
  for (const auto& f : flags) {
    if (f.k != kind::refused && f.k != kind::refused_text) continue;
    auto* x = s.get(f.name);
    if (!x) continue;
    if (f.k == kind::refused && x->text != "true") continue;
    throw flag_error(x->origin + ": not supported by sluice: " + std::string(f.help));
  }
  return s;
}

// ---- YAML output -------------------------------------------------------------------------

// A double-quoted YAML scalar. `$` is doubled: the config loader substitutes ${VAR} in every
// scalar, and a user's value (a regular expression ending in `$`) must stay as written.
std::string q(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '$':
        out += "$$";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += "\\x";
          append_hex(out, c, false);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// A reference to an environment variable the loader substitutes (secrets stay out of the text).
std::string env_ref(std::string_view name) {
  return "\"${" + std::string(name) + "}\"";
}

std::string abs_path(const std::string& p) {
  if (p.empty()) return p;
  std::error_code ec;  // absolute() fails only without a current directory: keep p then
  auto a = std::filesystem::absolute(p, ec);
  return ec ? p : a.lexically_normal().string();
}

std::uint64_t parse_uint(const settings& s, std::string_view name, std::uint64_t max) {
  std::string t = s.str(name);
  std::uint64_t n = 0;
  auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (t.empty() || ec != std::errc() || ptr != t.data() + t.size() || n > max) {
    s.fail(name,
           "expected a whole number from 0 to " + std::to_string(max) + ", got \"" + t + "\"");
  }
  return n;
}

// Mailpit's listen forms: <ip>:<port> (":port" = every address) or unix:<path>:<mode>.
std::string listen_address(const settings& s, std::string_view name, std::string fallback) {
  if (!s.has(name)) return fallback;
  std::string a = s.str(name);
  if (a.starts_with("unix:")) {
    if (a.size() <= 5) s.fail(name, "expected unix:<path>[:<mode>]");
    return a;
  }
  auto colon = a.rfind(':');
  if (colon == std::string::npos || colon + 1 == a.size())
    s.fail(name, "expected <ip>:<port> or unix:<path>[:<mode>], got \"" + a + "\"");
  std::string port = a.substr(colon + 1);
  if (port.size() > 5 ||
      !std::all_of(port.begin(), port.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) ||
      std::stoul(port) > 65535) {
    s.fail(name, "bad port in \"" + a + "\"");
  }
  if (colon == 0) return "[::]" + a;  // Go's ":port" listens on every address
  return a;
}

void need_pair(const settings& s, std::string_view cert, std::string_view key) {
  for (auto name : {cert, key}) {
    if (s.str(name).starts_with("sans:")) {
      s.fail(name,
             "sluice does not generate self-signed certificates (sans:); give PEM files, e.g. "
             "from openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost");
    }
  }
  if (s.has(cert) && !s.has(key)) s.fail(cert, "needs --" + std::string(key) + " as well");
  if (s.has(key) && !s.has(cert)) s.fail(key, "needs --" + std::string(cert) + " as well");
}

// Mailpit's ArgsParser: words separated by spaces, quotes group and are removed.
std::vector<std::string> split_words(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  bool any = false;
  char quote = 0;
  for (char c : text) {
    if (quote) {
      if (c == quote)
        quote = 0;
      else
        cur += c;
    } else if (c == '"' || c == '\'') {
      quote = c;
      any = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (any || !cur.empty()) out.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (any || !cur.empty()) out.push_back(cur);
  return out;
}

std::vector<std::string> split_tags(std::string_view list) {
  std::vector<std::string> out;
  std::string cur;
  auto flush = [&] {
    auto b = cur.find_first_not_of(" \t");
    if (b != std::string::npos) out.push_back(cur.substr(b, cur.find_last_not_of(" \t") - b + 1));
    cur.clear();
  };
  for (char c : list) {
    if (c == ',')
      flush();
    else
      cur += c;
  }
  flush();
  return out;
}

struct tag_rule {
  std::string match;
  std::vector<std::string> tags;
};

std::vector<tag_rule> tag_rules(const settings& s) {
  std::vector<tag_rule> rules;
  if (s.has("tag")) {
    for (const auto& w : split_words(s.str("tag"))) {
      auto eq = w.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == w.size()) {
        s.fail("tag", "expected tag1,tag2=search, got \"" + w + "\"");
      }
      tag_rule r{w.substr(eq + 1), split_tags(w.substr(0, eq))};
      if (r.tags.empty()) s.fail("tag", "no tag names in \"" + w + "\"");
      rules.push_back(std::move(r));
    }
  }
  if (s.has("tags-config")) {
    std::string file = s.str("tags-config");
    std::error_code ec;
    if (!std::filesystem::is_regular_file(file, ec))
      s.fail("tags-config", "cannot read \"" + file + "\"");
    auto doc = config_node::load_file(file);
    if (!doc.is_map()) doc.fail("expected a map with filters: [{match, tags}]");
    if (auto fl = doc.find("filters")) {
      for (const auto& item : fl->items()) {
        tag_rule r;
        r.match = item.at("match").as_string();
        auto t = item.at("tags");
        if (t.is_sequence()) {
          r.tags = t.as_string_list();
        } else {
          r.tags = split_tags(t.as_string());
        }
        if (r.tags.empty() || r.match.empty()) item.fail("needs a match and at least one tag");
        rules.push_back(std::move(r));
      }
    }
    doc.check_unknown_keys();
  }
  return rules;
}

// ---- relay ---------------------------------------------------------------------------------

struct relay_config {
  std::string origin;  // "--smtp-relay-config relay.yaml" or "MP_SMTP_RELAY_HOST"
  std::string host;
  unsigned port = 25;
  bool starttls = false;
  bool tls = false;
  bool allow_insecure = false;
  std::string auth;  // "", none, plain, login, cram-md5
  std::string username;
  bool has_password = false;
  bool has_secret = false;
  std::string return_path;
  std::string override_from;
  std::string allowed;
  std::string blocked;
  bool preserve_message_ids = false;
  bool forward_errors = false;
};

bool is_loopback(std::string_view host) {
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

bool is_ip_literal(std::string_view host) {
  if (host.find(':') != std::string_view::npos) return true;
  return !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
  });
}

// Mailpit's relay YAML (config/config.go SMTPRelayConfigStruct). Unknown keys are errors with
// their location, as everywhere in Sluice (Mailpit ignores them).
relay_config relay_from_file(const std::string& file, const std::string& origin, env_map& secrets) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec))
    throw flag_error(origin + ": cannot read \"" + file + "\"");
  auto doc = config_node::load_file(file);
  if (!doc.is_map()) doc.fail("expected Mailpit's relay configuration (a map with host:)");
  relay_config r;
  r.origin = origin + " " + file;
  r.host = doc.at("host").as_string();
  if (r.host.empty()) doc.at("host").fail("must not be empty");
  if (auto p = doc.find("port")) {
    auto n = p->as_int();
    if (n < 1 || n > 65535) p->fail("expected a port from 1 to 65535");
    r.port = static_cast<unsigned>(n);
  }
  r.starttls = doc.get_bool("starttls", false);
  r.tls = doc.get_bool("tls", false);
  if (r.starttls && r.tls) doc.at("tls").fail("starttls and tls exclude each other");
  r.allow_insecure = doc.get_bool("allow-insecure", false);
  if (auto a = doc.find("auth")) {
    r.auth = lower(a->as_string());
    if (r.auth != "none" && r.auth != "plain" && r.auth != "login" && r.auth != "cram-md5")
      a->fail("expected none, plain, login or cram-md5, got \"" + r.auth + "\"");
  }
  r.username = doc.get_string("username", "");
  if (auto p = doc.find("password")) {
    secrets["MP_SMTP_RELAY_PASSWORD"] = p->as_string();
    r.has_password = true;
  }
  if (auto p = doc.find("secret")) {
    secrets["MP_SMTP_RELAY_SECRET"] = p->as_string();
    r.has_secret = true;
  }
  r.return_path = doc.get_string("return-path", "");
  r.override_from = doc.get_string("override-from", "");
  r.allowed = doc.get_string("allowed-recipients", doc.get_string("recipient-allowlist", ""));
  r.blocked = doc.get_string("blocked-recipients", "");
  r.preserve_message_ids = doc.get_bool("preserve-message-ids", false);
  r.forward_errors = doc.get_bool("forward-smtp-errors", false);
  // Needed before check_unknown_keys: "auth" omitted means no AUTH even with a username.
  if ((r.auth == "plain" || r.auth == "login") && (r.username.empty() || !r.has_password))
    doc.at("auth").fail("auth " + r.auth + " needs username and password");
  if (r.auth == "cram-md5" && (r.username.empty() || !r.has_secret))
    doc.at("auth").fail("auth cram-md5 needs username and secret");
  doc.check_unknown_keys();
  return r;
}

relay_config relay_from_env(const env_map& env) {
  auto get = [&](std::string_view key) -> std::string {
    auto it = env.find("MP_SMTP_RELAY_" + std::string(key));
    return it == env.end() ? std::string() : it->second;
  };
  relay_config r;
  r.origin = "MP_SMTP_RELAY_HOST";
  r.host = get("HOST");
  if (auto p = get("PORT"); !p.empty()) {
    unsigned n = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), n);
    if (ec != std::errc() || ptr != p.data() + p.size() || n < 1 || n > 65535)
      throw flag_error("MP_SMTP_RELAY_PORT: expected a port from 1 to 65535, got \"" + p + "\"");
    r.port = n;
  }
  r.starttls = env_bool(get("STARTTLS"));
  r.tls = env_bool(get("TLS"));
  if (r.starttls && r.tls)
    throw flag_error(
        "MP_SMTP_RELAY_TLS: MP_SMTP_RELAY_STARTTLS and MP_SMTP_RELAY_TLS exclude "
        "each other");
  r.allow_insecure = env_bool(get("ALLOW_INSECURE"));
  r.auth = lower(get("AUTH"));
  if (!r.auth.empty() && r.auth != "none" && r.auth != "plain" && r.auth != "login" &&
      r.auth != "cram-md5") {
    throw flag_error("MP_SMTP_RELAY_AUTH: expected none, plain, login or cram-md5, got \"" +
                     r.auth + "\"");
  }
  r.username = get("USERNAME");
  r.has_password = !get("PASSWORD").empty();
  r.has_secret = !get("SECRET").empty();
  if ((r.auth == "plain" || r.auth == "login") && (r.username.empty() || !r.has_password))
    throw flag_error("MP_SMTP_RELAY_AUTH: " + r.auth +
                     " needs MP_SMTP_RELAY_USERNAME and MP_SMTP_RELAY_PASSWORD");
  if (r.auth == "cram-md5" && (r.username.empty() || !r.has_secret))
    throw flag_error(
        "MP_SMTP_RELAY_AUTH: cram-md5 needs MP_SMTP_RELAY_USERNAME and MP_SMTP_RELAY_SECRET");
  r.return_path = get("RETURN_PATH");
  r.override_from = get("OVERRIDE_FROM");
  r.allowed = get("ALLOWED_RECIPIENTS");
  r.blocked = get("BLOCKED_RECIPIENTS");
  r.preserve_message_ids = env_bool(get("PRESERVE_MESSAGE_IDS"));
  r.forward_errors = env_bool(get("FWD_SMTP_ERRORS"));
  return r;
}

// The relay stage's keys (plugins/relay/README.md), indented for a stage list item.
std::string relay_keys(const relay_config& r, const std::string& ind) {
  std::ostringstream o;
  std::string host = r.host.find(':') != std::string::npos ? "[" + r.host + "]" : r.host;
  o << ind << "smarthost: " << q(host + ":" + std::to_string(r.port)) << "\n";
  o << ind << "security: " << (r.tls ? "tls" : r.starttls ? "starttls-required" : "none") << "\n";
  if (r.allow_insecure) o << ind << "allow_insecure: true\n";
  const bool auth = !r.auth.empty() && r.auth != "none";
  if (auth) {
    if (!r.tls && !r.starttls) {
      // Go's smtp.PlainAuth sends credentials in clear text only to a loopback server;
      // Sluice holds LOGIN and CRAM-MD5 to the same rule.
      if (!is_loopback(r.host)) {
        throw flag_error(r.origin + ": AUTH to " + r.host +
                         " over an unencrypted connection is refused: set starttls: true or "
                         "tls: true (MP_SMTP_RELAY_STARTTLS / MP_SMTP_RELAY_TLS)");
      }
      o << ind << "allow_plaintext_auth: true\n";
    }
    std::string mech = r.auth == "plain" ? "PLAIN" : r.auth == "login" ? "LOGIN" : "CRAM-MD5";
    o << ind << "auth:\n"
      << ind << "  mechanism: " << mech << "\n"
      << ind << "  username: " << q(r.username) << "\n"
      << ind << "  password: "
      << env_ref(r.auth == "cram-md5" ? "MP_SMTP_RELAY_SECRET" : "MP_SMTP_RELAY_PASSWORD") << "\n";
  }
  if (!r.blocked.empty()) o << ind << "blocked_recipients: [" << q(r.blocked) << "]\n";
  return o.str();
}

}  // namespace

int flag_arity(std::string_view arg) {
  const flag_spec* f = nullptr;
  bool attached = false;
  if (arg.starts_with("--")) {
    auto eq = arg.find('=');
    f = find_long(arg.substr(2, eq == std::string_view::npos ? std::string_view::npos : eq - 2));
    attached = eq != std::string_view::npos;
  } else if (arg.size() >= 2 && arg[0] == '-') {
    f = find_short(arg[1]);
    attached = arg.size() > 2;
  }
  if (!f) return -1;
  return takes_value(*f) && !attached ? 1 : 0;
}

bool env_selects_facade(const env_map& env) {
  for (const auto& [name, val] : env) {
    if (val.empty()) continue;
    if (std::find(std::begin(env_only), std::end(env_only), name) != std::end(env_only))
      return true;
    for (const auto& f : flags) {
      if (!f.env.empty() && f.env == name) return true;
    }
  }
  return false;
}

std::string help_text() {
  std::string out =
      "Mailpit flags (each also read from its MP_* variable; the flag wins). With any of\n"
      "them, or with an MP_* variable and no -c/$SLUICE_CONFIG, sluice builds the\n"
      "configuration Mailpit would run (see `sluice check-config --print`); addresses\n"
      "default to 127.0.0.1, not Mailpit's [::]:\n";
  for (const auto& f : flags) {
    if (!f.alias_of.empty()) continue;
    std::string name = f.short_name ? std::string("-") + f.short_name + ", " : "    ";
    name += "--" + std::string(f.name);
    if (takes_value(f)) name += " V";
    std::string help(f.help);
    if (f.k == kind::refused || f.k == kind::refused_text) help = "refused: " + help;
    // Flag in a 34-column field, help wrapped at 96 columns under itself.
    std::string line = "  " + name;
    line += line.size() < 34 ? std::string(34 - line.size(), ' ') : "\n" + std::string(34, ' ');
    std::size_t col = 34;
    std::istringstream words(help);
    for (std::string w; words >> w;) {
      if (col > 34 && col + 1 + w.size() > 96) {
        line += "\n" + std::string(34, ' ');
        col = 34;
      } else if (col > 34) {
        line += ' ';
        ++col;
      }
      line += w;
      col += w.size();
    }
    out += line + "\n";
  }
  out +=
      "  Deprecated spellings accepted: --db-file, --ui-ssl-cert/key, --smtp-ssl-cert/key,\n"
      "  --smtp-tls-required. Env only: MP_UI_AUTH, MP_SMTP_AUTH, MP_POP3_AUTH,\n"
      "  MP_SEND_API_AUTH (\"user:pass ...\"), MP_SMTP_RELAY_* (Mailpit's relay keys).\n";
  return out;
}

facade translate(const std::vector<std::string>& args, const env_map& env,
                 const std::function<std::filesystem::path()>& temp_dir) {
  settings s = collect(args, env);
  facade out;
  out.temporary_data = false;
  auto env_set = [&](std::string_view name) {
    auto it = env.find(name);
    return it != env.end() && !it->second.empty();
  };

  // ---- storage ----
  std::filesystem::path db;
  std::filesystem::path spool;
  if (s.has("database")) {
    std::string d = s.str("database");
    if (d.starts_with("http://") || d.starts_with("https://"))
      s.fail("database", "rqlite databases are not supported; give a file");
    db = abs_path(d);
    std::error_code ec;
    if (std::filesystem::is_directory(db, ec)) db /= "sluice.db";
    spool = db;
    spool += "-spool";
  } else {
    out.temporary_data = true;
    const std::filesystem::path dir = temp_dir();
    db = dir / "sluice.db";
    spool = dir / "spool";
  }
  std::uint64_t max_messages = s.has("max") ? parse_uint(s, "max", 1000000000) : 500;
  std::string max_age;
  if (s.has("max-age")) {
    max_age = s.str("max-age");
    bool ok = max_age.size() >= 2 && (max_age.back() == 'h' || max_age.back() == 'd') &&
              std::all_of(max_age.begin(), max_age.end() - 1,
                          [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (!ok || max_age.find_first_not_of('0') == max_age.size() - 1)
      s.fail("max-age", "expected <n>h or <n>d with n > 0 (e.g. 48h, 7d), got \"" + max_age + "\"");
  }
  std::string compression;
  if (s.has("compression")) {
    static const char* levels[] = {"0", "fastest", "default", "best"};
    compression = levels[parse_uint(s, "compression", 3)];
  }
  std::string max_size = "50MB";
  if (s.has("max-message-size")) {
    auto mb = parse_uint(s, "max-message-size", 1024);
    max_size = mb == 0 ? "1GB" : std::to_string(mb) + "MB";
  }
  // The label goes into the UI, a webhook header and (when it fits a protocol line: printable
  // ASCII without < >, at most 128 bytes, as the smtp and pop3 plugins check) the greetings.
  bool greeting_label = false;
  if (s.has("label")) {
    const std::string label = s.str("label");
    if (label.size() > 1024) s.fail("label", "at most 1024 bytes");
    for (unsigned char c : label) {
      if (c < 0x20 || c == 0x7f)
        s.fail("label", "control characters (CR, LF, ...) are not allowed");
    }
    greeting_label = label.size() <= 128 && std::all_of(label.begin(), label.end(), [](char c) {
                       return c >= 0x20 && c <= 0x7e && c != '<' && c != '>';
                     });
  }
  std::string log_file;
  if (s.has("log-file")) {
    log_file = s.str("log-file");
    if (log_file.empty() || log_file.size() > 4096) s.fail("log-file", "expected a file path");
    log_file = abs_path(log_file);
  }
  std::string log_level = "info";
  if (s.on("quiet") && s.on("verbose")) s.fail("verbose", "conflicts with --quiet");
  if (s.on("quiet")) log_level = "error";
  if (s.on("verbose")) log_level = "debug";
  if (s.has("enable-prometheus")) {
    auto p = lower(s.str("enable-prometheus"));
    if (p != "true" && p != "false" && p != "1" && p != "0") {
      s.fail("enable-prometheus",
             "a separate metrics address is not supported; /metrics is served by the web "
             "server (--listen), use true");
    }
  }

  // ---- SMTP ----
  need_pair(s, "smtp-tls-cert", "smtp-tls-key");
  const bool smtp_cert = s.has("smtp-tls-cert");
  const bool req_starttls = s.on("smtp-require-starttls");
  const bool req_tls = s.on("smtp-require-tls");
  const bool insecure = s.on("smtp-auth-allow-insecure");
  const bool accept_any = s.on("smtp-auth-accept-any");
  const bool smtp_users = s.has("smtp-auth-file") || env_set("MP_SMTP_AUTH");
  if (req_starttls && req_tls)
    s.fail("smtp-require-tls", "conflicts with --smtp-require-starttls (choose one)");
  if ((req_starttls || req_tls) && !smtp_cert) {
    s.fail(req_tls ? "smtp-require-tls" : "smtp-require-starttls",
           "needs --smtp-tls-cert and --smtp-tls-key");
  }
  if (insecure && (req_starttls || req_tls)) {
    s.fail("smtp-auth-allow-insecure",
           std::string("conflicts with ") +
               (req_tls ? "--smtp-require-tls" : "--smtp-require-starttls"));
  }
  if (accept_any && smtp_users) {
    s.fail("smtp-auth-accept-any",
           "conflicts with " +
               (s.has("smtp-auth-file") ? s.origin("smtp-auth-file") : "MP_SMTP_AUTH"));
  }
  if ((accept_any || smtp_users) && !smtp_cert && !insecure) {
    s.fail(accept_any                ? "smtp-auth-accept-any"
           : s.has("smtp-auth-file") ? "smtp-auth-file"
                                     : "MP_SMTP_AUTH",
           "SMTP authentication needs TLS: set --smtp-tls-cert and --smtp-tls-key, or "
           "--smtp-auth-allow-insecure");
  }
  std::string tls_mode;
  if (smtp_cert) {
    tls_mode = req_tls ? "implicit" : "starttls";
    // Mailpit (RFC 4954): an auth file without allow-insecure forces STARTTLS first.
    if (req_starttls || (smtp_users && !insecure && !req_tls)) tls_mode = "starttls-required";
  }
  std::uint64_t max_rcpt = 100;
  if (s.has("smtp-max-recipients")) {
    max_rcpt = parse_uint(s, "smtp-max-recipients", 100000);
    if (max_rcpt == 0) s.fail("smtp-max-recipients", "must be at least 1");
  }

  // ---- relay ----
  std::optional<relay_config> relay;
  if (s.has("smtp-relay-config")) {
    try {
      relay = relay_from_file(abs_path(s.str("smtp-relay-config")), s.origin("smtp-relay-config"),
                              out.secrets);
    } catch (const config_error& e) {
      throw config_error(s.origin("smtp-relay-config") + ": " + e.what());
    }
  } else if (env_set("MP_SMTP_RELAY_HOST")) {
    relay = relay_from_env(env);
  }
  const bool relay_all = s.on("smtp-relay-all");
  const bool relay_matching = s.has("smtp-relay-matching");
  if ((relay_all || relay_matching) && !relay) {
    s.fail(relay_all ? "smtp-relay-all" : "smtp-relay-matching",
           "needs a relay: --smtp-relay-config FILE or MP_SMTP_RELAY_HOST");
  }
  if (relay_all && relay_matching)
    s.fail("smtp-relay-matching", "conflicts with --smtp-relay-all (choose one)");

  // ---- HTTP ----
  need_pair(s, "ui-tls-cert", "ui-tls-key");
  if (s.on("send-api-auth-accept-any") &&
      (s.has("send-api-auth-file") || env_set("MP_SEND_API_AUTH"))) {
    s.fail("send-api-auth-accept-any",
           "conflicts with " + (s.has("send-api-auth-file") ? s.origin("send-api-auth-file")
                                                            : std::string("MP_SEND_API_AUTH")));
  }
  if (s.has("webroot")) {
    auto w = s.str("webroot");
    for (char c : w) {
      if (!std::isalnum(static_cast<unsigned char>(c)) &&
          std::string_view("/_.@-").find(c) == std::string_view::npos)
        s.fail("webroot", "only letters, digits and / _ . @ - are allowed");
    }
  }

  // ---- POP3 ----
  need_pair(s, "pop3-tls-cert", "pop3-tls-key");
  const bool pop3 = s.has("pop3-auth-file") || env_set("MP_POP3_AUTH");

  // ---- tags, chaos, webhook, spam ----
  auto rules = tag_rules(s);
  bool x_tags = true, plus_tags = true;
  if (s.has("tags-disable")) {
    for (const auto& t : split_tags(s.str("tags-disable"))) {
      auto l = lower(t);
      if (l == "x-tags" || l == "xtags")
        x_tags = false;
      else if (l == "plus-addresses" || l == "plus-addressing")
        plus_tags = false;
      else
        s.fail("tags-disable", "expected x-tags or plus-addresses, got \"" + t + "\"");
    }
  }
  const bool chaos = s.on("enable-chaos") || s.has("chaos-triggers");
  std::string webhook_rate;
  if (s.has("webhook-limit")) {
    auto n = parse_uint(s, "webhook-limit", 86400);
    if (n > 0) {
      // One call per n seconds, as calls per hour rounded down (never faster than Mailpit).
      std::ostringstream r;
      r << std::floor(3600.0 / static_cast<double>(n) * 1000.0) / 1000.0 << "/h";
      webhook_rate = n == 1 ? "1/s" : r.str();
    }
  } else {
    webhook_rate = "1/s";  // Mailpit's default limit
  }
  std::string spamd;
  if (s.has("enable-spamassassin")) {
    spamd = s.str("enable-spamassassin");
    if (lower(spamd) == "postmark")
      s.fail("enable-spamassassin",
             "Postmark's hosted check is not supported (it uploads every message); run spamd");
  }

  // ---- the YAML ----
  std::ostringstream y;
  y << "# Generated by sluice from Mailpit flags and MP_* variables (sluice check-config "
       "--print).\n";
  y << "# Credentials are referenced as ${MP_...}: set them to use this file with -c.\n";
  if (out.temporary_data)
    y << "# No --database: data in a temporary directory, removed when sluice stops.\n";
  y << "log:\n  format: text\n  level: " << log_level << "\n";
  if (!log_file.empty()) y << "  file: " << q(log_file) << "\n";
  y << "spool:\n  path: " << q(spool.string()) << "\n";

  y << "services:\n";
  y << "  - name: default\n    plugin: store\n    path: " << q(db.string()) << "\n";
  y << "    max_messages: " << max_messages << "\n";
  if (!max_age.empty()) y << "    max_age: " << max_age << "\n";
  if (!compression.empty()) y << "    compression: " << compression << "\n";
  if (chaos) {
    y << "  - name: chaos\n    plugin: chaos\n";
    if (s.has("chaos-triggers")) y << "    triggers: " << q(s.str("chaos-triggers")) << "\n";
  }
  if (relay && !is_ip_literal(relay->host) && relay->host != "localhost")
    y << "  - name: resolver\n    plugin: resolver\n";

  y << "listeners:\n";
  y << "  - name: smtp\n    plugin: smtp\n    pipeline: capture\n";
  y << "    listen: [" << q(listen_address(s, "smtp", "127.0.0.1:1025")) << "]\n";
  y << "    max_message_size: " << max_size << "\n";
  y << "    max_recipients: " << max_rcpt << "\n";
  if (s.has("smtp-allowed-recipients"))
    y << "    allowed_recipients: [" << q(s.str("smtp-allowed-recipients")) << "]\n";
  // Without allowed recipients nothing is rejected: Mailpit's flag then has no effect.
  if (s.on("smtp-ignore-rejected-recipients") && s.has("smtp-allowed-recipients"))
    y << "    ignore_rejected_recipients: true\n";
  if (s.on("smtp-strict-rfc-headers")) y << "    reject_bare_cr_in_headers: true\n";
  if (greeting_label) y << "    label: " << q(s.str("label")) << "\n";
  if (!tls_mode.empty()) {
    y << "    tls:\n      mode: " << tls_mode << "\n";
    y << "      cert: " << q(abs_path(s.str("smtp-tls-cert"))) << "\n";
    y << "      key: " << q(abs_path(s.str("smtp-tls-key"))) << "\n";
  }
  if (accept_any || smtp_users) {
    y << "    auth:\n      mode: " << (accept_any ? "accept-any" : "required") << "\n";
    if (s.has("smtp-auth-file"))
      y << "      htpasswd: " << q(abs_path(s.str("smtp-auth-file"))) << "\n";
    if (env_set("MP_SMTP_AUTH")) y << "      users: " << env_ref("MP_SMTP_AUTH") << "\n";
    y << "      mechanisms: [PLAIN, LOGIN]\n";
    if (insecure) y << "      allow_insecure: true\n";
  }

  y << "  - name: http\n    plugin: http\n    pipeline: capture\n";
  y << "    listen: [" << q(listen_address(s, "listen", "127.0.0.1:8025")) << "]\n";
  if (s.has("webroot")) y << "    webroot: " << q(s.str("webroot")) << "\n";
  if (s.has("label")) y << "    label: " << q(s.str("label")) << "\n";
  y << "    max_send_size: " << max_size << "\n";
  if (s.has("ui-tls-cert")) {
    y << "    tls:\n      cert: " << q(abs_path(s.str("ui-tls-cert"))) << "\n";
    y << "      key: " << q(abs_path(s.str("ui-tls-key"))) << "\n";
  }
  if (s.has("ui-auth-file")) y << "    auth_file: " << q(abs_path(s.str("ui-auth-file"))) << "\n";
  if (env_set("MP_UI_AUTH")) y << "    auth: " << env_ref("MP_UI_AUTH") << "\n";
  if (s.has("send-api-auth-file"))
    y << "    send_auth_file: " << q(abs_path(s.str("send-api-auth-file"))) << "\n";
  if (env_set("MP_SEND_API_AUTH")) y << "    send_auth: " << env_ref("MP_SEND_API_AUTH") << "\n";
  if (s.on("send-api-auth-accept-any")) y << "    send_auth_accept_any: true\n";
  if (s.has("api-cors")) y << "    api_cors: " << q(s.str("api-cors")) << "\n";
  if (s.on("disable-http-compression")) y << "    disable_compression: true\n";
  if (s.on("block-remote-css-and-fonts")) y << "    block_remote_css_and_fonts: true\n";
  if (s.on("allow-internal-http-requests") || s.on("allow-untrusted-tls") ||
      s.on("disable-link-check-rate-limit")) {
    y << "    link_check:\n";
    if (s.on("allow-internal-http-requests")) y << "      allow_private: true\n";
    if (s.on("allow-untrusted-tls")) y << "      tls_verify: false\n";
    if (s.on("disable-link-check-rate-limit")) y << "      cache: false\n";
  }
  if (relay) {
    y << "    release_pipeline: release\n";
    if (!relay->return_path.empty()) y << "    release_sender: " << q(relay->return_path) << "\n";
    if (relay->preserve_message_ids) y << "    release_preserve_message_ids: true\n";
  }

  if (pop3) {
    y << "  - name: pop3\n    plugin: pop3\n";
    y << "    listen: [" << q(listen_address(s, "pop3", "127.0.0.1:1110")) << "]\n";
    if (s.has("pop3-auth-file"))
      y << "    htpasswd: " << q(abs_path(s.str("pop3-auth-file"))) << "\n";
    if (env_set("MP_POP3_AUTH")) y << "    users: " << env_ref("MP_POP3_AUTH") << "\n";
    if (greeting_label) y << "    label: " << q(s.str("label")) << "\n";
    y << "    mailbox: default\n    max_messages: 100\n";  // Mailpit shows the newest 100
    if (s.has("pop3-tls-cert")) {
      y << "    tls:\n      mode: implicit\n";
      y << "      cert: " << q(abs_path(s.str("pop3-tls-cert"))) << "\n";
      y << "      key: " << q(abs_path(s.str("pop3-tls-key"))) << "\n";
    } else {
      y << "    allow_insecure: true\n";  // Mailpit's POP3 takes USER/PASS in clear text
    }
  }

  y << "pipelines:\n";
  y << "  - name: capture\n    stages:\n";
  y << "      - plugin: mime\n        timeout: 30s\n        on_error: tempfail\n";
  if (!spamd.empty()) {
    // Mailpit only reports the score (sa-check); it never acts on it.
    y << "      - plugin: spam\n        engine: spamassassin\n        headers: false\n";
    y << "        on_error: continue\n        spamassassin:\n          address: " << q(spamd)
      << "\n";
  }
  y << "      - plugin: store\n        mailbox: default\n        timeout: 30s\n"
       "        on_error: tempfail\n";
  if (s.on("ignore-duplicate-ids")) y << "        duplicates: drop\n";
  if (s.on("use-message-dates")) y << "        dates: message\n";
  if (!x_tags || !plus_tags || s.on("tags-username") || s.on("tags-title-case") || !rules.empty()) {
    y << "        tags:\n";
    if (!x_tags) y << "          x_tags: false\n";
    if (!plus_tags) y << "          plus_addresses: false\n";
    if (s.on("tags-username")) y << "          username: true\n";
    if (s.on("tags-title-case")) y << "          title_case: true\n";
    if (!rules.empty()) {
      y << "          rules:\n";
      for (const auto& r : rules) {
        y << "            - match: " << q(r.match) << "\n              tags: [";
        for (std::size_t i = 0; i < r.tags.size(); ++i)
          y << (i ? ", " : "") << q(r.tags[i]);
        y << "]\n";
      }
    }
  }
  if (relay_all || relay_matching) {
    // Mailpit relays inside the SMTP transaction and only logs a failure, unless
    // forward-smtp-errors. Here the relay runs from the spool with retries after the client
    // has its 250; with forward-smtp-errors it runs inline, after the store, and a failure
    // is the client's reply (the message stays stored, as in Mailpit).
    const bool inline_relay = relay->forward_errors;
    y << "      - plugin: relay\n        name: auto_relay\n";
    if (inline_relay) {
      y << "        phase: inline\n        timeout: 5m\n        on_error: tempfail\n";
    } else {
      y << "        phase: deferred\n        timeout: 15m\n"
           "        retry: {initial: 1m, max: 1h, lifetime: 1d}\n";
    }
    y << relay_keys(*relay, "        ");
    if (relay_matching)
      y << "        allowed_recipients: [" << q(s.str("smtp-relay-matching")) << "]\n";
  }
  if (s.has("webhook-url")) {
    y << "      - plugin: webhook\n        url: ";
    std::string url = s.str("webhook-url");
    // user:pass@ in the URL is a credential: keep it out of the printed text.
    auto scheme = url.find("://");
    auto at = url.find('@');
    if (scheme != std::string::npos && at != std::string::npos && at < url.find('/', scheme + 3)) {
      out.secrets["MP_WEBHOOK_URL"] = url;
      y << env_ref("MP_WEBHOOK_URL") << "\n";
    } else {
      y << q(url) << "\n";
    }
    y << "        mailbox: default\n";  // the summary as the API serves it, tags included
    if (!webhook_rate.empty()) y << "        rate: " << webhook_rate << "\n";
    if (s.has("label"))
      y << "        headers:\n          Mailpit-Label: " << q(s.str("label")) << "\n";
  }
  if (relay) {
    y << "  - name: release\n    stages:\n";
    y << "      - plugin: mime\n        timeout: 30s\n        on_error: tempfail\n";
    if (!relay->override_from.empty()) {
      y << "      - plugin: rewrite\n        name: release_rewrite\n        timeout: 5s\n"
           "        on_error: tempfail\n";
      // The From address changes and so does the envelope sender, unless return-path
      // names the envelope sender (release_sender on the http listener).
      if (relay->return_path.empty()) {
        y << "        override_from: " << q(relay->override_from) << "\n";
      } else {
        y << "        override_from: {address: " << q(relay->override_from)
          << ", envelope: false}\n";
      }
    }
    y << "      - plugin: relay\n        name: release_relay\n        phase: inline\n"
         "        timeout: 5m\n        on_error: tempfail\n";
    y << relay_keys(*relay, "        ");
    if (!relay->allowed.empty()) y << "        allowed_recipients: [" << q(relay->allowed) << "]\n";
    y << "      - plugin: store\n        name: release_store\n        mailbox: released\n"
         "        timeout: 30s\n        on_error: tempfail\n";
  }
  out.yaml = y.str();
  return out;
}

}  // namespace sluice::kernel::mailpit
