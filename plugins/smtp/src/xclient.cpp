// plugins/smtp/src/xclient.cpp — XCLIENT argument parsing (see xclient.hpp). Stateless and
// thread-safe; reports bad input through the return value, never by exception.
#include "xclient.hpp"

#include "command.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <utility>

namespace sluice::smtp {
namespace {

constexpr std::size_t max_value_length = 255;

char ascii_upper(char c) {
  return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  }
  return true;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool is_special(std::string_view v) {
  return v == xclient_unavailable || v == xclient_tempunavail;
}

bool parse_port(std::string_view s, std::uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

// "1.2.3.4" or "IPV6:2001:db8::1" (prefix in any case) → canonical text without prefix.
bool parse_address(std::string_view v, std::string& out) {
  int family = AF_INET;
  if (v.size() >= 5 && iequal(v.substr(0, 5), "IPV6:")) {
    family = AF_INET6;
    v.remove_prefix(5);
  }
  if (v.empty() || v.size() >= INET6_ADDRSTRLEN) return false;
  char in[INET6_ADDRSTRLEN] = {};
  std::memcpy(in, v.data(), v.size());
  if (std::strlen(in) != v.size()) return false;  // embedded NUL
  unsigned char bin[sizeof(in6_addr)] = {};
  if (inet_pton(family, in, bin) != 1) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, bin, buf, sizeof(buf))) return false;
  out = buf;
  return true;
}

bool valid_hostname(std::string_view v) {
  if (v.empty() || v.size() > max_value_length) return false;
  for (char c : v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_';
    if (!ok) return false;
  }
  return true;
}

// The rule of EHLO's own argument: the value reaches the Received field the same way.
bool valid_helo(std::string_view v) {
  return v.size() <= max_value_length && valid_helo_argument(v);
}

bool valid_login(std::string_view v) {
  if (v.empty() || v.size() > max_value_length) return false;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return false;
  }
  return true;
}

}  // namespace

bool decode_xtext(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+') {
      if (in.size() - i < 3) return false;  // fewer than two characters follow
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out.push_back(static_cast<char>((hi << 4) | lo));
      i += 2;
      continue;
    }
    if (c < '!' || c > '~' || c == '=') return false;
    out.push_back(c);
  }
  return true;
}

bool parse_xclient(std::string_view args, xclient_attrs& out, std::string& error) {
  xclient_attrs result;
  std::size_t pos = 0;
  std::size_t count = 0;
  std::string value;
  while (true) {
    while (pos < args.size() && (args[pos] == ' ' || args[pos] == '\t'))
      ++pos;
    if (pos == args.size()) break;
    std::size_t end = pos;
    while (end < args.size() && args[end] != ' ' && args[end] != '\t')
      ++end;
    const std::string_view item = args.substr(pos, end - pos);
    pos = end;
    ++count;

    const std::size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      error = "expected attribute=value";
      return false;
    }
    const std::string_view name = item.substr(0, eq);
    const std::string_view raw = item.substr(eq + 1);
    if (!decode_xtext(raw, value)) {
      error = "malformed xtext in a value";
      return false;
    }
    if (value.empty()) {
      error = "empty attribute value";
      return false;
    }
    const bool special = is_special(value);
    auto bad = [&](std::string_view what) {
      error = "bad ";
      error.append(what);
      error.append(" value");
      return false;
    };

    if (iequal(name, "ADDR") || iequal(name, "DESTADDR")) {
      std::string addr;
      if (special) {
        addr = value;
      } else if (!parse_address(value, addr)) {
        return bad(iequal(name, "ADDR") ? "ADDR" : "DESTADDR");
      }
      if (iequal(name, "ADDR")) result.addr = std::move(addr);
    } else if (iequal(name, "PORT") || iequal(name, "DESTPORT")) {
      std::uint16_t port = 0;
      if (!special && !parse_port(value, port)) {
        return bad(iequal(name, "PORT") ? "PORT" : "DESTPORT");
      }
      if (iequal(name, "PORT")) result.port = port;
    } else if (iequal(name, "NAME")) {
      if (!special && !valid_hostname(value)) return bad("NAME");
      result.name = value;
    } else if (iequal(name, "HELO")) {
      if (!special && !valid_helo(value)) return bad("HELO");
      result.helo = value;
    } else if (iequal(name, "PROTO")) {
      if (special) {
        result.proto = value;
      } else if (iequal(value, "SMTP")) {
        result.proto = "SMTP";
      } else if (iequal(value, "ESMTP")) {
        result.proto = "ESMTP";
      } else {
        return bad("PROTO");
      }
    } else if (iequal(name, "LOGIN")) {
      if (!special && !valid_login(value)) return bad("LOGIN");
      result.login = value;
    } else {
      error = "unknown attribute ";
      // Echo the (bounded, printable) name only; it came from the client.
      for (char c : name.substr(0, 32)) {
        error.push_back((c > ' ' && c <= '~') ? c : '?');
      }
      return false;
    }
  }
  if (count == 0) {
    error = "expected at least one attribute=value";
    return false;
  }
  out = std::move(result);
  return true;
}

}  // namespace sluice::smtp
