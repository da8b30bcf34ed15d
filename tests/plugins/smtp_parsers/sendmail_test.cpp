// sendmail_test.cpp — unit tests for the `sluice sendmail` client: argument parsing,
// address lists, header edits, and whole submissions against a scripted in-process SMTP
// server (one thread, one connection, loopback TCP or a unix socket) with stdin replaced
// by a pipe. The end-to-end test against a real sluice is tests/integration/sendmail_test.cpp.
#include "sendmail.hpp"

#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

namespace {

using sluice::smtp::parse_address_list;
using sluice::smtp::parse_sendmail_args;
using sluice::smtp::prepare_headers;
using sluice::smtp::sendmail_options;
namespace sx = sluice::smtp::sysexits;

sendmail_options args_ok(std::vector<std::string> args) {
  sendmail_options o;
  std::string err;
  EXPECT_TRUE(parse_sendmail_args(args, "127.0.0.1:1025", o, err)) << err;
  return o;
}

std::string args_error(std::vector<std::string> args) {
  sendmail_options o;
  std::string err;
  EXPECT_FALSE(parse_sendmail_args(args, "127.0.0.1:1025", o, err));
  return err;
}

// ---- arguments ----------------------------------------------------------------------------

TEST(SendmailArgs, PhpStyle) {
  auto o = args_ok({"-t", "-i"});
  EXPECT_TRUE(o.recipients_from_headers);
  EXPECT_TRUE(o.ignore_dots);
  EXPECT_FALSE(o.smtp_mode);
  EXPECT_EQ(o.server, "127.0.0.1:1025");
  EXPECT_TRUE(o.recipients.empty());
  auto c = args_ok({"-ti"});
  EXPECT_TRUE(c.recipients_from_headers);
  EXPECT_TRUE(c.ignore_dots);
}

TEST(SendmailArgs, SymfonyStyle) {
  auto o = args_ok({"-bs"});
  EXPECT_TRUE(o.smtp_mode);
  auto m = args_ok({"-bm", "-t"});
  EXPECT_FALSE(m.smtp_mode);
  EXPECT_TRUE(m.recipients_from_headers);
}

TEST(SendmailArgs, SenderForms) {
  EXPECT_EQ(args_ok({"-f", "a@x.org", "r@y"}).sender, "a@x.org");
  EXPECT_EQ(args_ok({"-fa@x.org", "r@y"}).sender, "a@x.org");
  EXPECT_EQ(args_ok({"-r", "<b@x.org>", "r@y"}).sender, "b@x.org");
  EXPECT_EQ(args_ok({"-f", "<>", "r@y"}).sender, "");
  EXPECT_EQ(args_ok({"-F", "Jane Doe", "r@y"}).full_name, "Jane Doe");
  EXPECT_EQ(args_ok({"-FJane", "r@y"}).full_name, "Jane");
  // Postfix takes the first address of -f.
  EXPECT_EQ(args_ok({"-f", "Bounce <b@example.org>", "r@y"}).sender, "b@example.org");
}

TEST(SendmailArgs, ServerAndIgnoredOptions) {
  auto o = args_ok({"-S", "unix:/tmp/s.sock", "-oem", "-odi", "-oi", "-Am", "-B", "8BITMIME", "-N",
                    "never", "-O", "DeliveryMode=b", "-G", "-U", "-v", "--", "-dash@x", "b@y"});
  EXPECT_EQ(o.server, "unix:/tmp/s.sock");
  EXPECT_TRUE(o.ignore_dots);
  EXPECT_TRUE(o.verbose);
  EXPECT_EQ(o.recipients, (std::vector<std::string>{"-dash@x", "b@y"}));
  EXPECT_EQ(args_ok({"-S127.0.0.2:25"}).server, "127.0.0.2:25");
}

TEST(SendmailArgs, RecipientsStopOptionParsing) {
  auto o = args_ok({"a@x", "-t"});
  EXPECT_FALSE(o.recipients_from_headers);
  EXPECT_EQ(o.recipients, (std::vector<std::string>{"a@x", "-t"}));
  auto l = args_ok({"a@x, B <b@y>"});
  EXPECT_EQ(l.recipients, (std::vector<std::string>{"a@x", "b@y"}));
}

TEST(SendmailArgs, Errors) {
  EXPECT_NE(args_error({"-Z"}).find("unknown option -Z"), std::string::npos);
  EXPECT_NE(args_error({"-f"}).find("needs a value"), std::string::npos);
  EXPECT_NE(args_error({"-bp"}).find("not supported"), std::string::npos);
  EXPECT_NE(args_error({"-bd"}).find("not supported"), std::string::npos);
  EXPECT_NE(args_error({"-q"}).find("queue"), std::string::npos);
  EXPECT_NE(args_error({"-S", ""}).find("-S"), std::string::npos);
  EXPECT_NE(args_error({"-bs", "a@x"}).find("-bs takes no recipient"), std::string::npos);
  EXPECT_NE(args_error({"-bs", "-t"}).find("only in delivery mode"), std::string::npos);
}

TEST(SendmailArgs, ErrorLeavesOutputUntouched) {
  sendmail_options o;
  o.server = "kept";
  std::string err;
  std::vector<std::string> a = {"-t", "-Z"};
  EXPECT_FALSE(parse_sendmail_args(a, "x", o, err));
  EXPECT_EQ(o.server, "kept");
  EXPECT_FALSE(o.recipients_from_headers);
}

// ---- addresses ----------------------------------------------------------------------------

TEST(SendmailAddresses, Forms) {
  EXPECT_EQ(parse_address_list("a@x.org"), (std::vector<std::string>{"a@x.org"}));
  EXPECT_EQ(parse_address_list(" Jane <j@x.org> , \"Doe, John\" <jd@x.org>,k@x.org (Kay)"),
            (std::vector<std::string>{"j@x.org", "jd@x.org", "k@x.org"}));
  EXPECT_EQ(parse_address_list("undisclosed-recipients:;"), std::vector<std::string>{});
  EXPECT_EQ(parse_address_list("Team: a@x, b@x; c@x"),
            (std::vector<std::string>{"a@x", "b@x", "c@x"}));
  EXPECT_EQ(parse_address_list("<@relay.example:u@x.org>"), (std::vector<std::string>{"u@x.org"}));
  EXPECT_EQ(parse_address_list("u@[IPv6:2001:db8::1]"),
            (std::vector<std::string>{"u@[IPv6:2001:db8::1]"}));
  EXPECT_EQ(parse_address_list("\"a:b\" <q@x> (comment, with (nested) comma)"),
            (std::vector<std::string>{"q@x"}));
  EXPECT_EQ(parse_address_list(""), std::vector<std::string>{});
  EXPECT_EQ(parse_address_list(" , ,"), std::vector<std::string>{});
}

// ---- header edits -------------------------------------------------------------------------

TEST(SendmailHeaders, ExtractsRecipientsAndRemovesBcc) {
  auto h = prepare_headers({"From: me@x", "To: a@x,", " B <b@x>", "Cc: c@x", "BCC: hidden@x,",
                            "\tsecond-hidden@x", "Subject: hi"},
                           true, "me@x", std::nullopt, "Thu, 1 Jan 2026 00:00:00 +0000");
  EXPECT_EQ(h.recipients,
            (std::vector<std::string>{"a@x", "b@x", "c@x", "hidden@x", "second-hidden@x"}));
  EXPECT_EQ(h.text,
            "Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nFrom: me@x\r\nTo: a@x,\r\n B <b@x>\r\nCc: "
            "c@x\r\nSubject: hi\r\n");
}

// RFC 5322 §3.6.6, as Postfix's -t: a resent message goes to its Resent- recipients only,
// and Resent-Bcc is dropped like Bcc.
TEST(SendmailHeaders, ResentFieldsNameTheRecipientsOfAResentMessage) {
  auto h = prepare_headers({"To: orig@x", "Bcc: old-hidden@x", "Resent-To: new@y", "resent-cc: c@y",
                            "Resent-Bcc: rb@z", "Subject: fwd"},
                           true, "me@x", std::nullopt, "D");
  EXPECT_EQ(h.recipients, (std::vector<std::string>{"new@y", "c@y", "rb@z"}));
  EXPECT_EQ(h.text,
            "From: me@x\r\nDate: D\r\nTo: orig@x\r\nResent-To: new@y\r\nresent-cc: c@y\r\n"
            "Subject: fwd\r\n");
}

TEST(SendmailHeaders, WithoutDashTDropsBccAndFindsNoRecipients) {
  auto h =
      prepare_headers({"To: a@x", "Bcc: b@x", " c@x", "Date: x"}, false, "me@x", std::nullopt, "D");
  EXPECT_TRUE(h.recipients.empty());
  EXPECT_EQ(h.text, "From: me@x\r\nTo: a@x\r\nDate: x\r\n");
}

TEST(SendmailHeaders, MessageIdIsAddedWhenMissingAndANullSenderHasNoName) {
  EXPECT_EQ(prepare_headers({"Subject: s"}, false, "me@x", std::nullopt, "D", "<id@host>").text,
            "From: me@x\r\nDate: D\r\nMessage-ID: <id@host>\r\nSubject: s\r\n");
  EXPECT_EQ(prepare_headers({"message-id: <own@x>", "Date: d", "From: f@x"}, false, "me@x",
                            std::nullopt, "D", "<id@host>")
                .text,
            "message-id: <own@x>\r\nDate: d\r\nFrom: f@x\r\n");
  EXPECT_EQ(prepare_headers({"Date: d"}, false, "", std::string("Bounce Bot"), "D").text,
            "From: MAILER-DAEMON\r\nDate: d\r\n");
}

TEST(SendmailHeaders, GeneratedFromUsesFullName) {
  EXPECT_EQ(prepare_headers({"Date: d"}, false, "j@x", std::string("Jane Doe"), "D").text,
            "From: Jane Doe <j@x>\r\nDate: d\r\n");
  EXPECT_EQ(prepare_headers({"Date: d"}, false, "j@x", std::string("Doe, \"J\""), "D").text,
            "From: \"Doe, \\\"J\\\"\" <j@x>\r\nDate: d\r\n");
  EXPECT_EQ(prepare_headers({"Date: d"}, false, "j@x", std::string("J\xc3\xa9"), "D").text,
            "From: =?UTF-8?B?SsOp?= <j@x>\r\nDate: d\r\n");
}

// ---- whole submissions against a scripted server -----------------------------------------

class fake_smtp {
 public:
  // Listens on loopback TCP (unix_path empty) or a unix socket.
  explicit fake_smtp(std::string unix_path = {}) : unix_path_(std::move(unix_path)) {
    if (unix_path_.empty()) {
      fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in sa{};
      sa.sin_family = AF_INET;
      sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
      socklen_t len = sizeof sa;
      ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len);
      address_ = "127.0.0.1:" + std::to_string(ntohs(sa.sin_port));
    } else {
      fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
      sockaddr_un sa{};
      sa.sun_family = AF_UNIX;
      std::strncpy(sa.sun_path, unix_path_.c_str(), sizeof sa.sun_path - 1);
      ::unlink(unix_path_.c_str());
      EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
      address_ = "unix:" + unix_path_;
    }
    EXPECT_EQ(::listen(fd_, 4), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~fake_smtp() {
    ::shutdown(fd_, SHUT_RDWR);
    if (thread_.joinable()) thread_.join();
    ::close(fd_);
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }
  const std::string& address() const { return address_; }
  // Everything the client sent, and the DATA payload (up to, excluding, ".\r\n").
  std::string transcript() {
    if (thread_.joinable()) thread_.join();
    return transcript_;
  }
  std::string data() {
    if (thread_.joinable()) thread_.join();
    return data_;
  }

 private:
  void reply(int c, std::string_view s) { (void)!::write(c, s.data(), s.size()); }

  void serve() {
    const int c = ::accept(fd_, nullptr, nullptr);
    if (c < 0) return;
    reply(c, "220 fake ESMTP\r\n");
    std::string buf;
    bool in_data = false;
    char tmp[4096];
    while (true) {
      const ssize_t n = ::read(c, tmp, sizeof tmp);
      if (n <= 0) break;
      buf.append(tmp, static_cast<std::size_t>(n));
      while (true) {
        if (in_data) {
          const std::size_t end = buf.find("\r\n.\r\n");
          if (end == std::string::npos) break;
          data_ = buf.substr(0, end + 2);
          transcript_ += "<DATA>\r\n";
          buf.erase(0, end + 5);
          in_data = false;
          reply(c, "250 2.0.0 queued as 42\r\n");
          continue;
        }
        const std::size_t lf = buf.find("\r\n");
        if (lf == std::string::npos) break;
        const std::string line = buf.substr(0, lf);
        buf.erase(0, lf + 2);
        transcript_ += line + "\r\n";
        if (line.starts_with("EHLO")) {
          reply(c, "250-fake\r\n250-8BITMIME\r\n250 PIPELINING\r\n");
        } else if (line.starts_with("MAIL")) {
          reply(c, "250 2.1.0 ok\r\n");
        } else if (line.starts_with("RCPT")) {
          if (line.find("reject") != std::string::npos) {
            reply(c, "550 5.1.1 no such user\r\n");
          } else if (line.find("later") != std::string::npos) {
            reply(c, "451 4.3.0 try later\r\n");
          } else {
            reply(c, "250 2.1.5 ok\r\n");
          }
        } else if (line == "DATA") {
          in_data = true;
          reply(c, "354 go ahead\r\n");
        } else if (line == "QUIT") {
          reply(c, "221 bye\r\n");
          ::close(c);
          return;
        } else {
          reply(c, "500 5.5.1 what\r\n");
        }
      }
    }
    ::close(c);
  }

  std::string unix_path_;
  int fd_ = -1;
  std::string address_;
  std::thread thread_;
  std::string transcript_;
  std::string data_;
};

// Runs run_sendmail with `input` on a pipe as stdin; returns the exit status.
int run_with_input(const sendmail_options& o, const std::string& input, int out_fd = 1) {
  int p[2];
  EXPECT_EQ(::pipe(p), 0);
  std::thread writer([&] {
    (void)!::write(p[1], input.data(), input.size());
    ::close(p[1]);
  });
  const int rc = sluice::smtp::run_sendmail(o, p[0], out_fd);
  writer.join();
  ::close(p[0]);
  return rc;
}

TEST(SendmailSubmit, DashTDashIDotStuffsNormalisesAndDropsBcc) {
  fake_smtp server;
  auto o = args_ok({"-t", "-i", "-f", "sender@example.org", "-S", server.address()});
  const std::string msg =
      "From: App <app@example.org>\nTo: Alice <alice@example.org>\nBcc: secret@example.org\n"
      "Subject: test\n\nline one\n.\n..two dots\r\n.leading\nlast line without newline";
  ASSERT_EQ(run_with_input(o, msg), sx::ok);
  const std::string t = server.transcript();
  EXPECT_NE(t.find("MAIL FROM:<sender@example.org> BODY=8BITMIME\r\n"), std::string::npos) << t;
  EXPECT_NE(t.find("RCPT TO:<alice@example.org>\r\n"), std::string::npos) << t;
  EXPECT_NE(t.find("RCPT TO:<secret@example.org>\r\n"), std::string::npos) << t;
  EXPECT_NE(t.find("QUIT"), std::string::npos);
  const std::string d = server.data();
  EXPECT_EQ(d.find("Bcc"), std::string::npos) << d;
  EXPECT_NE(d.find("Date: "), std::string::npos) << d;         // added
  EXPECT_NE(d.find("Message-ID: <"), std::string::npos) << d;  // added, as Postfix does
  EXPECT_NE(d.find("From: App <app@example.org>\r\nTo: Alice <alice@example.org>\r\nSubject: "
                   "test\r\n\r\nline one\r\n..\r\n...two dots\r\n..leading\r\nlast line without "
                   "newline\r\n"),
            std::string::npos)
      << d;
}

TEST(SendmailSubmit, WithoutDashILoneDotEndsInput) {
  fake_smtp server;
  auto o = args_ok({"-S", server.address(), "-f", "s@x", "rcpt@example.org"});
  ASSERT_EQ(run_with_input(o, "Subject: a\n\nbody\n.\nnot sent\n"), sx::ok);
  const std::string d = server.data();
  EXPECT_NE(d.find("\r\n\r\nbody\r\n"), std::string::npos) << d;
  EXPECT_EQ(d.find("not sent"), std::string::npos) << d;
  EXPECT_NE(d.find("From: s@x\r\n"), std::string::npos) << d;
}

TEST(SendmailSubmit, MessageWithoutHeadersGetsABlankLine) {
  fake_smtp server;
  auto o = args_ok({"-S", server.address(), "-f", "s@x", "-F", "Sam", "r@x"});
  ASSERT_EQ(run_with_input(o, "just text\nmore\n"), sx::ok);
  const std::string d = server.data();
  EXPECT_TRUE(d.starts_with("From: Sam <s@x>\r\nDate: ")) << d;
  EXPECT_NE(d.find("\r\n\r\njust text\r\nmore\r\n"), std::string::npos) << d;
}

TEST(SendmailSubmit, MboxFromLineIsDropped) {
  fake_smtp server;
  auto o = args_ok({"-t", "-S", server.address(), "-f", "s@x"});
  ASSERT_EQ(run_with_input(o, "From s@x Thu Jan  1 00:00:00 2026\nTo: r@x\nSubject: m\n\nb\n"),
            sx::ok);
  const std::string d = server.data();
  EXPECT_EQ(d.find("From s@x"), std::string::npos) << d;
  EXPECT_NE(d.find("To: r@x\r\nSubject: m\r\n\r\nb\r\n"), std::string::npos) << d;
}

// CR or LF in -f or a recipient argument would end the MAIL/RCPT command and start another:
// refused before anything is sent.
TEST(SendmailArgs, ControlCharactersInEnvelopeAddressesAreRefused) {
  EXPECT_NE(args_error({"-f", "x@y>\r\nRCPT TO:<evil@z", "a@x"}).find("sender address"),
            std::string::npos);
  EXPECT_NE(args_error({"-f", "x@y\nRCPT TO:<evil@z", "a@x"}).find("sender address"),
            std::string::npos);
  EXPECT_NE(args_error({"-f", "s@x", "<victim@example.org\r\nRCPT TO:<attacker@evil>"})
                .find("recipient argument with a control character: <victim@example.org??RCPT"),
            std::string::npos);
  EXPECT_NE(args_error({"a@x\x7f"}).find("control character"), std::string::npos);
}

// Addresses from -t headers get the same check when the submission starts.
TEST(SendmailSubmit, ControlCharactersInHeaderAddressesAreRefused) {
  auto o = args_ok({"-t", "-S", "127.0.0.1:1", "-f", "s@x"});  // never connected
  EXPECT_EQ(run_with_input(o, "To: a\x01b@x\nSubject: a\n\nb\n"), sx::dataerr);
}

TEST(SendmailSubmit, ObsoleteSpaceBeforeTheColonIsStillAHeader) {
  fake_smtp server;
  auto o = args_ok({"-S", server.address(), "-f", "s@x", "r@x"});
  ASSERT_EQ(run_with_input(o, "Subject : old style\nX: y\n\nbody\n"), sx::ok);
  const std::string d = server.data();
  EXPECT_NE(d.find("Subject : old style\r\nX: y\r\n\r\nbody\r\n"), std::string::npos) << d;
}

TEST(SendmailSubmit, OverUnixSocket) {
  const auto path = (std::filesystem::temp_directory_path() /
                     ("sluice-sendmail-" + std::to_string(::getpid()) + ".sock"))
                        .string();
  fake_smtp server(path);
  auto o = args_ok({"-S", server.address(), "-f", "s@x", "r@x"});
  EXPECT_EQ(run_with_input(o, "Subject: u\n\nx\n"), sx::ok);
  EXPECT_NE(server.transcript().find("RCPT TO:<r@x>"), std::string::npos);
}

TEST(SendmailSubmit, RefusedRecipients) {
  {
    fake_smtp server;
    auto o = args_ok({"-S", server.address(), "-f", "s@x", "reject@x"});
    EXPECT_EQ(run_with_input(o, "Subject: a\n\nb\n"), sx::nouser);
    EXPECT_EQ(server.transcript().find("DATA"), std::string::npos);
  }
  {
    fake_smtp server;
    auto o = args_ok({"-S", server.address(), "-f", "s@x", "later@x"});
    EXPECT_EQ(run_with_input(o, "Subject: a\n\nb\n"), sx::tempfail);
  }
  {
    // Partly accepted: delivered to the accepted one and a success (as Postfix: a caller
    // that saw a failure would send it again); the refusal is reported on stderr.
    fake_smtp server;
    auto o = args_ok({"-S", server.address(), "-f", "s@x", "ok@x", "reject@x"});
    EXPECT_EQ(run_with_input(o, "Subject: a\n\nb\n"), sx::ok);
    EXPECT_NE(server.transcript().find("<DATA>"), std::string::npos);
  }
}

TEST(SendmailSubmit, NoRecipientsIsUsageError) {
  auto o = args_ok({"-t", "-S", "127.0.0.1:1"});
  EXPECT_EQ(run_with_input(o, "Subject: none\n\nx\n"), sx::usage);
}

TEST(SendmailSubmit, ConnectionFailures) {
  // A port nobody listens on: bind one, close it, use its number.
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
  socklen_t len = sizeof sa;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(s);
  auto o = args_ok({"-S", "127.0.0.1:" + std::to_string(ntohs(sa.sin_port)), "r@x"});
  EXPECT_EQ(run_with_input(o, "x\n"), sx::tempfail);
  auto h = args_ok({"-S", "no-such-host.invalid:25", "r@x"});
  EXPECT_EQ(run_with_input(h, "x\n"), sx::nohost);
  auto u = args_ok({"-S", "unix:/nonexistent/sluice.sock", "r@x"});
  EXPECT_EQ(run_with_input(u, "x\n"), sx::tempfail);
  auto bad = args_ok({"-S", "::1:25", "r@x"});
  EXPECT_EQ(run_with_input(bad, "x\n"), sx::usage);
}

TEST(SendmailSubmit, SmtpModeRelaysBothWays) {
  fake_smtp server;
  auto o = args_ok({"-bs", "-S", server.address()});
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  const std::string session =
      "EHLO client\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nSubject: bs\r\n\r\nhello\r\n.\r\n"
      "QUIT\r\n";
  std::string got;
  std::thread reader([&] {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out[0], buf, sizeof buf)) > 0)
      got.append(buf, static_cast<std::size_t>(n));
  });
  const int rc = run_with_input(o, session, out[1]);
  ::close(out[1]);
  reader.join();
  ::close(out[0]);
  EXPECT_EQ(rc, sx::ok);
  EXPECT_TRUE(got.starts_with("220 fake ESMTP\r\n")) << got;
  EXPECT_NE(got.find("354 go ahead\r\n250 2.0.0 queued as 42\r\n221 bye\r\n"), std::string::npos)
      << got;
  EXPECT_EQ(server.data(), "Subject: bs\r\n\r\nhello\r\n");
}

}  // namespace
