// plugins/smtp/src/command.cpp — see command.hpp. Pure, allocation-free, noexcept.
#include "command.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <limits>

namespace sluice::smtp {
namespace {

bool is_blank(char c) noexcept {
  return c == ' ' || c == '\t';
}

struct verb_name {
  std::string_view name;
  verb v;
};

constexpr std::array<verb_name, 16> verbs{{
    {"helo", verb::helo},
    {"ehlo", verb::ehlo},
    {"lhlo", verb::lhlo},
    {"mail", verb::mail},
    {"rcpt", verb::rcpt},
    {"data", verb::data},
    {"bdat", verb::bdat},
    {"rset", verb::rset},
    {"noop", verb::noop},
    {"quit", verb::quit},
    {"vrfy", verb::vrfy},
    {"expn", verb::expn},
    {"help", verb::help},
    {"starttls", verb::starttls},
    {"auth", verb::auth},
    {"xclient", verb::xclient},
}};

// RFC 5322 atext, plus bytes >= 0x80 (RFC 6532 UTF-8, validated separately).
bool is_atext(unsigned char c) noexcept {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
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
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool valid_dot_atom(std::string_view s) noexcept {
  if (s.empty() || s.front() == '.' || s.back() == '.') return false;
  char prev = 0;
  for (char c : s) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!is_atext(static_cast<unsigned char>(c))) {
      return false;
    }
    prev = c;
  }
  return true;
}

bool valid_quoted_local(std::string_view s) noexcept {
  // s includes the quotes.
  if (s.size() < 2 || s.front() != '"' || s.back() != '"') return false;
  for (std::size_t i = 1; i + 1 < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '\\') {
      if (i + 2 >= s.size()) return false;  // the escape would eat the closing quote
      auto n = static_cast<unsigned char>(s[++i]);
      if (n < 0x20 || n == 0x7f) return false;
      continue;
    }
    if (c == '"' || c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

// inet_pton on a view (it wants a NUL-terminated string).
bool parses_as(int family, std::string_view s) noexcept {
  char buf[INET6_ADDRSTRLEN + 1];
  if (s.empty() || s.size() >= sizeof buf) return false;
  s.copy(buf, s.size());
  buf[s.size()] = '\0';
  unsigned char out[sizeof(in6_addr)];
  return ::inet_pton(family, buf, out) == 1;
}

// RFC 5321 §4.1.3: an IPv4-address-literal or "IPv6:" IPv6-addr. `inner` is what the
// brackets hold. A General-address-literal needs a tag registered with IANA, and none is;
// its dcontent could carry '(' or ';' into the Received field, so it is refused.
bool valid_address_literal(std::string_view inner) noexcept {
  if (parses_as(AF_INET, inner)) return true;
  return inner.size() > 5 && iequals(inner.substr(0, 5), "IPv6:") &&
         parses_as(AF_INET6, inner.substr(5));
}

bool valid_domain(std::string_view d) noexcept {
  if (d.empty() || d.size() > 255) return false;
  if (d.front() == '[') {  // address literal: [1.2.3.4] or [IPv6:...]
    if (d.back() != ']' || d.size() < 3) return false;
    return valid_address_literal(d.substr(1, d.size() - 2));
  }
  std::size_t label = 0;
  char prev = '.';
  for (char c : d) {
    auto u = static_cast<unsigned char>(c);
    if (c == '.') {
      if (prev == '.' || prev == '-') return false;
      label = 0;
    } else if (u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               (c >= '0' && c <= '9') || c == '_') {
      ++label;
    } else if (c == '-') {
      if (prev == '.') return false;
      ++label;
    } else {
      return false;
    }
    if (label > 63) return false;
    prev = c;
  }
  return prev != '-';
}

// Finds the index of the '@' that separates local part and domain (outside quotes).
std::size_t find_at(std::string_view s) noexcept {
  bool quoted = false;
  std::size_t at = std::string_view::npos;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted && s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == '"')
      quoted = !quoted;
    else if (!quoted && s[i] == '@')
      at = i;
  }
  return quoted ? std::string_view::npos : at;
}

bool is_esmtp_keyword(std::string_view k) noexcept {
  if (k.empty()) return false;
  for (char c : k) {
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return false;
  }
  return k.front() != '-';
}

}  // namespace

bool istarts_with(std::string_view s, std::string_view prefix) noexcept {
  return s.size() >= prefix.size() && iequals(s.substr(0, prefix.size()), prefix);
}

command parse_command(std::string_view line) noexcept {
  command cmd;
  line = trim(line);
  std::size_t end = 0;
  while (end < line.size() && !is_blank(line[end]))
    ++end;
  cmd.name = line.substr(0, end);
  cmd.args = trim(line.substr(end));
  for (const auto& v : verbs) {
    if (iequals(cmd.name, v.name)) {
      cmd.verb = v.v;
      break;
    }
  }
  return cmd;
}

