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
#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

namespace sluice {

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

// Before binding a unix socket: refuses a path that is not a socket or that a live server
// answers on (config_error), removes a stale socket file (std::system_error if it cannot).
void prepare_unix_path(const listen_address& a);

// A TLS server context with TLS 1.2 as the minimum, loaded from PEM files. Throws
// config_error naming tls.cert / tls.key when a file cannot be loaded or they do not match.
std::shared_ptr<boost::asio::ssl::context> make_tls_server_context(
    const std::filesystem::path& cert, const std::filesystem::path& key);

}  // namespace sluice
