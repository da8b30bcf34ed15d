// htpasswd.cpp — htpasswd parsing and password verification (see sluice/htpasswd.hpp).
//
// crypt(3)-family hashes go to libxcrypt's crypt_rn with a per-call crypt_data, so
// verify() is re-entrant. APR1 and {SHA} use OpenSSL's EVP digests. Nothing here keeps
// mutable state; all const members are thread-safe. Parse errors throw config_error.
#include "sluice/htpasswd.hpp"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "sluice/config.hpp"

namespace sluice {

bool constant_time_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  // CRYPTO_memcmp's running time depends only on the length, never on where bytes differ.
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

constexpr std::string_view apr1_magic = "$apr1$";
constexpr std::string_view sha1_prefix = "{SHA}";

bool has_nul(std::string_view s) {
  return s.find('\0') != std::string_view::npos;
}

// --- crypt(3) family through libxcrypt -----------------------------------------------------

bool crypt_matches(std::string_view password, const std::string& hash) {
  // crypt_rn takes C strings: a password with a NUL would be silently truncated.
  if (has_nul(password)) return false;
  auto data = std::make_unique<crypt_data>();  // ~32 KiB, zeroed: too large for the stack
  const std::string pw(password);
  const char* out = crypt_rn(pw.c_str(), hash.c_str(), data.get(), sizeof(crypt_data));
  // On failure libxcrypt returns NULL or a string starting with '*' that never equals a
  // valid hash; check explicitly anyway.
  if (out == nullptr || out[0] == '*') return false;
  return constant_time_equal(out, hash);
}

// True when libxcrypt can check a hash of this form (any enabled method, legacy included).
bool crypt_supports(const std::string& hash) {
  const int r = crypt_checksalt(hash.c_str());
  return r == CRYPT_SALT_OK || r == CRYPT_SALT_METHOD_LEGACY || r == CRYPT_SALT_TOO_CHEAP;
}

// --- APR1 ----------------------------------------------------------------------------------
//
// libxcrypt does not implement Apache's "$apr1$" (it is MD5-crypt with a different magic
// string, specific to Apache's APR). Rather than hand-roll MD5, the digest comes from
// OpenSSL's EVP interface; only APR's (public, fixed) mixing schedule is written out here,
// following apr_md5_encode() in apr-util.

class md5_ctx {
 public:
  md5_ctx() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_md5(), nullptr) != 1) ok_ = false;
  }
  void update(const void* p, std::size_t n) {
    if (ok_ && n > 0 && EVP_DigestUpdate(ctx_.get(), p, n) != 1) ok_ = false;
  }
  void update(std::string_view s) { update(s.data(), s.size()); }
  bool final(std::array<unsigned char, 16>& out) {
    unsigned int len = 0;
    if (!ok_ || EVP_DigestFinal_ex(ctx_.get(), out.data(), &len) != 1 || len != 16) return false;
    return true;
  }

 private:
  struct deleter {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  std::unique_ptr<EVP_MD_CTX, deleter> ctx_;
  bool ok_ = true;
};

constexpr char itoa64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void to64(std::string& out, unsigned long v, int n) {
  while (n-- > 0) {
    out.push_back(itoa64[v & 0x3f]);
    v >>= 6;
  }
}

// Returns the full "$apr1$salt$hash" for `password` with the salt taken from `setting`,
// or nullopt when a digest call fails.
std::optional<std::string> apr1_hash(std::string_view password, std::string_view setting) {
  std::string_view salt = setting.substr(apr1_magic.size());
  if (auto d = salt.find('$'); d != std::string_view::npos) salt = salt.substr(0, d);
  if (salt.size() > 8) salt = salt.substr(0, 8);

  std::array<unsigned char, 16> fin{};
  md5_ctx ctx;
  ctx.update(password);
  ctx.update(apr1_magic);
  ctx.update(salt);

  md5_ctx alt;
  alt.update(password);
  alt.update(salt);
  alt.update(password);
  if (!alt.final(fin)) return std::nullopt;
  for (std::size_t left = password.size(); left > 0; left -= std::min<std::size_t>(left, 16)) {
    ctx.update(fin.data(), std::min<std::size_t>(left, 16));
  }
  fin.fill(0);
  for (std::size_t i = password.size(); i != 0; i >>= 1) {
    if (i & 1) {
      ctx.update(fin.data(), 1);
    } else {
      ctx.update(password.data(), 1);
    }
  }
  if (!ctx.final(fin)) return std::nullopt;

  for (int i = 0; i < 1000; ++i) {
    md5_ctx round;
    if (i & 1) {
      round.update(password);
    } else {
      round.update(fin.data(), 16);
    }
    if (i % 3) round.update(salt);
    if (i % 7) round.update(password);
    if (i & 1) {
      round.update(fin.data(), 16);
    } else {
      round.update(password);
    }
    if (!round.final(fin)) return std::nullopt;
  }

  std::string out;
  out.reserve(apr1_magic.size() + salt.size() + 1 + 22);
  out.append(apr1_magic).append(salt).push_back('$');
  auto b = [&](int i) { return static_cast<unsigned long>(fin[static_cast<std::size_t>(i)]); };
  to64(out, (b(0) << 16) | (b(6) << 8) | b(12), 4);
  to64(out, (b(1) << 16) | (b(7) << 8) | b(13), 4);
  to64(out, (b(2) << 16) | (b(8) << 8) | b(14), 4);
  to64(out, (b(3) << 16) | (b(9) << 8) | b(15), 4);
  to64(out, (b(4) << 16) | (b(10) << 8) | b(5), 4);
  to64(out, b(11), 2);
  return out;
}

