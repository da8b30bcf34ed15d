// fuzz_smtp_command.cpp — libFuzzer target for the smtp plugin's command-line parsers
// (plugins/smtp/src/command.hpp). Checks that every returned view points into the input
// and that counts respect their bounds; a broken invariant traps.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "command.hpp"

using namespace sluice::smtp;

namespace {

void inside(std::string_view outer, std::string_view v) {
  if (v.empty()) return;
  if (v.data() < outer.data() || v.data() + v.size() > outer.data() + outer.size())
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view line(reinterpret_cast<const char*>(data), size);
  const command c = parse_command(line);
  inside(line, c.name);
  inside(line, c.args);
  for (std::string_view kw : {std::string_view("FROM"), std::string_view("TO")}) {
    path_args p;
    if (parse_path(c.args, kw, p) == path_status::ok) {
      if (p.param_count > max_esmtp_params) __builtin_trap();
      inside(line, p.address);
      if (p.null_path && !p.address.empty()) __builtin_trap();
      for (std::size_t i = 0; i < p.param_count; ++i) {
        inside(line, p.params[i].keyword);
        inside(line, p.params[i].value);
      }
      (void)valid_mailbox(p.address, true);
    }
  }
  bdat_args b;
  if (parse_bdat(c.args, b) && b.size > (std::uint64_t{1} << 63)) __builtin_trap();
  // What EHLO accepts goes into replies and Received: never a blank, a control character,
  // ';' or a comment delimiter, and always well-formed UTF-8.
  if (valid_helo_argument(c.args)) {
    for (char ch : c.args) {
      const auto u = static_cast<unsigned char>(ch);
      if (u <= 0x20 || u == 0x7f || ch == ';' || ch == '(' || ch == ')') __builtin_trap();
    }
    if (!valid_utf8(c.args) || c.args.size() > 255) __builtin_trap();
  }
  (void)valid_utf8(line);
  (void)valid_mailbox(line, false);
  (void)iequals(c.name, "MAIL");
  (void)istarts_with(line, "XCLIENT");
  return 0;
}
