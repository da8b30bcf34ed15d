// spf.cpp — RFC 7208 check_host(): record selection and parsing, mechanisms, modifiers,
// macros, the lookup limits. See spf.hpp for the contract.
//
// The record is parsed completely before anything is evaluated (§4.6: a syntax error
// anywhere is a permerror, even after a matching mechanism). Evaluation is one coroutine
// per check_host() level; include and redirect recurse with the same counters, so the
// limits of §4.6.4 bound the recursion (10 lookups: at most 11 nested levels).
#include "spf.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>
#include <variant>
#include <vector>

#include <boost/asio/ip/address.hpp>

#include "sluice/text.hpp"

namespace sluice::auth::spf {
namespace {

namespace asio = boost::asio;

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_alnum(char c) {
  return is_alpha(c) || is_digit(c);
}

// ---------------------------------------------------------------- addresses

struct ip_value {
  bool v6 = false;
  std::array<unsigned char, 16> bytes{};  // v4: the first 4 bytes
};

std::optional<ip_value> parse_ip(std::string_view text) {
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(std::string(text), ec);
  if (ec) return std::nullopt;
  ip_value v;
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    // RFC 7208 §5: an IPv4-mapped IPv6 client is evaluated as the IPv4 address.
    addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
  }
  if (addr.is_v4()) {
    auto b = addr.to_v4().to_bytes();
    std::copy(b.begin(), b.end(), v.bytes.begin());
  } else {
    v.v6 = true;
    v.bytes = addr.to_v6().to_bytes();
  }
  return v;
}

bool prefix_match(const ip_value& a, const ip_value& net, unsigned bits) {
  if (a.v6 != net.v6) return false;
  unsigned full = bits / 8;
  for (unsigned i = 0; i < full; ++i)
    if (a.bytes[i] != net.bytes[i]) return false;
  unsigned rest = bits % 8;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a.bytes[full] & mask) == (net.bytes[full] & mask);
}

std::string ip_text(const ip_value& ip) {
  if (!ip.v6) {
    return std::to_string(ip.bytes[0]) + "." + std::to_string(ip.bytes[1]) + "." +
           std::to_string(ip.bytes[2]) + "." + std::to_string(ip.bytes[3]);
  }
  return asio::ip::address_v6(ip.bytes).to_string();
}

// %{i}: dotted quad, or 32 dot-separated nibbles for IPv6 (§7.3).
std::string ip_macro(const ip_value& ip) {
  if (!ip.v6) return ip_text(ip);
  static const char* hex = "0123456789abcdef";
  std::string r;
  for (unsigned char b : ip.bytes) {
    if (!r.empty()) r += '.';
    r += hex[b >> 4];
    r += '.';
    r += hex[b & 15];
  }
  return r;
}

// ---------------------------------------------------------------- names

// A name we can query: labels of 1–63 octets, at most 253 in all (a trailing dot is
// allowed), and at least two labels.
bool queryable(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return false;
  std::size_t labels = 0, start = 0;
  while (true) {
    std::size_t dot = name.find('.', start);
    std::size_t len = (dot == std::string_view::npos ? name.size() : dot) - start;
    if (len == 0 || len > 63) return false;
    ++labels;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  return labels >= 2;
}

std::string strip_dot(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum )
bool toplabel(std::string_view l) {
  if (l.empty()) return false;
  bool alpha = false, hyphen = false;
  for (char c : l) {
    if (is_alpha(c)) {
      alpha = true;
    } else if (c == '-') {
      hyphen = true;
    } else if (!is_digit(c)) {
      return false;
    }
  }
  if (hyphen) return l.front() != '-' && l.back() != '-';
  return alpha;
}

// ---------------------------------------------------------------- macros (§7)

struct macro_values {
  std::string sender, local, sender_domain, domain, ip, ip_readable, helo, receiver, version;
  std::int64_t now = 0;
  std::optional<std::string> ptr;  // %{p}, computed on demand
};

bool delimiter(char c) {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}

std::string url_escape(std::string_view s) {
  std::string r;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (is_alnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
      r += ch;
    } else {
      r += '%';
      append_hex(r, c);
    }
  }
  return r;
}

