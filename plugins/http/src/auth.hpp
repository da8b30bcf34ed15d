// plugins/http/src/auth.hpp — HTTP Basic authentication (RFC 7617) against htpasswd
// credentials, with a short-lived cache of successful checks.
//
// A credential_set holds an htpasswd file and/or Mailpit-style "user:pass" pairs. Checking
// a password costs a deliberately slow hash (bcrypt, SHA-crypt), so check() runs it on the
// host's worker pool, never on an I/O thread, and remembers a success for `ttl`: the cache
// maps the user name to an HMAC-SHA-256 of the password under a per-process random key,
// compared in constant time. Failures are never cached (each costs a full hash, which is
// what slows a guesser down). The cache is bounded; when full it is cleared.
//
// Threading: immutable after construction except the cache, which a mutex guards; check()
// may run concurrently from any number of connections. Never logs user names' passwords or
// the Authorization header.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>

#include "sluice/host.hpp"
#include "sluice/htpasswd.hpp"

namespace sluice::http {

struct basic_credentials {
  std::string user;
  std::string password;
};

// Parses an Authorization field value "Basic <base64(user:pass)>" (scheme name case-
// insensitive). Nothing for another scheme or malformed input.
std::optional<basic_credentials> parse_basic_authorization(std::string_view value);

class credential_set {
 public:
  // Throws config_error when the file cannot be read or an entry is malformed. Returns
  // null when neither a file nor pairs are given (no authentication).
  static std::shared_ptr<credential_set> load(const std::filesystem::path& file,
                                              std::string_view pairs,
                                              std::chrono::milliseconds ttl);

  // The user name when `authorization` (the header's value, may be empty) holds valid
  // credentials; nothing otherwise. Completes on the caller's executor.
  boost::asio::awaitable<std::optional<std::string>> check(sluice::host& h,
                                                           std::string authorization);

  // Synchronous, uncached check (tests, and the worker-side half of check()).
  bool verify(std::string_view user, std::string_view password) const;

  std::size_t cached() const;

 private:
  credential_set() = default;
  std::string digest(std::string_view user, std::string_view password) const;
  bool cache_hit(const std::string& user, const std::string& d);
  void remember(const std::string& user, std::string d);

  htpasswd file_;
  htpasswd pairs_;
  bool has_file_ = false;
  bool has_pairs_ = false;
  std::chrono::milliseconds ttl_{0};
  std::string key_;  // random HMAC key, per process

  struct entry {
    std::string digest;
    std::chrono::steady_clock::time_point expires;
  };
  static constexpr std::size_t max_cached = 4096;
  mutable std::mutex mu_;
  std::unordered_map<std::string, entry> cache_;
};

}  // namespace sluice::http
