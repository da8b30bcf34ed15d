// The staging gateway end to end, with independent programs at both ends: Python's smtplib
// sends to the real sluice binary, whose pipeline is mime → rewrite (every recipient to one
// inbox, a subject prefix, a From override) → dkim_sign (a key made by `sluice dkim keygen`)
// → relay (deferred) to aiosmtpd on loopback (upstream.py); the receiver's copy is checked
// and its DKIM signature verified with dkimpy. Then the upstream is down while mail arrives
// and comes back: everything is delivered and the retries are in the delivery log
// (GET /api/v1/message/{ID}/deliveries). Skips (with the reason) when a tool is missing.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "../webhook/receiver.hpp"
#include "relay_test_support.hpp"
#include "sluice_test.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace sluice::test;
using namespace std::chrono_literals;
using namespace sluice::test::relay;

class GatewayE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!python_has("aiosmtpd"))
      GTEST_SKIP() << "python3-aiosmtpd is not installed (scripts/install-deps.sh)";
  }
  temp_dir tmp_;
};

TEST_F(GatewayE2E, RewrittenSignedMailArrivesAndTheSignatureVerifiesWithDkimpy) {
  if (!python_has("dkim")) GTEST_SKIP() << "python3-dkim (dkimpy) is not installed";
  for (const char* p : {"mime", "rewrite", "auth"})
    if (!plugin_built(p)) GTEST_SKIP() << "the " << p << " plugin is not built";
  const fs::path key = tmp_.path() / "dkim.pem";
  const fs::path txt = tmp_.path() / "keygen.out";
  std::string out;
  ASSERT_EQ(dkim_keygen(key, txt, &out), 0) << out;
  ASSERT_NE(read_file(txt).find("v=DKIM1; k=rsa; p="), std::string::npos) << read_file(txt);

  upstream up(tmp_.path() / "up", "");
  ASSERT_NE(up.port(), 0) << up.log();
  fs::create_directories(tmp_.path() / "gw");
  sluice_process s(tmp_.path() / "gw",
                   staging_gateway_config(key, "qa@staging.example", up.address()));
  ASSERT_TRUE(s.running()) << s.log();
  const std::string msg = invoice_message("invoice-1@app.example");
  const std::string sent =
      smtplib_send(tmp_.path(), s.endpoints("smtp").at(0), "bounces@app.example",
                   {"customer@real.example", "other@real.example", "hidden@real.example"}, {msg});
  ASSERT_EQ(sent.substr(0, 3), "250") << sent;
  ASSERT_TRUE(up.wait_for(1)) << s.log() << up.log();
  std::this_thread::sleep_for(300ms);  // a second (duplicate) delivery would show up here
  const auto got = up.messages();
  ASSERT_EQ(got.size(), 1u);
  const auto& m = got[0];
  // Envelope: three recipients became one; the sender follows the From override.
  EXPECT_EQ(json::serialize(m.at("rcpt_tos")), R"(["qa@staging.example"])");
  EXPECT_EQ(m.at("mail_from").as_string(), "noreply@staging.example");
  const std::string content(m.at("content").as_string());
  EXPECT_NE(content.find("\r\nFrom: \"Jane Doe\" <noreply@staging.example>\r\n"), std::string::npos)
      << content;
  EXPECT_NE(content.find("\r\nX-Original-From: jane@app.example\r\n"), std::string::npos)
      << content;
  EXPECT_NE(content.find("\r\nSubject: [STAGING] Your invoice\r\n"), std::string::npos) << content;
  EXPECT_NE(content.find("X-Original-To: customer@real.example"), std::string::npos) << content;
  EXPECT_EQ(content.find("jane@app.example>"), std::string::npos) << content;
  EXPECT_NE(content.find("\r\n.a line that starts with a dot\r\n"), std::string::npos) << content;
  // Signed after the rewrite, by the configured identity.
  const auto sig = content.find("DKIM-Signature:");
  ASSERT_NE(sig, std::string::npos) << content;
  const std::string sigfield = content.substr(sig, content.find("\r\n\r\n") - sig);
  EXPECT_NE(sigfield.find("d=staging.example"), std::string::npos) << sigfield;
  EXPECT_NE(sigfield.find("s=s1"), std::string::npos) << sigfield;
  EXPECT_NE(sigfield.find("a=rsa-sha256"), std::string::npos) << sigfield;
  // The receiver (dkimpy, an independent implementation) verifies it ...
  std::string v;
  const fs::path eml = tmp_.path() / "received.eml";
  write_file(eml, content);
  EXPECT_EQ(dkimpy_verify(tmp_.path(), eml, txt, false, &v), 0) << v << content;
  EXPECT_NE(v.find("verified"), std::string::npos) << v;
  // ... and a one-letter change to a signed header (the rewritten Subject) breaks it: the
  // verification above is not vacuous.
  std::string bad;
  EXPECT_EQ(dkimpy_verify(tmp_.path(), eml, txt, true, &bad), 1) << bad;
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// The upstream is down while five messages arrive (connection refused: every attempt is a
// retry, 300 ms then backing off to at most 1 s), then starts on the same port: all five
// arrive, each exactly once, and each message's delivery log shows the failed attempts
// before the one that delivered.
TEST_F(GatewayE2E, UpstreamDownThenBackDeliversEverythingWithTheRetriesLogged) {
  for (const char* p : {"mime", "store", "http"})
    if (!plugin_built(p)) GTEST_SKIP() << "the " << p << " plugin is not built";
  const std::uint16_t port = unused_port();
  fs::create_directories(tmp_.path() / "gw");
  sluice_process s(tmp_.path() / "gw", store_and_relay_config("127.0.0.1:" + std::to_string(port)));
  ASSERT_TRUE(s.running()) << s.log();
  std::vector<std::string> msgs;
  for (int i = 1; i <= 5; ++i)
    msgs.push_back("From: App <app@example.com>\r\nTo: user@example.net\r\nSubject: down " +
                   std::to_string(i) + "\r\nMessage-ID: <down-" + std::to_string(i) +
                   "@example.com>\r\n\r\nMessage " + std::to_string(i) + ".\r\n");
  const std::string sent = smtplib_send(tmp_.path(), s.endpoints("smtp").at(0), "app@example.com",
                                        {"user@example.net"}, msgs);
  const auto ids = queued_ids(sent);
  ASSERT_EQ(ids.size(), 5u) << sent;

  auto deliveries = [&](const std::string& id) { return relay::deliveries(s, id); };
  // While it is down: at least two failed attempts for every message, none delivered.
  for (const auto& id : ids)
    ASSERT_TRUE(eventually([&] { return deliveries(id).size() >= 2; })) << id << "\n" << s.log();
  for (const auto& id : ids) {
    const auto log = deliveries(id);
    for (const auto& e : log) {
      EXPECT_EQ(e.at("Stage").as_string(), "relay");
      EXPECT_EQ(e.at("Status").as_string(), "retry") << json::serialize(log);
      EXPECT_TRUE(e.at("NextAttempt").is_string()) << json::serialize(log);
    }
  }

  upstream up(tmp_.path() / "up", "", port);
  ASSERT_EQ(up.port(), port) << up.log();
  ASSERT_TRUE(up.wait_for(5, 30s)) << s.log() << up.log();
  std::this_thread::sleep_for(500ms);
  const auto got = up.messages();
  EXPECT_EQ(got.size(), 5u);  // each exactly once
  std::set<std::string> subjects;
  for (const auto& m : got) {
    const std::string c(m.at("content").as_string());
    const auto p = c.find("Subject: ");
    ASSERT_NE(p, std::string::npos) << c;
    subjects.insert(c.substr(p + 9, c.find("\r\n", p) - p - 9));
    EXPECT_EQ(json::serialize(m.at("rcpt_tos")), R"(["user@example.net"])");
  }
  EXPECT_EQ(subjects, (std::set<std::string>{"down 1", "down 2", "down 3", "down 4", "down 5"}));
  // Each message's log: the retries, then the delivery, numbered attempt by attempt.
  for (const auto& id : ids) {
    json::array log;
    ASSERT_TRUE(eventually([&] {
      log = deliveries(id);
      return !log.empty() && log.back().at("Status").as_string() == "done";
    })) << id
        << "\n"
        << s.log();
    ASSERT_GE(log.size(), 3u) << json::serialize(log);
    for (std::size_t i = 0; i < log.size(); ++i) {
      EXPECT_EQ(log[i].at("Attempt").as_int64(), static_cast<std::int64_t>(i + 1));
      EXPECT_EQ(log[i].at("Status").as_string(), i + 1 < log.size() ? "retry" : "done")
          << json::serialize(log);
    }
    const auto& first = log[0].at("Details").as_object();
    EXPECT_EQ(first.at("deferred").as_int64(), 1) << json::serialize(first);
    EXPECT_TRUE(log.back().at("NextAttempt").is_null());
    EXPECT_EQ(log.back().at("Details").at("delivered").as_int64(), 1)
        << json::serialize(log.back());
  }
  EXPECT_EQ(s.stop(), 0) << s.log();
}

}  // namespace

