// sluice/htpasswd.hpp — Apache-style htpasswd credential files, for AUTH in SMTP/POP3/HTTP.
//
// A file holds one "user:secret" per line; '#' comments and blank lines are skipped. The
// secret is one of: bcrypt ($2a$/$2b$/$2y$), SHA-512-crypt ($6$), SHA-256-crypt ($5$),
// MD5-crypt ($1$) or any other scheme libxcrypt accepts ($y$ yescrypt, …), all checked with
// libxcrypt's crypt_rn; Apache's APR1 ($apr1$); {SHA} (base64 SHA-1); or plain text (what
// `htpasswd -p` writes). A secret that starts with '$' but names no scheme we can check is a
// load error rather than silently becoming a plain-text password. Traditional 13-character
// DES crypt is not recognised: such a secret is treated as plain text.
//
// Threading: an htpasswd object is immutable after load/parse; verify() and the other
// const members are safe to call from any number of threads at once. Hash checks are slow
// on purpose (bcrypt, SHA-crypt): call verify() from the worker pool, not an I/O thread.
//
// Failure: load/parse throw sluice::config_error ("path:line: what"); verify() never throws
// for bad input — it returns false. An unknown user still costs one hash check (against
// the secret of the first entry of the file, result discarded), so response time does not
// tell which users exist.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace sluice {

// Compares in time that depends only on the lengths: when a.size() != b.size() it returns
// false at once, so the length (not the content) of a secret can leak through timing.
bool constant_time_equal(std::string_view a, std::string_view b) noexcept;

class htpasswd {
 public:
  enum class scheme { crypt, apr1, sha1, plain };

  htpasswd() = default;

  // Reads and parses a file; errors name the file and line.
  static htpasswd load(const std::string& path);
  // Parses htpasswd text; `source` names it in errors ("source:line: what").
  static htpasswd parse(std::string_view text, const std::string& source);

  // True when `user` exists and `password` matches its secret.
  bool verify(std::string_view user, std::string_view password) const;
  bool has_user(std::string_view user) const;
  // The secret of a plain-text entry (CRAM-MD5 needs it); nullopt for hashed or absent users.
  std::optional<std::string> plain_secret(std::string_view user) const;
  std::size_t size() const { return entries_.size(); }

 private:
  struct entry {
    scheme kind;
    std::string secret;
  };
  std::map<std::string, entry, std::less<>> entries_;
  // Checked when the user is unknown, so that a miss costs as much as a typical hit.
  std::optional<entry> dummy_;
};

// Turns a Mailpit-style credentials string ("user:pass user2:pass2", items separated by
// any whitespace; a pass may itself be a hash) into htpasswd text, one line per item, for
// htpasswd::parse. Throws config_error naming the item's position (never its content,
// which may be a password) when an item has no ':' or an empty user name.
std::string htpasswd_text_from_pairs(std::string_view pairs);

}  // namespace sluice
