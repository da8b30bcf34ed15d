// fuzz_proxy.cpp — libFuzzer target for the PROXY protocol v1/v2 parser.
// Besides memory safety it checks the parser's contract: a complete header is also
// complete with trailing bytes (same length), and every shorter prefix of it needs more.
// A broken invariant aborts (__builtin_trap), which libFuzzer reports as a crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "proxy_protocol.hpp"

using sluice::smtp::parse_proxy;
using sluice::smtp::parse_status;
using sluice::smtp::proxy_header;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  proxy_header h;
  std::size_t consumed = 0;
  std::string error;
  const parse_status st = parse_proxy(in, h, consumed, error);
  if (st == parse_status::invalid && error.empty()) __builtin_trap();
  if (st != parse_status::complete) return 0;
  if (consumed == 0 || consumed > size) __builtin_trap();
  if (!h.local && (h.src_addr.empty() && h.dst_addr.empty()) && in[0] == 'P') __builtin_trap();

  std::string longer(in.substr(0, consumed));
  longer += "EHLO x\r\n";
  proxy_header h2;
  std::size_t consumed2 = 0;
  if (parse_proxy(longer, h2, consumed2, error) != parse_status::complete ||
      consumed2 != consumed || h2.src_addr != h.src_addr || h2.dst_port != h.dst_port ||
      h2.local != h.local) {
    __builtin_trap();
  }
  // Prefixes: check a few lengths (all of them would be quadratic on big v2 headers).
  for (std::size_t n : {std::size_t{0}, consumed / 2, consumed - 1}) {
    proxy_header h3;
    std::size_t c3 = 0;
    if (parse_proxy(in.substr(0, n), h3, c3, error) != parse_status::need_more) __builtin_trap();
  }
  return 0;
}
