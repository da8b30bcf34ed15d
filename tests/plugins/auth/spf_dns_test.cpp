// spf_dns_test.cpp — the SPF check end to end over real DNS:
//  * the whole OpenSPF RFC 7208 suite again, each scenario's zone served by
//    tests/data/auth/spf_dns_server.py (python3-dnslib) on loopback and looked up through the
//    real resolver plugin (c-ares, loaded in-process): every case must pass here too;
//  * the real sluice binary with smtp → spf → auth_results → store: the client address and
//    HELO set with XCLIENT by Python's smtplib; a pass is stored with its "auth" attribute and
//    Authentication-Results / Received-SPF fields, a fail is refused with 550 5.7.23.
// Every wait is bounded: server start 10 s, each lookup by the resolver's timeout.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>
#include <chrono>
#include <filesystem>
#include <thread>

#include "auth_results.hpp"
#include "plugin_host.hpp"
#include "sluice/resolver.hpp"
#include "sluice_test.hpp"
#include "spf.hpp"
#include "spf_zone.hpp"
#include "store_reader.hpp"

namespace {

using namespace sluice;
using namespace sluice::test;
using namespace sluice::test::spf_suite;

std::string suite_path() {
  return test_data_dir() + "/auth/rfc7208-tests.yml";
}

// spf_dns_server.py serving one scenario.
class suite_dns {
 public:
  explicit suite_dns(std::size_t scenario)
      : server_({"/usr/bin/python3", test_data_dir() + "/auth/spf_dns_server.py", "--suite",
                 suite_path(), "--scenario", std::to_string(scenario)},
                "spf_dns_server.py", "python3-dnslib, python3-yaml?") {}
  int port() const { return server_.port(); }

 private:
  ready_server server_;
};

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

TEST(spf_over_dns, whole_rfc7208_suite_through_the_resolver_plugin) {
  const auto scenarios = load(suite_path());
  std::size_t ran = 0;
  for (std::size_t i = 0; i < scenarios.size(); ++i) {
    suite_dns server(i);
    plugin_host host;
    // Short timeout: the suite's TIMEOUT names are never answered. No cache, so every case
    // sees the wire.
    host.make_service("resolver",
                      "servers: [\"127.0.0.1:" + std::to_string(server.port()) +
                          "\"]\ntimeout: 300ms\ntries: 1\ncache: false\n",
                      "default", false);
    auto dns = host.registry().get<resolver>();
    ASSERT_TRUE(dns);
    for (const auto& t : scenarios[i].tests) {
      auto o = host.run(auth::spf::check_mail_from(dns, t.host, t.mailfrom, t.helo,
                                                   "receiver.example.net", 1700000000));
      std::string got(auth::spf::to_string(o.res));
      EXPECT_NE(std::find(t.results.begin(), t.results.end(), got), t.results.end())
          << t.scenario << " / " << t.name << ": got " << got << " (" << o.reason
          << "), expected one of " << ::testing::PrintToString(t.results);
      if (!t.explanation.empty() && t.explanation != "DEFAULT" && got == "fail") {
        EXPECT_EQ(lower(o.explanation), lower(t.explanation)) << t.name;
      }
      ++ran;
    }
  }
  EXPECT_GE(ran, 200u);
}

// ------------------------------------------------------------ the real binary, XCLIENT

std::size_t scenario_index(const std::string& description) {
  const auto s = load(suite_path());
  for (std::size_t i = 0; i < s.size(); ++i)
    if (s[i].description == description) return i;
  throw std::runtime_error("no scenario " + description);
}

std::string config(int dns_port) {
  return R"(log: {format: text, level: info}
spool: {path: ./spool}
services:
  - name: default
    plugin: resolver
    servers: ["127.0.0.1:)" +
         std::to_string(dns_port) + R"("]
    timeout: 500ms
    tries: 1
  - name: store
    plugin: store
    path: ./mail.db
listeners:
  - name: smtp
    plugin: smtp
    pipeline: in
    listen: ["127.0.0.1:0"]
    xclient_trusted: ["127.0.0.0/8"]
pipelines:
  - name: in
    stages:
      - {plugin: spf, receiver: mx.receiver.example, on_fail: reject}
      - {plugin: auth_results, authserv_id: mx.receiver.example}
      - {plugin: store}
)";
}

