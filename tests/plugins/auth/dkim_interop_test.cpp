// dkim_interop_test.cpp — DKIM and DMARC end to end with independent implementations:
//  * messages signed by dkimpy (python3-dkim) with every algorithm × canonicalization are sent
//    over SMTP (Python's smtplib) to the real sluice binary (smtp → spf → dkim → dmarc →
//    auth_results → store), the key and DMARC records served by tests/data/auth/
//    zone_dns_server.py (python3-dnslib) through the resolver plugin: every one is a pass,
//    tampered ones fail, rsa-sha1 is "policy"; DMARC passes, quarantines, rejects and
//    tempfails as configured;
//  * messages signed by Sluice's dkim_sign (keys made by `sluice dkim keygen`, after a stage
//    that edits the header) verify with dkimpy and with OpenDKIM's opendkim-testmsg (run in a
//    private network namespace whose resolver is the test DNS server on port 53).
// Every wait is bounded: servers start within 10 s, every command has a timeout.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace {

using namespace sluice;
using namespace sluice::test;

const std::string kPython = "/usr/bin/python3";

std::string interop() {
  return test_data_dir() + "/auth/dkim_interop.py";
}

bool have_dkimpy() {
  return run_command(kPython + " -c 'import dkim, nacl'") == 0;
}

// zone_dns_server.py serving a JSON zone.
class zone_dns {
 public:
  explicit zone_dns(const std::filesystem::path& zone)
      : server_({kPython, test_data_dir() + "/auth/zone_dns_server.py", "--zone", zone.string()},
                "zone_dns_server.py", "python3-dnslib?") {}
  int port() const { return server_.port(); }

 private:
  ready_server server_;
};

// Sends each file's bytes as one message (MAIL FROM = argv sender) with smtplib; prints one
// "<code> <text>" line per file.
std::vector<std::string> send_files(const std::string& endpoint, const std::string& sender,
                                    const std::vector<std::filesystem::path>& files) {
  const std::string script = R"(
import smtplib, sys
host, port = sys.argv[1].rsplit(':', 1)
for path in sys.argv[3:]:
    data = open(path, 'rb').read()
    s = smtplib.SMTP(host, int(port), timeout=20)
    s.ehlo('client.test')
    try:
        s.sendmail(sys.argv[2], ['rcpt@receiver.example'], data)
        print(250, 'ok')
    except smtplib.SMTPResponseException as e:
        print(e.smtp_code, e.smtp_error.decode())
    except smtplib.SMTPRecipientsRefused as e:
        c, m = list(e.recipients.values())[0]; print(c, m.decode())
    s.quit()
)";
  std::string cmd = kPython + " -c " + shell_quote(script) + " " + shell_quote(endpoint) + " " +
                    shell_quote(sender);
  for (const auto& f : files)
    cmd += " " + shell_quote(f.string());
  std::string out;
  run_command(cmd, &out, true, std::chrono::seconds(120));
  std::vector<std::string> lines;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t e = out.find('\n', pos);
    if (e == std::string::npos) e = out.size();
    lines.push_back(out.substr(pos, e - pos));
    pos = e + 1;
  }
  return lines;
}

std::string message(const std::string& from, const std::string& subject) {
  return "From: Sender <" + from + ">\r\nTo: rcpt@receiver.example\r\nSubject: " + subject +
         "\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\nMessage-ID: <" + subject +
         "@example.com>\r\n\r\nHello,\r\n  a line  with   spaces \t\r\n\r\nbye\r\n\r\n";
}

std::string header_of(const std::string& raw, const std::string& name) {
  std::size_t p = raw.find("\r\n" + name + ":");
  if (raw.rfind(name + ":", 0) == 0)
    p = 0;
  else if (p != std::string::npos)
    p += 2;
  else
    return {};
  std::size_t e = p;
  for (;;) {
    e = raw.find("\r\n", e);
    if (e == std::string::npos || (raw[e + 2] != ' ' && raw[e + 2] != '\t')) break;
    e += 2;
  }
  return raw.substr(p, e - p);
}

