// The relay stage end to end: the real sluice binary accepts mail over SMTP and relays it
// to independent servers on loopback — Python's aiosmtpd (upstream.py: STARTTLS, implicit
// TLS, AUTH PLAIN/LOGIN/CRAM-MD5/XOAUTH2, scripted 4xx/5xx) and Postfix's smtp-sink — and
// releases stored mail through POST /api/v1/message/{ID}/release. Certificates come from a
// CA the test makes with openssl. Skips (with the reason) when a tool is missing.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "relay_test_support.hpp"
#include "sluice_test.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace sluice::test;
using namespace std::chrono_literals;
using namespace sluice::test::relay;

bool have_aiosmtpd() {
  return run_command(std::string(kPython) + " -c 'import aiosmtpd'", nullptr) == 0;
}

// A CA and a server certificate for localhost / 127.0.0.1, made with openssl.
struct certs {
  fs::path ca, cert, key;
  explicit certs(const fs::path& dir, const std::string& san = "DNS:localhost,IP:127.0.0.1") {
    ca = dir / "ca.pem";
    cert = dir / "server.pem";
    key = dir / "server.key";
    const std::string d = shell_quote(dir.string());
    std::string out;
    int rc = run_command(
        "cd " + d +
            " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
            "-subj '/CN=Sluice relay test CA' 2>&1"
            " && openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
            "-subj '/CN=localhost' 2>&1"
            " && printf 'subjectAltName=" +
            san +
            "\\n' > ext.cnf"
            " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
            "-out server.pem -days 2 -extfile ext.cnf 2>&1",
        &out);
    EXPECT_EQ(rc, 0) << out;
  }
};

// A gateway config: smtp listener → pipeline "gateway" with one deferred relay stage
// whose plugin keys are `relay_keys` (YAML lines indented by 8).
std::string gateway_config(const std::string& relay_keys, const std::string& extra = {}) {
  return R"(log: {level: debug}
spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - plugin: relay
        timeout: 60s
        retry: {initial: 1s, max: 2s, lifetime: 1h}
)" + relay_keys +
         extra;
}

std::string message_text(const std::string& subject, const std::string& body = "Hello.\r\n") {
  return "From: App <app@example.com>\r\nTo: user@example.net\r\nSubject: " + subject +
         "\r\nMessage-ID: <" + subject + "@example.com>\r\n\r\n" + body;
}

// Sends message_text(subject, body) from app@example.com to user@example.net through the
// gateway; success when its reply is a 250 (the failure shows the reply).
::testing::AssertionResult accepted(const sluice_process& s, const std::string& subject,
                                    const std::string& body = "Hello.\r\n") {
  const std::string r = smtp_send(s.endpoints("smtp").at(0), "app@example.com",
                                  {"user@example.net"}, message_text(subject, body));
  if (r.substr(0, 3) == "250") return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "reply: " << r;
}

bool log_has(const sluice_process& s, const std::string& needle,
             std::chrono::milliseconds limit = 20s) {
  return eventually([&] { return s.log().find(needle) != std::string::npos; }, limit);
}

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_aiosmtpd())
      GTEST_SKIP() << "python3-aiosmtpd is not installed (scripts/install-deps.sh)";
  }
  temp_dir tmp_;
};

TEST_F(RelayTest, PlainSmarthostDeliversEnvelopeHeadersAndDots) {
  upstream up(tmp_.path() / "up", "");
  sluice_process s(gateway_config("        smarthost: " + up.address() +
                                  "\n        security: none\n        helo: gw.test\n"));
  ASSERT_TRUE(s.running());
  auto reply = smtp_send(s.endpoints("smtp").at(0), "app@example.com",
                         {"user@example.net", "second@example.org"},
                         message_text("plain", "line one\r\n.leading dot\r\n..two dots\r\n"));
  ASSERT_EQ(reply.substr(0, 3), "250") << reply;
  ASSERT_TRUE(up.wait_for(1)) << s.log();
  auto m = up.messages().at(0);
  EXPECT_EQ(m["mail_from"].as_string(), "app@example.com");
  EXPECT_EQ(json::serialize(m["rcpt_tos"]), R"(["user@example.net","second@example.org"])");
  EXPECT_EQ(m["helo"].as_string(), "gw.test");
  EXPECT_FALSE(m["tls"].as_bool());
  const std::string content(m["content"].as_string());
  EXPECT_NE(content.find("Subject: plain\r\n"), std::string::npos) << content;
  // The upstream undid the dot-stuffing: the lines arrive as they were written.
  EXPECT_NE(content.find("\r\n.leading dot\r\n..two dots\r\n"), std::string::npos) << content;
  // Return-Path is for the final delivery to add, and the Bcc the capture listener adds for
  // envelope-only recipients must not show them to everyone.
  EXPECT_EQ(content.find("Return-Path:"), std::string::npos) << content;
  EXPECT_EQ(content.find("Bcc:"), std::string::npos) << content;
  // The smtp listener's Received field (a header edit) went out with the message.
  EXPECT_EQ(content.rfind("Received: ", 0), 0u) << content;
  // SIZE was declared (aiosmtpd offers it).
  EXPECT_NE(json::serialize(m["mail_options"]).find("SIZE="), std::string::npos);
  EXPECT_TRUE(log_has(s, "deferred stage done"));
}

