// text.hpp — text helpers of the MIME stage: charsets to UTF-8, HTML to text, snippets.
//
// Threading: pure functions (iconv descriptors are opened per call). Failure: never throws for bad
// input; conversions replace what they cannot read by U+FFFD and say so.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace sluice::mime {

// Initialises GMime and libxml2 once per process (thread-safe, idempotent); neither is
// ever shut down, as plugins are never unloaded. Every function here calls it.
void init_libraries();

bool valid_utf8(std::string_view s);
// Replaces every invalid sequence by U+FFFD; returns how many were replaced.
std::size_t make_valid_utf8(std::string& s);
// Cuts s to at most max bytes without splitting a UTF-8 sequence.
void truncate_utf8(std::string& s, std::size_t max);

enum class charset_outcome {
  ok,
  no_charset_fallback,       // 8-bit bytes without a charset, read with the fallback charset
  unknown_charset_utf8,      // charset not known to iconv; the bytes were valid UTF-8
  unknown_charset_fallback,  // charset not known to iconv, read with the fallback charset
  invalid_bytes,             // bytes invalid in the charset were replaced by U+FFFD
};

// Converts `bytes` declared as `charset` (may be empty) to UTF-8. Valid UTF-8 without a
// charset (or with an unknown one) is kept as UTF-8; otherwise `fallback` is used.
std::string to_utf8(std::string_view bytes, std::string_view charset, std::string_view fallback,
                    charset_outcome& outcome);

// Whether iconv knows the charset (for configuration checks).
bool charset_known(std::string_view charset);

// The text of an HTML document, parsed with libxml2's HTML parser: script, style, head
// and template content dropped, entities decoded, blocks and line breaks as new lines,
// runs of white space collapsed.
std::string html_to_text(std::string_view html);

// Both texts of one walk: `plain` as html_to_text; `with_links` also gives each link's
// target after its text, as enmime's down-conversion does ("reset ( https://… )",
// "mail ( x@example.com )"), which Mailpit shows as an HTML-only message's Text.
struct html_texts {
  std::string plain;
  std::string with_links;
};
html_texts html_to_texts(std::string_view html);

// Up to 200 characters of `text` with all white space collapsed to single spaces; "..."
// is appended when it was cut.
std::string make_snippet(std::string_view text);

}  // namespace sluice::mime
