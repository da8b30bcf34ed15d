// external.hpp — the external engines: SpamAssassin's spamd and rspamd.
//
// spamd: the SPAMC/1.5 protocol (spamd/PROTOCOL in SpamAssassin): one request per
// connection, "REPORT SPAMC/1.5" (or SYMBOLS) with Content-length and an optional User,
// the message, then the reply "SPAMD/1.1 0 EX_OK", a "Spam: True ; 7.5 / 5.0" header and
// the report (each rule with its points and description) or the symbol list.
//
// rspamd: its HTTP protocol, POST /checkv2 with the message as the body and the envelope
// in request headers (From, Rcpt per recipient, IP, Helo, Hostname, User, Queue-Id), and
// the JSON reply (action, score, required_score, symbols, subject).
//
// Both run over TCP ("host:port", "[v6]:port") or a unix socket ("unix:/path"), on the
// caller's executor, with one deadline for the whole exchange (connect, write, read) and a
// bound on the reply size. Failure: any I/O error, timeout, bad status or unparseable
// reply throws engine_error with a message safe to show.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include "result.hpp"
#include "sluice/message.hpp"

namespace sluice::spam {

class engine_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct engine_endpoint {
  bool unix_socket = false;
  std::string host;  // TCP: host name or IP literal
  std::string port;
  std::string path;  // unix
  std::string text;  // as configured
};

// Parses "host:port", "[v6]:port" or "unix:/path". False on a bad value.
bool parse_engine_endpoint(const std::string& text, engine_endpoint& out);

struct spamd_options {
  engine_endpoint endpoint;
  std::string user;    // User header (per-user preferences), empty for none
  bool report = true;  // REPORT (scores and descriptions) or SYMBOLS (names only)
  std::chrono::milliseconds timeout{30000};
  std::size_t max_reply = 1024 * 1024;
};

struct rspamd_options {
  engine_endpoint endpoint;
  std::string path = "/checkv2";
  std::string password;  // Password header (controller), empty for none
  std::chrono::milliseconds timeout{30000};
  std::size_t max_reply = 4 * 1024 * 1024;
};

// The message bytes as they leave (edits applied) go to the engine; the envelope supplies
// rspamd's headers.
boost::asio::awaitable<scan_result> spamd_check(boost::asio::any_io_executor ex,
                                                const spamd_options& opt, std::string message);
boost::asio::awaitable<scan_result> rspamd_check(boost::asio::any_io_executor ex,
                                                 const rspamd_options& opt, std::string message,
                                                 const envelope& env, std::string queue_id);

// Parsers, exposed for tests.
scan_result parse_spamd_reply(std::string_view reply, bool report);
scan_result parse_rspamd_reply(std::string_view json_body);

}  // namespace sluice::spam