TEST_F(RelayTest, StarttlsWithVerifiedCertificateAndEachAuthMechanism) {
  certs c(tmp_.path());
  upstream up(tmp_.path() / "up", "--starttls " + shell_quote(c.cert.string()) + " " +
                                      shell_quote(c.key.string()) +
                                      " --auth relayuser:s3cret --auth-require-tls");
  std::string listeners, pipelines;
  const std::vector<std::string> mechs = {"", "PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2"};
  for (std::size_t i = 0; i < mechs.size(); ++i) {
    const std::string n = std::to_string(i);
    listeners += "  - {name: smtp" + n + ", plugin: smtp, pipeline: p" + n +
                 ", listen: [\"127.0.0.1:0\"]}\n";
    pipelines += "  - name: p" + n +
                 "\n    stages:\n      - plugin: relay\n        timeout: 60s\n"
                 "        retry: {initial: 1s, max: 2s, lifetime: 1h}\n"
                 "        smarthost: localhost:" +
                 std::to_string(up.port()) + "\n        ca_file: " + c.ca.string() +
                 "\n        auth: {username: relayuser, " +
                 (mechs[i] == "XOAUTH2" ? "token: s3cret" : "password: s3cret") +
                 (mechs[i].empty() ? "" : ", mechanism: " + mechs[i]) + "}\n";
  }
  sluice_process s("log: {level: debug}\nspool: {path: ./spool}\nlisteners:\n" + listeners +
                   "pipelines:\n" + pipelines);
  ASSERT_TRUE(s.running());
  for (std::size_t i = 0; i < mechs.size(); ++i) {
    auto r = smtp_send(s.endpoints("smtp" + std::to_string(i)).at(0), "app@example.com",
                       {"user@example.net"}, message_text("auth" + std::to_string(i)));
    ASSERT_EQ(r.substr(0, 3), "250") << r;
  }
  ASSERT_TRUE(up.wait_for(mechs.size())) << s.log() << up.log();
  for (auto& m : up.messages()) {
    EXPECT_TRUE(m["tls"].as_bool());
    EXPECT_EQ(m["auth"].as_string(), "relayuser");
  }
  // Secrets never reach the log.
  EXPECT_EQ(s.log().find("s3cret"), std::string::npos);
}

