// plugins/relay/src/protocol.cpp — see protocol.hpp. The CRAM-MD5 digest comes from the SDK
// (sluice/sasl.hpp).
#include "protocol.hpp"

#include <algorithm>
#include <charconv>

#include "sluice/sasl.hpp"
#include "sluice/text.hpp"

namespace sluice::relay {

namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return out;
}

}  // namespace

std::string smtp_reply::text() const {
  std::string out;
  for (const auto& l : lines) {
    if (!out.empty()) out += " / ";
    out += l;
    if (out.size() > 900) break;
  }
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  if (out.size() > 900) out.resize(900);
  return out;
}

std::string smtp_reply::summary() const {
  if (code == 0) return "no reply";
  return std::to_string(code) + " " + text();
}

std::string enhanced_code_of(std::string_view line) {
  // class "." subject "." detail: class 2/4/5, subject 1-3 digits, detail 1-3 digits.
  if (line.size() < 5 || (line[0] != '2' && line[0] != '4' && line[0] != '5') || line[1] != '.')
    return {};
  std::size_t i = 2, n = 0;
  while (i < line.size() && is_digit(line[i]) && n < 3)
    ++i, ++n;
  if (n == 0 || i >= line.size() || line[i] != '.') return {};
  ++i;
  n = 0;
  while (i < line.size() && is_digit(line[i]) && n < 3)
    ++i, ++n;
  if (n == 0) return {};
  if (i < line.size() && line[i] != ' ') return {};
  return std::string(line.substr(0, i));
}

reply_parser::status reply_parser::next(smtp_reply& out, std::string& error) {
  for (;;) {
    std::size_t eol = buf_.find('\n');
    if (eol == std::string::npos) {
      if (buf_.size() > max_line_) {
        error = "reply line longer than " + std::to_string(max_line_) + " bytes";
        return status::error;
      }
      return status::incomplete;
    }
    std::string_view line(buf_.data(), eol);
    if (line.ends_with('\r')) line.remove_suffix(1);
    if (line.size() > max_line_) {
      error = "reply line longer than " + std::to_string(max_line_) + " bytes";
      return status::error;
    }
    // RFC 5321 §4.2: Reply-code [ SP / "-" textstring ]; a bare code is allowed.
    if (line.size() < 3 || !is_digit(line[0]) || !is_digit(line[1]) || !is_digit(line[2]) ||
        line[0] < '2' || line[0] > '5' || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      error = "malformed reply line \"" + std::string(line.substr(0, 80)) + "\"";
      return status::error;
    }
    int code = 0;
    std::from_chars(line.data(), line.data() + 3, code);
    if (!lines_.empty() && code != code_) {
      error = "reply code changed within a multiline reply";
      return status::error;
    }
    code_ = code;
    const bool more = line.size() > 3 && line[3] == '-';
    lines_.emplace_back(line.size() > 4 ? line.substr(4) : std::string_view());
    buf_.erase(0, eol + 1);
    if (lines_.size() > max_lines_) {
      error = "reply of more than " + std::to_string(max_lines_) + " lines";
      return status::error;
    }
    if (more) continue;
    out.code = code_;
    out.lines = std::move(lines_);
    lines_.clear();
    out.enhanced =
        (code_ >= 200 && !out.lines.empty()) ? enhanced_code_of(out.lines.front()) : std::string();
    // The enhanced code's class must agree with the basic code's (RFC 3463 §2).
    if (!out.enhanced.empty() && out.enhanced[0] != static_cast<char>('0' + code_ / 100))
      out.enhanced.clear();
    return status::complete;
  }
}

std::uint64_t capabilities::size_limit() const {
  auto it = keywords.find("SIZE");
  if (it == keywords.end()) return 0;
  std::uint64_t v = 0;
  auto s = trim(it->second);
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return 0;
  return v;
}

std::vector<std::string> capabilities::auth_mechanisms() const {
  std::vector<std::string> out;
  for (const char* key : {"AUTH", "AUTH="}) {
    auto it = keywords.find(key);
    if (it == keywords.end()) continue;
    std::string_view s = it->second;
    while (!s.empty()) {
      auto sp = s.find(' ');
      auto word = s.substr(0, sp);
      if (!word.empty()) {
        auto u = upper(word);
        if (std::find(out.begin(), out.end(), u) == out.end()) out.push_back(u);
      }
      if (sp == std::string_view::npos) break;
      s.remove_prefix(sp + 1);
    }
  }
  return out;
}

