// plugins/smtp/src/headers.hpp — the header work the SMTP listener does per message:
// finding fields in the received header block, extracting addresses from To/Cc/Bcc, and
// formatting the trace fields (RFC 5321 §4.4 Received, RFC 5322 dates).
//
// Pure functions over the header block (message_body::header_block()); never the body.
// Thread-safe, no exceptions except std::bad_alloc. Tolerant of malformed headers: what
// cannot be parsed is skipped, never an error.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::smtp {

// The unfolded values of every field named `name` (case-insensitive), in order.
std::vector<std::string> header_values(std::string_view block, std::string_view name);
// Whether `block` holds a CR that is not followed by LF (RFC 5322 §2.2 allows CR only in CRLF).
bool has_bare_cr(std::string_view block) noexcept;

// The addr-specs of an address-list value ("A <a@x>, b@y, group: c@z;"), as written.
std::vector<std::string> header_address_list(std::string_view value);

// Lower-cases ASCII letters (address comparison: the domain is case-insensitive, and we
// treat local parts the same way, as Mailpit does).
std::string ascii_lower(std::string_view s);

struct received_info {
  std::string helo;            // EHLO/HELO argument
  std::string client_name;     // reverse name, may be empty
  std::string client_address;  // IP literal; empty for a unix socket
  std::string hostname;        // ours
  std::string protocol;        // RFC 3848 keyword
  std::string tls_version;     // empty without TLS
  std::string tls_cipher;
  std::string id;             // message id
  std::string for_recipient;  // set only when there is exactly one recipient
  std::chrono::system_clock::time_point when;
};

// The value of the Received field (without "Received: "), RFC 5321 §4.4 form:
// "from helo (name [addr]) by host (Sluice) with ESMTPS (TLSv1.3 cipher) id X for <r>; date"
std::string received_value(const received_info& r);

}  // namespace sluice::smtp
