// tests/plugins/smtp/smtp_integration_test.cpp — the real `sluice` binary with the smtp
// listener on 127.0.0.1 port 0 / unix sockets, a test_sink pipeline, driven by golden
// transcripts (tests/data/smtp/*.txt), raw sockets, Python smtplib, swaks and curl.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <filesystem>
#include <thread>

#include "harness.hpp"
#include "sasl.hpp"

using namespace smtp_test;
namespace fs = std::filesystem;

namespace {

const std::string base = "    hostname: mx.test\n    listen: [\"127.0.0.1:0\"]\n";

std::string transcript(const sluice_server& s, const std::string& name) {
  return run_transcript(s.endpoints().at(0), data_dir() / name);
}

// Undoes header folding (CRLF + WSP), so assertions do not depend on where lines break.
std::string unfold(std::string s) {
  for (auto p = s.find("\r\n\t"); p != std::string::npos; p = s.find("\r\n\t", p))
    s.replace(p, 3, " ");
  for (auto p = s.find("\r\n "); p != std::string::npos; p = s.find("\r\n ", p))
    s.replace(p, 3, " ");
  return s;
}

std::size_t count(std::string_view hay, std::string_view needle) {
  std::size_t n = 0;
  for (auto p = hay.find(needle); p != std::string_view::npos; p = hay.find(needle, p + 1))
    ++n;
  return n;
}

// A self-signed certificate made at test time.
struct cert_files {
  fs::path dir, cert, key;
  cert_files() {
    dir = make_temp_dir("sluice-smtp-cert");
    cert = dir / "cert.pem";
    key = dir / "key.pem";
    std::string out;
    int rc =
        run_shell("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mx.test -keyout " +
                      key.string() + " -out " + cert.string(),
                  out);
    if (rc != 0) throw std::runtime_error("openssl req failed: " + out);
  }
  ~cert_files() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string yaml(const std::string& mode) const {
    return "    tls: {mode: " + mode + ", cert: " + cert.string() + ", key: " + key.string() +
           "}\n";
  }
};

// alice/secret hashed with SHA-512-crypt; carol/plainpw in plain text (for CRAM-MD5).
fs::path make_htpasswd(const fs::path& dir) {
  std::string hash;
  if (run_shell("openssl passwd -6 secret", hash) != 0) throw std::runtime_error("openssl passwd");
  while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r'))
    hash.pop_back();
  fs::path p = dir / "users.htpasswd";
  write_file(p, "alice:" + hash + "\ncarol:plainpw\n");
  return p;
}

std::string python() {
  return "python3 " + (data_dir() / "tls_client.py").string();
}

}  // namespace

// ------------------------------------------------------------------ golden transcripts

