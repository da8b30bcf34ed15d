// plugins/smtp/src/sasl.hpp — the pieces of SASL (RFC 4422) that AUTH (RFC 4954) needs:
// the PLAIN (RFC 4616) message split, and CRAM-MD5 (RFC 2195) challenge/response.
//
// Pure functions, thread-safe, no exceptions. Secrets pass through these functions but are
// never logged or kept by them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "sluice/base64.hpp"  // base64_encode, base64_decode (found from namespace sluice::smtp)

namespace sluice::smtp {

struct plain_credentials {
  std::string authzid;
  std::string authcid;
  std::string password;
};
// Splits a decoded PLAIN message "authzid NUL authcid NUL password".
std::optional<plain_credentials> parse_plain(std::string_view decoded);

// A fresh CRAM-MD5 challenge "<random.time@hostname>" (not base64 encoded).
std::string cram_md5_challenge(std::string_view hostname);
// Splits a decoded CRAM-MD5 response "user SP 32-hex-digest".
bool parse_cram_md5(std::string_view decoded, std::string& user, std::string& digest_hex);
// Lower-case hex HMAC-MD5(key=secret, challenge).
std::string hmac_md5_hex(std::string_view secret, std::string_view challenge);

}  // namespace sluice::smtp
