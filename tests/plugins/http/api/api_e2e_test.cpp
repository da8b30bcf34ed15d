// api_e2e_test.cpp — the real sluice binary (SMTP, mime, store, HTTP listener) driven by
// independent clients: Python's stdlib (smtplib + urllib, api_e2e.py) and, when npm is
// available, Mailpit's own npm client `mailpit-api` (mailpit-client/).
#include <gtest/gtest.h>

#include "sluice_test.hpp"

namespace sluice::test {
namespace {

constexpr const char* kConfig = R"(
log: {format: text, level: info}
services:
  - {name: default, plugin: store, path: ./sluice.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
  - {name: smtp-other, plugin: smtp, pipeline: other, listen: ["127.0.0.1:0"]}
  - {name: web, plugin: http, pipeline: capture, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages:
      - {plugin: mime}
      - {plugin: store, mailbox: default}
  - name: other
    stages:
      - {plugin: mime}
      - {plugin: store, mailbox: other}
)";

std::string endpoint(const sluice_process& p, const std::string& name) {
  return p.host(name) + ":" + std::to_string(p.port(name));
}

TEST(http_api_e2e, python_stdlib_client) {
  sluice_process p(kConfig);
  ASSERT_TRUE(p.running()) << p.log();
  std::string out;
  const std::string cmd =
      "python3 " + shell_quote(source_dir() + "/tests/plugins/http/api/api_e2e.py") + " " +
      endpoint(p, "web") + " " + endpoint(p, "smtp") + " " + endpoint(p, "smtp-other");
  const int rc = run_command(cmd, &out, true, std::chrono::seconds(120));
  EXPECT_EQ(rc, 0) << out << "\n--- sluice log ---\n" << p.log();
  EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;
}

// GET /api/v1/message/{ID}/link-check: links of a message sent with smtplib, checked
// against a Python web server on loopback; one listener may request loopback addresses,
// the other has the SSRF guard's default.
TEST(http_api_e2e, link_check) {
  sluice_process p(R"(
log: {format: text, level: info}
services:
  - {name: default, plugin: store, path: ./sluice.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
  - name: open
    plugin: http
    listen: ["127.0.0.1:0"]
    link_check: {allow_private: true, timeout: 5s}
  - {name: guarded, plugin: http, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages:
      - {plugin: mime}
      - {plugin: store, mailbox: default}
)");
  ASSERT_TRUE(p.running()) << p.log();
  EXPECT_NE(p.log().find("link_check.allow_private is set"), std::string::npos) << p.log();
  std::string out;
  const std::string cmd =
      "python3 " + shell_quote(source_dir() + "/tests/plugins/http/api/link_check_e2e.py") + " " +
      endpoint(p, "open") + " " + endpoint(p, "guarded") + " " + endpoint(p, "smtp");
  const int rc = run_command(cmd, &out, true, std::chrono::seconds(120));
  EXPECT_EQ(rc, 0) << out << "\n--- sluice log ---\n" << p.log();
  EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;
}

// Mailpit's npm client, installed with `npm ci` from the committed lock file into a
// temporary directory (the npm registry is the only network the test needs).
TEST(http_api_e2e, mailpit_api_npm_client) {
  if (run_command("command -v npm >/dev/null && command -v node >/dev/null") != 0) {
    GTEST_SKIP() << "node/npm not installed";
  }
  temp_dir work;
  const std::string src = source_dir() + "/tests/plugins/http/api/mailpit-client";
  std::string out;
  const int rc_ci = run_command(
      "cp " + shell_quote(src) + "/package.json " + shell_quote(src) + "/package-lock.json " +
          shell_quote(src) + "/client_test.mjs " + shell_quote(work.path().string()) + " && cd " +
          shell_quote(work.path().string()) + " && npm ci --no-audit --no-fund",
      &out, true, std::chrono::seconds(180));
  if (rc_ci != 0) GTEST_SKIP() << "npm ci failed (no registry?):\n" << out;
  sluice_process p(kConfig);
  ASSERT_TRUE(p.running()) << p.log();
  out.clear();
  const int rc = run_command("cd " + shell_quote(work.path().string()) +
                                 " && node client_test.mjs http://" + endpoint(p, "web"),
                             &out, true, std::chrono::seconds(120));
  EXPECT_EQ(rc, 0) << out << "\n--- sluice log ---\n" << p.log();
  EXPECT_NE(out.find("all checks passed"), std::string::npos) << out;
}

}  // namespace
}  // namespace sluice::test
