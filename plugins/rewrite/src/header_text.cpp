// header_text.cpp — header names, values, RFC 2047 encoded-words and the subject prefix.
#include "header_text.hpp"

#include <gmime/gmime.h>

#include <array>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "sluice/base64.hpp"
#include "sluice/text.hpp"

namespace sluice::rewrite {
namespace {

constexpr std::size_t kMaxEncodedWord = 75;                 // RFC 2047 §2
constexpr std::string_view kQPrefix = "=?UTF-8?Q?";         // 10 characters
constexpr std::string_view kBPrefix = "=?UTF-8?B?";         // 10 characters
constexpr std::size_t kPayload = kMaxEncodedWord - 10 - 2;  // 63 characters of payload

bool is_wsp(char c) {
  return c == ' ' || c == '\t';
}

// Length of the UTF-8 sequence at s[i] (1 for an invalid byte, so that scanning advances).
std::size_t seq_len(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t n = c < 0x80           ? 1
                  : (c >> 5) == 0x6  ? 2
                  : (c >> 4) == 0xe  ? 3
                  : (c >> 3) == 0x1e ? 4
                                     : 1;
  if (i + n > s.size()) return 1;
  for (std::size_t k = 1; k < n; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 1;
  }
  return n;
}

// RFC 2047 §5(3): the characters a Q encoded-word may carry literally in a phrase.
bool q_literal(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '!' ||
         c == '*' || c == '+' || c == '-' || c == '/';
}

std::size_t q_len(std::string_view bytes) {
  std::size_t n = 0;
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    n += q_literal(u) || u == ' ' ? 1 : 3;
  }
  return n;
}

void q_append(std::string& out, std::string_view bytes) {
  for (char c : bytes) {
    auto u = static_cast<unsigned char>(c);
    if (u == ' ') {
      out += '_';
    } else if (q_literal(u)) {
      out += c;
    } else {
      out += '=';
      append_hex(out, u);
    }
  }
}

std::size_t b_len(std::size_t bytes) {
  return (bytes + 2) / 3 * 4;
}

// "=?charset?Q|B?text?=" (a token without spaces), as RFC 2047 §2 defines it.
bool looks_encoded(std::string_view w) {
  if (w.size() < 8 || !w.starts_with("=?") || !w.ends_with("?=")) return false;
  std::string_view in = w.substr(2, w.size() - 4);
  auto q1 = in.find('?');
  if (q1 == std::string_view::npos || q1 == 0 || q1 + 2 >= in.size() || in[q1 + 2] != '?') {
    return false;
  }
  char enc = in[q1 + 1];
  return enc == 'Q' || enc == 'q' || enc == 'B' || enc == 'b';
}

bool word_needs_encoding(std::string_view w) {
  for (char c : w) {
    auto u = static_cast<unsigned char>(c);
    if (u >= 0x7f || u < 0x20) return true;
  }
  return looks_encoded(w);
}

bool contains_ci(std::string_view hay, std::string_view needle) {
  if (needle.empty()) return true;
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    if (iequals(hay.substr(i, needle.size()), needle)) return true;
  }
  return false;
}

struct gfree {
  void operator()(char* p) const { g_free(p); }
};

void collect(InternetAddressList* list, std::vector<mail_address>& out, int depth) {
  if (!list || depth > 8) return;
  const int n = internet_address_list_length(list);
  for (int i = 0; i < n; ++i) {
    InternetAddress* a = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
      const char* name = internet_address_get_name(a);
      const char* addr = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));
      out.push_back({name ? name : "", addr ? addr : ""});
    } else if (INTERNET_ADDRESS_IS_GROUP(a)) {
      collect(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), out, depth + 1);
    }
  }
}

}  // namespace

void init_gmime() {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
}

bool valid_field_name(std::string_view name) {
  if (name.empty() || name.size() > 76) return false;
  for (char c : name) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || u == ':') return false;
  }
  return true;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t n = seq_len(s, i);
    if (n == 1) return false;
    // Overlong forms and surrogates.
    const auto c1 = static_cast<unsigned char>(s[i + 1]);
    if ((n == 2 && c < 0xc2) || (n == 3 && c == 0xe0 && c1 < 0xa0) ||
        (n == 3 && c == 0xed && c1 >= 0xa0) || (n == 4 && c == 0xf0 && c1 < 0x90) ||
        (n == 4 && (c > 0xf4 || (c == 0xf4 && c1 >= 0x90)))) {
      return false;
    }
    i += n;
  }
  return true;
}

