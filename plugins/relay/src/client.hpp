// plugins/relay/src/client.hpp — one SMTP client connection (RFC 5321) with STARTTLS
// (RFC 3207) or implicit TLS (RFC 8314), AUTH (RFC 4954), and one mail transaction at a
// time with PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152) and SMTPUTF8
// (RFC 6531).
//
// Threading: a connection is used by one coroutine at a time (the pool hands it over
// under a mutex); its socket lives on the host's io_context and every operation is
// bounded by its RFC 5321 §4.5.3.2 timeout (timer raced against the I/O).
//
// Failure: nothing throws for network or protocol outcomes; open() and transact() return
// a session_error / per-recipient replies. A connection that saw any I/O or protocol
// error is marked broken and never reused.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>

#include "protocol.hpp"
#include "sluice/message.hpp"

namespace sluice::relay {

enum class security { none, starttls, starttls_required, tls };
std::string_view to_string(security s);

struct timeouts {
  std::chrono::milliseconds connect{30000};
  std::chrono::milliseconds greeting{300000};    // §4.5.3.2.1: 5 minutes
  std::chrono::milliseconds command{300000};     // EHLO, STARTTLS, AUTH, MAIL, RCPT: 5 minutes
  std::chrono::milliseconds data_init{120000};   // §4.5.3.2.4: 2 minutes
  std::chrono::milliseconds data_block{180000};  // §4.5.3.2.5: 3 minutes per write
  std::chrono::milliseconds data_end{600000};    // §4.5.3.2.6: 10 minutes
};

struct auth_config {
  std::optional<mechanism> mech;  // nullopt: the strongest the server offers
  std::string username;
  std::string password;
  std::string token;  // XOAUTH2 bearer token
  bool configured() const { return !username.empty() || !token.empty(); }
};

// How to open one connection.
struct session_params {
  std::string host;     // name used for TLS SNI/verification and in messages
  std::string address;  // IP literal to connect to
  std::uint16_t port = 25;
  security sec = security::starttls;
  bool verify = true;       // certificate and host name verification
  std::string verify_name;  // the name the certificate must match (usually host)
  std::shared_ptr<boost::asio::ssl::context> tls_ctx;
  std::string helo;
  const auth_config* auth = nullptr;  // nullptr or unconfigured: no AUTH
  bool allow_plaintext_auth = false;
  relay::timeouts timeouts;
};

// Why a connection could not be opened or used: what a verdict and the log say.
struct session_error {
  // The upstream's reply, when the failure is one (code 0 for local/network failures).
  smtp_reply reply;
  bool permanent = false;  // a 5xx that retrying cannot fix
  // One sentence for the log and the verdict: what happened and which setting changes it.
  std::string text;
  // A connection-level failure (connect, greeting, TLS): another MX host may do better.
  bool try_next_host = true;
};

// The outcome of RCPT for one recipient and, after DATA, its final reply.
struct rcpt_outcome {
  std::string rcpt;
  smtp_reply reply;  // RCPT's reply if it failed, else the reply to the end of DATA
  bool delivered() const { return reply.code >= 200 && reply.code < 300; }
};

class connection {
 public:
  explicit connection(boost::asio::io_context& io);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Connects, reads the greeting, EHLO (HELO fallback), STARTTLS and AUTH as params say.
  boost::asio::awaitable<std::optional<session_error>> open(session_params p);

  // One transaction: MAIL, RCPT for each, DATA with the message streamed from msg (edits
  // applied, dot-stuffed). Fills outcomes (one per rcpt, same order). A failure that hits
  // every recipient (MAIL refused, DATA refused, connection lost) comes back as
  // session_error and outcomes is left empty. With all_or_nothing, the message goes to
  // every recipient or to none: when the server refuses some of them, nothing is sent
  // (RSET, or, once a pipelined DATA got its 354, the connection is dropped so the server
  // discards the unfinished transaction) and the accepted ones get the refusal too.
  boost::asio::awaitable<std::optional<session_error>> transact(
      const std::string& mail_from, const std::vector<std::string>& rcpts, const message& msg,
      std::uint64_t size, bool eight_bit, bool utf8, std::vector<rcpt_outcome>& outcomes,
      bool all_or_nothing = false);

  // RSET, for reuse (true when the server answered 250).
  boost::asio::awaitable<bool> reset();
  // QUIT and close (bounded by a short timeout).
  boost::asio::awaitable<void> quit();
  void close();

  bool usable() const { return !broken_ && sock_.is_open(); }
  const capabilities& caps() const { return caps_; }
  const std::string& peer() const { return peer_; }
  const std::string& tls_version() const { return tls_version_; }
  const std::string& tls_cipher() const { return tls_cipher_; }
  const std::string& auth_mechanism() const { return auth_mech_; }
  bool tls_verified() const { return tls_verified_; }
  unsigned transactions() const { return transactions_; }
  std::chrono::steady_clock::time_point idle_since() const { return idle_since_; }
  void touch() { idle_since_ = std::chrono::steady_clock::now(); }

 private:
  boost::asio::awaitable<bool> write(std::string_view data, std::chrono::milliseconds timeout);
  boost::asio::awaitable<smtp_reply> read_reply(std::chrono::milliseconds timeout);
  boost::asio::awaitable<smtp_reply> command(std::string line, std::chrono::milliseconds timeout);
  boost::asio::awaitable<std::optional<session_error>> handshake(const session_params& p);
  boost::asio::awaitable<std::optional<session_error>> ehlo(const session_params& p);
  boost::asio::awaitable<std::optional<session_error>> authenticate(const session_params& p);
  session_error lost(std::string_view during) const;

  boost::asio::ip::tcp::socket sock_;
  std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
  reply_parser parser_;
  capabilities caps_;
  std::string peer_;
  std::string tls_version_, tls_cipher_, auth_mech_;
  std::string last_error_;  // the I/O error behind the last failed read/write
  relay::timeouts timeouts_;
  bool tls_verified_ = false;
  bool broken_ = false;
  unsigned transactions_ = 0;
  std::chrono::steady_clock::time_point idle_since_{};
};

}  // namespace sluice::relay