// Checks the syntax of a macro-string (explain: explain-string, which also allows SP and
// the letters c, r, t). Sets uses_p when %{p} appears.
bool macro_syntax(std::string_view s, bool explain, bool* uses_p = nullptr) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '%') {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u > 0x7e) return false;
      if (u == 0x20 && !explain) return false;
      continue;
    }
    if (++i >= s.size()) return false;
    char d = s[i];
    if (d == '%' || d == '_' || d == '-') continue;
    if (d != '{') return false;
    if (++i >= s.size()) return false;
    char letter = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
    if (std::string_view("slodiphcrtv").find(letter) == std::string_view::npos) return false;
    if (!explain && (letter == 'c' || letter == 'r' || letter == 't')) return false;
    if (letter == 'p' && uses_p) *uses_p = true;
    ++i;
    std::size_t digits = 0;
    while (i < s.size() && is_digit(s[i])) {
      ++i;
      ++digits;
    }
    if (digits > 3) return false;
    if (digits > 0 && std::stoi(std::string(s.substr(i - digits, digits))) == 0) return false;
    if (i < s.size() && (s[i] == 'r' || s[i] == 'R')) ++i;
    while (i < s.size() && delimiter(s[i]))
      ++i;
    if (i >= s.size() || s[i] != '}') return false;
  }
  return true;
}

// Expands a syntactically valid macro-string (macro_syntax() returned true).
std::string macro_expand(std::string_view s, const macro_values& v) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c != '%') {
      out += c;
      continue;
    }
    char d = s[++i];
    if (d == '%') {
      out += '%';
      continue;
    }
    if (d == '_') {
      out += ' ';
      continue;
    }
    if (d == '-') {
      out += "%20";
      continue;
    }
    char raw_letter = s[++i];
    char letter = static_cast<char>(std::tolower(static_cast<unsigned char>(raw_letter)));
    ++i;
    std::size_t keep = 0;
    while (is_digit(s[i]))
      keep = keep * 10 + static_cast<std::size_t>(s[i++] - '0');
    bool reverse = false;
    if (s[i] == 'r' || s[i] == 'R') {
      reverse = true;
      ++i;
    }
    std::string delims;
    while (delimiter(s[i]))
      delims += s[i++];
    if (delims.empty()) delims = ".";
    std::string value;
    switch (letter) {
      case 's':
        value = v.sender;
        break;
      case 'l':
        value = v.local;
        break;
      case 'o':
        value = v.sender_domain;
        break;
      case 'd':
        value = v.domain;
        break;
      case 'i':
        value = v.ip;
        break;
      case 'p':
        value = v.ptr.value_or("unknown");
        break;
      case 'h':
        value = v.helo;
        break;
      case 'c':
        value = v.ip_readable;
        break;
      case 'r':
        value = v.receiver;
        break;
      case 't':
        value = std::to_string(v.now);
        break;
      case 'v':
        value = v.version;
        break;
      default:
        break;
    }
    // Split on the delimiters, reverse, keep the rightmost parts, join with "." (§7.3).
    std::vector<std::string> parts;
    std::string cur;
    for (char ch : value) {
      if (delims.find(ch) != std::string::npos) {
        parts.push_back(std::move(cur));
        cur.clear();
      } else {
        cur += ch;
      }
    }
    parts.push_back(std::move(cur));
    if (reverse) std::reverse(parts.begin(), parts.end());
    if (keep > 0 && keep < parts.size()) parts.erase(parts.begin(), parts.end() - keep);
    std::string joined;
    for (std::size_t k = 0; k < parts.size(); ++k) {
      if (k) joined += '.';
      joined += parts[k];
    }
    out += std::isupper(static_cast<unsigned char>(raw_letter)) ? url_escape(joined) : joined;
  }
  return out;
}

// domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand
bool domain_spec_syntax(std::string_view s, bool* uses_p) {
  if (s.empty() || !macro_syntax(s, false, uses_p)) return false;
  if (s.back() == '}') return true;  // ends in %{...}
  if (s.size() >= 2 && s[s.size() - 2] == '%' &&
      (s.back() == '%' || s.back() == '_' || s.back() == '-')) {
    // "%%" etc. are macro-expand too, unless the '%' is itself escaped ("%%%").
    std::size_t n = 0;
    for (std::size_t k = s.size() - 1; k-- > 0 && s[k] == '%';)
      ++n;
    if (n % 2 == 1) return true;
  }
  std::string_view t = s;
  if (t.back() == '.') t.remove_suffix(1);
  std::size_t dot = t.rfind('.');
  if (dot == std::string_view::npos) return false;
  return toplabel(t.substr(dot + 1));
}

// After expansion: drop labels from the left until at most 253 octets remain (§7.3),
// and strip a trailing dot.
std::string finish_domain(std::string d) {
  d = strip_dot(std::move(d));
  while (d.size() > 253) {
    std::size_t dot = d.find('.');
    if (dot == std::string::npos) break;
    d.erase(0, dot + 1);
  }
  return d;
}

// ---------------------------------------------------------------- records

enum class mech { all, include, a, mx, ptr, ip4, ip6, exists };

struct directive {
  result qualifier = result::pass;
  mech kind = mech::all;
  std::string domain_spec;  // empty: the current domain
  unsigned cidr4 = 32, cidr6 = 128;
  ip_value net;
  std::string text;  // the term as written, for the reason
};

struct record {
  std::vector<directive> directives;
  std::optional<std::string> redirect, exp;
  bool uses_p = false;  // some domain-spec uses %{p}
};

bool parse_cidr(std::string_view digits, unsigned max, unsigned& out) {
  if (digits.empty() || digits.size() > 3) return false;
  for (char c : digits)
    if (!is_digit(c)) return false;
  if (digits.size() > 1 && digits[0] == '0') return false;
  unsigned v = static_cast<unsigned>(std::stoul(std::string(digits)));
  if (v > max) return false;
  out = v;
  return true;
}

// ip4-network: four qnums, no leading zeros.
bool parse_ip4_network(std::string_view s, ip_value& out) {
  unsigned parts = 0;
  std::size_t i = 0;
  while (parts < 4) {
    std::size_t start = i;
    while (i < s.size() && is_digit(s[i]))
      ++i;
    std::string_view num = s.substr(start, i - start);
    if (num.empty() || num.size() > 3 || (num.size() > 1 && num[0] == '0')) return false;
    unsigned v = static_cast<unsigned>(std::stoul(std::string(num)));
    if (v > 255) return false;
    out.bytes[parts++] = static_cast<unsigned char>(v);
    if (parts < 4) {
      if (i >= s.size() || s[i] != '.') return false;
      ++i;
    }
  }
  out.v6 = false;
  return i == s.size();
}

bool parse_ip6_network(std::string_view s, ip_value& out) {
  if (s.empty() || s.find_first_not_of("0123456789abcdefABCDEF:.") != std::string_view::npos)
    return false;
  boost::system::error_code ec;
  auto a = asio::ip::make_address_v6(std::string(s), ec);
  if (ec) return false;
  out.v6 = true;
  out.bytes = a.to_bytes();
  return true;
}

