// signature.hpp — the webhook request signature: HMAC-SHA256 over "<timestamp>.<body>".
//
// The header value is "t=<unix seconds>,v1=<64 lower-case hex digits>", as Stripe's
// Stripe-Signature: the receiver recomputes HMAC-SHA256(secret, t + "." + raw body),
// compares it in constant time with v1, and rejects a t too far from its clock (replay).
// Several v1= entries may appear (secret rotation); any match verifies.
//
// Pure functions over OpenSSL; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::webhook {

// Lower-case hex of HMAC-SHA256(key, data).
std::string hmac_sha256_hex(std::string_view key, std::string_view data);

// "t=<unix_seconds>,v1=<hex>"
std::string sign(std::string_view secret, std::int64_t unix_seconds, std::string_view body);

enum class verify_result {
  ok,         // a v1 entry matches and t is within tolerance
  malformed,  // the header has no t= or no v1= entry, or t is not a number
  mismatch,   // no v1 entry matches the body (wrong secret or altered body)
  stale,      // the signature matches but t is further than tolerance from now
};

// Verifies `header` (the signature header's value) over `body` with `secret`. Every
// comparison of digests is constant-time (CRYPTO_memcmp).
verify_result verify(std::string_view secret, std::string_view header, std::string_view body,
                     std::int64_t now_unix_seconds, std::int64_t tolerance_seconds = 300);

// Constant-time equality of two byte strings (lengths are not secret).
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

}  // namespace sluice::webhook
