// address_class.hpp — what kind of network an IP address belongs to, for SSRF guards.
//
// A webhook URL templated from message content, or a link in a message that the link
// check requests, lets a sender choose where a request goes; a guard refuses every
// address that is not globally routable unicast. IPv6
// forms that embed an IPv4 address (IPv4-mapped ::ffff:a.b.c.d, IPv4-compatible ::a.b.c.d,
// NAT64 64:ff9b::/96, 6to4 2002::/16) are classified by the embedded address, so
// ::ffff:127.0.0.1 is loopback.
//
// Pure functions; thread-safe.
#pragma once

#include <string_view>

#include <boost/asio/ip/address.hpp>

namespace sluice {

enum class address_class {
  global,        // globally routable unicast: allowed
  loopback,      // 127.0.0.0/8, ::1
  private_,      // RFC 1918 10/8, 172.16/12, 192.168/16; deprecated site-local fec0::/10
  link_local,    // 169.254.0.0/16, fe80::/10
  unique_local,  // fc00::/7 (RFC 4193)
  unspecified,   // 0.0.0.0/8, ::
  multicast,     // 224.0.0.0/4, ff00::/8
  shared,        // 100.64.0.0/10, carrier-grade NAT (RFC 6598)
  // Special-purpose, not globally reachable: 192.0.0.0/24, documentation ranges
  // (192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32), benchmarking 198.18/15,
  // 240.0.0.0/4 and the broadcast address, discard-only 100::/64, Teredo 2001::/32
  // (its client address is obfuscated, so it cannot be checked).
  reserved,
};

address_class classify(const boost::asio::ip::address& a) noexcept;
std::string_view to_string(address_class c) noexcept;

// Whether a request may be made to `a`: global addresses always, the rest only when
// allow_private is set.
inline bool permitted(const boost::asio::ip::address& a, bool allow_private) noexcept {
  return allow_private || classify(a) == address_class::global;
}

}  // namespace sluice
