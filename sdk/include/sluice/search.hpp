// sluice/search.hpp — the search language of the mailbox API (Mailpit's, and more).
//
// A query is a list of terms, all of which must hold (AND). Terms are separated by
// whitespace; "double quoted" text is one term (a phrase); a leading `-` or `!` negates a
// term. Terms:
//
//   word, "a phrase"          text anywhere: subject, addresses, body text, file names
//   from: to: cc: bcc: reply-to:   that address header (name or address)
//   addressed:                any of From, To, Cc, Bcc, Reply-To
//   subject: message-id:      that header
//   tag:                      a tag, exactly (case-insensitive)
//   header:Name:value         any header called Name whose value contains value;
//                             header:Name alone: the header is present
//   is:read is:unread is:tagged
//   has:attachment(s) has:inline(s)
//   larger:SIZE smaller:SIZE  size with an optional unit K, KB, M, MB, G, GB (1K = 1024)
//   before:DATE after:DATE    a date (YYYY-MM-DD, YYYY/MM/DD, M/D/YYYY (US order, as
//                             Mailpit), with an optional time HH:MM[:SS]; RFC 3339;
//                             RFC 5322 dates; "Dec 7, 2026"; YYYYMMDD; a Unix time in
//                             seconds or milliseconds; "today", "yesterday") in the query's
//                             time zone
//
// Matching of text is case-insensitive over all of Unicode (Ä matches ä) and by substring,
// as Mailpit does; a prefix keyword that is not listed above is an ordinary word. As in
// Mailpit, an unknown is:/has: value and a larger:/smaller: that is no size are searched
// as text, and a before:/after: whose date cannot be read is ignored.
//
// parse_search() only parses; a mailbox implementation compiles the terms to its own
// query language (the SQLite store to FTS5 and SQL).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {

// A query that cannot be understood; what() is safe to show the client.
class search_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct search_term {
  enum class field : std::uint8_t {
    text,  // value: the word or phrase
    from,  // value: text to find in the header's names and addresses
    to,
    cc,
    bcc,
    reply_to,
    addressed,  // any address header
    subject,
    message_id,
    tag,     // value: the tag name
    header,  // header_name, value (empty value: present)
    is_read,
    is_unread,
    is_tagged,
    has_attachment,
    has_inline,
    larger,  // size: bytes
    smaller,
    before,  // time: a civil time in the query's zone (see civil_time)
    after,
  };
  field kind = field::text;
  bool negated = false;
  std::string value;        // lower-case-insensitive text as written (quotes removed)
  std::string header_name;  // for field::header
  // A text term that was written as a keyword Mailpit searches as text (is:starred,
  // larger:huge): matched as that exact text, never by the words in it.
  bool literal = false;
  std::uint64_t size = 0;  // for larger/smaller
  // before/after: a local date and time in the query's time zone; the mailbox converts
  // it with the request's tz. As in Mailpit, a date without a time is that day's 00:00:
  // before:DATE is created at or before it, after:DATE at or after it (so after:today is
  // today's mail).
  struct civil_time {
    int year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0;
    int millisecond = 0;  // a Unix time in ms, or the fraction of a written time
    bool has_time = false;
    // Set when the text carried its own offset (RFC 3339, RFC 5322): minutes east of
    // UTC; the request's tz is then ignored.
    bool has_offset = false;
    int offset_minutes = 0;
    // "today" (0) and "yesterday" (1): that many days before the current date in the
    // request's zone, which only the mailbox knows; -1 for a written date.
    int days_ago = -1;
  } time;
};

struct search_query {
  std::vector<search_term> terms;
  bool empty() const noexcept { return terms.empty(); }
};

// lenient: Mailpit's reading of what a client sends (an unknown is:/has: value and a bad
// size are text, an unreadable date is ignored). strict: those are errors too, for
// queries an operator writes into the configuration (tag rules).
enum class search_mode { lenient, strict };

// Parses a query. Throws search_error for an unterminated quote, a header: term without a
// valid name, a query longer than 4096 bytes or with more than 64 terms, and in strict
// mode for the terms above.
search_query parse_search(std::string_view query, search_mode mode = search_mode::lenient);

}  // namespace sluice
