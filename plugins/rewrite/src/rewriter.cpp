// rewriter.cpp — parsing the rewrite rules (startup) and applying them (data plane).
#include "rewriter.hpp"

#include <boost/json/array.hpp>

#include <stdexcept>
#include <unordered_set>

#include "header_text.hpp"
#include "sluice/text.hpp"

namespace sluice::rewrite {
namespace {

namespace json = boost::json;

std::string_view domain_of(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string_view() : address.substr(at + 1);
}

std::string_view local_of(std::string_view address) {
  auto at = address.rfind('@');
  return at == std::string_view::npos ? address : address.substr(0, at);
}

// Case-insensitive domain, exact local part: how duplicates are recognised.
std::string merge_key(std::string_view address) {
  return std::string(local_of(address)) + "@" + to_lower_ascii(domain_of(address));
}

std::string domain_problem(std::string_view d) {
  if (d.empty()) return "has an empty domain";
  if (d.size() > 253) return "has a domain longer than 253 characters";
  if (d.front() == '[') {
    if (d.back() != ']') return "has an address literal without a closing ]";
    return {};
  }
  for (char c : d) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f ||
        std::string_view("<>()[]\\,;:\"@").find(c) != std::string_view::npos) {
      return "has a character not allowed in a domain";
    }
  }
  if (d.front() == '.' || d.back() == '.' || d.find("..") != std::string_view::npos) {
    return "has an empty domain label";
  }
  return {};
}

std::shared_ptr<const regex> compile(const config_node& node, bool caseless) {
  try {
    return std::make_shared<const regex>(node.as_string(), caseless);
  } catch (const std::invalid_argument& e) {
    node.fail(std::string("invalid regular expression: ") + e.what());
  }
}

sluice::rewrite::condition parse_condition(const config_node& rule) {
  sluice::rewrite::condition c;
  auto when = rule.find("when");
  if (!when) return c;
  if (!when->is_map()) when->fail("must be a map with sender and/or recipient regexes");
  if (auto s = when->find("sender")) c.sender = compile(*s, true);
  if (auto r = when->find("recipient")) c.recipient = compile(*r, true);
  if (c.empty()) when->fail("must name sender and/or recipient");
  return c;
}

std::string label_of(const config_node& rule, std::string_view list, std::size_t i) {
  if (auto n = rule.find("label")) {
    std::string l = n->as_string();
    if (l.empty() || l.size() > 100 || !value_problem(l).empty()) {
      n->fail("must be 1 to 100 characters of text without control characters");
    }
    return l;
  }
  return std::string(list) + "[" + std::to_string(i) + "]";
}

std::vector<address_rule> parse_address_rules(const config_node& cfg, std::string_view key) {
  std::vector<address_rule> out;
  auto list = cfg.find(key);
  if (!list) return out;
  if (!list->is_sequence()) list->fail("must be a list of rules");
  std::size_t i = 0;
  for (const auto& node : list->items()) {
    if (!node.is_map()) node.fail("must be a map with match or regex, and to");
    address_rule r;
    r.label = label_of(node, key, i++);
    const bool has_match = node.has("match"), has_regex = node.has("regex");
    if (has_match == has_regex) node.fail("needs exactly one of match or regex");
    auto to_node = node.at("to");
    r.to = to_node.as_string();
    const bool case_sensitive = node.get_bool("case_sensitive", false);
    if (has_regex) {
      r.kind = match_kind::pattern;
      r.re = compile(node.at("regex"), !case_sensitive);
      try {
        r.re->check_replacement(r.to);
      } catch (const std::invalid_argument& e) {
        to_node.fail(e.what());
      }
      if (auto p = value_problem(r.to); !p.empty()) to_node.fail("replacement " + p);
    } else {
      if (node.has("case_sensitive")) node.at("case_sensitive").fail("applies to regex rules only");
      auto m = node.at("match");
      std::string v = m.as_string();
      if (v == "*") {
        r.kind = match_kind::any;
      } else if (v.starts_with("@")) {
        r.kind = match_kind::domain;
        if (auto p = domain_problem(std::string_view(v).substr(1)); !p.empty()) m.fail(p);
        r.key = to_lower_ascii(std::string_view(v).substr(1));
      } else {
        r.kind = match_kind::exact;
        if (auto p = address_problem(v); !p.empty()) m.fail("\"" + v + "\" " + p);
        r.key = to_lower_ascii(v);
      }
      if (r.to.starts_with("@")) {
        if (auto p = domain_problem(std::string_view(r.to).substr(1)); !p.empty()) to_node.fail(p);
      } else if (auto p = address_problem(r.to); !p.empty()) {
        to_node.fail("\"" + r.to + "\" " + p +
                     " (write an address, or @domain to keep the local part)");
      }
    }
    r.continue_ = node.get_bool("continue", false);
    r.when = parse_condition(node);
    out.push_back(std::move(r));
  }
  return out;
}

