// header_text.hpp — the RFC 5322 / RFC 2047 pieces the rewrite stage needs: field-name and
// value checks, encoded-words out (our own encoder, so the output is exact and testable),
// decoding and address parsing in (GMime, which already decodes every charset and the
// obsolete syntax the mime stage accepts), and the subject prefix.
//
// Pure functions; thread-safe once init_gmime() has run (the factory calls it at startup).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/parsed_message.hpp"

namespace sluice::rewrite {

void init_gmime();

// RFC 5322 §3.6.8: 1*ftext, ftext = %d33-57 / %d59-126 (printable ASCII but ':'); at most
// 76 characters so that "Name: " fits a line.
bool valid_field_name(std::string_view name);
bool valid_utf8(std::string_view s);
bool is_ascii(std::string_view s);
// Empty when the value is acceptable as a header value to be set (UTF-8, no CR, LF or
// other control character but TAB, at most 4096 bytes); otherwise what is wrong.
std::string value_problem(std::string_view value);

// Address headers carry phrases and addr-specs (their display names are encoded); other
// known structured fields cannot take non-ASCII text at all; the rest is unstructured.
enum class field_kind { address, structured, unstructured };
field_kind kind_of(std::string_view name);

// RFC 2047 encoded-words (UTF-8, Q or B, whichever is shorter) of `utf8`, each at most 75
// characters, separated by single spaces; Q uses only the characters §5(3) allows in a
// phrase, so the result is valid in any context.
std::string encode_words(std::string_view utf8);
// An unstructured value (Subject, X-…): words that are ASCII stay as they are, runs of
// words with non-ASCII (or that look like an encoded-word) become encoded-words.
std::string encode_text(std::string_view utf8);
// A display name: a quoted-string when ASCII, encoded-words otherwise.
std::string encode_phrase(std::string_view utf8);
// "Name" <addr>, or <addr> without a name (as Mailpit writes an overridden From).
std::string format_mailbox(std::string_view name, std::string_view address);
// Re-renders an address list given in UTF-8 with its display names encoded. Throws
// std::invalid_argument when nothing in it parses as an address.
std::string encode_address_list(std::string_view utf8);

// RFC 2047 decoding of an unstructured value (unfolded first), to UTF-8.
std::string decode_text(std::string_view raw);
// The mailboxes of an address-list value (groups flattened), names decoded.
std::vector<mail_address> parse_addresses(std::string_view raw);

// Removes the CRLF / LF of folded lines (RFC 5322 §2.2.3).
std::string unfold(std::string_view value);
// The values of every field `name` of a header block, in order, unfolded, leading
// whitespace removed.
std::vector<std::string> field_values(std::string_view head, std::string_view name);

// The new raw Subject value with `prefix` before the current raw value `raw` (std::nullopt
// for a message without a Subject field: the result is then the prefix alone, trimmed).
// Returns std::nullopt when the decoded subject already holds the prefix
// (case-insensitively, surrounding spaces ignored), so a prefix is never added twice.
// Encoded-words of the original are kept byte for byte; the prefix is encoded when it must
// be (non-ASCII, or when it must join an encoded-word without a space between).
std::optional<std::string> prefix_subject(std::optional<std::string_view> raw,
                                          std::string_view prefix);

}  // namespace sluice::rewrite
