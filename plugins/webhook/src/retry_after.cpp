// retry_after.cpp — see retry_after.hpp.
#include "retry_after.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <string>

namespace sluice::webhook {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

bool digits(std::string_view s, int& out) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  std::from_chars(s.data(), s.data() + s.size(), out);
  return true;
}

int month_index(std::string_view m) {
  static constexpr std::array<std::string_view, 12> names = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < 12; ++i)
    if (names[i] == m) return i + 1;
  return 0;
}

// Days from 1970-01-01 to y-m-d (proleptic Gregorian), H. Hinnant's algorithm.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool parse_time(std::string_view s, int& h, int& mi, int& se) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
  return digits(s.substr(0, 2), h) && digits(s.substr(3, 2), mi) && digits(s.substr(6, 2), se) &&
         h < 24 && mi < 60 && se <= 60;
}

std::optional<std::int64_t> build(int y, int mon, int d, int h, int mi, int se) {
  if (mon < 1 || d < 1 || d > 31) return std::nullopt;
  return days_from_civil(y, static_cast<unsigned>(mon), static_cast<unsigned>(d)) * 86400 +
         h * 3600 + mi * 60 + se;
}

}  // namespace

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  s = trim(s);
  int y = 0, d = 0, h = 0, mi = 0, se = 0;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (s.size() == 29 && s[3] == ',' && s[4] == ' ' && s[7] == ' ' && s[11] == ' ' && s[16] == ' ' &&
      s[25] == ' ' && s.substr(26) == "GMT") {
    if (!digits(s.substr(5, 2), d) || !digits(s.substr(12, 4), y) ||
        !parse_time(s.substr(17, 8), h, mi, se)) {
      return std::nullopt;
    }
    return build(y, month_index(s.substr(8, 3)), d, h, mi, se);
  }
  // asctime: "Sun Nov  6 08:49:37 1994"
  if (s.size() == 24 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' ') {
    std::string_view day = trim(s.substr(8, 2));
    if (!digits(day, d) || !parse_time(s.substr(11, 8), h, mi, se) || !digits(s.substr(20, 4), y)) {
      return std::nullopt;
    }
    return build(y, month_index(s.substr(4, 3)), d, h, mi, se);
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT" (two-digit year: RFC 9110 §5.6.7 says a
  // date more than 50 years in the future is in the past century).
  auto comma = s.find(", ");
  if (comma != std::string_view::npos && s.size() == comma + 24 &&
      s.substr(s.size() - 3) == "GMT") {
    std::string_view rest = s.substr(comma + 2);
    if (rest[2] != '-' || rest[6] != '-' || rest[9] != ' ' || rest[18] != ' ') return std::nullopt;
    if (!digits(rest.substr(0, 2), d) || !digits(rest.substr(7, 2), y) ||
        !parse_time(rest.substr(10, 8), h, mi, se)) {
      return std::nullopt;
    }
    y += y < 70 ? 2000 : 1900;
    return build(y, month_index(rest.substr(3, 3)), d, h, mi, se);
  }
  return std::nullopt;
}

std::optional<std::chrono::seconds> parse_retry_after(std::string_view value, std::int64_t now,
                                                      std::chrono::seconds max) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  std::int64_t secs = 0;
  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // Very long digit strings saturate instead of failing: the server asked for "long".
    if (value.size() > 12) {
      secs = max.count();
    } else {
      std::from_chars(value.data(), value.data() + value.size(), secs);
    }
  } else if (auto t = parse_http_date(value)) {
    secs = std::max<std::int64_t>(0, *t - now);
  } else {
    return std::nullopt;
  }
  return std::chrono::seconds(std::clamp<std::int64_t>(secs, 0, max.count()));
}

}  // namespace sluice::webhook