std::string str(const boost::json::value& v, const char* k) {
  const auto* x = v.as_object().if_contains(k);
  return x && x->is_string() ? std::string(x->as_string()) : std::string();
}

std::string config(int dns_port) {
  return R"(log: {format: text, level: info}
spool: {path: ./spool, spill_threshold: 16KB}
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
  - {name: web, plugin: http, pipeline: in, listen: ["127.0.0.1:0"]}
pipelines:
  - name: in
    stages:
      - {plugin: spf, receiver: mx.receiver.example, helo: false}
      # An edit of a signed field before the check: dkim verifies the header as received.
      - {plugin: test_header, name: Subject, value: edited by an earlier stage}
      - {plugin: dkim}
      - {plugin: dmarc, on_fail: policy, on_temperror: tempfail, pct_seed: 7}
      - {plugin: auth_results, authserv_id: mx.receiver.example}
      - {plugin: store}
)";
}

TEST(dkim_interop, dkimpy_signatures_verify_in_sluice_and_dmarc_acts) {
  if (!have_dkimpy()) GTEST_SKIP() << "python3-dkim / python3-nacl not installed";
  temp_dir work;
  const auto& w = work.path();
  ASSERT_EQ(run_command(kPython + " " + interop() + " keys " + shell_quote(w.string())), 0);
  auto rec = boost::json::parse(read_file(w / "records.json")).as_object();
  boost::json::object zone;
  zone["rsa._domainkey.example.com"] = boost::json::array{rec["rsa"]};
  zone["ed._domainkey.example.com"] = boost::json::array{rec["ed"]};
  zone["_dmarc.example.com"] = boost::json::array{"v=DMARC1; p=quarantine; sp=reject"};
  zone["_dmarc.reject.example"] = boost::json::array{"v=DMARC1; p=reject"};
  zone["_dmarc.broken.example"] = "SERVFAIL";
  zone["broken._domainkey.example.com"] = "SERVFAIL";
  zone["spf.example"] = boost::json::array{"v=spf1 ip4:127.0.0.1 -all"};
  zone["_dmarc.spf.example"] = boost::json::array{"v=DMARC1; p=reject; aspf=s"};
  write_file(w / "zone.json", boost::json::serialize(zone));
  zone_dns dns(w / "zone.json");

  // Expected result per Subject.
  std::map<std::string, std::pair<std::string, std::string>> expect;  // subject → dkim, dmarc
  std::vector<std::filesystem::path> files;
  int n = 0;
  auto add = [&](const std::string& subject, const std::string& text, const std::string& dkim,
                 const std::string& dmarc) {
    auto f = w / ("m" + std::to_string(n++) + ".eml");
    write_file(f, text);
    files.push_back(f);
    expect[subject] = {dkim, dmarc};
  };
  auto dkimpy_sign = [&](const std::string& algo, const std::string& canon,
                         const std::string& selector, const std::string& text) {
    auto in = w / "in.eml";
    write_file(in, text);
    std::string out;
    int rc =
        run_command(kPython + " " + interop() + " sign " + shell_quote(w.string()) + " " + algo +
                        " " + canon + " " + selector + " example.com < " + shell_quote(in.string()),
                    &out, false);
    EXPECT_EQ(rc, 0) << out;
    return out;
  };
  for (const std::string algo : {"rsa-sha256", "ed25519-sha256"}) {
    for (const std::string canon :
         {"simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"}) {
      const std::string sel = algo == "rsa-sha256" ? "rsa" : "ed";
      std::string subject = algo + "-" + canon;
      for (char& c : subject)
        if (c == '/') c = '_';
      std::string s = dkimpy_sign(algo, canon, sel, message("a@example.com", subject));
      add(subject, s, "pass", "pass");
      // Tampered body: the signature fails, DMARC fails, p=quarantine quarantines it.
      std::string t = s;
      t.replace(t.find("bye"), 3, "BYE");
      std::string ts = "tampered-" + subject;
      t.replace(t.find("Subject: " + subject), 9 + subject.size(), "Subject: " + ts);
      // The Subject change alone breaks the header hash; the body change the body hash.
      add(ts, t, "fail", "fail");
    }
  }
  add("rsa-sha1",
      dkimpy_sign("rsa-sha1", "relaxed/relaxed", "rsa", message("a@example.com", "rsa-sha1")),
      "policy", "fail");
  // A subdomain From: aligned (relaxed) with the d=example.com signature.
  add("subdomain",
      dkimpy_sign("ed25519-sha256", "relaxed/relaxed", "ed",
                  message("a@news.example.com", "subdomain")),
      "pass", "pass");
  // DNS failures of the key: SERVFAIL → temperror, NXDOMAIN → permerror.
  add("key-servfail",
      dkimpy_sign("rsa-sha256", "relaxed/relaxed", "broken",
                  message("a@example.com", "key-servfail")),
      "temperror", "fail");
  add("key-missing",
      dkimpy_sign("rsa-sha256", "relaxed/relaxed", "gone", message("a@example.com", "key-missing")),
      "permerror", "fail");
  // A large body (file-backed in the spool: the body hash streams over the file).
  {
    std::string big = message("a@example.com", "large-body");
    std::string line(70, 'x');
    for (int i = 0; i < 6000; ++i)
      big += line + " " + std::to_string(i) + "  \r\n";
    add("large-body", dkimpy_sign("rsa-sha256", "relaxed/simple", "rsa", big), "pass", "pass");
  }
  // Unsigned, aligned SPF pass (MAIL FROM spf.example from 127.0.0.1, aspf=s).
  add("spf-only", message("a@spf.example", "spf-only"), "none", "pass");

  temp_dir dir;
  std::vector<std::string> replies, more;
  {
    sluice_process p(dir.path(), config(dns.port()), {"--plugin-dir", test_plugin_dir()});
    ASSERT_TRUE(p.running());
    const std::string ep = p.endpoints("smtp").at(0);
    replies = send_files(ep, "bounce@spf.example", files);
    // DMARC p=reject for an unsigned message: refused with 550 5.7.1.
    auto rej = w / "reject.eml";
    write_file(rej, message("a@reject.example", "reject"));
    auto tmp = w / "broken.eml";
    write_file(tmp, message("a@broken.example", "broken"));
    more = send_files(ep, "bounce@other.example", {rej, tmp});
    // The checks through the HTTP API with curl: GET /api/v1/message/{ID}/auth.
    const std::string web = "http://" + p.endpoints("web").at(0);
    std::string list;
    ASSERT_EQ(
        run_command("curl -sS --max-time 20 " + shell_quote(web + "/api/v1/messages?limit=100"),
                    &list, false),
        0);
    std::string id;
    const boost::json::value listed_json = boost::json::parse(list);
    for (const auto& m : listed_json.at("messages").as_array())
      if (m.at("Subject").as_string() == "ed25519-sha256-relaxed_relaxed") {
        id = std::string(m.at("ID").as_string());
      }
    ASSERT_FALSE(id.empty()) << list;
    std::string body;
    ASSERT_EQ(run_command(
                  "curl -sS --max-time 20 " + shell_quote(web + "/api/v1/message/" + id + "/auth"),
                  &body, false),
              0);
    bool dkim_pass = false, dmarc_pass = false;
    const boost::json::value auth_json = boost::json::parse(body);
    for (const auto& c : auth_json.at("Checks").as_array()) {
      if (c.at("Method") == "dkim" && c.at("Result") == "pass" &&
          c.at("Properties").at("header.d") == "example.com" &&
          c.at("Details").at("algorithm") == "ed25519-sha256") {
        dkim_pass = true;
      }
      if (c.at("Method") == "dmarc" && c.at("Result") == "pass") dmarc_pass = true;
    }
    EXPECT_TRUE(dkim_pass) << body;
    EXPECT_TRUE(dmarc_pass) << body;
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  ASSERT_EQ(replies.size(), files.size());
  for (std::size_t i = 0; i < replies.size(); ++i)
    EXPECT_EQ(replies[i].substr(0, 3), "250") << files[i] << ": " << replies[i];
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].substr(0, 3), "550") << more[0];
  EXPECT_NE(more[0].find("5.7.1"), std::string::npos) << more[0];
  EXPECT_NE(more[0].find("DMARC"), std::string::npos) << more[0];
  EXPECT_EQ(more[1].substr(0, 3), "451") << more[1];  // _dmarc SERVFAIL → temperror → tempfail

  store_reader store(dir.path(), "mail.db");
  auto listed = store.all();
  EXPECT_EQ(listed.size(), files.size());
  std::size_t checked = 0;
  for (const auto& summary : listed) {
    auto got = store.run(store.service().get("default", summary.id));
    ASSERT_TRUE(got.has_value());
    std::string raw = store.raw(summary.id, true).value_or("");
    std::string subject = header_of(raw, "Subject").substr(9);
    EXPECT_NE(raw.find("\r\nSubject: edited by an earlier stage\r\n"), std::string::npos) << raw;
    auto it = expect.find(subject);
    ASSERT_NE(it, expect.end()) << subject;
    const auto& auth = got->attributes.at("auth");
    const auto& dkim = auth.at("dkim").as_array().at(0);
    const auto& dmarc = auth.at("dmarc");
    EXPECT_EQ(str(dkim, "result"), it->second.first) << subject << ": " << str(dkim, "reason");
    EXPECT_EQ(str(dmarc, "result"), it->second.second) << subject << ": " << str(dmarc, "reason");
    std::string ar = header_of(raw, "Authentication-Results");
    EXPECT_NE(ar.find("dkim=" + it->second.first), std::string::npos) << ar;
    EXPECT_NE(ar.find("dmarc=" + it->second.second), std::string::npos) << ar;
    if (it->second.first == "pass") {
      EXPECT_NE(ar.find("header.d=example.com"), std::string::npos) << ar;
      EXPECT_EQ(str(dkim, "domain"), "example.com");
    }
    // p=quarantine (sp=reject for news.example.com never fails here): tampered ones are kept
    // as quarantined, the rest are not.
    EXPECT_EQ(got->quarantined, it->second.second == "fail") << subject;
    ++checked;
  }
  EXPECT_EQ(checked, files.size());
}

