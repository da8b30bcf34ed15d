// scan_input.hpp — what a spam engine looks at, gathered once per message.
//
// Built from the message as it stands when the spam stage runs: the header block as it
// would leave (edits applied), the parsed MIME view the mime stage attached as attribute
// "mime" (when there is none, a minimal view is derived from the header block so that
// header rules still work), the envelope, and the "auth" attribute (SPF/DKIM/DMARC).
// Also the URIs of the text and HTML bodies, each with the text of its HTML link.
//
// Value type; building it allocates but never throws on odd input (a header without a
// colon is skipped, an unparseable URI is kept as text with an empty host).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

#include "sluice/message.hpp"
#include "sluice/parsed_message.hpp"

namespace sluice::spam {

struct uri {
  std::string text;       // as found (bounded)
  std::string host;       // lower case, without port and userinfo; brackets kept for IPv6
  std::string link_text;  // the anchor's visible text for HTML links, else empty
  bool from_html = false;
};

struct scan_limits {
  std::size_t max_body_bytes = 256 * 1024;  // text and HTML looked at by body rules, each
  std::size_t max_uris = 500;               // URIs extracted per message
  std::size_t max_header_bytes = 256 * 1024;
};

struct scan_input {
  std::string header_block;                                  // unfolded, "Name: value\n" per field
  std::vector<std::pair<std::string, std::string>> headers;  // name, unfolded value
  parsed_message view;
  bool have_view = false;      // the mime attribute was present
  std::string body;            // Subject + text + HTML-as-text, bounded (what body rules see)
  std::size_t recipients = 0;  // envelope recipients
  boost::json::object auth;    // the "auth" attribute, or empty
  std::vector<spam::uri> uris;
  std::string raw_prefix;  // up to max_body_bytes of the raw body, when there is no view

  // The first value of a header field (case-insensitive name), or nullptr.
  const std::string* header(std::string_view name) const;
};

// Splits a header block into unfolded fields. Stops at the empty line.
std::vector<std::pair<std::string, std::string>> split_headers(std::string_view block,
                                                               std::size_t limit);

scan_input make_scan_input(const message& msg, const scan_limits& limits);
// For the trainer and tests: the same from a header block and a parsed view.
scan_input make_scan_input(std::string_view header_block, parsed_message view,
                           std::size_t recipients, const scan_limits& limits);

// URIs in plain text (http://, https://, ftp://, www.) and in HTML (<a href> with its
// link text, plus <img src>, <form action>).
void extract_text_uris(std::string_view text, std::size_t max, std::vector<uri>& out);
void extract_html_uris(std::string_view html, std::size_t max, std::vector<uri>& out);
// The host part of a URI ("http://user@Ex.COM:80/x" → "ex.com"); "" if none.
std::string uri_host(std::string_view u);
// True for dotted-quad, integer/hex-encoded IPv4 and bracketed IPv6 hosts.
bool is_ip_literal(std::string_view host);
// An approximation of the registrable domain: the last two labels, or three when the
// second-to-last is a short generic second-level label (co.uk, com.au, …).
std::string base_domain(std::string_view host);

}  // namespace sluice::spam
