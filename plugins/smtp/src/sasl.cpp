// plugins/smtp/src/sasl.cpp — see sasl.hpp; the work is done by the SDK (sluice/sasl.hpp).
#include "sasl.hpp"

#include <cstddef>
#include <limits>
#include <utility>

namespace sluice::smtp {

std::optional<plain_credentials> parse_plain(std::string_view decoded) {
  // As Mailpit's PLAIN split (and this plugin's LOGIN): an empty password and fields of any
  // length pass to the credential check. With auth.mode accept-any they get in; an htpasswd
  // file never matches an empty password. The AUTH line limit bounds the message.
  static constexpr sasl::plain_rules rules{.max_field = std::numeric_limits<std::size_t>::max(),
                                           .allow_empty_password = true};
  plain_credentials c;
  if (sasl::parse_plain(decoded, c, rules) != sasl::plain_status::ok) return std::nullopt;
  return c;
}

std::string cram_md5_challenge(std::string_view hostname) {
  return sasl::cram_md5_challenge(hostname);
}

bool parse_cram_md5(std::string_view decoded, std::string& user, std::string& digest_hex) {
  sasl::cram_md5_response r;
  if (sasl::parse_cram_md5(decoded, r) != sasl::cram_md5_status::ok) return false;
  user = std::move(r.user);
  digest_hex = std::move(r.digest_hex);
  return true;
}

std::string hmac_md5_hex(std::string_view secret, std::string_view challenge) {
  return sasl::cram_md5_digest(secret, challenge);
}

}  // namespace sluice::smtp
