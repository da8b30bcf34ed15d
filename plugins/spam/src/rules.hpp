// rules.hpp — the native engine's rules: loaded from YAML, compiled once, evaluated per
// message.
//
// A rule file is a map with one key, `rules:`, a sequence of rules. Each rule has a `name`
// (A-Z, 0-9, _; unique), a `score` (may be negative), a `description`, and exactly one test:
//   header: NAME   [pattern: REGEX]   a header field's value matches (no pattern: present);
//                                     NAME "ALL" is the whole unfolded header block
//   body: REGEX                       Subject + decoded text + HTML-as-text
//   html: REGEX                       the decoded HTML source
//   uri: REGEX                        each URI of the text and HTML (href, src, action)
//   check: NAME [options]             a built-in test (see check_kind)
// Regexes are PCRE2 (UTF mode), compiled and JIT-compiled at load. Flags go inline
// ("(?i)"). Later files override earlier rules of the same name (score 0 disables one).
//
// Threading: a rule_set is immutable after load and may be evaluated concurrently; each
// evaluation allocates its own PCRE2 match data. Failure: a bad file, key or regex throws
// config_error with file:line:col; evaluation never throws on message content (a regex
// that hits its match limit counts as no match).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "result.hpp"
#include "scan_input.hpp"

namespace sluice::spam {

enum class rule_kind : std::uint8_t { header, body, html, uri, check };

enum class check_kind : std::uint8_t {
  gtube,                 // the GTUBE test string in the body: always spam
  html_only,             // an HTML body and no text/plain alternative
  missing_date,          // no Date field
  missing_message_id,    // no Message-ID field
  missing_from,          // no From field
  subject_all_caps,      // min_letters (10) letters or more, all upper case
  many_recipients,       // envelope, or To + Cc, at least `min` (20)
  attachment_extension,  // an attachment's file name ends in one of `extensions`
  mime_problems,         // the mime stage noted problems (malformed MIME)
  uri_ip_literal,        // a URI whose host is an IP address
  uri_shortener,         // a URI whose host is one of `domains`
  uri_text_mismatch,     // an HTML link whose text names another domain than its href
  spf_fail,              // auth.spf.result is one of `results` (fail)
  dkim_fail,             // a DKIM signature's result is one of `results` (fail)
  dmarc_fail,            // auth.dmarc.result is one of `results` (fail)
  bayes,                 // the classifier's probability p: min <= p < max
};

struct regex;  // PCRE2 code, shared

struct rule {
  std::string name;
  double score = 0;
  std::string description;
  rule_kind kind = rule_kind::check;
  std::string header;  // rule_kind::header: field name, or "ALL"
  std::shared_ptr<const regex> pattern;
  // body/html rules of the form "(?i)[\b](?:word|two words|…)…": the regex can only match
  // where one of these (lower-case ASCII) literals occurs, so a message without any of
  // them skips the regex. Empty: no prefilter.
  std::vector<std::string> needles;
  check_kind check = check_kind::gtube;
  double min = 0, max = 0;        // many_recipients (min), subject_all_caps (min), bayes
  std::vector<std::string> list;  // extensions, domains, results (lower case)
  std::string where;              // file:line:col of the rule, for messages
};

class rule_set {
 public:
  // Appends (or overrides by name) the rules of one file. Throws config_error.
  void load_file(const std::string& path);
  void load_text(std::string_view yaml, const std::string& file_name);

  // Every matching rule with a non-zero score, in rule order. `bayes`: the classifier's
  // probability, when it had enough training; bayes rules never match without it.
  std::vector<rule_hit> evaluate(const scan_input& in, std::optional<double> bayes) const;

  const std::vector<rule>& rules() const { return rules_; }
  // A set holding only rule i (the benchmark times rules one by one).
  rule_set only(std::size_t i) const {
    rule_set r;
    r.rules_.push_back(rules_.at(i));
    return r;
  }
  bool has_bayes_rules() const;

 private:
  std::vector<rule> rules_;
};

// The GTUBE string (SpamAssassin's Generic Test for Unsolicited Bulk Email).
inline constexpr std::string_view gtube_string =
    "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";

}  // namespace sluice::spam
