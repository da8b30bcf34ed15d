// fields.cpp — see fields.hpp.
#include "fields.hpp"

#include <chrono>

#include <boost/json/array.hpp>

#include "sluice/mailbox.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/parsed_message.hpp"

namespace sluice::webhook {
namespace json = boost::json;
namespace {

std::string domain_of(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  std::string d(address.substr(at + 1));
  for (char& c : d)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return d;
}

// Size of the message as it leaves (raw bytes with the header edits applied), without
// copying the body: only the header block differs from the raw bytes.
std::uint64_t output_size(const message& m) {
  if (!m.raw) return 0;
  if (m.edits.empty()) return m.raw->size();
  const std::string original = m.raw->header_block();
  const std::string edited = m.output_headers();
  return m.raw->size() - original.size() + edited.size();
}

}  // namespace

json::object message_summary(const message& m) {
  stored_message s;
  s.id = m.id;
  s.created_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     m.envelope.received_at.time_since_epoch())
                     .count();
  s.size = output_size(m);
  s.username = m.envelope.auth_user;
  s.envelope_from = m.envelope.mail_from;
  for (const auto& r : m.envelope.recipients)
    s.envelope_to.push_back(r.address);
  if (const auto* a = m.attributes.if_contains("mime"); a && a->is_object()) {
    const parsed_message v = parsed_message_from_json(a->as_object());
    s.message_id = v.message_id;
    s.subject = v.subject;
    s.from = v.from;
    s.to = v.to;
    s.cc = v.cc;
    s.bcc = v.bcc;
    s.reply_to = v.reply_to;
    s.snippet = v.snippet;
    s.attachments = static_cast<std::uint32_t>(v.attachments.size());
    s.inline_parts = static_cast<std::uint32_t>(v.inline_parts.size());
  } else {
    // No parsed view (no mime stage before this one): the envelope is all we know.
    if (!m.envelope.mail_from.empty()) s.from = mail_address{"", m.envelope.mail_from};
    for (const auto& r : m.envelope.recipients)
      s.to.push_back(mail_address{"", r.address});
  }
  if (const auto* t = m.attributes.if_contains("tags"); t && t->is_array()) {
    for (const auto& x : t->as_array())
      if (x.is_string()) s.tags.emplace_back(x.as_string());
  }
  return mailpit::summary_json(s);
}

field_map message_fields(const message& m, const json::object& summary) {
  field_map f;
  auto str = [&summary](std::string_view key) -> std::string {
    const auto* v = summary.if_contains(key);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  f["id"] = m.id;
  f["message_id"] = str("MessageID");
  f["subject"] = str("Subject");
  f["created"] = str("Created");
  f["snippet"] = str("Snippet");
  f["username"] = str("Username");
  f["size"] = summary.contains("Size") ? summary.at("Size") : json::value(0);
  f["attachments"] = summary.contains("Attachments") ? summary.at("Attachments") : json::value(0);
  f["tags"] = summary.contains("Tags") ? summary.at("Tags") : json::value(json::array{});
  std::string from, from_name;
  if (const auto* v = summary.if_contains("From"); v && v->is_object()) {
    const auto& o = v->as_object();
    if (const auto* a = o.if_contains("Address"); a && a->is_string()) from = a->as_string();
    if (const auto* n = o.if_contains("Name"); n && n->is_string()) from_name = n->as_string();
  }
  f["from"] = from;
  f["from_name"] = from_name;
  f["from_domain"] = domain_of(from);
  for (auto [field, key] :
       {std::pair{"to", "To"}, {"cc", "Cc"}, {"bcc", "Bcc"}, {"reply_to", "ReplyTo"}}) {
    json::array a;
    if (const auto* v = summary.if_contains(key); v && v->is_array()) {
      for (const auto& x : v->as_array()) {
        if (const auto* o = x.if_object()) {
          if (const auto* ad = o->if_contains("Address"); ad && ad->is_string()) a.push_back(*ad);
        }
      }
    }
    f[field] = std::move(a);
  }
  const envelope& e = m.envelope;
  f["mail_from"] = e.mail_from;
  json::array rcpts;
  for (const auto& r : e.recipients)
    rcpts.emplace_back(r.address);
  f["rcpt_to"] = std::move(rcpts);
  f["rcpt_domain"] = e.recipients.empty() ? std::string() : domain_of(e.recipients.front().address);
  f["client_address"] = e.client_address;
  f["helo"] = e.helo;
  f["listener"] = e.listener;
  f["protocol"] = e.protocol;
  f["summary"] = summary;
  // How earlier deferred stages ended, for a stage that runs `after:` one (the kernel's
  // attribute "deferred": {stage: {status, reply, attempts, report}}).
  if (const auto* d = m.attributes.if_contains("deferred"); d && d->is_object())
    f["deferred"] = *d;
  else
    f["deferred"] = json::object();
  return f;
}

const std::vector<std::string>& field_names() {
  static const std::vector<std::string> names = {
      "attachments", "bcc",         "cc",        "client_address", "created", "deferred",
      "from",        "from_domain", "from_name", "helo",           "id",      "listener",
      "mail_from",   "message_id",  "protocol",  "rcpt_domain",    "rcpt_to", "reply_to",
      "size",        "snippet",     "subject",   "summary",        "tags",    "to",
      "username"};
  return names;
}

}  // namespace sluice::webhook
