// send.cpp — see send.hpp. The handler validates the body size and JSON on the I/O
// thread, builds the MIME message on the host's worker pool (it can be tens of MB), then
// submits it to the listener's pipeline and maps the verdict: accepted (also discarded or
// quarantined, which the client sees as accepted, as over SMTP) → 200 {"ID": id};
// rejected → 400, temporary failure → 503, both {"Error": reply text}.
#include "send.hpp"

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <set>

#include <gmime/gmime.h>

#include "api.hpp"
#include "api_util.hpp"
#include "sluice/base64.hpp"
#include "sluice/listener.hpp"
#include "sluice/message.hpp"
#include "sluice/text.hpp"

namespace sluice::http {
namespace {

namespace json = boost::json;
using api::go_field;

struct gobject_deleter {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};
template <class T>
using gptr = std::unique_ptr<T, gobject_deleter>;

// Headers a request may not set (Mailpit's list; compared case-insensitively here, where
// Mailpit compares exactly and so lets "to" through). Content-Transfer-Encoding would
// corrupt the structure GMime writes.
constexpr std::string_view kRestricted[] = {
    "To",   "From",    "Cc",           "Bcc",          "Reply-To",
    "Date", "Subject", "Content-Type", "Mime-Version", "Content-Transfer-Encoding"};

// Replaces control characters (CR, LF, NUL, …) by spaces: a display name or subject must
// stay one header value.
std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return out;
}

struct address {
  std::string email;
  std::string name;
};

// [{Email, Name?}] (or for Bcc [string]).
bool read_addresses(const json::object& o, std::string_view field, std::string_view label,
                    bool strings_only, std::vector<address>& out, std::string& error) {
  const json::value* v = go_field(o, field);
  if (!v || v->is_null()) return true;
  if (!v->is_array()) {
    error = std::string(field) + " must be an array";
    return false;
  }
  for (const auto& e : v->get_array()) {
    address a;
    if (strings_only) {
      if (!e.is_string()) {
        error = std::string(field) + " must be an array of email addresses";
        return false;
      }
      a.email = std::string(trim(e.get_string()));
    } else {
      if (!e.is_object()) {
        error = std::string(field) + " must be an array of {\"Email\", \"Name\"} objects";
        return false;
      }
      std::string email, name;
      if (!api::read_string(e.get_object(), "Email", email, error) ||
          !api::read_string(e.get_object(), "Name", name, error)) {
        error = std::string(field) + ": " + error;
        return false;
      }
      a.email = std::string(trim(email));
      a.name = one_line(name);
    }
    if (!valid_email(a.email)) {
      error = "invalid " + std::string(label) + " address: " + a.email;
      return false;
    }
    out.push_back(std::move(a));
  }
  return true;
}

bool is_binary_byte(unsigned char c) {
  return c <= 0x08 || c == 0x0b || (c >= 0x0e && c <= 0x1a) || (c >= 0x1c && c <= 0x1f);
}

// The part's content from a byte string (GMime copies it).
void set_content(GMimePart* part, std::string_view data) {
  gptr<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(data.data(), data.size()));
  gptr<GMimeDataWrapper> wrapper(
      g_mime_data_wrapper_new_with_stream(stream.get(), GMIME_CONTENT_ENCODING_DEFAULT));
  g_mime_part_set_content(part, wrapper.get());
}

gptr<GMimePart> text_part(const char* subtype, std::string_view text) {
  gptr<GMimePart> p(g_mime_part_new_with_type("text", subtype));
  g_mime_object_set_content_type_parameter(GMIME_OBJECT(p.get()), "charset", "utf-8");
  set_content(p.get(), text);
  g_mime_part_set_content_encoding(
      p.get(), g_mime_part_get_best_content_encoding(p.get(), GMIME_ENCODING_CONSTRAINT_7BIT));
  return p;
}

struct attachment {
  std::string data;
  std::string filename;
  std::string content_type;
  std::string content_id;
};

