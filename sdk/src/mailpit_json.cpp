// mailpit_json.cpp — see sluice/mailpit_json.hpp.
#include "sluice/mailpit_json.hpp"

#include <cstdio>
#include <ctime>

#include <boost/json.hpp>

namespace sluice::mailpit {
namespace json = boost::json;
namespace {

json::array strings(const std::vector<std::string>& v) {
  json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

// Mailpit's From is always an object: {"Name": "", "Address": ""} without a From.
json::object from_json(const std::optional<mail_address>& a) {
  return address_json(a ? *a : mail_address{});
}

json::array parts(const std::vector<mime_part>& v) {
  json::array a;
  for (const auto& p : v)
    a.push_back(attachment_json(p));
  return a;
}

}  // namespace

std::string rfc3339(std::int64_t ms) {
  return rfc3339(ms, 0);
}

std::string rfc3339(std::int64_t ms, int offset_min) {
  ms += static_cast<std::int64_t>(offset_min) * 60'000;  // the wall clock of that zone
  std::int64_t secs = ms / 1000;
  std::int64_t frac = ms % 1000;
  if (frac < 0) {
    frac += 1000;
    secs -= 1;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[48];
  // Go's RFC3339Nano drops trailing zeros of the fraction, and the fraction entirely
  // when it is zero.
  std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (frac != 0) {
    char f[8];
    std::snprintf(f, sizeof f, ".%03d", static_cast<int>(frac));
    std::string fs(f);
    while (fs.back() == '0')
      fs.pop_back();
    out += fs;
  }
  if (offset_min == 0) {
    out += 'Z';
  } else {
    const int a = offset_min < 0 ? -offset_min : offset_min;
    char z[8];
    std::snprintf(z, sizeof z, "%c%02d:%02d", offset_min < 0 ? '-' : '+', a / 60, a % 60);
    out += z;
  }
  return out;
}

json::object address_json(const mail_address& a) {
  return json::object{{"Name", a.name}, {"Address", a.address}};
}

json::array address_list_json(const std::vector<mail_address>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& x : v)
    a.push_back(address_json(x));
  return a;
}

json::object summary_json(const stored_message& m) {
  json::object o;
  o["ID"] = m.id;
  o["MessageID"] = m.message_id;
  o["Read"] = m.read;
  o["From"] = from_json(m.from);
  o["To"] = address_list_json(m.to);
  o["Cc"] = address_list_json(m.cc);
  o["Bcc"] = address_list_json(m.bcc);
  o["ReplyTo"] = address_list_json(m.reply_to);
  o["Subject"] = m.subject;
  o["Created"] = rfc3339(m.created_ms);
  o["Username"] = m.username;
  o["Tags"] = strings(m.tags);
  o["Size"] = m.size;
  o["Attachments"] = m.attachments;
  o["Snippet"] = m.snippet;
  return o;
}

json::object attachment_json(const mime_part& p) {
  json::object o;
  o["PartID"] = p.part_id;
  o["FileName"] = file_name(p);
  o["ContentType"] = p.content_type;
  o["ContentID"] = p.content_id;
  o["Size"] = p.size;
  o["Checksums"] = json::object{{"MD5", p.md5}, {"SHA1", p.sha1}, {"SHA256", p.sha256}};
  return o;
}

json::object message_json(const stored_message& m) {
  static const parsed_message kEmpty;
  const parsed_message& v = m.view ? *m.view : kEmpty;
  json::object o;
  o["ID"] = m.id;
  o["MessageID"] = m.message_id;
  o["From"] = from_json(m.from);
  o["To"] = address_list_json(m.to);
  o["Cc"] = address_list_json(m.cc);
  o["Bcc"] = address_list_json(m.bcc);
  o["ReplyTo"] = address_list_json(m.reply_to);
  o["ReturnPath"] = v.return_path;
  o["Subject"] = m.subject;
  o["ListUnsubscribe"] = json::object{{"Header", v.list_unsubscribe.header},
                                      {"Links", strings(v.list_unsubscribe.links)},
                                      {"Errors", v.list_unsubscribe.errors},
                                      {"HeaderPost", v.list_unsubscribe.header_post}};
  // The Date header as written (its zone kept, as Go's net/mail parses it); the arrival
  // in UTC without one.
  o["Date"] =
      v.date_ms ? rfc3339(*v.date_ms, v.date_offset_min.value_or(0)) : rfc3339(m.created_ms);
  o["Tags"] = strings(m.tags);
  o["Username"] = m.username;
  o["Text"] = v.text;
  o["HTML"] = v.html;
  o["Size"] = m.size;
  o["Inline"] = parts(v.inline_parts);
  o["Attachments"] = parts(v.attachments);
  return o;
}

}  // namespace sluice::mailpit
