// plugins/smtp/src/cidr.hpp — client networks for xclient_trusted / proxy_trusted.
//
// "10.0.0.0/8", "::1/128", "127.0.0.1" (a host), or "unix" (clients of a unix socket).
// IPv4-mapped IPv6 peers (::ffff:a.b.c.d) match IPv4 networks. Parsing runs at startup and
// throws nothing: it returns false and the caller reports a config error. Immutable after
// parsing, so matching is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include <boost/asio/ip/address.hpp>

namespace sluice::smtp {

struct network {
  bool unix_socket = false;  // the "unix" keyword
  bool v6 = false;
  std::array<std::uint8_t, 16> bytes{};  // IPv4 uses the first 4
  unsigned prefix = 0;
};

bool parse_network(std::string_view text, network& out);

// An IPv4 address in IPv6's v4-mapped form (::ffff:192.0.2.1) as IPv4; any other unchanged.
boost::asio::ip::address unmap_v4(const boost::asio::ip::address& a);

class network_list {
 public:
  void add(const network& n) { nets_.push_back(n); }
  bool empty() const { return nets_.empty(); }
  // addr is the client's IP; is_unix says the client came over a unix socket.
  bool contains(const boost::asio::ip::address& addr, bool is_unix) const;

 private:
  std::vector<network> nets_;
};

}  // namespace sluice::smtp
