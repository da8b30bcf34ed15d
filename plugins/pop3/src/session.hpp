// plugins/pop3/src/session.hpp — one POP3 client connection: the AUTHORIZATION /
// TRANSACTION / UPDATE state machine of RFC 1939 with CAPA and response codes (RFC 2449,
// 3206), STLS (RFC 2595) and AUTH PLAIN (RFC 5034, 4616).
//
// A session is a coroutine on its own strand, plus a watchdog coroutine on the same strand
// that enforces the idle and total timeouts by cancelling the transport (the SDK's
// session_lifecycle, which also counts the connection and holds the drain gate). Everything in a
// session runs on that strand; the only cross-thread entry is the drain gate's on_close
// callback, which posts to it. The session holds the drain gate for its whole life, the
// server_state by shared_ptr, itself (shared_from_this) in both coroutines, and, once
// logged in, the exclusive lock on its maildrop until it ends.
//
// Failure: protocol errors become -ERR replies; mailbox service failures become
// -ERR [SYS/TEMP]; I/O errors and timeouts end the session without entering UPDATE (no
// message is deleted). Nothing is thrown out of run().
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include "maildrop.hpp"
#include "server.hpp"
#include "sluice/acceptor.hpp"
#include "sluice/session.hpp"
#include "sluice/transport.hpp"

namespace sluice::pop3 {

using peer_info = sluice::connection_peer;
using sluice::socket_transport;
using sluice::transport;

class session : public std::enable_shared_from_this<session> {
 public:
  session(std::shared_ptr<server_state> st, std::unique_ptr<transport> t,
          boost::asio::any_io_executor ex, peer_info peer);
  ~session();

  // Runs the whole conversation; never throws. Spawn on the executor given above.
  boost::asio::awaitable<void> run();

 private:
  enum class state : std::uint8_t { authorization, transaction };
  enum class line_status : std::uint8_t { got, need_more, too_long };

  boost::asio::awaitable<void> run_inner();
  void finish();

  // I/O. read_more() first flushes pending replies (PIPELINING: replies to a batch of
  // commands go out together when the input is drained).
  boost::asio::awaitable<bool> read_more();
  boost::asio::awaitable<void> flush();
  boost::asio::awaitable<void> on_read_failure();
  line_status take_line(std::string& line, std::size_t max_length);
  void ok(std::string_view text);
  void err(std::string_view text);
  // err(), counted as a client error (count_error(): the session may end after it).
  void refuse(std::string_view text);
  bool count_error();  // true when the session must end (too many errors)

  boost::asio::awaitable<void> dispatch(const std::string& line);

  // AUTHORIZATION state.
  void cmd_user(std::string_view args);
  boost::asio::awaitable<void> cmd_pass(std::string_view args);
  boost::asio::awaitable<void> cmd_apop(std::string_view args);
  boost::asio::awaitable<void> cmd_auth(std::string_view args);
  boost::asio::awaitable<void> cmd_stls(std::string_view args);
  // Both states.
  void cmd_capa();
  boost::asio::awaitable<void> cmd_quit();
  // TRANSACTION state.
  boost::asio::awaitable<void> cmd_stat();
  boost::asio::awaitable<void> cmd_list(std::string_view args, bool uidl);
  boost::asio::awaitable<void> cmd_retr(std::string_view args);
  boost::asio::awaitable<void> cmd_top(std::string_view args);
  void cmd_dele(std::string_view args);
  void cmd_rset();

  // Resolves a message-number argument; replies -ERR and returns nullptr when it is not a
  // number, out of range or (unless allow_deleted) marked deleted.
  maildrop_entry* message_arg(std::string_view arg, std::uint64_t& n);
  // Fills in the maildrop's message sizes; false once it replied [SYS/TEMP] because the
  // store failed (`what`, the command, goes into the log).
  boost::asio::awaitable<bool> fill_sizes(std::string_view what);
  // The messages not marked deleted, and their octets (after fill_sizes()).
  struct totals {
    std::uint64_t count = 0;
    std::uint64_t octets = 0;
  };
  totals undeleted_totals();
  // Message n's text from the maildrop; nullopt once it replied -ERR: [SYS/TEMP] when the
  // store failed (`what`, the command, goes into the log), or "no longer in the store".
  boost::asio::awaitable<std::optional<std::string>> fetch_message(std::uint64_t n,
                                                                   std::string_view what);
  // Sends raw (normalized, dot-stuffed, terminated) after `first_line`.
  boost::asio::awaitable<void> send_multiline(std::string first_line, std::string_view raw);

  bool cleartext_allowed() const;
  std::string cleartext_refusal() const;
  boost::asio::awaitable<bool> check_password(std::string user, std::string password);
  boost::asio::awaitable<void> login(std::string user, std::string_view mechanism);
  // Counts a failed login and replies `reply`, or closes after max_auth_failures.
  void auth_failed(std::string_view mechanism,
                   std::string_view reply = "[AUTH] invalid user name or password");
  void store_failure(std::string_view what, const std::string& error);

  std::shared_ptr<server_state> st_;
  const settings& cfg_;
  std::unique_ptr<transport> t_;
  // Deadlines and watchdog, connection slot, drain gate (references *st_ and *t_).
  sluice::session_lifecycle life_;
  peer_info peer_;
  std::string id_;
  sluice::logger log_;

  // Input: bytes [in_pos_, in_.size()) are unread. Output: replies not yet written.
  std::string in_;
  std::size_t in_pos_ = 0;
  std::string out_;
  bool skipping_long_line_ = false;

  bool closing_ = false;
  unsigned errors_ = 0;
  unsigned auth_failures_ = 0;

  state state_ = state::authorization;
  std::string timestamp_;            // APOP greeting timestamp; empty when APOP is not offered
  std::optional<std::string> user_;  // after USER, for PASS
  std::string login_user_;
  maildrop_locks::lock lock_;
  std::optional<maildrop> drop_;
  unsigned retrieved_ = 0;
  std::size_t deleted_ = 0;
};

}  // namespace sluice::pop3
