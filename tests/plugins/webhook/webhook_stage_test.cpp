// webhook_stage_test.cpp — the webhook stage loaded from webhook.so into a test host (the
// kernel's loader and registry) and called directly, against receiver.py on 127.0.0.1:
// verdicts, the delivery report, Basic auth from the URL, templates, Retry-After, the SSRF
// guard, response limits and HTTPS verification with a CA made by openssl here.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>

#include <boost/json.hpp>

#include "plugin_host.hpp"
#include "receiver.hpp"
#include "sluice/parsed_message.hpp"

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace sluice;
using sluice::test::plugin_host;
using sluice::test::temp_dir;
using webhook_test::header;
using webhook_test::receiver;

namespace {

bool plugin_built() {
  return fs::exists(fs::path(sluice::test::build_dir()) / "lib/sluice/plugins/webhook.so");
}

std::shared_ptr<message> sample_message() {
  auto m = std::make_shared<message>();
  m->id = make_message_id();
  m->envelope.mail_from = "alice@example.com";
  m->envelope.recipients.push_back({"bob@example.com", {}});
  m->envelope.received_at = std::chrono::system_clock::now();
  m->raw = message_body::from_string(
      "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: x\r\n\r\nhello\r\n");
  parsed_message v;
  v.from = mail_address{"Alice", "alice@example.com"};
  v.to = {{"", "bob@example.com"}};
  v.subject = "Quote \" backslash \\ newline \n tab \t done";
  v.message_id = "abc@example.com";
  v.snippet = "hello";
  m->attributes["mime"] = to_json(v);
  return m;
}

struct outcome {
  verdict v;
  json::object report;
};

outcome run(plugin_host& host, const std::shared_ptr<stage>& s, const std::shared_ptr<message>& m,
            unsigned attempt = 1) {
  stage_call call{phase::deferred, attempt, "p", logger("webhook-test")};
  outcome o;
  o.v = host.run(s->process(m, call), std::chrono::seconds(30));
  if (auto* r = m->attributes.if_contains("delivery_report"); r && r->is_object())
    o.report = r->as_object();
  return o;
}

class WebhookStage : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!plugin_built()) GTEST_SKIP() << "webhook.so is not built";
  }
  plugin_host host_;
};

}  // namespace

TEST_F(WebhookStage, DeliversTheSummaryAndReportsTheAttempt) {
  receiver rx({"--secret", "k3y"});
  auto s = host_.make_stage("webhook", "url: " + rx.url() + "\nsecret: k3y\n");
  auto m = sample_message();
  auto o = run(host_, s, m, 3);
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].at("signature").as_string(), "ok");
  EXPECT_EQ(header(reqs[0], "x-sluice-attempt"), "3");
  EXPECT_EQ(header(reqs[0], "x-sluice-message-id"), m->id);
  const json::value body = json::parse(reqs[0].at("body").as_string());
  EXPECT_EQ(body.at("ID").as_string(), m->id);
  EXPECT_EQ(body.at("Subject").as_string(), "Quote \" backslash \\ newline \n tab \t done");

  EXPECT_EQ(o.report.at("url").as_string(), rx.url());
  EXPECT_EQ(o.report.at("status").as_int64(), 200);
  EXPECT_EQ(o.report.at("attempt").as_int64(), 3);
  EXPECT_EQ(o.report.at("result").as_string(), "delivered");
  EXPECT_NE(std::string(o.report.at("response").as_string()).find("received"), std::string::npos);
  EXPECT_GE(o.report.at("duration_ms").as_int64(), 0);
  EXPECT_EQ(o.report.at("address").as_string(), "127.0.0.1:" + std::to_string(rx.port()));
}

TEST_F(WebhookStage, AnEmptyUrlDisablesTheStage) {
  auto s = host_.make_stage("webhook", "url: \"\"\n");
  auto m = sample_message();
  auto o = run(host_, s, m);
  EXPECT_EQ(o.v.kind, verdict_kind::continue_);
  EXPECT_FALSE(m->attributes.contains("delivery_report"));
}

TEST_F(WebhookStage, UrlCredentialsBecomeBasicAuthAndStayOutOfTheReport) {
  receiver rx;
  const std::string url =
      "http://user:p%40ss@127.0.0.1:" + std::to_string(rx.port()) + "/hook?token=t0ps3cret";
  auto s = host_.make_stage("webhook", "url: \"" + url + "\"\n");
  auto o = run(host_, s, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].at("path").as_string(), "/hook?token=t0ps3cret");
  EXPECT_EQ(header(reqs[0], "authorization"), "Basic dXNlcjpwQHNz");  // user:p@ss
  const std::string reported(o.report.at("url").as_string());
  EXPECT_EQ(reported, "http://127.0.0.1:" + std::to_string(rx.port()) + "/hook");
  EXPECT_EQ(json::serialize(o.report).find("t0ps3cret"), std::string::npos);
}

