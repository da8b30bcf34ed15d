// sluice/listen.hpp — what every listener plugin needs to bind: listen addresses
// ("host:port", "[v6]:port", "unix:/path[:mode]"), the stale/live check of a unix socket
// file, and a TLS server context (TLS 1.2+).
//
// Used by the smtp, pop3 and http listeners, so the three accept the same address syntax
// and fail the same way. Startup code: the functions may throw (config_error for what the
// configuration got wrong, std::system_error for the file system); nothing here runs on
// the data plane.
#pragma once

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/ssl/context.hpp>

namespace sluice {

class config_node;

struct listen_address {
  bool unix_socket = false;
  std::string host;  // TCP: IP literal
  std::uint16_t port = 0;
  std::filesystem::path path;  // unix: socket file (absolute)
  unsigned mode = 0660;        // unix: permission bits
  std::string text;            // as configured, for messages
};

// Parses "127.0.0.1:1025", "[::1]:25", "unix:/run/smtp.sock" or "unix:/run/smtp.sock:660"
// ("*" and an empty host mean 0.0.0.0, "localhost" 127.0.0.1). Relative unix paths are
// resolved against base_dir. False (with why) on a bad value.
bool parse_listen_address(const std::string& text, const std::filesystem::path& base_dir,
                          listen_address& out, std::string& why);

// The `listen` key of a listener's config map: one address or a list of them, each parsed
// with parse_listen_address; `fallback` ("127.0.0.1:1025") when the key is absent. Throws
// config_error at the `listen` node (or at cfg when absent) for an empty list ("at least
// one address is needed") or a bad address ("<why>: \"<item>\"").
std::vector<listen_address> parse_listen_list(const config_node& cfg,
                                              const std::filesystem::path& config_dir,
                                              std::string_view fallback);

// The machine's host name (gethostname), or "localhost" when it has none: the default of a
// listener's `hostname` key.
std::string default_hostname();

// Whether `h` can be a listener's `hostname`: 1 to 253 letters, digits, '-', '.', '_' (it
// goes into greetings, Received fields and message ids, so nothing else may).
bool valid_hostname(std::string_view h) noexcept;

// `path` as written in the configuration: absolute stays, relative is taken from config_dir;
// "." elements are dropped (".." stays: past a symbolic link only the file system knows).
std::filesystem::path resolve_config_path(const std::filesystem::path& config_dir,
                                          const std::string& path);

// The directory a plugin keeps mail in (a store's database, a spool): created when missing
// (new components mode 0700), then checked: it must be a directory owned by this user or
// by root, and not writable by group or others unless sticky (/var/tmp itself is fine, a
// directory another local user created there beforehand is not: that user could read,
// replace or remove the files). Throws std::runtime_error naming the path and the reason.
void ensure_data_directory(const std::filesystem::path& dir);

// The cert/key pair of a listener's `tls` block. Always reads both keys (so neither is an
// "unknown key"); when `enabled` (the block's mode, text `mode`, turned TLS on) throws
// config_error at the block ("tls.mode <mode> needs tls.cert" / "... tls.key") when one is
// missing, else stores both resolved against config_dir. Leaves cert and key alone when not
// enabled.
void parse_tls_files(const config_node& tls, std::string_view mode, bool enabled,
                     const std::filesystem::path& config_dir, std::filesystem::path& cert,
                     std::filesystem::path& key);

// A listener's `tls` block: its `mode`, one of `modes` (the first, TLS off, is the default
// when the key is absent), and its cert/key pair through parse_tls_files (required unless
// the mode is the first). Returns the index of the mode in `modes`. Throws config_error at
// tls.mode for any other mode ("expected off, starttls or implicit", listing `modes`), and
// as parse_tls_files does. `modes` must not be empty.
std::size_t parse_tls_block(const config_node& tls, std::initializer_list<std::string_view> modes,
                            const std::filesystem::path& config_dir, std::filesystem::path& cert,
                            std::filesystem::path& key);

// Before binding a unix socket: refuses a path that is not a socket or that a live server
// answers on (config_error), removes a stale socket file (std::system_error if it cannot).
void prepare_unix_path(const listen_address& a);

// A TLS server context loaded from PEM files: TLS 1.2 as the minimum and, for TLS 1.2, only
// ECDHE suites with AEAD ciphers (Mozilla's "intermediate" list; RFC 9325 §4.1: no static
// RSA key exchange, no CBC). Throws config_error naming tls.cert / tls.key when a file
// cannot be loaded or they do not match.
std::shared_ptr<boost::asio::ssl::context> make_tls_server_context(
    const std::filesystem::path& cert, const std::filesystem::path& key);
// The same, with the error reported at the `cert` or `key` entry of `tls` (the listener's
// tls map), so it carries file:line:col. Listeners call it under check-config too: a file
// that serve would refuse is refused there.
std::shared_ptr<boost::asio::ssl::context> make_tls_server_context(
    const config_node& tls, const std::filesystem::path& cert, const std::filesystem::path& key);

}  // namespace sluice
