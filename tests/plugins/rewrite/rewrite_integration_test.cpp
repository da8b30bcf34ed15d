// rewrite_integration_test.cpp — the real sluice binary as a staging gateway: SMTP in from
// Python's smtplib, the pipeline mime → rewrite → store, and the result read back over the
// HTTP API (GET /api/v1/message/{ID}, /headers, /raw) by Python's urllib, with the raw
// output parsed by Python's email package (an independent RFC 2047 / RFC 5322 decoder).
// The stored envelope and the "rewrite" attribute are read through the store plugin after
// the process stopped. `sluice check-config` reports a bad rule with its file:line:col.
#include <gtest/gtest.h>

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using sluice::test::sluice_process;
using sluice::test::temp_dir;

namespace {

bool plugins_built() {
  const fs::path dir = fs::path(test::build_dir()) / "lib/sluice/plugins";
  for (const char* p : {"smtp.so", "store.so", "mime.so", "http.so", "rewrite.so"}) {
    if (!fs::exists(dir / p)) return false;
  }
  return true;
}

const std::string kConfig = R"(log: {format: text, level: info}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: gateway, listen: ["127.0.0.1:0"]}
  - {name: http, plugin: http, pipeline: gateway, listen: ["127.0.0.1:0"]}
pipelines:
  - name: gateway
    stages:
      - plugin: mime
      - plugin: rewrite
        sender:
          - {match: "@app.example", to: "@bounces.staging.example"}
        recipients:
          - {regex: '^(?<user>[^@+]+)\+[^@]*@', to: '$user@', continue: true, label: strip-tags}
          - {match: "*", to: qa@staging.example, label: staging-inbox}
        original_to_header: true
        override_from: {address: noreply@staging.example, envelope: false}
        subject_prefix: "[STAGING] "
        headers:
          - {op: set, name: X-Environment, value: staging}
          - {op: add, name: X-Gateway-Note, value: "geprüft, nicht zugestellt"}
          - {op: remove, name: X-Internal-Token}
          - {op: remove, name: Bcc}
          - {op: rename, name: List-Unsubscribe, to: X-Original-List-Unsubscribe}
      - plugin: store
)";

// Writes and runs a Python script; returns its standard output (the test fails on error).
std::string python(const fs::path& dir, const std::string& script) {
  const fs::path file = dir / "client.py";
  std::ofstream(file) << script;
  std::string out;
  const int rc = test::run_command(
      "cd " + dir.string() + " && python3 " + file.string() + " 2>" + (dir / "py.err").string(),
      &out, false, std::chrono::seconds(60));
  EXPECT_EQ(rc, 0) << out << test::read_file(dir / "py.err");
  return out;
}

constexpr const char* kClient = R"PY(
import json, smtplib, time, urllib.request, email, email.policy
from email.message import EmailMessage
from email.headerregistry import Address
smtp_port = int(open("smtp_port").read())
http = "http://127.0.0.1:%d" % int(open("http_port").read())

m = EmailMessage()
m["From"] = Address("Jürgen Müller", addr_spec="juergen@app.example")
m["To"] = [Address("Bob", addr_spec="bob+orders@customer.example"),
           Address(addr_spec="carol@customer.example")]
m["Subject"] = "Ihre Rechnung über 42 €"
m["X-Internal-Token"] = "s3cr3t"
m["List-Unsubscribe"] = "<https://app.example/u/1>"
m.set_content("Hallo Bob,\nanbei die Rechnung.\n")
sent = m.as_bytes(policy=email.policy.SMTP)
with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as s:
    s.sendmail("billing@app.example",
               ["bob+orders@customer.example", "carol@customer.example", "dave@hidden.example"],
               sent)

def get(path):
    with urllib.request.urlopen(http + path, timeout=20) as r:
        return r.read()

msgs = json.loads(get("/api/v1/messages"))["messages"]
mid = msgs[0]["ID"]
summary = json.loads(get("/api/v1/message/" + mid))
headers = json.loads(get("/api/v1/message/" + mid + "/headers"))
raw = get("/api/v1/message/" + mid + "/raw")
parsed = email.message_from_bytes(raw, policy=email.policy.default)
frm = parsed["From"].addresses[0]
sent_head = sent.split(b"\r\n\r\n", 1)[0].decode()
orig_subject = [l for l in sent_head.split("\r\n") if l.startswith("Subject:")][0][len("Subject: "):]
print(json.dumps({
    "id": mid,
    "count": len(msgs),
    "summary_from": summary["From"],
    "summary_subject": summary["Subject"],
    "headers": headers,
    "raw_subject_line": [l for l in raw.decode().split("\r\n") if l.startswith("Subject:")],
    "orig_subject_raw": orig_subject,
    "py_from_name": frm.display_name,
    "py_from_addr": frm.addr_spec,
    "py_subject": str(parsed["Subject"]),
    "py_note": str(parsed["X-Gateway-Note"]),
    "py_original_from": str(parsed["X-Original-From"]),
    "body": parsed.get_content(),
    "raw_body_same": raw.split(b"\r\n\r\n", 1)[1] == sent.split(b"\r\n\r\n", 1)[1],
}))
)PY";