bool read_attachments(const json::object& o, std::vector<attachment>& out, std::string& error) {
  const json::value* v = go_field(o, "Attachments");
  if (!v || v->is_null()) return true;
  if (!v->is_array()) {
    error = "Attachments must be an array";
    return false;
  }
  if (v->get_array().size() > kMaxSendAttachments) {
    error = "too many attachments (at most " + std::to_string(kMaxSendAttachments) + ")";
    return false;
  }
  for (const auto& e : v->get_array()) {
    if (!e.is_object()) {
      error = "Attachments must be an array of objects";
      return false;
    }
    const auto& a = e.get_object();
    std::string content;
    attachment att;
    if (!api::read_string(a, "Content", content, error) ||
        !api::read_string(a, "Filename", att.filename, error) ||
        !api::read_string(a, "ContentType", att.content_type, error) ||
        !api::read_string(a, "ContentID", att.content_id, error)) {
      error = "Attachments: " + error;
      return false;
    }
    att.filename = one_line(att.filename);
    att.content_id = std::string(trim(one_line(att.content_id)));
    if (att.content_id.size() >= 2 && att.content_id.front() == '<' &&
        att.content_id.back() == '>') {
      att.content_id = att.content_id.substr(1, att.content_id.size() - 2);
    }
    // JavaScript's readAsDataURL() gives "data:image/png;base64,<data>": keep what follows
    // the last comma, and the media type when none was given.
    std::string_view b64 = content;
    if (auto comma = b64.rfind(','); comma != std::string_view::npos) {
      std::string_view prefix = b64.substr(0, comma);
      b64 = b64.substr(comma + 1);
      if (att.content_type.empty() && prefix.starts_with("data:")) {
        std::string_view mt = prefix.substr(5);
        mt = mt.substr(0, mt.find(';'));
        if (mt.find('/') != std::string_view::npos) att.content_type = std::string(trim(mt));
      }
    }
    std::string why;
    if (!decode_base64(b64, att.data, why)) {
      error = "error decoding base64 attachment \"" + att.filename + "\": " + why;
      return false;
    }
    if (att.content_type.empty()) att.content_type = sniff_content_type(att.data);
    out.push_back(std::move(att));
  }
  return true;
}

gptr<GMimePart> attachment_part(const attachment& a, std::string& error) {
  gptr<GMimeContentType> ct(g_mime_content_type_parse(nullptr, a.content_type.c_str()));
  const char* type = ct ? g_mime_content_type_get_media_type(ct.get()) : nullptr;
  const char* subtype = ct ? g_mime_content_type_get_media_subtype(ct.get()) : nullptr;
  if (!type || !subtype || !*type || !*subtype || a.content_type.find('/') == std::string::npos) {
    error = "invalid ContentType \"" + a.content_type + "\" of attachment \"" + a.filename + "\"";
    return nullptr;
  }
  if (iequals(type, "multipart")) {
    error = "attachment \"" + a.filename + "\" cannot be of type multipart";
    return nullptr;
  }
  gptr<GMimePart> p(g_mime_part_new());
  g_mime_object_set_content_type(GMIME_OBJECT(p.get()), ct.get());
  set_content(p.get(), a.data);
  g_mime_part_set_content_encoding(p.get(), GMIME_CONTENT_ENCODING_BASE64);
  g_mime_object_set_disposition(GMIME_OBJECT(p.get()),
                                a.content_id.empty() ? "attachment" : "inline");
  if (!a.filename.empty()) g_mime_part_set_filename(p.get(), a.filename.c_str());
  if (!a.content_id.empty()) g_mime_part_set_content_id(p.get(), a.content_id.c_str());
  return p;
}

const std::string& host_name() {
  static const std::string name = [] {
    char buf[256] = {};
    std::string h = gethostname(buf, sizeof buf - 1) == 0 ? buf : "";
    // A Message-ID domain: keep it to letters, digits, '-' and '.'.
    std::string out;
    for (char c : h) {
      if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-' ||
          c == '.') {
        out += c;
      }
    }
    return out.empty() ? std::string("sluice") : out;
  }();
  return name;
}

// {"Error": text} with the status, as Mailpit answers the send endpoint.
response json_error(const request& req, bhttp::status s, std::string text) {
  return json_response(req, json::object{{"Error", std::move(text)}}, s);
}

// The listener instance name: the kernel names listener loggers "listener/<name>".
std::string listener_name(const api_env& env) {
  const std::string& c = env.log.component();
  constexpr std::string_view prefix = "listener/";
  if (c.starts_with(prefix)) return c.substr(prefix.size());
  return c.empty() ? std::string("http") : c;
}

