// downgrade.hpp — 8-bit MIME content re-encoded to 7 bits for a server that does not offer
// 8BITMIME (RFC 6152 §3, the conversion RFC 1652 describes).
#pragma once

#include <string>
#include <string_view>

namespace sluice::relay {

struct downgraded {
  std::string bytes;     // the converted message (CRLF line ends); empty unless `changed`
  bool changed = false;  // false: no body part needed converting, send the original
  std::string error;     // why it could not be converted (then nothing is sent)
};

// Parses `message` (header block and body, as it leaves) with GMime and re-encodes every
// body part whose transfer encoding is 7bit, 8bit, binary or absent but whose content is
// not 7-bit: text parts to quoted-printable, others to base64. Parts already in
// quoted-printable or base64 and every header field are kept as they are (header fields
// cannot be converted: RFC 6152 leaves them to SMTPUTF8); a multipart or message/rfc822
// labelled 8bit or binary is relabelled 7bit. A message without MIME-Version gets
// "MIME-Version: 1.0", and without Content-Type "text/plain; charset=utf-8" (or
// unknown-8bit, RFC 1428, when its text is not UTF-8), when a part was re-encoded.
// Refused (error): content under multipart/signed that needs converting (the signature
// would break), more than 1000 parts or nesting deeper than 64.
downgraded downgrade_to_7bit(std::string_view message);

// True when `bytes` has a byte with the high bit set (or a NUL).
bool has_8bit_bytes(std::string_view bytes);

}  // namespace sluice::relay
