// plugins/smtp/src/sasl.hpp — the pieces of SASL (RFC 4422) that AUTH (RFC 4954) needs,
// in the shape the session uses: the PLAIN (RFC 4616) message split and CRAM-MD5
// (RFC 2195) challenge/response. The mechanisms themselves are the SDK's (sluice/sasl.hpp);
// these only adapt their status returns to the optional/bool the session checks.
//
// Pure functions, thread-safe, no exceptions. Secrets pass through these functions but are
// never logged or kept by them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "sluice/base64.hpp"  // base64_encode, base64_decode (found from namespace sluice::smtp)
#include "sluice/sasl.hpp"

namespace sluice::smtp {

using plain_credentials = sasl::plain_credentials;
// Splits a decoded PLAIN message "[authzid] NUL authcid NUL passwd" (sasl::parse_plain:
// exactly two NULs and a non-empty authcid; like Mailpit, an empty password and fields over
// RFC 4616's 255 octets are left to the credential check); nullopt when it is malformed.
std::optional<plain_credentials> parse_plain(std::string_view decoded);

// A fresh CRAM-MD5 challenge "<random.time@hostname>" (not base64 encoded).
std::string cram_md5_challenge(std::string_view hostname);
// Splits a decoded CRAM-MD5 response "user SP 32-hex-digest"; digest_hex comes back in
// lower case. False (user and digest_hex left as they were) when it is malformed.
bool parse_cram_md5(std::string_view decoded, std::string& user, std::string& digest_hex);
// Lower-case hex HMAC-MD5(key=secret, challenge).
std::string hmac_md5_hex(std::string_view secret, std::string_view challenge);

}  // namespace sluice::smtp