TEST_F(WebhookStage, A4xxIsPermanentWithTheStatusAndAnExcerpt) {
  receiver rx({"--statuses", "400"});
  auto s = host_.make_stage("webhook", "url: " + rx.url() + "\n");
  auto o = run(host_, s, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::reject);
  EXPECT_NE(o.v.reply.text.find("400"), std::string::npos) << o.v.reply.text;
  // The body's CR LF became spaces: the reply stays one line.
  EXPECT_NE(o.v.reply.text.find("receiver says no (400)  second line"), std::string::npos)
      << o.v.reply.text;
  EXPECT_EQ(o.v.reply.text.find('\n'), std::string::npos);
  EXPECT_EQ(o.report.at("status").as_int64(), 400);
  EXPECT_EQ(o.report.at("result").as_string(), "failed");
}

TEST_F(WebhookStage, FiveHundredAnd429AreRetriedAndRetryAfterIsHonoured) {
  {
    receiver rx({"--statuses", "500"});
    auto s = host_.make_stage("webhook", "url: " + rx.url() + "\n");
    auto o = run(host_, s, sample_message());
    EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
    EXPECT_EQ(o.report.at("result").as_string(), "retry");
  }
  receiver rx({"--statuses", "429,200", "--retry-after", "120"});
  auto s = host_.make_stage("webhook", "url: " + rx.url() + "\n");
  auto m = sample_message();
  const auto before = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  auto o = run(host_, s, m);
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_EQ(o.report.at("status").as_int64(), 429);
  EXPECT_EQ(o.report.at("retry_after_s").as_int64(), 120);
  const auto nb = m->attributes.at("webhook").at("webhook").at("not_before_ms").as_int64();
  EXPECT_GE(nb, before + 119000);
  EXPECT_LE(nb, before + 125000);
  // The next attempt comes before the receiver's time: no request is made.
  o = run(host_, s, m, 2);
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_NE(std::string(o.report.at("error").as_string()).find("Retry-After"), std::string::npos);
  EXPECT_EQ(rx.requests().size(), 1u);
}

TEST_F(WebhookStage, RetryAfterIsBoundedByRetryAfterMax) {
  receiver rx({"--statuses", "503", "--retry-after", "86400"});
  auto s = host_.make_stage("webhook", "url: " + rx.url() + "\nretry_after_max: 2s\n");
  auto m = sample_message();
  auto o = run(host_, s, m);
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_EQ(o.report.at("retry_after_s").as_int64(), 2);
}

TEST_F(WebhookStage, ANetworkErrorIsRetried) {
  const int port = webhook_test::free_port();
  auto s = host_.make_stage("webhook", "url: http://127.0.0.1:" + std::to_string(port) + "/hook\n");
  auto o = run(host_, s, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_NE(std::string(o.report.at("error").as_string()).find("cannot connect"), std::string::npos)
      << json::serialize(o.report);
}

TEST_F(WebhookStage, AReceiverThatNeverAnswersTimesOutAndIsRetried) {
  // A listening socket nobody accepts from: the connection completes in the backlog, the
  // answer never comes.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 8), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  auto s =
      host_.make_stage("webhook", "url: http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) +
                                      "/hook\nconnect_timeout: 300ms\nrequest_timeout: 700ms\n");
  auto o = run(host_, s, sample_message());
  ::close(fd);
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_NE(o.v.reply.text.find("timed out after 700 ms"), std::string::npos) << o.v.reply.text;
  EXPECT_EQ(o.report.at("result").as_string(), "retry");
}

TEST_F(WebhookStage, TemplatedUrlsToLoopbackNeedAllowPrivate) {
  receiver rx;
  const std::string base = "http://127.0.0.1:" + std::to_string(rx.port());
  for (const std::string& url :
       {base + "/in/{{rcpt_domain}}",
        "http://localhost:" + std::to_string(rx.port()) + "/in/{{rcpt_domain}}",
        "http://[::ffff:127.0.0.1]:" + std::to_string(rx.port()) + "/in/{{id}}"}) {
    auto s = host_.make_stage("webhook", "url: \"" + url + "\"\n");
    auto o = run(host_, s, sample_message());
    EXPECT_EQ(o.v.kind, verdict_kind::reject) << url;
    EXPECT_EQ(o.v.reply.enhanced, "5.7.1");
    EXPECT_NE(o.v.reply.text.find("allow_private"), std::string::npos) << o.v.reply.text;
    EXPECT_NE(o.v.reply.text.find("loopback"), std::string::npos) << o.v.reply.text;
    // A name is told with its address; an IP literal is named once.
    const bool literal = url.find("localhost") == std::string::npos;
    if (literal) {
      EXPECT_EQ(o.v.reply.text.find(" is 127.0.0.1"), std::string::npos) << o.v.reply.text;
      EXPECT_EQ(o.v.reply.text.find(" is ::ffff"), std::string::npos) << o.v.reply.text;
    } else {
      EXPECT_NE(o.v.reply.text.find("localhost is 127.0.0.1 (loopback)"), std::string::npos)
          << o.v.reply.text;
    }
  }
  EXPECT_EQ(rx.requests().size(), 0u);
  auto s = host_.make_stage("webhook",
                            "url: \"" + base + "/in/{{rcpt_domain}}\"\nallow_private: true\n");
  auto o = run(host_, s, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].at("path").as_string(), "/in/example.com");
}