bool is_ascii(std::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

std::string value_problem(std::string_view v) {
  if (v.size() > 4096) return "is longer than 4096 bytes";
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (c == '\r' || c == '\n') {
      return "contains a line break (CR or LF), which would inject a header field";
    }
    if ((u < 0x20 && c != '\t') || u == 0x7f) return "contains a control character";
  }
  if (!valid_utf8(v)) return "is not valid UTF-8";
  return {};
}

field_kind kind_of(std::string_view name) {
  static constexpr std::array address = {
      "from",      "sender",    "reply-to",    "to",
      "cc",        "bcc",       "resent-from", "resent-sender",
      "resent-to", "resent-cc", "resent-bcc",  "disposition-notification-to"};
  static constexpr std::array structured = {"date",
                                            "message-id",
                                            "in-reply-to",
                                            "references",
                                            "resent-date",
                                            "resent-message-id",
                                            "return-path",
                                            "received",
                                            "mime-version",
                                            "content-type",
                                            "content-transfer-encoding",
                                            "content-id",
                                            "content-disposition",
                                            "content-length",
                                            "dkim-signature",
                                            "arc-seal",
                                            "arc-message-signature",
                                            "arc-authentication-results",
                                            "authentication-results",
                                            "received-spf",
                                            "list-id",
                                            "list-unsubscribe",
                                            "list-unsubscribe-post",
                                            "list-post",
                                            "list-help",
                                            "list-subscribe",
                                            "list-archive",
                                            "list-owner"};
  for (const char* n : address) {
    if (iequals(name, n)) return field_kind::address;
  }
  for (const char* n : structured) {
    if (iequals(name, n)) return field_kind::structured;
  }
  return field_kind::unstructured;
}

std::string encode_words(std::string_view s) {
  // Cut points (byte offsets) of the encoded-words: each word holds whole characters (§5:
  // a character is never split across two words) and at most 63 characters of payload.
  auto cut = [&](bool q) {
    std::vector<std::size_t> cuts;
    std::size_t i = 0;
    while (i < s.size()) {
      std::size_t j = i, best3 = 0, payload = 0;
      while (j < s.size()) {
        const std::size_t n = seq_len(s, j);
        const std::size_t next = q ? payload + q_len(s.substr(j, n)) : b_len(j + n - i);
        if (next > kPayload && j > i) break;
        payload = next;
        j += n;
        if ((j - i) % 3 == 0) best3 = j;
      }
      // B: prefer a cut at a multiple of 3 bytes, so that no word but the last carries
      // '=' padding (GMime, hence the mime stage, stops decoding at padding between
      // adjacent words).
      if (!q && j < s.size() && best3 > i) j = best3;
      cuts.push_back(j);
      i = j;
    }
    return cuts;
  };
  std::vector<std::size_t> cuts = cut(false);
  bool b_clean = true;
  for (std::size_t k = 0, start = 0; k + 1 < cuts.size(); start = cuts[k++]) {
    b_clean = b_clean && (cuts[k] - start) % 3 == 0;
  }
  // B when it is shorter and padding-free between words; Q otherwise (it stays readable
  // for mostly-Latin text).
  const bool use_q = !b_clean || q_len(s) <= b_len(s.size());
  if (use_q) cuts = cut(true);
  std::string out;
  std::size_t i = 0;
  for (std::size_t j : cuts) {
    if (!out.empty()) out += ' ';
    out += use_q ? kQPrefix : kBPrefix;
    if (use_q) {
      q_append(out, s.substr(i, j - i));
    } else {
      out += sluice::base64_encode(s.substr(i, j - i));
    }
    out += "?=";
    i = j;
  }
  return out;
}

std::string encode_text(std::string_view s) {
  struct token {
    std::string_view text;
    bool space;
    bool needs;
  };
  std::vector<token> tokens;
  for (std::size_t i = 0; i < s.size();) {
    std::size_t j = i;
    const bool space = is_wsp(s[i]);
    while (j < s.size() && is_wsp(s[j]) == space)
      ++j;
    std::string_view t = s.substr(i, j - i);
    tokens.push_back({t, space, !space && word_needs_encoding(t)});
    i = j;
  }
  std::string out;
  for (std::size_t k = 0; k < tokens.size();) {
    if (!tokens[k].needs) {
      out += tokens[k].text;
      ++k;
      continue;
    }
    // A run of words that need encoding, with the spaces between them: one encoded text,
    // so that the spaces survive (whitespace between adjacent encoded-words is dropped by
    // a decoder, §6.2).
    std::size_t end = k + 1;
    while (end + 1 < tokens.size() && tokens[end].space && tokens[end + 1].needs)
      end += 2;
    const char* first = tokens[k].text.data();
    const char* last = tokens[end - 1].text.data() + tokens[end - 1].text.size();
    out += encode_words(std::string_view(first, static_cast<std::size_t>(last - first)));
    k = end;
  }
  return out;
}