bool apr1_matches(std::string_view password, const std::string& hash) {
  auto computed = apr1_hash(password, hash);
  return computed && constant_time_equal(*computed, hash);
}

// --- {SHA} ---------------------------------------------------------------------------------

bool sha1_matches(std::string_view password, const std::string& secret) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int md_len = 0;
  if (EVP_Digest(password.data(), password.size(), md.data(), &md_len, EVP_sha1(), nullptr) != 1) {
    return false;
  }
  std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> b64{};
  const int n = EVP_EncodeBlock(b64.data(), md.data(), static_cast<int>(md_len));
  if (n <= 0) return false;
  const std::string_view expected = std::string_view(secret).substr(sha1_prefix.size());
  return constant_time_equal(
      std::string_view(reinterpret_cast<const char*>(b64.data()), static_cast<std::size_t>(n)),
      expected);
}

bool secret_matches(htpasswd::scheme kind, const std::string& secret, std::string_view password) {
  switch (kind) {
    case htpasswd::scheme::crypt:
      return crypt_matches(password, secret);
    case htpasswd::scheme::apr1:
      return apr1_matches(password, secret);
    case htpasswd::scheme::sha1:
      return sha1_matches(password, secret);
    case htpasswd::scheme::plain:
      return constant_time_equal(password, secret);
  }
  return false;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

[[noreturn]] void fail_at(const std::string& source, std::size_t line, std::string_view what) {
  std::string msg = source;
  msg.push_back(':');
  msg += std::to_string(line);
  msg += ": ";
  msg += what;
  throw config_error(msg);
}

}  // namespace

htpasswd htpasswd::parse(std::string_view text, const std::string& source) {
  htpasswd result;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    ++line_no;
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);

    std::size_t first = 0;
    while (first < line.size() && is_space(line[first]))
      ++first;
    if (first == line.size() || line[first] == '#') continue;

    if (has_nul(line)) fail_at(source, line_no, "NUL byte in line");
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) fail_at(source, line_no, "expected user:password");
    const std::string_view user = line.substr(0, colon);
    const std::string_view secret = line.substr(colon + 1);
    if (user.empty()) fail_at(source, line_no, "empty user name");
    for (char c : user) {
      if (is_space(c)) fail_at(source, line_no, "white space in user name");
    }
    if (secret.empty())
      fail_at(source, line_no, "empty password for user '" + std::string(user) + "'");

    entry e{scheme::plain, std::string(secret)};
    if (secret.starts_with(apr1_magic)) {
      const std::string_view rest = secret.substr(apr1_magic.size());
      const std::size_t d = rest.find('$');
      if (d == std::string_view::npos || d == 0 || d > 8 || rest.size() - d - 1 != 22) {
        fail_at(source, line_no, "malformed $apr1$ hash for user '" + std::string(user) + "'");
      }
      e.kind = scheme::apr1;
    } else if (secret.starts_with(sha1_prefix)) {
      if (secret.size() != sha1_prefix.size() + 28) {
        fail_at(source, line_no, "malformed {SHA} hash for user '" + std::string(user) + "'");
      }
      e.kind = scheme::sha1;
    } else if (secret.front() == '$') {
      if (!crypt_supports(e.secret)) {
        fail_at(source, line_no,
                "unsupported or malformed password hash for user '" + std::string(user) +
                    "' (plain-text passwords may not start with '$')");
      }
      e.kind = scheme::crypt;
    }

    if (!result.dummy_) result.dummy_ = e;
    auto [it, inserted] = result.entries_.emplace(std::string(user), std::move(e));
    if (!inserted) fail_at(source, line_no, "duplicate user '" + std::string(user) + "'");
  }
  return result;
}

htpasswd htpasswd::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw config_error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw config_error(path + ": read error");
  return parse(ss.str(), path);
}

bool htpasswd::verify(std::string_view user, std::string_view password) const {
  auto it = entries_.find(user);
  if (it == entries_.end()) {
    // Spend the same effort as for a real user, then refuse regardless of the result.
    if (dummy_) (void)secret_matches(dummy_->kind, dummy_->secret, password);
    return false;
  }
  return secret_matches(it->second.kind, it->second.secret, password);
}

bool htpasswd::has_user(std::string_view user) const {
  return entries_.contains(user);
}

std::optional<std::string> htpasswd::plain_secret(std::string_view user) const {
  auto it = entries_.find(user);
  if (it == entries_.end() || it->second.kind != scheme::plain) return std::nullopt;
  return it->second.secret;
}

std::string htpasswd_text_from_pairs(std::string_view pairs) {
  std::string out;
  std::size_t pos = 0;
  std::size_t index = 0;
  while (pos < pairs.size()) {
    while (pos < pairs.size() && is_space(pairs[pos]))
      ++pos;
    if (pos == pairs.size()) break;
    std::size_t end = pos;
    while (end < pairs.size() && !is_space(pairs[end]))
      ++end;
    const std::string_view item = pairs.substr(pos, end - pos);
    pos = end;
    ++index;
    const std::size_t colon = item.find(':');
    if (colon == std::string_view::npos) {
      throw config_error("credentials item " + std::to_string(index) +
                         ": expected user:password (no ':' found)");
    }
    if (colon == 0) {
      throw config_error("credentials item " + std::to_string(index) + ": empty user name");
    }
    out.append(item);
    out.push_back('\n');
  }
  return out;
}

}  // namespace sluice
