// dmarc.hpp — DMARC (RFC 7489): policy discovery, identifier alignment and the policy result
// from the SPF and DKIM results already recorded in the message's "auth" attribute.
//
// Pure code over the abstract sluice::resolver (TXT at _dmarc.<domain>) and a public suffix
// list (libpsl) for organizational domains, so tests run against in-memory zones.
//
// Threading: evaluate() is one coroutine with its own state; a suffix_list is immutable after
// construction and shared by concurrent evaluations.
//
// Failure: DNS problems are temperror, malformed records and unusable From fields permerror;
// nothing throws for them.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "sluice/resolver.hpp"

namespace sluice::auth::dmarc {

// RFC 7489 §11.2 / RFC 8601 results.
enum class result {
  none,       // no DMARC policy for the author domain: nothing to apply
  pass,       // an aligned SPF or DKIM pass
  fail,       // no aligned pass: the domain's policy (p=/sp=, pct=) applies
  temperror,  // the policy could not be fetched now (DNS): retry later
  permerror,  // a malformed policy record, or a From field DMARC cannot evaluate
};
std::string_view to_string(result r) noexcept;

enum class policy { none, quarantine, reject };
std::string_view to_string(policy p) noexcept;

// The Public Suffix List (libpsl: the system's list when newer than the built-in one).
class suffix_list {
 public:
  suffix_list();
  ~suffix_list();
  suffix_list(const suffix_list&) = delete;
  suffix_list& operator=(const suffix_list&) = delete;
  // The organizational domain (RFC 7489 §3.2): the registrable domain, or the name itself
  // when it is a public suffix or unknown to the list. Lower case, no trailing dot.
  std::string organizational_domain(std::string_view domain) const;

 private:
  const void* psl_ = nullptr;
  bool owned_ = false;
};

// A parsed DMARC record (§6.3). Invalid optional values fall back to their defaults (§6.3:
// "syntax errors in the remainder of the record SHOULD be discarded").
struct record {
  policy p = policy::none;
  std::optional<policy> sp;
  bool strict_dkim = false;  // adkim=s
  bool strict_spf = false;   // aspf=s
  unsigned pct = 100;
  std::string rua;
};
// std::nullopt with `error` set when the text is not a usable DMARC record.
std::optional<record> parse_record(std::string_view text, std::string& error);

// The text with each RFC 5322 comment replaced by one space (nesting and quoted pairs
// respected; quoted strings left alone; an unterminated comment runs to the end).
std::string without_comments(std::string_view v);

// The domains of the addresses of one From field value (RFC 5322 address-list: display
// names, comments, quoted strings, groups). Lower case. Empty when none could be parsed.
std::vector<std::string> from_domains(std::string_view value);

struct outcome {
  result res = result::none;
  std::string reason;
  std::string from_domain;  // the RFC5322.From domain (the first, with several addresses)
  std::string org_domain;
  std::string record_domain;        // where the policy was found (_dmarc.<this>)
  policy requested = policy::none;  // p= or sp= as published
  policy applied = policy::none;    // after pct= sampling (fail only; none otherwise)
  bool sampled_out = false;         // pct= made the receiver apply the next weaker policy
  unsigned pct = 100;
  bool strict_dkim = false, strict_spf = false;
  bool spf_aligned = false;
  bool dkim_aligned = false;
  std::string dkim_domain;           // the d= of the aligned passing signature
  std::vector<std::string> domains;  // every author domain evaluated (several From addresses)

  boost::json::object to_json() const;
};

// Evaluates the message: `from_fields` are the values of its From fields as received,
// `auth` its "auth" attribute (spf, dkim results). `sample` in [0, 100) decides pct=:
// the policy applies when sample < pct.
boost::asio::awaitable<outcome> evaluate(std::shared_ptr<resolver> dns,
                                         std::shared_ptr<const suffix_list> psl,
                                         std::vector<std::string> from_fields,
                                         boost::json::object auth, unsigned sample);

// The first policy record names (_dmarc.<author domain>, at most `max`) that evaluate() looks
// up for these From fields, for a prefetch. Empty when it would look up nothing (no From,
// several From fields, no usable address). The organizational-domain fallback is not
// included: it is only asked when the first lookup finds no record.
std::vector<std::string> policy_names(const std::vector<std::string>& from_fields, std::size_t max);

}  // namespace sluice::auth::dmarc
