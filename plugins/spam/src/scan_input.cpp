// scan_input.cpp — gathering the spam engines' input; see scan_input.hpp.
#include "scan_input.hpp"

#include <algorithm>
#include <cctype>

#include <boost/json/value.hpp>

namespace sluice::spam {
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// Case-insensitive find of an ASCII needle.
std::size_t ifind(std::string_view hay, std::string_view needle, std::size_t from) {
  if (needle.empty() || hay.size() < needle.size()) return std::string_view::npos;
  for (std::size_t i = from; i + needle.size() <= hay.size(); ++i) {
    std::size_t j = 0;
    while (j < needle.size() && lower(hay[i + j]) == needle[j])
      ++j;
    if (j == needle.size()) return i;
  }
  return std::string_view::npos;
}

bool uri_char(unsigned char c) {
  // RFC 3986 unreserved, reserved and '%'; stops at space, quotes, angle brackets.
  return c > 0x20 && c < 0x7f && c != '"' && c != '<' && c != '>' && c != '\'' && c != '`' &&
         c != '{' && c != '}' && c != '|' && c != '\\' && c != '^';
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front())))
    s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.remove_suffix(1);
  return std::string(s);
}

// Decodes the few HTML character references that matter for URLs and link text.
std::string html_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    auto semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 8) {
      out += '&';
      continue;
    }
    std::string_view ent = s.substr(i + 1, semi - i - 1);
    if (ent == "amp")
      out += '&';
    else if (ent == "lt")
      out += '<';
    else if (ent == "gt")
      out += '>';
    else if (ent == "quot")
      out += '"';
    else if (ent == "nbsp")
      out += ' ';
    else if (ent == "#46")
      out += '.';
    else if (ent == "#47")
      out += '/';
    else if (ent == "#58")
      out += ':';
    else {
      out += '&';
      continue;
    }
    i = semi;
  }
  return out;
}

std::string collapse_space(std::string_view s) {
  std::string out;
  bool space = false;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// The value of attribute `name` inside one tag's text ("a href=x class=y").
std::string attribute(std::string_view tag, std::string_view name) {
  std::size_t pos = 0;
  while ((pos = ifind(tag, name, pos)) != std::string_view::npos) {
    bool boundary = pos == 0 || std::isspace(static_cast<unsigned char>(tag[pos - 1]));
    std::size_t p = pos + name.size();
    while (p < tag.size() && std::isspace(static_cast<unsigned char>(tag[p])))
      ++p;
    if (!boundary || p >= tag.size() || tag[p] != '=') {
      pos += name.size();
      continue;
    }
    ++p;
    while (p < tag.size() && std::isspace(static_cast<unsigned char>(tag[p])))
      ++p;
    if (p >= tag.size()) return {};
    if (tag[p] == '"' || tag[p] == '\'') {
      char q = tag[p];
      auto end = tag.find(q, p + 1);
      return html_unescape(
          tag.substr(p + 1, end == std::string_view::npos ? tag.npos : end - p - 1));
    }
    std::size_t end = p;
    while (end < tag.size() && !std::isspace(static_cast<unsigned char>(tag[end])))
      ++end;
    return html_unescape(tag.substr(p, end - p));
  }
  return {};
}

// Text of HTML with tags removed, whitespace collapsed.
std::string strip_tags(std::string_view html) {
  std::string out;
  bool in_tag = false;
  for (char c : html) {
    if (c == '<')
      in_tag = true;
    else if (c == '>')
      in_tag = false;
    else if (!in_tag)
      out += c;
  }
  return collapse_space(html_unescape(out));
}

void push_uri(std::string text, std::string link_text, bool html, std::vector<uri>& out) {
  if (text.size() > 2048) text.resize(2048);
  uri u;
  u.host = uri_host(text);
  u.text = std::move(text);
  u.link_text = std::move(link_text);
  u.from_html = html;
  out.push_back(std::move(u));
}

}  // namespace

const std::string* scan_input::header(std::string_view name) const {
  for (const auto& [n, v] : headers)
    if (iequals(n, name)) return &v;
  return nullptr;
}

