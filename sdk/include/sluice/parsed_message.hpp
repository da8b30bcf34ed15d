// sluice/parsed_message.hpp — the parsed view of a message.
//
// The MIME stage parses each message once (GMime) and attaches this view to the message
// as the attribute "mime" (to_json below). The store keeps it, so that reading a message
// over the API never parses MIME again: text and HTML are kept decoded, and every part
// records where its encoded content lies in the raw message (the bytes exactly as
// received, which never change), so a part is served by slicing and decoding, not by
// re-parsing.
//
// Every string is valid UTF-8 (charsets converted, RFC 2047 and RFC 2231 decoded, invalid
// bytes replaced by U+FFFD). A view of a malformed message holds what could be parsed and
// lists the problems found; it is never absent because the message was bad.
//
// Value types; no threading concerns.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

namespace sluice {

// One mailbox of an address header (RFC 5322 §3.4); groups are flattened.
struct mail_address {
  std::string name;     // display name, decoded; may be empty
  std::string address;  // addr-spec; may be empty when the header was unparseable
  friend bool operator==(const mail_address&, const mail_address&) = default;
};

// A message's From as Mailpit reads it: the first address of the parsed field. A field
// that holds no address (nothing parsed, or only a word without "@" and without a name:
// "From: root", "From: Just A Name" read loosely) is kept as the name, as Go's net/mail
// leaves it and Mailpit's Store stores it; nothing for an empty field.
std::optional<mail_address> from_address(const std::vector<mail_address>& parsed,
                                         std::string_view field_text);

// A leaf MIME part (or a message/rfc822 part kept whole).
struct mime_part {
  // The part's position in the MIME tree as IMAP section numbers (RFC 3501 §6.4.5):
  // "1", "2", "2.1", … ; a message that is not multipart has one part, "1". Stable for a
  // given message; opaque to API clients.
  std::string part_id;
  std::string content_type;  // "type/subtype", lower case (default text/plain)
  std::string charset;       // lower case, empty if none
  std::string file_name;     // Content-Disposition filename or Content-Type name, decoded
  std::string content_id;    // without angle brackets
  std::string disposition;   // "inline", "attachment" or empty
  // Content-Transfer-Encoding, lower case: "7bit", "8bit", "binary", "base64",
  // "quoted-printable", "x-uuencode"; empty means 7bit.
  std::string transfer_encoding;
  // Where the part's encoded content (after its header block) starts in the raw message
  // as received, and how many bytes it spans. Decoding raw[offset, offset+length) with
  // transfer_encoding gives the part's content.
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint64_t size = 0;  // decoded size in bytes
  std::string md5;         // lower-case hex digests of the decoded content
  std::string sha1;
  std::string sha256;
};

// RFC 2369 List-Unsubscribe and RFC 8058 List-Unsubscribe-Post, checked.
struct list_unsubscribe {
  std::string header;              // List-Unsubscribe as found (unfolded), empty if none
  std::vector<std::string> links;  // the <…> URIs in order
  std::string errors;              // what is wrong with it; empty when valid
  std::string header_post;         // List-Unsubscribe-Post as found, empty if none
};

struct parsed_message {
  std::optional<mail_address> from;  // first mailbox of From
  std::vector<mail_address> to;
  std::vector<mail_address> cc;
  std::vector<mail_address> bcc;
  std::vector<mail_address> reply_to;
  std::string return_path;  // address of Return-Path, without brackets
  std::string sender;       // address of Sender, without brackets
  std::string subject;
  std::string message_id;               // without angle brackets
  std::optional<std::int64_t> date_ms;  // Date header, when present and parseable
  // The offset the Date header was written with, in minutes east of UTC (with date_ms).
  std::optional<int> date_offset_min;
  std::string text;          // the text/plain body, decoded
  std::string html;          // the text/html body, decoded
  std::string text_part_id;  // part ids of those bodies, empty if none
  std::string html_part_id;
  // Parts shown inline in the HTML (with a Content-ID or an inline disposition), other
  // than the bodies above; Mailpit's "Inline".
  std::vector<mime_part> inline_parts;
  std::vector<mime_part> attachments;  // everything else that is not a body
  sluice::list_unsubscribe list_unsubscribe;
  // Up to 200 characters of the text (or of the HTML turned into text), whitespace
  // collapsed, followed by "..." when cut; Mailpit's "Snippet".
  std::string snippet;
  // The body as plain text for the search index: the HTML turned into text when there is
  // HTML, else the text. A store indexes it and need not keep it with the view.
  std::string search_text;
  // Problems found while parsing ("missing closing boundary in part 2", "unknown
  // charset x-foo in part 1.1, read as ISO-8859-1", …); empty for a clean message.
  std::vector<std::string> problems;
};

// The "mime" attribute. from_json takes missing or mistyped members as defaults.
boost::json::object to_json(const parsed_message& m);
parsed_message parsed_message_from_json(const boost::json::object& o);
boost::json::object to_json(const mime_part& p);
mime_part mime_part_from_json(const boost::json::object& o);

}  // namespace sluice
