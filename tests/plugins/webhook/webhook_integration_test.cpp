// webhook_integration_test.cpp — the real sluice binary (smtp → mime → store → webhook,
// the webhook deferred from the spool) against receiver.py on 127.0.0.1: the payload is
// Mailpit's MessageSummary (the same as the API's), signed and verified by the receiver;
// 500 then 200 is retried from the spool; 400 is final; a receiver that is down for a
// while gets every event once it is up; a SIGKILL while retries wait loses nothing; the
// rate limit delays without dropping.
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include <boost/json.hpp>

#include "receiver.hpp"
#include "signature.hpp"
#include "sluice_test.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
using sluice::test::run_command;
using sluice::test::sluice_process;
using sluice::test::smtp_send;
using sluice::test::temp_dir;
using webhook_test::header;
using webhook_test::message_ids;
using webhook_test::receiver;

namespace {

bool plugins_built() {
  const fs::path dir = fs::path(sluice::test::build_dir()) / "lib/sluice/plugins";
  for (const char* p : {"webhook.so", "smtp.so", "mime.so", "store.so", "http.so"})
    if (!fs::exists(dir / p)) return false;
  return true;
}

// `webhook` is the stage's YAML keys, one per line, without indentation.
std::string config(const std::string& webhook) {
  std::string stage;
  std::size_t start = 0;
  while (start < webhook.size()) {
    auto end = webhook.find('\n', start);
    if (end == std::string::npos) end = webhook.size();
    stage += "        " + webhook.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return R"(log: {format: text, level: info}
spool: {path: ./spool}
services:
  - name: default
    plugin: store
    path: ./mail.db
listeners:
  - name: smtp
    plugin: smtp
    pipeline: capture
    listen: ["127.0.0.1:0"]
  - name: http
    plugin: http
    pipeline: capture
    listen: ["127.0.0.1:0"]
pipelines:
  - name: capture
    stages:
      - plugin: mime
      - plugin: store
        mailbox: default
      - plugin: webhook
)" + stage;
}

std::string send(const sluice_process& p, const std::string& subject) {
  return smtp_send("127.0.0.1:" + std::to_string(p.port("smtp")), "alice@example.com",
                   {"bob@example.com"},
                   "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.com>\r\n"
                   "Cc: carol@example.org\r\nMessage-ID: <" +
                       subject + "@example.com>\r\nSubject: " + subject +
                       "\r\n\r\nHello from the webhook test.\r\n");
}

bool wait_until(const std::function<bool()>& pred,
                std::chrono::milliseconds limit = std::chrono::seconds(20)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

bool spool_empty(const sluice_process& p) {
  const fs::path q = p.dir() / "spool/queue";
  if (!fs::exists(q)) return true;
  for (const auto& e : fs::directory_iterator(q))
    if (e.path().extension() == ".json") return false;
  return true;
}

const char* kRetry = "retry: {initial: 200ms, max: 400ms, lifetime: 1h}";

void expect_summary_shape(const json::object& s) {
  std::set<std::string> keys;
  for (const auto& kv : s)
    keys.insert(std::string(kv.key()));
  EXPECT_EQ(keys, (std::set<std::string>{"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc",
                                         "ReplyTo", "Subject", "Created", "Username", "Tags",
                                         "Size", "Attachments", "Snippet"}));
  for (const char* k : {"ID", "MessageID", "Subject", "Created", "Username", "Snippet"})
    EXPECT_TRUE(s.at(k).is_string()) << k;
  EXPECT_TRUE(s.at("Read").is_bool());
  EXPECT_TRUE(s.at("From").is_object());
  for (const char* k : {"To", "Cc", "Bcc", "ReplyTo", "Tags"})
    EXPECT_TRUE(s.at(k).is_array()) << k;
  EXPECT_TRUE(s.at("Size").is_number());
  EXPECT_TRUE(s.at("Attachments").is_number());
  for (const auto& a : s.at("To").as_array()) {
    EXPECT_TRUE(a.at("Name").is_string());
    EXPECT_TRUE(a.at("Address").is_string());
  }
}

class WebhookIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!plugins_built()) GTEST_SKIP() << "webhook, smtp, mime, store or http plugin not built";
  }
};

}  // namespace