// ------------------------------------------------------------------ Sluice signs

// The TXT value from `sluice dkim keygen` output: the quoted strings joined.
std::string record_from_keygen(const std::string& out) {
  std::string rec;
  std::size_t open = out.find("IN TXT (");
  std::size_t close = out.find(')', open);
  bool in = false;
  for (std::size_t i = open; i < close && i < out.size(); ++i) {
    if (out[i] == '"') {
      in = !in;
      continue;
    }
    if (in) rec += out[i];
  }
  return rec;
}

std::string sign_config(const std::string& canon) {
  return R"(log: {format: text, level: info}
spool: {path: ./spool, spill_threshold: 16KB}
services:
  - name: store
    plugin: store
    path: ./mail.db
listeners:
  - name: smtp
    plugin: smtp
    pipeline: out
    listen: ["127.0.0.1:0"]
pipelines:
  - name: out
    stages:
      - {plugin: test_header, name: X-Rewritten, value: "added   by a  rewrite stage"}
      - plugin: dkim_sign
        name: sign_rsa
        domain: example.com
        selector: rsa
        key: rsa.pem
        canonicalization: )" +
         canon + R"(
        headers: [From, To, Subject, Date, Message-ID, X-Rewritten]
        expire: 1d
      - plugin: dkim_sign
        name: sign_ed
        domain: example.com
        selector: ed
        key: ed.pem
        canonicalization: )" +
         canon + R"(
        body_length: true
      - {plugin: store}
)";
}

