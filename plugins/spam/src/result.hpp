// result.hpp — a spam scan's outcome and its "spam" attribute.
//
// Every engine (native, spamd, rspamd) produces a scan_result; the stage stores it on the
// message as attribute "spam" (to_json), which the store keeps and the HTTP API serves as
// Mailpit's sa-check answer. Value types.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

namespace sluice::spam {

struct rule_hit {
  std::string name;
  double score = 0;
  std::string description;
};

struct scan_result {
  std::string engine;  // "native", "spamassassin", "rspamd"
  double score = 0;
  double threshold = 5;
  bool is_spam = false;
  std::vector<rule_hit> rules;
  std::optional<double> bayes;  // native: the classifier's probability, when it ran
  std::string engine_action;    // rspamd: its "action"
  std::string rewrite_subject;  // rspamd "rewrite subject": the new Subject
  std::string action;           // what the stage did: none, tag, quarantine, tempfail, reject
  std::string error;            // the engine failed: why (safe to show)
};

// {"engine","score","threshold","is_spam","action","rules":[{"name","score","description"}],
//  "bayes"?: p, "engine_action"?: s, "error"?: s}
boost::json::object to_json(const scan_result& r);

}  // namespace sluice::spam
