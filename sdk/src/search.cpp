// search.cpp — the search language parser (see sluice/search.hpp).
//
// Pure functions, no state. Failure: search_error with a message naming the term, safe
// to show to the client (the term is clipped and printed as written).
#include "sluice/search.hpp"

#include <cctype>
#include <cmath>
#include <optional>
#include <utility>

#include "sluice/text.hpp"

namespace sluice {
namespace {

constexpr std::size_t kMaxQuery = 4096;
constexpr std::size_t kMaxTerms = 64;

struct token {
  std::string text;                             // quotes removed
  std::size_t quoted_from = std::string::npos;  // where the first quoted part starts in text
};

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

std::string shown(std::string_view s) {
  if (s.size() > 64) return std::string(s.substr(0, 64)) + "...";
  return std::string(s);
}

std::vector<token> tokenize(std::string_view q) {
  std::vector<token> out;
  std::size_t i = 0;
  while (i < q.size()) {
    while (i < q.size() && is_space(q[i]))
      ++i;
    if (i >= q.size()) break;
    token t;
    bool quoted = false;
    for (; i < q.size(); ++i) {
      const char c = q[i];
      if (c == '"') {
        if (!quoted && t.quoted_from == std::string::npos) t.quoted_from = t.text.size();
        quoted = !quoted;
        continue;
      }
      if (!quoted && is_space(c)) break;
      t.text.push_back(c);
    }
    if (quoted) throw search_error("unterminated quote in search: " + shown(q));
    out.push_back(std::move(t));
  }
  return out;
}

std::optional<search_term::field> prefix_field(std::string_view key) {
  using f = search_term::field;
  static const std::pair<std::string_view, f> kPrefixes[] = {
      {"from", f::from},
      {"to", f::to},
      {"cc", f::cc},
      {"bcc", f::bcc},
      {"reply-to", f::reply_to},
      {"addressed", f::addressed},
      {"subject", f::subject},
      {"message-id", f::message_id},
      {"tag", f::tag},
      {"header", f::header},
      {"is", f::is_read},
      {"has", f::has_attachment},
      {"larger", f::larger},
      {"smaller", f::smaller},
      {"before", f::before},
      {"after", f::after},
  };
  for (const auto& [name, field] : kPrefixes) {
    if (iequals(key, name)) return field;
  }
  return std::nullopt;
}

// A size with an optional unit, or nothing when v is none (the term is then searched as
// text, as Mailpit does).
std::optional<std::uint64_t> parse_size(std::string_view v) {
  std::size_t i = 0;
  double number = 0;
  bool digits = false;
  while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
    number = number * 10 + (v[i] - '0');
    digits = true;
    ++i;
  }
  if (i < v.size() && v[i] == '.') {
    ++i;
    double scale = 0.1;
    while (i < v.size() && v[i] >= '0' && v[i] <= '9') {
      number += (v[i] - '0') * scale;
      scale /= 10;
      digits = true;
      ++i;
    }
  }
  const std::string unit = to_lower_ascii(v.substr(i));
  double mult = 0;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else if (unit == "k" || unit == "kb") {
    mult = 1024.0;
  } else if (unit == "m" || unit == "mb") {
    mult = 1024.0 * 1024;
  } else if (unit == "g" || unit == "gb") {
    mult = 1024.0 * 1024 * 1024;
  }
  const double bytes = number * mult;
  if (!digits || mult == 0 || bytes > 9.0e15) return std::nullopt;
  return static_cast<std::uint64_t>(std::llround(bytes));
}

int days_in_month(int y, int m) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return kDays[m - 1];
}

// A small cursor over the date text.
struct cursor {
  std::string_view s;
  std::size_t i = 0;
  bool done() const { return i >= s.size(); }
  bool eat(char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  }
  void spaces() {
    while (i < s.size() && is_space(s[i]))
      ++i;
  }
  // Exactly n digits when n > 0, else 1..4 digits.
  std::optional<int> number(int n) {
    std::size_t start = i;
    int v = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' &&
           (n == 0 ? i - start < 4 : i - start < static_cast<std::size_t>(n))) {
      v = v * 10 + (s[i] - '0');
      ++i;
    }
    const std::size_t len = i - start;
    if (len == 0 || (n > 0 && len != static_cast<std::size_t>(n))) {
      i = start;
      return std::nullopt;
    }
    return v;
  }
  std::string_view word() {
    std::size_t start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i])))
      ++i;
    return s.substr(start, i - start);
  }
};