bool valid_mailbox(std::string_view address, bool allow_postmaster) noexcept {
  if (address.empty() || address.size() > 320) return false;
  if (allow_postmaster && iequals(address, "postmaster")) return true;
  std::size_t at = find_at(address);
  if (at == std::string_view::npos || at == 0 || at + 1 >= address.size()) return false;
  std::string_view local = address.substr(0, at);
  std::string_view domain = address.substr(at + 1);
  if (local.size() > 128) return false;
  bool local_ok = local.front() == '"' ? valid_quoted_local(local) : valid_dot_atom(local);
  return local_ok && valid_domain(domain);
}

path_status parse_path(std::string_view args, std::string_view keyword, path_args& out) noexcept {
  out = path_args{};
  // "FROM:" (keyword then colon), possibly followed by blanks.
  if (!istarts_with(args, keyword)) return path_status::missing_keyword;
  args.remove_prefix(keyword.size());
  while (!args.empty() && is_blank(args.front()))
    args.remove_prefix(1);
  if (args.empty() || args.front() != ':') return path_status::missing_keyword;
  args.remove_prefix(1);
  while (!args.empty() && is_blank(args.front()))
    args.remove_prefix(1);
  if (args.empty()) return path_status::bad_address;

  std::string_view path;
  std::string_view rest;
  if (args.front() == '<') {
    // Find the closing '>' outside a quoted local part.
    bool quoted = false;
    std::size_t close = std::string_view::npos;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (quoted && args[i] == '\\') {
        ++i;
        continue;
      }
      if (args[i] == '"')
        quoted = !quoted;
      else if (!quoted && args[i] == '>') {
        close = i;
        break;
      }
    }
    if (close == std::string_view::npos) return path_status::bad_address;
    path = args.substr(1, close - 1);
    rest = args.substr(close + 1);
    if (!rest.empty() && !is_blank(rest.front())) return path_status::bad_address;
  } else {
    // Lenient: a bare mailbox (no brackets) ends at the first blank.
    std::size_t end = 0;
    while (end < args.size() && !is_blank(args[end]))
      ++end;
    path = args.substr(0, end);
    rest = args.substr(end);
  }

  if (path.empty()) {
    out.null_path = true;
  } else {
    // Strip an obsolete source route "@a,@b:" (RFC 5321 §4.1.2: accept and ignore).
    if (path.front() == '@') {
      std::size_t colon = path.find(':');
      if (colon == std::string_view::npos) return path_status::bad_address;
      path.remove_prefix(colon + 1);
    }
    for (char c : path) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f) return path_status::bad_address;
      if (u >= 0x80) out.has_8bit = true;
    }
    if (out.has_8bit && !valid_utf8(path)) return path_status::bad_address;
    out.address = path;
  }

  // Parameters: blank-separated keyword[=value].
  while (true) {
    while (!rest.empty() && is_blank(rest.front()))
      rest.remove_prefix(1);
    if (rest.empty()) break;
    std::size_t end = 0;
    while (end < rest.size() && !is_blank(rest[end]))
      ++end;
    std::string_view item = rest.substr(0, end);
    rest.remove_prefix(end);
    if (out.param_count == max_esmtp_params) return path_status::too_many_params;
    esmtp_param p;
    std::size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      p.keyword = item;
    } else {
      p.keyword = item.substr(0, eq);
      p.value = item.substr(eq + 1);
      p.has_value = true;
      for (char c : p.value) {
        auto u = static_cast<unsigned char>(c);
        // esmtp-value: any CHAR except "=", SP and controls (RFC 5321 §4.1.2); UTF-8 allowed
        // by RFC 6531.
        if (u < 0x21 || c == '=' || u == 0x7f) return path_status::bad_params;
      }
    }
    if (!is_esmtp_keyword(p.keyword)) return path_status::bad_params;
    out.params[out.param_count++] = p;
  }
  return path_status::ok;
}

bool parse_bdat(std::string_view args, bdat_args& out) noexcept {
  out = bdat_args{};
  std::size_t i = 0;
  if (args.empty()) return false;
  std::uint64_t v = 0;
  while (i < args.size() && args[i] >= '0' && args[i] <= '9') {
    std::uint64_t d = static_cast<std::uint64_t>(args[i] - '0');
    if (v > (std::numeric_limits<std::int64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  if (i == 0 || i > 19) return false;
  out.size = v;
  std::string_view rest = args.substr(i);
  if (rest.empty()) return true;
  if (!is_blank(rest.front())) return false;
  rest = trim(rest);
  if (!iequals(rest, "last")) return false;
  out.last = true;
  return true;
}

bool valid_helo_argument(std::string_view arg) noexcept {
  return valid_domain(arg) && valid_utf8(arg);
}

bool valid_utf8(std::string_view s) noexcept {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

}  // namespace sluice::smtp
