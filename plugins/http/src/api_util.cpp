// api_util.cpp — see api_util.hpp.
#include "api_util.hpp"

#include <charconv>
#include <chrono>
#include <exception>
#include <stdexcept>

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>

#include "sluice/search.hpp"
#include "sluice/text.hpp"

namespace sluice::http::api {
namespace {

bool is_ws(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Token characters of RFC 7230 §3.2.6, as Go's validHeaderFieldByte.
bool token_char(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (std::size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  out = v;
  return true;
}

}  // namespace

body_result parse_json_body(const request& req, std::size_t limit) {
  body_result r;
  const std::string& body = req.body();
  if (body.size() > limit) {
    r.too_large = true;
    r.error = "request body too large (limit " + std::to_string(limit) + " bytes)";
    return r;
  }
  std::size_t i = 0;
  while (i < body.size() && is_ws(body[i]))
    ++i;
  if (i == body.size()) {
    r.empty = true;
    r.error = "request body is empty, a JSON object was expected";
    return r;
  }
  json::parse_options opt;
  opt.max_depth = 64;
  boost::system::error_code ec;
  r.value = json::parse(body, ec, {}, opt);
  if (ec) {
    r.error = "invalid JSON in request body: " + ec.message();
    return r;
  }
  if (!r.value.is_object()) {
    r.error = "request body must be a JSON object";
  }
  return r;
}

const json::value* go_field(const json::object& o, std::string_view name) {
  if (auto* v = o.if_contains(name)) return v;
  for (const auto& kv : o) {
    if (iequals(kv.key(), name)) return &kv.value();
  }
  return nullptr;
}

bool read_string_array(const json::object& o, std::string_view name, std::vector<std::string>& out,
                       std::string& error) {
  const json::value* v = go_field(o, name);
  if (!v || v->is_null()) return true;
  if (!v->is_array()) {
    error = std::string(name) + " must be an array of strings";
    return false;
  }
  for (const auto& e : v->get_array()) {
    if (!e.is_string()) {
      error = std::string(name) + " must be an array of strings";
      return false;
    }
    out.emplace_back(e.get_string());
  }
  return true;
}

bool read_string(const json::object& o, std::string_view name, std::string& out,
                 std::string& error) {
  const json::value* v = go_field(o, name);
  if (!v || v->is_null()) return true;
  if (!v->is_string()) {
    error = std::string(name) + " must be a string";
    return false;
  }
  out = v->get_string();
  return true;
}

bool read_bool(const json::object& o, std::string_view name, bool& out, std::string& error) {
  const json::value* v = go_field(o, name);
  if (!v || v->is_null()) return true;
  if (!v->is_bool()) {
    error = std::string(name) + " must be true or false";
    return false;
  }
  out = v->get_bool();
  return true;
}

response bad_request(const request& req, std::string text) {
  return text_response(req, bhttp::status::bad_request, std::move(text));
}

response message_not_found(const request& req) {
  return text_response(req, bhttp::status::not_found, "Message not found");
}

std::string go_canonical_header_key(std::string_view key) {
  for (unsigned char c : key) {
    if (!token_char(c)) return std::string(key);
  }
  std::string out(key);
  bool upper = true;
  for (char& c : out) {
    if (upper && c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    } else if (!upper && c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    upper = c == '-';
  }
  return out;
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<std::int64_t> parse_time_ms(std::string_view s) {
  s = trim(s);
  if (s.empty()) return std::nullopt;
  bool all_digits = true;
  for (char c : s)
    all_digits = all_digits && c >= '0' && c <= '9';
  if (all_digits) {
    auto v = parse_uint(s);
    if (!v || *v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<std::int64_t>(*v);
  }
  int y, mo, d, h = 0, mi = 0, sec = 0;
  if (!digits(s, 0, 4, y) || s.size() < 10 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d)) {
    return std::nullopt;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return std::nullopt;
  std::int64_t frac_ms = 0;
  int offset_min = 0;
  std::size_t i = 10;
  if (i < s.size()) {
    if (s[i] != 'T' && s[i] != 't' && s[i] != ' ') return std::nullopt;
    if (!digits(s, i + 1, 2, h) || i + 3 >= s.size() || s[i + 3] != ':' ||
        !digits(s, i + 4, 2, mi)) {
      return std::nullopt;
    }
    i += 6;
    if (i < s.size() && s[i] == ':') {
      if (!digits(s, i + 1, 2, sec)) return std::nullopt;
      i += 3;
    }
    if (i < s.size() && s[i] == '.') {
      ++i;
      int n = 0;
      std::int64_t scale = 100;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (n < 3) frac_ms += (s[i] - '0') * scale;
        scale /= 10;
        ++n;
        ++i;
      }
      if (n == 0) return std::nullopt;
    }
    if (i < s.size()) {
      if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
      } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' ||
            !digits(s, i + 4, 2, om) || oh > 23 || om > 59) {
          return std::nullopt;
        }
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
      } else {
        return std::nullopt;
      }
    }
    if (i != s.size()) return std::nullopt;
    if (h > 23 || mi > 59 || sec > 60) return std::nullopt;
  }
  const std::int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  const std::int64_t secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
  return secs * 1000 + frac_ms;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::optional<std::string> read_page(const request_context& ctx, page& out) {
  // As Mailpit (strconv.Atoi, then "n > 0"): a value that is not a positive number, such
  // as "-1", "abc" or a JavaScript client's "undefined", keeps the default (start 0, limit
  // 50); a leading '+' is allowed.
  auto positive = [](const std::string* p) -> std::optional<std::uint64_t> {
    if (!p) return std::nullopt;
    std::string_view s = *p;
    if (s.starts_with('+')) s.remove_prefix(1);
    auto v = parse_uint(s);
    if (!v || *v == 0 || *v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
    return v;
  };
  if (auto v = positive(ctx.param("start"))) out.start = *v;
  if (auto v = positive(ctx.param("limit"))) out.limit = std::min(*v, kMaxPageLimit);
  return std::nullopt;
}

boost::asio::awaitable<std::optional<std::string>> resolve_id(request_context& ctx,
                                                              const std::string& id) {
  if (id != "latest") co_return id;
  const std::string* q = ctx.param("query");
  const std::string* tz = ctx.param("tz");
  co_return co_await ctx.env.store->latest(ctx.mailbox, q ? *q : std::string(),
                                           tz ? *tz : std::string());
}

boost::asio::awaitable<std::optional<std::string>> message_id(request_context& ctx,
                                                              std::optional<response>& fail) {
  const std::string raw = ctx.params.empty() ? std::string() : ctx.params[0];
  if (raw.empty() || raw.size() > kMaxIdLength) {
    fail = not_found(ctx.req);
    co_return std::nullopt;
  }
  auto id = co_await resolve_id(ctx, raw);
  if (!id) fail = raw == "latest" ? message_not_found(ctx.req) : not_found(ctx.req);
  co_return id;
}

handler guarded(handler_fn fn) {
  return [fn](request_context& ctx) -> boost::asio::awaitable<response> {
    // The exception is turned into text before the co_return: co_await is not allowed in
    // a handler block, and a response needs nothing awaited.
    std::string error;
    try {
      co_return co_await fn(ctx);
    } catch (const search_error& e) {
      error = e.what();
    } catch (const std::invalid_argument& e) {
      error = e.what();
    }
    co_return bad_request(ctx.req, error);
  };
}

response bytes_response(const request& req, std::string content_type, std::string body,
                        bhttp::status s) {
  response r{s, req.version()};
  r.set(bhttp::field::content_type, content_type);
  r.keep_alive(req.keep_alive());
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

}  // namespace sluice::http::api
