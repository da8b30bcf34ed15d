// sasl.cpp — see sluice/sasl.hpp. HMAC-MD5 and randomness come from OpenSSL.
#include "sluice/sasl.hpp"
#include "sluice/text.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdint>

#include "sluice/htpasswd.hpp"  // constant_time_equal

namespace sluice::sasl {
namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

char lower(char c) {
  return (c >= 'A' && c <= 'F') ? static_cast<char>(c - 'A' + 'a') : c;
}

}  // namespace

plain_status parse_plain(std::string_view message, plain_credentials& out,
                         const plain_rules& rules) {
  const std::size_t a = message.find('\0');
  if (a == std::string_view::npos) return plain_status::missing_nul;
  const std::size_t b = message.find('\0', a + 1);
  if (b == std::string_view::npos) return plain_status::missing_nul;
  if (message.find('\0', b + 1) != std::string_view::npos) return plain_status::extra_nul;
  const std::string_view authzid = message.substr(0, a);
  const std::string_view authcid = message.substr(a + 1, b - a - 1);
  const std::string_view password = message.substr(b + 1);
  if (authcid.empty()) return plain_status::empty_authcid;
  if (password.empty() && !rules.allow_empty_password) return plain_status::empty_password;
  if (authzid.size() > rules.max_field || authcid.size() > rules.max_field ||
      password.size() > rules.max_field) {
    return plain_status::too_long;
  }
  out.authzid.assign(authzid);
  out.authcid.assign(authcid);
  out.password.assign(password);
  return plain_status::ok;
}

std::string_view describe(plain_status s) noexcept {
  switch (s) {
    case plain_status::ok:
      return "ok";
    case plain_status::missing_nul:
      return "missing NUL separator";
    case plain_status::extra_nul:
      return "more than two NUL separators";
    case plain_status::empty_authcid:
      return "empty authentication identity";
    case plain_status::empty_password:
      return "empty password";
    case plain_status::too_long:
      return "field longer than the limit";
  }
  return "unknown";
}

std::string cram_md5_challenge(std::string_view hostname) {
  std::uint64_t r = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r) != 1) {
    r = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return "<" + std::to_string(r) + "." + std::to_string(now) + "@" + std::string(hostname) + ">";
}

cram_md5_status parse_cram_md5(std::string_view message, cram_md5_response& out) {
  const std::size_t sp = message.rfind(' ');
  if (sp == std::string_view::npos || sp == 0) return cram_md5_status::missing_user;
  const std::string_view digest = message.substr(sp + 1);
  if (digest.size() != 32) return cram_md5_status::bad_digest;
  for (char c : digest) {
    if (!is_hex(c)) return cram_md5_status::bad_digest;
  }
  out.user.assign(message.substr(0, sp));
  out.digest_hex.clear();
  for (char c : digest)
    out.digest_hex += lower(c);
  return cram_md5_status::ok;
}

std::string_view describe(cram_md5_status s) noexcept {
  switch (s) {
    case cram_md5_status::ok:
      return "ok";
    case cram_md5_status::missing_user:
      return "missing user name";
    case cram_md5_status::bad_digest:
      return "digest is not 32 hex digits";
  }
  return "unknown";
}

std::string cram_md5_digest(std::string_view secret, std::string_view challenge) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // A null key pointer means "no key" to some OpenSSL versions even with length 0.
  const void* key = secret.empty() ? "" : secret.data();
  if (!HMAC(EVP_md5(), key, static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(challenge.data()), challenge.size(), md, &len)) {
    return {};
  }
  return to_hex(md, len);
}

bool cram_md5_verify(std::string_view secret, std::string_view challenge,
                     std::string_view digest_hex) {
  const std::string expected = cram_md5_digest(secret, challenge);
  // An OpenSSL failure gives "", which must never match (an empty digest cannot parse).
  return !expected.empty() && constant_time_equal(expected, digest_hex);
}

}  // namespace sluice::sasl
