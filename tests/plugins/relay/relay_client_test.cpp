// The relay's SMTP client against scripted servers on loopback: the exact commands on the
// wire (HELO fallback, PIPELINING batches, SIZE/BODY parameters, AUTH PLAIN's initial
// response, dot-stuffed content), per-recipient outcomes, and failures (no greeting,
// garbage replies, every recipient refused). Each script is a list of (expected command
// prefix, reply); the server thread records everything it received.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include "client.hpp"

namespace sluice::relay {
namespace {

namespace asio = boost::asio;

struct step {
  std::string expect;  // prefix of the next command; "<data>" reads DATA content to the dot
  std::string reply;   // sent after it (CRLF-terminated lines); empty: nothing
};

// One-connection scripted server. Stops at the end of the script or after 10 s idle.
class script_server {
 public:
  script_server(std::string greeting, std::vector<step> script)
      : greeting_(std::move(greeting)), script_(std::move(script)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 1);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~script_server() {
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  // Everything received, once the thread finished.
  std::string received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }
  std::vector<std::string> mismatches() {
    if (thread_.joinable()) thread_.join();
    return mismatches_;
  }

 private:
  bool fill(int c) {
    pollfd p{c, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return false;
    char b[4096];
    ssize_t n = ::recv(c, b, sizeof b, 0);
    if (n <= 0) return false;
    buf_.append(b, static_cast<std::size_t>(n));
    received_.append(b, static_cast<std::size_t>(n));
    return true;
  }
  bool line(int c, std::string& out) {
    for (;;) {
      auto p = buf_.find("\r\n");
      if (p != std::string::npos) {
        out = buf_.substr(0, p);
        buf_.erase(0, p + 2);
        return true;
      }
      if (!fill(c)) return false;
    }
  }
  void send_all(int c, const std::string& s) {
    if (!s.empty()) ::send(c, s.data(), s.size(), MSG_NOSIGNAL);
  }
  void run() {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 10000) <= 0) return;
    int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    send_all(c, greeting_);
    for (const auto& s : script_) {
      if (s.expect == "<data>") {
        for (;;) {
          auto end = buf_.find("\r\n.\r\n");
          if (end != std::string::npos) {
            buf_.erase(0, end + 5);
            break;
          }
          if (!fill(c)) {
            mismatches_.push_back("connection ended inside DATA");
            ::close(c);
            return;
          }
        }
      } else {
        std::string l;
        if (!line(c, l)) {
          mismatches_.push_back("expected \"" + s.expect + "\", got end of input");
          break;
        }
        if (l.rfind(s.expect, 0) != 0)
          mismatches_.push_back("expected \"" + s.expect + "\", got \"" + l + "\"");
      }
      send_all(c, s.reply);
    }
    // Drain what the client still sends (QUIT) until it closes, bounded.
    while (fill(c)) {
    }
    ::close(c);
  }

