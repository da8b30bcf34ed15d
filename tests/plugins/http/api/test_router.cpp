// test_router.cpp — a test-only implementation of the router and the response helpers of
// plugins/http/src/routing.hpp, used by the API handler tests while the server core's
// router.cpp is not in this tree (tests/plugins/http/api/CMakeLists.txt picks the real
// one when it exists). It follows the contract: "{name}" captures one segment, a
// "{name}.ext" segment captures what precedes ".ext"; params are percent-decoded.
#include <boost/json/serialize.hpp>

#include "routing.hpp"

namespace sluice::http {
namespace {

std::vector<std::string> split(std::string_view path) {
  std::vector<std::string> out;
  std::size_t i = 1;
  while (i <= path.size()) {
    std::size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::string decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

bool match_segments(const std::vector<std::string>& pattern, const std::vector<std::string>& path,
                    std::vector<std::string>& params) {
  if (pattern.size() != path.size()) return false;
  std::vector<std::string> caught;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    const auto& p = pattern[i];
    if (!p.empty() && p.front() == '{') {
      const auto close = p.find('}');
      const std::string suffix = p.substr(close + 1);
      const auto& seg = path[i];
      if (seg.size() <= suffix.size() || !seg.ends_with(suffix)) return false;
      caught.push_back(decode(seg.substr(0, seg.size() - suffix.size())));
    } else if (p != path[i]) {
      return false;
    }
  }
  params = std::move(caught);
  return true;
}

}  // namespace

void router::add(bhttp::verb method, std::string pattern, handler h) {
  routes_.push_back(route{method, split(pattern), std::move(h)});
}

const handler* router::match(bhttp::verb method, std::string_view path,
                             std::vector<std::string>& params, bool& path_known) const {
  path_known = false;
  const auto segs = split(path);
  // Literal segments win over captures ("/view/latest" before "/view/{ID}.html").
  const handler* best = nullptr;
  int best_literals = -1;
  for (const auto& r : routes_) {
    std::vector<std::string> p;
    if (!match_segments(r.segments, segs, p)) continue;
    if (r.method != method) {
      path_known = true;
      continue;
    }
    int literals = 0;
    for (const auto& s : r.segments)
      literals += s.empty() || s.front() != '{';
    if (literals > best_literals) {
      best = &r.h;
      best_literals = literals;
      params = std::move(p);
    }
  }
  return best;
}

response json_response(const request& req, const boost::json::value& v, bhttp::status s) {
  response r{s, req.version()};
  r.set(bhttp::field::content_type, "application/json");
  r.body() = boost::json::serialize(v);
  r.prepare_payload();
  return r;
}

response text_response(const request& req, bhttp::status s, std::string body) {
  response r{s, req.version()};
  r.set(bhttp::field::content_type, "text/plain; charset=utf-8");
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

response ok_response(const request& req) {
  return text_response(req, bhttp::status::ok, "ok");
}

response not_found(const request& req) {
  return text_response(req, bhttp::status::not_found, "404 page not found\n");
}

}  // namespace sluice::http
