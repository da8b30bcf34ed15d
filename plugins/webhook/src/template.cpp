// template.cpp — see template.hpp.
#include "template.hpp"

#include <algorithm>
#include <optional>
#include <stdexcept>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include "sluice/text.hpp"

namespace sluice::webhook {
namespace json = boost::json;
namespace {

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

// At `s` (which starts with "{{"): the placeholder's name and its length, or nothing.
std::optional<std::pair<std::string_view, std::size_t>> placeholder_at(std::string_view s) {
  std::size_t i = 2;
  while (i < s.size() && s[i] == ' ')
    ++i;
  const std::size_t start = i;
  while (i < s.size() && name_char(s[i]))
    ++i;
  const std::size_t end = i;
  while (i < s.size() && s[i] == ' ')
    ++i;
  if (end == start || s.substr(i, 2) != "}}") return std::nullopt;
  return std::pair{s.substr(start, end - start), i + 2};
}

const field_map& sample_fields() {
  static const field_map f = [] {
    field_map m;
    for (const auto& n : field_names())
      m[n] = "x";
    return m;
  }();
  return f;
}

// The field a string consists of entirely ("{{summary}}"), if it does.
std::optional<std::string_view> whole_placeholder(std::string_view s) {
  if (!s.starts_with("{{")) return std::nullopt;
  auto p = placeholder_at(s);
  if (!p || p->second != s.size()) return std::nullopt;
  return p->first;
}

void render_value(json::value& v, const field_map& fields) {
  if (auto* s = v.if_string()) {
    if (auto name = whole_placeholder(*s)) {
      auto it = fields.find(*name);
      if (it == fields.end())
        throw std::invalid_argument("unknown field {{" + std::string(*name) + "}}");
      v = it->second;
      return;
    }
    if (s->find("{{") != json::string::npos) *s = substitute(*s, fields, false);
  } else if (auto* a = v.if_array()) {
    for (auto& x : *a)
      render_value(x, fields);
  } else if (auto* o = v.if_object()) {
    for (auto& kv : *o)
      render_value(kv.value(), fields);
  }
}

}  // namespace

std::string one_line_excerpt(std::string_view s, std::size_t limit) {
  std::string out;
  std::size_t i = 0;
  auto byte = [&s](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char c = byte(i);
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the second byte (RFC 3629 §4)
    if (c < 0x80) {
      len = 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;
      if (c == 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      if (c == 0xf4) hi = 0x8f;
    }
    bool valid = len > 0 && i + len <= s.size();
    if (valid && len > 1) valid = byte(i + 1) >= lo && byte(i + 1) <= hi;
    for (std::size_t k = 2; valid && k < len; ++k)
      valid = (byte(i + k) & 0xc0) == 0x80;
    if (!valid) {
      if (out.size() + 3 > limit) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (out.size() + len > limit) break;
    if (len == 1) {
      out += (c < 0x20 || c == 0x7f) ? ' ' : static_cast<char>(c);
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

std::string percent_encode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      append_hex(out, c);
    }
  }
  return out;
}

std::string field_text(const json::value& v) {
  switch (v.kind()) {
    case json::kind::string:
      return std::string(v.get_string());
    case json::kind::null:
      return {};
    case json::kind::array: {
      std::string out;
      for (const auto& x : v.get_array()) {
        if (!out.empty()) out += ", ";
        out += field_text(x);
      }
      return out;
    }
    default:
      return json::serialize(v);
  }
}

std::string substitute(std::string_view s, const field_map& fields, bool encode) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    auto open = s.find("{{");
    out.append(s.substr(0, open));
    if (open == std::string_view::npos) break;
    s.remove_prefix(open);
    auto p = placeholder_at(s);
    if (!p) {
      throw std::invalid_argument("\"{{\" must start a placeholder like {{subject}}, at \"" +
                                  std::string(s.substr(0, 24)) + "\"");
    }
    auto it = fields.find(p->first);
    if (it == fields.end()) {
      std::string known;
      for (const auto& n : field_names())
        known += (known.empty() ? "" : ", ") + n;
      throw std::invalid_argument("unknown field {{" + std::string(p->first) +
                                  "}}; known: " + known);
    }
    const std::string text = field_text(it->second);
    out += encode ? percent_encode(text) : text;
    s.remove_prefix(p->second);
  }
  return out;
}

json_template json_template::parse(std::string_view text) {
  json_template t;
  boost::system::error_code ec;
  t.root_ = json::parse(text, ec);
  if (ec) throw std::invalid_argument("the template is not valid JSON: " + ec.message());
  // Rendering with sample values finds unknown and malformed placeholders now.
  (void)t.render(sample_fields());
  return t;
}

std::string json_template::render(const field_map& fields) const {
  json::value v = root_;
  render_value(v, fields);
  return json::serialize(v);
}

url_template url_template::parse(std::string_view text) {
  url_template t;
  t.text_ = std::string(text);
  t.templated_ = text.find("{{") != std::string_view::npos;
  const std::string sample = t.render(sample_fields());
  auto u = boost::urls::parse_absolute_uri(sample);
  if (!u) throw std::invalid_argument("not an absolute URL: " + u.error().message());
  if (u->scheme() != "http" && u->scheme() != "https") {
    throw std::invalid_argument("the scheme must be http or https");
  }
  if (u->encoded_host().empty()) throw std::invalid_argument("the URL has no host");
  if (u->has_fragment()) throw std::invalid_argument("a webhook URL has no #fragment");
  return t;
}

std::string url_template::render(const field_map& fields) const {
  if (!templated_) return text_;
  return substitute(text_, fields, true);
}

}  // namespace sluice::webhook
