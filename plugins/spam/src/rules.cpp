// rules.cpp — loading and evaluating the native engine's rules; see rules.hpp.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "rules.hpp"

#include <pcre2.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include <boost/json/value.hpp>

#include "sluice/config.hpp"

namespace sluice::spam {

struct regex {
  pcre2_code* code = nullptr;
  ~regex() { pcre2_code_free(code); }
};

namespace {

// Bounds a pathological pattern on hostile input: past this many backtracking steps a
// match attempt is abandoned and counts as no match.
constexpr std::uint32_t match_limit = 1'000'000;

struct match_context {
  pcre2_match_context* ctx = pcre2_match_context_create(nullptr);
  match_context() { pcre2_set_match_limit(ctx, match_limit); }
  ~match_context() { pcre2_match_context_free(ctx); }
};

const match_context& shared_match_context() {
  static const match_context m;
  return m;
}

// One evaluation's match data, sized for any pattern (only the overall match is used).
struct match_data {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  ~match_data() { pcre2_match_data_free(md); }
};

bool matches(const regex& re, std::string_view subject, match_data& md) {
  int rc = pcre2_match(re.code, reinterpret_cast<PCRE2_SPTR>(subject.data()), subject.size(), 0,
                       PCRE2_NO_UTF_CHECK, md.md, shared_match_context().ctx);
  return rc >= 0;
}

std::shared_ptr<const regex> compile(const config_node& node) {
  std::string pattern = node.as_string();
  int err = 0;
  PCRE2_SIZE offset = 0;
  // UTF mode with MATCH_INVALID_UTF: subjects are valid UTF-8 from the mime stage, but the
  // raw fallback may not be; invalid sequences then never match instead of failing. Not
  // UCP: \b, \w and \d stay ASCII (as in SpamAssassin's rules), which keeps the JIT's
  // fast paths; (?i) still folds Unicode letters.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof buf);
    node.fail("bad regular expression at offset " + std::to_string(offset) + ": " +
              reinterpret_cast<const char*>(buf));
  }
  auto re = std::make_shared<regex>();
  re->code = code;
  // JIT where the platform has it; the interpreter is the fallback, same results.
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return re;
}

std::vector<std::string> prefilter_needles(std::string_view p);

check_kind parse_check(const config_node& n) {
  static const std::pair<std::string_view, check_kind> names[] = {
      {"gtube", check_kind::gtube},
      {"html_only", check_kind::html_only},
      {"missing_date", check_kind::missing_date},
      {"missing_message_id", check_kind::missing_message_id},
      {"missing_from", check_kind::missing_from},
      {"subject_all_caps", check_kind::subject_all_caps},
      {"many_recipients", check_kind::many_recipients},
      {"attachment_extension", check_kind::attachment_extension},
      {"mime_problems", check_kind::mime_problems},
      {"uri_ip_literal", check_kind::uri_ip_literal},
      {"uri_shortener", check_kind::uri_shortener},
      {"uri_text_mismatch", check_kind::uri_text_mismatch},
      {"spf_fail", check_kind::spf_fail},
      {"dkim_fail", check_kind::dkim_fail},
      {"dmarc_fail", check_kind::dmarc_fail},
      {"bayes", check_kind::bayes},
  };
  std::string v = n.as_string();
  for (const auto& [name, kind] : names)
    if (name == v) return kind;
  std::string all;
  for (const auto& [name, kind] : names)
    all += (all.empty() ? "" : ", ") + std::string(name);
  n.fail("unknown check \"" + v + "\" (one of " + all + ")");
}

std::vector<std::string> lower_list(const config_node& n) {
  std::vector<std::string> out = n.as_string_list();
  for (auto& s : out) {
    for (char& c : s)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    while (!s.empty() && s.front() == '.')
      s.erase(s.begin());
  }
  return out;
}

rule parse_rule(const config_node& n) {
  if (!n.is_map()) n.fail("expected a map with name, score, description and one test");
  rule r;
  r.where = n.where();
  config_node name = n.at("name");
  r.name = name.as_string();
  if (r.name.empty() || r.name.size() > 64 ||
      !std::all_of(r.name.begin(), r.name.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
      })) {
    name.fail("a rule name is 1-64 characters of A-Z, 0-9 and _");
  }
  config_node score = n.at("score");
  r.score = score.as_double();
  if (!std::isfinite(r.score) || std::fabs(r.score) > 1000)
    score.fail("must be between -1000 and 1000");
  r.description = n.get_string("description", "");
  if (r.description.size() > 200) n.at("description").fail("at most 200 characters");
  int tests = 0;
  if (auto h = n.find("header")) {
    ++tests;
    r.kind = rule_kind::header;
    r.header = h->as_string();
    if (r.header.empty() || r.header.find_first_of(": \t") != std::string::npos) {
      h->fail("a header field name");
    }
    if (auto p = n.find("pattern"))
      r.pattern = compile(*p);
    else if (r.header == "ALL")
      h->fail("header: ALL needs a pattern");
  }
  for (auto [key, kind] : {std::pair{"body", rule_kind::body}, std::pair{"html", rule_kind::html},
                           std::pair{"uri", rule_kind::uri}}) {
    if (auto p = n.find(key)) {
      ++tests;
      r.kind = kind;
      r.pattern = compile(*p);
      if (kind != rule_kind::uri) r.needles = prefilter_needles(p->as_string());
    }
  }
  if (auto c = n.find("check")) {
    ++tests;
    r.kind = rule_kind::check;
    r.check = parse_check(*c);
    switch (r.check) {
      case check_kind::subject_all_caps:
        r.min = static_cast<double>(n.get_int("min_letters", 10));
        break;
      case check_kind::many_recipients:
        r.min = static_cast<double>(n.get_int("min", 20));
        if (r.min < 1) n.at("min").fail("must be at least 1");
        break;
      case check_kind::attachment_extension:
        r.list = lower_list(n.at("extensions"));
        break;
      case check_kind::uri_shortener:
        r.list = lower_list(n.at("domains"));
        break;
      case check_kind::spf_fail:
      case check_kind::dkim_fail:
      case check_kind::dmarc_fail:
        r.list = n.has("results") ? lower_list(n.at("results")) : std::vector<std::string>{"fail"};
        break;
      case check_kind::bayes: {
        config_node lo = n.at("min"), hi = n.at("max");
        r.min = lo.as_double();
        r.max = hi.as_double();
        if (r.min < 0 || r.min > 1) lo.fail("a probability between 0 and 1");
        if (r.max <= r.min || r.max > 1.000001) hi.fail("a probability above min, at most 1");
        break;
      }
      default:
        break;
    }
  }
  if (tests != 1) {
    n.fail("a rule needs exactly one of header, body, html, uri or check");
  }
  if (n.has("pattern") && r.kind != rule_kind::header) {
    n.at("pattern").fail("pattern goes with header:");
  }
  return r;
}

