// fuzz_xclient.cpp — libFuzzer target for the XCLIENT argument parser and xtext decoder.
// Checks that success and failure are reported consistently and that what comes back
// obeys the documented limits; a broken invariant traps.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "xclient.hpp"

using namespace sluice::smtp;

namespace {
bool special(const std::string& v) {
  return v == xclient_unavailable || v == xclient_tempunavail;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string decoded;
  if (decode_xtext(in, decoded) && decoded.size() > in.size()) __builtin_trap();

  xclient_attrs a;
  a.login = "sentinel";
  std::string error;
  if (!parse_xclient(in, a, error)) {
    if (error.empty() || a.login != "sentinel") __builtin_trap();
    return 0;
  }
  if (!error.empty()) __builtin_trap();  // success never writes an error
  for (const auto* v : {&a.name, &a.helo, &a.login}) {
    if (*v && ((*v)->empty() || (*v)->size() > 255)) __builtin_trap();
  }
  if (a.proto && !special(*a.proto) && *a.proto != "SMTP" && *a.proto != "ESMTP") __builtin_trap();
  if (a.addr && !special(*a.addr) && a.addr->find(' ') != std::string::npos) __builtin_trap();
  return 0;
}