TEST_F(RelayTest, ImplicitTls) {
  certs c(tmp_.path());
  upstream up(tmp_.path() / "up", "--starttls " + shell_quote(c.cert.string()) + " " +
                                      shell_quote(c.key.string()) + " --implicit-tls");
  sluice_process s(gateway_config("        smarthost: 127.0.0.1:" + std::to_string(up.port()) +
                                  "\n        security: tls\n        ca_file: " + c.ca.string() +
                                  "\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "implicit"));
  ASSERT_TRUE(up.wait_for(1)) << s.log();
}

TEST_F(RelayTest, CertificateVerificationFailureNamesTheSettingsAndAllowInsecureDelivers) {
  certs c(tmp_.path());
  upstream up(tmp_.path() / "up",
              "--starttls " + shell_quote(c.cert.string()) + " " + shell_quote(c.key.string()));
  // No ca_file: the test CA is not in the system store.
  sluice_process s(
      gateway_config("        smarthost: localhost:" + std::to_string(up.port()) + "\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "verify"));
  ASSERT_TRUE(log_has(s, "TLS certificate verification failed")) << s.log();
  EXPECT_TRUE(log_has(s, "ca_file"));
  EXPECT_TRUE(log_has(s, "allow_insecure: true"));
  EXPECT_TRUE(log_has(s, "deferred stage will retry"));
  // "localhost" is 127.0.0.1, then ::1, where nothing listens: the recorded reply still
  // carries the first address's reason and its fix, not only "cannot connect".
  {
    const std::string log = s.log();
    auto retry = log.find("deferred stage will retry");
    ASSERT_NE(retry, std::string::npos);
    const std::string line = log.substr(retry, log.find('\n', retry) - retry);
    EXPECT_NE(line.find("TLS certificate verification failed"), std::string::npos) << line;
  }
  EXPECT_TRUE(up.messages().empty());
  s.stop();

  sluice_process s2(gateway_config("        smarthost: localhost:" + std::to_string(up.port()) +
                                   "\n        allow_insecure: true\n"));
  ASSERT_TRUE(s2.running());
  ASSERT_TRUE(accepted(s2, "insecure"));
  ASSERT_TRUE(up.wait_for(1)) << s2.log();
  EXPECT_TRUE(up.messages().at(0)["tls"].as_bool());
}

TEST_F(RelayTest, CertificateForAnotherNameIsRefused) {
  // Issued by the trusted CA, but for other.test only: the smarthost 127.0.0.1 does not match.
  certs c(tmp_.path(), "DNS:other.test");
  upstream up(tmp_.path() / "up",
              "--starttls " + shell_quote(c.cert.string()) + " " + shell_quote(c.key.string()));
  sluice_process s(gateway_config("        smarthost: 127.0.0.1:" + std::to_string(up.port()) +
                                  "\n        ca_file: " + c.ca.string() + "\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "mismatch"));
  ASSERT_TRUE(log_has(s, "TLS certificate verification failed")) << s.log();
  EXPECT_TRUE(log_has(s, "mismatch")) << s.log();  // OpenSSL: "IP address mismatch"
  EXPECT_TRUE(up.messages().empty());
}

TEST_F(RelayTest, StarttlsRequiredButNotOffered) {
  upstream up(tmp_.path() / "up", "");
  // security defaults to starttls-required for a smarthost.
  sluice_process s(gateway_config("        smarthost: " + up.address() + "\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "nostarttls"));
  ASSERT_TRUE(log_has(s, "does not offer STARTTLS and security is starttls-required")) << s.log();
  EXPECT_TRUE(log_has(s, "set security: starttls"));
  EXPECT_TRUE(up.messages().empty());
}

TEST_F(RelayTest, AuthIsNeverSentInClearAndTheDiagnosticsSayWhatToChange) {
  upstream up(tmp_.path() / "up", "--auth relayuser:s3cret --auth-require-tls");
  sluice_process s(gateway_config("        smarthost: " + up.address() +
                                  "\n        security: none\n        auth: {username: relayuser, "
                                  "password: s3cret}\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "cleartext"));
  ASSERT_TRUE(log_has(s, "over an unencrypted connection")) << s.log();
  EXPECT_TRUE(log_has(s, "allow_plaintext_auth: true"));
  s.stop();

  // Allowed to send in clear, but the server (like Postfix with smtpd_tls_auth_only)
  // offers AUTH only after STARTTLS: the log says so and names the setting.
  sluice_process s2(gateway_config("        smarthost: " + up.address() +
                                   "\n        security: none\n        allow_plaintext_auth: true\n"
                                   "        auth: {username: relayuser, password: s3cret}\n"));
  ASSERT_TRUE(s2.running());
  ASSERT_TRUE(accepted(s2, "noauth"));
  ASSERT_TRUE(log_has(s2, "offers no AUTH on an unencrypted connection")) << s2.log();
  EXPECT_TRUE(log_has(s2, "security: starttls-required or tls"));
  EXPECT_TRUE(up.messages().empty());
}

TEST_F(RelayTest, TemporaryFailureIsRetriedFromTheSpool) {
  upstream up(tmp_.path() / "up", "--temp-fail 2");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() + "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "retry"));
  ASSERT_TRUE(up.wait_for(1, 30s)) << s.log();
  EXPECT_TRUE(log_has(s, "451 4.3.0 Try again later (attempt 1)")) << s.log();
  EXPECT_TRUE(log_has(s, "Try again later (attempt 2)"));
  EXPECT_TRUE(log_has(s, "deferred stage done"));
  EXPECT_EQ(up.messages().size(), 1u);
}

TEST_F(RelayTest, PermanentFailureKeepsTheServersExactReplyAndPartialRetryOnlyTheRest) {
  upstream up(tmp_.path() / "up",
              "--reject-rcpt '^bad@' --reject-text '550 5.1.1 <bad@example.net>: Recipient address "
              "rejected: User unknown in local recipient table'");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() + "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  auto r = smtp_send(s.endpoints("smtp").at(0), "app@example.com",
                     {"good@example.net", "bad@example.net"}, message_text("perm"));
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  ASSERT_TRUE(log_has(s, "deferred stage failed")) << s.log();
  EXPECT_TRUE(log_has(s,
                      "550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown in "
                      "local recipient table"))
      << s.log();
  ASSERT_TRUE(up.wait_for(1));
  EXPECT_EQ(json::serialize(up.messages().at(0)["rcpt_tos"]), R"(["good@example.net"])");
  std::this_thread::sleep_for(2500ms);  // longer than the retry interval: nothing more comes
  EXPECT_EQ(up.messages().size(), 1u);
  // The spool is empty: the message is settled.
  EXPECT_TRUE(eventually([&] {
    std::size_t n = 0;
    for (auto& e : fs::directory_iterator(s.dir() / "spool" / "queue"))
      n += e.path().extension() == ".json";
    return n == 0;
  }));
}

// The spool record of the only queued message (queue/<id>.json), or null.
json::value queued_record(const sluice_process& s) {
  for (auto& e : fs::directory_iterator(s.dir() / "spool" / "queue"))
    if (e.path().extension() == ".json") return json::parse(read_file(e.path()));
  return nullptr;
}

TEST_F(RelayTest, PartialTemporaryFailureRetriesOnlyThoseRecipients) {
  upstream up(tmp_.path() / "up", "--temp-rcpt '^later@'");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() + "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  auto r = smtp_send(s.endpoints("smtp").at(0), "app@example.com",
                     {"now@example.net", "later@example.net"}, message_text("partial"));
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  ASSERT_TRUE(up.wait_for(2, 30s)) << s.log();
  auto msgs = up.messages();
  EXPECT_EQ(json::serialize(msgs.at(0)["rcpt_tos"]), R"(["now@example.net"])");
  EXPECT_EQ(json::serialize(msgs.at(1)["rcpt_tos"]), R"(["later@example.net"])");
  EXPECT_TRUE(log_has(s, "450 4.2.1 <later@example.net>: mailbox busy, try again later"))
      << s.log();
  EXPECT_TRUE(log_has(s, "deferred stage done"));
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(up.messages().size(), 2u);  // nobody got it twice
}

// Each attempt's report reaches the message's delivery log (the kernel's "delivery" event,
// kept by the store, served by GET /api/v1/message/{ID}/deliveries); the per-recipient state
// stays with the queued message.
TEST_F(RelayTest, DeliveryReportIsLoggedAndStateIsKeptWithTheQueuedMessage) {
  for (const char* p : {"http", "store"}) {
    if (!fs::exists(fs::path(build_dir()) / "lib/sluice/plugins" / (std::string(p) + ".so")))
      GTEST_SKIP() << "the " << p << " plugin is not built";
  }
  upstream up(tmp_.path() / "up", "");
  sluice_process s(R"(log: {level: debug}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
  - {name: http, plugin: http, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - {plugin: store, mailbox: default}
      - plugin: relay
        timeout: 60s
        retry: {initial: 1s, max: 2s, lifetime: 1h}
        smarthost: )" +
                   up.address() + "\n");  // starttls-required
  ASSERT_TRUE(s.running()) << s.log();
  auto r = smtp_send(s.endpoints("smtp").at(0), "app@example.com", {"user@example.net"},
                     message_text("report"));
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  const std::string id = r.substr(r.find("queued as ") + 10);
  json::array log;
  ASSERT_TRUE(eventually([&] {
    std::string out;
    if (run_command("curl -sS --max-time 10 http://127.0.0.1:" + std::to_string(s.port("http")) +
                        "/api/v1/message/" + id + "/deliveries",
                    &out, false) != 0)
      return false;
    boost::system::error_code ec;
    auto v = json::parse(out, ec);
    if (ec || !v.is_object() || !v.as_object().contains("Deliveries")) return false;
    log = v.at("Deliveries").as_array();
    return !log.empty();
  })) << s.log();
  EXPECT_EQ(log[0].at("Stage").as_string(), "relay");
  EXPECT_EQ(log[0].at("Status").as_string(), "retry");
  const auto& report = log[0].at("Details").as_object();
  EXPECT_EQ(report.at("stage").as_string(), "relay");
  EXPECT_EQ(report.at("deferred").as_int64(), 1);
  const auto& rc = report.at("recipients").as_array().at(0).as_object();
  EXPECT_EQ(rc.at("rcpt").as_string(), "user@example.net");
  EXPECT_EQ(rc.at("status").as_string(), "deferred");
  EXPECT_EQ(rc.at("code").as_int64(), 451);
  EXPECT_NE(std::string(rc.at("text").as_string()).find("does not offer STARTTLS"),
            std::string::npos)
      << json::serialize(report);
  // Nothing is settled yet: no recipient is recorded as done or failed.
  json::value rec;
  ASSERT_TRUE(eventually([&] {
    rec = queued_record(s);
    if (!rec.is_object()) return false;
    auto* m = rec.as_object().if_contains("message");
    return m && m->as_object().contains("attributes") &&
           m->as_object().at("attributes").as_object().contains("relay");
  })) << s.log();
  const auto& attrs = rec.at("message").at("attributes").as_object();
  EXPECT_FALSE(attrs.contains("delivery_report"));  // moved into the event, per attempt
  const auto& st = attrs.at("relay").at("relay").as_object();
  EXPECT_TRUE(st.at("done").as_array().empty());
  EXPECT_TRUE(st.at("failed").as_array().empty());
}

TEST_F(RelayTest, QueuedMessagesSurviveSigkillAndAreDeliveredAfterRestart) {
  upstream busy(tmp_.path() / "busy", "--temp-fail 1000");
  upstream healthy(tmp_.path() / "healthy", "");
  const fs::path dir = tmp_.path() / "sluice";
  fs::create_directories(dir);
  {
    sluice_process s(
        dir, gateway_config("        smarthost: " + busy.address() + "\n        security: none\n"));
    ASSERT_TRUE(s.running());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(accepted(s, "durable" + std::to_string(i)));
    }
    ASSERT_TRUE(eventually([&] {
      std::size_t n = 0;
      for (auto pos = s.log().find("deferred stage will retry"); pos != std::string::npos;
           pos = s.log().find("deferred stage will retry", pos + 1))
        ++n;
      return n >= 3;
    })) << s.log();
    s.kill();  // SIGKILL while all three wait for their retry
  }
  // The same spool, now pointed at a server that accepts.
  sluice_process s2(dir, gateway_config("        smarthost: " + healthy.address() +
                                        "\n        security: none\n"));
  ASSERT_TRUE(s2.running());
  ASSERT_TRUE(healthy.wait_for(3, 30s)) << s2.log();
  std::set<std::string> subjects;
  for (auto& m : healthy.messages()) {
    const std::string c(m["content"].as_string());
    auto p = c.find("Subject: ");
    subjects.insert(c.substr(p + 9, c.find("\r\n", p) - p - 9));
  }
  EXPECT_EQ(subjects, (std::set<std::string>{"durable0", "durable1", "durable2"}));
  EXPECT_TRUE(busy.messages().empty());
}

TEST_F(RelayTest, AllowedAndBlockedRecipients) {
  upstream up(tmp_.path() / "up", "");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() +
                     "\n        security: none\n        allowed_recipients: ['@example\\.net$']"
                     "\n        blocked_recipients: ['^ceo@']\n"));
  ASSERT_TRUE(s.running());
  auto r =
      smtp_send(s.endpoints("smtp").at(0), "app@example.com",
                {"dev@example.net", "ceo@example.net", "x@elsewhere.org"}, message_text("filter"));
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  ASSERT_TRUE(up.wait_for(1)) << s.log();
  EXPECT_EQ(json::serialize(up.messages().at(0)["rcpt_tos"]), R"(["dev@example.net"])");
  EXPECT_TRUE(log_has(s, "matches blocked_recipients")) << s.log();
}

// Sends one SMTPUTF8 message to sluice with a raw transcript (smtp_send has no SMTPUTF8).
std::string send_utf8(const std::string& endpoint, const std::string& rcpt) {
  line_client c(endpoint);
  std::string last = c.read_reply();
  c.send("EHLO client.test\r\n");
  last = c.read_reply();
  c.send("MAIL FROM:<app@example.com> SMTPUTF8\r\n");
  last = c.read_reply();
  c.send("RCPT TO:<" + rcpt + ">\r\n");
  last = c.read_reply();
  if (last.rfind("250", 0) != 0) return last;
  c.send("DATA\r\n");
  last = c.read_reply();
  c.send("From: app@example.com\r\nTo: " + rcpt + "\r\nSubject: utf8\r\n\r\nGrüße\r\n.\r\n");
  last = c.read_reply();
  c.send("QUIT\r\n");
  c.read_reply();
  return last;
}

TEST_F(RelayTest, SmtpUtf8WhenOfferedAndAClearFailureWhenNot) {
  const std::string rcpt = "jörg@example.net";
  upstream with(tmp_.path() / "with", "");
  sluice_process s(
      gateway_config("        smarthost: " + with.address() + "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  auto r = send_utf8(s.endpoints("smtp").at(0), rcpt);
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  ASSERT_TRUE(with.wait_for(1)) << s.log();
  auto m = with.messages().at(0);
  EXPECT_EQ(json::serialize(m["rcpt_tos"]), "[\"" + rcpt + "\"]");
  const std::string opts = json::serialize(m["mail_options"]);
  EXPECT_NE(opts.find("SMTPUTF8"), std::string::npos) << opts;
  EXPECT_NE(opts.find("BODY=8BITMIME"), std::string::npos) << opts;  // "Grüße" is 8-bit
  s.stop();

  upstream without(tmp_.path() / "without", "--no-smtputf8");
  sluice_process s2(
      gateway_config("        smarthost: " + without.address() + "\n        security: none\n"));
  ASSERT_TRUE(s2.running());
  r = send_utf8(s2.endpoints("smtp").at(0), rcpt);
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  ASSERT_TRUE(log_has(s2, "needs SMTPUTF8 (non-ASCII addresses)")) << s2.log();
  EXPECT_TRUE(log_has(s2, "deferred stage failed"));
  EXPECT_TRUE(without.messages().empty());
}

// RFC 6152 §3: a server without 8BITMIME gets 8-bit content only converted to 7 bits; the
// upstream (aiosmtpd with 8BITMIME taken out of its EHLO) and Python's email package decode
// it back to the original text.
TEST_F(RelayTest, EightBitContentIsConvertedForAServerWithout8BitMime) {
  upstream up(tmp_.path() / "up", "--no-8bitmime");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() + "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "eightbit",
                       "Gr\xc3\xbc\xc3\x9f"
                       "e aus K\xc3\xb6ln.\r\n"));
  ASSERT_TRUE(up.wait_for(1)) << s.log() << up.log();
  auto m = up.messages().at(0);
  const std::string opts = json::serialize(m["mail_options"]);
  EXPECT_EQ(opts.find("8BITMIME"), std::string::npos) << opts;
  const std::string content(m["content"].as_string());
  EXPECT_TRUE(std::all_of(content.begin(), content.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0x80) == 0;
  })) << content;
  EXPECT_NE(content.find("MIME-Version: 1.0\r\n"), std::string::npos) << content;
  EXPECT_NE(content.find("Content-Transfer-Encoding: quoted-printable\r\n"), std::string::npos)
      << content;
  EXPECT_NE(content.find("Subject: eightbit\r\n"), std::string::npos) << content;
  const auto file = tmp_.path() / "converted.eml";
  write_file(file, content);
  std::string decoded;
  ASSERT_EQ(
      run_command(std::string(kPython) +
                      " -c 'import email,sys; m=email.message_from_binary_file(open(sys.argv[1],"
                      "\"rb\")); sys.stdout.write(m.get_payload(decode=True).decode())' " +
                      shell_quote(file.string()),
                  &decoded, false),
      0)
      << decoded;
  // (Python's decoder gives the text's line break as "\n".)
  EXPECT_EQ(decoded,
            "Gr\xc3\xbc\xc3\x9f"
            "e aus K\xc3\xb6ln.\n");
  EXPECT_TRUE(log_has(s, "8-bit content converted to 7 bits")) << s.log();

  // With 8BITMIME offered the same message goes as it is, declared BODY=8BITMIME.
  upstream with(tmp_.path() / "with", "");
  sluice_process s2(
      gateway_config("        smarthost: " + with.address() + "\n        security: none\n"));
  ASSERT_TRUE(s2.running());
  ASSERT_TRUE(accepted(s2, "eightbit2",
                       "Gr\xc3\xbc\xc3\x9f"
                       "e aus K\xc3\xb6ln.\r\n"));
  ASSERT_TRUE(with.wait_for(1)) << s2.log();
  auto m2 = with.messages().at(0);
  EXPECT_NE(json::serialize(m2["mail_options"]).find("BODY=8BITMIME"), std::string::npos);
  EXPECT_NE(std::string(m2["content"].as_string()).find("Grüße aus Köln.\r\n"), std::string::npos);
}

TEST_F(RelayTest, SizeLimitRefusedBeforeMail) {
  upstream up(tmp_.path() / "up", "--size 200");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() + "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "big", std::string(400, 'x') + "\r\n"));
  ASSERT_TRUE(log_has(s, "exceeds the limit of 200 bytes")) << s.log();
  EXPECT_TRUE(log_has(s, "deferred stage failed"));
  EXPECT_TRUE(up.messages().empty());
}

TEST_F(RelayTest, ConnectionReusedAcrossMessages) {
  upstream up(tmp_.path() / "up", "");
  sluice_process s(
      gateway_config("        smarthost: " + up.address() +
                     "\n        security: none\n        pool: {size: 2, idle_timeout: 30s}\n"));
  ASSERT_TRUE(s.running());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(accepted(s, "reuse" + std::to_string(i)));
    ASSERT_TRUE(up.wait_for(i + 1)) << s.log();
  }
  // upstream.py numbers its connections: all three messages came over the first one.
  auto msgs = up.messages();
  ASSERT_EQ(msgs.size(), 3u);
  for (auto& m : msgs)
    EXPECT_EQ(m["connection"].as_int64(), 1) << json::serialize(m);
}

TEST_F(RelayTest, MxDeliveryInPreferenceOrderWithImplicitAndNullMx) {
  if (run_command(std::string(kPython) + " -c 'import dnslib'", nullptr) != 0)
    GTEST_SKIP() << "python3-dnslib is not installed";
  upstream up(tmp_.path() / "up", "");
  // multi.test: the preferred MX (10) refuses connections (nothing listens on 127.0.0.2),
  // so the one at 20 takes it; the MX of preference 30 must never be used.
  const std::string zone = R"({
    "multi.test": {"MX": [[30, "never.test"], [20, "second.test"], [10, "first.test"]]},
    "first.test": {"A": ["127.0.0.2"]},
    "second.test": {"A": ["127.0.0.1"]},
    "never.test": {"A": ["127.0.0.3"]},
    "implicit.test": {"A": ["127.0.0.1"]},
    "nullmx.test": {"MX": [[0, "."]]}
  })";
  const fs::path ready = tmp_.path() / "dns.port";
  background dns(std::string(kPython) + " " +
                 shell_quote(std::string(RELAY_TEST_DIR) + "/mx_dns.py") + " --zone " +
                 shell_quote(zone) + " --ready " + shell_quote(ready.string()));
  ASSERT_TRUE(eventually([&] { return fs::exists(ready); }, 15s));
  const std::string dns_port = read_file(ready);
  sluice_process s(R"(log: {level: debug}
spool: {path: ./spool}
services:
  - {name: default, plugin: resolver, servers: ["127.0.0.1:)" +
                   dns_port + R"("], timeout: 500ms, tries: 2}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - plugin: relay
        timeout: 60s
        retry: {initial: 1s, max: 2s, lifetime: 1h}
        port: )" + std::to_string(up.port()) +
                   R"(
        timeouts: {connect: 5s}
)");
  ASSERT_TRUE(s.running());
  auto r = smtp_send(s.endpoints("smtp").at(0), "app@example.com",
                     {"a@multi.test", "b@implicit.test", "c@nullmx.test", "d@nx.test"},
                     message_text("mx"));
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  ASSERT_TRUE(up.wait_for(2)) << s.log();
  std::set<std::string> rcpts;
  for (auto& m : up.messages())
    rcpts.insert(json::serialize(m["rcpt_tos"]));
  EXPECT_EQ(rcpts, (std::set<std::string>{R"(["a@multi.test"])", R"(["b@implicit.test"])"}));
  ASSERT_TRUE(log_has(s, "deferred stage failed")) << s.log();
  EXPECT_TRUE(log_has(s, "first.test [127.0.0.2]"));        // tried first, refused
  EXPECT_EQ(s.log().find("127.0.0.3"), std::string::npos);  // never reached
  EXPECT_TRUE(log_has(s, "556 5.1.10 domain nullmx.test does not accept mail (null MX)"))
      << s.log();
  EXPECT_TRUE(log_has(s, "550 5.1.2 domain nx.test does not exist")) << s.log();
}

