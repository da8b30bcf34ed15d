// plugins/relay/src/protocol.hpp — the pure pieces of the SMTP client: reply parsing
// (RFC 5321 §4.2, multiline), EHLO keyword parsing, dot-stuffing (§4.5.2) with line-end
// normalisation, the SASL client messages (PLAIN RFC 4616, LOGIN, CRAM-MD5 RFC 2195,
// XOAUTH2), the choice of a mechanism, and recipient patterns.
//
// Pure functions and small value types: thread-safe, no I/O, no exceptions except
// std::regex_error from recipient_filter's constructor (startup only). Secrets pass
// through the SASL helpers but are never kept or logged by them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/base64.hpp"

namespace sluice::relay {

// One complete server reply: "250-a" "250 b" gives code 250, lines {"a", "b"}.
struct smtp_reply {
  int code = 0;                    // 0: no reply (connection lost, timeout, garbage)
  std::string enhanced;            // RFC 3463 code of the first line ("5.1.1"), if any
  std::vector<std::string> lines;  // text after "NNN-"/"NNN ", enhanced code kept

  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
  // The lines joined with " / " (what a verdict or log shows), bounded.
  std::string text() const;
  // "550 5.1.1 <text>" for logs and reports.
  std::string summary() const;
};

// Accumulates received bytes and yields complete replies. A line longer than
// max_line or a reply of more than max_lines lines is a protocol error.
class reply_parser {
 public:
  enum class status { incomplete, complete, error };
  explicit reply_parser(std::size_t max_line = 4096, std::size_t max_lines = 512)
      : max_line_(max_line), max_lines_(max_lines) {}
  // Feeds bytes; call next() until it returns incomplete.
  void feed(std::string_view bytes) { buf_.append(bytes); }
  // Extracts the next complete reply into out.
  status next(smtp_reply& out, std::string& error);
  bool empty() const { return buf_.empty() && lines_.empty(); }
  // Drops buffered input (after STARTTLS: nothing sent in clear may be trusted).
  void clear() {
    buf_.clear();
    lines_.clear();
  }

 private:
  std::size_t max_line_, max_lines_;
  std::string buf_;
  std::vector<std::string> lines_;
  int code_ = 0;
};

// Splits a leading RFC 3463 enhanced code ("5.7.1 text") off a reply line.
std::string enhanced_code_of(std::string_view line);

// EHLO keywords (upper-cased) and their parameters.
struct capabilities {
  std::map<std::string, std::string> keywords;  // "SIZE" -> "10240000", "AUTH" -> "PLAIN LOGIN"
  bool esmtp = false;                           // EHLO was answered (not HELO)

  bool has(std::string_view kw) const { return keywords.count(std::string(kw)) > 0; }
  // SIZE limit; 0 for none or no limit announced.
  std::uint64_t size_limit() const;
  // AUTH mechanisms, upper-cased (also from the old "AUTH=" form).
  std::vector<std::string> auth_mechanisms() const;
};
capabilities parse_ehlo(const smtp_reply& r);

// Writes a message as DATA content: CRLF line ends (bare LF and bare CR become CRLF), a
// '.' at the start of a line doubled (RFC 5321 §4.5.2). Stateful across chunks; finish()
// returns the tail (a CRLF if the content did not end with one, then ".\r\n").
class dot_stuffer {
 public:
  void encode(std::string_view in, std::string& out);
  std::string finish();

 private:
  bool line_start_ = true;
  bool pending_cr_ = false;
};

// SASL client side (base64 from sluice/base64.hpp).
// RFC 4616: authzid NUL authcid NUL passwd.
std::string sasl_plain(std::string_view authzid, std::string_view user, std::string_view password);
// RFC 2195: "user SP hex(HMAC-MD5(password, challenge))".
std::string cram_md5_response(std::string_view user, std::string_view password,
                              std::string_view challenge);
// Google/Microsoft XOAUTH2: "user=" user ^A "auth=Bearer " token ^A ^A.
std::string xoauth2(std::string_view user, std::string_view token);

enum class mechanism { plain, login, cram_md5, xoauth2 };
std::string_view to_string(mechanism m);
std::optional<mechanism> mechanism_from_string(std::string_view s);
// The strongest mechanism both sides have: XOAUTH2 when a token is configured, else
// CRAM-MD5 (no password on the wire), PLAIN, LOGIN. nullopt when none matches.
std::optional<mechanism> choose_mechanism(const std::vector<std::string>& offered, bool have_token,
                                          bool have_password);

// Allowed and blocked recipient patterns (ECMAScript regular expressions, searched in the
// address, case-insensitive, as Mailpit's allowed-recipients/blocked-recipients). An
// address passes when it matches some allowed pattern (or none are set) and no blocked one.
class recipient_filter {
 public:
  recipient_filter() = default;
  // Throws std::regex_error for a bad pattern (with its index in *bad).
  recipient_filter(const std::vector<std::string>& allowed,
                   const std::vector<std::string>& blocked);
  enum class result { pass, not_allowed, blocked };
  result check(std::string_view address) const;

 private:
  std::vector<std::regex> allowed_, blocked_;
};

// True when the address has a byte outside US-ASCII (needs SMTPUTF8, RFC 6531).
bool needs_utf8(std::string_view s);
// The domain of an address ("" for none); lower-cased, without a trailing dot.
std::string domain_of(std::string_view address);
// An address is safe to put into a command: no CR, LF, NUL, '<' or '>', and bounded.
bool safe_path(std::string_view address);

}  // namespace sluice::relay
