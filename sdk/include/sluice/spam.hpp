// sluice/spam.hpp — the `spam_trainer` service: teaching the spam classifier.
//
// Offered by the spam plugin (a service of plugin `spam` under `services:` owns one
// Bayesian token database); consumed by the HTTP API (`POST /api/v1/message/{ID}/train`)
// and anything else that wants to say "this message is spam / ham". The classifier reads
// the same database, so what is learnt here counts for the next message scanned.
//
// Learning is idempotent per message, as sa-learn: a message is identified by a digest of
// its tokens; learning it again with the same label changes nothing, learning it with the
// other label moves it (its tokens are forgotten from the old class first).
//
// Implementations run their blocking work (SQLite) on the host's workers and complete on
// the caller's executor. Thread-safe. A database failure throws std::runtime_error to the
// awaiter.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>

#include "sluice/parsed_message.hpp"
#include "sluice/services.hpp"

namespace sluice {

enum class spam_label : std::uint8_t {
  spam,  // unsolicited: its tokens count towards the spam class
  ham,   // wanted mail: its tokens count towards the ham class
};

struct spam_train_result {
  // What the database did: "learned" (new message), "relearned" (it was learnt with the
  // other label and moved), "unchanged" (already learnt with this label).
  std::string outcome;
  std::uint32_t tokens = 0;         // distinct tokens of the message
  std::uint64_t spam_messages = 0;  // totals after the operation
  std::uint64_t ham_messages = 0;
};

class spam_trainer : public service {
 public:
  static constexpr std::string_view kind = "spam_trainer";
  // `headers`: the message's header block (raw, or as output; X-Spam-* fields are ignored
  // so that a tagged message trains like the original). `view`: its parsed MIME view (the
  // "mime" attribute).
  virtual boost::asio::awaitable<spam_train_result> train(std::string headers, parsed_message view,
                                                          spam_label label) = 0;
};

}  // namespace sluice
