// dmarc.cpp — DMARC evaluation; see dmarc.hpp.
#include "dmarc.hpp"

#include <idn2.h>
#include <libpsl.h>

#include <algorithm>
#include <cctype>

#include <boost/json/array.hpp>

#include "dkim.hpp"
#include "sluice/text.hpp"

namespace sluice::auth::dmarc {
namespace {

std::string trim(std::string_view s) {
  auto sp = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && sp(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && sp(s.back()))
    s.remove_suffix(1);
  return std::string(s);
}

std::optional<policy> parse_policy(std::string_view v) {
  std::string l = to_lower_ascii(trim(v));
  if (l == "none") return policy::none;
  if (l == "quarantine") return policy::quarantine;
  if (l == "reject") return policy::reject;
  return std::nullopt;
}

policy weaker(policy p) {
  return p == policy::reject ? policy::quarantine : policy::none;
}

// §6.6.3 step 3: records that do not start with "v=DMARC1" are discarded.
bool is_dmarc_record(std::string_view t) {
  std::size_t i = 0;
  auto skip = [&] {
    while (i < t.size() && (t[i] == ' ' || t[i] == '\t'))
      ++i;
  };
  skip();
  if (i >= t.size() || t[i] != 'v') return false;
  ++i;
  skip();
  if (i >= t.size() || t[i] != '=') return false;
  ++i;
  skip();
  if (t.substr(i, 6) != "DMARC1") return false;
  i += 6;
  skip();
  return i == t.size() || t[i] == ';';
}

}  // namespace

std::string without_comments(std::string_view v) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\\' && i + 1 < v.size() && (quoted || depth > 0)) {
      if (!depth) {
        out += c;
        out += v[i + 1];
      }
      ++i;
      continue;
    }
    if (depth > 0) {
      if (c == '(') ++depth;
      if (c == ')' && --depth == 0) out += ' ';
      continue;
    }
    if (quoted) {
      out += c;
      if (c == '"') quoted = false;
      continue;
    }
    if (c == '"') quoted = true;
    if (c == '(') {
      depth = 1;
      continue;
    }
    out += c;
  }
  return out;
}