boost::asio::awaitable<response> send_handler(request_context& ctx) {
  const auto& env = ctx.env;
  const std::uint64_t limit = env.max_send_bytes;
  if (limit > 0 && ctx.req.body().size() > limit) {
    co_return json_error(ctx.req, bhttp::status::payload_too_large,
                         "request body too large (limit " + std::to_string(limit) + " bytes)");
  }
  auto body = api::parse_json_body(ctx.req, limit > 0 ? limit : ctx.req.body().size());
  if (!body) co_return json_error(ctx.req, bhttp::status::bad_request, body.error);
  if (!env.submit) {
    co_return json_error(ctx.req, bhttp::status::service_unavailable,
                         "this listener has no pipeline to send messages to");
  }
  auto msg = std::make_shared<message>();
  msg->id = make_message_id();
  const std::int64_t now = api::now_ms();
  auto build = [req = std::move(body.value), id = msg->id, now] {
    return build_send_message(req.get_object(), id, host_name(), now);
  };
  built_message b = env.host ? co_await offload(*env.host, std::move(build)) : build();
  if (!b.error.empty()) co_return json_error(ctx.req, bhttp::status::bad_request, b.error);

  auto& e = msg->envelope;
  e.protocol = "HTTP";
  e.listener = listener_name(env);
  e.mail_from = b.mail_from;
  for (auto& r : b.recipients)
    e.recipients.push_back(recipient{std::move(r), {}});
  e.auth_user = ctx.user;
  e.received_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(now));
  msg->raw = message_body::from_string(std::move(b.mime));
  // As over SMTP (and Mailpit's HTTP send): the envelope sender as Return-Path.
  msg->prepend_header("Return-Path", "<" + e.mail_from + ">");
  // Sent through <webroot>mailbox/{name}/: the store stage keeps it in that mailbox, so a
  // Mailpit client pointed at a mailbox's base URL reads back what it sent.
  if (ctx.mailbox != env.default_mailbox) msg->attributes["mailbox"] = ctx.mailbox;

  const std::string id = msg->id;
  submit_result res = co_await env.submit->submit(std::move(msg));
  switch (res.kind) {
    case verdict_kind::reject:
      co_return json_error(ctx.req, bhttp::status::bad_request,
                           res.reply.text.empty() ? "message rejected" : res.reply.text);
    case verdict_kind::tempfail:
      co_return json_error(
          ctx.req, bhttp::status::service_unavailable,
          res.reply.text.empty() ? "temporary failure, try again later" : res.reply.text);
    default:
      co_return json_response(ctx.req, json::object{{"ID", res.id.empty() ? id : res.id}});
  }
}

}  // namespace

bool valid_email(std::string_view a) {
  if (a.empty() || a.size() > 254) return false;
  const auto at = a.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == a.size() || at > 64) return false;
  std::string_view local = a.substr(0, at), domain = a.substr(at + 1);
  for (unsigned char c : a) {
    if (c <= 0x20 || c == 0x7f) return false;
    if (c == '<' || c == '>' || c == '(' || c == ')' || c == ',' || c == ';' || c == '\\' ||
        c == '[' || c == ']' || c == '"')
      if (!(domain.starts_with('[') && (c == '[' || c == ']'))) return false;
  }
  if (local.find('@') != std::string_view::npos) return false;
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos)
    return false;
  if (domain.starts_with('[')) return domain.back() == ']' && domain.size() > 2;
  if (domain.front() == '.' || domain.back() == '.' || domain.find("..") != std::string_view::npos)
    return false;
  return domain.size() <= 253;
}

bool decode_base64(std::string_view in, std::string& out, std::string& error) {
  // The checks are ours, for Go's error offsets into `in`; the decoding is the SDK's. Once
  // they pass, the lenient decoder (which skips the white space and stops at the first '=')
  // sees only what they accepted.
  out.clear();
  std::size_t sextets = 0;
  bool padding = false;
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '\r' || c == '\n' || c == ' ' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    if (!sluice::is_base64_char(c) || padding) {
      error = "illegal base64 data at input byte " + std::to_string(i);
      return false;
    }
    ++sextets;
  }
  // A single leftover sextet cannot encode a byte.
  if (sextets % 4 == 1) {
    error = "illegal base64 data at input byte " + std::to_string(in.size());
    return false;
  }
  sluice::base64_decode_lenient(in, out);
  return true;
}

