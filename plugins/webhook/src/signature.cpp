// signature.cpp — see signature.hpp.
#include "signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <charconv>
#include <cstdlib>
#include <vector>

#include "sluice/text.hpp"

namespace sluice::webhook {

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &len);
  return to_hex(mac, len);
}

std::string sign(std::string_view secret, std::int64_t unix_seconds, std::string_view body) {
  const std::string t = std::to_string(unix_seconds);
  std::string payload;
  payload.reserve(t.size() + 1 + body.size());
  payload.append(t).append(".").append(body);
  return "t=" + t + ",v1=" + hmac_sha256_hex(secret, payload);
}

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

verify_result verify(std::string_view secret, std::string_view header, std::string_view body,
                     std::int64_t now, std::int64_t tolerance) {
  std::string_view t;
  std::vector<std::string_view> v1;
  while (!header.empty()) {
    auto comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    if (item.starts_with("t=")) {
      t = item.substr(2);
    } else if (item.starts_with("v1=")) {
      v1.push_back(item.substr(3));
    }
  }
  std::int64_t ts = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), ts);
  if (t.empty() || ec != std::errc{} || end != t.data() + t.size() || v1.empty()) {
    return verify_result::malformed;
  }
  std::string payload;
  payload.reserve(t.size() + 1 + body.size());
  payload.append(t).append(".").append(body);
  const std::string expected = hmac_sha256_hex(secret, payload);
  bool match = false;
  // Every entry is compared (no early exit), so timing does not tell which one matched.
  for (auto candidate : v1)
    match = constant_time_equal(expected, candidate) || match;
  if (!match) return verify_result::mismatch;
  if (std::llabs(now - ts) > tolerance) return verify_result::stale;
  return verify_result::ok;
}

}  // namespace sluice::webhook
