// plugins/http/src/settings.cpp — see settings.hpp.
#include "settings.hpp"

#include <algorithm>
#include <charconv>

#include <boost/asio/ip/address.hpp>

#include "sluice/text.hpp"

namespace sluice::http {
namespace {

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// One --api-cors item as Mailpit reads it: an optional scheme, then host[:port]; the path
// is ignored. Returns "host[:port]" in lower case, or empty when it is not a host.
std::string cors_host(std::string_view item) {
  if (item.starts_with("http://"))
    item.remove_prefix(7);
  else if (item.starts_with("https://"))
    item.remove_prefix(8);
  item = item.substr(0, item.find_first_of("/?#"));
  if (item.empty() || item.find('*') != std::string_view::npos) return {};
  if (auto at = item.find('@'); at != std::string_view::npos) return {};  // no userinfo
  for (char c : item) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_';
    if (!ok) return {};
  }
  if (item.front() == ':') return {};
  return lower(std::string(item));
}

}  // namespace

bool valid_webroot(std::string_view w) {
  return std::all_of(w.begin(), w.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
           c == '_' || c == '.' || c == '@' || c == '-';
  });
}

std::string normalise_webroot(std::string_view w) {
  std::string s(w);
  if (s.empty() || s.front() != '/') s.insert(s.begin(), '/');
  if (s.back() != '/') s.push_back('/');
  // Collapse "//" so that the prefix itself is a clean path.
  std::string out;
  for (char c : s) {
    if (c == '/' && !out.empty() && out.back() == '/') continue;
    out.push_back(c);
  }
  return out;
}