std::string sniff_content_type(std::string_view d) {
  const std::string_view head = d.substr(0, 512);
  auto starts = [&](std::string_view sig, std::size_t at = 0) {
    return head.size() >= at + sig.size() && head.substr(at, sig.size()) == sig;
  };
  using namespace std::string_view_literals;
  // Text signatures come after leading whitespace, matched case-insensitively.
  std::size_t ws = 0;
  while (ws < head.size() && (head[ws] == ' ' || head[ws] == '\t' || head[ws] == '\n' ||
                              head[ws] == '\r' || head[ws] == '\f'))
    ++ws;
  const std::string_view text = head.substr(ws);
  static constexpr std::string_view html_tags[] = {"<!DOCTYPE HTML",
                                                   "<HTML",
                                                   "<HEAD",
                                                   "<SCRIPT",
                                                   "<IFRAME",
                                                   "<H1",
                                                   "<DIV",
                                                   "<FONT",
                                                   "<TABLE",
                                                   "<A",
                                                   "<STYLE",
                                                   "<TITLE",
                                                   "<B",
                                                   "<BODY",
                                                   "<BR",
                                                   "<P",
                                                   "<!--"};
  for (auto tag : html_tags) {
    if (text.size() > tag.size() && iequals(text.substr(0, tag.size()), tag) &&
        (text[tag.size()] == ' ' || text[tag.size()] == '>')) {
      return "text/html; charset=utf-8";
    }
  }
  if (text.starts_with("<?xml")) return "text/xml; charset=utf-8";
  if (starts("%PDF-")) return "application/pdf";
  if (starts("%!PS-Adobe-")) return "application/postscript";
  if (starts("\xFE\xFF")) return "text/plain; charset=utf-16be";
  if (starts("\xFF\xFE")) return "text/plain; charset=utf-16le";
  if (starts("\xEF\xBB\xBF")) return "text/plain; charset=utf-8";
  if (starts("\x00\x00\x01\x00"sv)) return "image/x-icon";
  if (starts("\x00\x00\x02\x00"sv)) return "image/x-icon";
  if (starts("BM")) return "image/bmp";
  if (starts("GIF87a") || starts("GIF89a")) return "image/gif";
  if (starts("RIFF") && starts("WEBPVP", 8)) return "image/webp";
  if (starts("\x89PNG\r\n\x1a\n")) return "image/png";
  if (starts("\xFF\xD8\xFF")) return "image/jpeg";
  if (starts("ftyp", 4) && starts("mp4", 8)) return "video/mp4";
  if (starts("ftyp", 4) && (starts("isom", 8) || starts("mp41", 8) || starts("mp42", 8)))
    return "video/mp4";
  if (starts("\x1A\x45\xDF\xA3")) return "video/webm";
  if (starts("RIFF") && starts("AVI ", 8)) return "video/avi";
  if (starts("RIFF") && starts("WAVE", 8)) return "audio/wave";
  if (starts("OggS\x00"sv)) return "application/ogg";
  if (starts("ID3")) return "audio/mpeg";
  if (starts("fLaC")) return "audio/flac";
  if (starts("wOFF")) return "font/woff";
  if (starts("wOF2")) return "font/woff2";
  if (starts("OTTO")) return "font/otf";
  if (starts("\x00\x01\x00\x00"sv)) return "font/ttf";
  if (starts("\x1F\x8B\x08")) return "application/x-gzip";
  if (starts("PK\x03\x04")) return "application/zip";
  if (starts("Rar!\x1A\x07\x00"sv) || starts("Rar!\x1A\x07\x01\x00"sv))
    return "application/x-rar-compressed";
  if (starts("\x00\x61\x73\x6D"sv)) return "application/wasm";
  for (unsigned char c : head) {
    if (is_binary_byte(c)) return "application/octet-stream";
  }
  return "text/plain; charset=utf-8";
}

