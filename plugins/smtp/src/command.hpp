// plugins/smtp/src/command.hpp — parsing of SMTP/LMTP command lines (RFC 5321 §4.1, with the
// MAIL/RCPT parameters of RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 6531 SMTPUTF8 and the BDAT
// arguments of RFC 3030).
//
// Pure functions over string_views into the caller's buffer: they never allocate, never
// throw and keep no state, so they are safe from any thread and are libFuzzer targets
// (tests/fuzz). The views they return point into the input and live as long as it does.
// Malformed input is reported through the return value, never by exception.
#pragma once

#include "sluice/text.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sluice::smtp {

enum class verb : std::uint8_t {
  unknown,  // not a command we know: 500 5.5.1
  helo,
  ehlo,
  lhlo,  // LMTP's EHLO (RFC 2033)
  mail,
  rcpt,
  data,
  bdat,
  rset,
  noop,
  quit,
  vrfy,
  expn,
  help,
  starttls,
  auth,
  xclient,
};

struct command {
  smtp::verb verb = verb::unknown;
  std::string_view name;  // the verb as sent (any case)
  std::string_view args;  // what follows the verb and its spaces, trailing blanks trimmed
};

// Parses one command line. `line` excludes the line terminator (CRLF or a lone LF).
command parse_command(std::string_view line) noexcept;

// One ESMTP parameter of MAIL or RCPT: "SIZE=1000" → {"SIZE", "1000"}; "SMTPUTF8" → value empty.
struct esmtp_param {
  std::string_view keyword;
  std::string_view value;
  bool has_value = false;
};

inline constexpr std::size_t max_esmtp_params = 16;

struct path_args {
  std::string_view address;  // the mailbox without angle brackets or source route; empty for <>
  bool null_path = false;    // "<>"
  bool has_8bit = false;     // the address has bytes >= 0x80 (needs SMTPUTF8)
  std::array<esmtp_param, max_esmtp_params> params{};
  std::size_t param_count = 0;
};

enum class path_status : std::uint8_t {
  ok,
  missing_keyword,  // "MAIL" without "FROM:": 501 5.5.4 Syntax
  bad_address,      // malformed mailbox: 501 5.1.7 (MAIL) / 501 5.1.3 (RCPT)
  bad_params,       // malformed parameter list: 501 5.5.4
  too_many_params,  // more than max_esmtp_params: 501 5.5.4
};

// Parses what follows MAIL or RCPT: `keyword` is "FROM" or "TO". Accepts the lenient forms
// real clients send: a space after the colon, and a mailbox without angle brackets when it
// has no parameters. A null path is accepted here; callers refuse it for RCPT.
path_status parse_path(std::string_view args, std::string_view keyword, path_args& out) noexcept;

// Checks a mailbox: local-part "@" domain, or "postmaster" when allow_postmaster.
bool valid_mailbox(std::string_view address, bool allow_postmaster) noexcept;

struct bdat_args {
  std::uint64_t size = 0;
  bool last = false;
};

// "1234" or "1234 LAST" (any case). False on anything else, including sizes past 2^63.
bool parse_bdat(std::string_view args, bdat_args& out) noexcept;

// The argument of EHLO/HELO/LHLO (RFC 5321 §4.1.1.1): a domain (labels of letters, digits,
// '-', '_' or UTF-8, at most 255 octets) or an IPv4 or IPv6 address literal ([192.0.2.1],
// [IPv6:…]). No blanks, control characters, ';' or '(' that would reach the reply and the
// Received field.
bool valid_helo_argument(std::string_view arg) noexcept;

// True when s is well-formed UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF).
bool valid_utf8(std::string_view s) noexcept;

using sluice::iequals;  // ASCII case-insensitive (sluice/text.hpp)
bool istarts_with(std::string_view s, std::string_view prefix) noexcept;

}  // namespace sluice::smtp
