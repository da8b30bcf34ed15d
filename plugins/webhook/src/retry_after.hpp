// retry_after.hpp — the Retry-After response field (RFC 9110 §10.2.3).
//
// Its value is delay-seconds or an HTTP-date (IMF-fixdate; the obsolete RFC 850 and
// asctime forms are accepted too, RFC 9110 §5.6.7). Pure functions; thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sluice::webhook {

// Seconds since the Unix epoch of an HTTP-date, or nothing when it is not one.
std::optional<std::int64_t> parse_http_date(std::string_view s);

// How long the server asks us to wait, from `now` (Unix seconds): delay-seconds as given,
// an HTTP-date minus now (0 when in the past). Nothing when the value is malformed.
// The result is clamped to [0, max].
std::optional<std::chrono::seconds> parse_retry_after(std::string_view value, std::int64_t now,
                                                      std::chrono::seconds max);

}  // namespace sluice::webhook