settings load_settings(const config_node& cfg, const std::filesystem::path& config_dir) {
  settings s;
  auto resolve = [&](const std::string& p) { return resolve_config_path(config_dir, p); };
  s.listen = parse_listen_list(cfg, config_dir, "127.0.0.1:8025");
  if (auto tls = cfg.find("tls")) {
    std::string cert = tls->get_string("cert", "");
    std::string key = tls->get_string("key", "");
    if (cert.empty() != key.empty()) tls->fail("tls needs both cert and key");
    if (!cert.empty()) {
      s.tls_cert = resolve(cert);
      s.tls_key = resolve(key);
    }
  }
  {
    std::string w = cfg.get_string("webroot", "/");
    if (!valid_webroot(w)) {
      cfg.at("webroot").fail("may contain only A-Z a-z 0-9 / _ . @ - (got \"" + w + "\")");
    }
    if (w.find("..") != std::string::npos) cfg.at("webroot").fail("may not contain \"..\"");
    s.webroot = normalise_webroot(w);
  }
  if (auto f = cfg.get_string("auth_file", ""); !f.empty()) s.auth_file = resolve(f);
  s.auth_pairs = cfg.get_string("auth", "");
  if (auto f = cfg.get_string("send_auth_file", ""); !f.empty()) s.send_auth_file = resolve(f);
  s.send_auth_pairs = cfg.get_string("send_auth", "");
  s.send_auth_accept_any = cfg.get_bool("send_auth_accept_any", false);
  if (s.send_auth_accept_any && (!s.send_auth_file.empty() || !s.send_auth_pairs.empty())) {
    cfg.at("send_auth_accept_any")
        .fail("send_auth_accept_any and send_auth_file/send_auth exclude each other");
  }
  s.auth_cache_ttl = cfg.get_duration("auth_cache_ttl", s.auth_cache_ttl);
  if (auto node = cfg.find("api_cors")) {
    s.cors_configured = true;
    for (const auto& entry : node->as_string_list()) {
      // Mailpit: items separated by commas or spaces; "*" allows every origin.
      std::string item;
      auto flush = [&] {
        if (item.empty()) return;
        if (item == "*") {
          s.api_cors = {"*"};
        } else if (s.api_cors != std::vector<std::string>{"*"}) {
          std::string h = cors_host(item);
          if (h.empty()) node->fail("not an origin host (host[:port] or *): \"" + item + "\"");
          s.api_cors.push_back(std::move(h));
        }
        item.clear();
      };
      for (char c : entry) {
        if (c == ',' || c == ' ' || c == '\t') {
          flush();
        } else {
          item.push_back(c);
        }
      }
      flush();
    }
    std::sort(s.api_cors.begin(), s.api_cors.end());
    s.api_cors.erase(std::unique(s.api_cors.begin(), s.api_cors.end()), s.api_cors.end());
    if (s.api_cors.empty()) s.cors_configured = false;
  }
  if (auto d = cfg.get_string("ui_dir", ""); !d.empty()) s.ui_dir = resolve(d);
  if (auto d = cfg.get_string("html_check_data", ""); !d.empty()) s.html_check_data = resolve(d);
  s.default_mailbox = cfg.get_string("default_mailbox", "default");
  if (s.default_mailbox.empty()) cfg.at("default_mailbox").fail("must not be empty");
  s.store = cfg.get_string("store", "");
  s.label = cfg.get_string("label", "");
  s.release_pipeline = cfg.get_string("release_pipeline", "");
  s.release_sender = cfg.get_string("release_sender", "");
  s.release_preserve_message_ids = cfg.get_bool("release_preserve_message_ids", false);
  if (s.release_sender == "<>" || s.release_sender.find_first_of("<> \r\n") != std::string::npos ||
      (!s.release_sender.empty() && s.release_sender.find('@') == std::string::npos)) {
    cfg.at("release_sender").fail("expected an address like bounces@example.com");
  }
  s.max_send_bytes = cfg.get_size("max_send_size", s.max_send_bytes);
  if (s.max_send_bytes == 0) cfg.at("max_send_size").fail("must be positive");
  s.disable_compression = cfg.get_bool("disable_compression", false);
  s.block_remote_css_and_fonts = cfg.get_bool("block_remote_css_and_fonts", false);
  s.compress_min_bytes = cfg.get_size("compress_min_size", s.compress_min_bytes);
  if (auto l = cfg.find("link_check")) {
    auto& lc = s.link_check;
    lc.allow_private = l->get_bool("allow_private", lc.allow_private);
    lc.tls_verify = l->get_bool("tls_verify", lc.tls_verify);
    lc.cache = l->get_bool("cache", lc.cache);
    lc.timeout = l->get_duration("timeout", lc.timeout);
    if (lc.timeout.count() <= 0) l->at("timeout").fail("must be positive");
    lc.total_timeout = l->get_duration("total_timeout", lc.total_timeout);
    if (lc.total_timeout.count() <= 0) l->at("total_timeout").fail("must be positive");
    const auto max_links = l->get_int("max_links", static_cast<std::int64_t>(lc.max_links));
    if (max_links <= 0 || max_links > 1000) l->at("max_links").fail("must be 1 to 1000");
    lc.max_links = static_cast<std::size_t>(max_links);
  }
  if (auto l = cfg.find("limits")) {
    auto& lim = s.limits;
    auto positive_size = [&](std::string_view key, std::size_t fallback) -> std::size_t {
      auto v = l->get_size(key, fallback);
      if (v == 0) l->at(key).fail("must be positive");
      return static_cast<std::size_t>(v);
    };
    auto positive_int = [&](std::string_view key, std::size_t fallback) -> std::size_t {
      auto v = l->get_int(key, static_cast<std::int64_t>(fallback));
      if (v <= 0) l->at(key).fail("must be a positive number");
      return static_cast<std::size_t>(v);
    };
    auto positive_time = [&](std::string_view key, std::chrono::milliseconds fallback) {
      auto v = l->get_duration(key, fallback);
      if (v.count() <= 0) l->at(key).fail("must be positive");
      return v;
    };
    lim.max_header_bytes = positive_size("max_header_size", lim.max_header_bytes);
    if (lim.max_header_bytes < 1024) l->at("max_header_size").fail("must be at least 1KB");
    lim.max_body_bytes = positive_size("max_body_size", lim.max_body_bytes);
    lim.max_connections = positive_int("max_connections", lim.max_connections);
    lim.idle_timeout = positive_time("idle_timeout", lim.idle_timeout);
    lim.read_timeout = positive_time("read_timeout", lim.read_timeout);
    lim.write_timeout = positive_time("write_timeout", lim.write_timeout);
    lim.max_ws_queue = positive_int("websocket_queue", lim.max_ws_queue);
    lim.max_ws_clients = positive_int("max_websockets", lim.max_ws_clients);
    lim.ws_ping_interval = positive_time("websocket_ping_interval", lim.ws_ping_interval);
    lim.ws_pong_timeout = positive_time("websocket_pong_timeout", lim.ws_pong_timeout);
    if (lim.ws_ping_interval >= lim.ws_pong_timeout) {
      l->at(l->find("websocket_pong_timeout") ? "websocket_pong_timeout"
                                              : "websocket_ping_interval")
          .fail(
              "websocket_ping_interval must be shorter than websocket_pong_timeout (a peer "
              "needs time to answer the ping)");
    }
  }
  return s;
}

}  // namespace sluice::http