// Splits "domain-spec/cidr4//cidr6" (each part optional) of a / mx.
bool split_dual_cidr(std::string_view rest, directive& d) {
  std::size_t dbl = rest.find("//");
  // The cidr suffix is the last "/digits" and/or "//digits" at the end.
  auto trailing_digits = [](std::string_view s) {
    std::size_t n = 0;
    while (n < s.size() && is_digit(s[s.size() - 1 - n]))
      ++n;
    return n;
  };
  std::string_view body = rest;
  std::size_t n = trailing_digits(body);
  if (n > 0 && n < body.size() + 1 && body.size() >= n + 1 && body[body.size() - n - 1] == '/') {
    std::string_view digits = body.substr(body.size() - n);
    bool is6 = body.size() >= n + 2 && body[body.size() - n - 2] == '/';
    if (is6) {
      if (!parse_cidr(digits, 128, d.cidr6)) return false;
      body.remove_suffix(n + 2);
      std::size_t m = trailing_digits(body);
      if (m > 0 && body.size() >= m + 1 && body[body.size() - m - 1] == '/') {
        if (!parse_cidr(body.substr(body.size() - m), 32, d.cidr4)) return false;
        body.remove_suffix(m + 1);
      }
    } else {
      if (!parse_cidr(digits, 32, d.cidr4)) return false;
      body.remove_suffix(n + 1);
    }
  }
  (void)dbl;
  if (body.empty()) return true;
  if (body[0] != ':') return false;
  d.domain_spec = std::string(body.substr(1));
  return true;
}

// Parses the terms after "v=spf1". Returns the error, or empty on success.
std::string parse_record(std::string_view text, record& rec) {
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) return "the record contains a non-ASCII or control character";
  }
  std::size_t i = 6;  // after "v=spf1"
  while (i < text.size()) {
    while (i < text.size() && text[i] == ' ')
      ++i;
    if (i >= text.size()) break;
    std::size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view term = text.substr(i, end - i);
    i = end;

    std::string_view t = term;
    std::optional<result> qualifier;
    switch (t[0]) {
      case '+':
        qualifier = result::pass;
        break;
      case '-':
        qualifier = result::fail;
        break;
      case '~':
        qualifier = result::softfail;
        break;
      case '?':
        qualifier = result::neutral;
        break;
      default:
        break;
    }
    if (qualifier) t.remove_prefix(1);
    std::size_t n = 0;
    if (!t.empty() && is_alpha(t[0])) {
      n = 1;
      while (n < t.size() && (is_alnum(t[n]) || t[n] == '-' || t[n] == '_' || t[n] == '.'))
        ++n;
    }
    if (n == 0) return "invalid term \"" + std::string(term) + "\"";
    std::string name = to_lower_ascii(t.substr(0, n));
    std::string_view rest = t.substr(n);

    if (!rest.empty() && rest[0] == '=') {
      if (qualifier) return "invalid term \"" + std::string(term) + "\"";
      std::string_view value = rest.substr(1);
      if (name == "redirect" || name == "exp") {
        auto& slot = name == "redirect" ? rec.redirect : rec.exp;
        if (slot) return "more than one " + name + "= modifier";
        if (!domain_spec_syntax(value, &rec.uses_p)) {
          return "invalid domain in " + std::string(term);
        }
        slot = std::string(value);
      } else if (!macro_syntax(value, false)) {
        return "invalid modifier \"" + std::string(term) + "\"";
      }
      continue;
    }

    directive d;
    d.qualifier = qualifier.value_or(result::pass);
    d.text = std::string(term);
    auto need_domain = [&](std::string_view r) -> bool {
      if (r.size() < 2 || r[0] != ':') return false;
      d.domain_spec = std::string(r.substr(1));
      return domain_spec_syntax(d.domain_spec, &rec.uses_p);
    };
    auto bad = [&] { return "invalid mechanism \"" + std::string(term) + "\""; };
    if (name == "all") {
      d.kind = mech::all;
      if (!rest.empty()) return bad();
    } else if (name == "include" || name == "exists") {
      d.kind = name == "include" ? mech::include : mech::exists;
      if (!need_domain(rest)) return bad();
    } else if (name == "a" || name == "mx") {
      d.kind = name == "a" ? mech::a : mech::mx;
      if (!split_dual_cidr(rest, d)) return bad();
      if (!d.domain_spec.empty() || (!rest.empty() && rest[0] == ':')) {
        if (!domain_spec_syntax(d.domain_spec, &rec.uses_p)) return bad();
      }
    } else if (name == "ptr") {
      d.kind = mech::ptr;
      if (!rest.empty() && !need_domain(rest)) return bad();
    } else if (name == "ip4" || name == "ip6") {
      d.kind = name == "ip4" ? mech::ip4 : mech::ip6;
      if (rest.size() < 2 || rest[0] != ':') return bad();
      std::string_view net = rest.substr(1);
      std::size_t slash = net.find('/');
      std::string_view addr = net.substr(0, slash);
      if (d.kind == mech::ip4) {
        if (!parse_ip4_network(addr, d.net)) return bad();
        if (slash != std::string_view::npos && !parse_cidr(net.substr(slash + 1), 32, d.cidr4))
          return bad();
      } else {
        if (!parse_ip6_network(addr, d.net)) return bad();
        if (slash != std::string_view::npos && !parse_cidr(net.substr(slash + 1), 128, d.cidr6))
          return bad();
      }
    } else {
      return "unknown mechanism \"" + std::string(term) + "\"";
    }
    rec.directives.push_back(std::move(d));
  }
  return {};
}

