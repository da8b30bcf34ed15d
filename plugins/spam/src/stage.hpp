// stage.hpp — the spam plugin's objects: the `spam` service (a Bayesian token database,
// offered as the SDK's spam_trainer) and the `spam` stage (native, spamassassin or rspamd
// engine; score to actions; X-Spam-* headers; the "spam" attribute).
//
// Threading: both are safe for concurrent calls. The stage's options are immutable and
// shared with every call's coroutine frame (a timed-out frame may outlive the call). The
// native engine's work (rules, tokens, SQLite reads) runs on the host's workers; external
// engines run on the I/O executor, asynchronously.
//
// Failure: configuration problems throw config_error at startup. An engine failure at run
// time records {"error": …} in the "spam" attribute and throws, so the kernel applies the
// stage's on_error.
#pragma once

#include <memory>

#include "bayes.hpp"
#include "rules.hpp"
#include "sluice/host.hpp"
#include "sluice/spam.hpp"
#include "sluice/stage.hpp"

namespace sluice::spam {

class bayes_service final : public spam_trainer {
 public:
  // The plugin-private kind under which stages find the classifier (same .so).
  static constexpr std::string_view classifier_kind = "spam.bayes";

  bayes_service(host& h, std::shared_ptr<token_db> db, tokenizer_options tok, scan_limits limits)
      : host_(h), db_(std::move(db)), tok_(tok), limits_(limits) {}

  boost::asio::awaitable<spam_train_result> train(std::string headers, parsed_message view,
                                                  spam_label label) override;

  const std::shared_ptr<token_db>& db() const { return db_; }
  const tokenizer_options& tokenizer() const { return tok_; }

 private:
  host& host_;
  std::shared_ptr<token_db> db_;
  tokenizer_options tok_;
  scan_limits limits_;
};

std::shared_ptr<service> make_bayes_service(instance_context& ctx);
std::shared_ptr<stage> make_spam_stage(instance_context& ctx);

// The shipped default rule file, next to the plugin (…/plugins/spam/rules/default.yaml).
std::string default_rules_path();

// The native engine on one message, synchronously (the stage runs it on a worker; the
// benchmark and tests call it directly).
struct native_engine {
  std::shared_ptr<const rule_set> rules;
  std::shared_ptr<token_db> bayes;  // may be null
  tokenizer_options tok;
  scan_limits limits;
  double threshold = 5.0;
  scan_result scan(const scan_input& in) const;
};

}  // namespace sluice::spam