// [T| ]H[H]:MM[:SS[.frac]] [AM|PM]   (a 12-hour clock as dateparse reads it: "1:45 PM",
// "12:00 am" is midnight, "12:30 pm" half past noon; the hour must then be 1..12)
bool parse_clock(cursor& c, search_term::civil_time& t) {
  const std::size_t at = c.i;
  auto h = c.number(0);
  if (!h || c.i - at > 2 || !c.eat(':')) return false;
  auto mi = c.number(2);
  if (!mi) return false;
  int sec = 0;
  if (c.eat(':')) {
    auto se = c.number(2);
    if (!se) return false;
    sec = *se;
    if (c.eat('.') || c.eat(',')) {
      int scale = 100;  // milliseconds kept, finer digits dropped
      while (!c.done() && c.s[c.i] >= '0' && c.s[c.i] <= '9') {
        t.millisecond += (c.s[c.i] - '0') * scale;
        scale /= 10;
        ++c.i;
      }
    }
  }
  const std::size_t before_meridiem = c.i;
  c.spaces();
  const std::string_view w = c.word();
  if (iequals(w, "am") || iequals(w, "pm")) {
    if (*h < 1 || *h > 12) return false;
    *h = *h % 12 + (iequals(w, "pm") ? 12 : 0);
  } else {
    c.i = before_meridiem;  // a zone, or nothing
  }
  if (*h > 23 || *mi > 59 || sec > 60) return false;
  t.hour = *h;
  t.minute = *mi;
  t.second = sec == 60 ? 59 : sec;  // a leap second reads as the second before it
  t.has_time = true;
  return true;
}

// Z, +HH:MM, +HHMM, -HH, or an RFC 5322 obsolete zone name.
bool parse_zone(cursor& c, search_term::civil_time& t) {
  c.spaces();
  if (c.done()) return true;
  if (c.eat('Z') || c.eat('z')) {
    t.has_offset = true;
    t.offset_minutes = 0;
    return true;
  }
  if (c.s[c.i] == '+' || c.s[c.i] == '-') {
    const int sign = c.s[c.i] == '-' ? -1 : 1;
    ++c.i;
    auto hh = c.number(2);
    if (!hh) return false;
    c.eat(':');
    int mm = 0;
    if (!c.done()) {
      auto m = c.number(2);
      if (!m) return false;
      mm = *m;
    }
    if (*hh > 23 || mm > 59) return false;
    t.has_offset = true;
    t.offset_minutes = sign * (*hh * 60 + mm);
    return true;
  }
  static const std::pair<std::string_view, int> kZones[] = {
      {"UT", 0},        {"UTC", 0},       {"GMT", 0},       {"EST", -5 * 60},
      {"EDT", -4 * 60}, {"CST", -6 * 60}, {"CDT", -5 * 60}, {"MST", -7 * 60},
      {"MDT", -6 * 60}, {"PST", -8 * 60}, {"PDT", -7 * 60}};
  std::string_view w = c.word();
  for (const auto& [name, off] : kZones) {
    if (iequals(w, name)) {
      t.has_offset = true;
      t.offset_minutes = off;
      return true;
    }
  }
  return false;
}

bool valid_date(const search_term::civil_time& t) {
  return t.year >= 1 && t.year <= 9999 && t.month >= 1 && t.month <= 12 && t.day >= 1 &&
         t.day <= days_in_month(t.year, t.month);
}

// YYYY-MM-DD / YYYY/MM/DD [T or space HH:MM[:SS]] [zone]
bool parse_iso(std::string_view v, search_term::civil_time& t) {
  cursor c{v};
  auto y = c.number(4);
  if (!y) return false;
  char sep = c.eat('-') ? '-' : (c.eat('/') ? '/' : 0);
  if (!sep) return false;
  auto mo = c.number(0);
  if (!mo || !c.eat(sep)) return false;
  auto d = c.number(0);
  if (!d || *mo > 12 || *d > 31) return false;
  t.year = *y;
  t.month = *mo;
  t.day = *d;
  if (!c.done()) {
    if (!(c.eat('T') || c.eat('t') || c.eat(' '))) return false;
    c.spaces();
    if (!parse_clock(c, t)) return false;
    if (!parse_zone(c, t)) return false;
    c.spaces();
  }
  return c.done() && valid_date(t);
}

// 1..12 for an English month name, whole ("December") or abbreviated ("Dec"), in any case,
// as Go's time layouts read them; 0 for any other word ("Decxyz", "Sept", "De").
int month_number(std::string_view w) {
  static const char* kMonths[] = {"january",   "february", "march",    "april",
                                  "may",       "june",     "july",     "august",
                                  "september", "october",  "november", "december"};
  if (w.size() < 3) return 0;
  for (int k = 0; k < 12; ++k) {
    const std::string_view name = kMonths[k];
    if (iequals(w, name.substr(0, 3)) || iequals(w, name)) return k + 1;
  }
  return 0;
}

