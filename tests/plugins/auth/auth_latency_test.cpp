// auth_latency_test.cpp — the auth checks against a slow DNS server, through the real sluice
// binary (smtp → spf → dkim → dmarc → auth_results → store), mail sent with Python's smtplib.
//
// tests/data/auth/zone_dns_server.py answers every query after kDelay. Each message triggers
// five TXT lookups: the SPF records of its MAIL FROM domain and of its HELO name, two DKIM
// keys (the message has two signatures) and _dmarc. Run one after another they would cost
// 5 × kDelay (4 × with the two key lookups in parallel). With the HELO and MAIL FROM checks
// concurrent and the dkim/dmarc stages' lookups started by the pipeline's prefetch before
// spf runs, a message costs about one delay; the test asserts less than 2 × kDelay (the
// margin absorbs a busy machine) and at least one delay (the lookups really were waited for).
// It also proves the verdicts do not depend on it: the same messages give the same "auth"
// results with prefetch off and with TTL 0 answers (never kept, so the later stages ask
// again), and the DNS server's query log shows what each name cost.
//
// Every wait is bounded: servers start within 10 s, every command has a timeout.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace {

using namespace sluice;
using namespace sluice::test;

const std::string kPython = "/usr/bin/python3";
constexpr double kDelay = 0.4;  // seconds per DNS answer
const std::vector<std::string> kDomains = {"one.example", "two.example", "three.example"};

bool have_dkimpy() {
  return run_command(kPython + " -c 'import dkim, nacl'") == 0;
}

// zone_dns_server.py with a delay, a TTL and a query log.
class slow_dns {
 public:
  slow_dns(const std::filesystem::path& zone, int ttl)
      : log_(dir_.path() / "queries.log"),
        server_({kPython, test_data_dir() + "/auth/zone_dns_server.py", "--zone", zone.string(),
                 "--delay", std::to_string(kDelay), "--ttl", std::to_string(ttl), "--log",
                 log_.string()},
                "zone_dns_server.py", "python3-dnslib?") {}
  int port() const { return server_.port(); }
  // Queries received per name (TXT only is asked here).
  std::map<std::string, int> queries() const {
    std::map<std::string, int> n;
    std::istringstream in(std::filesystem::exists(log_) ? read_file(log_) : "");
    std::string name, type;
    while (in >> name >> type)
      ++n[name];
    return n;
  }

 private:
  temp_dir dir_;
  std::filesystem::path log_;
  ready_server server_;
};

std::string config(int dns_port, bool prefetch) {
  return R"(log: {format: text, level: info}
spool: {path: ./spool}
services:
  - name: default
    plugin: resolver
    servers: ["127.0.0.1:)" +
         std::to_string(dns_port) + R"("]
    timeout: 5s
    tries: 1
    prefetch_max_in_flight: )" +
         (prefetch ? "64" : "0") + R"(
  - name: store
    plugin: store
    path: ./mail.db
listeners:
  - name: smtp
    plugin: smtp
    pipeline: in
    listen: ["127.0.0.1:0"]
pipelines:
  - name: in
    stages:
      - {plugin: spf, receiver: mx.receiver.example}
      - {plugin: dkim}
      - {plugin: dmarc, on_fail: policy}
      - {plugin: auth_results, authserv_id: mx.receiver.example}
      - {plugin: store}
)";
}

// Sends DIR/<domain>.eml for each domain (MAIL FROM a@<domain>, HELO mta.<domain>) one
// after another on fresh connections; one line per message: "<code> <milliseconds of the
// MAIL/RCPT/DATA transaction>".
std::vector<std::pair<int, double>> send_timed(const std::string& endpoint,
                                               const std::filesystem::path& dir) {
  const std::string script = R"(
import smtplib, sys, time
host, port = sys.argv[1].rsplit(':', 1)
for dom in sys.argv[3:]:
    data = open(sys.argv[2] + '/' + dom + '.eml', 'rb').read()
    s = smtplib.SMTP(host, int(port), local_hostname='mta.' + dom, timeout=30)
    s.ehlo('mta.' + dom)
    t0 = time.monotonic()
    try:
        s.sendmail('a@' + dom, ['rcpt@receiver.example'], data)
        code = 250
    except smtplib.SMTPResponseException as e:
        code = e.smtp_code
    print(code, (time.monotonic() - t0) * 1000, flush=True)
    s.quit()
)";
  std::string cmd = kPython + " -c " + shell_quote(script) + " " + shell_quote(endpoint) + " " +
                    shell_quote(dir.string());
  for (const auto& d : kDomains)
    cmd += " " + d;
  std::string out;
  run_command(cmd, &out, true, std::chrono::seconds(120));
  std::vector<std::pair<int, double>> r;
  std::istringstream in(out);
  int code = 0;
  double ms = 0;
  while (in >> code >> ms)
    r.emplace_back(code, ms);
  EXPECT_EQ(r.size(), kDomains.size()) << out;
  return r;
}

