// auth_results.cpp — the Authentication-Results field value; see auth_results.hpp.
#include "auth_results.hpp"

#include <string_view>

#include <boost/json/array.hpp>

#include "dmarc.hpp"
#include "sluice/text.hpp"

namespace sluice::auth {
namespace {

bool atext(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
}

std::string str(const boost::json::object& o, std::string_view key) {
  const boost::json::value* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// A comment: printable ASCII only, parentheses and backslashes escaped (RFC 5322 ccontent).
std::string comment(std::string_view s) {
  std::string r = "(";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) c = ' ';
    if (c == '(' || c == ')' || c == '\\') r += '\\';
    r += c;
  }
  if (r.size() > 200) r.resize(200);
  if (r.back() == '\\') r.pop_back();
  return r + ")";
}

bool result_word(const std::string& r) {
  if (r.empty() || r.size() > 20) return false;
  for (char c : r)
    if (!(c >= 'a' && c <= 'z')) return false;
  return true;
}

}  // namespace

bool claims_authserv_id(std::string_view value, std::string_view authserv_id) {
  // CFWS first: comments (the DMARC From parser's helper) and white space, folds included.
  const std::string text = dmarc::without_comments(value);
  std::string_view v = trim(text);
  std::size_t i = 0;
  std::string id;
  if (i < v.size() && v[i] == '"') {
    // A quoted-string is the same value (RFC 8601 §2.2 "value"), its quoted-pairs undone.
    for (++i; i < v.size() && v[i] != '"'; ++i) {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      id += v[i];
    }
    if (i >= v.size()) return false;  // unterminated
  } else {
    while (i < v.size() && v[i] != ';' && v[i] != '(' && v[i] != ' ' && v[i] != '\t' &&
           v[i] != '\r' && v[i] != '\n') {
      id += v[i++];
    }
  }
  // "mx.example." names the same host as "mx.example".
  if (id.size() > 1 && id.back() == '.') id.pop_back();
  if (authserv_id.size() > 1 && authserv_id.back() == '.') authserv_id.remove_suffix(1);
  return !id.empty() && iequals(id, authserv_id);
}

std::string pvalue(const std::string& v) {
  bool plain = !v.empty();
  for (char c : v)
    if (!atext(c) && c != '.' && c != '@') plain = false;
  if (plain) return v;
  std::string q = "\"";
  for (char c : v) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) continue;
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

std::string authentication_results(const std::string& authserv_id,
                                   const boost::json::object& auth) {
  std::string out = authserv_id;
  bool any = false;
  auto add = [&](const std::string& method, const std::string& result, const std::string& why,
                 const std::string& props) {
    if (!result_word(result)) return;
    out += "; " + method + "=" + result;
    if (!why.empty()) out += " " + comment(why);
    if (!props.empty()) out += " " + props;
    any = true;
  };
  if (const auto* spf = auth.if_contains("spf"); spf && spf->is_object()) {
    const auto& s = spf->as_object();
    std::string props;
    std::string from = str(s, "mailfrom");
    if (!from.empty()) props = "smtp.mailfrom=" + pvalue(from);
    add("spf", str(s, "result"), str(s, "reason"), props);
  }
  if (const auto* dkim = auth.if_contains("dkim"); dkim && dkim->is_array()) {
    for (const auto& sig : dkim->as_array()) {
      if (!sig.is_object()) continue;
      const auto& d = sig.as_object();
      std::string props;
      if (std::string dom = str(d, "domain"); !dom.empty()) props += "header.d=" + pvalue(dom);
      auto prop = [&](const char* name, const std::string& v) {
        if (!v.empty()) props += (props.empty() ? "" : " ") + std::string(name) + "=" + pvalue(v);
      };
      // RFC 8601 §2.7.1 header.i, header.s; RFC 6008 header.a and header.b (which signature).
      prop("header.i", str(d, "identity"));
      prop("header.s", str(d, "selector"));
      prop("header.a", str(d, "algorithm"));
      prop("header.b", str(d, "b"));
      add("dkim", str(d, "result"), str(d, "reason"), props);
    }
  }
  if (const auto* dmarc = auth.if_contains("dmarc"); dmarc && dmarc->is_object()) {
    const auto& d = dmarc->as_object();
    std::string props;
    if (std::string f = str(d, "from_domain"); !f.empty()) props = "header.from=" + pvalue(f);
    add("dmarc", str(d, "result"), str(d, "reason"), props);
  }
  if (!any) out += "; none";
  return out;
}

}  // namespace sluice::auth