TEST(SmtpTranscript, Basic) {
  sluice_server s(base);
  EXPECT_EQ(transcript(s, "basic.txt"), "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(m[0].find("\r\n.a line that starts with a dot\r\n"), std::string::npos) << m[0];
}

TEST(SmtpTranscript, CommandsSequenceAndSyntax) {
  sluice_server s(base + "    max_errors: 50\n");
  EXPECT_EQ(transcript(s, "commands.txt"), "");
}

// HELP (RFC 5321 §4.1.1.8) names only the commands this listener's configuration accepts.
TEST(SmtpTranscript, HelpListsOnlyWhatThisListenerAccepts) {
  const std::string core = " MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP";
  const auto help = [](const sluice_server& s, const std::string& greeting,
                       const std::string& text) {
    return run_transcript_text(
        s.endpoints()[0],
        "S: 220 mx.test " + greeting + " Sluice ready\nC: HELP\nS: 214 2.0.0 " + text + "\n");
  };
  {
    sluice_server s(base);
    EXPECT_EQ(help(s, "ESMTP", "Commands: EHLO HELO" + core), "");
  }
  {
    sluice_server s(base + "    mode: lmtp\n");
    EXPECT_EQ(help(s, "LMTP", "Commands: LHLO" + core), "");
  }
  {
    sluice_server s(base + "    auth: {mode: accept-any, allow_insecure: true}\n" +
                    "    xclient_trusted: [\"127.0.0.0/8\"]\n");
    EXPECT_EQ(help(s, "ESMTP", "Commands: EHLO HELO" + core + " AUTH XCLIENT"), "");
  }
  {
    cert_files certs;
    sluice_server s(base + certs.yaml("starttls"));
    EXPECT_EQ(help(s, "ESMTP", "Commands: EHLO HELO" + core + " STARTTLS"), "");
  }
}

TEST(SmtpTranscript, Pipelining) {
  sluice_server s(base);
  EXPECT_EQ(transcript(s, "pipelining.txt"), "");
  EXPECT_EQ(s.wait_messages(2).size(), 2u);
}

TEST(SmtpTranscript, PipelinedRepliesComeInOneWrite) {
  sluice_server s(base);
  client c(s.endpoints()[0]);
  ASSERT_TRUE(c.read_reply());
  c.send("EHLO a.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nNOOP\r\n");
  // All four replies must already be in the first segment we receive.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  char buf[4096];
  ssize_t n = ::recv(c.fd(), buf, sizeof buf, MSG_DONTWAIT);
  ASSERT_GT(n, 0);
  std::string got(buf, static_cast<std::size_t>(n));
  EXPECT_NE(got.find("250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"), std::string::npos) << got;
}

TEST(SmtpTranscript, SmugglingDoesNotEndData) {
  sluice_server s(base);
  EXPECT_EQ(transcript(s, "smuggling.txt"), "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(s.messages().size(), 1u);  // the smuggled message never became one
  EXPECT_NE(m[0].find("first\n.\nMAIL FROM:<evil@example.com>\r\n"), std::string::npos);
  EXPECT_NE(m[0].find("fifth\r\n"), std::string::npos);
  EXPECT_EQ(m[0].find("victim@example.com>\r\nReturn-Path"), std::string::npos);
}

TEST(SmtpTranscript, Chunking) {
  sluice_server s(base);
  EXPECT_EQ(transcript(s, "bdat.txt"), "");
  auto m = s.wait_messages(2);
  ASSERT_EQ(m.size(), 2u);
  // BDAT data is taken literally: no dot-unstuffing, no terminator.
  EXPECT_NE(m[0].find("Subject: chunked\r\n"), std::string::npos);
  EXPECT_NE(m[0].find("\r\n.xyz\r\n.\r\n"), std::string::npos) << m[0];
}

TEST(SmtpTranscript, Smtputf8) {
  sluice_server s(base);
  EXPECT_EQ(transcript(s, "smtputf8.txt"), "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("with UTF8SMTP"), std::string::npos) << m[0];
}

// RFC 6531 §3.7.3: LMTP with SMTPUTF8 is UTF8LMTP in the trace.
TEST(SmtpTranscript, LmtpSmtputf8IsUtf8Lmtp) {
  sluice_server s(base + "    mode: lmtp\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: LHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\n"
                                "S: 250-*\nS: 250-*\nS: 250-*\nS: 250 *\n"
                                "C: MAIL FROM:<a@example.com> SMTPUTF8\nS: 250 2.1.0 Ok\n"
                                "C: RCPT TO:<b@example.com>\nS: 250 2.1.5 Ok\n"
                                "C: DATA\nS: 354*\nC: Subject: u\nC: \nC: x\nC: .\n"
                                "S: 250 2.0.0*\nC: QUIT\nS: 221*\n"),
            "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("with UTF8LMTP id"), std::string::npos) << m[0];
}

TEST(SmtpTranscript, LmtpRepliesPerRecipient) {
  sluice_server s(base + "    mode: lmtp\n");
  EXPECT_EQ(transcript(s, "lmtp.txt"), "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("with LMTP"), std::string::npos);
}

TEST(SmtpTranscript, RecipientLimit) {
  sluice_server s(base + "    max_recipients: 2\n");
  EXPECT_EQ(transcript(s, "recipients.txt"), "");
}

TEST(SmtpTranscript, TooManyErrors) {
  sluice_server s(base + "    max_errors: 3\n");
  EXPECT_EQ(transcript(s, "errors.txt"), "");
}

// ------------------------------------------------------------------ headers

TEST(SmtpHeaders, TraceFieldsMessageIdAndBcc) {
  sluice_server s(base);
  client c(s.endpoints()[0]);
  ASSERT_TRUE(c.read_reply());
  c.send(
      "EHLO client.test\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n"
      "RCPT TO:<Hidden@Example.com>\r\nRCPT TO:<kept@example.com>\r\nDATA\r\n");
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(c.read_reply());
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  ASSERT_TRUE(r->starts_with("354")) << *r;
  c.send(
      "From: alice@example.com\r\nTo: Bob <bob@example.com>\r\nBcc: kept@example.com\r\n"
      "Subject: bcc\r\n\r\nbody\r\n.\r\n");
  r = c.read_reply();
  ASSERT_TRUE(r && r->starts_with("250 2.0.0 Ok: queued as ")) << r.value_or("EOF");
  std::string id = r->substr(std::string("250 2.0.0 Ok: queued as ").size());
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  const std::string msg = unfold(m[0]);
  EXPECT_TRUE(msg.starts_with("Return-Path: <alice@example.com>\r\nReceived: from client.test "))
      << msg;
  EXPECT_NE(msg.find("by mx.test (Sluice) with ESMTP id " + id), std::string::npos) << msg;
  EXPECT_NE(msg.find("Message-ID: <" + id + "@mx.test>"), std::string::npos) << msg;
  // The existing Bcc keeps its address; the missing recipient is added (Mailpit drops it).
  EXPECT_NE(msg.find("Bcc: kept@example.com, Hidden@Example.com"), std::string::npos) << msg;
  EXPECT_EQ(count(msg, "Bcc:"), 1u);
}

// EHLO, one MAIL and RCPT, DATA with `data` (CRLF lines, without the final dot); the reply.
std::string send_data(const sluice_server& s, const std::string& data) {
  client c(s.endpoints()[0]);
  EXPECT_TRUE(c.read_reply());
  c.send("EHLO client.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
  for (int i = 0; i < 3; ++i)
    EXPECT_TRUE(c.read_reply());
  auto r = c.read_reply();
  EXPECT_TRUE(r && r->starts_with("354")) << r.value_or("EOF");
  c.send(data + ".\r\n");
  r = c.read_reply();
  c.send("QUIT\r\n");
  return r.value_or("EOF");
}

// RFC 5322 §2.1: content whose first line is not a header field is all body; the trace and
// added fields go before it, with the empty line (they were appended after the text).
TEST(SmtpHeaders, ContentWithoutAHeaderSectionKeepsItsBody) {
  sluice_server s(base);
  ASSERT_TRUE(send_data(s, "hello world\r\nsecond line\r\n").starts_with("250 "));
  // BDAT content without any line end.
  client c(s.endpoints()[0]);
  ASSERT_TRUE(c.read_reply());
  std::optional<std::string> r;
  c.send("EHLO client.test\r\n");
  ASSERT_TRUE(c.read_reply());
  c.send("MAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nBDAT 2 LAST\r\nhi");
  for (int i = 0; i < 3; ++i) {
    r = c.read_reply();
    ASSERT_TRUE(r && r->starts_with("250")) << r.value_or("EOF");
  }
  auto m = s.wait_messages(2);
  ASSERT_EQ(m.size(), 2u);
  for (const auto& [msg, body] : {std::pair{m[0], std::string("hello world\r\nsecond line\r\n")},
                                  std::pair{m[1], std::string("hi")}}) {
    ASSERT_TRUE(msg.ends_with("\r\n\r\n" + body)) << msg;
    const std::string head = msg.substr(0, msg.size() - body.size());
    EXPECT_NE(head.find("\r\nMessage-ID: <"), std::string::npos) << msg;
    EXPECT_NE(head.find("\r\nBcc: b@example.com\r\n"), std::string::npos) << msg;
    EXPECT_EQ(head.find("\r\n\r\n"), head.size() - 4) << msg;  // one empty line, at the end
    for (std::size_t i = 0; i < head.size(); ++i) {
      if (head[i] == '\n') EXPECT_TRUE(i > 0 && head[i - 1] == '\r') << "bare LF at " << i;
    }
  }
}

// Mailpit's --smtp-strict-rfc-headers: <CR><CR><LF> in the header section is refused; the
// same bytes in the body, or with the key off, are accepted and kept byte for byte.
TEST(SmtpHeaders, BareCrInTheHeaderIsRefusedOnlyWhenConfigured) {
  const auto& send = send_data;
  const std::string crcrlf = "Subject: outlook\r\r\nTo: b@example.com\r\n\r\nbody\r\n";
  const std::string lone_cr = "Subject: a\rb\r\n\r\nbody\r\n";
  const std::string in_body = "Subject: fine\r\n\r\nbody\r\r\nmore\r\n";
  {
    sluice_server s(base + "    reject_bare_cr_in_headers: true\n");
    EXPECT_EQ(send(s, crcrlf), "550 5.6.0 Message header has a CR not followed by LF");
    EXPECT_EQ(send(s, lone_cr), "550 5.6.0 Message header has a CR not followed by LF");
    EXPECT_TRUE(send(s, in_body).starts_with("250 2.0.0 Ok: queued as "));
    auto m = s.wait_messages(1);
    ASSERT_EQ(m.size(), 1u);
    EXPECT_NE(m[0].find("Subject: fine\r\n"), std::string::npos) << m[0];
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(s.messages().size(), 1u);
  }
  sluice_server lenient(base);
  EXPECT_TRUE(send(lenient, crcrlf).starts_with("250 2.0.0 Ok: queued as "));
  auto m = lenient.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(m[0].find("Subject: outlook\r\r\nTo: b@example.com\r\n"), std::string::npos) << m[0];
}

TEST(SmtpHeaders, ReceivedNamesTheSingleRecipientAndKeepsMessageId) {
  sluice_server s(base);
  EXPECT_EQ(
      run_transcript_text(s.endpoints()[0],
                          "S: 220*\nC: HELO c.test\nC: MAIL FROM:<>\nC: RCPT TO:<bob@example.com>\n"
                          "C: DATA\nS: 250 mx.test\nS: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\n"
                          "C: Message-ID: <own@id>\nC: To: bob@example.com\nC:\nC: x\nC: .\n"
                          "S: 250 2.0.0 Ok: queued as *\n"),
      "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("with SMTP id "), std::string::npos) << m[0];
  EXPECT_NE(unfold(m[0]).find(" for <bob@example.com>; "), std::string::npos) << m[0];
  EXPECT_EQ(count(m[0], "Message-ID:"), 1u);
  EXPECT_EQ(m[0].find("Bcc:"), std::string::npos);
  EXPECT_TRUE(m[0].starts_with("Return-Path: <>\r\n"));
}

// ------------------------------------------------------------------ limits

TEST(SmtpLimits, MessageSize) {
  sluice_server s(base + "    max_message_size: 1KB\n");
  std::string big(3000, 'x');
  std::string body;
  for (int i = 0; i < 3; ++i)
    body += std::string(900, 'y') + "\r\n";
  EXPECT_EQ(
      run_transcript_text(s.endpoints()[0],
                          "S: 220*\nC: EHLO c.test\nS: 250-mx.test*\nS: 250-PIPELINING\n"
                          "S: 250-SIZE 1024\nS: 250-8BITMIME\nS: 250-SMTPUTF8\nS: 250-CHUNKING\n"
                          "S: 250 ENHANCEDSTATUSCODES\n"
                          "C: MAIL FROM:<a@example.com> SIZE=2000\n"
                          "S: 552 5.3.4 Message size exceeds fixed maximum message size\n"
                          "C: MAIL FROM:<a@example.com>\nC: RCPT TO:<b@example.com>\nC: DATA\n"
                          "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\nR: " +
                              std::string(900, 'y') + "\\r\\n" + std::string(900, 'y') +
                              "\\r\\n\nC: .\n"
                              "S: 552 5.3.4 Message size exceeds fixed maximum message size\n"
                              "C: MAIL FROM:<a@example.com>\nC: RCPT TO:<b@example.com>\n"
                              "C: BDAT 2000 LAST\nR: " +
                              big.substr(0, 2000) +
                              "\nS: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\n"
                              "S: 552 5.3.4 Message size exceeds fixed maximum message size\n"
                              "C: NOOP\nS: 250 2.0.0 Ok\n"),
      "");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(s.messages().empty());
}

TEST(SmtpLimits, LineLength) {
  sluice_server s(base + "    max_line_length: 512\n    max_data_line_length: 1000\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: NOOP " + std::string(600, 'a') +
                                    "\nS: 500 5.5.2 Line too long\nC: HELO c.test\nS: 250 mx.test\n"
                                    "C: MAIL FROM:<a@example.com>\nC: RCPT TO:<b@example.com>\n"
                                    "C: DATA\nS: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\nC: " +
                                    std::string(1200, 'z') +
                                    "\nC: .\nS: 500 5.5.2 Line too long in message data\n"
                                    "C: NOOP\nS: 250 2.0.0 Ok\n"),
            "");
  // RFC 5321 §4.5.3.1.6: a 1,000-octet line (CRLF included) fits, even when the client
  // doubled its leading dot for transparency (1,001 octets on the wire).
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: HELO c.test\nS: 250 mx.test\n"
                                "C: MAIL FROM:<a@example.com>\nC: RCPT TO:<b@example.com>\n"
                                "C: DATA\nS: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\n"
                                "C: Subject: dots\nC: \nC: .." +
                                    std::string(997, 'a') + "\nC: " + std::string(998, 'b') +
                                    "\nC: .\nS: 250 2.0.0 Ok*\n"),
            "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(m[0].find("\r\n." + std::string(997, 'a') + "\r\n"), std::string::npos);
}

TEST(SmtpLimits, IdleTimeout) {
  sluice_server s(base + "    idle_timeout: 1s\n");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: HELO c.test\nS: 250 mx.test\n"
                                "S: 421 4.4.2 mx.test Error: timeout exceeded\nS: <closed>\n"),
            "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// The idle timeout inside an AUTH exchange gets its 421 like one between commands.
TEST(SmtpLimits, IdleTimeoutDuringAuth) {
  sluice_server s(base +
                  "    idle_timeout: 1s\n    auth: {mode: accept-any, allow_insecure: true}\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: EHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\n"
                                "S: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\n"
                                "S: 250 AUTH PLAIN LOGIN CRAM-MD5\n"
                                "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\n"
                                "S: 421 4.4.2 mx.test Error: timeout exceeded\nS: <closed>\n"),
            "");
}

TEST(SmtpLimits, SessionTimeout) {
  sluice_server s(base + "    session_timeout: 2s\n");
  client c(s.endpoints()[0]);
  ASSERT_TRUE(c.read_reply());
  std::optional<std::string> last;
  // Keep the session busy (never idle): it still ends at the total limit.
  for (int i = 0; i < 40; ++i) {
    try {
      c.send_line("NOOP");
    } catch (const std::exception&) {
      break;
    }
    last = c.read_reply();
    if (!last || last->starts_with("421")) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, "421 4.4.2 mx.test Error: session time limit exceeded");
}

TEST(SmtpLimits, MaxConnections) {
  sluice_server s(base + "    max_connections: 1\n");
  client first(s.endpoints()[0]);
  ASSERT_TRUE(first.read_reply());
  client second(s.endpoints()[0]);
  auto r = second.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "421 4.7.0 mx.test Too many connections, try again later");
  EXPECT_TRUE(second.closed_by_peer());
  first.send_line("NOOP");
  EXPECT_EQ(first.read_reply().value_or(""), "250 2.0.0 Ok");
}

// ------------------------------------------------------------------ pipeline verdicts

TEST(SmtpVerdicts, RejectAndTempfailBecomeReplies) {
  sluice_server s(base,
                  "      - plugin: test_verdict\n        name: rejecter\n        verdict: reject\n "
                  "       when_rcpt: "
                  "reject@example.com\n"
                  "      - plugin: test_verdict\n        name: deferrer\n        verdict: "
                  "tempfail\n        when_rcpt: "
                  "later@example.com\n");
  auto send = [&](const std::string& rcpt) {
    return run_transcript_text(
        s.endpoints()[0], "S: 220*\nC: HELO c.test\nC: MAIL FROM:<a@example.com>\nC: RCPT TO:<" +
                              rcpt +
                              ">\nC: DATA\nS: 250 mx.test\nS: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\n"
                              "S: 354*\nC: Subject: v\nC:\nC: .\nS: *\n");
  };
  EXPECT_EQ(
      run_transcript_text(
          s.endpoints()[0],
          "S: 220*\nC: HELO c.test\nC: MAIL FROM:<a@example.com>\nC: RCPT TO:<reject@example.com>\n"
          "C: DATA\nS: 250 mx.test\nS: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\nC: Subject: v\nC:\n"
          "C: .\nS: 550 5.7.1 Rejected by test\n"
          "C: MAIL FROM:<a@example.com>\nC: RCPT TO:<later@example.com>\nC: DATA\n"
          "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\nC: Subject: v\nC:\nC: .\n"
          "S: 451 4.7.1 Try again later (test)\n"),
      "");
  EXPECT_EQ(send("fine@example.com"), "");
  EXPECT_EQ(s.wait_messages(1).size(), 1u);
}

// ------------------------------------------------------------------ unix sockets

TEST(SmtpUnix, SocketModeStaleAndLive) {
  fs::path dir = make_temp_dir("sluice-smtp-unix");
  fs::path sock = dir / "smtp.sock";
  // A stale socket file (nobody listens) is replaced.
  {
    std::string out;
    ASSERT_EQ(run_shell("python3 -c \"import socket; s=socket.socket(socket.AF_UNIX); s.bind('" +
                            sock.string() + "')\"",
                        out),
              0)
        << out;
    ASSERT_TRUE(fs::is_socket(sock));
  }
  fs::path srvdir = make_temp_dir("sluice-smtp-unix-srv");
  sluice_server s(
      "    hostname: mx.test\n    listen: [\"127.0.0.1:0\", \"unix:" + sock.string() + ":600\"]\n",
      "", srvdir);
  ASSERT_EQ(s.endpoints().size(), 2u);
  EXPECT_EQ(s.endpoints()[1], "unix:" + sock.string());
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(run_transcript(s.endpoints()[1], data_dir() / "basic.txt"), "");
  EXPECT_EQ(s.wait_messages(1).size(), 1u);
  // A live socket is refused with a clear error.
  try {
    sluice_server second("    hostname: mx.test\n    listen: [\"unix:" + sock.string() + "\"]\n");
    ADD_FAILURE() << "a second server took over a live socket";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("another server is listening"), std::string::npos)
        << e.what();
  }
  s.stop();
  EXPECT_FALSE(fs::exists(sock));  // stop() removes the socket file
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// ------------------------------------------------------------------ XCLIENT / PROXY

TEST(SmtpXclient, TrustedClientChangesIdentityAndGetsNewGreeting) {
  sluice_server s(base + "    xclient_trusted: [127.0.0.0/8]\n");
  EXPECT_EQ(
      run_transcript_text(
          s.endpoints()[0],
          "S: 220*\nC: EHLO proxy.test\nS: 250-mx.test*\nS: 250-PIPELINING\nS: 250-SIZE*\n"
          "S: 250-8BITMIME\nS: 250-SMTPUTF8\nS: 250-CHUNKING\nS: 250-ENHANCEDSTATUSCODES\n"
          "S: 250 XCLIENT ADDR PORT HELO NAME PROTO LOGIN\n"
          "C: XCLIENT ADDR=192.0.2.7 PORT=4242 NAME=real.example HELO=real+2Dhelo.example\n"
          "S: 220 mx.test ESMTP Sluice ready\n"
          "C: EHLO again.test\nS: 250-mx.test*\nS: 250-PIPELINING\nS: 250-SIZE*\n"
          "S: 250-8BITMIME\nS: 250-SMTPUTF8\nS: 250-CHUNKING\nS: 250-ENHANCEDSTATUSCODES\n"
          "S: 250 XCLIENT ADDR PORT HELO NAME PROTO LOGIN\n"
          "C: MAIL FROM:<a@example.com>\nC: RCPT TO:<b@example.com>\nC: DATA\n"
          "S: 250 2.1.0 Ok\nS: 250 2.1.5 Ok\nS: 354*\nC: Subject: x\nC:\nC: .\nS: 250 2.0.0*\n"),
      "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("Received: from real-helo.example (real.example [192.0.2.7])"),
            std::string::npos)
      << m[0];
}

// XCLIENT HELO and NAME reach the Received field: the rule of EHLO's argument applies.
TEST(SmtpXclient, HeloAndNameMustBeDomainsOrLiterals) {
  sluice_server s(base + "    xclient_trusted: [127.0.0.0/8]\n");
  const std::string ehlo =
      "S: 220*\nC: EHLO proxy.test\nS: 250-mx.test*\nS: 250-PIPELINING\nS: 250-SIZE*\n"
      "S: 250-8BITMIME\nS: 250-SMTPUTF8\nS: 250-CHUNKING\nS: 250-ENHANCEDSTATUSCODES\n"
      "S: 250 XCLIENT ADDR PORT HELO NAME PROTO LOGIN\n";
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                ehlo + "C: XCLIENT HELO=x+3Bdate\n"
                                       "S: 501 5.5.4 Bad XCLIENT syntax: bad HELO value\n"
                                       "C: XCLIENT HELO=a+28b\n"
                                       "S: 501 5.5.4 Bad XCLIENT syntax: bad HELO value\n"
                                       "C: XCLIENT NAME=a+28b\n"
                                       "S: 501 5.5.4 Bad XCLIENT syntax: bad NAME value\n"
                                       "C: XCLIENT HELO=[UNAVAILABLE] NAME=[TEMPUNAVAIL]\n"
                                       "S: 220 mx.test ESMTP Sluice ready\n"),
            "");
}