// curl with -w: the body, then a last line with the status code.
std::pair<int, std::string> curl(const std::string& args) {
  std::string out;
  run_command("curl -sS --max-time 60 -w '\\n%{http_code}' " + args, &out, false, 70s);
  auto nl = out.rfind('\n');
  if (nl == std::string::npos) return {0, out};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}

TEST_F(RelayTest, ReleaseRelaysAStoredMessageAndAnswersWithTheUpstreamsReply) {
  if (run_command("curl --version", nullptr) != 0) GTEST_SKIP() << "curl is not installed";
  for (const char* p : {"http", "store", "mime"}) {
    if (!fs::exists(fs::path(build_dir()) / "lib/sluice/plugins" / (std::string(p) + ".so")))
      GTEST_SKIP() << "the " << p << " plugin is not built";
  }
  upstream up(
      tmp_.path() / "up",
      "--reject-rcpt '^bad@' --reject-text '550 5.1.1 <bad@example.org>: no such user here'");
  sluice_process s(R"(log: {level: debug}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
  - name: http
    plugin: http
    pipeline: capture
    listen: ["127.0.0.1:0"]
    release_pipeline: release
pipelines:
  - name: capture
    stages:
      - {plugin: mime}
      - {plugin: store, mailbox: default}
  - name: release
    stages:
      - plugin: relay
        phase: inline
        timeout: 60s
        security: none
        smarthost: )" +
                   up.address() + R"(
      - {plugin: store, mailbox: released}
)");
  ASSERT_TRUE(s.running());
  const std::string api = "http://" + s.endpoints("http").at(0) + "/api/v1/";
  auto r = smtp_send(s.endpoints("smtp").at(0), "app@example.com", {"captured@example.net"},
                     "From: App <app@example.com>\r\nTo: captured@example.net\r\n"
                     "Bcc: hidden@example.net\r\nSubject: release me\r\n\r\nBody.\r\n");
  ASSERT_EQ(r.substr(0, 3), "250") << r;
  std::string id;
  ASSERT_TRUE(eventually([&] {
    auto [code, body] = curl(shell_quote(api + "messages"));
    if (code != 200) return false;
    auto v = json::parse(body);
    auto& msgs = v.as_object()["messages"].as_array();
    if (msgs.empty()) return false;
    id = std::string(msgs[0].as_object()["ID"].as_string());
    return true;
  })) << s.log();
  EXPECT_TRUE(up.messages().empty());  // capture does not relay

  auto [code, body] = curl("-X POST -H 'Content-Type: application/json' -d " +
                           shell_quote(R"({"To": ["dest@example.org"]})") + " " +
                           shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 200) << body << s.log();
  EXPECT_EQ(body, "ok");
  ASSERT_TRUE(up.wait_for(1)) << s.log();
  auto m = up.messages().at(0);
  EXPECT_EQ(m["mail_from"].as_string(), "app@example.com");
  EXPECT_EQ(json::serialize(m["rcpt_tos"]), R"(["dest@example.org"])");
  const std::string content(m["content"].as_string());
  EXPECT_NE(content.find("Subject: release me"), std::string::npos) << content;
  EXPECT_EQ(content.find("Bcc:"), std::string::npos) << content;
  EXPECT_EQ(content.find("hidden@example.net"), std::string::npos) << content;
  // The release pipeline kept what went out in mailbox "released".
  auto [rcode, rbody] = curl(
      shell_quote("http://" + s.endpoints("http").at(0) + "/mailbox/released/api/v1/messages"));
  EXPECT_EQ(rcode, 200) << rbody;
  EXPECT_NE(rbody.find("\"total\":1"), std::string::npos) << rbody;

  // The upstream's permanent refusal reaches the API caller word for word.
  std::tie(code, body) = curl("-X POST -d " + shell_quote(R"({"To": ["bad@example.org"]})") + " " +
                              shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 400) << body;
  EXPECT_EQ(body, "550 5.1.1 <bad@example.org>: no such user here");
  // One refused recipient among good ones: the release fails and nobody gets the message
  // (as Mailpit, which stops at the refused RCPT), so a retry sends no duplicate.
  std::tie(code, body) =
      curl("-X POST -d " + shell_quote(R"({"To": ["dest@example.org", "bad@example.org"]})") + " " +
           shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 400) << body;
  EXPECT_EQ(body,
            "550 5.1.1 not sent to anyone: <bad@example.org> was refused: 550 5.1.1 "
            "<bad@example.org>: no such user here");

  std::tie(code, body) = curl("-X POST -d " + shell_quote(R"({"To": ["not an address"]})") + " " +
                              shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 400);
  EXPECT_EQ(body, "Invalid email address: not an address");
  std::tie(code, body) =
      curl("-X POST -d " + shell_quote(R"({"To": ["x\r\nRCPT TO:<y@example.org>"]})") + " " +
           shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 400);
  EXPECT_EQ(body, "Invalid email address: x??RCPT TO:<y@example.org>");
  // "Name <addr>" and "<addr>" name the address, as Mailpit's net/mail parse does.
  std::tie(code, body) =
      curl("-X POST -d " +
           shell_quote(R"({"To": ["Dest Two <dest2@example.org>", "<dest3@example.org>"]})") + " " +
           shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 200) << body;
  ASSERT_TRUE(up.wait_for(2)) << s.log();
  EXPECT_EQ(json::serialize(up.messages().at(1)["rcpt_tos"]),
            R"(["dest2@example.org","dest3@example.org"])");
  std::tie(code, body) = curl("-X POST -d " + shell_quote(R"({"To": []})") + " " +
                              shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 400);
  EXPECT_EQ(body, "No valid addresses found");
  EXPECT_EQ(up.messages().size(), 2u);
}