// ---------------------------------------------------------------- evaluation

struct state {
  std::shared_ptr<resolver> dns;
  limits lim;
  ip_value ip;
  macro_values macros;  // domain changes per level
  unsigned lookups = 0;
  unsigned voids = 0;
};

// A terminal result of a mechanism (temperror/permerror), or nothing.
struct stop {
  result res;
  std::string reason;
};

bool temporary(dns_status s) {
  return s == dns_status::servfail || s == dns_status::timeout || s == dns_status::refused ||
         s == dns_status::error;
}

std::optional<stop> count_lookup(state& st) {
  if (++st.lookups > st.lim.dns_mechanisms) {
    return stop{result::permerror,
                "more than " + std::to_string(st.lim.dns_mechanisms) + " DNS lookups"};
  }
  return std::nullopt;
}

std::optional<stop> count_void(state& st, const dns_answer& a) {
  if (a.status == dns_status::nxdomain || a.status == dns_status::nodata ||
      (a.status == dns_status::ok && a.records.empty())) {
    if (++st.voids > st.lim.void_lookups) {
      return stop{result::permerror,
                  "more than " + std::to_string(st.lim.void_lookups) + " void DNS lookups"};
    }
  }
  return std::nullopt;
}

stop dns_failure(std::string_view what, const std::string& name, const dns_answer& a) {
  std::string r =
      "DNS " + std::string(to_string(a.status)) + " for " + std::string(what) + " " + name;
  return stop{result::temperror, std::move(r)};
}

asio::awaitable<dns_answer> addresses(state& st, const std::string& name, bool v6) {
  if (!queryable(name)) {
    dns_answer a;
    a.status = dns_status::nxdomain;
    co_return a;
  }
  co_return v6 ? co_await st.dns->aaaa(name) : co_await st.dns->a(name);
}

bool contains_ip(const dns_answer& a, const ip_value& ip, unsigned cidr) {
  if (a.status != dns_status::ok) return false;
  for (const auto& r : a.records) {
    auto v = parse_ip(r);
    if (v && prefix_match(ip, *v, cidr)) return true;
  }
  return false;
}

// The validated names of the client address (§5.5): PTR names whose A/AAAA contain it.
asio::awaitable<std::vector<std::string>> validated_names(state& st) {
  std::vector<std::string> out;
  dns_answer p = co_await st.dns->ptr(ip_text(st.ip));
  if (p.status != dns_status::ok) co_return out;
  std::size_t n = std::min<std::size_t>(p.records.size(), st.lim.ptr_names);
  for (std::size_t k = 0; k < n; ++k) {
    std::string name = strip_dot(p.records[k]);
    dns_answer a = co_await addresses(st, name, st.ip.v6);
    if (contains_ip(a, st.ip, st.ip.v6 ? 128 : 32)) out.push_back(name);
  }
  co_return out;
}