namespace {

struct one {
  outcome out;
  bool aligned_pass = false;
};

// Strict: the same name; relaxed: the same organizational domain (§3.1).
bool aligned(const suffix_list& psl, const std::string& id_domain, const std::string& author,
             const std::string& author_org, bool strict) {
  std::string d = to_lower_ascii(id_domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  if (d.empty()) return false;
  if (strict) return d == author;
  return psl.organizational_domain(d) == author_org;
}

std::string str(const boost::json::object& o, std::string_view k) {
  const auto* v = o.if_contains(k);
  return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// The DMARC records at _dmarc.<domain>: status ok with the records (maybe none), or the
// DNS failure.
struct discovered {
  dns_status status = dns_status::ok;
  std::vector<std::string> records;
};

boost::asio::awaitable<discovered> lookup(std::shared_ptr<resolver> dns, std::string domain) {
  discovered d;
  dns_answer a = co_await dns->txt("_dmarc." + domain);
  if (a.status == dns_status::nxdomain || a.status == dns_status::nodata) co_return d;
  if (a.status != dns_status::ok) {
    d.status = a.status;
    co_return d;
  }
  for (auto& r : a.records)
    if (is_dmarc_record(r)) d.records.push_back(std::move(r));
  co_return d;
}

boost::asio::awaitable<outcome> evaluate_one(std::shared_ptr<resolver> dns,
                                             std::shared_ptr<const suffix_list> psl,
                                             std::string domain, const boost::json::object& auth,
                                             unsigned sample) {
  outcome o;
  o.from_domain = domain;
  o.org_domain = psl->organizational_domain(domain);
  // §6.6.3: the author domain, then its organizational domain.
  discovered d = co_await lookup(dns, domain);
  o.record_domain = domain;
  if (d.status == dns_status::ok && d.records.empty() && o.org_domain != domain) {
    d = co_await lookup(dns, o.org_domain);
    o.record_domain = o.org_domain;
  }
  if (d.status != dns_status::ok) {
    o.res = result::temperror;
    o.reason = "DMARC record lookup failed for _dmarc." + o.record_domain + ": " +
               std::string(to_string(d.status));
    co_return o;
  }
  if (d.records.empty()) {
    o.res = result::none;
    o.reason = "no DMARC record";
    o.record_domain.clear();
    co_return o;
  }
  if (d.records.size() > 1) {
    // §6.6.3 step 5: several records end discovery; DMARC is not applied.
    o.res = result::none;
    o.reason = "several DMARC records at _dmarc." + o.record_domain + ", not applied";
    co_return o;
  }
  std::string error;
  auto rec = parse_record(d.records.front(), error);
  if (!rec) {
    o.res = result::permerror;
    o.reason = error + " at _dmarc." + o.record_domain;
    co_return o;
  }
  const bool subdomain_policy = o.record_domain != domain;
  o.requested = subdomain_policy && rec->sp ? *rec->sp : rec->p;
  o.pct = rec->pct;
  o.strict_dkim = rec->strict_dkim;
  o.strict_spf = rec->strict_spf;

  if (const auto* spf = auth.if_contains("spf"); spf && spf->is_object()) {
    const auto& s = spf->as_object();
    o.spf_aligned = str(s, "result") == "pass" &&
                    aligned(*psl, str(s, "domain"), domain, o.org_domain, o.strict_spf);
  }
  if (const auto* dkim = auth.if_contains("dkim"); dkim && dkim->is_array()) {
    for (const auto& sig : dkim->as_array()) {
      if (!sig.is_object()) continue;
      const auto& s = sig.as_object();
      if (str(s, "result") == "pass" &&
          aligned(*psl, str(s, "domain"), domain, o.org_domain, o.strict_dkim)) {
        o.dkim_aligned = true;
        o.dkim_domain = str(s, "domain");
        break;
      }
    }
  }
  const std::string p = "p=" + std::string(to_string(o.requested));
  if (o.dkim_aligned || o.spf_aligned) {
    o.res = result::pass;
    o.reason = p + " dis=none; aligned " +
               (o.dkim_aligned ? "dkim d=" + o.dkim_domain : std::string("spf"));
    co_return o;
  }
  o.res = result::fail;
  // §6.6.4: the policy applies to pct% of failing mail; the rest gets the next weaker one.
  if (sample < o.pct) {
    o.applied = o.requested;
  } else {
    o.applied = weaker(o.requested);
    o.sampled_out = true;
  }
  o.reason = p + " dis=" + std::string(to_string(o.applied)) + "; no aligned SPF or DKIM pass";
  co_return o;
}

int rank(result r) {
  switch (r) {
    case result::fail:
      return 4;
    case result::temperror:
      return 3;
    case result::permerror:
      return 2;
    case result::pass:
      return 1;
    case result::none:
      return 0;
  }
  return 0;
}

}  // namespace

std::string_view to_string(result r) noexcept {
  switch (r) {
    case result::none:
      return "none";
    case result::pass:
      return "pass";
    case result::fail:
      return "fail";
    case result::temperror:
      return "temperror";
    case result::permerror:
      return "permerror";
  }
  return "permerror";
}

std::string_view to_string(policy p) noexcept {
  switch (p) {
    case policy::none:
      return "none";
    case policy::quarantine:
      return "quarantine";
    case policy::reject:
      return "reject";
  }
  return "none";
}

suffix_list::suffix_list() {
  // The system's list (Debian's publicsuffix package) when it is newer than the built-in.
  if (psl_ctx_t* p = psl_latest(nullptr)) {
    psl_ = p;
    owned_ = true;
  } else {
    psl_ = psl_builtin();
  }
}

suffix_list::~suffix_list() {
  if (owned_) psl_free(static_cast<psl_ctx_t*>(const_cast<void*>(psl_)));
}

std::string suffix_list::organizational_domain(std::string_view domain) const {
  std::string d = to_lower_ascii(domain);
  if (!d.empty() && d.back() == '.') d.pop_back();
  if (!psl_ || d.empty()) return d;
  const char* reg = psl_registrable_domain(static_cast<const psl_ctx_t*>(psl_), d.c_str());
  return reg ? std::string(reg) : d;
}

std::optional<record> parse_record(std::string_view text, std::string& error) {
  auto tags = dkim::parse_tag_list(text);
  if (!tags || tags->empty() || tags->front().first != "v" || tags->front().second != "DMARC1") {
    error = "malformed DMARC record";
    return std::nullopt;
  }
  record r;
  bool have_p = false;
  for (const auto& [k, v] : *tags) {
    if (k == "p") {
      if (auto p = parse_policy(v)) {
        r.p = *p;
        have_p = true;
      }
    } else if (k == "sp") {
      r.sp = parse_policy(v);
    } else if (k == "adkim") {
      r.strict_dkim = to_lower_ascii(v) == "s";
    } else if (k == "aspf") {
      r.strict_spf = to_lower_ascii(v) == "s";
    } else if (k == "pct") {
      std::string t = trim(v);
      if (!t.empty() && t.size() <= 3 && std::all_of(t.begin(), t.end(), ::isdigit) &&
          std::stoi(t) <= 100) {
        r.pct = static_cast<unsigned>(std::stoi(t));
      }
    } else if (k == "rua") {
      r.rua = v;
    }
  }
  if (!have_p) {
    // §6.6.3 step 6: no valid p= but a reporting address: act as if p=none.
    if (r.rua.find("mailto:") != std::string::npos) {
      r.p = policy::none;
    } else {
      error = "DMARC record without a valid p=";
      return std::nullopt;
    }
  }
  return r;
}

std::vector<std::string> from_domains(std::string_view value) {
  std::string v = without_comments(value);
  std::vector<std::string> out;
  auto push = [&](std::string addr) {
    if (std::size_t colon = addr.rfind(':'); colon != std::string::npos) {
      addr = addr.substr(colon + 1);  // an obsolete source route "<@a,@b:user@dom>"
    }
    addr = trim(addr);
    std::size_t at = addr.rfind('@');
    if (at == std::string::npos) return;
    std::string d = to_lower_ascii(trim(addr.substr(at + 1)));
    if (!d.empty() && d.back() == '.') d.pop_back();
    // A domain literal, or anything that is not a host name (this text also reaches SMTP
    // replies and logs): not an author domain DMARC can evaluate.
    if (d.empty() || d.front() == '[') return;
    // RFC 8616 §4: an internationalized domain is looked up (and reported) by its A-labels
    // (IDNA2008 with UTS #46 mapping); one that does not convert cannot be evaluated.
    if (std::any_of(d.begin(), d.end(),
                    [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
      char* ace = nullptr;
      if (idn2_to_ascii_8z(d.c_str(), &ace, IDN2_NONTRANSITIONAL) != IDN2_OK) {
        if (ace) idn2_free(ace);
        return;
      }
      d = to_lower_ascii(ace);
      idn2_free(ace);
    }
    for (char c : d) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x21 || u == 0x7f ||
          std::string_view("()<>[]:;@\\,\"").find(c) != std::string_view::npos) {
        return;
      }
    }
    out.push_back(std::move(d));
  };
  std::string cur, angle;
  bool quoted = false, in_angle = false, has_angle = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (in_angle) {
      if (c == '>') {
        in_angle = false;
      } else {
        angle += c;
      }
      continue;
    }
    if (quoted) {
      cur += c;
      if (c == '\\' && i + 1 < v.size()) {
        cur += v[++i];
      } else if (c == '"') {
        quoted = false;
      }
      continue;
    }
    if (c == '"') {
      quoted = true;
      cur += c;
    } else if (c == '<') {
      in_angle = has_angle = true;
      angle.clear();
    } else if (c == ':') {
      cur.clear();  // "group-name:" starts a group; the name is not an address
      has_angle = false;
    } else if (c == ',' || c == ';') {
      push(has_angle ? angle : cur);
      cur.clear();
      angle.clear();
      has_angle = false;
    } else {
      cur += c;
    }
  }
  push(has_angle ? angle : cur);
  return out;
}

boost::json::object outcome::to_json() const {
  boost::json::object j;
  j["result"] = to_string(res);
  j["reason"] = reason;
  j["from_domain"] = from_domain;
  if (!org_domain.empty()) j["org_domain"] = org_domain;
  if (!record_domain.empty()) {
    j["record_domain"] = record_domain;
    j["policy"] = to_string(requested);
    j["pct"] = pct;
    j["adkim"] = strict_dkim ? "s" : "r";
    j["aspf"] = strict_spf ? "s" : "r";
  }
  if (res == result::pass || res == result::fail) {
    j["spf_aligned"] = spf_aligned;
    j["dkim_aligned"] = dkim_aligned;
    if (!dkim_domain.empty()) j["dkim_domain"] = dkim_domain;
  }
  if (res == result::fail) {
    j["disposition"] = to_string(applied);
    j["sampled_out"] = sampled_out;
  }
  if (domains.size() > 1) {
    boost::json::array a;
    for (const auto& d : domains)
      a.emplace_back(d);
    j["domains"] = std::move(a);
  }
  return j;
}

namespace {

// The distinct author domains evaluate() checks, in From order.
std::vector<std::string> distinct_domains(const std::string& from_field) {
  std::vector<std::string> distinct;
  for (auto& d : from_domains(from_field))
    if (std::find(distinct.begin(), distinct.end(), d) == distinct.end()) {
      distinct.push_back(std::move(d));
    }
  return distinct;
}

}  // namespace

std::vector<std::string> policy_names(const std::vector<std::string>& from_fields,
                                      std::size_t max) {
  std::vector<std::string> names;
  if (from_fields.size() != 1) return names;
  for (const auto& d : distinct_domains(from_fields.front())) {
    if (names.size() >= max) break;
    names.push_back("_dmarc." + d);
  }
  return names;
}

boost::asio::awaitable<outcome> evaluate(std::shared_ptr<resolver> dns,
                                         std::shared_ptr<const suffix_list> psl,
                                         std::vector<std::string> from_fields,
                                         boost::json::object auth, unsigned sample) {
  outcome o;
  // §6.6.1: no From, several From fields, or no usable address: DMARC cannot be evaluated.
  if (from_fields.empty()) {
    o.res = result::permerror;
    o.reason = "no From field";
    co_return o;
  }
  if (from_fields.size() > 1) {
    o.res = result::permerror;
    o.reason = "several From fields";
    co_return o;
  }
  std::vector<std::string> distinct = distinct_domains(from_fields.front());
  if (distinct.empty()) {
    o.res = result::permerror;
    o.reason = "no usable address in From";
    co_return o;
  }
  // Several addresses (§6.6.1): each domain is checked; the outcome is the strictest failure
  // (then temperror, permerror, pass, none).
  bool first = true;
  for (const auto& d : distinct) {
    outcome one = co_await evaluate_one(dns, psl, d, auth, sample);
    bool better = first || rank(one.res) > rank(o.res) ||
                  (one.res == result::fail && o.res == result::fail && one.applied > o.applied);
    if (better) o = std::move(one);
    first = false;
  }
  o.domains = distinct;
  co_return o;
}

}  // namespace sluice::auth::dmarc
