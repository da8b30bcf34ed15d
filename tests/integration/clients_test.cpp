// clients_test.cpp — mail sent by real, independent clients (swaks, Python's smtplib,
// curl) through the default capture pipeline ends up in the store, byte for byte.
#include <gtest/gtest.h>

#include <map>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace {

constexpr const char* config = R"(spool: {path: ./spool}
include: [SOURCE/pipelines/capture.yaml]
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
)";

TEST(clients, swaks_smtplib_and_curl_are_stored) {
  sluice::test::temp_dir dir;
  std::string cfg = config;
  cfg.replace(cfg.find("SOURCE"), 6, sluice::test::source_dir());
  {
    sluice::test::sluice_process proc(dir.path(), cfg);
    ASSERT_TRUE(proc.running());
    const std::string host = proc.host("smtp");
    const std::string port = std::to_string(proc.port("smtp"));
    std::string out;
    ASSERT_EQ(sluice::test::run_command("swaks --server " + host + " --port " + port +
                                            " --from swaks@example.org --to one@example.org"
                                            " --header 'Subject: from swaks'",
                                        &out),
              0)
        << out;
    sluice::test::write_file(dir.path() / "send.py",
                             "import smtplib, sys\n"
                             "from email.message import EmailMessage\n"
                             "m = EmailMessage()\n"
                             "m['From'] = 'py@example.org'\n"
                             "m['To'] = 'two@example.org'\n"
                             "m['Subject'] = 'from smtplib \\u00e9t\\u00e9'\n"
                             "m.set_content('caf\\u00e9\\n')\n"
                             "with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:\n"
                             "    s.send_message(m)\n");
    out.clear();
    ASSERT_EQ(sluice::test::run_command(
                  "python3 " + (dir.path() / "send.py").string() + " " + host + " " + port, &out),
              0)
        << out;
    sluice::test::write_file(dir.path() / "curl.eml",
                             "From: curl@example.org\r\nTo: three@example.org\r\n"
                             "Subject: from curl\r\n\r\n.leading dot survives\r\n");
    out.clear();
    ASSERT_EQ(sluice::test::run_command("curl -sS smtp://" + host + ":" + port +
                                            " --mail-from curl@example.org --mail-rcpt "
                                            "three@example.org --upload-file " +
                                            (dir.path() / "curl.eml").string(),
                                        &out),
              0)
        << out;
    EXPECT_EQ(proc.stop(), 0) << proc.log();
  }
  sluice::test::store_reader store(dir.path(), "mail.db");
  auto all = store.all();
  ASSERT_EQ(all.size(), 3u);
  std::map<std::string, sluice::stored_message> by_from;
  for (auto& m : all)
    by_from[m.envelope_from] = m;
  ASSERT_TRUE(by_from.count("swaks@example.org"));
  ASSERT_TRUE(by_from.count("py@example.org"));
  ASSERT_TRUE(by_from.count("curl@example.org"));
  EXPECT_EQ(by_from["swaks@example.org"].subject, "from swaks");
  EXPECT_EQ(by_from["curl@example.org"].envelope_to, std::vector<std::string>{"three@example.org"});
  // curl's message, exactly as uploaded (dot-stuffed on the wire, unstuffed on arrival).
  auto curl_raw = store.raw(by_from["curl@example.org"].id, false);
  ASSERT_TRUE(curl_raw);
  EXPECT_EQ(*curl_raw, sluice::test::read_file(dir.path() / "curl.eml"));
  // What clients read back has the server's trace fields on top.
  auto py = store.raw(by_from["py@example.org"].id, true);
  ASSERT_TRUE(py);
  EXPECT_TRUE(py->starts_with("Return-Path: <py@example.org>\r\nReceived: from ")) << *py;
  EXPECT_NE(py->find("Message-ID: <"), std::string::npos);
}

}  // namespace