TEST_F(WebhookIntegration, PostsMailpitsSummarySignedAndEqualToTheApi) {
  receiver rx({"--secret", "whsec_test"});
  ::setenv("SLUICE_TEST_WEBHOOK_SECRET", "whsec_test", 1);
  ::setenv("SLUICE_TEST_WEBHOOK_TOKEN", "tok-123", 1);
  sluice_process p(config("url: " + rx.url() +
                          "\n"
                          "secret: ${SLUICE_TEST_WEBHOOK_SECRET}\n"
                          "headers: {Authorization: \"Bearer ${SLUICE_TEST_WEBHOOK_TOKEN}\"}\n" +
                          kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  ASSERT_EQ(send(p, "compat").substr(0, 3), "250");
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u) << p.log();
  const auto& r = reqs[0];
  EXPECT_EQ(r.at("method").as_string(), "POST");
  EXPECT_EQ(r.at("path").as_string(), "/hook");
  EXPECT_EQ(r.at("signature").as_string(), "ok") << header(r, "x-sluice-signature");
  // Sluice's own verifier agrees with the receiver's.
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  EXPECT_EQ(sluice::webhook::verify("whsec_test", header(r, "x-sluice-signature"),
                                    std::string(r.at("body").as_string()), now),
            sluice::webhook::verify_result::ok);
  EXPECT_EQ(sluice::webhook::verify("wrong", header(r, "x-sluice-signature"),
                                    std::string(r.at("body").as_string()), now),
            sluice::webhook::verify_result::mismatch);
  EXPECT_EQ(header(r, "content-type"), "application/json");
  EXPECT_EQ(header(r, "user-agent").rfind("Sluice/", 0), 0u);
  EXPECT_EQ(header(r, "authorization"), "Bearer tok-123");
  EXPECT_EQ(header(r, "x-sluice-attempt"), "1");
  // The secret is never logged.
  EXPECT_EQ(p.log().find("whsec_test"), std::string::npos);

  const json::value body = json::parse(r.at("body").as_string());
  ASSERT_TRUE(body.is_object());
  expect_summary_shape(body.as_object());
  EXPECT_EQ(body.at("Subject").as_string(), "compat");
  EXPECT_EQ(body.at("MessageID").as_string(), "compat@example.com");
  EXPECT_EQ(body.at("From").at("Address").as_string(), "alice@example.com");
  EXPECT_EQ(body.at("From").at("Name").as_string(), "Alice");
  EXPECT_EQ(body.at("Cc").at(0).at("Address").as_string(), "carol@example.org");
  EXPECT_EQ(header(r, "x-sluice-message-id"), std::string(body.at("ID").as_string()));

  // The same message as the Mailpit API lists it: every field a consumer reads agrees.
  std::string out;
  ASSERT_EQ(run_command("curl -sS --max-time 10 http://127.0.0.1:" +
                            std::to_string(p.port("http")) + "/api/v1/messages",
                        &out, false),
            0);
  const json::value list = json::parse(out);
  const json::object& api = list.at("messages").at(0).as_object();
  for (const char* k : {"ID", "MessageID", "From", "To", "Cc", "Subject", "Created", "Username",
                        "Size", "Attachments", "Snippet"}) {
    EXPECT_EQ(json::serialize(api.at(k)), json::serialize(body.at(k))) << k;
  }
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); }));
  EXPECT_EQ(p.stop(), 0) << p.log();  // a clean exit (and, under ASan, no leak or error)
}