bool same_or_sub(std::string_view name, std::string_view domain) {
  if (iequals(name, domain)) return true;
  return name.size() > domain.size() + 1 && name[name.size() - domain.size() - 1] == '.' &&
         iequals(name.substr(name.size() - domain.size()), domain);
}

// %{p} (§7.3): a validated name equal to the domain, else one under it, else any.
asio::awaitable<std::string> ptr_macro(state& st) {
  auto names = co_await validated_names(st);
  for (const auto& n : names)
    if (iequals(n, st.macros.domain)) co_return n;
  for (const auto& n : names)
    if (same_or_sub(n, st.macros.domain)) co_return n;
  if (!names.empty()) co_return names.front();
  co_return std::string("unknown");
}

asio::awaitable<std::string> expand_domain(state& st, const std::string& spec) {
  if (spec.empty()) co_return st.macros.domain;
  bool uses_p = false;
  macro_syntax(spec, false, &uses_p);
  if (uses_p && !st.macros.ptr) st.macros.ptr = co_await ptr_macro(st);
  co_return finish_domain(macro_expand(spec, st.macros));
}

asio::awaitable<outcome> evaluate(state& st, std::string domain);

// Evaluates one mechanism: true (match), false (no match), or a stop.
asio::awaitable<std::variant<bool, stop>> match(state& st, const directive& d) {
  switch (d.kind) {
    case mech::all:
      co_return true;
    case mech::ip4:
    case mech::ip6:
      co_return prefix_match(st.ip, d.net, d.kind == mech::ip4 ? d.cidr4 : d.cidr6);
    case mech::a: {
      if (auto s = count_lookup(st)) co_return *s;
      std::string target = co_await expand_domain(st, d.domain_spec);
      dns_answer a = co_await addresses(st, target, st.ip.v6);
      if (temporary(a.status)) co_return dns_failure(st.ip.v6 ? "AAAA" : "A", target, a);
      if (auto s = count_void(st, a)) co_return *s;
      co_return contains_ip(a, st.ip, st.ip.v6 ? d.cidr6 : d.cidr4);
    }
    case mech::mx: {
      if (auto s = count_lookup(st)) co_return *s;
      std::string target = co_await expand_domain(st, d.domain_spec);
      dns_answer ans;
      std::vector<mx_record> mxs;
      if (queryable(target)) {
        auto r = co_await st.dns->mx(target);
        ans = std::move(r.first);
        mxs = std::move(r.second);
      } else {
        ans.status = dns_status::nxdomain;
      }
      if (temporary(ans.status)) co_return dns_failure("MX", target, ans);
      if (auto s = count_void(st, ans)) co_return *s;
      if (ans.status != dns_status::ok) co_return false;
      if (mxs.size() > st.lim.mx_names) {
        co_return stop{result::permerror, "more than " + std::to_string(st.lim.mx_names) +
                                              " MX records for " + target};
      }
      for (const auto& m : mxs) {
        if (m.host.empty()) continue;  // null MX (RFC 7505)
        dns_answer a = co_await addresses(st, m.host, st.ip.v6);
        if (temporary(a.status)) co_return dns_failure(st.ip.v6 ? "AAAA" : "A", m.host, a);
        if (contains_ip(a, st.ip, st.ip.v6 ? d.cidr6 : d.cidr4)) co_return true;
      }
      co_return false;
    }
    case mech::ptr: {
      if (auto s = count_lookup(st)) co_return *s;
      std::string target = co_await expand_domain(st, d.domain_spec);
      auto names = co_await validated_names(st);
      for (const auto& n : names)
        if (same_or_sub(n, target)) co_return true;
      co_return false;
    }
    case mech::exists: {
      if (auto s = count_lookup(st)) co_return *s;
      std::string target = co_await expand_domain(st, d.domain_spec);
      dns_answer a = co_await addresses(st, target, false);  // always A (§5.7)
      if (temporary(a.status)) co_return dns_failure("A", target, a);
      if (auto s = count_void(st, a)) co_return *s;
      co_return a.status == dns_status::ok && !a.records.empty();
    }
    case mech::include: {
      if (auto s = count_lookup(st)) co_return *s;
      std::string target = co_await expand_domain(st, d.domain_spec);
      std::string saved = st.macros.domain;
      outcome sub = co_await evaluate(st, target);
      st.macros.domain = saved;
      switch (sub.res) {
        case result::pass:
          co_return true;
        case result::fail:
        case result::softfail:
        case result::neutral:
          co_return false;
        case result::temperror:
          co_return stop{result::temperror, "include:" + target + ": " + sub.reason};
        case result::permerror:
          co_return stop{result::permerror, "include:" + target + ": " + sub.reason};
        case result::none:
          co_return stop{result::permerror, "include:" + target + ": no SPF record"};
      }
      co_return false;
    }
  }
  co_return false;
}