TEST(SmtpXclient, RefusedFromUntrustedAddress) {
  sluice_server s(base + "    xclient_trusted: [192.0.2.0/24]\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: EHLO c.test\nS: 250-mx.test*\nS: 250-PIPELINING\n"
                                "S: 250-SIZE*\nS: 250-8BITMIME\nS: 250-SMTPUTF8\nS: 250-CHUNKING\n"
                                "S: 250 ENHANCEDSTATUSCODES\nC: XCLIENT ADDR=192.0.2.7\n"
                                "S: 550 5.7.0 Error: insufficient authorization\n"),
            "");
}

namespace {
std::string proxy_v2_tcp4() {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += '\x21';  // version 2, PROXY
  h += '\x11';  // AF_INET, STREAM
  h += std::string("\x00\x0c", 2);
  h += std::string("\xcb\x00\x71\x05", 4);  // 203.0.113.5
  h += std::string("\x7f\x00\x00\x01", 4);  // 127.0.0.1
  h += std::string("\x30\x39", 2);          // 12345
  h += std::string("\x00\x19", 2);          // 25
  return h;
}
// PROXY v2 for a connection the proxy accepted on a unix socket: AF_UNIX, two 108-byte paths.
std::string proxy_v2_unix() {
  std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
  h += '\x21';                      // version 2, PROXY
  h += '\x31';                      // AF_UNIX, STREAM
  h += std::string("\x00\xd8", 2);  // 216 bytes of addresses
  std::string src = "/run/app/client.sock", dst = "/run/proxy/smtp.sock";
  src.resize(108, '\0');
  dst.resize(108, '\0');
  return h + src + dst;
}
std::string send_one(client& c) {
  c.send("HELO c.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
  for (int i = 0; i < 4; ++i) {
    auto r = c.read_reply();
    if (!r) return "EOF";
  }
  c.send("Subject: proxied\r\n\r\n.\r\n");
  return c.read_reply().value_or("EOF");
}
}  // namespace

TEST(SmtpProxy, V1AndV2HeadersSetTheClientAddress) {
  sluice_server s(base + "    proxy_protocol: true\n");
  {
    client c(s.endpoints()[0]);
    c.send("PROXY TCP4 198.51.100.9 127.0.0.1 5555 25\r\n");
    EXPECT_EQ(c.read_reply().value_or(""), "220 mx.test ESMTP Sluice ready");
    EXPECT_TRUE(send_one(c).starts_with("250 2.0.0"));
  }
  {
    client c(s.endpoints()[0]);
    c.send(proxy_v2_tcp4());
    EXPECT_EQ(c.read_reply().value_or(""), "220 mx.test ESMTP Sluice ready");
    EXPECT_TRUE(send_one(c).starts_with("250 2.0.0"));
  }
  {
    client c(s.endpoints()[0]);  // no header: dropped without a greeting
    c.send("EHLO c.test\r\n");
    EXPECT_FALSE(c.read_reply());
  }
  {
    // A dual-stack proxy names an IPv4 client in its v4-mapped IPv6 form: it is that client.
    client c(s.endpoints()[0]);
    c.send("PROXY TCP6 ::ffff:198.51.100.10 ::1 5555 25\r\n");
    EXPECT_EQ(c.read_reply().value_or(""), "220 mx.test ESMTP Sluice ready");
    EXPECT_TRUE(send_one(c).starts_with("250 2.0.0"));
  }
  auto m = s.wait_messages(3);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_NE(m[0].find("[198.51.100.9]"), std::string::npos) << m[0];
  EXPECT_NE(m[1].find("[203.0.113.5]"), std::string::npos) << m[1];
  EXPECT_NE(m[2].find("[198.51.100.10]"), std::string::npos) << m[2];
  EXPECT_EQ(m[2].find("ffff"), std::string::npos) << m[2];
}

TEST(SmtpXclient, AV4MappedAddressIsTheIpv4Client) {
  sluice_server s(base + "    xclient_trusted: [127.0.0.0/8]\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: HELO proxy.test\nS: 250 mx.test\n"
                                "C: XCLIENT ADDR=IPV6:::ffff:192.0.2.8 NAME=[UNAVAILABLE]\n"
                                "S: 220 mx.test ESMTP Sluice ready\n"
                                "C: HELO again.test\nS: 250 mx.test\n"
                                "C: MAIL FROM:<a@example.com>\nS: 250 2.1.0 Ok\n"
                                "C: RCPT TO:<b@example.com>\nS: 250 2.1.5 Ok\n"
                                "C: DATA\nS: 354*\nC: Subject: x\nC:\nC: .\nS: 250 2.0.0*\n"),
            "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("[192.0.2.8]"), std::string::npos) << m[0];
  EXPECT_EQ(m[0].find("ffff"), std::string::npos) << m[0];
}

TEST(SmtpProxy, V2UnixSourceIsALocalClient) {
  sluice_server s(base + "    proxy_protocol: true\n");
  client c(s.endpoints()[0]);
  c.send(proxy_v2_unix());
  EXPECT_EQ(c.read_reply().value_or(""), "220 mx.test ESMTP Sluice ready");
  EXPECT_TRUE(send_one(c).starts_with("250 2.0.0"));
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0].find("[/run/app"), std::string::npos) << m[0];  // a path is no IP literal
}

