// plugins/smtp/src/cidr.cpp — see cidr.hpp.
#include "cidr.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>

namespace sluice::smtp {
namespace {

bool prefix_match(const std::uint8_t* a, const std::uint8_t* b, unsigned prefix) {
  unsigned full = prefix / 8;
  for (unsigned i = 0; i < full; ++i) {
    if (a[i] != b[i]) return false;
  }
  unsigned rest = prefix % 8;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}

}  // namespace

bool parse_network(std::string_view text, network& out) {
  out = network{};
  if (text == "unix") {
    out.unix_socket = true;
    return true;
  }
  std::string_view addr_text = text;
  std::optional<unsigned> prefix;
  if (auto slash = text.find('/'); slash != std::string_view::npos) {
    addr_text = text.substr(0, slash);
    std::string_view p = text.substr(slash + 1);
    unsigned v = 0;
    auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
    if (ec != std::errc() || ptr != p.data() + p.size()) return false;
    prefix = v;
  }
  boost::system::error_code ec;
  auto addr = boost::asio::ip::make_address(std::string(addr_text), ec);
  if (ec) return false;
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
    out.prefix = prefix.value_or(32);
    if (out.prefix > 32) return false;
  } else {
    auto b = addr.to_v6().to_bytes();
    std::copy(b.begin(), b.end(), out.bytes.begin());
    out.v6 = true;
    out.prefix = prefix.value_or(128);
    if (out.prefix > 128) return false;
  }
  return true;
}

boost::asio::ip::address unmap_v4(const boost::asio::ip::address& a) {
  if (a.is_v6() && a.to_v6().is_v4_mapped()) {
    return boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, a.to_v6());
  }
  return a;
}

bool network_list::contains(const boost::asio::ip::address& addr_in, bool is_unix) const {
  const boost::asio::ip::address addr = unmap_v4(addr_in);
  for (const auto& n : nets_) {
    if (n.unix_socket) {
      if (is_unix) return true;
      continue;
    }
    if (is_unix) continue;
    if (addr.is_v4() && !n.v6) {
      auto b = addr.to_v4().to_bytes();
      if (prefix_match(b.data(), n.bytes.data(), n.prefix)) return true;
    } else if (addr.is_v6() && n.v6) {
      auto b = addr.to_v6().to_bytes();
      if (prefix_match(b.data(), n.bytes.data(), n.prefix)) return true;
    }
  }
  return false;
}

}  // namespace sluice::smtp
