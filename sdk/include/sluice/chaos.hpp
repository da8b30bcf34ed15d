// sluice/chaos.hpp — the `chaos` service: injected failures for testing mail clients.
//
// Mailpit's chaos triggers: with a given probability, a listener answers a sender (MAIL),
// recipient (RCPT) or authentication (AUTH) command with the configured error code
// instead of proceeding. The service holds the current triggers; listeners ask it at
// each command; the HTTP API reads and replaces them (`/api/v1/chaos`). A process without
// a chaos service has chaos disabled.
//
// Thread-safe: triggers are read on I/O threads while the API replaces them.
#pragma once

#include <string_view>

#include "sluice/services.hpp"

namespace sluice {

struct chaos_trigger {
  int error_code = 451;  // 400..599
  int probability = 0;   // percent, 0..100
  friend bool operator==(const chaos_trigger&, const chaos_trigger&) = default;
};

struct chaos_triggers {
  chaos_trigger sender;
  chaos_trigger recipient;
  chaos_trigger authentication{535, 0};  // Mailpit's default code for AUTH
  friend bool operator==(const chaos_triggers&, const chaos_triggers&) = default;
};

class chaos_service : public service {
 public:
  static constexpr std::string_view kind = "chaos";
  enum class point { sender, recipient, authentication };

  virtual chaos_triggers get() const = 0;
  // Replaces all triggers. Throws std::invalid_argument for a code outside 400..599 or a
  // probability outside 0..100 (nothing is changed then).
  virtual void set(const chaos_triggers& t) = 0;
  // Rolls the dice for one command: the error code to answer with, or 0 to go on.
  virtual int roll(point p) = 0;
};

}  // namespace sluice