std::vector<std::pair<std::string, std::string>> split_headers(std::string_view block,
                                                               std::size_t limit) {
  std::vector<std::pair<std::string, std::string>> out;
  if (block.size() > limit) block = block.substr(0, limit);
  std::size_t pos = 0;
  while (pos < block.size()) {
    auto eol = block.find('\n', pos);
    std::string_view line =
        block.substr(pos, eol == std::string_view::npos ? block.npos : eol - pos);
    pos = eol == std::string_view::npos ? block.size() : eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of the header block
    if ((line.front() == ' ' || line.front() == '\t')) {
      if (!out.empty()) {
        out.back().second += ' ';
        out.back().second += trim(line);
      }
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    out.emplace_back(trim(line.substr(0, colon)), trim(line.substr(colon + 1)));
  }
  return out;
}

std::string uri_host(std::string_view u) {
  std::size_t start = 0;
  auto scheme = u.find("://");
  if (scheme != std::string_view::npos && scheme < 16) {
    start = scheme + 3;
  } else if (u.size() >= 4 && iequals(u.substr(0, 4), "www.")) {
    start = 0;
  } else {
    return {};
  }
  std::string_view rest = u.substr(start);
  auto end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, end);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    authority = authority.substr(0, close == std::string_view::npos ? authority.npos : close + 1);
  } else if (auto colon = authority.find(':'); colon != std::string_view::npos) {
    authority = authority.substr(0, colon);
  }
  std::string host;
  for (char c : authority)
    host += lower(c);
  while (!host.empty() && host.back() == '.')
    host.pop_back();
  return host;
}

