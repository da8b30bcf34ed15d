// plugins/smtp/src/chaos.cpp — see chaos.hpp.
#include "chaos.hpp"

#include <charconv>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/text.hpp"

namespace sluice::smtp {
namespace {

void validate(const chaos_trigger& t, std::string_view which) {
  if (t.error_code < 400 || t.error_code > 599) {
    throw std::invalid_argument(std::string(which) + ": error code " +
                                std::to_string(t.error_code) + " is not between 400 and 599");
  }
  if (t.probability < 0 || t.probability > 100) {
    throw std::invalid_argument(std::string(which) + ": probability " +
                                std::to_string(t.probability) + " is not between 0 and 100");
  }
}

int to_int(std::string_view s, std::string_view what) {
  int v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) {
    throw std::invalid_argument(std::string(what) + ": expected a number, got \"" + std::string(s) +
                                "\"");
  }
  return v;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    out.push_back(trim(s.substr(start, pos - start)));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

}  // namespace

std::uint32_t chaos_impl::pack(const chaos_trigger& t) noexcept {
  return (static_cast<std::uint32_t>(t.error_code) << 8) |
         static_cast<std::uint32_t>(t.probability);
}

chaos_trigger chaos_impl::unpack(std::uint32_t v) noexcept {
  return {static_cast<int>(v >> 8), static_cast<int>(v & 0xff)};
}

std::atomic<std::uint32_t>& chaos_impl::slot(point p) noexcept {
  switch (p) {
    case point::sender:
      return sender_;
    case point::recipient:
      return recipient_;
    case point::authentication:
      break;
  }
  return authentication_;
}

chaos_triggers chaos_impl::get() const {
  return {unpack(sender_.load()), unpack(recipient_.load()), unpack(authentication_.load())};
}

void chaos_impl::set(const chaos_triggers& t) {
  // Validate all before storing any, so a bad request changes nothing.
  validate(t.sender, "Sender");
  validate(t.recipient, "Recipient");
  validate(t.authentication, "Authentication");
  sender_.store(pack(t.sender));
  recipient_.store(pack(t.recipient));
  authentication_.store(pack(t.authentication));
}

int chaos_impl::roll(point p) {
  const chaos_trigger t = unpack(slot(p).load(std::memory_order_relaxed));
  if (t.probability <= 0) return 0;
  thread_local std::mt19937 rng{std::random_device{}()};
  std::uniform_int_distribution<int> d(1, 100);
  return d(rng) <= t.probability ? t.error_code : 0;
}

chaos_triggers parse_chaos_triggers(std::string_view text) {
  chaos_triggers out;
  if (trim(text).empty()) return out;
  for (std::string_view item : split(text, ',')) {
    if (item.empty()) continue;
    auto f = split(item, ':');
    if (f.size() != 3) {
      throw std::invalid_argument(
          "trigger \"" + std::string(item) +
          "\": expected <Sender|Recipient|Authentication>:<code>:<percent>");
    }
    chaos_trigger t{to_int(f[1], "error code"), to_int(f[2], "probability")};
    if (iequals(f[0], "sender")) {
      validate(t, "Sender");
      out.sender = t;
    } else if (iequals(f[0], "recipient")) {
      validate(t, "Recipient");
      out.recipient = t;
    } else if (iequals(f[0], "authentication")) {
      validate(t, "Authentication");
      out.authentication = t;
    } else {
      throw std::invalid_argument("unknown trigger \"" + std::string(f[0]) +
                                  "\" (expected Sender, Recipient or Authentication)");
    }
  }
  return out;
}

std::shared_ptr<service> make_chaos_service(instance_context& ctx) {
  chaos_triggers t;
  if (auto s = ctx.config.find("triggers")) {
    try {
      t = parse_chaos_triggers(s->as_string());
    } catch (const std::invalid_argument& e) {
      s->fail(e.what());
    }
  }
  auto read = [&](std::string_view key, chaos_trigger& into) {
    auto n = ctx.config.find(key);
    if (!n) return;
    if (!n->is_map()) n->fail("expected a map with error_code and probability");
    into.error_code = static_cast<int>(n->get_int("error_code", into.error_code));
    into.probability = static_cast<int>(n->get_int("probability", into.probability));
    try {
      validate(into, key);
    } catch (const std::invalid_argument& e) {
      n->fail(e.what());
    }
  };
  read("sender", t.sender);
  read("recipient", t.recipient);
  read("authentication", t.authentication);
  auto svc = std::make_shared<chaos_impl>();
  svc->set(t);
  if (ctx.check_only) {
    ctx.host.services().declare(chaos_service::kind, ctx.name);
  } else {
    ctx.host.services().add(chaos_service::kind, ctx.name, svc);
  }
  return svc;
}

std::string_view chaos_text(chaos_service::point p) noexcept {
  switch (p) {
    case chaos_service::point::sender:
      return "Chaos sender error";
    case chaos_service::point::recipient:
      return "Chaos recipient error";
    case chaos_service::point::authentication:
      break;
  }
  return "Chaos authentication error";
}

std::string chaos_enhanced(int code, chaos_service::point p) {
  // RFC 3463: class from the basic code; subject 7 (security) for authentication.
  const char cls = code >= 500 ? '5' : '4';
  std::string out(1, cls);
  out += p == chaos_service::point::authentication ? ".7.0" : ".0.0";
  return out;
}

}  // namespace sluice::smtp
