// plugins/smtp/src/proxy_protocol.cpp — PROXY protocol v1/v2 parsing (see proxy_protocol.hpp).
// Follows HAProxy's proxy-protocol.txt; stateless and thread-safe; never throws on input
// (std::string growth may throw bad_alloc only).
#include "proxy_protocol.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

namespace sluice::smtp {
namespace {

constexpr std::array<unsigned char, 12> v2_signature = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                        0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
constexpr std::string_view v1_prefix = "PROXY ";

// True when `buf` is a prefix of `whole` (possibly all of it).
bool is_prefix_of(std::string_view buf, std::string_view whole) {
  return buf.size() <= whole.size() && whole.substr(0, buf.size()) == buf;
}

std::string_view signature_view() {
  return {reinterpret_cast<const char*>(v2_signature.data()), v2_signature.size()};
}

parse_status fail(std::string& error, std::string_view why) {
  error.assign(why);
  return parse_status::invalid;
}

// Decimal port 0..65535: 1 to 5 digits, no sign, no leading zero (except "0" itself).
bool parse_port(std::string_view s, std::uint16_t& out) {
  if (s.empty() || s.size() > 5) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  std::uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  out = static_cast<std::uint16_t>(v);
  return true;
}

// Validates a textual address of `family` and returns its canonical form.
bool canonical_address(int family, std::string_view text, std::string& out) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return false;
  char in[INET6_ADDRSTRLEN] = {};
  std::memcpy(in, text.data(), text.size());
  unsigned char bin[sizeof(in6_addr)] = {};
  if (inet_pton(family, in, bin) != 1) return false;
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, bin, buf, sizeof(buf))) return false;
  out = buf;
  return true;
}

bool binary_address(int family, const unsigned char* p, std::string& out) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (!inet_ntop(family, p, buf, sizeof(buf))) return false;
  out = buf;
  return true;
}

std::uint16_t be16(const unsigned char* p) {
  return static_cast<std::uint16_t>((static_cast<unsigned>(p[0]) << 8) | p[1]);
}

std::string unix_path(const unsigned char* p, std::size_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  if (n > 0 && c[0] == '\0') {
    // Linux abstract socket: the name follows the NUL; shown with '@' like ss(8) does.
    std::string_view rest(c + 1, n - 1);
    if (auto z = rest.find('\0'); z != std::string_view::npos) rest = rest.substr(0, z);
    return rest.empty() ? std::string() : "@" + std::string(rest);
  }
  std::string_view s(c, n);
  if (auto z = s.find('\0'); z != std::string_view::npos) s = s.substr(0, z);
  return std::string(s);
}

parse_status parse_v1(std::string_view buf, proxy_header& out, std::size_t& consumed,
                      std::string& error) {
  const std::size_t window = std::min(buf.size(), proxy_v1_max_length);
  const std::size_t lf = buf.substr(0, window).find('\n');
  if (lf == std::string_view::npos) {
    if (buf.size() >= proxy_v1_max_length)
      return fail(error, "PROXY v1 line longer than 107 bytes");
    // No CR may appear except right before the LF.
    const std::size_t cr = buf.find('\r');
    if (cr != std::string_view::npos && cr + 1 < buf.size()) {
      return fail(error, "PROXY v1 line has a CR not followed by LF");
    }
    return parse_status::need_more;
  }
  if (lf == 0 || buf[lf - 1] != '\r') return fail(error, "PROXY v1 line must end with CRLF");
  const std::string_view line = buf.substr(0, lf - 1);
  if (line.find('\r') != std::string_view::npos) {
    return fail(error, "PROXY v1 line has a CR not followed by LF");
  }
  for (char c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) {
      return fail(error, "PROXY v1 line has a non-printable byte");
    }
  }

  if (line == "PROXY UNKNOWN" || line.starts_with("PROXY UNKNOWN ")) {
    // The rest of the line (if any) carries no usable information: ignore it.
    out = proxy_header{};
    out.local = true;
    consumed = lf + 1;
    return parse_status::complete;
  }

  // Split into fields on single spaces.
  std::array<std::string_view, 7> f{};
  std::size_t n = 0;
  std::size_t pos = 0;
  while (true) {
    const std::size_t sp = line.find(' ', pos);
    const std::string_view field = line.substr(pos, sp == std::string_view::npos ? sp : sp - pos);
    if (n == f.size()) return fail(error, "PROXY v1 line has too many fields");
    f[n++] = field;
    if (sp == std::string_view::npos) break;
    pos = sp + 1;
  }
  // f[0] == "PROXY" (checked by the caller).
  if (n < 2 || (f[1] != "TCP4" && f[1] != "TCP6")) {
    return fail(error, "PROXY v1 protocol must be TCP4, TCP6 or UNKNOWN");
  }
  if (n != 6) return fail(error, "PROXY v1 line must have 6 fields");
  for (std::size_t i = 2; i < 6; ++i) {
    if (f[i].empty()) return fail(error, "PROXY v1 line has an empty field");
  }
  const int family = f[1] == "TCP4" ? AF_INET : AF_INET6;
  proxy_header h;
  if (!canonical_address(family, f[2], h.src_addr)) {
    return fail(error, "PROXY v1 source address is not a valid address of its protocol");
  }
  if (!canonical_address(family, f[3], h.dst_addr)) {
    return fail(error, "PROXY v1 destination address is not a valid address of its protocol");
  }
  if (!parse_port(f[4], h.src_port)) return fail(error, "PROXY v1 source port is invalid");
  if (!parse_port(f[5], h.dst_port)) return fail(error, "PROXY v1 destination port is invalid");
  out = std::move(h);
  consumed = lf + 1;
  return parse_status::complete;
}

