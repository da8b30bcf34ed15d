// settings.cpp — see settings.hpp.
#include "settings.hpp"

#include <charconv>
#include <filesystem>
#include <stdexcept>

#include "sluice/http_client.hpp"
#include "sluice/text.hpp"
#include "sluice/version.hpp"

namespace sluice::webhook {
namespace {

bool token_char(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// Fields the client owns: framing and routing must not be overridden by configuration.
bool reserved_header(std::string_view name) {
  for (std::string_view r :
       {"host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"}) {
    if (iequals(name, r)) return true;
  }
  return false;
}

}  // namespace

std::optional<double> parse_rate(std::string_view s) {
  s = trim(s);
  auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  std::string_view count = trim(s.substr(0, slash));
  std::string_view unit = trim(s.substr(slash + 1));
  double n = 0;
  auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), n);
  if (count.empty() || ec != std::errc{} || end != count.data() + count.size() || !(n > 0) ||
      n > 1e6) {
    return std::nullopt;
  }
  if (unit == "s" || unit == "sec" || unit == "second") return n;
  if (unit == "m" || unit == "min" || unit == "minute") return n / 60.0;
  if (unit == "h" || unit == "hour") return n / 3600.0;
  return std::nullopt;
}

settings parse_settings(const config_node& cfg, const std::string& config_dir) {
  settings s;
  const config_node url = cfg.at("url");
  const std::string url_text = url.as_string();
  s.disabled = url_text.empty();
  try {
    s.url = url_template::parse(s.disabled ? "http://disabled.invalid/" : url_text);
  } catch (const std::invalid_argument& e) {
    url.fail(e.what());
  }
  s.method = cfg.get_string("method", "POST");
  if (s.method != "POST" && s.method != "PUT") cfg.at("method").fail("must be POST or PUT");
  if (auto t = cfg.find("template")) {
    try {
      s.body = json_template::parse(t->as_string());
    } catch (const std::invalid_argument& e) {
      t->fail(e.what());
    }
  }
  if (auto h = cfg.find("headers")) {
    if (!h->is_map()) h->fail("expected a map of header names to values");
    for (auto& [name, value] : h->entries()) {
      if (name.empty() || !std::all_of(name.begin(), name.end(), token_char)) {
        value.fail("\"" + name + "\" is not a valid header field name");
      }
      if (reserved_header(name)) value.fail("the client sets " + name + " itself");
      std::string v = value.as_string();
      for (char c : v) {
        if (c == '\r' || c == '\n' || c == '\0') value.fail("a header value must be one line");
      }
      // An empty value (an unset ${VAR:-}) sends no field, as Mailpit omits an empty label.
      if (!v.empty()) s.headers.emplace_back(name, std::move(v));
    }
  }
  s.secret = cfg.get_string("secret", "");
  if (cfg.has("secret") && s.secret.empty()) cfg.at("secret").fail("must not be empty");
  s.signature_header = cfg.get_string("signature_header", s.signature_header);
  if (s.signature_header.empty() ||
      !std::all_of(s.signature_header.begin(), s.signature_header.end(), token_char) ||
      reserved_header(s.signature_header)) {
    cfg.at("signature_header").fail("expected a header field name");
  }
  if (cfg.has("signature_header") && s.secret.empty()) {
    cfg.at("signature_header").fail("has no effect without a secret");
  }
  s.connect_timeout = cfg.get_duration("connect_timeout", s.connect_timeout);
  if (s.connect_timeout.count() <= 0) cfg.at("connect_timeout").fail("must be positive");
  s.request_timeout = cfg.get_duration("request_timeout", s.request_timeout);
  if (s.request_timeout < s.connect_timeout) {
    cfg.at("request_timeout").fail("must not be less than connect_timeout");
  }
  s.max_response = cfg.get_size("max_response_size", s.max_response);
  if (s.max_response < 1024 || s.max_response > 16 * 1024 * 1024) {
    cfg.at("max_response_size").fail("must be between 1KB and 16MB");
  }
  if (auto r = cfg.find("rate")) {
    rate_limit rl;
    auto per = parse_rate(r->as_string());
    if (!per) r->fail("expected a rate like 10/s, 120/m or 1000/h");
    rl.per_second = *per;
    const std::int64_t burst = cfg.get_int("rate_burst", 1);
    if (burst < 1 || burst > 10000) cfg.at("rate_burst").fail("must be between 1 and 10000");
    rl.burst = static_cast<double>(burst);
    rl.max_wait = cfg.get_duration("rate_max_wait", rl.max_wait);
    if (rl.max_wait.count() < 0) cfg.at("rate_max_wait").fail("must not be negative");
    s.rate = rl;
  } else {
    for (std::string_view k : {"rate_burst", "rate_max_wait"}) {
      if (cfg.has(k)) cfg.at(k).fail("has no effect without rate");
    }
  }
  s.retry_after_max = std::chrono::duration_cast<std::chrono::seconds>(
      cfg.get_duration("retry_after_max", s.retry_after_max));
  s.tls_verify = cfg.get_bool("tls_verify", true);
  s.allow_private = cfg.get_bool("allow_private", false);
  s.mailbox = cfg.get_string("mailbox", "");
  if (cfg.has("mailbox") && s.mailbox.empty()) cfg.at("mailbox").fail("must not be empty");
  s.store = cfg.get_string("store", "");
  if (cfg.has("store") && s.mailbox.empty()) cfg.at("store").fail("has no effect without mailbox");
  std::string ca_file = cfg.get_string("ca_file", "");
  if (!ca_file.empty() && std::filesystem::path(ca_file).is_relative()) {
    ca_file = (std::filesystem::path(config_dir) / ca_file).string();
  }
  const bool https = s.url.text().starts_with("https:");
  if (cfg.has("ca_file") && !https) cfg.at("ca_file").fail("has no effect on an http:// URL");
  // Under check-config too: a CA file serve would refuse is refused there.
  if (https && !s.disabled) {
    try {
      s.tls = make_client_tls(ca_file);
    } catch (const std::exception& e) {
      (cfg.has("ca_file") ? cfg.at("ca_file") : url).fail(e.what());
    }
  }
  return s;
}

}  // namespace sluice::webhook