std::string str(const boost::json::value& v) {
  return v.is_string() ? std::string(v.get_string()) : boost::json::serialize(v);
}

std::vector<std::string> strings(const boost::json::value& v) {
  std::vector<std::string> out;
  if (!v.is_array()) return out;
  for (const auto& x : v.get_array())
    out.push_back(str(x));
  return out;
}

}  // namespace

TEST(rewrite_integration, staging_gateway_through_smtp_mime_rewrite_store_http) {
  if (!plugins_built()) GTEST_SKIP() << "smtp, store, mime, http or rewrite plugin is not built";
  temp_dir dir;
  boost::json::object got;
  {
    sluice_process p(dir.path(), kConfig);
    ASSERT_TRUE(p.running()) << p.log();
    std::ofstream(dir.path() / "smtp_port") << p.port("smtp");
    std::ofstream(dir.path() / "http_port") << p.port("http");
    const std::string out = python(dir.path(), kClient);
    ASSERT_FALSE(out.empty()) << p.log();
    got = boost::json::parse(out).as_object();
    EXPECT_NE(p.log().find("message rewritten"), std::string::npos) << p.log();
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  EXPECT_EQ(got["count"].as_int64(), 1);

  // The API summary (the store's copy of the mime view, refreshed by the stage).
  const auto& from = got["summary_from"].as_object();
  EXPECT_EQ(str(from.at("Name")), "Jürgen Müller");
  EXPECT_EQ(str(from.at("Address")), "noreply@staging.example");
  EXPECT_EQ(str(got["summary_subject"]), "[STAGING] Ihre Rechnung über 42 €");

  // /headers: the output's fields, edits applied.
  const auto& h = got["headers"].as_object();
  EXPECT_EQ(strings(h.at("X-Original-From")), (std::vector<std::string>{"juergen@app.example"}));
  EXPECT_EQ(strings(h.at("X-Environment")), (std::vector<std::string>{"staging"}));
  EXPECT_EQ(strings(h.at("Return-Path")),
            (std::vector<std::string>{"<billing@bounces.staging.example>"}));
  EXPECT_FALSE(h.contains("X-Internal-Token"));
  EXPECT_FALSE(h.contains("Bcc"));  // the listener's Bcc for dave@hidden.example is gone
  EXPECT_FALSE(h.contains("List-Unsubscribe"));
  EXPECT_EQ(strings(h.at("X-Original-List-Unsubscribe")),
            (std::vector<std::string>{"<https://app.example/u/1>"}));
  ASSERT_TRUE(h.contains("X-Original-To"));
  std::string xot = strings(h.at("X-Original-To")).at(0);
  for (const char* a :
       {"bob+orders@customer.example", "carol@customer.example", "dave@hidden.example"}) {
    EXPECT_NE(xot.find(a), std::string::npos) << xot;
  }
  // The To header itself is not an envelope: it stays as the application wrote it.
  EXPECT_NE(str(h.at("To")).find("bob+orders@customer.example"), std::string::npos);

  // /raw, decoded by Python's email package.
  EXPECT_EQ(str(got["py_from_name"]), "Jürgen Müller");
  EXPECT_EQ(str(got["py_from_addr"]), "noreply@staging.example");
  EXPECT_EQ(str(got["py_subject"]), "[STAGING] Ihre Rechnung über 42 €");
  EXPECT_EQ(str(got["py_note"]), "geprüft, nicht zugestellt");
  EXPECT_EQ(str(got["py_original_from"]), "juergen@app.example");
  EXPECT_EQ(str(got["body"]), "Hallo Bob,\r\nanbei die Rechnung.\r\n");  // CRLF on the wire
  EXPECT_TRUE(got["raw_body_same"].as_bool());
  // The original encoded-words of the subject are kept byte for byte after the prefix.
  const auto subject_lines = strings(got["raw_subject_line"]);
  ASSERT_EQ(subject_lines.size(), 1u);
  EXPECT_EQ(subject_lines[0], "Subject: [STAGING] " + str(got["orig_subject_raw"]));

  // The stored envelope, the rewrite record and the untouched raw message.
  test::store_reader reader(dir.path(), "mail.db");
  const std::string id = str(got["id"]);
  auto m = reader.run(reader.service().get("default", id));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->envelope_to, (std::vector<std::string>{"qa@staging.example"}));
  EXPECT_EQ(m->envelope_from, "billing@bounces.staging.example");
  const auto* rec = m->attributes.if_contains("rewrite");
  ASSERT_TRUE(rec && rec->is_object()) << boost::json::serialize(m->attributes);
  const auto& r = rec->as_object();
  EXPECT_EQ(strings(r.at("original_recipients")),
            (std::vector<std::string>{"bob+orders@customer.example", "carol@customer.example",
                                      "dave@hidden.example"}));
  EXPECT_EQ(r.at("merged").to_number<int>(), 2);
  const auto& first = r.at("recipients").as_array().at(0).as_object();
  EXPECT_EQ(strings(first.at("rules")), (std::vector<std::string>{"strip-tags", "staging-inbox"}));
  EXPECT_EQ(str(r.at("sender").at("original")), "billing@app.example");
  EXPECT_EQ(str(r.at("from").at("original")), "juergen@app.example");
  EXPECT_EQ(r.at("headers").as_array().size(), 5u);
  const auto original = reader.raw(id, false);
  ASSERT_TRUE(original);
  EXPECT_NE(original->find("X-Internal-Token: s3cr3t"), std::string::npos);
  EXPECT_NE(original->find("juergen@app.example>"), std::string::npos);
  EXPECT_EQ(original->find("X-Environment"), std::string::npos);
}

