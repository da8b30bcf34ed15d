// plugins/smtp/src/proxy_protocol.hpp — HAProxy PROXY protocol v1 and v2 header parser.
//
// A load balancer in front of Sluice sends this header first on each connection so the
// listener learns the real client address (DESIGN §7). Both versions are recognised from
// the first bytes:
//   v1: "PROXY TCP4|TCP6 <src> <dst> <sport> <dport>\r\n" or "PROXY UNKNOWN ...\r\n",
//       at most 107 bytes, CRLF included.
//   v2: the 12-byte binary signature, version 2, command LOCAL or PROXY, families
//       AF_UNSPEC, AF_INET, AF_INET6 and AF_UNIX over a stream transport; TLVs are checked
//       for well-formed lengths and skipped. At most 16 + 65535 bytes.
// `local` means "use the real connection's addresses": v2 LOCAL, v2 AF_UNSPEC and v1
// UNKNOWN. IP addresses come back in canonical text form (inet_ntop); AF_UNIX paths as
// text, an abstract socket name prefixed with '@'.
//
// Pure function over the caller's buffer: no I/O, no exceptions, no state; thread-safe and
// a libFuzzer target (tests/fuzz/fuzz_proxy). Bad input returns parse_status::invalid with
// a short English reason in `error` (safe to log; the caller should drop the connection).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::smtp {

struct proxy_header {
  bool local = false;
  std::string src_addr;
  std::uint16_t src_port = 0;
  std::string dst_addr;
  std::uint16_t dst_port = 0;
};

enum class parse_status { complete, need_more, invalid };

inline constexpr std::size_t proxy_v1_max_length = 107;
inline constexpr std::size_t proxy_v2_header_length = 16;

// Parses the header at the start of `buf`. complete: `out` is filled and `consumed` is the
// header's length (the bytes after it belong to the mail protocol). need_more: `buf` is a
// valid but incomplete prefix; call again with more bytes. invalid: `error` says why.
// `out` and `consumed` are only written on complete.
parse_status parse_proxy(std::string_view buf, proxy_header& out, std::size_t& consumed,
                         std::string& error);

}  // namespace sluice::smtp