TEST_F(WebhookIntegration, WithMailboxTheSummaryIsTheStoredOneWithTags) {
  receiver rx;
  sluice_process p(config("url: " + rx.url() + "\nmailbox: default\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  const std::string reply = smtp_send("127.0.0.1:" + std::to_string(p.port("smtp")),
                                      "alice@example.com", {"bob@example.com"},
                                      "From: alice@example.com\r\nTo: bob@example.com\r\n"
                                      "X-Tags: deploy, ci\r\nSubject: tagged\r\n\r\nbody\r\n");
  ASSERT_EQ(reply.substr(0, 3), "250");
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u) << p.log();
  const json::value body = json::parse(reqs[0].at("body").as_string());
  expect_summary_shape(body.as_object());
  std::set<std::string> tags;
  for (const auto& t : body.at("Tags").as_array())
    tags.insert(std::string(t.as_string()));
  EXPECT_EQ(tags, (std::set<std::string>{"ci", "deploy"})) << json::serialize(body);
}

TEST_F(WebhookIntegration, FiveHundredThenTwoHundredIsRetriedFromTheSpool) {
  receiver rx({"--statuses", "500,500,200"});
  sluice_process p(config("url: " + rx.url() + "\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  ASSERT_EQ(send(p, "retried").substr(0, 3), "250");
  auto reqs = rx.wait_for(3);
  ASSERT_EQ(reqs.size(), 3u) << p.log();
  for (std::size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(header(reqs[i], "x-sluice-attempt"), std::to_string(i + 1)) << p.log();
    EXPECT_EQ(reqs[i].at("body"), reqs[0].at("body"));  // the same event, re-sent
  }
  EXPECT_EQ(message_ids(reqs).size(), 1u);
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); })) << p.log();
  EXPECT_NE(p.log().find("deferred stage will retry"), std::string::npos);
  // The spool entry goes before the log line is written: wait for the line, not just the entry.
  EXPECT_TRUE(wait_until([&] { return p.log().find("deferred stage done") != std::string::npos; }))
      << p.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  EXPECT_EQ(rx.requests().size(), 3u) << p.log();  // done means done: no further request
  EXPECT_EQ(p.stop(), 0) << p.log();
}