// The literal alternatives a caseless pattern must start with, or {} when the pattern has
// another shape. Only letters, digits and spaces count as literal.
std::vector<std::string> prefilter_needles(std::string_view p) {
  if (!p.starts_with("(?i)")) return {};
  p.remove_prefix(4);
  if (p.starts_with("\\b")) p.remove_prefix(2);
  if (!p.starts_with("(?:")) return {};
  p.remove_prefix(3);
  std::vector<std::string> out;
  std::string cur;
  for (char c : p) {
    if (c == '|' || c == ')') {
      if (cur.empty()) return {};
      out.push_back(cur);
      cur.clear();
      if (c == ')') return out;
    } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == ' ') {
      cur += c;
    } else if (c >= 'A' && c <= 'Z') {
      cur += static_cast<char>(c - 'A' + 'a');
    } else {
      return {};
    }
  }
  return {};
}

// ASCII lower case, with the two non-ASCII letters that fold to ASCII ones under Unicode
// caseless matching (U+212A KELVIN SIGN → k, U+017F LONG S → s) mapped too, so that the
// prefilter never skips a text the caseless regex would match.
std::string fold_for_prefilter(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x84 &&
        static_cast<unsigned char>(s[i + 2]) == 0xAA) {
      out += 'k';
      i += 2;
    } else if (c == 0xC5 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0xBF) {
      out += 's';
      i += 1;
    } else {
      out += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : static_cast<char>(c);
    }
  }
  return out;
}

bool any_needle(const std::vector<std::string>& needles, std::string_view folded) {
  for (const auto& n : needles)
    if (folded.find(n) != std::string_view::npos) return true;
  return false;
}

