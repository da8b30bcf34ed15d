// parsed_message.cpp — see sluice/parsed_message.hpp.
#include "sluice/parsed_message.hpp"

#include <boost/json.hpp>

#include "sluice/text.hpp"

namespace sluice {
namespace json = boost::json;
namespace {

std::string str(const json::object& o, std::string_view k) {
  auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::uint64_t u64(const json::object& o, std::string_view k) {
  auto* v = o.if_contains(k);
  if (!v) return 0;
  if (v->is_uint64()) return v->get_uint64();
  if (v->is_int64() && v->get_int64() >= 0) return static_cast<std::uint64_t>(v->get_int64());
  return 0;
}

json::object address_to_json(const mail_address& a) {
  return json::object{{"name", a.name}, {"address", a.address}};
}

mail_address address_from_json(const json::value& v) {
  mail_address a;
  if (v.is_object()) {
    a.name = str(v.get_object(), "name");
    a.address = str(v.get_object(), "address");
  }
  return a;
}

json::array addresses_to_json(const std::vector<mail_address>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& x : v)
    a.push_back(address_to_json(x));
  return a;
}

std::vector<mail_address> addresses_from_json(const json::object& o, std::string_view k) {
  std::vector<mail_address> out;
  auto* v = o.if_contains(k);
  if (!v || !v->is_array()) return out;
  for (const auto& x : v->get_array())
    out.push_back(address_from_json(x));
  return out;
}

json::array strings_to_json(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

std::vector<std::string> strings_from_json(const json::object& o, std::string_view k) {
  std::vector<std::string> out;
  auto* v = o.if_contains(k);
  if (!v || !v->is_array()) return out;
  for (const auto& x : v->get_array()) {
    if (x.is_string()) out.emplace_back(x.get_string());
  }
  return out;
}

json::array parts_to_json(const std::vector<mime_part>& v) {
  json::array a;
  for (const auto& p : v)
    a.push_back(to_json(p));
  return a;
}

std::vector<mime_part> parts_from_json(const json::object& o, std::string_view k) {
  std::vector<mime_part> out;
  auto* v = o.if_contains(k);
  if (!v || !v->is_array()) return out;
  for (const auto& x : v->get_array()) {
    if (x.is_object()) out.push_back(mime_part_from_json(x.get_object()));
  }
  return out;
}

}  // namespace

json::object to_json(const mime_part& p) {
  return json::object{
      {"part_id", p.part_id},
      {"content_type", p.content_type},
      {"charset", p.charset},
      {"file_name", p.file_name},
      {"content_id", p.content_id},
      {"disposition", p.disposition},
      {"transfer_encoding", p.transfer_encoding},
      {"offset", p.offset},
      {"length", p.length},
      {"size", p.size},
      {"md5", p.md5},
      {"sha1", p.sha1},
      {"sha256", p.sha256},
  };
}

mime_part mime_part_from_json(const json::object& o) {
  mime_part p;
  p.part_id = str(o, "part_id");
  p.content_type = str(o, "content_type");
  p.charset = str(o, "charset");
  p.file_name = str(o, "file_name");
  p.content_id = str(o, "content_id");
  p.disposition = str(o, "disposition");
  p.transfer_encoding = str(o, "transfer_encoding");
  p.offset = u64(o, "offset");
  p.length = u64(o, "length");
  p.size = u64(o, "size");
  p.md5 = str(o, "md5");
  p.sha1 = str(o, "sha1");
  p.sha256 = str(o, "sha256");
  return p;
}

std::optional<mail_address> from_address(const std::vector<mail_address>& parsed,
                                         std::string_view field_text) {
  if (!parsed.empty()) {
    const mail_address& a = parsed.front();
    if (!a.name.empty() || a.address.find('@') != std::string::npos) return a;
  }
  const std::string_view text = trim(field_text);
  if (text.empty()) return std::nullopt;
  return mail_address{std::string(text), {}};
}

json::object to_json(const parsed_message& m) {
  json::object o;
  o["from"] = m.from ? json::value(address_to_json(*m.from)) : json::value(nullptr);
  o["to"] = addresses_to_json(m.to);
  o["cc"] = addresses_to_json(m.cc);
  o["bcc"] = addresses_to_json(m.bcc);
  o["reply_to"] = addresses_to_json(m.reply_to);
  o["return_path"] = m.return_path;
  o["sender"] = m.sender;
  o["subject"] = m.subject;
  o["message_id"] = m.message_id;
  o["date_ms"] = m.date_ms ? json::value(*m.date_ms) : json::value(nullptr);
  if (m.date_offset_min) o["date_offset_min"] = *m.date_offset_min;
  o["text"] = m.text;
  o["html"] = m.html;
  o["text_part_id"] = m.text_part_id;
  o["html_part_id"] = m.html_part_id;
  o["inline"] = parts_to_json(m.inline_parts);
  o["attachments"] = parts_to_json(m.attachments);
  o["list_unsubscribe"] = json::object{{"header", m.list_unsubscribe.header},
                                       {"links", strings_to_json(m.list_unsubscribe.links)},
                                       {"errors", m.list_unsubscribe.errors},
                                       {"header_post", m.list_unsubscribe.header_post}};
  o["snippet"] = m.snippet;
  o["search_text"] = m.search_text;
  o["problems"] = strings_to_json(m.problems);
  return o;
}

parsed_message parsed_message_from_json(const json::object& o) {
  parsed_message m;
  if (auto* f = o.if_contains("from"); f && f->is_object()) m.from = address_from_json(*f);
  m.to = addresses_from_json(o, "to");
  m.cc = addresses_from_json(o, "cc");
  m.bcc = addresses_from_json(o, "bcc");
  m.reply_to = addresses_from_json(o, "reply_to");
  m.return_path = str(o, "return_path");
  m.sender = str(o, "sender");
  m.subject = str(o, "subject");
  m.message_id = str(o, "message_id");
  if (auto* d = o.if_contains("date_ms"); d && d->is_int64()) m.date_ms = d->get_int64();
  if (auto* d = o.if_contains("date_ms"); d && d->is_uint64()) {
    m.date_ms = static_cast<std::int64_t>(d->get_uint64());
  }
  if (auto* d = o.if_contains("date_offset_min"); d && d->is_int64()) {
    const std::int64_t off = d->get_int64();
    if (off > -24 * 60 && off < 24 * 60) m.date_offset_min = static_cast<int>(off);
  }
  m.text = str(o, "text");
  m.html = str(o, "html");
  m.text_part_id = str(o, "text_part_id");
  m.html_part_id = str(o, "html_part_id");
  m.inline_parts = parts_from_json(o, "inline");
  m.attachments = parts_from_json(o, "attachments");
  if (auto* l = o.if_contains("list_unsubscribe"); l && l->is_object()) {
    const auto& lo = l->get_object();
    m.list_unsubscribe.header = str(lo, "header");
    m.list_unsubscribe.links = strings_from_json(lo, "links");
    m.list_unsubscribe.errors = str(lo, "errors");
    m.list_unsubscribe.header_post = str(lo, "header_post");
  }
  m.snippet = str(o, "snippet");
  m.search_text = str(o, "search_text");
  m.problems = strings_from_json(o, "problems");
  return m;
}

}  // namespace sluice