std::string checked_field_name(const config_node& n) {
  std::string name = n.as_string();
  if (!valid_field_name(name)) {
    n.fail("\"" + name +
           "\" is not a valid header field name (RFC 5322: 1 to 76 printable ASCII characters "
           "other than ':' and space)");
  }
  return name;
}

std::vector<header_rule> parse_header_rules(const config_node& cfg) {
  std::vector<header_rule> out;
  auto list = cfg.find("headers");
  if (!list) return out;
  if (!list->is_sequence()) list->fail("must be a list of rules");
  std::size_t i = 0;
  for (const auto& node : list->items()) {
    if (!node.is_map()) node.fail("must be a map with op and name");
    header_rule r;
    r.label = label_of(node, "headers", i++);
    auto op_node = node.at("op");
    const std::string op = op_node.as_string();
    if (op == "set") {
      r.op = header_op::set;
    } else if (op == "add") {
      r.op = header_op::add;
    } else if (op == "remove") {
      r.op = header_op::remove;
    } else if (op == "rename") {
      r.op = header_op::rename;
    } else {
      op_node.fail("unknown op \"" + op + "\" (set, add, remove or rename)");
    }
    r.name = checked_field_name(node.at("name"));
    if (r.op == header_op::set || r.op == header_op::add) {
      auto v = node.at("value");
      std::string value = v.as_string();
      if (auto p = value_problem(value); !p.empty()) v.fail("value " + p);
      if (is_ascii(value)) {
        r.value = std::move(value);  // written as given (an encoded-word stays one)
      } else {
        switch (kind_of(r.name)) {
          case field_kind::address:
            try {
              r.value = encode_address_list(value);
            } catch (const std::invalid_argument& e) {
              v.fail(std::string("value of an address field ") + e.what());
            }
            break;
          case field_kind::structured:
            v.fail("non-ASCII text cannot be encoded in the structured field " + r.name);
          case field_kind::unstructured:
            r.value = encode_text(value);
            break;
        }
      }
    } else if (r.op == header_op::rename) {
      r.value = checked_field_name(node.at("to"));
    }
    r.when = parse_condition(node);
    out.push_back(std::move(r));
  }
  return out;
}

