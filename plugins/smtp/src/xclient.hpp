// plugins/smtp/src/xclient.hpp — parser for the arguments of Postfix's XCLIENT command
// (https://www.postfix.org/XCLIENT_README.html), with which a trusted proxy or test
// harness tells the server who the real client is.
//
// Arguments are "NAME=value" pairs separated by spaces; attribute names are
// case-insensitive; values are xtext (RFC 3461 §4: "+HH" encodes a byte). Accepted:
//   ADDR     IPv4 dotted quad, or "IPV6:" + IPv6 address; stored canonical, without "IPV6:"
//   NAME     host name (letters, digits, '-', '.', '_'), up to 255 bytes
//   PORT     0..65535
//   HELO     printable ASCII without spaces, up to 255 bytes
//   PROTO    SMTP or ESMTP (stored upper case)
//   LOGIN    SASL login name: any bytes but controls, up to 255
//   DESTADDR, DESTPORT  validated like ADDR/PORT and otherwise ignored (no field for them)
// The special values "[UNAVAILABLE]" and "[TEMPUNAVAIL]" are accepted for every attribute:
// string attributes keep that exact text (the session treats it as "unknown"), PORT
// becomes 0. A later duplicate of an attribute wins, as in Postfix.
//
// Pure function: no I/O, no state, thread-safe, a libFuzzer target (tests/fuzz/fuzz_xclient).
// On a malformed argument it returns false with `error` set to a short text fit for a
// "501 5.5.4 Bad XCLIENT syntax: <error>" reply, and leaves `out` untouched. On success `out` is
// replaced: it holds exactly the attributes given (the session applies those and keeps the others).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::smtp {

struct xclient_attrs {
  std::optional<std::string> addr, name, helo, proto, login;
  std::optional<std::uint16_t> port;
};

inline constexpr std::string_view xclient_unavailable = "[UNAVAILABLE]";
inline constexpr std::string_view xclient_tempunavail = "[TEMPUNAVAIL]";

bool parse_xclient(std::string_view args, xclient_attrs& out, std::string& error);

// Decodes RFC 3461 xtext ("+HH" for a byte, upper- or lower-case hex accepted). False when
// a '+' is not followed by two hex digits or a raw byte is outside '!'..'~' or is '='.
bool decode_xtext(std::string_view in, std::string& out);

}  // namespace sluice::smtp
