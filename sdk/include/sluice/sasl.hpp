// sluice/sasl.hpp — the server side of two SASL (RFC 4422) mechanisms, for AUTH in SMTP
// (RFC 4954) and POP3 (RFC 5034): the PLAIN message (RFC 4616) and CRAM-MD5 (RFC 2195).
//
// These work on decoded messages: base64 and the protocol's "*" cancel and "=" empty
// response stay with the caller (sluice/base64.hpp). Looking up the user and checking the
// password or the secret stays with the caller too (sluice/htpasswd.hpp).
//
// Pure functions, thread-safe, no exceptions: a status enum says what was wrong with the
// message. Passwords and secrets pass through here but are never logged or kept, and no
// status text repeats any part of the message.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::sasl {

// ---- PLAIN (RFC 4616) ----

// The longest authzid, authcid or passwd RFC 4616 §2 allows, in octets.
inline constexpr std::size_t plain_max_field = 255;

struct plain_credentials {
  std::string authzid;  // empty when the client sent none (then it acts as the authcid)
  std::string authcid;
  std::string password;
};

// What parse_plain found. Anything but ok means "refuse the exchange": the client gets the
// protocol's authentication-failed reply (RFC 4954 535, RFC 5034 -ERR), as for a wrong
// password, and `out` is left unspecified.
enum class plain_status {
  ok,              // `out` holds the three fields
  missing_nul,     // fewer than the two NULs of "[authzid] NUL authcid NUL passwd"
  extra_nul,       // a third NUL (no field may contain one)
  empty_authcid,   // authcid is 1*SAFE
  empty_password,  // passwd is 1*SAFE
  too_long,        // a field longer than plain_rules::max_field octets
};

// What parse_plain insists on beyond the two NULs and a non-empty authcid. The defaults are
// RFC 4616 §2's. A server that accepts any credentials the way Mailpit does
// (`--smtp-auth-accept-any`) loosens both: clients configured with an empty password, or
// with a long API token as the password, then still get in; the protocol's own line limit
// bounds the fields.
struct plain_rules {
  std::size_t max_field = plain_max_field;  // longest authzid, authcid or passwd, in octets
  bool allow_empty_password = false;        // RFC 4616: passwd is 1*SAFE
};

// Splits a decoded PLAIN message "[authzid] NUL authcid NUL passwd" (RFC 4616 §2): exactly
// two NULs, a non-empty authcid, and (by default) a non-empty passwd and at most 255 octets
// per field. The fields are taken as octets; UTF-8 validity is not checked (the password
// check decides).
plain_status parse_plain(std::string_view message, plain_credentials& out,
                         const plain_rules& rules = {});

// A short fixed English phrase for logs ("ok", "missing NUL separator", …); it never
// contains any part of the message.
std::string_view describe(plain_status s) noexcept;

// ---- CRAM-MD5 (RFC 2195) ----

// A fresh challenge "<random.unixtime@hostname>" (RFC 2195 §2, msg-id form), not base64
// encoded: the random part is 64 bits from OpenSSL's RAND_bytes in decimal (the steady
// clock if RAND_bytes fails), the time is seconds since the epoch. `hostname` is copied as
// it is.
std::string cram_md5_challenge(std::string_view hostname);

struct cram_md5_response {
  std::string user;
  std::string digest_hex;  // 32 lower-case hex digits
};

// What parse_cram_md5 found; anything but ok means "refuse the exchange" as for PLAIN.
enum class cram_md5_status {
  ok,            // `out` holds the user and the digest
  missing_user,  // no space, or nothing before the last space
  bad_digest,    // what follows the last space is not 32 hex digits
};

// Splits a decoded CRAM-MD5 response "user SP digest" at its last space, so a user name may
// itself contain spaces; the digest is 32 hex digits in either case and comes back in lower
// case.
cram_md5_status parse_cram_md5(std::string_view message, cram_md5_response& out);

// A short fixed English phrase for logs; never any part of the message.
std::string_view describe(cram_md5_status s) noexcept;

// Lower-case hex HMAC-MD5 (RFC 2104) keyed with `secret` over `challenge`: what a client
// sends as the digest (OpenSSL's HMAC). Empty only if OpenSSL fails.
std::string cram_md5_digest(std::string_view secret, std::string_view challenge);

// True when `digest_hex` (as parse_cram_md5 returns it) is the digest of `challenge` under
// `secret`. The comparison is constant_time_equal (sluice/htpasswd.hpp), so it takes a time
// that does not depend on how many digits match.
bool cram_md5_verify(std::string_view secret, std::string_view challenge,
                     std::string_view digest_hex);

}  // namespace sluice::sasl
