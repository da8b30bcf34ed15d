// send.hpp — POST /api/v1/send: Mailpit's SendRequest turned into a MIME message (GMime)
// and submitted through the listener's pipeline like mail received over SMTP.
//
// Structure of the built message (RFC 2045–2049, RFC 2387 for related):
//   text only                     text/plain
//   text + HTML                   multipart/alternative (text/plain, text/html)
//   inline parts (ContentID)      the HTML (or, without HTML, the body) wrapped in
//                                 multipart/related with the inline parts
//   attachments                   multipart/mixed (body, attachments…)
// Display names and the subject are RFC 2047 encoded when not ASCII, file names RFC 2231;
// text parts are UTF-8 in quoted-printable or base64 (whichever GMime finds best for
// 7-bit transport), attachments base64; lines end in CRLF. Like Mailpit, no Received:
// header is added; Message-ID (<id@host>) and Date are set unless given in Headers.
//
// build_send_message() is pure (no I/O) and may run on any thread once GMime is
// initialised (add_api_routes does it). It never throws for bad input: a non-empty
// `error` is the 400 text, in Mailpit's wording where Mailpit has one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

namespace sluice::http {

inline constexpr std::size_t kMaxSendRecipients = 1000;
inline constexpr std::size_t kMaxSendHeaders = 100;
inline constexpr std::size_t kMaxSendAttachments = 1000;

struct built_message {
  std::string error;  // why the request is refused (400); empty on success
  std::string mime;   // the message, CRLF line ends
  std::string mail_from;
  std::vector<std::string> recipients;  // To, Cc, Bcc in order, duplicates removed
};

// `message_id` is the local part of the Message-ID to set (the Sluice message id),
// `host` its domain; `now_ms` the Date.
built_message build_send_message(const boost::json::object& req, const std::string& message_id,
                                 const std::string& host, std::int64_t now_ms);

// Go's http.DetectContentType for the formats a mail attachment is likely to be
// (WHATWG MIME sniffing signatures); "application/octet-stream" when unknown.
std::string sniff_content_type(std::string_view data);

// A plain RFC 5321/5322 address "local@domain" (UTF-8 allowed, RFC 6531), at most 254
// bytes, without display name, brackets, spaces or control characters.
bool valid_email(std::string_view a);

// RFC 4648 base64 (standard alphabet); CR, LF, spaces and tabs are skipped, padding is
// optional. Returns false with Go's wording in error ("illegal base64 data at input
// byte N").
bool decode_base64(std::string_view in, std::string& out, std::string& error);

}  // namespace sluice::http