capabilities parse_ehlo(const smtp_reply& r) {
  capabilities c;
  c.esmtp = true;
  // The first line is the greeting ("mx.example.com Hello …"), keywords follow.
  for (std::size_t i = 1; i < r.lines.size(); ++i) {
    std::string_view l = trim(r.lines[i]);
    if (l.empty()) continue;
    std::size_t sep = l.find_first_of(" =");
    std::string key = upper(l.substr(0, sep));
    std::string value;
    if (sep != std::string_view::npos) {
      if (l[sep] == '=') key += "=";  // the pre-standard "AUTH=LOGIN PLAIN"
      value = std::string(trim(l.substr(sep + 1)));
    }
    c.keywords[key] = value;
  }
  return c;
}

void dot_stuffer::encode(std::string_view in, std::string& out) {
  out.reserve(out.size() + in.size() + in.size() / 64 + 8);
  for (char c : in) {
    if (pending_cr_) {
      pending_cr_ = false;
      out += "\r\n";
      line_start_ = true;
      if (c == '\n') continue;  // CRLF
      // A bare CR ended a line: fall through with c as the next line's first byte.
    }
    if (c == '\r') {
      pending_cr_ = true;
      continue;
    }
    if (c == '\n') {  // bare LF
      out += "\r\n";
      line_start_ = true;
      continue;
    }
    if (line_start_ && c == '.') out += '.';
    out += c;
    line_start_ = false;
  }
}

std::string dot_stuffer::finish() {
  std::string out;
  if (pending_cr_) {
    out += "\r\n";
    pending_cr_ = false;
    line_start_ = true;
  }
  if (!line_start_) out += "\r\n";
  out += ".\r\n";
  line_start_ = true;
  return out;
}

std::string sasl_plain(std::string_view authzid, std::string_view user, std::string_view password) {
  std::string m;
  m.append(authzid);
  m += '\0';
  m.append(user);
  m += '\0';
  m.append(password);
  return m;
}

std::string cram_md5_response(std::string_view user, std::string_view password,
                              std::string_view challenge) {
  return std::string(user) + ' ' + sasl::cram_md5_digest(password, challenge);
}

std::string xoauth2(std::string_view user, std::string_view token) {
  std::string s = "user=";
  s.append(user);
  s += '\x01';
  s += "auth=Bearer ";
  s.append(token);
  s += "\x01\x01";
  return s;
}

std::string_view to_string(mechanism m) {
  switch (m) {
    case mechanism::plain:
      return "PLAIN";
    case mechanism::login:
      return "LOGIN";
    case mechanism::cram_md5:
      return "CRAM-MD5";
    case mechanism::xoauth2:
      return "XOAUTH2";
  }
  return "PLAIN";
}

std::optional<mechanism> mechanism_from_string(std::string_view s) {
  auto u = upper(s);
  if (u == "PLAIN") return mechanism::plain;
  if (u == "LOGIN") return mechanism::login;
  if (u == "CRAM-MD5") return mechanism::cram_md5;
  if (u == "XOAUTH2") return mechanism::xoauth2;
  return std::nullopt;
}

std::optional<mechanism> choose_mechanism(const std::vector<std::string>& offered, bool have_token,
                                          bool have_password) {
  auto has = [&](std::string_view m) {
    return std::find(offered.begin(), offered.end(), m) != offered.end();
  };
  if (have_token && has("XOAUTH2")) return mechanism::xoauth2;
  if (!have_password) return std::nullopt;
  if (has("CRAM-MD5")) return mechanism::cram_md5;
  if (has("PLAIN")) return mechanism::plain;
  if (has("LOGIN")) return mechanism::login;
  return std::nullopt;
}

recipient_filter::recipient_filter(const std::vector<std::string>& allowed,
                                   const std::vector<std::string>& blocked) {
  constexpr auto flags = std::regex::ECMAScript | std::regex::icase | std::regex::optimize;
  for (const auto& p : allowed)
    allowed_.emplace_back(p, flags);
  for (const auto& p : blocked)
    blocked_.emplace_back(p, flags);
}

recipient_filter::result recipient_filter::check(std::string_view address) const {
  const std::string a(address);
  for (const auto& re : blocked_)
    if (std::regex_search(a, re)) return result::blocked;
  if (allowed_.empty()) return result::pass;
  for (const auto& re : allowed_)
    if (std::regex_search(a, re)) return result::pass;
  return result::not_allowed;
}

bool needs_utf8(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string d = to_lower_ascii(address.substr(at + 1));
  while (!d.empty() && d.back() == '.')
    d.pop_back();
  return d;
}

bool safe_path(std::string_view address) {
  if (address.size() > 512) return false;
  return std::none_of(address.begin(), address.end(), [](char c) {
    return c == '\r' || c == '\n' || c == '\0' || c == '<' || c == '>';
  });
}

}  // namespace sluice::relay