namespace {

// A relay's permanent failure announced by webhook: a webhook stage with `after: relay,
// when: failed` runs once the relay has failed for good (here a recipient refused with 550
// by aiosmtpd), and its template's {{deferred}} carries the relay's outcome, the server's
// exact reply and the per-recipient report. A message the relay delivers announces nothing.
TEST_F(GatewayE2E, PermanentRelayFailureIsAnnouncedByWebhook) {
  if (!plugin_built("webhook")) GTEST_SKIP() << "the webhook plugin is not built";
  upstream up(tmp_.path() / "up",
              "--reject-rcpt '^bad@' --reject-text '550 5.1.1 <bad@example.net>: Recipient "
              "address rejected: User unknown'");
  ASSERT_NE(up.port(), 0) << up.log();
  webhook_test::receiver rx;
  fs::create_directories(tmp_.path() / "gw");
  sluice_process s(tmp_.path() / "gw", R"(log: {level: debug}
spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - {plugin: mime, timeout: 30s}
      - plugin: relay
        timeout: 30s
        retry: {initial: 300ms, max: 1s, lifetime: 1h}
        smarthost: )" + up.address() + R"(
        security: none
      - plugin: webhook
        name: relay_failed
        after: relay
        when: failed
        retry: {initial: 300ms, max: 1s, lifetime: 1h}
        url: )" + rx.url() + R"y(
        template: |
          {"text": "relay failed for {{id}} ({{subject}})", "from": "{{mail_from}}", "relay": "{{deferred}}"}
)y");
  ASSERT_TRUE(s.running()) << s.log();
  const std::string failing =
      smtplib_send(tmp_.path(), s.endpoints("smtp").at(0), "app@example.com",
                   {"good@example.net", "bad@example.net"},
                   {"From: app@example.com\r\nTo: good@example.net\r\nSubject: half refused\r\n"
                    "\r\nHello.\r\n"});
  const auto ids = queued_ids(failing);
  ASSERT_EQ(ids.size(), 1u) << failing;
  const auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u) << s.log();
  const auto body = json::parse(reqs[0].at("body").as_string()).as_object();
  EXPECT_EQ(body.at("text").as_string(), "relay failed for " + ids[0] + " (half refused)");
  EXPECT_EQ(body.at("from").as_string(), "app@example.com");
  const auto& relay = body.at("relay").at("relay").as_object();
  EXPECT_EQ(relay.at("status").as_string(), "failed");
  EXPECT_EQ(relay.at("reply").as_string(),
            "550 5.1.1 <bad@example.net>: Recipient address rejected: User unknown");
  std::map<std::string, std::string> outcome;
  for (const auto& r : relay.at("report").at("recipients").as_array())
    outcome[std::string(r.at("rcpt").as_string())] = r.at("status").as_string();
  EXPECT_EQ(outcome, (std::map<std::string, std::string>{{"bad@example.net", "failed"},
                                                         {"good@example.net", "delivered"}}));
  EXPECT_TRUE(up.wait_for(1));

