// plugins/http/src/url.hpp — URL pieces the core needs (RFC 3986): percent-decoding, query
// strings (application/x-www-form-urlencoded, as Go's url.ParseQuery), path cleaning (as
// Go's ServeMux, which redirects a non-canonical path with 301), and percent-encoding of
// one path segment.
//
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace sluice::http {

// Decodes %XX escapes (and '+' as space when plus_is_space); nothing on a bad escape.
std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space);

// "a=1&b=x+y" -> {a:1, b:"x y"}; a repeated key keeps the last value; pairs with a bad
// escape are skipped (Go drops them too). At most max_params pairs are read.
std::unordered_map<std::string, std::string> parse_query(std::string_view q,
                                                         std::size_t max_params = 1000);

// Go's path.Clean with ServeMux's trailing-slash rule: collapses "//", resolves "." and
// ".." (never above the root), keeps a trailing '/'. "/a//b/../c/" -> "/a/c/".
std::string clean_path(std::string_view p);

// Percent-encodes everything but RFC 3986 unreserved characters and sub-delims safe in a
// segment.
std::string encode_segment(std::string_view s);

}  // namespace sluice::http
