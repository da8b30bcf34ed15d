// plugins/pop3/src/settings.hpp — the POP3 listener's configuration, read once from its
// config map (plugins/pop3/README.md lists every key and its default).
//
// load_settings runs at factory time and throws sluice::config_error naming the file,
// line, column and key; afterwards a settings object is immutable and shared by every
// session of a listener.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/listen.hpp"

namespace sluice::pop3 {

enum class tls_mode : std::uint8_t {
  off,       // no TLS
  starttls,  // STLS offered in the AUTHORIZATION state (RFC 2595)
  implicit,  // TLS from the first byte (POP3S, port 995 style)
};

struct settings {
  std::vector<listen_address> listen;
  std::string hostname;
  // Shown in the greeting as "Sluice (label) POP3 server ready" (Mailpit's --label).
  std::string label;

  // Which mailbox service (store instance) to read; empty = "default", else the only one.
  std::string service;
  // The mailbox of a user: `mailboxes[user]` if listed, else `mailbox` with "{user}"
  // replaced by the user name.
  std::string mailbox = "default";
  std::map<std::string, std::string, std::less<>> mailboxes;

  // Users: an htpasswd file and/or Mailpit-style "user:pass ..." pairs.
  std::filesystem::path htpasswd;
  std::string users_pairs;
  bool apop = true;             // offer APOP when some user has a plain-text secret
  bool allow_insecure = false;  // USER/PASS and AUTH PLAIN without TLS

  tls_mode tls = tls_mode::off;
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;

  std::uint64_t max_messages = 0;      // 0 = every message; else the newest N
  std::size_t max_line_length = 1024;  // command lines, CRLF included
  std::size_t max_auth_line = 8192;    // SASL responses, CRLF included
  unsigned max_auth_failures = 3;      // then the connection is closed
  unsigned max_errors = 20;            // bad commands; then the connection is closed
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(10)};
  std::chrono::milliseconds session_timeout{std::chrono::hours(2)};
  std::size_t max_connections = 100;
  bool transcript = false;  // log every line (passwords and AUTH responses redacted)
};

inline constexpr std::size_t max_label_length = 128;
// 1..max_label_length bytes of printable ASCII except < and >: safe inside the greeting line,
// and never mistaken for the APOP timestamp.
bool valid_label(std::string_view label);

settings load_settings(const config_node& cfg, const std::filesystem::path& config_dir);

// The store's rule for mailbox names: 1..200 bytes, no control characters.
bool valid_mailbox_name(std::string_view name);

}  // namespace sluice::pop3