  // Delivered: the webhook stage is skipped.
  const std::string ok = smtplib_send(
      tmp_.path(), s.endpoints("smtp").at(0), "app@example.com", {"good@example.net"},
      {"From: app@example.com\r\nTo: good@example.net\r\nSubject: fine\r\n\r\nHi.\r\n"});
  ASSERT_EQ(ok.substr(0, 3), "250") << ok;
  ASSERT_TRUE(up.wait_for(2)) << s.log();
  ASSERT_TRUE(eventually([&] {
    for (auto& e : fs::directory_iterator(s.dir() / "spool" / "queue"))
      if (e.path().extension() == ".json") return false;
    return true;
  })) << s.log();
  EXPECT_EQ(rx.requests().size(), 1u);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// `after` must name an earlier deferred stage, and `when` needs `after`: both are config
// errors with their location.
TEST(GatewayConfig, AfterAndWhenAreCheckedWithTheirLocation) {
  temp_dir tmp;
  const std::string head = R"(spool: {path: ./spool}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - {plugin: relay, smarthost: "127.0.0.1:25", security: none}
)";
  struct bad_case {
    std::string stage;
    std::string location;
    std::string text;
  } cases[] = {
      {"      - {plugin: webhook, url: \"http://127.0.0.1:9/\", after: nosuch}\n",
       "sluice.yaml:8:", "\"nosuch\" is not a deferred stage earlier in pipeline \"gateway\""},
      {"      - {plugin: webhook, url: \"http://127.0.0.1:9/\", when: failed}\n",
       "sluice.yaml:8:", "when needs after"},
      {"      - {plugin: webhook, url: \"http://127.0.0.1:9/\", after: relay, when: sometimes}\n",
       "sluice.yaml:8:", "expected done, failed or settled"},
  };
  for (const auto& c : cases) {
    write_file(tmp.path() / "sluice.yaml", head + c.stage);
    std::string out;
    EXPECT_EQ(run_command(shell_quote(sluice_binary()) + " check-config -c " +
                              shell_quote((tmp.path() / "sluice.yaml").string()) +
                              " --plugin-dir " + shell_quote(build_dir() + "/lib/sluice/plugins"),
                          &out),
              78)
        << out;
    EXPECT_NE(out.find(c.location), std::string::npos) << out;
    EXPECT_NE(out.find(c.text), std::string::npos) << out;
  }
}

}  // namespace
