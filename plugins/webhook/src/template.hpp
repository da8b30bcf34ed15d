// template.hpp — `{{name}}` placeholders in the webhook's JSON body template and URL.
//
// A body template is a JSON document. Placeholders live inside its string values (object
// keys are left as they are): a string that
// is exactly one placeholder ("{{summary}}", "{{size}}", "{{to}}") becomes the field's JSON
// value with its type (object, number, array); a placeholder inside a longer string is
// replaced by the field's text (arrays joined with ", "). The result is serialized by
// Boost.JSON, so every character a message supplies is escaped as JSON requires — a
// subject cannot break out of its string.
//
// A URL template substitutes each placeholder percent-encoded (everything but RFC 3986
// unreserved characters), so a field cannot add a path, query, user or port.
//
// Both are checked when the configuration is loaded: the JSON must parse, every
// placeholder must name a known field, and the URL must be absolute http(s).
// Immutable after parse; render() is thread-safe.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "fields.hpp"

namespace sluice::webhook {

// Throws std::invalid_argument with a message for the user.
class json_template {
 public:
  static json_template parse(std::string_view text);
  std::string render(const field_map& fields) const;
  const boost::json::value& root() const { return root_; }

 private:
  boost::json::value root_;
};

class url_template {
 public:
  static url_template parse(std::string_view text);
  // The URL with every placeholder substituted (percent-encoded).
  std::string render(const field_map& fields) const;
  // Whether any placeholder appears (the SSRF guard applies).
  bool templated() const { return templated_; }
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  bool templated_ = false;
};

// Replaces each {{name}} in `s` with text(name); throws std::invalid_argument for an
// unknown name or a "{{" without a valid name and "}}".
std::string substitute(std::string_view s, const field_map& fields, bool percent_encode);

// The text form of a field value: strings as they are, numbers and booleans as JSON,
// arrays joined with ", ", objects as JSON, null as "".
std::string field_text(const boost::json::value& v);

// At most `limit` bytes of `s` as valid UTF-8 on one line, for reports and verdict texts:
// control characters become spaces, ill-formed sequences (overlong forms, surrogates,
// code points past U+10FFFF, stray continuation bytes) U+FFFD, and a character is never
// cut in half.
std::string one_line_excerpt(std::string_view s, std::size_t limit);

// RFC 3986 percent-encoding of everything but ALPHA / DIGIT / "-" / "." / "_" / "~".
std::string percent_encode(std::string_view s);

}  // namespace sluice::webhook