  std::string greeting_;
  std::vector<step> script_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::string buf_, received_;
  std::vector<std::string> mismatches_;
};

session_params params(std::uint16_t port) {
  session_params p;
  p.host = "127.0.0.1";
  p.address = "127.0.0.1";
  p.port = port;
  p.sec = security::none;
  p.helo = "client.test";
  p.timeouts.connect = std::chrono::seconds(5);
  p.timeouts.greeting = std::chrono::seconds(5);
  p.timeouts.command = std::chrono::seconds(5);
  p.timeouts.data_init = std::chrono::seconds(5);
  p.timeouts.data_block = std::chrono::seconds(5);
  p.timeouts.data_end = std::chrono::seconds(5);
  return p;
}

struct run_result {
  std::optional<session_error> open_error;
  std::optional<session_error> transact_error;
  std::vector<rcpt_outcome> outcomes;
  std::string auth;
};

asio::awaitable<void> drive(session_params p, std::vector<std::string> rcpts,
                            std::shared_ptr<message> msg, bool eight_bit, run_result* out,
                            asio::io_context* io, bool all_or_nothing) {
  auto c = std::make_unique<connection>(*io);
  out->open_error = co_await c->open(p);
  if (!out->open_error) {
    out->auth = c->auth_mechanism();
    out->transact_error = co_await c->transact("a@example.com", rcpts, *msg, msg->raw->size(),
                                               eight_bit, false, out->outcomes, all_or_nothing);
    co_await c->quit();
  }
}

run_result run(session_params p, std::vector<std::string> rcpts, std::string raw,
               bool eight_bit = false, bool all_or_nothing = false) {
  asio::io_context io;
  auto msg = std::make_shared<message>();
  msg->raw = message_body::from_string(std::move(raw));
  run_result r;
  asio::co_spawn(io, drive(p, rcpts, msg, eight_bit, &r, &io, all_or_nothing), asio::detached);
  io.run_for(std::chrono::seconds(30));
  return r;
}

const char* kMessage = "Subject: t\r\n\r\n.starts with a dot\r\nend\r\n";

TEST(RelayClient, HeloFallbackWithoutExtensions) {
  script_server srv("220 old.test ready\r\n",
                    {{"EHLO client.test", "502 5.5.1 EHLO unrecognized\r\n"},
                     {"HELO client.test", "250 old.test\r\n"},
                     {"MAIL FROM:<a@example.com>", "250 ok\r\n"},
                     {"RCPT TO:<u@example.net>", "250 ok\r\n"},
                     {"DATA", "354 go ahead\r\n"},
                     {"<data>", "250 2.0.0 queued as X1\r\n"},
                     {"QUIT", "221 bye\r\n"}});
  auto r = run(params(srv.port()), {"u@example.net"}, kMessage);
  ASSERT_FALSE(r.open_error) << r.open_error->text;
  ASSERT_FALSE(r.transact_error) << r.transact_error->text;
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_TRUE(r.outcomes[0].delivered());
  EXPECT_EQ(r.outcomes[0].reply.text(), "2.0.0 queued as X1");
  EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();
  const std::string wire = srv.received();
  // No ESMTP parameters to a server that did not say EHLO.
  EXPECT_NE(wire.find("MAIL FROM:<a@example.com>\r\n"), std::string::npos) << wire;
  // Dot-stuffed on the wire, terminated by CRLF.CRLF.
  EXPECT_NE(wire.find("\r\n..starts with a dot\r\nend\r\n.\r\n"), std::string::npos) << wire;
}

TEST(RelayClient, PipeliningSizeEightBitAndPerRecipientOutcomes) {
  script_server srv(
      "220 mx.test ESMTP\r\n",
      {{"EHLO client.test", "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n"},
       {"MAIL FROM:<a@example.com> SIZE=", "250 2.1.0 ok\r\n"},
       {"RCPT TO:<good@example.net>", "250 2.1.5 ok\r\n"},
       {"RCPT TO:<bad@example.net>", "550 5.1.1 <bad@example.net>: no such user\r\n"},
       {"DATA", "354 go\r\n"},
       {"<data>", "250 2.0.0 Ok: queued as P1\r\n"},
       {"QUIT", "221 bye\r\n"}});
  auto r = run(params(srv.port()), {"good@example.net", "bad@example.net"}, kMessage, true);
  ASSERT_FALSE(r.open_error) << r.open_error->text;
  ASSERT_FALSE(r.transact_error) << r.transact_error->text;
  ASSERT_EQ(r.outcomes.size(), 2u);
  EXPECT_TRUE(r.outcomes[0].delivered());
  EXPECT_EQ(r.outcomes[1].reply.code, 550);
  EXPECT_EQ(r.outcomes[1].reply.enhanced, "5.1.1");
  EXPECT_EQ(r.outcomes[1].reply.text(), "5.1.1 <bad@example.net>: no such user");
  EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();
  const std::string wire = srv.received();
  const std::string size = std::to_string(std::string(kMessage).size());
  // RFC 2920: the whole group in order, SIZE and BODY declared.
  EXPECT_NE(wire.find("MAIL FROM:<a@example.com> SIZE=" + size +
                      " BODY=8BITMIME\r\nRCPT TO:<good@example.net>\r\n"
                      "RCPT TO:<bad@example.net>\r\nDATA\r\n"),
            std::string::npos)
      << wire;
}

// All or nothing (an inline relay: one reply answers for every recipient): one refused
// recipient means nobody gets the message. Without PIPELINING no DATA is sent; with it, the
// 354 to the pipelined DATA is answered by dropping the connection (no "." that would
// deliver an empty message).
TEST(RelayClient, AllOrNothingSendsNothingWhenARecipientIsRefused) {
  {
    script_server srv("220 mx.test ESMTP\r\n",
                      {{"EHLO client.test", "250-mx.test\r\n250 SIZE\r\n"},
                       {"MAIL FROM:<a@example.com>", "250 ok\r\n"},
                       {"RCPT TO:<good@example.net>", "250 ok\r\n"},
                       {"RCPT TO:<bad@example.net>", "550 5.1.1 no such user\r\n"},
                       {"RSET", "250 ok\r\n"},
                       {"QUIT", "221 bye\r\n"}});
    auto r =
        run(params(srv.port()), {"good@example.net", "bad@example.net"}, kMessage, false, true);
    ASSERT_FALSE(r.open_error);
    ASSERT_FALSE(r.transact_error);
    ASSERT_EQ(r.outcomes.size(), 2u);
    EXPECT_EQ(r.outcomes[0].reply.code, 550);
    EXPECT_EQ(r.outcomes[0].reply.text(),
              "5.1.1 not sent to anyone: <bad@example.net> was refused: 550 5.1.1 no such user");
    EXPECT_EQ(r.outcomes[1].reply.text(), "5.1.1 no such user");
    EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();
    EXPECT_EQ(srv.received().find("DATA"), std::string::npos) << srv.received();
  }
  {
    script_server srv("220 mx.test ESMTP\r\n",
                      {{"EHLO client.test", "250-mx.test\r\n250 PIPELINING\r\n"},
                       {"MAIL FROM:<a@example.com>", "250 ok\r\n"},
                       {"RCPT TO:<good@example.net>", "250 ok\r\n"},
                       {"RCPT TO:<bad@example.net>", "450 4.2.1 try later\r\n"},
                       {"DATA", "354 go\r\n"},
                       {"<data>", "250 2.0.0 delivered an empty message\r\n"}});
    auto r =
        run(params(srv.port()), {"good@example.net", "bad@example.net"}, kMessage, false, true);
    ASSERT_FALSE(r.open_error);
    ASSERT_FALSE(r.transact_error);
    ASSERT_EQ(r.outcomes.size(), 2u);
    EXPECT_EQ(r.outcomes[0].reply.code, 450);
    EXPECT_EQ(r.outcomes[1].reply.code, 450);
    const std::string wire = srv.received();
    // Nothing after DATA: neither content nor the final dot.
    EXPECT_TRUE(wire.ends_with("DATA\r\n")) << wire;
  }
}

TEST(RelayClient, EveryRecipientRefusedSendsNoContent) {
  script_server srv("220 mx.test ESMTP\r\n",
                    {{"EHLO client.test", "250-mx.test\r\n250 SIZE\r\n"},
                     {"MAIL FROM:<a@example.com>", "250 ok\r\n"},
                     {"RCPT TO:<x@example.net>", "450 4.2.1 mailbox busy, try later\r\n"},
                     {"RSET", "250 ok\r\n"},
                     {"QUIT", "221 bye\r\n"}});
  auto r = run(params(srv.port()), {"x@example.net"}, kMessage);
  ASSERT_FALSE(r.open_error);
  ASSERT_FALSE(r.transact_error);
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_EQ(r.outcomes[0].reply.code, 450);
  EXPECT_TRUE(r.outcomes[0].reply.transient());
  EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();
  EXPECT_EQ(srv.received().find("DATA"), std::string::npos);
}

TEST(RelayClient, MailRefusedIsATransactionError) {
  script_server srv("220 mx.test ESMTP\r\n",
                    {{"EHLO client.test", "250 mx.test\r\n"},
                     {"MAIL FROM:<a@example.com>", "553 5.7.1 sender not allowed\r\n"},
                     {"RSET", "250 ok\r\n"},
                     {"QUIT", "221 bye\r\n"}});
  auto r = run(params(srv.port()), {"x@example.net"}, kMessage);
  ASSERT_FALSE(r.open_error);
  ASSERT_TRUE(r.transact_error);
  EXPECT_TRUE(r.transact_error->permanent);
  EXPECT_EQ(r.transact_error->reply.code, 553);
  EXPECT_NE(r.transact_error->text.find("sender not allowed"), std::string::npos);
  EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();
}

TEST(RelayClient, AuthPlainInitialResponseWhenPlaintextIsAllowed) {
  script_server srv("220 mx.test ESMTP\r\n",
                    {{"EHLO client.test", "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n"},
                     {"AUTH PLAIN AGFsaWNlAHNlY3JldA==", "235 2.7.0 ok\r\n"},
                     {"MAIL FROM:<a@example.com>", "250 ok\r\n"},
                     {"RCPT TO:<x@example.net>", "250 ok\r\n"},
                     {"DATA", "354 go\r\n"},
                     {"<data>", "250 ok\r\n"},
                     {"QUIT", "221 bye\r\n"}});
  auth_config a;
  a.username = "alice";
  a.password = "secret";
  auto p = params(srv.port());
  p.auth = &a;
  p.allow_plaintext_auth = true;
  auto r = run(p, {"x@example.net"}, kMessage);
  ASSERT_FALSE(r.open_error) << r.open_error->text;
  EXPECT_EQ(r.auth, "PLAIN");
  ASSERT_EQ(r.outcomes.size(), 1u);
  EXPECT_TRUE(r.outcomes[0].delivered());
  EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();
}

TEST(RelayClient, LoginAndCramMd5Exchanges) {
  // CRAM-MD5 with RFC 2195's challenge; LOGIN's two prompts.
  script_server srv("220 mx.test ESMTP\r\n",
                    {{"EHLO client.test", "250-mx.test\r\n250 AUTH LOGIN\r\n"},
                     {"AUTH LOGIN", "334 VXNlcm5hbWU6\r\n"},
                     {"YWxpY2U=", "334 UGFzc3dvcmQ6\r\n"},
                     {"c2VjcmV0", "235 ok\r\n"},
                     {"MAIL", "250 ok\r\n"},
                     {"RCPT", "250 ok\r\n"},
                     {"DATA", "354 go\r\n"},
                     {"<data>", "250 ok\r\n"},
                     {"QUIT", "221 bye\r\n"}});
  auth_config a;
  a.username = "alice";
  a.password = "secret";
  auto p = params(srv.port());
  p.auth = &a;
  p.allow_plaintext_auth = true;
  auto r = run(p, {"x@example.net"}, kMessage);
  ASSERT_FALSE(r.open_error) << r.open_error->text;
  EXPECT_EQ(r.auth, "LOGIN");
  EXPECT_TRUE(srv.mismatches().empty()) << srv.mismatches().front();

  script_server cram(
      "220 mx.test ESMTP\r\n",
      {{"EHLO client.test", "250-mx.test\r\n250 AUTH PLAIN CRAM-MD5\r\n"},
       {"AUTH CRAM-MD5", "334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+\r\n"},
       {"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", "235 ok\r\n"},
       {"MAIL", "250 ok\r\n"},
       {"RCPT", "250 ok\r\n"},
       {"DATA", "354 go\r\n"},
       {"<data>", "250 ok\r\n"},
       {"QUIT", "221 bye\r\n"}});
  auth_config t;
  t.username = "tim";
  t.password = "tanstaaftanstaaf";
  auto q = params(cram.port());
  q.auth = &t;
  q.allow_plaintext_auth = true;
  auto r2 = run(q, {"x@example.net"}, kMessage);
  ASSERT_FALSE(r2.open_error) << r2.open_error->text;
  EXPECT_EQ(r2.auth, "CRAM-MD5");
  EXPECT_TRUE(cram.mismatches().empty()) << cram.mismatches().front();
}

TEST(RelayClient, SilentServerTimesOutAtTheGreeting) {
  script_server srv("", {});
  auto p = params(srv.port());
  p.timeouts.greeting = std::chrono::milliseconds(300);
  auto r = run(p, {"x@example.net"}, kMessage);
  ASSERT_TRUE(r.open_error);
  EXPECT_NE(r.open_error->text.find("no reply within"), std::string::npos) << r.open_error->text;
  EXPECT_NE(r.open_error->text.find("the greeting"), std::string::npos) << r.open_error->text;
}

TEST(RelayClient, GarbageReplyIsAProtocolError) {
  script_server srv("hello, I am not SMTP\r\n", {});
  auto r = run(params(srv.port()), {"x@example.net"}, kMessage);
  ASSERT_TRUE(r.open_error);
  EXPECT_NE(r.open_error->text.find("malformed reply line"), std::string::npos)
      << r.open_error->text;
}

TEST(RelayClient, RefusedGreetingCarriesTheReply) {
  script_server srv("554 5.7.1 no service for you\r\n", {{"QUIT", "221 bye\r\n"}});
  auto r = run(params(srv.port()), {"x@example.net"}, kMessage);
  ASSERT_TRUE(r.open_error);
  EXPECT_EQ(r.open_error->reply.code, 554);
  EXPECT_TRUE(r.open_error->permanent);
  EXPECT_TRUE(r.open_error->try_next_host);
}

}  // namespace
}  // namespace sluice::relay