// The exp= explanation (§6.2); empty when there is none or it is unusable.
asio::awaitable<std::string> explanation(state& st, const std::string& spec) {
  std::string target = co_await expand_domain(st, spec);
  if (!queryable(target)) co_return std::string();
  dns_answer t = co_await st.dns->txt(target);
  if (t.status != dns_status::ok || t.records.size() != 1) co_return std::string();
  const std::string& text = t.records.front();
  bool uses_p = false;
  if (!macro_syntax(text, true, &uses_p)) co_return std::string();
  if (uses_p && !st.macros.ptr) st.macros.ptr = co_await ptr_macro(st);
  co_return macro_expand(text, st.macros);
}

// One level of check_host() for `domain`.
asio::awaitable<outcome> evaluate(state& st, std::string domain) {
  outcome out;
  out.domain = domain;
  st.macros.domain = domain;
  // Any %{p} value was computed for another <domain>; recompute when needed.
  st.macros.ptr.reset();
  if (!queryable(domain)) {
    out.res = result::none;
    out.reason = "invalid domain \"" + domain + "\"";
    co_return out;
  }
  dns_answer txt = co_await st.dns->txt(domain);
  if (temporary(txt.status)) {
    auto s = dns_failure("TXT", domain, txt);
    out.res = s.res;
    out.reason = std::move(s.reason);
    co_return out;
  }
  std::vector<const std::string*> spf;
  if (txt.status == dns_status::ok) {
    for (const auto& r : txt.records) {
      if (r.size() >= 6 && iequals(std::string_view(r).substr(0, 6), "v=spf1") &&
          (r.size() == 6 || r[6] == ' ')) {
        spf.push_back(&r);
      }
    }
  }
  if (spf.empty()) {
    out.res = result::none;
    out.reason = "no SPF record for " + domain;
    co_return out;
  }
  if (spf.size() > 1) {
    out.res = result::permerror;
    out.reason = "more than one SPF record for " + domain;
    co_return out;
  }
  if (spf.front()->size() > st.lim.max_record) {
    out.res = result::permerror;
    out.reason = "the SPF record of " + domain + " is too long";
    co_return out;
  }
  record rec;
  if (std::string err = parse_record(*spf.front(), rec); !err.empty()) {
    out.res = result::permerror;
    out.reason = std::move(err);
    co_return out;
  }
  for (const auto& d : rec.directives) {
    auto m = co_await match(st, d);
    st.macros.domain = domain;
    if (auto* s = std::get_if<stop>(&m)) {
      out.res = s->res;
      out.reason = std::move(s->reason);
      co_return out;
    }
    if (std::get<bool>(m)) {
      out.res = d.qualifier;
      out.reason = d.text;
      if (out.res == result::fail && rec.exp) out.explanation = co_await explanation(st, *rec.exp);
      co_return out;
    }
  }
  if (rec.redirect) {
    if (auto s = count_lookup(st)) {
      out.res = s->res;
      out.reason = std::move(s->reason);
      co_return out;
    }
    std::string target = co_await expand_domain(st, *rec.redirect);
    outcome sub = co_await evaluate(st, target);
    sub.domain = domain;
    if (sub.res == result::none) {
      sub.res = result::permerror;
      sub.reason = "redirect=" + target + ": no SPF record";
    } else {
      sub.reason = "redirect=" + target + ": " + sub.reason;
    }
    co_return sub;
  }
  out.res = result::neutral;
  out.reason = "default";
  co_return out;
}

}  // namespace