TEST(SmtpProxy, UntrustedPeerIsDropped) {
  sluice_server s(base + "    proxy_protocol: true\n    proxy_trusted: [192.0.2.0/24]\n");
  client c(s.endpoints()[0]);
  c.send("PROXY TCP4 198.51.100.9 127.0.0.1 5555 25\r\n");
  EXPECT_FALSE(c.read_reply());
}

// ------------------------------------------------------------------ AUTH

TEST(SmtpAuth, RequiredPlainAndLoginAgainstHtpasswd) {
  fs::path dir = make_temp_dir("sluice-smtp-auth");
  fs::path users = make_htpasswd(dir);
  sluice_server s(base + "    auth: {mode: required, htpasswd: " + users.string() +
                  ", allow_insecure: true}\n");
  EXPECT_EQ(transcript(s, "auth_plain.txt"), "");
  EXPECT_EQ(transcript(s, "auth_login.txt"), "");
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("with ESMTPA"), std::string::npos) << m[0];
  EXPECT_EQ(s.log().find("secret"), std::string::npos);  // credentials are never logged
  fs::remove_all(dir);
}

TEST(SmtpAuth, CramMd5WithPlainTextEntry) {
  fs::path dir = make_temp_dir("sluice-smtp-cram");
  fs::path users = make_htpasswd(dir);
  sluice_server s(base + "    auth: {mode: optional, htpasswd: " + users.string() +
                  ", allow_insecure: true}\n");
  auto attempt = [&](const std::string& user, const std::string& secret) {
    client c(s.endpoints()[0]);
    c.read_reply();
    c.send_line("EHLO c.test");
    c.read_reply();
    c.send_line("AUTH CRAM-MD5");
    auto r = c.read_reply();
    if (!r || !r->starts_with("334 ")) return std::string("bad challenge");
    auto challenge = sluice::base64_decode(r->substr(4));
    if (!challenge) return std::string("undecodable challenge");
    c.send_line(sluice::base64_encode(user + " " + sluice::smtp::hmac_md5_hex(secret, *challenge)));
    return c.read_reply().value_or("EOF");
  };
  EXPECT_EQ(attempt("carol", "plainpw"), "235 2.7.0 Authentication successful");
  EXPECT_EQ(attempt("carol", "wrong"), "535 5.7.8 Authentication credentials invalid");
  // alice's entry is hashed: CRAM-MD5 cannot work for her.
  EXPECT_EQ(attempt("alice", "secret"), "535 5.7.8 Authentication credentials invalid");
  fs::remove_all(dir);
}

