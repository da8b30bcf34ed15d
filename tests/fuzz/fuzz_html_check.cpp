// fuzz_html_check.cpp — libFuzzer target for the HTML check (plugins/http/src/html_check.cpp).
// Input: a message's HTML. Checks the response's invariants: every warning was found at
// least once, the total shares are each within 0-100 and add up to 100, the node count is
// at most the number of '<' in the input, and a second run gives the same answer.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include <boost/json.hpp>

#include "html_check.hpp"

namespace {
// A data set naming some features of each kind, every client result kind among them.
const char* kData = R"j({"nicenames": {"family": {"gmail": "Gmail"}, "platform": {"ios": "iOS"}},
  "data": [
    {"slug": "html-svg", "stats": {"gmail": {"ios": {"1": "y", "2": "n #1", "3": "a", "4": "u"}}}},
    {"slug": "html-body", "stats": {"gmail": {"ios": {"1": "n"}}}},
    {"slug": "css-display-flex", "stats": {"gmail": {"ios": {"1": "a #2 #3"}}}},
    {"slug": "css-unit-rem", "stats": {"gmail": {"ios": {"1": "n"}}}},
    {"slug": "css-pseudo-class-hover", "stats": {"gmail": {"ios": {"1": "n"}}}},
    {"slug": "css-at-media-prefers-color-scheme", "stats": {"gmail": {"ios": {"1": "y"}}}},
    {"slug": "image-webp", "stats": {"gmail": {"ios": {"1": "y #4"}}}},
    {"slug": "css-important", "description": "`x` **y** [z](https://e.example)",
     "stats": {"gmail": {"ios": {"1": "n"}}}}
  ]})j";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto d = sluice::http::parse_html_check_data(kData);
  const std::string html(reinterpret_cast<const char*>(data), size);
  const auto r = sluice::http::run_html_check(*d, html);
  const auto& total = r.at("Total").as_object();
  const double s = total.at("Supported").as_double();
  const double p = total.at("Partial").as_double();
  const double u = total.at("Unsupported").as_double();
  for (double x : {s, p, u})
    if (!(x >= -1e-9 && x <= 100 + 1e-9)) std::abort();
  if (std::fabs(s + p + u - 100) > 1e-6) std::abort();
  std::size_t lt = 0;
  for (char c : html)
    lt += c == '<';
  // libxml2 may imply html and body around text; those are the only elements without a '<'.
  if (total.at("Nodes").as_uint64() > lt + 2) std::abort();
  for (const auto& w : r.at("Warnings").as_array())
    if (w.at("Score").at("Found").as_uint64() == 0) std::abort();
  if (boost::json::serialize(sluice::http::run_html_check(*d, html)) != boost::json::serialize(r))
    std::abort();
  return 0;
}