// Each attempt's report reaches the message's delivery log (kernel "delivery" event →
// store → GET /api/v1/message/{ID}/deliveries); the Retry-After state stays in the spool.
TEST_F(WebhookIntegration, TheDeliveryReportIsLoggedAndRetryAfterIsKeptInTheSpool) {
  receiver rx({"--statuses", "503", "--retry-after", "3600"});
  sluice_process p(config("url: \"http://u:pw@127.0.0.1:" + std::to_string(rx.port()) +
                          "/hook?key=k3y\"\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  ASSERT_EQ(send(p, "reported").substr(0, 3), "250");
  ASSERT_EQ(rx.wait_for(1).size(), 1u) << p.log();
  const std::string id = header(rx.requests()[0], "x-sluice-message-id");
  json::array log;
  ASSERT_TRUE(wait_until([&] {
    std::string out;
    if (run_command("curl -sS --max-time 10 http://127.0.0.1:" + std::to_string(p.port("http")) +
                        "/api/v1/message/" + id + "/deliveries",
                    &out, false) != 0) {
      return false;
    }
    boost::system::error_code ec;
    auto v = json::parse(out, ec);
    if (ec || !v.is_object() || !v.as_object().contains("Deliveries")) return false;
    log = v.at("Deliveries").as_array();
    return !log.empty();
  })) << p.log();
  EXPECT_EQ(log[0].at("Stage").as_string(), "webhook");
  EXPECT_EQ(log[0].at("Status").as_string(), "retry");
  const json::object& rep = log[0].at("Details").as_object();
  EXPECT_EQ(rep.at("status").as_int64(), 503);
  EXPECT_EQ(rep.at("attempt").as_int64(), 1);
  EXPECT_EQ(rep.at("result").as_string(), "retry");
  EXPECT_EQ(rep.at("url").as_string(), "http://127.0.0.1:" + std::to_string(rx.port()) + "/hook");
  EXPECT_EQ(rep.at("retry_after_s").as_int64(), 3600);
  EXPECT_TRUE(rep.at("duration_ms").is_int64());
  EXPECT_NE(std::string(rep.at("response").as_string()).find("receiver says no"),
            std::string::npos);
  const fs::path record = p.dir() / "spool/queue" / (id + ".json");
  json::object attrs;
  ASSERT_TRUE(wait_until([&] {
    boost::system::error_code ec;
    auto v = json::parse(sluice::test::read_file(record), ec);
    if (ec || !v.is_object()) return false;
    const auto* a = v.at("message").as_object().if_contains("attributes");
    if (!a || !a->as_object().contains("webhook")) return false;
    attrs = a->as_object();
    return true;
  })) << p.log();
  EXPECT_FALSE(attrs.contains("delivery_report"));  // moved into the event, per attempt
  EXPECT_TRUE(attrs.at("webhook").at("webhook").at("not_before_ms").is_int64());
  // The later attempts respect Retry-After: the receiver hears nothing more.
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(rx.requests().size(), 1u);
  EXPECT_EQ(p.log().find("k3y"), std::string::npos);
  EXPECT_EQ(p.log().find(":pw@"), std::string::npos);
  EXPECT_EQ(p.stop(), 0) << p.log();  // stops while a retry waits in the spool
}

TEST_F(WebhookIntegration, FourHundredIsAPermanentFailure) {
  receiver rx({"--statuses", "400"});
  sluice_process p(config("url: " + rx.url() + "\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  ASSERT_EQ(send(p, "refused").substr(0, 3), "250");
  ASSERT_EQ(rx.wait_for(1).size(), 1u) << p.log();
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); })) << p.log();
  EXPECT_TRUE(wait_until([&] {
    return p.log().find("deferred stage failed") != std::string::npos;
  })) << p.log();
  EXPECT_NE(p.log().find("answered 400"), std::string::npos) << p.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // several retry intervals
  EXPECT_EQ(rx.requests().size(), 1u);
}

TEST_F(WebhookIntegration, AReceiverThatIsDownForAWhileGetsEveryEvent) {
  const int port = webhook_test::free_port();
  temp_dir logs;
  const fs::path log = logs.path() / "requests.jsonl";
  sluice_process p(config("url: http://127.0.0.1:" + std::to_string(port) + "/hook\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  for (int i = 0; i < 5; ++i)
    ASSERT_EQ(send(p, "down-" + std::to_string(i)).substr(0, 3), "250");
  // Every message failed at least once (connection refused) before the receiver is up.
  ASSERT_TRUE(wait_until([&] {
    std::size_t n = 0, pos = 0;
    const std::string l = p.log();
    while ((pos = l.find("deferred stage will retry", pos)) != std::string::npos) {
      ++n;
      ++pos;
    }
    return n >= 5;
  })) << p.log();
  receiver rx({}, port, log);
  EXPECT_TRUE(wait_until([&] { return message_ids(rx.requests()).size() == 5; })) << p.log();
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); }));
}

TEST_F(WebhookIntegration, ASigkillWhileRetriesWaitLosesNothing) {
  const int port = webhook_test::free_port();
  temp_dir d;
  const std::string cfg = config("url: http://127.0.0.1:" + std::to_string(port) +
                                 "/hook\nretry: {initial: 300ms, max: 600ms, lifetime: 1h}");
  std::set<std::string> failed_ids;
  {
    receiver failing({"--statuses", "503"}, port);
    sluice_process p(d.path(), cfg);
    ASSERT_TRUE(p.running()) << p.log();
    for (int i = 0; i < 3; ++i)
      ASSERT_EQ(send(p, "killed-" + std::to_string(i)).substr(0, 3), "250");
    ASSERT_TRUE(wait_until([&] { return message_ids(failing.requests()).size() == 3; }));
    failed_ids = message_ids(failing.requests());
    p.kill();  // SIGKILL: the retries are only in the spool now
  }
  receiver rx({}, port);
  sluice_process p(d.path(), cfg);
  ASSERT_TRUE(p.running()) << p.log();
  EXPECT_TRUE(wait_until([&] { return message_ids(rx.requests()) == failed_ids; })) << p.log();
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); }));
}

