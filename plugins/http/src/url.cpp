// plugins/http/src/url.cpp — see url.hpp.
#include "url.hpp"

#include <vector>

#include "sluice/text.hpp"

namespace sluice::http {

std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int h = hex(s[i + 1]);
      int l = hex(s[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::unordered_map<std::string, std::string> parse_query(std::string_view q,
                                                         std::size_t max_params) {
  std::unordered_map<std::string, std::string> out;
  std::size_t n = 0;
  while (!q.empty() && n < max_params) {
    auto amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
    if (pair.empty()) continue;
    ++n;
    auto eq = pair.find('=');
    auto key = percent_decode(pair.substr(0, eq), true);
    auto value = percent_decode(eq == std::string_view::npos ? "" : pair.substr(eq + 1), true);
    if (!key || !value) continue;
    out[std::move(*key)] = std::move(*value);
  }
  return out;
}

std::string clean_path(std::string_view p) {
  if (p.empty()) return "/";
  bool trailing = p.back() == '/';
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (start <= p.size()) {
    auto slash = p.find('/', start);
    if (slash == std::string_view::npos) slash = p.size();
    std::string_view seg = p.substr(start, slash - start);
    if (seg.empty() || seg == ".") {
      // skip
    } else if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else {
      parts.push_back(seg);
    }
    start = slash + 1;
  }
  std::string out;
  for (auto seg : parts) {
    out.push_back('/');
    out.append(seg);
  }
  if (out.empty()) return "/";
  // Go keeps the trailing slash of the original, also after "." / ".." (path.Clean drops
  // it; ServeMux adds it back).
  if (trailing) out.push_back('/');
  return out;
}

std::string encode_segment(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~' || c == '@' || c == '!' || c == '$' ||
                c == '\'' || c == '(' || c == ')' || c == '*' || c == ',' || c == ';' || c == '=' ||
                c == ':';
    if (keep) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      append_hex(out, c);
    }
  }
  return out;
}

}  // namespace sluice::http