std::string_view to_string(result r) noexcept {
  switch (r) {
    case result::none:
      return "none";
    case result::neutral:
      return "neutral";
    case result::pass:
      return "pass";
    case result::fail:
      return "fail";
    case result::softfail:
      return "softfail";
    case result::temperror:
      return "temperror";
    case result::permerror:
      return "permerror";
  }
  return "none";
}

asio::awaitable<outcome> check_host(std::shared_ptr<resolver> dns, request req, limits lim) {
  state st;
  st.dns = std::move(dns);
  st.lim = lim;
  auto ip = parse_ip(req.ip);
  std::size_t at = req.sender.rfind('@');
  std::string local = at == std::string::npos ? "postmaster" : req.sender.substr(0, at);
  std::string domain = at == std::string::npos ? req.sender : req.sender.substr(at + 1);
  if (local.empty()) local = "postmaster";
  domain = strip_dot(domain);
  if (!ip) {
    outcome o;
    o.res = result::permerror;
    o.reason = "invalid client address \"" + req.ip + "\"";
    o.domain = domain;
    co_return o;
  }
  st.ip = *ip;
  st.macros.sender = local + "@" + domain;
  st.macros.local = local;
  st.macros.sender_domain = domain;
  st.macros.ip = ip_macro(*ip);
  st.macros.ip_readable = ip_text(*ip);
  st.macros.helo = req.helo;
  st.macros.receiver = req.receiver;
  st.macros.version = ip->v6 ? "ip6" : "in-addr";
  st.macros.now = req.now;
  outcome o = co_await evaluate(st, domain);
  o.domain = domain;
  o.dns_lookups = st.lookups;
  o.void_lookups = st.voids;
  co_return o;
}

namespace {
// §4.3: a domain that is not a multi-label name (or is an address literal) gives none.
bool fqdn(std::string_view d) {
  if (d.empty() || d.front() == '[') return false;
  return queryable(d);
}
}  // namespace

asio::awaitable<outcome> check_mail_from(std::shared_ptr<resolver> dns, std::string ip,
                                         std::string mail_from, std::string helo,
                                         std::string receiver, std::int64_t now, limits lim) {
  request req;
  req.ip = std::move(ip);
  req.helo = helo;
  req.receiver = std::move(receiver);
  req.now = now;
  req.sender = mail_from.empty() ? "postmaster@" + helo : mail_from;
  std::size_t at = req.sender.rfind('@');
  std::string domain = at == std::string::npos ? req.sender : req.sender.substr(at + 1);
  if (!fqdn(domain)) {
    outcome o;
    o.res = result::none;
    o.reason = "\"" + domain + "\" is not a fully qualified domain name";
    o.domain = domain;
    co_return o;
  }
  co_return co_await check_host(std::move(dns), std::move(req), lim);
}

asio::awaitable<outcome> check_helo(std::shared_ptr<resolver> dns, std::string ip, std::string helo,
                                    std::string receiver, std::int64_t now, limits lim) {
  return check_mail_from(std::move(dns), std::move(ip), std::string(), std::move(helo),
                         std::move(receiver), now, lim);
}

}  // namespace sluice::auth::spf