TEST(RelayConfig, BadPatternIsAConfigErrorWithItsLocation) {
  temp_dir tmp;
  write_file(tmp.path() / "sluice.yaml", R"(spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - plugin: relay
        smarthost: 127.0.0.1:2525
        allowed_recipients: ['@ok\.example$', '(unclosed']
)");
  std::string out;
  int rc = run_command(shell_quote(sluice_binary()) + " check-config -c " +
                           shell_quote((tmp.path() / "sluice.yaml").string()),
                       &out);
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("sluice.yaml:9:"), std::string::npos) << out;
  EXPECT_NE(out.find("allowed_recipients"), std::string::npos) << out;
  EXPECT_NE(out.find("pattern 2"), std::string::npos) << out;

  write_file(tmp.path() / "sluice.yaml", R"(spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - plugin: relay
        smarthost: 127.0.0.1:2525
        security: maybe
)");
  rc = run_command(shell_quote(sluice_binary()) + " check-config -c " +
                       shell_quote((tmp.path() / "sluice.yaml").string()),
                   &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("sluice.yaml:9:"), std::string::npos) << out;
  EXPECT_NE(out.find("none, starttls, starttls-required or tls"), std::string::npos) << out;
}

TEST(RelaySmtpSink, RelaysToPostfixSmtpSink) {
  if (!fs::exists("/usr/sbin/smtp-sink")) GTEST_SKIP() << "postfix (smtp-sink) is not installed";
  temp_dir tmp;
  fs::create_directories(tmp.path() / "dump");
  // smtp-sink writes as "nobody": it must reach and write the dump directory.
  fs::permissions(tmp.path(), fs::perms::others_exec | fs::perms::group_exec,
                  fs::perm_options::add);
  fs::permissions(tmp.path() / "dump", fs::perms::all);
  // A free port: bind, read, close (smtp-sink needs the port up front).
  int port = 0;
  {
    std::string out;
    run_command(std::string(kPython) +
                    " -c 'import socket; s=socket.socket(); s.bind((\"127.0.0.1\",0)); "
                    "print(s.getsockname()[1])'",
                &out);
    port = std::stoi(out);
  }
  background sink("exec /usr/sbin/smtp-sink -u nobody -d " +
                  shell_quote((tmp.path() / "dump").string() + "/msg") +
                  " 127.0.0.1:" + std::to_string(port) + " 16 > " +
                  shell_quote((tmp.path() / "sink.log").string()) + " 2>&1");
  ASSERT_TRUE(eventually(
      [&] {
        try {
          line_client c("127.0.0.1:" + std::to_string(port), 1s);
          return true;
        } catch (...) {
          return false;
        }
      },
      10s));
  sluice_process s(gateway_config("        smarthost: 127.0.0.1:" + std::to_string(port) +
                                  "\n        security: none\n"));
  ASSERT_TRUE(s.running());
  ASSERT_TRUE(accepted(s, "sink"));
  ASSERT_TRUE(log_has(s, "deferred stage done")) << s.log() << read_file(tmp.path() / "sink.log");
  ASSERT_TRUE(eventually([&] { return !fs::is_empty(tmp.path() / "dump"); }));
  std::string dumped;
  for (auto& e : fs::directory_iterator(tmp.path() / "dump"))
    dumped += read_file(e.path());
  EXPECT_NE(dumped.find("Subject: sink"), std::string::npos) << dumped;
  EXPECT_NE(dumped.find("user@example.net"), std::string::npos) << dumped;
}

}  // namespace