// Sends one message with smtplib after XCLIENT ADDR/HELO; prints "<code> <text>" of the
// DATA (or the first refused) reply.
std::string send_with_xclient(const std::string& endpoint, const std::string& addr,
                              const std::string& helo, const std::string& from) {
  const std::string script = R"(
import smtplib, sys
host, port = sys.argv[1].rsplit(':', 1)
s = smtplib.SMTP(host, int(port), timeout=20)
s.ehlo('client.test')
code, msg = s.docmd('XCLIENT', 'ADDR=' + sys.argv[2] + ' HELO=' + sys.argv[3])
if code != 220: print(code, msg.decode()); sys.exit(0)
s.ehlo(sys.argv[3])
try:
    s.sendmail(sys.argv[4], ['rcpt@receiver.example'],
               b'From: <' + sys.argv[4].encode() + b'>\r\nSubject: spf\r\n\r\nbody\r\n')
    print(250, 'ok')
except smtplib.SMTPResponseException as e:
    print(e.smtp_code, e.smtp_error.decode())
except smtplib.SMTPRecipientsRefused as e:
    c, m = list(e.recipients.values())[0]; print(c, m.decode())
s.quit()
)";
  std::string out;
  run_command("/usr/bin/python3 -c " + shell_quote(script) + " " + shell_quote(endpoint) + " " +
                  shell_quote(addr) + " " + shell_quote(helo) + " " + shell_quote(from),
              &out);
  return out;
}

TEST(spf_stage, xclient_cases_through_the_real_binary) {
  // The suite's "IP4 mechanism syntax" zone; the cases below are its own.
  suite_dns server(scenario_index("IP4 mechanism syntax"));
  temp_dir dir;
  {
    sluice_process p(dir.path(), config(server.port()));
    ASSERT_TRUE(p.running());
    const std::string ep = p.endpoints("smtp").at(0);
    // cidr4-0: "v=spf1 ip4:1.1.1.1/0 -all" → pass for any address.
    EXPECT_EQ(
        send_with_xclient(ep, "1.2.3.4", "mail.example.com", "foo@e1.example.com").substr(0, 3),
        "250");
    // cidr4-32 / e2: "v=spf1 ip4:1.2.3.4/32 -all" from 1.2.3.5 → fail → rejected.
    std::string r = send_with_xclient(ep, "1.2.3.5", "mail.example.com", "foo@e2.example.com");
    EXPECT_EQ(r.substr(0, 3), "550") << r;
    EXPECT_NE(r.find("5.7.23"), std::string::npos) << r;
    // bare-ip4: "v=spf1 ip4 -all" → permerror, tagged (on_permerror: tag) and stored.
    EXPECT_EQ(
        send_with_xclient(ep, "1.2.3.4", "mail.example.com", "foo@e5.example.com").substr(0, 3),
        "250");
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  store_reader store(dir.path(), "mail.db");
  auto listed = store.all();
  ASSERT_EQ(listed.size(), 2u);
  // The attributes come with get() only: read them through the store's mailbox service.
  plugin_host reader({build_dir() + "/lib/sluice/plugins"}, dir.path(), 1);
  reader.make_service("store", "path: mail.db\n");
  auto mailbox = reader.registry().get<mailbox_service>();
  int pass = 0, permerror = 0;
  for (const auto& summary : listed) {
    auto got = reader.run(mailbox->get("default", summary.id));
    ASSERT_TRUE(got.has_value());
    const stored_message& m = *got;
    const auto& spf = m.attributes.at("auth").at("spf").as_object();
    std::string res(spf.at("result").as_string());
    std::string raw = store.raw(m.id, true).value_or("");
    if (res == "pass") {
      ++pass;
      EXPECT_EQ(spf.at("mailfrom").as_string(), "foo@e1.example.com");
      EXPECT_EQ(spf.at("client_ip").as_string(), "1.2.3.4");
      EXPECT_EQ(spf.at("reason").as_string(), "ip4:1.1.1.1/0");
      EXPECT_NE(raw.find("Authentication-Results: mx.receiver.example; spf=pass"),
                std::string::npos)
          << raw;
      EXPECT_NE(raw.find("smtp.mailfrom=foo@e1.example.com"), std::string::npos) << raw;
      EXPECT_NE(raw.find("Received-SPF: pass"), std::string::npos) << raw;
      ASSERT_TRUE(spf.contains("helo"));
    } else if (res == "permerror") {
      ++permerror;
      EXPECT_NE(raw.find("spf=permerror"), std::string::npos) << raw;
    }
  }
  EXPECT_EQ(pass, 1);
  EXPECT_EQ(permerror, 1);
}

}  // namespace

