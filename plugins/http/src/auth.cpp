// plugins/http/src/auth.cpp — see auth.hpp.
#include "auth.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <stdexcept>

#include "sluice/base64.hpp"
#include "sluice/config.hpp"
#include "sluice/text.hpp"

namespace sluice::http {

std::optional<basic_credentials> parse_basic_authorization(std::string_view value) {
  value = trim(value);
  if (value.size() < 6 || !iequals(value.substr(0, 5), "basic") ||
      (value[5] != ' ' && value[5] != '\t')) {
    return std::nullopt;
  }
  value = trim(value.substr(6));
  if (value.empty() || value.size() > 4096) return std::nullopt;
  auto decoded = base64_decode(value, base64_padding::optional);
  if (!decoded) return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return basic_credentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

std::shared_ptr<credential_set> credential_set::load(const std::filesystem::path& file,
                                                     std::string_view pairs,
                                                     std::chrono::milliseconds ttl) {
  if (file.empty() && trim(pairs).empty()) return nullptr;
  std::shared_ptr<credential_set> c(new credential_set());
  if (!file.empty()) {
    c->file_ = htpasswd::load(file.string());
    c->has_file_ = true;
  }
  if (!trim(pairs).empty()) {
    c->pairs_ = htpasswd::parse(htpasswd_text_from_pairs(pairs), "credentials");
    c->has_pairs_ = true;
  }
  if (c->file_.size() + c->pairs_.size() == 0) {
    throw config_error("no credentials in " + (file.empty() ? "auth" : file.string()));
  }
  c->ttl_ = ttl;
  std::array<unsigned char, 32> key{};
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    throw std::runtime_error("no randomness for the credential cache key");
  }
  c->key_.assign(reinterpret_cast<const char*>(key.data()), key.size());
  return c;
}

bool credential_set::verify(std::string_view user, std::string_view password) const {
  // Pairs win over the file for a user named in both (they come from the environment,
  // which an operator sets last).
  if (has_pairs_ && pairs_.has_user(user)) return pairs_.verify(user, password);
  if (has_file_) return file_.verify(user, password);
  return pairs_.verify(user, password);  // unknown user: still one hash
}

std::string credential_set::digest(std::string_view user, std::string_view password) const {
  std::string data;
  data.reserve(user.size() + password.size() + 1);
  data.append(user).push_back('\0');
  data.append(password);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &len);
  OPENSSL_cleanse(data.data(), data.size());
  return std::string(reinterpret_cast<const char*>(out), len);
}

bool credential_set::cache_hit(const std::string& user, const std::string& d) {
  if (ttl_.count() <= 0) return false;
  std::lock_guard lock(mu_);
  auto it = cache_.find(user);
  if (it == cache_.end()) return false;
  if (it->second.expires <= std::chrono::steady_clock::now()) {
    cache_.erase(it);
    return false;
  }
  return constant_time_equal(it->second.digest, d);
}

void credential_set::remember(const std::string& user, std::string d) {
  if (ttl_.count() <= 0) return;
  std::lock_guard lock(mu_);
  if (cache_.size() >= max_cached) cache_.clear();  // bounded; a miss only costs a hash
  cache_[user] = entry{std::move(d), std::chrono::steady_clock::now() + ttl_};
}

std::size_t credential_set::cached() const {
  std::lock_guard lock(mu_);
  return cache_.size();
}

boost::asio::awaitable<std::optional<std::string>> credential_set::check(
    sluice::host& h, std::string authorization) {
  auto creds = parse_basic_authorization(authorization);
  OPENSSL_cleanse(authorization.data(), authorization.size());
  if (!creds) co_return std::nullopt;
  std::string d = digest(creds->user, creds->password);
  if (cache_hit(creds->user, d)) {
    OPENSSL_cleanse(creds->password.data(), creds->password.size());
    co_return creds->user;
  }
  // The hash is slow on purpose: run it on the worker pool.
  auto c = std::make_shared<basic_credentials>(std::move(*creds));
  bool ok = co_await sluice::offload(h, [this, c]() { return verify(c->user, c->password); });
  OPENSSL_cleanse(c->password.data(), c->password.size());
  if (!ok) co_return std::nullopt;
  remember(c->user, std::move(d));
  co_return c->user;
}

}  // namespace sluice::http
