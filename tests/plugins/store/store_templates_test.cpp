// store_templates_test.cpp — the real sluice binary, Python's smtplib as the client: one
// message to recipients of two domains lands once in each domain's mailbox (a mailbox
// template), tagged from X-Tags, a plus-address and a rule; the stored copies are then
// searched through the real store plugin loaded into the test (Unicode and header terms).
#include <gtest/gtest.h>

#include <filesystem>
#include <set>
#include <string>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace fs = std::filesystem;

namespace {

constexpr const char* kConfig = R"(log: {format: text, level: info}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages:
      - plugin: store
        mailbox: "{rcpt_domain}"
        fallback_mailbox: elsewhere
        tags:
          title_case: true
          rules: [{match: "subject:rechnung", tags: [Billing]}]
)";

}  // namespace

TEST(StoreTemplates, OneCopyPerRecipientDomainTaggedAndSearchable) {
  if (!fs::exists(fs::path(sluice::test::build_dir()) / "lib/sluice/plugins/smtp.so")) {
    GTEST_SKIP() << "smtp.so is not built";
  }
  sluice::test::temp_dir dir;
  {
    sluice::test::sluice_process proc(dir.path(), kConfig);
    ASSERT_TRUE(proc.running()) << proc.log();
    sluice::test::write_file(dir.path() / "send.py",
                             "import smtplib, sys\n"
                             "from email.message import EmailMessage\n"
                             "m = EmailMessage()\n"
                             "m['From'] = 'Jörg <joerg@example.de>'\n"
                             "m['To'] = 'anna+urgent@one.example, bert@two.example'\n"
                             "m['Subject'] = 'ÄRGER mit der Rechnung'\n"
                             "m['X-Tags'] = 'finance, q3'\n"
                             "m['X-Ticket'] = 'ABC-1234'\n"
                             "m.set_content('Привет\\n')\n"
                             "with smtplib.SMTP(sys.argv[1], int(sys.argv[2])) as s:\n"
                             "    s.send_message(m, to_addrs=['anna+urgent@ONE.example',\n"
                             "        'carl@one.example', 'bert@two.example', 'nodomain'])\n"
                             "    print('sent')\n");
    std::string out;
    ASSERT_EQ(
        sluice::test::run_command("python3 " + (dir.path() / "send.py").string() + " " +
                                      proc.host("smtp") + " " + std::to_string(proc.port("smtp")),
                                  &out),
        0)
        << out << proc.log();
    EXPECT_EQ(proc.stop(), 0) << proc.log();
  }
  sluice::test::store_reader store(dir.path(), "mail.db");
  auto& mb = store.service();
  const auto names = mb.mailboxes();
  for (const char* want : {"one.example", "two.example", "elsewhere"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  }
  auto one = store.all("one.example");
  ASSERT_EQ(one.size(), 1u);  // two recipients there, one copy
  ASSERT_EQ(store.all("two.example").size(), 1u);
  // The listener refused "nodomain" (RFC 5321 needs a domain); the fallback mailbox was
  // declared by the stage and stays empty.
  EXPECT_TRUE(store.all("elsewhere").empty());
  const auto& m = one.front();
  EXPECT_EQ(m.subject, "\xC3\x84RGER mit der Rechnung");  // RFC 2047 decoded
  ASSERT_TRUE(m.from);
  EXPECT_EQ(m.from->address, "joerg@example.de");
  EXPECT_EQ(m.tags, (std::vector<std::string>{"Billing", "Finance", "Q3", "Urgent"}));
  auto hits = [&](const std::string& mailbox, const std::string& query) {
    return store.run(mb.search({.mailbox = mailbox, .query = query})).matched;
  };
  EXPECT_EQ(hits("one.example", "ärger"), 1u);
  EXPECT_EQ(hits("two.example", "header:X-Ticket:abc-12"), 1u);
  EXPECT_EQ(hits("two.example", "header:X-Ticket:xyz"), 0u);
  EXPECT_EQ(hits("one.example", "tag:billing to:anna+urgent"), 1u);
  EXPECT_EQ(hits("one.example", "-from:joerg"), 0u);
  EXPECT_TRUE(store.run(mb.matches("two.example", m.id, "subject:Rechnung", "UTC")));
}
