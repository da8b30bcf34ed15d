// plugins/smtp/src/settings.hpp — the SMTP listener's configuration, read once from its
// config map (see plugins/smtp/README.md for every key and its default).
//
// load_settings runs at startup (factory time) and throws sluice::config_error naming the
// file, line, column and key; afterwards a settings object is immutable and shared by all
// sessions of a listener.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "cidr.hpp"
#include "sluice/config.hpp"
#include "sluice/listen.hpp"

namespace sluice::smtp {

enum class tls_mode : std::uint8_t {
  off,                // no TLS at all
  starttls,           // STARTTLS offered, plaintext allowed
  starttls_required,  // only EHLO/HELO/NOOP/QUIT/RSET/STARTTLS before TLS: 530 5.7.0 otherwise
  implicit,           // TLS from the first byte (SMTPS, port 465 style)
};

enum class auth_mode : std::uint8_t {
  off,         // AUTH not offered
  accept_any,  // AUTH offered, any credentials accepted, not required (Mailpit accept-any)
  optional,    // checked against htpasswd, not required
  required,    // checked against htpasswd; MAIL without it: 530 5.7.0
};

struct settings {
  std::vector<listen_address> listen;
  std::string hostname;
  // Shown in the 220 greeting as "Sluice (label)" (Mailpit's --label); empty: none.
  std::string label;
  bool lmtp = false;
  std::uint64_t max_message_size = 50ull * 1024 * 1024;
  std::size_t max_recipients = 100;
  std::size_t max_line_length = 1000;            // command lines, CRLF included
  std::size_t max_data_line_length = 64 * 1024;  // DATA lines, CRLF included
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
  std::chrono::milliseconds session_timeout{std::chrono::minutes(30)};
  std::size_t max_connections = 1000;
  unsigned max_errors = 20;
  bool transcript = false;
  // The chaos service to ask at MAIL/RCPT/AUTH: empty = the only one, if exactly one exists.
  std::string chaos;

  tls_mode tls = tls_mode::off;
  std::filesystem::path tls_cert;
  std::filesystem::path tls_key;

  auth_mode auth = auth_mode::off;
  std::filesystem::path htpasswd;
  std::string users_pairs;  // Mailpit-style "user:pass ..." (auth.users), besides the file
  bool allow_insecure = false;
  bool mech_plain = true;
  bool mech_login = true;
  bool mech_cram_md5 = true;

  // RCPT addresses must match one of these (Mailpit's --smtp-allowed-recipients); empty: any.
  std::vector<std::regex> allowed_recipients;
  // Mailpit's --smtp-ignore-rejected-recipients: a rejected RCPT gets 250 and is dropped; a
  // message left without recipients gets 250 after DATA and is discarded.
  bool ignore_rejected_recipients = false;
  // Mailpit's --smtp-strict-rfc-headers: refuse (550 5.6.0) a message whose header section
  // holds a CR not followed by LF, such as <CR><CR><LF> (RFC 5322 §2.2).
  bool reject_bare_cr_in_headers = false;

  network_list xclient_trusted;
  bool proxy_protocol = false;
  network_list proxy_trusted;
  std::chrono::milliseconds proxy_timeout{std::chrono::seconds(10)};
};

inline constexpr std::size_t max_label_length = 128;
// 1..max_label_length bytes of printable ASCII: safe inside a reply line.
bool valid_label(std::string_view label);

settings load_settings(const config_node& cfg, const std::filesystem::path& config_dir);

}  // namespace sluice::smtp