TEST_F(WebhookStage, ATemplateIsRenderedWithJsonEscaping) {
  receiver rx;
  auto s = host_.make_stage("webhook", "url: " + rx.url() +
                                           "\n"
                                           "template: |\n"
                                           "  {\"text\": \"New mail: {{subject}}\", \"size\": "
                                           "\"{{size}}\", \"to\": \"{{to}}\", \"id\": \"{{id}}\"}\n"
                                           "headers:\n"
                                           "  X-Chat-Token: abc\n"
                                           "  User-Agent: my-agent\n");
  auto m = sample_message();
  auto o = run(host_, s, m);
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  auto reqs = rx.wait_for(1);
  ASSERT_EQ(reqs.size(), 1u);
  const json::value body = json::parse(reqs[0].at("body").as_string());
  EXPECT_EQ(body.at("text").as_string(), "New mail: Quote \" backslash \\ newline \n tab \t done");
  EXPECT_TRUE(body.at("size").is_number());
  EXPECT_EQ(body.at("to").at(0).as_string(), "bob@example.com");
  EXPECT_EQ(body.at("id").as_string(), m->id);
  EXPECT_EQ(header(reqs[0], "x-chat-token"), "abc");
  EXPECT_EQ(header(reqs[0], "user-agent"), "my-agent");
  EXPECT_EQ(header(reqs[0], "content-type"), "application/json");
}

TEST_F(WebhookStage, ALargeResponseIsCutAtTheLimit) {
  receiver rx({"--response-bytes", "200000"});
  auto s = host_.make_stage("webhook", "url: " + rx.url() + "\nmax_response_size: 4KB\n");
  auto o = run(host_, s, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  EXPECT_TRUE(o.report.at("response_truncated").as_bool());
  EXPECT_LE(o.report.at("response").as_string().size(), 1024u);
}

TEST_F(WebhookStage, HttpsVerifiesTheChainAndTheHostName) {
  temp_dir d;
  const std::string p = d.path().string();
  // A CA and a server certificate for "localhost" only (no IP address in it).
  std::string out;
  ASSERT_TRUE(webhook_test::make_test_pki(d.path(), &out)) << out;
  receiver rx({"--cert", p + "/server.pem", "--key", p + "/server.key"});
  const std::string port = std::to_string(rx.port());

  auto ok = host_.make_stage(
      "webhook", "url: https://localhost:" + port + "/hook\nca_file: " + p + "/ca.pem\n");
  auto o = run(host_, ok, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  EXPECT_EQ(rx.wait_for(1).size(), 1u);

  // The system store does not know the test CA.
  auto untrusted = host_.make_stage("webhook", "url: https://localhost:" + port + "/hook\n");
  o = run(host_, untrusted, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_NE(o.v.reply.text.find("certificate verification failed"), std::string::npos)
      << o.v.reply.text;

  // Trusted chain, wrong name: the certificate is for localhost, not 127.0.0.1.
  auto wrong_name = host_.make_stage(
      "webhook", "url: https://127.0.0.1:" + port + "/hook\nca_file: " + p + "/ca.pem\n");
  o = run(host_, wrong_name, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::tempfail);
  EXPECT_NE(o.v.reply.text.find("IP address mismatch"), std::string::npos) << o.v.reply.text;

  // Explicitly switched off, it connects anyway.
  auto insecure =
      host_.make_stage("webhook", "url: https://127.0.0.1:" + port + "/hook\ntls_verify: false\n");
  o = run(host_, insecure, sample_message());
  EXPECT_EQ(o.v.kind, verdict_kind::continue_) << o.v.reply.text;
  EXPECT_EQ(rx.wait_for(2).size(), 2u);
}

TEST_F(WebhookStage, TheRateLimitDelaysAndTheOverflowIsRetriedNotDropped) {
  receiver rx;
  // 20/s with burst 1 and no waiting allowed: of two immediate calls the second tempfails.
  auto s = host_.make_stage("webhook", "url: " + rx.url() + "\nrate: 20/s\nrate_max_wait: 0s\n");
  auto first = run(host_, s, sample_message());
  auto m2 = sample_message();
  auto second = run(host_, s, m2);
  EXPECT_EQ(first.v.kind, verdict_kind::continue_);
  if (second.v.kind == verdict_kind::tempfail) {
    EXPECT_NE(second.v.reply.text.find("rate limit"), std::string::npos) << second.v.reply.text;
  }
  // Allowed to wait, every call is delivered on its first attempt.
  auto patient = host_.make_stage("webhook", "url: " + rx.url() + "\nrate: 20/s\n");
  for (int i = 0; i < 5; ++i) {
    auto o = run(host_, patient, sample_message());
    EXPECT_EQ(o.v.kind, verdict_kind::continue_) << i << ": " << o.v.reply.text;
  }
  const std::size_t expected = second.v.kind == verdict_kind::tempfail ? 6u : 7u;
  EXPECT_EQ(rx.wait_for(expected).size(), expected);
}
