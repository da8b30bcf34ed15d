// fuzz_search.cpp — libFuzzer target for the search language parser (sdk/src/search.cpp),
// which reads every query a client sends to the API. Checks its contract: only
// search_error escapes; strict mode accepts nothing lenient mode rejects, and gives the
// same terms when both accept; what comes back obeys the documented limits (at most 64
// terms, dates that exist, a time of day within range). A broken invariant traps.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/search.hpp"

using sluice::parse_search;
using sluice::search_error;
using sluice::search_mode;
using sluice::search_query;
using sluice::search_term;

namespace {

bool valid(const search_term::civil_time& t) {
  static const int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (t.days_ago >= 0) return t.days_ago <= 1;
  if (t.year < 1 || t.year > 9999 || t.month < 1 || t.month > 12 || t.day < 1 ||
      t.day > kDays[t.month - 1]) {
    return false;
  }
  if (t.hour < 0 || t.hour > 23 || t.minute < 0 || t.minute > 59 || t.second < 0 || t.second > 59) {
    return false;
  }
  return !t.has_offset || (t.offset_minutes > -24 * 60 && t.offset_minutes < 24 * 60);
}

bool same(const search_query& a, const search_query& b) {
  if (a.terms.size() != b.terms.size()) return false;
  for (std::size_t i = 0; i < a.terms.size(); ++i) {
    const auto &x = a.terms[i], &y = b.terms[i];
    if (x.kind != y.kind || x.negated != y.negated || x.value != y.value ||
        x.header_name != y.header_name || x.size != y.size) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::optional<search_query> lenient, strict;
  try {
    lenient = parse_search(in);
  } catch (const search_error& e) {
    if (std::string_view(e.what()).empty()) __builtin_trap();
  }
  try {
    strict = parse_search(in, search_mode::strict);
  } catch (const search_error& e) {
    if (std::string_view(e.what()).empty()) __builtin_trap();
  }
  if (strict && !lenient) __builtin_trap();  // strict is never the looser one
  if (strict && !same(*strict, *lenient)) __builtin_trap();
  if (!lenient) return 0;
  if (in.size() > 4096 || lenient->terms.size() > 64) __builtin_trap();
  for (const auto& t : lenient->terms) {
    using f = search_term::field;
    if ((t.kind == f::before || t.kind == f::after) && !valid(t.time)) __builtin_trap();
    if (t.kind == f::text && t.value.empty()) __builtin_trap();
    if (t.kind == f::header && t.header_name.empty()) __builtin_trap();
  }
  return 0;
}
