// plugins/smtp/src/chaos.hpp — the `chaos` service (sluice/chaos.hpp) and its config.
//
// Mailpit's chaos triggers: with a probability, the SMTP listener answers MAIL, RCPT or
// AUTH with a configured error code. The service is registered by this plugin (plugin:
// chaos under services:) and used by every SMTP listener that names it (or, without a
// `chaos:` key, by all of them when exactly one chaos service exists); the HTTP API reads
// and replaces its triggers at run time.
//
// Threading: get/set/roll may race freely; each trigger is one atomic word, so a roll
// never sees a code of one setting and the probability of another.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "sluice/chaos.hpp"
#include "sluice/host.hpp"

namespace sluice::smtp {

class chaos_impl final : public chaos_service {
 public:
  chaos_triggers get() const override;
  void set(const chaos_triggers& t) override;
  int roll(point p) override;

 private:
  static std::uint32_t pack(const chaos_trigger& t) noexcept;
  static chaos_trigger unpack(std::uint32_t v) noexcept;
  std::atomic<std::uint32_t>& slot(point p) noexcept;

  std::atomic<std::uint32_t> sender_{pack({})};
  std::atomic<std::uint32_t> recipient_{pack({})};
  std::atomic<std::uint32_t> authentication_{pack({})};
};

// Parses Mailpit's trigger string "Sender:451:50,Recipient:451:50,Authentication:535:10"
// (names case-insensitive, any subset). Throws std::invalid_argument with a message.
chaos_triggers parse_chaos_triggers(std::string_view text);

// The service factory: keys `triggers` (Mailpit's string) or `sender`, `recipient`,
// `authentication`, each {error_code, probability}.
std::shared_ptr<service> make_chaos_service(instance_context& ctx);

// The reply text Mailpit gives for a trigger ("Chaos sender error", …) and an enhanced
// status code of the right class for it.
std::string_view chaos_text(chaos_service::point p) noexcept;
std::string chaos_enhanced(int code, chaos_service::point p);

}  // namespace sluice::smtp