TEST(SmtpAuth, OptionalAcceptsAnonymousMailButRefusesWrongCredentials) {
  fs::path dir = make_temp_dir("sluice-smtp-optional");
  fs::path users = make_htpasswd(dir);
  sluice_server s(base + "    auth: {mode: optional, htpasswd: " + users.string() +
                  ", allow_insecure: true}\n");
  // alice:secret in AUTH PLAIN is AGFsaWNlAHNlY3JldA==; alice:wrong is AGFsaWNlAHdyb25n.
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: EHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\n"
                                "S: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250 AUTH*\n"
                                "C: MAIL FROM:<anon@example.com>\nS: 250 2.1.0 Ok\n"
                                "C: RSET\nS: 250*\n"
                                "C: AUTH PLAIN AGFsaWNlAHdyb25n\nS: 535 5.7.8*\n"
                                "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 235 2.7.0*\n"),
            "");
  fs::remove_all(dir);
}

TEST(SmtpAuth, UsersStringAlongsideTheFile) {
  fs::path dir = make_temp_dir("sluice-smtp-users");
  fs::path users = make_htpasswd(dir);
  // auth.users (Mailpit's MP_SMTP_AUTH form) adds to the file's entries.
  sluice_server s(base + "    auth: {mode: required, htpasswd: " + users.string() +
                  ", users: \"dave:davepw\", allow_insecure: true}\n");
  // dave:davepw is AGRhdmUAZGF2ZXB3, alice:secret AGFsaWNlAHNlY3JldA==, dave:x AGRhdmUAeA==.
  auto login = [&](const std::string& b64) {
    client c(s.endpoints()[0]);
    c.read_reply();
    c.send_line("EHLO c.test");
    c.read_reply();
    c.send_line("AUTH PLAIN " + b64);
    return c.read_reply().value_or("EOF");
  };
  EXPECT_EQ(login("AGRhdmUAZGF2ZXB3"), "235 2.7.0 Authentication successful");
  EXPECT_EQ(login("AGFsaWNlAHNlY3JldA=="), "235 2.7.0 Authentication successful");
  EXPECT_EQ(login("AGRhdmUAeA=="), "535 5.7.8 Authentication credentials invalid");
  // Without a file, users alone satisfy mode required.
  sluice_server only(base +
                     "    auth: {mode: required, users: \"dave:davepw\", allow_insecure: "
                     "true}\n");
  client c(only.endpoints()[0]);
  c.read_reply();
  c.send_line("EHLO c.test");
  c.read_reply();
  c.send_line("AUTH PLAIN AGRhdmUAZGF2ZXB3");
  EXPECT_EQ(c.read_reply().value_or("EOF"), "235 2.7.0 Authentication successful");
  fs::remove_all(dir);
}