bool matches(const sluice::rewrite::condition& c, const std::string& sender,
             const std::vector<std::string>& rcpts) {
  if (c.sender && c.sender->search(sender) != regex::status::matched) return false;
  if (c.recipient) {
    bool any = false;
    for (const auto& r : rcpts) {
      if (c.recipient->search(r) == regex::status::matched) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

struct rewrite_step {
  std::string address;
  std::vector<std::string> labels;  // rules that changed or matched it, in order
  std::string error;
};

// Runs the address rules over one address: first match wins unless the rule continues.
rewrite_step rewrite_address(const std::vector<address_rule>& rules, std::string address,
                             const std::string& sender, const std::vector<std::string>& rcpts) {
  rewrite_step s{std::move(address), {}, {}};
  for (const auto& r : rules) {
    if (!r.when.empty() && !matches(r.when, sender, rcpts)) continue;
    std::optional<std::string> next;
    switch (r.kind) {
      case match_kind::any:
        next = r.to;
        break;
      case match_kind::exact:
        if (iequals(s.address, r.key)) next = r.to;
        break;
      case match_kind::domain:
        if (iequals(domain_of(s.address), r.key)) next = r.to;
        break;
      case match_kind::pattern: {
        regex::status why = regex::status::matched;
        next = r.re->replace(s.address, r.to, &why);
        if (!next && why != regex::status::no_match) {
          s.error = "rule " + r.label + ": the regular expression " +
                    (why == regex::status::limit ? "hit its match limit" : "failed") + " on <" +
                    s.address + ">";
          return s;
        }
        break;
      }
    }
    if (!next) continue;
    if (r.kind != match_kind::pattern && next->starts_with("@")) {
      *next = std::string(local_of(s.address)) + *next;
    }
    if (auto p = address_problem(*next); !p.empty()) {
      s.error = "rule " + r.label + " rewrote <" + s.address + "> to \"" + *next + "\", which " + p;
      return s;
    }
    s.address = std::move(*next);
    s.labels.push_back(r.label);
    if (!r.continue_) break;
  }
  return s;
}

json::object& rewrite_record(message& msg) {
  json::value& v = msg.attributes["rewrite"];
  if (!v.is_object()) v = json::object();
  return v.as_object();
}

json::array& array_member(json::object& o, std::string_view key) {
  json::value& v = o[key];
  if (!v.is_array()) v = json::array();
  return v.as_array();
}

json::array labels_json(const std::vector<std::string>& labels) {
  json::array a;
  for (const auto& l : labels)
    a.emplace_back(l);
  return a;
}

json::value address_json(const std::vector<mail_address>& list, bool first_only) {
  if (first_only) {
    if (list.empty()) return nullptr;
    return json::object{{"name", list.front().name}, {"address", list.front().address}};
  }
  json::array a;
  for (const auto& m : list)
    a.push_back(json::object{{"name", m.name}, {"address", m.address}});
  return a;
}

// The "mime" attribute was made from the headers as they were before this stage; the store
// shows its From, To, Subject… in the API. Update the fields this stage edited.
void refresh_view(message& msg, const std::vector<std::string>& touched) {
  auto* mime = msg.attributes.if_contains("mime");
  if (!mime || !mime->is_object() || touched.empty()) return;
  json::object& view = mime->as_object();
  static constexpr std::pair<const char*, const char*> fields[] = {{"From", "from"},
                                                                   {"To", "to"},
                                                                   {"Cc", "cc"},
                                                                   {"Bcc", "bcc"},
                                                                   {"Reply-To", "reply_to"},
                                                                   {"Subject", "subject"},
                                                                   {"Return-Path", "return_path"}};
  std::optional<std::string> head;
  for (const auto& [field, key] : fields) {
    bool hit = false;
    for (const auto& t : touched)
      hit = hit || iequals(t, field);
    if (!hit) continue;
    if (!head) head = msg.output_headers();
    auto values = field_values(*head, field);
    if (std::string_view(key) == "subject") {
      view[key] = values.empty() ? std::string() : decode_text(values.front());
      continue;
    }
    if (std::string_view(key) == "return_path") {
      auto list = values.empty() ? std::vector<mail_address>{} : parse_addresses(values.front());
      view[key] = list.empty() ? std::string() : list.front().address;
      continue;
    }
    std::string joined;
    for (const auto& v : values) {
      if (!joined.empty()) joined += ", ";
      joined += v;
    }
    view[key] = address_json(parse_addresses(joined), std::string_view(key) == "from");
  }
}

}  // namespace

std::string address_problem(std::string_view a) {
  if (a.empty()) return "is empty";
  if (a.size() > 254) return "is longer than 254 characters";
  // A quoted local part (RFC 5321 §4.1.2 Quoted-string: printable ASCII and space, '\\'
  // escaping '"' or '\\'; UTF-8 with SMTPUTF8) is checked as such, the rest as below.
  std::string_view rest = a;
  if (a.front() == '"') {
    std::size_t i = 1;
    for (; i < a.size() && a[i] != '"'; ++i) {
      auto u = static_cast<unsigned char>(a[i]);
      if (u < 0x20 || u == 0x7f) return "has a control character in its quoted local part";
      if (a[i] == '\\' && ++i >= a.size()) break;
    }
    if (i >= a.size()) return "has an unterminated quoted local part";
    if (i + 1 >= a.size() || a[i + 1] != '@') return "has text after its quoted local part";
    rest = a.substr(i + 1);
  }
  for (char c : rest) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '<' || c == '>' || c == ',') {
      return "is not an address (it contains a space, a control character, <, > or ,)";
    }
  }
  if (!valid_utf8(a)) return "is not valid UTF-8";
  auto at = a.rfind('@');
  if (at == std::string_view::npos) return "has no @domain";
  if (at == 0) return "has an empty local part";
  if (at > 64 && a.front() != '"') return "has a local part longer than 64 characters";
  return domain_problem(a.substr(at + 1));
}

