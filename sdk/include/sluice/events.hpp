// sluice/events.hpp — the in-process event bus (new message, deleted, read, …).
//
// Publishers: the store and the listeners. Subscribers: the HTTP listener's WebSocket,
// the wait endpoint, webhooks. Callbacks run on the publisher's thread and must not block;
// a subscriber that needs to do I/O posts to its own executor. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "sluice/services.hpp"

namespace sluice {

// The kernel publishes "delivery" (mailbox empty) after every attempt of a deferred stage:
//   {"ID": message id, "Stage": stage instance, "Pipeline": name, "Attempt": 1, 2, …,
//    "Status": "done" | "retry" | "failed" | "expired", "Last": "<code> <enhanced> <text>",
//    "At": ms since the epoch, "NextAttempt": ms (retry only),
//    "Details": what the stage left in the message attribute "delivery_report" during the
//               attempt (its server, per-recipient replies, …), or null}
// The kernel removes "delivery_report" from the message after each attempt.
struct event {
  // "new", "update", "delete", "truncate", "prune", "changed" (a bulk change of many
  // messages, in place of one update/delete each: {"Count", and "Read", "Deleted" or
  // "Tags"}), "stats", "error", "delivery"
  std::string type;
  std::string mailbox;  // mailbox the event concerns; empty for global events
  boost::json::value data;
};

class events : public service {
 public:
  static constexpr std::string_view kind = "events";
  virtual void publish(event e) = 0;
  // Returns a token for unsubscribe().
  virtual std::uint64_t subscribe(std::function<void(const event&)> fn) = 0;
  virtual void unsubscribe(std::uint64_t token) = 0;
};

}  // namespace sluice