TEST(SmtpRcpt, AllowedRecipientsRefuseOthersWithMailpitsReply) {
  sluice_server s(base + "    allowed_recipients: ['@example\\.org$', '^qa@']\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: HELO c.test\nS: 250*\n"
                                "C: MAIL FROM:<a@example.com>\nS: 250 2.1.0 Ok\n"
                                "C: RCPT TO:<x@EXAMPLE.org>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<qa@other.test>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<x@example.org.evil>\n"
                                "S: 550 5.1.0 Requested action not taken: mailbox unavailable\n"),
            "");
}

TEST(SmtpRcpt, BadAllowedRecipientsPatternIsAConfigError) {
  fs::path dir = make_temp_dir("sluice-smtp-rcpt-cfg");
  write_file(dir / "sluice.yaml",
             "listeners:\n"
             "  - name: smtp\n"
             "    plugin: smtp\n"
             "    allowed_recipients: ['(unclosed']\n");
  std::string out;
  int rc = run_shell(
      std::string(SLUICE_BINARY) + " check-config -c " + (dir / "sluice.yaml").string() + " 2>&1",
      out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("sluice.yaml:4:26: listeners[0].allowed_recipients[0]: not a regular "
                     "expression"),
            std::string::npos)
      << out;
}

TEST(SmtpRcpt, IgnoreRejectedRecipientsAnswers250AndDropsThem) {
  sluice_server s(base +
                  "    allowed_recipients: ['@example\\.org$']\n"
                  "    ignore_rejected_recipients: true\n"
                  "    max_recipients: 3\n");
  // A dropped recipient gets 250 and counts towards max_recipients; a transaction left with
  // dropped recipients only is read to its end and answered like Mailpit, without an ID.
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: HELO c.test\nS: 250*\n"
                                "C: MAIL FROM:<a@example.com>\nS: 250 2.1.0 Ok\n"
                                "C: RCPT TO:<spy@elsewhere.test>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<b@other.test>\nS: 250 2.1.5 Ok\n"
                                "C: DATA\nS: 354*\n"
                                "C: Subject: dropped\nC: \nC: body\nC: .\n"
                                "S: 250 2.0.0 Ok: queued\n"
                                "C: MAIL FROM:<a@example.com>\nS: 250 2.1.0 Ok\n"
                                "C: RCPT TO:<x@example.org>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<c@other.test>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<d@other.test>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<e@other.test>\nS: 452 4.5.3 Too many recipients\n"
                                "C: RSET\nS: 250*\n"
                                "C: QUIT\nS: 221*\n"),
            "");
  // Dropped ones first: an accepted recipient still finds the limit reached.
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: HELO c.test\nS: 250*\n"
                                "C: MAIL FROM:<a@example.com>\nS: 250 2.1.0 Ok\n"
                                "C: RCPT TO:<c@other.test>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<d@other.test>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<x@example.org>\nS: 250 2.1.5 Ok\n"
                                "C: RCPT TO:<y@example.org>\nS: 452 4.5.3 Too many recipients\n"
                                "C: QUIT\nS: 221*\n"),
            "");
}

TEST(SmtpConfig, IgnoreRejectedRecipientsAndLabelAreChecked) {
  fs::path dir = make_temp_dir("sluice-smtp-ignore-cfg");
  auto check = [&](const std::string& keys) {
    write_file(
        dir / "sluice.yaml",
        "listeners:\n  - name: smtp\n    plugin: smtp\n    listen: [\"127.0.0.1:0\"]\n" + keys);
    std::string out;
    int rc = run_shell(
        std::string(SLUICE_BINARY) + " check-config -c " + (dir / "sluice.yaml").string() + " 2>&1",
        out);
    return std::make_pair(rc, out);
  };
  auto [rc1, out1] = check("    ignore_rejected_recipients: true\n");
  EXPECT_NE(rc1, 0);
  EXPECT_NE(out1.find("listeners[0].ignore_rejected_recipients: needs allowed_recipients"),
            std::string::npos)
      << out1;
  auto [rc2, out2] = check(
      "    mode: lmtp\n    allowed_recipients: ['@a\\.test$']\n"
      "    ignore_rejected_recipients: true\n");
  EXPECT_NE(rc2, 0);
  EXPECT_NE(out2.find("ignore_rejected_recipients: is not available in mode lmtp"),
            std::string::npos)
      << out2;
  auto [rc3, out3] = check("    label: \"two\\r\\nlines\"\n");
  EXPECT_NE(rc3, 0);
  EXPECT_NE(out3.find("sluice.yaml:5:12: listeners[0].label: expected 1 to 128 printable ASCII"),
            std::string::npos)
      << out3;
  auto [rc4, out4] = check("    label: \"QA box\"\n");
  EXPECT_EQ(rc4, 0) << out4;
  fs::remove_all(dir);
}

TEST(SmtpGreeting, LabelIsShownInTheBanner) {
  sluice_server s(base + "    label: \"QA box\"\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220 mx.test ESMTP Sluice (QA box) ready\nC: QUIT\nS: 221*\n"),
            "");
}

TEST(SmtpAuth, OffDoesNotAdvertiseOrAcceptAuth) {
  sluice_server s(base);
  const auto t = run_transcript_text(s.endpoints()[0],
                                     "S: 220*\nC: EHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\n"
                                     "S: 250-*\nS: 250-*\nS: 250-*\nS: 250 ENHANCEDSTATUSCODES\n"
                                     "C: AUTH PLAIN AGFsaWNlAHNlY3JldA==\nS: 5*\n");
  EXPECT_EQ(t, "");
}