TEST(rewrite_integration, check_config_reports_a_bad_rule_with_its_location) {
  if (!plugins_built()) GTEST_SKIP() << "the plugins are not built";
  temp_dir dir;
  std::string bad = kConfig;
  const std::string good_rule =
      R"(          - {match: "@app.example", to: "@bounces.staging.example"})";
  const auto at = bad.find(good_rule);
  ASSERT_NE(at, std::string::npos);
  bad.replace(at, good_rule.size(), R"(          - {regex: '^(unclosed@', to: x@y.example})");
  test::write_file(dir.path() / "sluice.yaml", bad);
  std::string out;
  const int rc = test::run_command(
      test::sluice_binary() + " check-config -c " + (dir.path() / "sluice.yaml").string(), &out);
  EXPECT_NE(rc, 0) << out;
  // Line 14 of the file, inside the pipeline's rewrite stage.
  EXPECT_NE(out.find("sluice.yaml:14:"), std::string::npos) << out;
  EXPECT_NE(out.find("sender[0].regex"), std::string::npos) << out;
  EXPECT_NE(out.find("invalid regular expression"), std::string::npos) << out;

  std::string injection = kConfig;
  const std::string value = "value: staging}";
  injection.replace(injection.find(value), value.size(),
                    "value: \"staging\\r\\nBcc: victim@example.com\"}");
  test::write_file(dir.path() / "sluice.yaml", injection);
  out.clear();
  EXPECT_NE(test::run_command(
                test::sluice_binary() + " check-config -c " + (dir.path() / "sluice.yaml").string(),
                &out),
            0);
  EXPECT_NE(out.find("headers[0].value"), std::string::npos) << out;
  EXPECT_NE(out.find("inject a header field"), std::string::npos) << out;
}

TEST(rewrite_integration, staging_gateway_recipe_from_pipelines) {
  if (!plugins_built()) GTEST_SKIP() << "the plugins are not built";
  temp_dir dir;
  const std::string config = "include: " + test::source_dir() +
                             "/pipelines/staging-gateway.yaml\n"
                             "spool: {path: ./spool}\n"
                             "services:\n  - {name: default, plugin: store, path: ./mail.db}\n"
                             "listeners:\n"
                             "  - {name: smtp, plugin: smtp, pipeline: staging, "
                             "listen: [\"127.0.0.1:0\"]}\n";
  {
    sluice_process p(dir.path(), config);
    ASSERT_TRUE(p.running()) << p.log();
    const std::string reply = test::smtp_send(
        "127.0.0.1:" + std::to_string(p.port("smtp")), "app@prod.example",
        {"customer@example.com", "other@example.net"},
        "From: Shop <app@prod.example>\r\nTo: customer@example.com\r\nSubject: Order\r\n\r\nx\r\n");
    EXPECT_EQ(reply.substr(0, 3), "250") << reply << p.log();
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  test::store_reader reader(dir.path(), "mail.db");
  auto all = reader.all("staging");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].envelope_to, (std::vector<std::string>{"qa@staging.example"}));
  EXPECT_EQ(all[0].envelope_from, "noreply@staging.example");
  EXPECT_EQ(all[0].subject, "[STAGING] Order");
  ASSERT_TRUE(all[0].from);
  EXPECT_EQ(all[0].from->name, "Shop");
  EXPECT_EQ(all[0].from->address, "noreply@staging.example");
  auto out = reader.raw(all[0].id, true, "staging");
  ASSERT_TRUE(out);
  EXPECT_NE(out->find("X-Original-To: customer@example.com, other@example.net\r\n"),
            std::string::npos)
      << *out;
  EXPECT_NE(out->find("X-Original-From: app@prod.example\r\n"), std::string::npos) << *out;
  EXPECT_EQ(out->find("\r\nBcc:"), std::string::npos) << *out;
}