parse_status parse_v2(std::string_view buf, proxy_header& out, std::size_t& consumed,
                      std::string& error) {
  if (buf.size() < proxy_v2_header_length) return parse_status::need_more;
  const auto* p = reinterpret_cast<const unsigned char*>(buf.data());
  const unsigned version = p[12] >> 4;
  const unsigned command = p[12] & 0x0F;
  const unsigned family = p[13] >> 4;
  const unsigned transport = p[13] & 0x0F;
  const std::size_t length = be16(p + 14);
  if (version != 2) return fail(error, "PROXY v2 header has an unsupported version");
  if (command > 1) return fail(error, "PROXY v2 command must be LOCAL or PROXY");
  if (family > 3) return fail(error, "PROXY v2 address family is unknown");
  if (transport > 2) return fail(error, "PROXY v2 transport protocol is unknown");
  const std::size_t total = proxy_v2_header_length + length;
  if (buf.size() < total) return parse_status::need_more;

  const unsigned char* body = p + proxy_v2_header_length;
  proxy_header h;
  std::size_t addr_len = 0;
  if (command == 0) {
    // LOCAL: health checks and the like; the receiver uses the real addresses and must
    // ignore the address block whatever the family says.
    h.local = true;
    addr_len = length;
  } else if (family == 0) {
    // PROXY with AF_UNSPEC: an unknown protocol; the real addresses apply.
    h.local = true;
    addr_len = length;
  } else {
    if (transport != 1) return fail(error, "PROXY v2 transport must be STREAM");
    switch (family) {
      case 1:  // AF_INET
        addr_len = 12;
        if (length < addr_len) return fail(error, "PROXY v2 length too short for AF_INET");
        if (!binary_address(AF_INET, body, h.src_addr) ||
            !binary_address(AF_INET, body + 4, h.dst_addr)) {
          return fail(error, "PROXY v2 AF_INET address is invalid");
        }
        h.src_port = be16(body + 8);
        h.dst_port = be16(body + 10);
        break;
      case 2:  // AF_INET6
        addr_len = 36;
        if (length < addr_len) return fail(error, "PROXY v2 length too short for AF_INET6");
        if (!binary_address(AF_INET6, body, h.src_addr) ||
            !binary_address(AF_INET6, body + 16, h.dst_addr)) {
          return fail(error, "PROXY v2 AF_INET6 address is invalid");
        }
        h.src_port = be16(body + 32);
        h.dst_port = be16(body + 34);
        break;
      default:  // 3: AF_UNIX, two 108-byte sun_path fields
        addr_len = 216;
        if (length < addr_len) return fail(error, "PROXY v2 length too short for AF_UNIX");
        h.src_addr = unix_path(body, 108);
        h.dst_addr = unix_path(body + 108, 108);
        break;
    }
  }

  // TLVs: type (1), length (2, big-endian), value. Skipped, but they must fit exactly.
  if (command != 0 && family != 0) {
    std::size_t at = addr_len;
    while (at < length) {
      if (length - at < 3) return fail(error, "PROXY v2 TLV header is truncated");
      const std::size_t tlv_len = be16(body + at + 1);
      if (length - at - 3 < tlv_len) return fail(error, "PROXY v2 TLV value overruns the header");
      at += 3 + tlv_len;
    }
  }

  out = std::move(h);
  consumed = total;
  return parse_status::complete;
}

}  // namespace

parse_status parse_proxy(std::string_view buf, proxy_header& out, std::size_t& consumed,
                         std::string& error) {
  if (buf.empty()) return parse_status::need_more;
  const std::string_view sig = signature_view();
  if (buf[0] == sig[0]) {
    if (buf.size() < sig.size()) {
      return is_prefix_of(buf, sig) ? parse_status::need_more
                                    : fail(error, "not a PROXY protocol v2 signature");
    }
    if (buf.substr(0, sig.size()) != sig) return fail(error, "not a PROXY protocol v2 signature");
    return parse_v2(buf, out, consumed, error);
  }
  if (buf.size() < v1_prefix.size()) {
    return is_prefix_of(buf, v1_prefix) ? parse_status::need_more
                                        : fail(error, "no PROXY protocol header");
  }
  if (buf.substr(0, v1_prefix.size()) != v1_prefix) return fail(error, "no PROXY protocol header");
  return parse_v1(buf, out, consumed, error);
}

}  // namespace sluice::smtp
