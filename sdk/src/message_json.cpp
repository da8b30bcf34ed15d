// message_json.cpp — see sluice/message_json.hpp.
#include "sluice/message_json.hpp"

#include <boost/json.hpp>

namespace sluice {
namespace json = boost::json;
namespace {

json::array params_to_json(const std::vector<std::pair<std::string, std::string>>& ps) {
  json::array a;
  for (auto& [k, v] : ps)
    a.push_back(json::array{json::string(k), json::string(v)});
  return a;
}

std::vector<std::pair<std::string, std::string>> params_from_json(const json::value* v) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!v || !v->is_array()) return out;
  for (auto& p : v->as_array()) {
    if (p.is_array() && p.as_array().size() == 2 && p.as_array()[0].is_string() &&
        p.as_array()[1].is_string()) {
      out.emplace_back(std::string(p.as_array()[0].as_string()),
                       std::string(p.as_array()[1].as_string()));
    }
  }
  return out;
}

std::string str(const json::object& o, std::string_view k) {
  auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

}  // namespace

json::object envelope_to_json(const envelope& e) {
  json::object o;
  o["mail_from"] = e.mail_from;
  o["mail_params"] = params_to_json(e.mail_params);
  json::array rcpts;
  for (auto& r : e.recipients) {
    rcpts.push_back(json::object{{"address", r.address}, {"params", params_to_json(r.params)}});
  }
  o["recipients"] = std::move(rcpts);
  o["listener"] = e.listener;
  o["protocol"] = e.protocol;
  o["session_id"] = e.session_id;
  o["helo"] = e.helo;
  o["client_address"] = e.client_address;
  o["client_port"] = e.client_port;
  o["client_name"] = e.client_name;
  o["local_address"] = e.local_address;
  o["auth_user"] = e.auth_user;
  o["tls_version"] = e.tls_version;
  o["tls_cipher"] = e.tls_cipher;
  o["received_at_ms"] =
      std::chrono::duration_cast<std::chrono::milliseconds>(e.received_at.time_since_epoch())
          .count();
  return o;
}

envelope envelope_from_json(const json::object& o) {
  envelope e;
  e.mail_from = str(o, "mail_from");
  e.mail_params = params_from_json(o.if_contains("mail_params"));
  if (auto* r = o.if_contains("recipients"); r && r->is_array()) {
    for (auto& item : r->as_array()) {
      if (!item.is_object()) continue;
      recipient rc;
      rc.address = str(item.as_object(), "address");
      rc.params = params_from_json(item.as_object().if_contains("params"));
      e.recipients.push_back(std::move(rc));
    }
  }
  e.listener = str(o, "listener");
  e.protocol = str(o, "protocol");
  e.session_id = str(o, "session_id");
  e.helo = str(o, "helo");
  e.client_address = str(o, "client_address");
  if (auto* p = o.if_contains("client_port"); p && p->is_int64()) {
    e.client_port = static_cast<std::uint16_t>(p->as_int64());
  }
  e.client_name = str(o, "client_name");
  e.local_address = str(o, "local_address");
  e.auth_user = str(o, "auth_user");
  e.tls_version = str(o, "tls_version");
  e.tls_cipher = str(o, "tls_cipher");
  if (auto* t = o.if_contains("received_at_ms"); t && t->is_int64()) {
    e.received_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(t->as_int64()));
  }
  return e;
}

json::array edits_to_json(const std::vector<header_edit>& edits) {
  static constexpr const char* ops[] = {"prepend", "append", "set",
                                        "remove",  "rename", "remove_nth"};
  json::array a;
  for (auto& e : edits) {
    a.push_back(
        json::object{{"op", ops[static_cast<int>(e.op)]}, {"name", e.name}, {"value", e.value}});
  }
  return a;
}

std::vector<header_edit> edits_from_json(const json::array& a) {
  std::vector<header_edit> out;
  for (auto& v : a) {
    if (!v.is_object()) continue;
    auto& o = v.as_object();
    header_edit e;
    auto op = str(o, "op");
    if (op == "prepend")
      e.op = edit_op::prepend;
    else if (op == "append")
      e.op = edit_op::append;
    else if (op == "set")
      e.op = edit_op::set;
    else if (op == "remove")
      e.op = edit_op::remove;
    else if (op == "rename")
      e.op = edit_op::rename;
    else if (op == "remove_nth")
      e.op = edit_op::remove_nth;
    else
      continue;
    e.name = str(o, "name");
    e.value = str(o, "value");
    out.push_back(std::move(e));
  }
  return out;
}

boost::json::value parse_stored_json(std::string_view text, boost::system::error_code& ec) {
  boost::json::parse_options opt;
  opt.allow_invalid_utf8 = true;
  return boost::json::parse(text, ec, {}, opt);
}

}  // namespace sluice
