// fuzz_smtp_data.cpp — libFuzzer target for the streaming DATA decoder
// (plugins/smtp/src/data_decoder.hpp). Differential: decoding the input in one piece and
// in fuzzer-chosen pieces (first byte = chunk-size seed) must give the same bytes, the
// same end position and the same verdicts. Decoded output never exceeds the input, and
// the terminator, when found, is <CRLF>.<CRLF> (or ".\r\n" at the very start).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "data_decoder.hpp"

using sluice::smtp::data_decoder;

namespace {

struct outcome {
  std::string bytes;
  std::size_t consumed = 0;
  bool done = false;
  bool too_long = false;
  std::uint64_t size = 0;
};

outcome run(std::string_view in, std::size_t max_line, std::uint8_t seed) {
  data_decoder d(max_line);
  outcome o;
  std::size_t pos = 0;
  std::size_t step = seed == 0 ? in.size() : 0;
  std::uint32_t rng = seed;
  while (pos < in.size() && !o.done) {
    std::size_t n = step;
    if (n == 0) {
      rng = rng * 1103515245u + 12345u;
      n = 1 + (rng >> 16) % 7;
    }
    n = std::min(n, in.size() - pos);
    const auto r = d.feed(in.substr(pos, n), [&](std::string_view s) { o.bytes.append(s); });
    if (r.consumed > n) __builtin_trap();
    if (!r.done && r.consumed != n) __builtin_trap();
    pos += r.consumed;
    o.done = r.done;
  }
  o.consumed = pos;
  o.too_long = d.line_too_long();
  o.size = d.decoded_size();
  if (o.done != d.done()) __builtin_trap();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t seed = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::size_t max_line = seed % 3 == 0 ? 0 : 8 + seed % 64;
  const outcome whole = run(in, max_line, 0);
  const outcome split = run(in, max_line, static_cast<std::uint8_t>(seed | 1));
  if (whole.bytes != split.bytes || whole.consumed != split.consumed || whole.done != split.done ||
      whole.too_long != split.too_long || whole.size != split.size) {
    __builtin_trap();
  }
  if (whole.bytes.size() > whole.consumed || whole.size != whole.bytes.size()) __builtin_trap();
  if (whole.done) {
    const std::string_view used = in.substr(0, whole.consumed);
    if (!(used.ends_with("\r\n.\r\n") || used == ".\r\n")) __builtin_trap();
    // Everything before the terminator line, re-stuffed, is what was sent.
  }
  return 0;
}
