// plugins/http/src/settings.hpp — the http listener's configuration, read once at startup.
//
// load_settings() reads every key of the listener's config map through config_node (so
// unknown keys are reported by the kernel) and checks each value; a bad value throws
// config_error naming the file, line and key. The result is immutable afterwards and is
// shared read-only by all connections.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "link_check.hpp"
#include "sluice/config.hpp"
#include "sluice/listen.hpp"

namespace sluice::http {

// True for a web root Mailpit accepts: characters [A-Za-z0-9/_.@-]. normalise_webroot()
// makes it start and end with '/' ("mail" -> "/mail/", "" -> "/").
bool valid_webroot(std::string_view w);
std::string normalise_webroot(std::string_view w);

struct limits {
  std::size_t max_header_bytes = 64 * 1024;  // request line + header fields
  std::size_t max_body_bytes = 5u << 20;     // JSON and other request bodies (Mailpit: 5 MB)
  std::size_t max_connections = 1000;
  std::chrono::milliseconds idle_timeout{30000};   // keep-alive wait for the next request
  std::chrono::milliseconds read_timeout{30000};   // one request, header and body
  std::chrono::milliseconds write_timeout{30000};  // one response
  std::size_t max_ws_queue = 256;                  // WebSocket frames waiting for a slow client
  std::size_t max_ws_clients = 1000;
  // WebSocket keep-alive (Mailpit: ping every 54 s, drop a peer silent for 60 s): the server
  // pings every ws_ping_interval and drops a peer from which nothing (no pong, no frame)
  // arrived for ws_pong_timeout. ws_ping_interval < ws_pong_timeout.
  std::chrono::milliseconds ws_ping_interval{54000};
  std::chrono::milliseconds ws_pong_timeout{60000};
};

struct settings {
  std::vector<listen_address> listen;
  std::filesystem::path tls_cert;  // both empty: plain HTTP
  std::filesystem::path tls_key;
  std::string webroot = "/";  // always starts and ends with '/'
  // UI/API credentials: an htpasswd file and/or Mailpit-style "user:pass" pairs.
  std::filesystem::path auth_file;
  std::string auth_pairs;
  // Send API (POST /api/v1/send): its own credentials, or none at all.
  std::filesystem::path send_auth_file;
  std::string send_auth_pairs;
  bool send_auth_accept_any = false;
  std::chrono::milliseconds auth_cache_ttl{60000};
  // Allowed Origin hosts ("host[:port]", lower case) besides the request's own Host; "*" = any.
  std::vector<std::string> api_cors;
  bool cors_configured = false;  // api_cors was given (OPTIONS then skips auth, as Mailpit)
  std::optional<std::filesystem::path> ui_dir;  // nullopt: found next to the plugin
  // The HTML check's caniemail data; nullopt: found next to the plugin (and optional there).
  std::optional<std::filesystem::path> html_check_data;
  std::string default_mailbox = "default";
  std::string store;  // mailbox service instance name; empty: the default one
  std::string label;
  // POST /api/v1/message/{ID}/release submits into this pipeline (empty: release is off).
  std::string release_pipeline;
  std::string release_sender;  // envelope sender of released mail; empty: the original's
  bool release_preserve_message_ids = false;  // keep Message-ID and Date (Mailpit's relay key)
  std::uint64_t max_send_bytes = 50ull << 20;
  bool disable_compression = false;
  bool block_remote_css_and_fonts = false;  // the HTML view loads styles and fonts from here only
  link_check_settings link_check;           // GET /api/v1/message/{ID}/link-check
  std::size_t compress_min_bytes = 1024;
  http::limits limits;
};

settings load_settings(const config_node& cfg, const std::filesystem::path& config_dir);

}  // namespace sluice::http