built_message build_send_message(const json::object& req, const std::string& message_id,
                                 const std::string& host, std::int64_t now_ms) {
  built_message out;
  std::string& error = out.error;

  // From (required).
  const json::value* from_v = go_field(req, "From");
  if (!from_v || from_v->is_null()) {
    error = "From is required";
    return out;
  }
  if (!from_v->is_object()) {
    error = "From must be an object {\"Email\", \"Name\"}";
    return out;
  }
  address from;
  if (!api::read_string(from_v->get_object(), "Email", from.email, error) ||
      !api::read_string(from_v->get_object(), "Name", from.name, error)) {
    error = "From: " + error;
    return out;
  }
  from.email = std::string(trim(from.email));
  from.name = one_line(from.name);
  if (from.email.empty()) {
    error = "From.Email is required";
    return out;
  }
  if (!valid_email(from.email)) {
    error = "invalid From address: " + from.email;
    return out;
  }

  std::vector<address> to, cc, bcc, reply_to;
  if (!read_addresses(req, "To", "To", false, to, error) ||
      !read_addresses(req, "Cc", "Cc", false, cc, error) ||
      !read_addresses(req, "Bcc", "Bcc", true, bcc, error) ||
      !read_addresses(req, "ReplyTo", "Reply-To", false, reply_to, error)) {
    return out;
  }
  if (to.size() + cc.size() + bcc.size() == 0) {
    error = "error building message: no recipients (to, cc, bcc) set";
    return out;
  }
  if (to.size() + cc.size() + bcc.size() > kMaxSendRecipients) {
    error = "too many recipients (at most " + std::to_string(kMaxSendRecipients) + ")";
    return out;
  }

  std::string subject, text, html;
  if (!api::read_string(req, "Subject", subject, error) ||
      !api::read_string(req, "Text", text, error) || !api::read_string(req, "HTML", html, error)) {
    return out;
  }
  std::vector<std::string> tags;
  if (!api::read_string_array(req, "Tags", tags, error)) return out;

  // Headers {name: value}.
  std::vector<std::pair<std::string, std::string>> headers;
  if (const json::value* hv = go_field(req, "Headers"); hv && !hv->is_null()) {
    if (!hv->is_object()) {
      error = "Headers must be an object of {\"Name\": \"value\"}";
      return out;
    }
    if (hv->get_object().size() > kMaxSendHeaders) {
      error = "too many headers (at most " + std::to_string(kMaxSendHeaders) + ")";
      return out;
    }
    for (const auto& kv : hv->get_object()) {
      const std::string name(kv.key());
      if (name.empty() || name.size() > 76) {
        error = "invalid header name: \"" + name + "\"";
        return out;
      }
      for (unsigned char c : name) {
        // RFC 5322 §3.6.8 field-name: printable ASCII except the colon.
        if (c < 33 || c > 126 || c == ':') {
          error = "invalid header name: \"" + name + "\"";
          return out;
        }
      }
      for (auto r : kRestricted) {
        if (iequals(name, r)) {
          error = "cannot overwrite header: \"" + name + "\"";
          return out;
        }
      }
      if (!tags.empty() && iequals(name, "X-Tags")) {
        error = "cannot overwrite header: \"" + name + "\"";
        return out;
      }
      if (!kv.value().is_string()) {
        error = "header \"" + name + "\" must have a string value";
        return out;
      }
      std::string value(kv.value().get_string());
      if (value.size() > 16384) {
        error = "header \"" + name + "\" is longer than 16384 bytes";
        return out;
      }
      for (unsigned char c : value) {
        // A CR or LF would start a new header field: header injection.
        if (c == '\r' || c == '\n' || c == 0) {
          error = "header \"" + name + "\" contains a line break or NUL";
          return out;
        }
      }
      headers.emplace_back(name, std::move(value));
    }
  }

  std::vector<attachment> atts;
  if (!read_attachments(req, atts, error)) return out;

  // ---- build ----
  gptr<GMimeMessage> msg(g_mime_message_new(TRUE));
  GMimeObject* mo = GMIME_OBJECT(msg.get());
  g_mime_message_add_mailbox(msg.get(), GMIME_ADDRESS_TYPE_FROM,
                             from.name.empty() ? nullptr : from.name.c_str(), from.email.c_str());
  auto add = [&](GMimeAddressType t, const std::vector<address>& v) {
    for (const auto& a : v)
      g_mime_message_add_mailbox(msg.get(), t, a.name.empty() ? nullptr : a.name.c_str(),
                                 a.email.c_str());
  };
  add(GMIME_ADDRESS_TYPE_TO, to);
  add(GMIME_ADDRESS_TYPE_CC, cc);
  // Like Mailpit (which records envelope recipients missing from the headers in Bcc),
  // the stored message shows its Bcc recipients.
  add(GMIME_ADDRESS_TYPE_BCC, bcc);
  add(GMIME_ADDRESS_TYPE_REPLY_TO, reply_to);
  g_mime_message_set_subject(msg.get(), one_line(subject).c_str(), "utf-8");
  {
    GDateTime* utc = g_date_time_new_from_unix_utc(now_ms / 1000);
    GDateTime* local = utc ? g_date_time_to_local(utc) : nullptr;
    if (local) g_mime_message_set_date(msg.get(), local);
    if (local) g_date_time_unref(local);
    if (utc) g_date_time_unref(utc);
  }
  bool has_message_id = false;
  for (const auto& [k, v] : headers)
    has_message_id = has_message_id || iequals(k, "Message-ID");
  if (!has_message_id) {
    g_mime_message_set_message_id(msg.get(), (message_id + "@" + host).c_str());
  }
  for (const auto& [k, v] : headers)
    g_mime_object_append_header(mo, k.c_str(), v.c_str(), "utf-8");
  if (!tags.empty()) {
    std::string joined;
    for (const auto& t : tags) {
      if (!joined.empty()) joined += ", ";
      joined += one_line(t);
    }
    g_mime_object_append_header(mo, "X-Tags", joined.c_str(), "utf-8");
  }

  // Body: text, HTML (+ related inline parts), then mixed with attachments.
  gptr<GMimeObject> body;
  std::vector<const attachment*> inlines, files;
  for (const auto& a : atts)
    (a.content_id.empty() ? files : inlines).push_back(&a);

  auto related = [&](gptr<GMimeObject> root, const char* root_type) -> gptr<GMimeObject> {
    if (inlines.empty()) return root;
    gptr<GMimeMultipart> rel(g_mime_multipart_new_with_subtype("related"));
    g_mime_object_set_content_type_parameter(GMIME_OBJECT(rel.get()), "type", root_type);
    g_mime_multipart_add(rel.get(), root.get());
    for (const auto* a : inlines) {
      auto p = attachment_part(*a, error);
      if (!p) return nullptr;
      g_mime_multipart_add(rel.get(), GMIME_OBJECT(p.get()));
    }
    return gptr<GMimeObject>(GMIME_OBJECT(rel.release()));
  };

  gptr<GMimeObject> text_obj(GMIME_OBJECT(text_part("plain", text).release()));
  if (!html.empty()) {
    gptr<GMimeObject> html_obj(GMIME_OBJECT(text_part("html", html).release()));
    html_obj = related(std::move(html_obj), "text/html");
    if (!html_obj) return out;
    gptr<GMimeMultipart> alt(g_mime_multipart_new_with_subtype("alternative"));
    g_mime_multipart_add(alt.get(), text_obj.get());
    g_mime_multipart_add(alt.get(), html_obj.get());
    body.reset(GMIME_OBJECT(alt.release()));
  } else {
    body = related(std::move(text_obj), "text/plain");
    if (!body) return out;
  }
  if (!files.empty()) {
    gptr<GMimeMultipart> mixed(g_mime_multipart_new_with_subtype("mixed"));
    g_mime_multipart_add(mixed.get(), body.get());
    for (const auto* a : files) {
      auto p = attachment_part(*a, error);
      if (!p) return out;
      g_mime_multipart_add(mixed.get(), GMIME_OBJECT(p.get()));
    }
    body.reset(GMIME_OBJECT(mixed.release()));
  }
  g_mime_message_set_mime_part(msg.get(), body.get());

  GMimeFormatOptions* fo = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(fo, GMIME_NEWLINE_FORMAT_DOS);
  char* s = g_mime_object_to_string(mo, fo);
  g_mime_format_options_free(fo);
  if (!s) {
    error = "error building message";
    return out;
  }
  out.mime = s;
  g_free(s);

  out.mail_from = from.email;
  std::set<std::string> seen;
  for (const auto* list : {&to, &cc, &bcc}) {
    for (const auto& a : *list) {
      if (seen.insert(to_lower_ascii(a.email)).second) out.recipients.push_back(a.email);
    }
  }
  return out;
}

namespace api {
void add_send_routes(router& r) {
  r.add(bhttp::verb::post, "/api/v1/send", send_handler);
}
}  // namespace api

}  // namespace sluice::http