TEST(SmtpAuth, AcceptAnyTakesAnyCredentials) {
  sluice_server s(base + "    auth: {mode: accept-any, allow_insecure: true}\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: EHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\n"
                                "S: 250-*\nS: 250-*\nS: 250-*\nS: 250 AUTH PLAIN LOGIN CRAM-MD5\n"
                                "C: MAIL FROM:<a@example.com>\nS: 250 2.1.0 Ok\nC: RSET\nS: 250*\n"
                                "C: AUTH PLAIN AHdob2V2ZXIAYW55dGhpbmc=\nS: 235 2.7.0*\n"),
            "");
}

TEST(SmtpAuth, AcceptAnyTakesAnEmptyPasswordAndALongTokenLikeMailpit) {
  sluice_server s(base + "    auth: {mode: accept-any, allow_insecure: true}\n");
  const std::string ehlo =
      "S: 220*\nC: EHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\n"
      "S: 250-*\nS: 250-*\nS: 250-*\nS: 250 AUTH PLAIN LOGIN CRAM-MD5\n";
  // "\0tim\0": no password at all.
  EXPECT_EQ(run_transcript_text(s.endpoints()[0], ehlo + "C: AUTH PLAIN AHRpbQA=\nS: 235 2.7.0*\n"),
            "");
  // A 400-octet password (an API token), over RFC 4616's 255.
  const std::string token(400, 'k');
  const std::string msg = sluice::base64_encode(std::string("\0tim\0", 5) + token);
  EXPECT_EQ(
      run_transcript_text(s.endpoints()[0], ehlo + "C: AUTH PLAIN " + msg + "\nS: 235 2.7.0*\n"),
      "");
}

// RFC 4954 §4 / RFC 4616 §2: a response after 334 may carry three 255-octet fields (1,024
// base64 characters, over the 1,000-octet command line limit); only a line over the SASL
// buffer (12,288 octets) fails with 500 5.5.6, and the session goes on.
TEST(SmtpAuth, ResponseLinesAreNotBoundByTheCommandLineLimit) {
  sluice_server s(base + "    auth: {mode: accept-any, allow_insecure: true}\n");
  const std::string ehlo =
      "S: 220*\nC: EHLO c.test\nS: 250-*\nS: 250-*\nS: 250-*\nS: 250-*\n"
      "S: 250-*\nS: 250-*\nS: 250-*\nS: 250 AUTH PLAIN LOGIN CRAM-MD5\n";
  const std::string f(255, 'x');
  const std::string longest = sluice::base64_encode(f + '\0' + f + '\0' + f);
  ASSERT_EQ(longest.size(), 1024u);
  EXPECT_EQ(run_transcript_text(s.endpoints()[0], ehlo + "C: AUTH PLAIN\nS: 334 \nC: " + longest +
                                                      "\nS: 235 2.7.0*\n"),
            "");
  const std::string too_long(12'288, 'A');
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                ehlo + "C: AUTH LOGIN\nS: 334 VXNlcm5hbWU6\nC: " + too_long +
                                    "\nS: 500 5.5.6 Authentication Exchange line is too long\n"
                                    "C: NOOP\nS: 250 2.0.0 Ok\n"),
            "");
}

// ------------------------------------------------------------------ TLS

TEST(SmtpTls, StarttlsRequiredBlocksMailUntilTls) {
  cert_files certs;
  sluice_server s(base + certs.yaml("starttls-required"));
  EXPECT_EQ(transcript(s, "starttls_required.txt"), "");
}

// Before TLS on a listener that requires it, AUTH would get 530: EHLO does not offer it.
TEST(SmtpTls, StarttlsRequiredOffersAuthOnlyAfterTls) {
  cert_files certs;
  sluice_server s(base + certs.yaml("starttls-required") + "    auth: {mode: accept-any}\n");
  EXPECT_EQ(run_transcript_text(s.endpoints()[0],
                                "S: 220*\nC: EHLO c.test\nS: 250-mx.test*\nS: 250-PIPELINING\n"
                                "S: 250-SIZE*\nS: 250-8BITMIME\nS: 250-SMTPUTF8\n"
                                "S: 250-CHUNKING\nS: 250-ENHANCEDSTATUSCODES\nS: 250 STARTTLS\n"
                                "C: QUIT\nS: 221*\n"),
            "");
}

TEST(SmtpTls, PlaintextPipelinedAfterStarttlsIsDiscarded) {
  cert_files certs;
  sluice_server s(base + certs.yaml("starttls"));
  std::string out;
  int rc = run_shell(python() + " injection 127.0.0.1 " + std::to_string(s.port()), out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("OK injection discarded"), std::string::npos) << out;
}

TEST(SmtpTls, AuthOnlyAfterStarttls) {
  cert_files certs;
  fs::path dir = make_temp_dir("sluice-smtp-tlsauth");
  fs::path users = make_htpasswd(dir);
  sluice_server s(base + certs.yaml("starttls") +
                  "    auth: {mode: optional, htpasswd: " + users.string() + "}\n");
  EXPECT_EQ(transcript(s, "auth_insecure.txt"), "");
  std::string out;
  int rc = run_shell(python() + " smtplib 127.0.0.1 " + std::to_string(s.port()), out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("OK starttls+auth TLSv1."), std::string::npos) << out;
  auto m = s.wait_messages(1);
  ASSERT_EQ(m.size(), 1u);
  EXPECT_NE(unfold(m[0]).find("with ESMTPSA (TLSv1."), std::string::npos) << m[0];
  fs::remove_all(dir);
}

// RFC 8446 §6.1: the session's TLS ends with close_notify, not a bare TCP close that a
// client cannot tell from a truncation.
TEST(SmtpTls, SessionsEndWithCloseNotify) {
  cert_files certs;
  const std::string script =
      "python3 " + (data_dir().parent_path() / "tls" / "close_notify.py").string();
  for (const char* mode : {"starttls", "implicit"}) {
    sluice_server s(base + certs.yaml(mode));
    std::string out;
    const char* client = std::string_view(mode) == "implicit" ? "smtps" : "starttls";
    int rc = run_shell(script + " " + client + " 127.0.0.1 " + std::to_string(s.port()), out);
    EXPECT_EQ(rc, 0) << mode << ": " << out;
    EXPECT_NE(out.find("OK close_notify after '221 "), std::string::npos) << out;
  }
}

