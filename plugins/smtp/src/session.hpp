// plugins/smtp/src/session.hpp — one SMTP/LMTP client connection (RFC 5321, 1870, 2033,
// 2034, 2920, 3030, 3207, 4954, 6152, 6531; Postfix XCLIENT; HAProxy PROXY v1/v2).
//
// A session is a coroutine on its own strand, plus a watchdog coroutine on the same strand
// that enforces the idle and total timeouts by cancelling the transport (the SDK's
// session_lifecycle, which also counts the connection and holds the drain gate). Everything in a
// session runs on that strand; the only cross-thread entry is the drain gate's on_close
// callback, which posts to it. The session holds the drain gate for its whole life, the
// server_state by shared_ptr, and itself (shared_from_this) in both coroutines.
//
// Failure: protocol errors become SMTP replies; I/O errors and timeouts end the session
// (with a 421 when the peer can still hear it). Nothing is thrown out of run().
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include "command.hpp"
#include "server.hpp"
#include "sluice/acceptor.hpp"
#include "sluice/message.hpp"
#include "sluice/session.hpp"
#include "sluice/transport.hpp"

namespace sluice::smtp {

// The session's input bytes. Unlike std::string, growing it for a read does not zero the
// new space (that memset showed up at ~4 % of CPU under load). Not thread-safe.
class input_buffer {
 public:
  const char* data() const noexcept { return data_.get(); }
  std::size_t size() const noexcept { return size_; }
  void clear() noexcept { size_ = 0; }
  // Drops the first n bytes (n <= size()).
  void erase(std::size_t /*pos: always 0*/, std::size_t n) noexcept {
    std::memmove(data_.get(), data_.get() + n, size_ - n);
    size_ -= n;
  }
  // Room for n more bytes after size(); commit(k) makes k of them part of the buffer.
  char* prepare(std::size_t n) {
    if (size_ + n > capacity_) {
      std::size_t cap = std::max(capacity_ * 2, size_ + n);
      auto bigger = std::make_unique_for_overwrite<char[]>(cap);
      if (size_) std::memcpy(bigger.get(), data_.get(), size_);
      data_ = std::move(bigger);
      capacity_ = cap;
    }
    return data_.get() + size_;
  }
  void commit(std::size_t n) noexcept { size_ += n; }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t size_ = 0;
  std::size_t capacity_ = 0;
};

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
  enum class line_status : std::uint8_t { got, need_more, too_long };

  boost::asio::awaitable<void> run_inner();
  void finish();

  // I/O. read_more() first flushes pending replies (the pipelining rule: replies go out in
  // one write when the input is drained or before we block).
  boost::asio::awaitable<bool> read_more();
  boost::asio::awaitable<void> flush();
  boost::asio::awaitable<void> on_read_failure();
  // A line of at most `limit` octets, CRLF included (0: max_line_length).
  line_status take_line(std::string& line, std::size_t limit = 0);
  void reply(int code, std::string_view enhanced, std::string_view text);
  // reply(), counted as a client error (count_error(): the session may end after it).
  void refuse(int code, std::string_view enhanced, std::string_view text);
  void reply_lines(int code, const std::vector<std::string>& lines);
  void greet();
  bool count_error();  // true when the session must end (too many errors)

  boost::asio::awaitable<bool> read_proxy_header();
  boost::asio::awaitable<void> dispatch(const std::string& line);

  void cmd_hello(const command& c);
  // The path of MAIL FROM (mail) or RCPT TO into pa; false once a malformed one was
  // refused (501, counted as an error).
  bool take_path(const command& c, bool mail, path_args& pa);
  // 501 for a bad sender (mail) or recipient address, counted as an error.
  void refuse_path_address(bool mail);
  void cmd_mail(const command& c);
  void cmd_rcpt(const command& c);
  boost::asio::awaitable<void> cmd_data(const command& c);
  boost::asio::awaitable<void> cmd_bdat(const command& c);
  boost::asio::awaitable<void> cmd_starttls(const command& c);
  boost::asio::awaitable<void> cmd_auth(const command& c);
  void cmd_xclient(const command& c);

  boost::asio::awaitable<bool> read_auth_response(std::string& decoded, bool& cancelled);
  boost::asio::awaitable<bool> check_password(std::string user, std::string password);
  void auth_succeeded(std::string user, std::string_view mech);
  void auth_failed(std::string_view mech);

  // Reads exactly n bytes of BDAT data from the input, handing them to sink (which may
  // ignore them). False when the connection failed.
  boost::asio::awaitable<bool> read_chunk(std::uint64_t n, bool keep);
  boost::asio::awaitable<void> deliver(std::shared_ptr<const message_body> body);
  void reply_to_data(int code, std::string_view enhanced, std::string_view text);
  void reply_message_too_big();
  // 452 4.3.1 for a full disk, else 451 4.3.0: writing the body to the spool failed.
  void reply_write_failed(std::error_code ec);
  // Rolls the chaos dice for p; when a trigger fires, replies with its error and returns true.
  bool chaos_fired(chaos_service::point p);

  bool tls_required_now() const;
  // STARTTLS is possible now: the listener offers it and the session is not in TLS yet.
  bool starttls_offered() const;
  bool in_transaction() const { return mail_from_.has_value(); }
  void reset_transaction();
  void reset_session();
  std::string protocol() const;
  std::string client_address_text() const;
  std::vector<std::string> auth_mechanisms() const;
  bool xclient_allowed() const;

  std::shared_ptr<server_state> st_;
  const settings& cfg_;
  std::unique_ptr<transport> t_;
  // Deadlines and watchdog, connection slot, drain gate (references *st_ and *t_).
  sluice::session_lifecycle life_;
  peer_info peer_;
  std::string id_;
  sluice::logger log_;

  // Input: bytes [in_pos_, in_.size()) are unread. Output: replies not yet written.
  input_buffer in_;
  std::size_t in_pos_ = 0;
  std::string out_;
  bool skipping_long_line_ = false;

  bool closing_ = false;
  bool auth_exchange_ = false;  // redact transcript lines
  unsigned errors_ = 0;
  unsigned messages_ = 0;

  // Who the client is (after PROXY, then XCLIENT).
  boost::asio::ip::address client_ip_;
  bool client_unix_ = false;
  std::uint16_t client_port_ = 0;
  std::string client_name_;
  boost::asio::ip::address trust_ip_;  // after PROXY, before XCLIENT: what trust is checked on
  bool trust_unix_ = false;
  std::optional<std::string> xclient_helo_;
  std::optional<std::string> xclient_proto_;

  // Session state (reset by STARTTLS and XCLIENT).
  std::string helo_;
  bool hello_done_ = false;
  bool esmtp_ = false;
  std::string auth_user_;

  // Transaction state (reset by RSET, HELO/EHLO and after each message).
  std::optional<std::string> mail_from_;
  std::vector<std::pair<std::string, std::string>> mail_params_;
  std::vector<recipient> rcpts_;
  // RCPTs refused by allowed_recipients but answered 250 (ignore_rejected_recipients).
  std::size_t dropped_rcpts_ = 0;
  bool smtputf8_ = false;
  std::unique_ptr<body_builder> bdat_body_;
  bool bdat_started_ = false;
  bool bdat_too_big_ = false;
  std::error_code bdat_failed_;  // spilling a chunk failed: the reply after LAST says so
};

}  // namespace sluice::smtp