// `raw` without the index-th (0-based) field called `name`.
std::string without_field(const std::string& raw, const std::string& name, int index) {
  std::size_t pos = 0;
  for (int seen = 0;; ++seen) {
    pos = raw.find(name + ":", pos);
    if (pos == std::string::npos) return raw;
    if (seen == index) break;
    pos += name.size();
  }
  std::size_t end = pos;
  for (;;) {
    end = raw.find("\r\n", end);
    if (end == std::string::npos) return raw;
    end += 2;
    if (raw[end] != ' ' && raw[end] != '\t') break;
  }
  return raw.substr(0, pos) + raw.substr(end);
}

bool opendkim_namespace_available() {
  return run_command("command -v opendkim-testmsg >/dev/null && unshare -rmn true") == 0;
}

TEST(dkim_interop, sluice_signatures_verify_with_dkimpy_and_opendkim) {
  if (!have_dkimpy()) GTEST_SKIP() << "python3-dkim / python3-nacl not installed";
  temp_dir keys;
  std::string out_rsa, out_ed;
  ASSERT_EQ(
      run_command(sluice_binary() + " dkim keygen --selector rsa --domain example.com --out " +
                      shell_quote((keys.path() / "rsa.pem").string()),
                  &out_rsa),
      0)
      << out_rsa;
  ASSERT_EQ(
      run_command(sluice_binary() +
                      " dkim keygen --type ed25519 --selector ed --domain example.com --out " +
                      shell_quote((keys.path() / "ed.pem").string()),
                  &out_ed),
      0)
      << out_ed;
  EXPECT_EQ(
      std::filesystem::status(keys.path() / "rsa.pem").permissions() & std::filesystem::perms::all,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_NE(out_rsa.find("rsa._domainkey.example.com. IN TXT"), std::string::npos) << out_rsa;
  // Refuses to overwrite a key.
  std::string again;
  EXPECT_NE(
      run_command(sluice_binary() + " dkim keygen --selector rsa --domain example.com --out " +
                      shell_quote((keys.path() / "rsa.pem").string()),
                  &again),
      0);
  boost::json::object zone;
  zone["rsa._domainkey.example.com"] = boost::json::array{record_from_keygen(out_rsa).c_str()};
  zone["ed._domainkey.example.com"] = boost::json::array{record_from_keygen(out_ed).c_str()};
  write_file(keys.path() / "zone.json", boost::json::serialize(zone));
  const bool ns = opendkim_namespace_available();

  for (const std::string canon :
       {"simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed"}) {
    temp_dir dir;
    std::filesystem::copy_file(keys.path() / "rsa.pem", dir.path() / "rsa.pem");
    std::filesystem::copy_file(keys.path() / "ed.pem", dir.path() / "ed.pem");
    auto f = dir.path() / "in.eml";
    std::string text = message("a@example.com", "signed-by-sluice");
    if (canon == "relaxed/relaxed") {  // one large (file-backed) body: signed off the I/O thread
      for (int i = 0; i < 4000; ++i)
        text += std::string(70, 'y') + " " + std::to_string(i) + "\r\n";
    }
    write_file(f, text);
    {
      sluice_process p(dir.path(), sign_config(canon), {"--plugin-dir", test_plugin_dir()});
      ASSERT_TRUE(p.running()) << p.log();
      auto r = send_files(p.endpoints("smtp").at(0), "a@example.com", {f});
      ASSERT_EQ(r.size(), 1u);
      EXPECT_EQ(r[0].substr(0, 3), "250") << r[0];
      EXPECT_EQ(p.stop(), 0) << p.log();
    }
    store_reader store(dir.path(), "mail.db");
    auto listed = store.all();
    ASSERT_EQ(listed.size(), 1u);
    std::string raw = store.raw(listed[0].id, true).value_or("");
    ASSERT_NE(raw.find("X-Rewritten: added"), std::string::npos) << raw;
    ASSERT_NE(raw.find("DKIM-Signature: v=1; a=ed25519-sha256; c=" + canon), std::string::npos)
        << raw;
    ASSERT_NE(raw.find("DKIM-Signature: v=1; a=rsa-sha256; c=" + canon), std::string::npos) << raw;
    auto signed_file = keys.path() / "signed.eml";
    write_file(signed_file, raw);
    // dkimpy: both signatures pass.
    std::string out;
    EXPECT_EQ(run_command(kPython + " " + interop() + " verify " +
                              shell_quote((keys.path() / "zone.json").string()) + " < " +
                              shell_quote(signed_file.string()),
                          &out),
              0)
        << canon << ": " << out << "\n"
        << raw;
    EXPECT_EQ(out, "pass\npass\n") << canon;
    // Tampering is noticed by dkimpy too.
    std::string tampered = raw;
    tampered.replace(tampered.find("Hello,"), 6, "Jello,");  // covered by both signatures
    write_file(keys.path() / "tampered.eml", tampered);
    out.clear();
    EXPECT_NE(run_command(kPython + " " + interop() + " verify " +
                              shell_quote((keys.path() / "zone.json").string()) + " < " +
                              shell_quote((keys.path() / "tampered.eml").string()),
                          &out),
              0)
        << out;

    if (!ns) continue;
    // opendkim-testmsg verifies with libopendkim, which asks the system resolver: run it in
    // private user, mount and network namespaces where /etc/resolv.conf names the test DNS
    // server on 127.0.0.1:53. It prints nothing and exits 0 when the signatures verify.
    auto resolv = keys.path() / "resolv.conf";
    write_file(resolv, "nameserver 127.0.0.1\n");
    const std::string inner =
        "ip link set lo up && mount --bind " + shell_quote(resolv.string()) +
        " /etc/resolv.conf && (" + kPython + " " + test_data_dir() +
        "/auth/zone_dns_server.py --zone " + shell_quote((keys.path() / "zone.json").string()) +
        " --port 53 --ready " + shell_quote((keys.path() / "ns-ready").string()) +
        " & srv=$!; i=0; while [ ! -e " + shell_quote((keys.path() / "ns-ready").string()) +
        " ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; opendkim-testmsg < " +
        shell_quote(signed_file.string()) + "; rc=$?; kill $srv; exit $rc)";
    // One signature at a time (opendkim-testmsg's status is that of the message), then the
    // tampered message, which must fail.
    write_file(keys.path() / "first.eml", without_field(raw, "DKIM-Signature", 1));
    write_file(keys.path() / "second.eml", without_field(raw, "DKIM-Signature", 0));
    for (const auto& which :
         {keys.path() / "first.eml", keys.path() / "second.eml", keys.path() / "tampered.eml"}) {
      std::filesystem::remove(keys.path() / "ns-ready");
      std::string cmd = inner;
      std::size_t at = cmd.rfind(shell_quote(signed_file.string()));
      cmd.replace(at, shell_quote(signed_file.string()).size(), shell_quote(which.string()));
      std::string o;
      int rc =
          run_command("unshare -rmn sh -c " + shell_quote(cmd), &o, true, std::chrono::seconds(60));
      if (which != keys.path() / "tampered.eml") {
        EXPECT_EQ(rc, 0) << canon << " " << which << ": opendkim-testmsg: " << o << "\n"
                         << read_file(which);
        EXPECT_EQ(o, "") << canon;
      } else {
        EXPECT_NE(rc, 0) << canon << ": opendkim-testmsg accepted a tampered message";
        // Refused at verification (end of message), not for a syntax problem of the input.
        EXPECT_NE(o.find("dkim_eom()"), std::string::npos) << o;
      }
    }
  }
  if (!ns) GTEST_SKIP() << "opendkim-testmsg or unprivileged namespaces unavailable";
}

TEST(dkim_interop, bad_key_file_is_a_config_error_with_its_location) {
  temp_dir dir;
  write_file(dir.path() / "bad.pem", "-----BEGIN PRIVATE KEY-----\nnot a key\n");
  write_file(dir.path() / "sluice.yaml", R"(pipelines:
  - name: out
    stages:
      - plugin: dkim_sign
        domain: example.com
        selector: s1
        key: bad.pem
)");
  std::string out;
  int rc = run_command(
      sluice_binary() + " check-config -c " + shell_quote((dir.path() / "sluice.yaml").string()),
      &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("sluice.yaml:7:14"), std::string::npos) << out;
  EXPECT_NE(out.find("not a PEM private key"), std::string::npos) << out;
}

}  // namespace