TEST(SmtpTls, ImplicitTls) {
  cert_files certs;
  sluice_server s(base + certs.yaml("implicit"));
  std::string out;
  int rc = run_shell(python() + " implicit 127.0.0.1 " + std::to_string(s.port()), out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(s.wait_messages(1).size(), 1u);
  // TLS 1.1 is refused.
  rc = run_shell("timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(s.port()) +
                     " -tls1_1 </dev/null",
                 out);
  EXPECT_NE(rc, 0) << out;
  // TLS 1.2 without forward secrecy (static RSA) or with CBC is refused (RFC 9325 §4.1);
  // ECDHE with AES-GCM is taken.
  const std::string tls12 =
      "timeout 10 openssl s_client -connect 127.0.0.1:" + std::to_string(s.port()) +
      " -tls1_2 -cipher ";
  for (const char* weak : {"AES128-SHA", "AES256-GCM-SHA384", "ECDHE-RSA-AES128-SHA"}) {
    rc = run_shell(tls12 + weak + " </dev/null", out);
    EXPECT_NE(rc, 0) << weak << "\n" << out;
  }
  rc = run_shell(tls12 + "ECDHE-RSA-AES128-GCM-SHA256 </dev/null", out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("ECDHE-RSA-AES128-GCM-SHA256"), std::string::npos) << out;
}

// ------------------------------------------------------------------ real clients

TEST(SmtpClients, SwaksAndCurl) {
  sluice_server s(base);
  std::string port = std::to_string(s.port());
  std::string out;
  int rc = run_shell("timeout 30 swaks --server 127.0.0.1 --port " + port +
                         " --from alice@example.com --to bob@example.com --pipeline"
                         " --header 'Subject: swaks'",
                     out);
  EXPECT_EQ(rc, 0) << out;
  fs::path mail = s.dir() / "curl.eml";
  write_file(mail,
             "From: alice@example.com\r\nTo: carol@example.com\r\nSubject: curl\r\n\r\nhi\r\n");
  rc = run_shell("timeout 30 curl -sS --max-time 20 smtp://127.0.0.1:" + port +
                     " --mail-from alice@example.com --mail-rcpt carol@example.com --upload-file " +
                     mail.string(),
                 out);
  EXPECT_EQ(rc, 0) << out;
  auto m = s.wait_messages(2);
  ASSERT_EQ(m.size(), 2u);
  EXPECT_NE(m[0].find("Subject: swaks"), std::string::npos);
  EXPECT_NE(m[1].find("Subject: curl"), std::string::npos);
}

TEST(SmtpClients, SwaksStarttlsAuth) {
  cert_files certs;
  fs::path dir = make_temp_dir("sluice-smtp-swaks");
  fs::path users = make_htpasswd(dir);
  sluice_server s(base + certs.yaml("starttls-required") +
                  "    auth: {mode: required, htpasswd: " + users.string() + "}\n");
  std::string out;
  int rc = run_shell("timeout 30 swaks --server 127.0.0.1 --port " + std::to_string(s.port()) +
                         " --from alice@example.com --to bob@example.com -tls --auth LOGIN"
                         " --auth-user alice --auth-password secret",
                     out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(s.wait_messages(1).size(), 1u);
  fs::remove_all(dir);
}

// ------------------------------------------------------------------ drain

TEST(SmtpDrain, IdleSessionsAreToldBusyOnesFinishFirst) {
  sluice_server s(base, "      - plugin: test_verdict\n        delay: 1500ms\n");
  client idle(s.endpoints()[0]);
  ASSERT_TRUE(idle.read_reply());
  client busy(s.endpoints()[0]);
  ASSERT_TRUE(busy.read_reply());
  busy.send("HELO c.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n");
  for (int i = 0; i < 4; ++i)
    ASSERT_TRUE(busy.read_reply());
  busy.send("Subject: drain\r\n\r\n.\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // now inside submit
  std::string ready = read_file(s.dir() / "ready.json");
  auto pos = ready.find("\"pid\":");
  ASSERT_NE(pos, std::string::npos);
  ::kill(std::stoi(ready.substr(pos + 6)), SIGTERM);
  EXPECT_EQ(idle.read_reply().value_or("EOF"), "421 4.3.2 Service shutting down");
  auto r = busy.read_reply();
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->starts_with("250 2.0.0 Ok: queued as ")) << *r;
  EXPECT_EQ(busy.read_reply().value_or("EOF"), "421 4.3.2 Service shutting down");
  EXPECT_EQ(s.messages().size(), 1u);
}

// Mailpit's chaos triggers: a chaos service at 100 % makes MAIL / RCPT / AUTH fail with the
// configured code; at 0 % nothing changes.
TEST(SmtpChaos, TriggersFireAtTheirCommands) {
  sluice_server s(base + "    auth: {mode: accept-any, allow_insecure: true}\n", "", std::nullopt,
                  "  - name: chaos\n"
                  "    plugin: chaos\n"
                  "    triggers: \"Sender:451:100\"\n"
                  "    recipient: {error_code: 550, probability: 0}\n");
  client c(s.endpoints().at(0));
  ASSERT_TRUE(c.read_reply());
  c.send_line("EHLO client.test");
  ASSERT_TRUE(c.read_reply());
  c.send_line("MAIL FROM:<a@example.com>");
  EXPECT_EQ(c.read_reply().value_or(""), "451 4.0.0 Chaos sender error");
  // The transaction did not start: RCPT needs MAIL first.
  c.send_line("RCPT TO:<b@example.com>");
  EXPECT_EQ(c.read_reply().value_or(""), "503 5.5.1 Error: need MAIL command");
}

TEST(SmtpChaos, RecipientAndAuthentication) {
  sluice_server s(base + "    auth: {mode: accept-any, allow_insecure: true}\n", "", std::nullopt,
                  "  - name: chaos\n"
                  "    plugin: chaos\n"
                  "    recipient: {error_code: 550, probability: 100}\n"
                  "    authentication: {error_code: 535, probability: 100}\n");
  client c(s.endpoints().at(0));
  ASSERT_TRUE(c.read_reply());
  c.send_line("EHLO client.test");
  ASSERT_TRUE(c.read_reply());
  c.send_line("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
  EXPECT_EQ(c.read_reply().value_or(""), "535 5.7.0 Chaos authentication error");
  c.send_line("MAIL FROM:<a@example.com>");
  EXPECT_EQ(c.read_reply().value_or(""), "250 2.1.0 Ok");
  c.send_line("RCPT TO:<b@example.com>");
  EXPECT_EQ(c.read_reply().value_or(""), "550 5.0.0 Chaos recipient error");
}

TEST(SmtpChaos, UnknownChaosServiceIsAConfigError) {
  fs::path dir = make_temp_dir("sluice-chaos-cfg");
  write_file(dir / "sluice.yaml",
             "listeners:\n"
             "  - name: smtp\n"
             "    plugin: smtp\n"
             "    pipeline: p\n"
             "    chaos: nope\n"
             "pipelines:\n"
             "  - name: p\n"
             "    stages:\n"
             "      - plugin: test_sink\n"
             "        dir: out\n");
  std::string out;
  int rc = run_shell(std::string(SLUICE_BINARY) + " serve -c " + (dir / "sluice.yaml").string() +
                         " --plugin-dir " + SLUICE_TEST_PLUGIN_DIR + " 2>&1",
                     out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("sluice.yaml:5:12: listeners[0].chaos: no chaos service named \"nope\""),
            std::string::npos)
      << out;
}

TEST(SmtpChaos, BadTriggerIsAConfigError) {
  fs::path dir = make_temp_dir("sluice-chaos-cfg");
  write_file(dir / "sluice.yaml",
             "services:\n"
             "  - name: chaos\n"
             "    plugin: chaos\n"
             "    triggers: \"Sender:700:50\"\n");
  std::string out;
  int rc = run_shell(
      std::string(SLUICE_BINARY) + " check-config -c " + (dir / "sluice.yaml").string() + " 2>&1",
      out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("sluice.yaml:4:15: services[0].triggers: Sender: error code 700 is not "
                     "between 400 and 599"),
            std::string::npos)
      << out;
}
