// plugins/http/src/compress.hpp — gzip content coding (RFC 9110 §8.4.1.3, RFC 1952) with
// zlib, and the Accept-Encoding negotiation (RFC 9110 §12.5.3).
//
// Pure functions; thread-safe. gzip() returns nothing when zlib fails (out of memory),
// and the caller then sends the body uncompressed.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace sluice::http {

// True when the Accept-Encoding value admits gzip: "gzip" or "x-gzip" or "*" with a
// non-zero q (an explicit "gzip;q=0" refuses it even if "*" is listed).
bool accepts_gzip(std::string_view accept_encoding);

// Media types worth compressing: text/*, JSON, JavaScript, XML, SVG, WebAssembly, …
// (images, archives and fonts other than SVG/TTF are already compressed).
bool compressible_type(std::string_view content_type);

std::optional<std::string> gzip_compress(std::string_view data, int level = 6);

}  // namespace sluice::http
