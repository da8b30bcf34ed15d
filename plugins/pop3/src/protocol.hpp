// plugins/pop3/src/protocol.hpp — the pure parts of POP3 (RFC 1939, 2449, 5034): command
// line splitting, message numbers, the SASL PLAIN message (RFC 4616), the APOP
// digest, the line-end normalisation and dot-stuffing of what RETR and TOP send, and UIDs.
//
// Pure functions, thread-safe, no exceptions (nullopt / false on bad input). Secrets pass
// through some of them but are never kept or logged here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/base64.hpp"
#include "sluice/sasl.hpp"

namespace sluice::pop3 {

// A command line split into its keyword (upper-cased ASCII) and the rest after the first
// space (unchanged: PASS keeps spaces in the password, RFC 1939 §7).
struct command_line {
  std::string keyword;
  std::string_view args;  // points into the line given to split_command
};
command_line split_command(std::string_view line);

// The arguments as space-separated words; false when there are more than `max` of them.
// Runs of spaces count as one separator.
bool split_args(std::string_view args, std::string_view* out, std::size_t max, std::size_t& count);

// A message number (RFC 1939 "msg"): 1-10 decimal digits, no sign, no leading '+'.
std::optional<std::uint64_t> parse_number(std::string_view s);

using plain_credentials = sasl::plain_credentials;
// Splits a decoded PLAIN message "[authzid] NUL authcid NUL passwd" (RFC 4616 §2, with
// sasl::parse_plain): exactly two NULs, a non-empty authcid and passwd, at most 255 bytes
// per field as RFC 4616 allows; nullopt when it is malformed.
std::optional<plain_credentials> parse_plain(std::string_view decoded);

// Lower-case hex MD5(timestamp || secret), the APOP digest (RFC 1939 §7).
std::string apop_digest(std::string_view timestamp, std::string_view secret);
// A fresh greeting timestamp in msg-id form, "<random.unixtime@hostname>".
std::string apop_timestamp(std::string_view hostname);
// True for 32 hex digits (either case).
bool is_md5_hex(std::string_view s);

// What RETR sends of a message, before dot-stuffing: every LF not preceded by CR becomes
// CRLF, and a last line without a line end gets CRLF. Other bytes are untouched.
std::uint64_t normalized_size(std::string_view raw);
// The header section, its blank line and the first `lines` body lines of the normalized
// message (TOP, RFC 1939 §7), normalized; a message without a blank line is all header.
std::string top_of(std::string_view raw, std::uint64_t lines);

// Streams `raw` as a multi-line response body: normalizes line ends like normalized_size,
// dot-stuffs lines starting with '.', and appends the terminating ".CRLF", piece by piece
// so that a large message is never copied whole.
class multiline_encoder {
 public:
  explicit multiline_encoder(std::string_view raw) : raw_(raw) {}
  // Appends up to about `budget` more bytes to out; false once everything (including the
  // terminator) has been produced.
  bool next(std::string& out, std::size_t budget);

 private:
  std::string_view raw_;
  std::size_t pos_ = 0;
  bool at_line_start_ = true;
  bool done_ = false;
};

// The UID of a message id (RFC 1939 §7: 1-70 characters 0x21-0x7E, unique and stable per
// maildrop). An id of 1-64 such characters (store ids are 22 base-62 characters) is used as
// it is; any other id is mapped to "x" + the hex SHA-256 of it: 65 characters, so it can
// never equal an id used as it is, and stable.
std::string uid_for(std::string_view id);

}  // namespace sluice::pop3
