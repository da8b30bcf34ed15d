// sluice/base64.hpp — base64 (RFC 4648 §4 alphabet) for protocol code: SASL responses
// (RFC 4954, RFC 5034) and HTTP Basic credentials (RFC 7617).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Padded base64 of `in` (RFC 4648 §4), no line breaks.
std::string base64_encode(std::string_view in);

// Whether base64_decode accepts input without its trailing '=' padding.
enum class base64_padding {
  required,  // length must be a multiple of 4 (SASL and HTTP Basic send padded base64)
  optional,  // "Zg" is accepted like "Zg=="; a length of 4n+1 is still rejected
};

// Strict decoding: nullopt on any byte outside the §4 alphabet (whitespace included), on '='
// anywhere but the last one or two positions, on more than two '=', on a padding length that
// does not fit the data, and (with base64_padding::required) on unpadded input. The empty
// string decodes to the empty string. Callers that must tolerate whitespace (e.g. DKIM b=
// tags, RFC 6376 §3.5) strip it before calling.
std::optional<std::string> base64_decode(std::string_view in,
                                         base64_padding padding = base64_padding::required);

}  // namespace sluice
