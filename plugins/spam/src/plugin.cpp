// plugin.cpp — the spam plugin's descriptor: the `spam` stage (native rules + Bayes,
// SpamAssassin spamd or rspamd), the `spam` service (the Bayesian token database, offered
// as the SDK's spam_trainer) and the `sluice spam train|stats` command.
// Factories run at startup and may throw config_error; nothing else here runs later.
#include <span>
#include <string>

#include "sluice/plugin.hpp"
#include "stage.hpp"

namespace sluice::spam {
int spam_command(std::span<const std::string> args);
}

namespace {

void register_spam(sluice::registrar& reg) {
  reg.add_stage("spam", sluice::spam::make_spam_stage);
  reg.add_service("spam", sluice::spam::make_bayes_service);
  reg.add_command(
      "spam",
      "train the spam classifier: spam train --spam DIR --ham DIR [--db FILE]; "
      "spam stats",
      [](std::span<const std::string> args) { return sluice::spam::spam_command(args); });
}

}  // namespace

SLUICE_PLUGIN("spam", "0.1.0", "Spam scoring: native rules and Bayes, SpamAssassin spamd, rspamd",
              register_spam);