TEST_F(WebhookIntegration, TheRateLimitDelaysButDeliversEverything) {
  receiver rx;
  // 4 per second, burst 1, for 8 messages: the later ones wait in the stage (first attempt).
  sluice_process p(config("url: " + rx.url() + "\nrate: 4/s\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  for (int i = 0; i < 8; ++i)
    ASSERT_EQ(send(p, "rated-" + std::to_string(i)).substr(0, 3), "250");
  EXPECT_TRUE(
      wait_until([&] { return message_ids(rx.requests()).size() == 8; }, std::chrono::seconds(30)))
      << p.log();
  for (const auto& r : rx.requests())
    EXPECT_EQ(header(r, "x-sluice-attempt"), "1");
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); }));
}

TEST_F(WebhookIntegration, ARateThatCannotWaitRetriesFromTheSpoolInstead) {
  receiver rx;
  sluice_process p(config("url: " + rx.url() + "\nrate: 5/s\nrate_max_wait: 0s\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  for (int i = 0; i < 6; ++i)
    ASSERT_EQ(send(p, "overflow-" + std::to_string(i)).substr(0, 3), "250");
  EXPECT_TRUE(
      wait_until([&] { return message_ids(rx.requests()).size() == 6; }, std::chrono::seconds(30)))
      << p.log();
  EXPECT_TRUE(wait_until([&] { return spool_empty(p); }));
}

TEST_F(WebhookIntegration, HttpsVerifiesWithCaFileAndFailsWithoutIt) {
  temp_dir pki;
  std::string out;
  ASSERT_TRUE(webhook_test::make_test_pki(pki.path(), &out)) << out;
  const std::string p_ = pki.path().string();
  receiver rx({"--cert", p_ + "/server.pem", "--key", p_ + "/server.key"});
  const std::string url = "https://localhost:" + std::to_string(rx.port()) + "/hook";
  {
    // The system trust store does not know the test CA: retried, never delivered.
    sluice_process p(config("url: " + url + "\n" + kRetry));
    ASSERT_TRUE(p.running()) << p.log();
    ASSERT_EQ(send(p, "untrusted").substr(0, 3), "250");
    EXPECT_TRUE(wait_until([&] {
      return p.log().find("certificate verification failed") != std::string::npos;
    })) << p.log();
    EXPECT_EQ(rx.requests().size(), 0u);
  }
  sluice_process p(config("url: " + url + "\nca_file: " + p_ + "/ca.pem\n" + kRetry));
  ASSERT_TRUE(p.running()) << p.log();
  ASSERT_EQ(send(p, "trusted").substr(0, 3), "250");
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u) << p.log();
  EXPECT_EQ(json::parse(reqs[0].at("body").as_string()).at("Subject").as_string(), "trusted");
}

TEST_F(WebhookIntegration, CheckConfigReportsBadKeysWithTheirLocation) {
  temp_dir d;
  sluice::test::write_file(d.path() / "sluice.yaml",
                           config("url: http://127.0.0.1:9/hook\nrate: lots"));
  std::string out;
  const int rc = run_command(
      sluice::test::sluice_binary() + " check-config -c " + (d.path() / "sluice.yaml").string(),
      &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("sluice.yaml:"), std::string::npos) << out;
  EXPECT_NE(out.find("expected a rate"), std::string::npos) << out;
}