// [Day,] D Mon YYYY [HH:MM[:SS]] [zone]   (RFC 5322 §3.3)
bool parse_rfc5322(std::string_view v, search_term::civil_time& t) {
  cursor c{v};
  c.spaces();
  std::size_t save = c.i;
  std::string_view w = c.word();
  if (!w.empty()) {
    c.spaces();
    if (!c.eat(',')) c.i = save;  // not a day name after all
    c.spaces();
  }
  auto d = c.number(0);
  if (!d) return false;
  c.spaces();
  const int month = month_number(c.word());
  if (month == 0) return false;
  c.spaces();
  auto y = c.number(4);
  if (!y) return false;
  t.year = *y;
  t.month = month;
  t.day = *d;
  c.spaces();
  if (!c.done()) {
    if (!parse_clock(c, t)) return false;
    if (!parse_zone(c, t)) return false;
    c.spaces();
  }
  return c.done() && valid_date(t);
}

// An optional [T| ]HH:MM[:SS] [zone] after a date, then the end.
bool parse_rest(cursor& c, search_term::civil_time& t) {
  c.spaces();
  if (!c.done()) {
    if (!c.eat('T')) c.eat('t');
    c.spaces();
    if (!parse_clock(c, t)) return false;
    if (!parse_zone(c, t)) return false;
    c.spaces();
  }
  return c.done() && valid_date(t);
}

// M/D/YYYY or M/D/YY (US order, as Mailpit's dateparse reads it) [HH:MM[:SS]] [zone]
bool parse_us(std::string_view v, search_term::civil_time& t) {
  cursor c{v};
  auto mo = c.number(0);
  if (!mo || !c.eat('/')) return false;
  auto d = c.number(0);
  if (!d || !c.eat('/')) return false;
  const std::size_t at = c.i;
  auto y = c.number(0);
  if (!y) return false;
  const std::size_t len = c.i - at;
  if (len == 2) {
    *y += *y >= 69 ? 1900 : 2000;  // Go's two-digit year rule (time.Parse "06")
  } else if (len != 4) {
    return false;
  }
  t.year = *y;
  t.month = *mo;
  t.day = *d;
  return parse_rest(c, t);
}

// [Day,] Mon D[,] YYYY [HH:MM[:SS]] [zone]   ("Dec 7, 2026", "Monday, December 7 2026")
bool parse_month_first(std::string_view v, search_term::civil_time& t) {
  cursor c{v};
  std::string_view w = c.word();
  int month = month_number(w);
  if (month == 0) {  // a day name first
    c.spaces();
    c.eat(',');
    c.spaces();
    month = month_number(c.word());
  }
  if (month == 0) return false;
  c.eat('.');
  c.spaces();
  auto d = c.number(0);
  if (!d) return false;
  c.eat(',');
  c.spaces();
  auto y = c.number(4);
  if (!y || *y < 1000) return false;
  t.year = *y;
  t.month = month;
  t.day = *d;
  return parse_rest(c, t);
}

// YYYYMMDD, or a Unix time in seconds (10 digits) or milliseconds (13), as dateparse.
bool parse_digits(std::string_view v, search_term::civil_time& t) {
  if (v.empty() || v.size() > 13) return false;
  std::int64_t n = 0;
  for (char ch : v) {
    if (ch < '0' || ch > '9') return false;
    n = n * 10 + (ch - '0');
  }
  if (v.size() == 8) {
    t.year = static_cast<int>(n / 10000);
    t.month = static_cast<int>(n / 100 % 100);
    t.day = static_cast<int>(n % 100);
    return valid_date(t);
  }
  if (v.size() != 10 && v.size() != 13) return false;
  const std::int64_t secs = v.size() == 13 ? n / 1000 : n;
  t.millisecond = v.size() == 13 ? static_cast<int>(n % 1000) : 0;
  const std::int64_t days = secs / 86400;
  const std::int64_t rem = secs % 86400;
  // Days since 1970-01-01 to a civil date (Howard Hinnant's civil_from_days).
  const std::int64_t z = days + 719468;
  const std::int64_t era = z / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  t.year = static_cast<int>(yoe + era * 400 + (m <= 2));
  t.month = static_cast<int>(m);
  t.day = static_cast<int>(d);
  t.hour = static_cast<int>(rem / 3600);
  t.minute = static_cast<int>(rem / 60 % 60);
  t.second = static_cast<int>(rem % 60);
  t.has_time = true;
  t.has_offset = true;  // a Unix time is UTC whatever the request's zone
  t.offset_minutes = 0;
  return valid_date(t);
}

