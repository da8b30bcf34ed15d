// plugins/http/src/router.cpp — the router and response helpers declared in routing.hpp,
// plus the URL helpers the core uses (url.hpp).
//
// Routes are added at startup and only read afterwards, so match() needs no lock.
#include <boost/json/serialize.hpp>

#include "routing.hpp"
#include "url.hpp"

namespace sluice::http {
namespace {

std::vector<std::string> split_segments(std::string_view path) {
  std::vector<std::string> out;
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  std::size_t start = 0;
  while (true) {
    auto slash = path.find('/', start);
    out.emplace_back(
        path.substr(start, slash == std::string_view::npos ? path.npos : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return out;
}

bool is_param(const std::string& seg) {
  return seg.size() >= 3 && seg.front() == '{';
}

// Matches one path segment against a pattern segment; appends a capture for "{x}" and
// "{x}suffix" patterns (never an empty one).
bool match_segment(const std::string& pat, std::string_view seg, std::vector<std::string>& params) {
  if (!is_param(pat)) return pat == seg;
  auto close = pat.find('}');
  if (close == std::string::npos) return pat == seg;
  std::string_view suffix = std::string_view(pat).substr(close + 1);
  if (seg.size() <= suffix.size() || !seg.ends_with(suffix)) return false;
  auto decoded = percent_decode(seg.substr(0, seg.size() - suffix.size()), false);
  if (!decoded || decoded->empty()) return false;
  params.push_back(std::move(*decoded));
  return true;
}

}  // namespace

void router::add(bhttp::verb method, std::string pattern, handler h) {
  routes_.push_back(route{method, split_segments(pattern), std::move(h)});
}

const handler* router::match(bhttp::verb method, std::string_view path,
                             std::vector<std::string>& params, bool& path_known) const {
  path_known = false;
  auto segs = split_segments(path);
  std::vector<std::string> captured;
  for (const auto& r : routes_) {
    if (r.segments.size() != segs.size()) continue;
    captured.clear();
    bool ok = true;
    for (std::size_t i = 0; i < segs.size() && ok; ++i) {
      ok = match_segment(r.segments[i], segs[i], captured);
    }
    if (!ok) continue;
    if (r.method != method) {
      path_known = true;
      continue;
    }
    params = std::move(captured);
    return &r.h;
  }
  return nullptr;
}

namespace {
response make(const request& req, bhttp::status s, std::string content_type, std::string body) {
  response res{s, req.version()};
  res.set(bhttp::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}
}  // namespace

response json_response(const request& req, const boost::json::value& v, bhttp::status s) {
  return make(req, s, "application/json", boost::json::serialize(v));
}

response text_response(const request& req, bhttp::status s, std::string body) {
  return make(req, s, "text/plain; charset=utf-8", std::move(body));
}

response ok_response(const request& req) {
  return text_response(req, bhttp::status::ok, "ok");
}

response not_found(const request& req) {
  return text_response(req, bhttp::status::not_found, "404 page not found\n");
}

}  // namespace sluice::http