bool is_ip_literal(std::string_view host) {
  if (host.empty()) return false;
  if (host.front() == '[') return true;
  // Dotted quad, or the integer / hex / octal spellings browsers accept (http://3232235777/).
  bool all_num = true;
  for (char c : host) {
    if (!(std::isxdigit(static_cast<unsigned char>(c)) || c == '.' || c == 'x' || c == 'X')) {
      all_num = false;
      break;
    }
  }
  if (!all_num) return false;
  // Every dot-separated label must be a number: decimal, or 0x-prefixed hex.
  std::size_t pos = 0;
  int labels = 0;
  while (pos <= host.size()) {
    auto dot = host.find('.', pos);
    std::string_view label =
        host.substr(pos, dot == std::string_view::npos ? host.npos : dot - pos);
    if (label.empty()) return false;
    ++labels;
    if (label.size() > 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X')) {
      for (char c : label.substr(2))
        if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
    } else {
      for (char c : label)
        if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    }
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  return labels >= 1 && labels <= 4;
}

std::string base_domain(std::string_view host) {
  if (is_ip_literal(host)) return std::string(host);
  std::vector<std::string_view> labels;
  std::size_t pos = 0;
  while (pos <= host.size()) {
    auto dot = host.find('.', pos);
    labels.push_back(host.substr(pos, dot == std::string_view::npos ? host.npos : dot - pos));
    if (dot == std::string_view::npos) break;
    pos = dot + 1;
  }
  if (labels.size() <= 2) return std::string(host);
  std::string_view sld = labels[labels.size() - 2];
  static constexpr std::string_view generic[] = {"co",  "com", "net", "org", "gov", "ac",
                                                 "edu", "ne",  "or",  "gv",  "ltd", "plc"};
  std::size_t keep = 2;
  if (labels.back().size() == 2 &&
      std::find(std::begin(generic), std::end(generic), sld) != std::end(generic)) {
    keep = 3;
  }
  std::string out;
  for (std::size_t i = labels.size() - keep; i < labels.size(); ++i) {
    if (!out.empty()) out += '.';
    out += labels[i];
  }
  return out;
}

void extract_text_uris(std::string_view text, std::size_t max, std::vector<uri>& out) {
  // One pass: at each ':' or "www." look back/ahead for a scheme (http, https, ftp).
  std::size_t pos = 0;
  while (out.size() < max && pos < text.size()) {
    std::size_t start = std::string_view::npos;
    for (std::size_t i = pos; i < text.size(); ++i) {
      char c = text[i];
      if (c == ':' && i + 2 < text.size() && text[i + 1] == '/' && text[i + 2] == '/') {
        std::size_t s = i;
        while (s > pos && s + 6 > i && std::isalpha(static_cast<unsigned char>(text[s - 1])))
          --s;
        std::string_view scheme = text.substr(s, i - s);
        if (iequals(scheme, "http") || iequals(scheme, "https") || iequals(scheme, "ftp")) {
          start = s;
          break;
        }
      } else if ((c == 'w' || c == 'W') && i + 4 <= text.size() &&
                 iequals(text.substr(i, 4), "www.") &&
                 (i == 0 || !uri_char(static_cast<unsigned char>(text[i - 1])))) {
        start = i;
        break;
      }
    }
    if (start == std::string_view::npos) break;
    std::size_t end = start;
    while (end < text.size() && uri_char(static_cast<unsigned char>(text[end])))
      ++end;
    std::string_view u = text.substr(start, end - start);
    while (!u.empty() && (u.back() == '.' || u.back() == ',' || u.back() == ')' ||
                          u.back() == ';' || u.back() == ':' || u.back() == '!' || u.back() == '?'))
      u.remove_suffix(1);
    if (u.size() > 4) push_uri(std::string(u), {}, false, out);
    pos = end > start ? end : start + 1;
  }
}

void extract_html_uris(std::string_view html, std::size_t max, std::vector<uri>& out) {
  std::size_t pos = 0;
  while (out.size() < max) {
    auto lt = html.find('<', pos);
    if (lt == std::string_view::npos) break;
    auto gt = html.find('>', lt);
    if (gt == std::string_view::npos) break;
    std::string_view tag = html.substr(lt + 1, gt - lt - 1);
    pos = gt + 1;
    std::size_t name_end = 0;
    while (name_end < tag.size() && std::isalpha(static_cast<unsigned char>(tag[name_end])))
      ++name_end;
    std::string_view name = tag.substr(0, name_end);
    if (iequals(name, "a") || iequals(name, "area")) {
      std::string href = trim(attribute(tag, "href"));
      if (href.empty()) continue;
      std::string text;
      if (iequals(name, "a")) {
        auto close = ifind(html, "</a", pos);
        std::string_view inner = html.substr(
            pos, close == std::string_view::npos ? std::min<std::size_t>(4096, html.size() - pos)
                                                 : close - pos);
        if (inner.size() > 4096) inner = inner.substr(0, 4096);
        text = strip_tags(inner);
      }
      push_uri(std::move(href), std::move(text), true, out);
    } else if (iequals(name, "img") || iequals(name, "form") || iequals(name, "iframe")) {
      std::string v = trim(attribute(tag, iequals(name, "form") ? "action" : "src"));
      if (!v.empty()) push_uri(std::move(v), {}, true, out);
    }
  }
}

scan_input make_scan_input(std::string_view header_block, parsed_message view,
                           std::size_t recipients, const scan_limits& limits) {
  scan_input in;
  in.headers = split_headers(header_block, limits.max_header_bytes);
  in.header_block.reserve(header_block.size());
  for (const auto& [n, v] : in.headers) {
    in.header_block += n;
    in.header_block += ": ";
    in.header_block += v;
    in.header_block += '\n';
  }
  in.view = std::move(view);
  in.recipients = recipients;
  const parsed_message& v = in.view;
  auto bounded = [&](const std::string& s) {
    return std::string_view(s).substr(0, std::min(s.size(), limits.max_body_bytes));
  };
  in.body.reserve(v.subject.size() + std::min(v.text.size(), limits.max_body_bytes) + 2 +
                  (v.html.empty() ? 0 : std::min(v.search_text.size(), limits.max_body_bytes)));
  in.body += v.subject;
  in.body += '\n';
  in.body += bounded(v.text);
  if (!v.html.empty()) {
    in.body += '\n';
    in.body += bounded(v.search_text);
  }
  extract_text_uris(bounded(v.text), limits.max_uris, in.uris);
  if (!v.html.empty()) extract_html_uris(bounded(v.html), limits.max_uris, in.uris);
  return in;
}

scan_input make_scan_input(const message& msg, const scan_limits& limits) {
  std::string headers = msg.output_headers();
  parsed_message view;
  bool have_view = false;
  if (const auto* m = msg.attributes.if_contains("mime"); m && m->is_object()) {
    view = parsed_message_from_json(m->get_object());
    have_view = true;
  }
  scan_input in = make_scan_input(headers, std::move(view), msg.envelope.recipients.size(), limits);
  in.have_view = have_view;
  if (!have_view) {
    // Without the mime stage: body rules see the raw body (undecoded), header rules work.
    if (const auto* s = in.header("Subject")) in.view.subject = *s;
    if (const auto* s = in.header("Message-ID")) in.view.message_id = *s;
    std::string raw;
    std::error_code ec;
    std::size_t want = std::min<std::uint64_t>(msg.raw ? msg.raw->size() : 0,
                                               limits.max_body_bytes + headers.size());
    raw.resize(want);
    if (want) raw.resize(msg.raw->read(0, raw, ec));
    auto sep = raw.find("\r\n\r\n");
    std::size_t skip = sep == std::string::npos ? raw.find("\n\n") : sep;
    in.raw_prefix = skip == std::string::npos ? raw : raw.substr(skip);
    in.body = in.view.subject + "\n" + in.raw_prefix;
    extract_text_uris(in.raw_prefix, limits.max_uris, in.uris);
  }
  if (const auto* a = msg.attributes.if_contains("auth"); a && a->is_object()) {
    in.auth = a->get_object();
  }
  return in;
}

}  // namespace sluice::spam