// RFC 8601 §5: an Authentication-Results field that arrived with the message and names this
// server's authserv-id is forged; the auth_results stage removes it (any case, folded, after
// a comment) and keeps the fields of other authserv-ids.
TEST(auth_results_stage, removes_incoming_fields_that_claim_its_authserv_id) {
  temp_dir dir;
  plugin_host host({build_dir() + "/lib/sluice/plugins"}, dir.path(), 1);
  auto s = host.make_stage("auth_results", "authserv_id: mx.receiver.example\n");
  auto m = std::make_shared<message>();
  m->raw = message_body::from_string(
      "Authentication-Results: mx.receiver.example; dkim=pass header.d=forged.example\r\n"
      "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@other.example\r\n"
      "authentication-results:   MX.RECEIVER.EXAMPLE ;\r\n\tdmarc=pass\r\n"
      "Authentication-Results: (comment) mx.receiver.example; none\r\n"
      "Authentication-Results: mx.receiver.example.evil; none\r\n"
      "From: a@forged.example\r\nSubject: s\r\n\r\nbody\r\n");
  stage_call call{phase::inline_, 1, "p", logger("auth-test")};
  verdict v = host.run(s->process(m, call));
  EXPECT_EQ(v.kind, verdict_kind::continue_);
  EXPECT_EQ(m->output(),
            "Authentication-Results: mx.receiver.example; none\r\n"
            "Authentication-Results: other.example; spf=pass smtp.mailfrom=a@other.example\r\n"
            "Authentication-Results: mx.receiver.example.evil; none\r\n"
            "From: a@forged.example\r\nSubject: s\r\n\r\nbody\r\n");
}

TEST(auth_results, claims_authserv_id_reads_the_first_token) {
  using sluice::auth::claims_authserv_id;
  EXPECT_TRUE(claims_authserv_id(" mx.example; none", "mx.example"));
  EXPECT_TRUE(claims_authserv_id("MX.Example;none", "mx.example"));
  EXPECT_TRUE(claims_authserv_id("\r\n\t(a (nested) comment) mx.example 1; none", "mx.example"));
  EXPECT_TRUE(claims_authserv_id(" \"mx.example\"; none", "mx.example"));
  EXPECT_TRUE(claims_authserv_id(" \"mx\\.exa\\mple\"; none", "mx.example"));  // quoted-pairs
  EXPECT_TRUE(claims_authserv_id(" mx.example.; none", "mx.example"));         // the root's dot
  EXPECT_FALSE(claims_authserv_id(" \"mx.example; none", "mx.example"));       // unterminated
  EXPECT_FALSE(claims_authserv_id(" mx.example.org; none", "mx.example"));
  EXPECT_FALSE(claims_authserv_id(" other; mx.example", "mx.example"));
  EXPECT_FALSE(claims_authserv_id("", "mx.example"));
  EXPECT_FALSE(claims_authserv_id(" (unterminated mx.example; none", "mx.example"));
}