rule_set parse_rules(const config_node& cfg) {
  init_gmime();
  rule_set rs;
  rs.sender = parse_address_rules(cfg, "sender");
  rs.recipients = parse_address_rules(cfg, "recipients");
  rs.headers = parse_header_rules(cfg);
  if (auto f = cfg.find("override_from")) {
    from_override o;
    config_node addr = *f;
    if (f->is_map()) {
      addr = f->at("address");
      if (auto n = f->find("name")) {
        std::string name = n->as_string();
        if (auto p = value_problem(name); !p.empty()) n->fail("name " + p);
        o.name = std::move(name);
      }
      o.envelope = f->get_bool("envelope", true);
    }
    o.address = addr.as_string();
    if (auto p = address_problem(o.address); !p.empty()) addr.fail("\"" + o.address + "\" " + p);
    rs.from = std::move(o);
  }
  if (auto p = cfg.find("subject_prefix")) {
    rs.subject_prefix = p->as_string();
    if (auto why = value_problem(rs.subject_prefix); !why.empty()) p->fail("prefix " + why);
    if (trim(rs.subject_prefix).empty()) p->fail("must not be empty");
  }
  rs.original_to_header = cfg.get_bool("original_to_header", false);
  if (rs.sender.empty() && rs.recipients.empty() && rs.headers.empty() && !rs.from &&
      rs.subject_prefix.empty()) {
    cfg.fail(
        "the rewrite stage has no rules (give sender, recipients, headers, override_from or "
        "subject_prefix)");
  }
  return rs;
}