bool contains(const std::vector<std::string>& list, std::string_view v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

std::string lower_copy(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string auth_result(const boost::json::object& o) {
  const auto* r = o.if_contains("result");
  return r && r->is_string() ? lower_copy(r->get_string()) : std::string();
}

bool host_in(const std::string& host, const std::vector<std::string>& domains) {
  for (const auto& d : domains) {
    if (host == d) return true;
    if (host.size() > d.size() && host.ends_with(d) && host[host.size() - d.size() - 1] == '.')
      return true;
  }
  return false;
}

// The domain a link's visible text names, if it looks like a URL or a bare host name
// ("www.bank.example", "https://bank.example/login", "bank.example"); empty otherwise.
std::string text_domain(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  if (text.empty() || text.size() > 300 || text.find(' ') != std::string_view::npos) return {};
  std::string host = uri_host(text);
  if (host.empty()) {
    // A bare "bank.example/path": a dot and only host characters before the first slash.
    std::string_view h = text.substr(0, text.find_first_of("/?#"));
    if (h.find('.') == std::string_view::npos || h.find('@') != std::string_view::npos) return {};
    for (char c : h)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-')) return {};
    host = lower_copy(h);
    // The last label must be alphabetic: "v1.2" or "3.5" are not host names.
    auto dot = host.rfind('.');
    std::string_view tld = std::string_view(host).substr(dot + 1);
    if (tld.size() < 2 || !std::all_of(tld.begin(), tld.end(), [](char c) {
          return std::isalpha(static_cast<unsigned char>(c));
        })) {
      return {};
    }
  }
  return host;
}

}  // namespace

namespace {
void load_root(std::vector<rule>& rules, const config_node& root) {
  if (!root.is_map()) root.fail("a rule file is a map with the key rules:");
  config_node list = root.at("rules");
  if (!list.is_sequence()) list.fail("expected a sequence of rules");
  std::set<std::string> names;
  for (const config_node& item : list.items()) {
    rule r = parse_rule(item);
    if (!names.insert(r.name).second) item.at("name").fail("duplicate rule " + r.name);
    // A later file overrides an earlier rule of the same name (SpamAssassin's semantics).
    auto same =
        std::find_if(rules.begin(), rules.end(), [&](const rule& x) { return x.name == r.name; });
    if (same != rules.end())
      *same = std::move(r);
    else
      rules.push_back(std::move(r));
  }
  root.check_unknown_keys();
}
}  // namespace

void rule_set::load_text(std::string_view yaml, const std::string& file_name) {
  load_root(rules_, config_node::parse(yaml, file_name));
}

void rule_set::load_file(const std::string& path) {
  load_root(rules_, config_node::load_file(path));
}

bool rule_set::has_bayes_rules() const {
  return std::any_of(rules_.begin(), rules_.end(), [](const rule& r) {
    return r.kind == rule_kind::check && r.check == check_kind::bayes && r.score != 0;
  });
}

std::vector<rule_hit> rule_set::evaluate(const scan_input& in, std::optional<double> bayes) const {
  std::vector<rule_hit> hits;
  match_data md;
  const parsed_message& v = in.view;
  // Folded copies for the prefilter, made on first use.
  std::optional<std::string> body_folded, html_folded;
  for (const rule& r : rules_) {
    if (r.score == 0) continue;  // disabled
    bool hit = false;
    switch (r.kind) {
      case rule_kind::header:
        if (r.header == "ALL") {
          hit = matches(*r.pattern, in.header_block, md);
        } else if (!r.pattern) {
          hit = in.header(r.header) != nullptr;
        } else if (in.have_view && lower_copy(r.header) == "subject") {
          hit = matches(*r.pattern, v.subject, md);  // decoded (RFC 2047)
        } else {
          for (const auto& [name, value] : in.headers) {
            if (name.size() == r.header.size() && lower_copy(name) == lower_copy(r.header) &&
                matches(*r.pattern, value, md)) {
              hit = true;
              break;
            }
          }
        }
        break;
      case rule_kind::body:
        if (!r.needles.empty()) {
          if (!body_folded) body_folded = fold_for_prefilter(in.body);
          if (!any_needle(r.needles, *body_folded)) break;
        }
        hit = matches(*r.pattern, in.body, md);
        break;
      case rule_kind::html:
        if (v.html.empty()) break;
        if (!r.needles.empty()) {
          if (!html_folded) html_folded = fold_for_prefilter(v.html);
          if (!any_needle(r.needles, *html_folded)) break;
        }
        hit = matches(*r.pattern, v.html, md);
        break;
      case rule_kind::uri:
        for (const auto& u : in.uris) {
          if (matches(*r.pattern, u.text, md)) {
            hit = true;
            break;
          }
        }
        break;
      case rule_kind::check:
        switch (r.check) {
          case check_kind::gtube:
            hit = in.body.find(gtube_string) != std::string::npos ||
                  v.html.find(gtube_string) != std::string::npos;
            break;
          case check_kind::html_only:
            hit = in.have_view && !v.html.empty() && v.text_part_id.empty();
            break;
          case check_kind::missing_date:
            hit = in.header("Date") == nullptr;
            break;
          case check_kind::missing_message_id:
            hit = in.header("Message-ID") == nullptr;
            break;
          case check_kind::missing_from:
            hit = in.header("From") == nullptr;
            break;
          case check_kind::subject_all_caps: {
            std::size_t letters = 0, upper = 0;
            for (char c : v.subject) {
              if (std::isalpha(static_cast<unsigned char>(c))) {
                ++letters;
                if (std::isupper(static_cast<unsigned char>(c))) ++upper;
              }
            }
            hit = letters >= r.min && upper == letters;
            break;
          }
          case check_kind::many_recipients: {
            std::size_t header_rcpts = v.to.size() + v.cc.size();
            hit = static_cast<double>(std::max(in.recipients, header_rcpts)) >= r.min;
            break;
          }
          case check_kind::attachment_extension:
            for (const auto* parts : {&v.attachments, &v.inline_parts}) {
              for (const auto& p : *parts) {
                auto dot = p.file_name.rfind('.');
                if (dot != std::string::npos &&
                    contains(r.list, lower_copy(std::string_view(p.file_name).substr(dot + 1)))) {
                  hit = true;
                }
              }
            }
            break;
          case check_kind::mime_problems:
            hit = !v.problems.empty();
            break;
          case check_kind::uri_ip_literal:
            hit = std::any_of(in.uris.begin(), in.uris.end(),
                              [](const uri& u) { return is_ip_literal(u.host); });
            break;
          case check_kind::uri_shortener:
            hit = std::any_of(in.uris.begin(), in.uris.end(),
                              [&](const uri& u) { return host_in(u.host, r.list); });
            break;
          case check_kind::uri_text_mismatch:
            for (const auto& u : in.uris) {
              if (!u.from_html || u.host.empty() || u.link_text.empty()) continue;
              std::string shown = text_domain(u.link_text);
              if (!shown.empty() && base_domain(shown) != base_domain(u.host)) {
                hit = true;
                break;
              }
            }
            break;
          case check_kind::spf_fail:
          case check_kind::dmarc_fail: {
            const auto* o = in.auth.if_contains(r.check == check_kind::spf_fail ? "spf" : "dmarc");
            hit = o && o->is_object() && contains(r.list, auth_result(o->get_object()));
            break;
          }
          case check_kind::dkim_fail:
            if (const auto* d = in.auth.if_contains("dkim")) {
              if (d->is_array()) {
                for (const auto& sig : d->get_array())
                  if (sig.is_object() && contains(r.list, auth_result(sig.get_object())))
                    hit = true;
              } else if (d->is_object()) {
                hit = contains(r.list, auth_result(d->get_object()));
              }
            }
            break;
          case check_kind::bayes:
            hit = bayes && *bayes >= r.min && (*bayes < r.max || (r.max >= 1 && *bayes <= 1));
            break;
        }
        break;
    }
    if (hit) hits.push_back(rule_hit{r.name, r.score, r.description});
  }
  return hits;
}

boost::json::object to_json(const scan_result& r) {
  boost::json::object o;
  o["engine"] = r.engine;
  o["score"] = r.score;
  o["threshold"] = r.threshold;
  o["is_spam"] = r.is_spam;
  o["action"] = r.action;
  boost::json::array rules;
  for (const auto& h : r.rules) {
    rules.push_back(
        boost::json::object{{"name", h.name}, {"score", h.score}, {"description", h.description}});
  }
  o["rules"] = std::move(rules);
  if (r.bayes) o["bayes"] = *r.bayes;
  if (!r.engine_action.empty()) o["engine_action"] = r.engine_action;
  if (!r.error.empty()) o["error"] = r.error;
  return o;
}

}  // namespace sluice::spam