std::string encode_phrase(std::string_view s) {
  // Printable ASCII goes in a quoted-string; anything else (8-bit, control characters, an
  // encoded-word look-alike a decoder would decode) becomes encoded-words.
  bool plain = s.find("=?") == std::string_view::npos;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    plain = plain && u >= 0x20 && u < 0x7f;
  }
  if (!plain) return encode_words(s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
  return out;
}

std::string format_mailbox(std::string_view name, std::string_view address) {
  if (name.empty()) return "<" + std::string(address) + ">";
  return encode_phrase(name) + " <" + std::string(address) + ">";
}

std::string encode_address_list(std::string_view utf8) {
  auto list = parse_addresses(utf8);
  if (list.empty()) throw std::invalid_argument("holds no address");
  std::string out;
  for (const auto& a : list) {
    if (a.address.empty()) throw std::invalid_argument("holds a mailbox without an address");
    if (!out.empty()) out += ", ";
    out += format_mailbox(a.name, a.address);
  }
  return out;
}

std::string unfold(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c != '\r' && c != '\n') out += c;
  }
  return out;
}

std::string decode_text(std::string_view raw) {
  init_gmime();
  const std::string text = unfold(raw);
  std::unique_ptr<char, gfree> d(g_mime_utils_header_decode_text(nullptr, text.c_str()));
  return d ? std::string(d.get()) : text;
}

std::vector<mail_address> parse_addresses(std::string_view raw) {
  init_gmime();
  const std::string text = unfold(raw);
  std::vector<mail_address> out;
  InternetAddressList* list = internet_address_list_parse(nullptr, text.c_str());
  if (!list) return out;
  collect(list, out, 0);
  g_object_unref(list);
  return out;
}

std::vector<std::string> field_values(std::string_view head, std::string_view name) {
  std::vector<std::string> out;
  bool in_field = false;
  std::size_t pos = 0;
  while (pos < head.size()) {
    std::size_t eol = head.find('\n', pos);
    std::size_t next = eol == std::string_view::npos ? head.size() : eol + 1;
    std::string_view line = head.substr(pos, next - pos);
    pos = next;
    if (!line.empty() && is_wsp(line[0])) {
      if (in_field) out.back() += unfold(line);
      continue;
    }
    in_field = false;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view fname = line.substr(0, colon);
    while (!fname.empty() && is_wsp(fname.back()))
      fname.remove_suffix(1);
    if (!iequals(fname, name)) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && is_wsp(value.front()))
      value.remove_prefix(1);
    out.push_back(unfold(value));
    in_field = true;
  }
  return out;
}

std::optional<std::string> prefix_subject(std::optional<std::string_view> raw,
                                          std::string_view prefix) {
  const std::string core_prefix(trim(prefix));
  std::string_view body = raw ? *raw : std::string_view();
  while (!body.empty() && is_wsp(body.front()))
    body.remove_prefix(1);
  if (body.empty()) return encode_text(core_prefix);
  const std::string decoded = decode_text(body);
  if (contains_ci(decoded, core_prefix)) return std::nullopt;

  std::size_t first_end = 0;
  while (first_end < body.size() && !is_wsp(body[first_end]))
    ++first_end;
  const bool starts_encoded = looks_encoded(body.substr(0, first_end));
  std::size_t ws = prefix.size();
  while (ws > 0 && is_wsp(prefix[ws - 1]))
    --ws;
  const std::string_view trailing = prefix.substr(ws);
  const std::string_view head_part = prefix.substr(0, ws);

  if (encode_text(prefix) == prefix) {  // printable ASCII, no encoded-word look-alike
    if (!trailing.empty() || !starts_encoded) return std::string(prefix) + std::string(body);
    // "[TAG]" glued to an encoded-word: an encoded-word must stand alone (§5), so the
    // prefix becomes an encoded-word too; the space between two is not displayed (§6.2).
    return encode_words(prefix) + " " + std::string(body);
  }
  if (starts_encoded) return encode_words(prefix) + " " + std::string(body);
  if (!trailing.empty()) return encode_text(head_part) + std::string(trailing) + std::string(body);
  const std::string enc = encode_text(prefix);
  if (!enc.ends_with("?=")) return enc + std::string(body);
  // A non-ASCII prefix glued to a plain word: no encoded form keeps both apart, so the
  // whole subject is encoded again from its decoded text.
  return encode_text(std::string(prefix) + decoded);
}

}  // namespace sluice::rewrite