result apply(const rule_set& rules, message& msg) {
  result res;
  envelope& env = msg.envelope;
  const std::string original_sender = env.mail_from;
  std::vector<std::string> original_rcpts;
  original_rcpts.reserve(env.recipients.size());
  for (const auto& r : env.recipients)
    original_rcpts.push_back(r.address);

  json::object rec;
  json::array applied;
  std::vector<std::string> touched;  // header fields this stage edited

  // 1. MAIL FROM. The null sender (a bounce) is never rewritten: giving it an address
  //    would make a bounce bounceable, the loop RFC 5321 §4.5.5 prevents.
  if (!rules.sender.empty() && !env.mail_from.empty()) {
    auto s = rewrite_address(rules.sender, env.mail_from, original_sender, original_rcpts);
    if (!s.error.empty()) {
      res.error = s.error;
      return res;
    }
    if (s.address != env.mail_from) {
      rec["sender"] = json::object{
          {"original", env.mail_from}, {"rewritten", s.address}, {"rules", labels_json(s.labels)}};
      env.mail_from = s.address;
    }
  }

  // 2. RCPT TO, then duplicates merged (the first keeps its ESMTP parameters).
  if (!rules.recipients.empty()) {
    json::array changed;
    std::vector<recipient> out;
    std::unordered_set<std::string> seen;
    std::size_t merged = 0;
    for (auto& r : env.recipients) {
      auto s = rewrite_address(rules.recipients, r.address, original_sender, original_rcpts);
      if (!s.error.empty()) {
        res.error = s.error;
        return res;
      }
      if (s.address != r.address) {
        changed.push_back(json::object{
            {"original", r.address}, {"rewritten", s.address}, {"rules", labels_json(s.labels)}});
        r.address = std::move(s.address);
      }
      if (!seen.insert(merge_key(r.address)).second) {
        ++merged;
        continue;
      }
      out.push_back(std::move(r));
    }
    env.recipients = std::move(out);
    if (!changed.empty() || merged) {
      rec["recipients"] = std::move(changed);
      json::array orig;
      for (const auto& a : original_rcpts)
        orig.emplace_back(a);
      rec["original_recipients"] = std::move(orig);
      rec["merged"] = merged;
    }
  }

  // 3. Header rules, in order.
  for (const auto& h : rules.headers) {
    if (!h.when.empty() && !matches(h.when, original_sender, original_rcpts)) continue;
    switch (h.op) {
      case header_op::set:
        msg.set_header(h.name, h.value);
        break;
      case header_op::add:
        msg.append_header(h.name, h.value);
        break;
      case header_op::remove:
        msg.remove_header(h.name);
        break;
      case header_op::rename:
        msg.rename_header(h.name, h.value);
        touched.push_back(h.value);
        break;
    }
    touched.push_back(h.name);
    static constexpr const char* names[] = {"set", "add", "remove", "rename"};
    json::object a{{"rule", h.label}, {"op", names[static_cast<int>(h.op)]}, {"name", h.name}};
    if (h.op == header_op::rename) a["to"] = h.value;
    applied.push_back(std::move(a));
  }

  // 4. From override (Mailpit's override-from): the display name stays, the address
  //    changes, the original address goes to X-Original-From.
  if (rules.from) {
    const from_override& o = *rules.from;
    const auto values = field_values(msg.output_headers(), "From");
    json::object f{{"rewritten", o.address}};
    if (values.empty()) {
      msg.set_header("From", o.name ? format_mailbox(*o.name, o.address) : o.address);
      f["original"] = nullptr;
    } else {
      const auto list = parse_addresses(values.front());
      std::string original;
      std::string name;
      if (list.size() == 1 && !list.front().address.empty()) {
        original = list.front().address;
        name = list.front().name;
      } else {
        original = values.front();  // unparseable or several mailboxes: kept as it was
      }
      if (o.name) name = *o.name;
      msg.set_header("From", format_mailbox(name, o.address));
      msg.append_header("X-Original-From", original);
      touched.emplace_back("X-Original-From");
      f["original"] = original;
      f["name"] = name;
    }
    touched.emplace_back("From");
    if (o.envelope && !env.mail_from.empty() && env.mail_from != o.address) {
      if (!rec.contains("sender")) {
        rec["sender"] = json::object{{"original", env.mail_from},
                                     {"rewritten", o.address},
                                     {"rules", json::array{"override_from"}}};
      } else {
        auto& s = rec["sender"].as_object();
        s["rewritten"] = o.address;
        s["rules"].as_array().emplace_back("override_from");
      }
      env.mail_from = o.address;
    }
    rec["from"] = std::move(f);
  }

  // The listener's Return-Path (a capture acts as the final delivery, RFC 5321 §4.4) names
  // the MAIL FROM as received; it follows the rewritten sender.
  if (env.mail_from != original_sender &&
      !field_values(msg.output_headers(), "Return-Path").empty()) {
    msg.set_header("Return-Path", "<" + env.mail_from + ">");
    touched.emplace_back("Return-Path");
  }

  // 5. Subject prefix, once.
  if (!rules.subject_prefix.empty()) {
    const auto values = field_values(msg.output_headers(), "Subject");
    std::optional<std::string_view> current;
    if (!values.empty()) current = values.front();
    auto next = prefix_subject(current, rules.subject_prefix);
    json::object s;
    s["original"] = current ? decode_text(*current) : std::string();
    if (next) {
      msg.set_header("Subject", *next);
      touched.emplace_back("Subject");
      s["rewritten"] = decode_text(*next);
    } else {
      s["skipped"] = "already prefixed";
    }
    rec["subject"] = std::move(s);
  }

  // 6. X-Original-To: every original recipient, when any was rewritten. Set, not added,
  //    so that a copy the sender forged does not survive next to ours.
  if (rules.original_to_header && rec.contains("recipients") &&
      !rec["recipients"].as_array().empty()) {
    // Bounded: the attribute keeps the whole list, the field at most kMaxOriginalTo bytes
    // of it and an RFC 5322 comment saying how many more there were.
    constexpr std::size_t kMaxOriginalTo = 8192;
    std::string list;
    std::size_t shown = 0;
    for (const auto& a : original_rcpts) {
      if (!list.empty() && list.size() + 2 + a.size() > kMaxOriginalTo) break;
      if (!list.empty()) list += ", ";
      list += a;
      ++shown;
    }
    if (shown < original_rcpts.size()) {
      list += " (and " + std::to_string(original_rcpts.size() - shown) + " more)";
    }
    msg.set_header("X-Original-To", list);
    touched.emplace_back("X-Original-To");
  }

  refresh_view(msg, touched);

  res.changed = !rec.empty() || !applied.empty();
  if (!applied.empty()) rec["headers"] = std::move(applied);
  res.record = rec;
  if (res.changed) {
    // A second rewrite stage adds to what the first recorded; the originals stay the
    // first ones seen.
    json::object& out = rewrite_record(msg);
    for (auto& kv : rec) {
      if ((kv.key() == "sender" || kv.key() == "from" || kv.key() == "subject") &&
          out.contains(kv.key())) {
        auto& prev = out[kv.key()].as_object();
        auto& now = kv.value().as_object();
        now["original"] = prev["original"];
        out[kv.key()] = std::move(now);
      } else if (kv.key() == "original_recipients" && out.contains(kv.key())) {
        continue;
      } else if ((kv.key() == "recipients" || kv.key() == "headers") && out.contains(kv.key())) {
        auto& arr = array_member(out, kv.key());
        for (auto& v : kv.value().as_array())
          arr.push_back(std::move(v));
      } else if (kv.key() == "merged" && out.contains("merged")) {
        out["merged"] =
            out["merged"].to_number<std::int64_t>() + kv.value().to_number<std::int64_t>();
      } else {
        out[kv.key()] = std::move(kv.value());
      }
    }
  }
  return res;
}

}  // namespace sluice::rewrite
