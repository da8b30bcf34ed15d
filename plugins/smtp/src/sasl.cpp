// plugins/smtp/src/sasl.cpp — see sasl.hpp. HMAC-MD5 and randomness come from OpenSSL.
#include "sasl.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdint>

namespace sluice::smtp {
std::optional<plain_credentials> parse_plain(std::string_view decoded) {
  std::size_t a = decoded.find('\0');
  if (a == std::string_view::npos) return std::nullopt;
  std::size_t b = decoded.find('\0', a + 1);
  if (b == std::string_view::npos) return std::nullopt;
  if (decoded.find('\0', b + 1) != std::string_view::npos) return std::nullopt;
  plain_credentials c;
  c.authzid = std::string(decoded.substr(0, a));
  c.authcid = std::string(decoded.substr(a + 1, b - a - 1));
  c.password = std::string(decoded.substr(b + 1));
  if (c.authcid.empty()) return std::nullopt;
  return c;
}

std::string cram_md5_challenge(std::string_view hostname) {
  std::uint64_t r = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&r), sizeof r) != 1) {
    r = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
  auto now = std::chrono::duration_cast<std::chrono::seconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  return "<" + std::to_string(r) + "." + std::to_string(now) + "@" + std::string(hostname) + ">";
}

bool parse_cram_md5(std::string_view decoded, std::string& user, std::string& digest_hex) {
  std::size_t sp = decoded.rfind(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  std::string_view d = decoded.substr(sp + 1);
  if (d.size() != 32) return false;
  for (char c : d) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) return false;
  }
  user.assign(decoded.substr(0, sp));
  digest_hex.clear();
  for (char c : d)
    digest_hex += (c >= 'A' && c <= 'F') ? char(c - 'A' + 'a') : c;
  return true;
}

std::string hmac_md5_hex(std::string_view secret, std::string_view challenge) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_md5(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(challenge.data()), challenge.size(), md, &len);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

}  // namespace sluice::smtp
