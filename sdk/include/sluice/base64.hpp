// sluice/base64.hpp — base64 (RFC 4648 §4 alphabet): strict decoding for protocol code
// (SASL responses, RFC 4954 and RFC 5034; HTTP Basic credentials, RFC 7617; DKIM tags,
// RFC 6376) and lenient decoding for MIME (RFC 2045 §6.8, RFC 2047).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Padded base64 of `in` (RFC 4648 §4), no line breaks.
std::string base64_encode(std::string_view in);

// Whether base64_decode accepts input without its trailing '=' padding.
enum class base64_padding {
  required,   // length must be a multiple of 4 (SASL and HTTP Basic send padded base64)
  optional,   // "Zg" is accepted like "Zg=="; a length of 4n+1 is still rejected
  unchecked,  // like optional, and up to two trailing '=' are dropped whether or not they
              // fit the data ("Zg=", "Zm9v=" decode): the looser form of RFC 6376 §3.5's
              // ABNF (DKIM b=, bh=, p=); a length of 4n+1 is still rejected
};

// Strict decoding: nullopt on any byte outside the §4 alphabet (whitespace included), on '='
// anywhere but the last one or two positions, on more than two '=', on a data length of
// 4n+1, on a padding length that does not fit the data (not with base64_padding::unchecked),
// and (with base64_padding::required) on unpadded input. The empty string decodes to the
// empty string. Callers that must tolerate whitespace (e.g. DKIM b=
// tags, RFC 6376 §3.5) strip it before calling.
std::optional<std::string> base64_decode(std::string_view in,
                                         base64_padding padding = base64_padding::required);

// Lenient decoding for MIME (RFC 2045 §6.8: ignore characters outside the alphabet), for
// base64 bodies and RFC 2047 "B" words. Appends what it decodes to `out` (reserving room
// first, so one call allocates at most once): bytes outside the §4 alphabet (line breaks,
// white space, junk) are skipped, the first '=' ends the data (anything after it is
// ignored), and the bits of a last incomplete group are dropped. It never fails; it returns
// how many bytes it skipped before the end, so a caller that allows none (an encoded word)
// can refuse the input.
std::size_t base64_decode_lenient(std::string_view in, std::string& out);

// True for the 64 characters of the RFC 4648 §4 alphabet ('=' is not one of them), for
// callers that check input themselves before decoding it (to report where it went wrong).
bool is_base64_char(char c) noexcept;

}  // namespace sluice