struct run_result {
  std::vector<std::pair<int, double>> replies;
  std::map<std::string, std::string> auth;  // subject → the "auth" attribute without volatile parts
  std::map<std::string, std::string> results_field;  // subject → Authentication-Results
  std::map<std::string, int> queries;
};

std::string header_value(const std::string& raw, const std::string& name) {
  std::size_t p = raw.rfind(name + ":", 0) == 0 ? 0 : raw.find("\r\n" + name + ":");
  if (p == std::string::npos) return {};
  if (p) p += 2;
  std::size_t e = p;
  for (;;) {
    e = raw.find("\r\n", e);
    if (e == std::string::npos || (raw[e + 2] != ' ' && raw[e + 2] != '\t')) break;
    e += 2;
  }
  std::string v = raw.substr(p + name.size() + 1, e - p - name.size() - 1);
  v.erase(0, v.find_first_not_of(" \t"));
  return v;
}

run_result run_pipeline(const std::filesystem::path& work, int ttl, bool prefetch) {
  run_result r;
  slow_dns dns(work / "zone.json", ttl);
  temp_dir dir;
  {
    sluice_process p(dir.path(), config(dns.port(), prefetch), {"--plugin-dir", test_plugin_dir()});
    EXPECT_TRUE(p.running());
    if (!p.running()) return r;
    r.replies = send_timed(p.endpoints("smtp").at(0), work);
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  r.queries = dns.queries();
  store_reader store(dir.path(), "mail.db");
  for (const auto& summary : store.all()) {
    auto got = store.run(store.service().get("default", summary.id));
    if (!got) continue;
    std::string raw = store.raw(summary.id, true).value_or("");
    std::string subject = header_value(raw, "Subject");
    boost::json::object auth = got->attributes.at("auth").as_object();
    r.auth[subject] = boost::json::serialize(auth);
    r.results_field[subject] = header_value(raw, "Authentication-Results");
  }
  return r;
}

TEST(auth_latency, checks_of_one_message_wait_for_about_one_dns_round_trip) {
  if (!have_dkimpy()) GTEST_SKIP() << "python3-dkim / python3-nacl not installed";
  temp_dir work;
  const auto& w = work.path();
  const std::string interop = test_data_dir() + "/auth/dkim_interop.py";
  ASSERT_EQ(run_command(kPython + " " + interop + " keys " + shell_quote(w.string())), 0);
  auto rec = boost::json::parse(read_file(w / "records.json")).as_object();
  boost::json::object zone;
  for (const auto& d : kDomains) {
    zone[d] = boost::json::array{"v=spf1 ip4:127.0.0.1 -all"};
    zone["mta." + d] = boost::json::array{"v=spf1 ip4:127.0.0.1 -all"};
    zone["rsa._domainkey." + d] = boost::json::array{rec["rsa"]};
    zone["ed._domainkey." + d] = boost::json::array{rec["ed"]};
    zone["_dmarc." + d] = boost::json::array{"v=DMARC1; p=reject"};
    // Two signatures of the From domain: rsa-sha256 (s=rsa), then ed25519-sha256 (s=ed).
    const std::string text = "From: Sender <a@" + d + ">\r\nTo: rcpt@receiver.example\r\n" +
                             "Subject: " + d + "\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n" +
                             "Message-ID: <" + d + "@test>\r\n\r\nHello from " + d + ".\r\n";
    write_file(w / "in.eml", text);
    std::string once, twice;
    ASSERT_EQ(run_command(kPython + " " + interop + " sign " + shell_quote(w.string()) +
                              " rsa-sha256 relaxed/relaxed rsa " + d + " < " +
                              shell_quote((w / "in.eml").string()),
                          &once, false),
              0);
    write_file(w / "in.eml", once);
    ASSERT_EQ(run_command(kPython + " " + interop + " sign " + shell_quote(w.string()) +
                              " ed25519-sha256 relaxed/relaxed ed " + d + " < " +
                              shell_quote((w / "in.eml").string()),
                          &twice, false),
              0);
    write_file(w / (d + ".eml"), twice);
  }
  write_file(w / "zone.json", boost::json::serialize(zone));

  const run_result fast = run_pipeline(w, 60, true);
  ASSERT_EQ(fast.replies.size(), kDomains.size());
  for (const auto& [code, ms] : fast.replies) {
    EXPECT_EQ(code, 250);
    EXPECT_GE(ms, kDelay * 1000 * 0.9) << "the lookups were not waited for";
    EXPECT_LT(ms, kDelay * 1000 * 2) << "the checks did not overlap (one message took " << ms
                                     << " ms; one after another they take 5 × " << kDelay << " s)";
  }
  // Every name was asked exactly once: the later stages took the prefetched answers (joined in
  // flight or, TTL 60, from the cache) instead of asking again.
  for (const auto& d : kDomains) {
    for (const auto& name :
         {d, "mta." + d, "rsa._domainkey." + d, "ed._domainkey." + d, "_dmarc." + d}) {
      EXPECT_EQ(fast.queries.count(name) ? fast.queries.at(name) : 0, 1) << name;
    }
  }
  ASSERT_EQ(fast.auth.size(), kDomains.size());
  for (const auto& d : kDomains) {
    ASSERT_TRUE(fast.auth.count(d)) << d;
    const auto auth = boost::json::parse(fast.auth.at(d));
    EXPECT_EQ(auth.at("spf").at("result"), "pass") << fast.auth.at(d);
    EXPECT_EQ(auth.at("spf").at("helo").at("result"), "pass") << fast.auth.at(d);
    EXPECT_EQ(auth.at("spf").at("helo").at("domain").as_string(), "mta." + d);
    ASSERT_EQ(auth.at("dkim").as_array().size(), 2u);
    EXPECT_EQ(auth.at("dkim").at(0).at("result"), "pass") << fast.auth.at(d);
    EXPECT_EQ(auth.at("dkim").at(1).at("result"), "pass") << fast.auth.at(d);
    EXPECT_EQ(auth.at("dmarc").at("result"), "pass") << fast.auth.at(d);
    const std::string& ar = fast.results_field.at(d);
    EXPECT_NE(ar.find("spf=pass"), std::string::npos) << ar;
    EXPECT_NE(ar.find("dmarc=pass"), std::string::npos) << ar;
  }

  // The same messages without prefetch and with TTL 0 answers: the same results, field for
  // field (both attributes and the Authentication-Results fields).
  const run_result plain = run_pipeline(w, 60, false);
  const run_result zero = run_pipeline(w, 0, true);
  for (const auto& [what, r] :
       {std::pair<const char*, const run_result*>{"prefetch, TTL 60", &fast},
        {"no prefetch, TTL 60", &plain},
        {"prefetch, TTL 0", &zero}}) {
    std::string ms;
    for (const auto& reply : r->replies)
      ms += " " + std::to_string(static_cast<int>(reply.second));
    std::cout << "[ measured ] " << what << ": transaction ms" << ms << "\n";
  }
  EXPECT_EQ(plain.auth, fast.auth);
  EXPECT_EQ(zero.auth, fast.auth);
  EXPECT_EQ(plain.results_field, fast.results_field);
  EXPECT_EQ(zero.results_field, fast.results_field);
  for (const auto& d : kDomains) {
    // Without prefetch, each name is asked once, by the stage that needs it.
    EXPECT_EQ(plain.queries.count("_dmarc." + d) ? plain.queries.at("_dmarc." + d) : 0, 1);
    // TTL 0: a prefetched answer that settled before the stage asked was not kept, so the
    // stage asked again (twice at most); the SPF names are asked once either way.
    for (const auto& name : {"rsa._domainkey." + d, "ed._domainkey." + d, "_dmarc." + d}) {
      const int n = zero.queries.count(name) ? zero.queries.at(name) : 0;
      EXPECT_GE(n, 1) << name;
      EXPECT_LE(n, 2) << name;
    }
    EXPECT_EQ(zero.queries.count(d) ? zero.queries.at(d) : 0, 1);
  }
  for (const auto& [code, ms] : plain.replies) {
    EXPECT_EQ(code, 250);
    // spf (one delay, its two checks overlap), dkim (one: both keys at once), dmarc (one).
    EXPECT_GE(ms, kDelay * 1000 * 2.7);
  }
}

}  // namespace
