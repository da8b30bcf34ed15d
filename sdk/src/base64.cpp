// base64.cpp — see sluice/base64.hpp.
#include "sluice/base64.hpp"

#include <cstdint>

namespace sluice {
namespace {
constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The sextet of an alphabet character; -1 for any other byte, '=' included.
int value(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Collects sextets and appends each byte as soon as its 8 bits are in; the bits of a last
// incomplete byte are dropped.
struct byte_writer {
  std::string& out;
  std::uint32_t acc = 0;
  int bits = 0;
  void add(int sextet) {
    acc = (acc << 6) | static_cast<std::uint32_t>(sextet);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
};
}  // namespace

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    std::uint32_t v = (std::uint32_t(std::uint8_t(in[i])) << 16) |
                      (std::uint32_t(std::uint8_t(in[i + 1])) << 8) | std::uint8_t(in[i + 2]);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  if (i + 1 == in.size()) {
    std::uint32_t v = std::uint32_t(std::uint8_t(in[i])) << 16;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    std::uint32_t v =
        (std::uint32_t(std::uint8_t(in[i])) << 16) | (std::uint32_t(std::uint8_t(in[i + 1])) << 8);
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view in, base64_padding padding) {
  std::size_t pad = 0;
  while (!in.empty() && in.back() == '=' && pad < 2) {
    in.remove_suffix(1);
    ++pad;
  }
  if (in.size() % 4 == 1) return std::nullopt;
  if (padding != base64_padding::unchecked && pad > 0 && (in.size() + pad) % 4 != 0) {
    return std::nullopt;
  }
  if (padding == base64_padding::required && (in.size() + pad) % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  byte_writer w{out};
  for (char c : in) {
    int v = value(c);
    if (v < 0) return std::nullopt;  // also a third '=' or an '=' inside the data
    w.add(v);
  }
  return out;
}

std::size_t base64_decode_lenient(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size() / 4 * 3 + 3);
  std::size_t skipped = 0;
  byte_writer w{out};
  for (char c : in) {
    if (c == '=') break;  // RFC 2045 §6.8: padding only ever ends the data
    int v = value(c);
    if (v < 0) {
      ++skipped;  // line breaks, white space, junk
      continue;
    }
    w.add(v);
  }
  return skipped;
}

bool is_base64_char(char c) noexcept {
  return value(c) >= 0;
}

}  // namespace sluice