// A date in one of the forms above, or nothing: Mailpit ignores a before:/after: whose
// date it cannot read, and so does the parser (the term is dropped).
std::optional<search_term::civil_time> parse_date(std::string_view v) {
  search_term::civil_time t;
  if (iequals(v, "today")) {
    t.days_ago = 0;
    return t;
  }
  if (iequals(v, "yesterday")) {
    t.days_ago = 1;
    return t;
  }
  for (auto* parse : {parse_iso, parse_rfc5322, parse_us, parse_month_first, parse_digits}) {
    t = {};
    if (parse(v, t)) return t;
  }
  return std::nullopt;
}

bool valid_header_name(std::string_view n) {
  if (n.empty() || n.size() > 128) return false;
  for (unsigned char c : n) {
    if (c <= 32 || c >= 127 || c == ':') return false;  // RFC 5322 ftext
  }
  return true;
}

}  // namespace

search_query parse_search(std::string_view query, search_mode mode) {
  const bool strict = mode == search_mode::strict;
  if (query.size() > kMaxQuery) {
    throw search_error("search is too long (at most " + std::to_string(kMaxQuery) + " bytes)");
  }
  search_query out;
  for (token& tok : tokenize(query)) {
    std::string_view text = tok.text;
    std::size_t quoted_from = tok.quoted_from;
    search_term term;
    // A leading - or ! (outside quotes) negates the rest.
    if (text.size() > 1 && (text[0] == '-' || text[0] == '!') && quoted_from != 0) {
      term.negated = true;
      text.remove_prefix(1);
      if (quoted_from != std::string::npos) --quoted_from;
    }
    const std::string_view written = tok.text;
    const std::size_t colon = text.find(':');
    std::optional<search_term::field> field;
    // A prefix counts only outside quotes: "from:x" in quotes is a phrase.
    if (colon != std::string_view::npos && colon > 0 &&
        (quoted_from == std::string::npos || colon < quoted_from)) {
      field = prefix_field(text.substr(0, colon));
    }
    if (!field) {
      if (text.empty() || (term.negated && text.empty())) continue;
      term.kind = search_term::field::text;
      term.value = std::string(text);
    } else {
      std::string_view value = text.substr(colon + 1);
      using f = search_term::field;
      term.kind = *field;
      bool as_text = false;
      switch (*field) {
        case f::is_read:
          if (iequals(value, "read")) {
            term.kind = f::is_read;
          } else if (iequals(value, "unread")) {
            term.kind = f::is_unread;
          } else if (iequals(value, "tagged")) {
            term.kind = f::is_tagged;
          } else if (strict) {
            throw search_error("unknown " + shown(written) +
                               ": expected is:read, is:unread or is:tagged");
          } else {
            as_text = true;  // Mailpit searches an unknown is: as text
          }
          break;
        case f::has_attachment:
          if (iequals(value, "attachment") || iequals(value, "attachments")) {
            term.kind = f::has_attachment;
          } else if (iequals(value, "inline") || iequals(value, "inlines")) {
            term.kind = f::has_inline;
          } else if (strict) {
            throw search_error("unknown " + shown(written) +
                               ": expected has:attachment or has:inline");
          } else {
            as_text = true;
          }
          break;
        case f::larger:
        case f::smaller:
          if (auto n = parse_size(value)) {
            term.size = *n;
          } else if (strict) {
            throw search_error("bad size in " + shown(written) +
                               ": expected a number with an optional unit K, KB, M, MB, G or GB");
          } else {
            as_text = true;  // not a size: text, as Mailpit
          }
          break;
        case f::before:
        case f::after:
          if (auto d = parse_date(value)) {
            term.time = *d;
          } else if (strict) {
            throw search_error("bad date in " + shown(written) +
                               ": expected YYYY-MM-DD, YYYY/MM/DD or M/D/YYYY with an optional "
                               "time HH:MM[:SS], an RFC 3339 or RFC 5322 date, \"Dec 7, 2026\", "
                               "YYYYMMDD, a Unix time, today or yesterday");
          } else {
            continue;  // no date it can read: ignored, as Mailpit
          }
          break;
        case f::header: {
          const std::size_t c2 = value.find(':');
          const std::string_view name = value.substr(0, c2);
          if (!valid_header_name(name)) {
            throw search_error("bad " + shown(written) +
                               ": expected header:Name or header:Name:value");
          }
          term.header_name = std::string(name);
          if (c2 != std::string_view::npos) term.value = std::string(value.substr(c2 + 1));
          break;
        }
        default:
          if (value.empty()) continue;  // "from:" alone matches everything, as in Mailpit
          term.value = std::string(value);
          break;
      }
      if (as_text) {
        term.kind = f::text;
        term.value = std::string(text);
        term.literal = true;
      }
    }
    if (out.terms.size() == kMaxTerms) {
      throw search_error("search has too many terms (at most " + std::to_string(kMaxTerms) + ")");
    }
    out.terms.push_back(std::move(term));
  }
  return out;
}

}  // namespace sluice
