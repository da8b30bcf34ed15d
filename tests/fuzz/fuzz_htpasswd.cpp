// fuzz_htpasswd.cpp — libFuzzer target for sluice::htpasswd parsing and verification.
// Input: htpasswd text, then optionally "\0user\0password". Only config_error may escape
// parse(). verify() runs only when every hash in the text is cheap to compute (a fuzzed
// "$2y$31$" would take hours by design, which is not a bug).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/config.hpp"
#include "sluice/htpasswd.hpp"

namespace {

bool cheap_secret(std::string_view s) {
  if (s.empty() || s.front() != '$') return true;  // plain, {SHA}
  if (s.starts_with("$1$") || s.starts_with("$apr1$")) return true;
  if (s.starts_with("$5$") || s.starts_with("$6$"))
    return s.find("rounds=") == std::string_view::npos;
  if (s.size() >= 7 && s.starts_with("$2") && s[3] == '$' && s[4] == '0' && s[5] >= '4' &&
      s[5] <= '5' && s[6] == '$') {
    return true;
  }
  return false;
}

bool all_cheap(std::string_view text) {
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    if (auto c = line.find(':'); c != std::string_view::npos && !cheap_secret(line.substr(c + 1))) {
      return false;
    }
    pos = end + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string_view text = in, user, password;
  if (auto z = in.find('\0'); z != std::string_view::npos) {
    text = in.substr(0, z);
    std::string_view rest = in.substr(z + 1);
    auto z2 = rest.find('\0');
    user = rest.substr(0, z2);
    if (z2 != std::string_view::npos) password = rest.substr(z2 + 1);
  }
  (void)sluice::constant_time_equal(user, password);
  try {
    (void)sluice::htpasswd_text_from_pairs(text);
  } catch (const sluice::config_error&) {
  }
  sluice::htpasswd h;
  try {
    h = sluice::htpasswd::parse(text, "fuzz.htpasswd");
  } catch (const sluice::config_error& e) {
    if (std::string_view(e.what()).substr(0, 14) != "fuzz.htpasswd:") __builtin_trap();
    return 0;
  }
  const bool known = h.has_user(user);
  if (!known && h.plain_secret(user)) __builtin_trap();
  if (all_cheap(text)) {
    const bool ok = h.verify(user, password);
    if (ok && !known) __builtin_trap();
    if (auto plain = h.plain_secret(user); plain && ok != (*plain == password)) __builtin_trap();
  }
  return 0;
}
