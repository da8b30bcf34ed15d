// rewriter.hpp — the rules of one rewrite stage instance and how they apply to a message.
//
// Rules are parsed and validated once, from the stage's config map (parse_rules throws
// config_error with file:line:col for every bad rule: a regex that does not compile, a
// replacement naming a group the regex lacks, an unknown op, a field name outside RFC 5322
// ftext, a value with CR/LF). apply() then never throws: it edits the envelope, records
// header edits on the message (the raw bytes stay as received), and returns what it did.
//
// Order within one message: sender rules, recipient rules (then duplicates merged),
// header rules, the From override, the subject prefix, X-Original-To. Address rules are
// first-match-wins per address, unless a rule says `continue: true`.
//
// Threading: a rule_set is immutable after parsing and shared by concurrent calls.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "regex.hpp"
#include "sluice/config.hpp"
#include "sluice/message.hpp"

namespace sluice::rewrite {

// Optional condition on a rule, evaluated against the envelope as this stage received it
// (before its own rewrites): every regex given must match.
struct condition {
  std::shared_ptr<const regex> sender;     // MAIL FROM ("" for the null sender)
  std::shared_ptr<const regex> recipient;  // matches when any recipient matches
  bool empty() const { return !sender && !recipient; }
};

enum class match_kind { exact, domain, any, pattern };

struct address_rule {
  std::string label;  // `label:` or "recipients[2]"
  match_kind kind = match_kind::exact;
  std::string key;  // exact: the address, lower case; domain: the domain, lower case
  std::shared_ptr<const regex> re;
  std::string to;          // address, "@domain" (keeps the local part) or regex replacement
  bool continue_ = false;  // feed the result to the following rules
  sluice::rewrite::condition when;
};

enum class header_op { set, add, remove, rename };

struct header_rule {
  std::string label;
  header_op op = header_op::set;
  std::string name;
  std::string value;  // set/add: ready to write (RFC 2047 encoded); rename: the new name
  sluice::rewrite::condition when;
};

struct from_override {
  std::string address;
  std::optional<std::string> name;  // a fixed display name; unset keeps the original one
  bool envelope = true;             // also the MAIL FROM, as Mailpit's override-from does
};

struct rule_set {
  std::vector<address_rule> sender;
  std::vector<address_rule> recipients;
  std::vector<header_rule> headers;
  std::optional<from_override> from;
  std::string subject_prefix;       // empty: none
  bool original_to_header = false;  // X-Original-To with the original recipients
};

rule_set parse_rules(const config_node& cfg);

struct result {
  // Set when a rule could not be applied safely (a regex hit its match limit, a result is
  // not an address): the caller must not let the message through unrewritten.
  std::string error;
  bool changed = false;
  boost::json::object record;  // merged into attributes["rewrite"]
};

result apply(const rule_set& rules, message& msg);

// Address syntax check for a configured or rewritten address ("" when fine).
std::string address_problem(std::string_view address);

}  // namespace sluice::rewrite
