// plugins/http/src/host_header.cpp — see host_header.hpp.
#include "host_header.hpp"

#include <arpa/inet.h>

#include <cctype>

namespace sluice::http {
namespace {

bool is_unreserved(unsigned char c) {
  return std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}
bool is_sub_delim(unsigned char c) {
  switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
      return true;
    default:
      return false;
  }
}

bool valid_reg_name(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '%') {
      if (i + 2 >= s.size()) return false;
      if (!std::isxdigit(static_cast<unsigned char>(s[i + 1])) ||
          !std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
        return false;
      }
      i += 2;
    } else if (!is_unreserved(c) && !is_sub_delim(c)) {
      return false;
    }
  }
  return true;
}

bool valid_ip_literal(std::string_view inside) {
  if (inside.empty()) return false;
  if (inside[0] == 'v' || inside[0] == 'V') {
    // IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )
    std::size_t i = 1;
    while (i < inside.size() && std::isxdigit(static_cast<unsigned char>(inside[i])))
      ++i;
    if (i == 1 || i >= inside.size() || inside[i] != '.') return false;
    ++i;
    if (i >= inside.size()) return false;
    for (; i < inside.size(); ++i) {
      auto c = static_cast<unsigned char>(inside[i]);
      if (!is_unreserved(c) && !is_sub_delim(c) && c != ':') return false;
    }
    return true;
  }
  if (inside.size() > 45) return false;
  std::string s(inside);
  unsigned char buf[16];
  return inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool valid_port(std::string_view p) {
  if (p.size() > 5) return false;
  unsigned v = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  return v <= 65535;
}

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool valid_host_value(std::string_view v) {
  if (v.empty()) return true;
  std::string_view host = v;
  if (v.front() == '[') {
    auto close = v.find(']');
    if (close == std::string_view::npos) return false;
    if (!valid_ip_literal(v.substr(1, close - 1))) return false;
    std::string_view rest = v.substr(close + 1);
    if (rest.empty()) return true;
    return rest.front() == ':' && valid_port(rest.substr(1));
  }
  if (auto colon = v.rfind(':'); colon != std::string_view::npos) {
    host = v.substr(0, colon);
    if (!valid_port(v.substr(colon + 1))) return false;
  }
  // An IPv4 address is a reg-name syntactically; reg-name covers it.
  return valid_reg_name(host);
}

authority_result check_authority(unsigned version, const std::vector<std::string_view>& hosts,
                                 std::string_view target) {
  authority_result r;
  if (hosts.size() > 1) {
    r.error = "more than one Host header field";
    return r;
  }
  if (hosts.empty() && version >= 11) {
    r.error = "missing Host header field (required in HTTP/1.1)";
    return r;
  }
  if (!hosts.empty()) {
    if (!valid_host_value(hosts[0])) {
      r.error = "invalid Host header field value";
      return r;
    }
    r.host = std::string(hosts[0]);
  }
  if (!target.empty() && target.front() != '/' && target != "*") {
    auto scheme_end = target.find("://");
    if (scheme_end == std::string_view::npos) {
      // authority-form (CONNECT) or garbage: the Host rules are all that apply here.
      r.ok = true;
      return r;
    }
    std::string_view scheme = target.substr(0, scheme_end);
    if (!iequals_ascii(scheme, "http") && !iequals_ascii(scheme, "https")) {
      r.error = "request target with an unsupported scheme";
      return r;
    }
    std::string_view rest = target.substr(scheme_end + 3);
    auto end = rest.find_first_of("/?#");
    std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) {
      // RFC 9110 §4.2.4: userinfo in an http(s) URI is to be treated as an error.
      r.error = "request target with userinfo";
      return r;
    }
    if (authority.empty() || authority.front() == ':' || !valid_host_value(authority)) {
      // RFC 9110 §4.2.1: an http URI with an empty host is invalid.
      r.error = "request target with an invalid or empty authority";
      return r;
    }
    r.host = std::string(authority);
    if (end == std::string_view::npos) {
      r.origin_form = "/";
    } else if (rest[end] == '?') {
      r.origin_form = "/" + std::string(rest.substr(end));
    } else if (rest[end] == '#') {
      r.origin_form = "/";
    } else {
      r.origin_form = std::string(rest.substr(end));
    }
  }
  r.ok = true;
  return r;
}

}  // namespace sluice::http
