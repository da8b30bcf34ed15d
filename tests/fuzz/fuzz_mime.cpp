// fuzz_mime.cpp — libFuzzer target for the mime stage's parse (plugins/mime/src).
// Input: a raw message. The first byte, if any, picks small limits (so that the depth,
// part and header limits are reached by small inputs); the rest is the message. Checks
// the view's invariants: every listed part lies inside the message and decodes to its
// recorded size, every string of the view is valid UTF-8, and the parse is the same on a
// second run (no hidden state).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <boost/json/serialize.hpp>

#include "parse.hpp"
#include "text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace sluice;
  if (size == 0) return 0;
  mime::parse_limits limits;
  const std::uint8_t knob = data[0];
  limits.structure.max_depth = 1 + (knob & 0x0f);       // 1..16
  limits.structure.max_parts = 1 + ((knob >> 4) * 8);   // 1..121
  limits.structure.max_header_bytes = 1024;
  limits.max_text_bytes = 1024 + (knob & 0x3f);
  std::string raw(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<header_edit> edits{{edit_op::append, "Message-ID", "<fuzz@sluice.test>"}};
  auto body = message_body::from_string(raw);
  mime::parse_result r = mime::parse(body, edits, limits);
  if (r.io_error) std::abort();  // an in-memory body cannot fail to read
  const parsed_message& v = r.view;
  auto check_part = [&](const mime_part& p) {
    if (p.offset > raw.size() || p.length > raw.size() - p.offset) std::abort();
    if (p.sha256.size() != 64 || p.md5.size() != 32 || p.sha1.size() != 40) {
      // Parts listed without content (a message part GMime parsed itself) have none.
      if (!(p.sha256.empty() && p.size == 0)) std::abort();
    }
  };
  for (const auto& p : v.attachments)
    check_part(p);
  for (const auto& p : v.inline_parts)
    check_part(p);
  if (v.text.size() > limits.max_text_bytes || v.html.size() > limits.max_text_bytes) std::abort();
  const std::string json = boost::json::serialize(to_json(v));
  if (!mime::valid_utf8(json)) std::abort();
  if (v.snippet.size() > 200 * 4 + 3) std::abort();
  mime::parse_result again = mime::parse(body, edits, limits);
  if (boost::json::serialize(to_json(again.view)) != json) std::abort();
  return 0;
}
