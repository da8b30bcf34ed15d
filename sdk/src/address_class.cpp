// address_class.cpp — see address_class.hpp. Ranges from the IANA IPv4 and IPv6
// Special-Purpose Address Registries (RFC 6890).
#include "sluice/address_class.hpp"

#include <array>
#include <cstdint>

namespace sluice {
namespace {

address_class classify_v4(std::uint32_t a) noexcept {
  auto in = [a](std::uint32_t net, int bits) {
    const std::uint32_t mask = bits == 0 ? 0 : ~std::uint32_t{0} << (32 - bits);
    return (a & mask) == net;
  };
  if (in(0x00000000, 8)) return address_class::unspecified;  // 0.0.0.0/8 "this network"
  if (in(0x7f000000, 8)) return address_class::loopback;
  if (in(0x0a000000, 8) || in(0xac100000, 12) || in(0xc0a80000, 16)) return address_class::private_;
  if (in(0xa9fe0000, 16)) return address_class::link_local;
  if (in(0x64400000, 10)) return address_class::shared;
  if (in(0xe0000000, 4)) return address_class::multicast;
  if (in(0xc0000000, 24) || in(0xc0000200, 24) || in(0xc6336400, 24) || in(0xcb007100, 24) ||
      in(0xc6120000, 15) || in(0xf0000000, 4)) {
    return address_class::reserved;  // also 255.255.255.255, inside 240/4
  }
  return address_class::global;
}

std::uint32_t v4_at(const std::array<unsigned char, 16>& b, int i) noexcept {
  return (std::uint32_t{b[i]} << 24) | (std::uint32_t{b[i + 1]} << 16) |
         (std::uint32_t{b[i + 2]} << 8) | std::uint32_t{b[i + 3]};
}

address_class classify_v6(const boost::asio::ip::address_v6& a6) noexcept {
  const auto b = a6.to_bytes();
  auto zero = [&b](int from, int to) {
    for (int i = from; i < to; ++i)
      if (b[i] != 0) return false;
    return true;
  };
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated): the kernel would
  // connect to the IPv4 address.
  if (zero(0, 10) && b[10] == 0xff && b[11] == 0xff) return classify_v4(v4_at(b, 12));
  if (zero(0, 16)) return address_class::unspecified;
  if (zero(0, 15) && b[15] == 1) return address_class::loopback;
  if (zero(0, 12)) return classify_v4(v4_at(b, 12));
  // 64:ff9b::/96 NAT64 well-known prefix (RFC 6052).
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(4, 12))
    return classify_v4(v4_at(b, 12));
  // 2002::/16 6to4: 2002:WWXX:YYZZ::/48 carries the IPv4 address.
  if (b[0] == 0x20 && b[1] == 0x02) return classify_v4(v4_at(b, 2));
  if (b[0] == 0xff) return address_class::multicast;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return address_class::link_local;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return address_class::private_;
  if ((b[0] & 0xfe) == 0xfc) return address_class::unique_local;
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
    return address_class::reserved;  // documentation
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00)
    return address_class::reserved;                                                // Teredo
  if (b[0] == 0x01 && b[1] == 0x00 && zero(2, 8)) return address_class::reserved;  // discard
  // Everything outside 2000::/3 is unassigned or special.
  if ((b[0] & 0xe0) != 0x20) return address_class::reserved;
  return address_class::global;
}

}  // namespace

address_class classify(const boost::asio::ip::address& a) noexcept {
  if (a.is_v4()) return classify_v4(a.to_v4().to_uint());
  return classify_v6(a.to_v6());
}

std::string_view to_string(address_class c) noexcept {
  switch (c) {
    case address_class::global:
      return "global";
    case address_class::loopback:
      return "loopback";
    case address_class::private_:
      return "private";
    case address_class::link_local:
      return "link-local";
    case address_class::unique_local:
      return "unique-local";
    case address_class::unspecified:
      return "unspecified";
    case address_class::multicast:
      return "multicast";
    case address_class::shared:
      return "shared (carrier-grade NAT)";
    case address_class::reserved:
      return "reserved";
  }
  return "reserved";
}

}  // namespace sluice
