// plugins/http/src/cors.cpp — see cors.hpp.
#include "cors.hpp"

#include <algorithm>

#include "sluice/text.hpp"

namespace sluice::http {

std::string origin_host(std::string_view origin) {
  auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos || scheme_end == 0) return {};
  for (char c : origin.substr(0, scheme_end)) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.';
    if (!ok) return {};
  }
  std::string_view rest = origin.substr(scheme_end + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  for (char c : rest) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) return {};
  }
  return to_lower_ascii(rest);
}

bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed) {
  if (!allowed.empty() && allowed.front() == "*") return true;
  std::string oh = origin_host(origin);
  if (oh.empty()) return false;  // opaque ("null") or malformed origins are never same-host
  if (!host.empty() && oh == to_lower_ascii(host)) return true;
  return std::binary_search(allowed.begin(), allowed.end(), oh);
}

}  // namespace sluice::http
