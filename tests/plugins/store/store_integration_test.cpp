// store_integration_test.cpp — the real sluice binary with an SMTP listener and a store
// pipeline: a 250 means the message is in the database, even if the process is then
// killed with SIGKILL. Skipped when the smtp plugin is not built.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <filesystem>
#include <optional>
#include <string>

#include "sluice_test.hpp"

namespace fs = std::filesystem;
using sluice::test::line_client;
using sluice::test::sluice_process;
using sluice::test::temp_dir;

namespace {

constexpr const char* kConfig = R"(log: {format: text, level: info}
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
pipelines:
  - name: capture
    stages:
      - plugin: store
        mailbox: inbox
)";

bool smtp_plugin_built() {
  return fs::exists(fs::path(sluice::test::build_dir()) / "lib/sluice/plugins/smtp.so");
}

// Sends one message; returns the reply to the final dot.
std::string send_mail(const sluice_process& p, const std::string& subject) {
  line_client c("127.0.0.1:" + std::to_string(p.port("smtp")));
  c.read_reply();  // greeting
  c.send("EHLO test.example\r\n");
  c.read_reply();
  c.send("MAIL FROM:<alice@example.com>\r\n");
  c.read_reply();
  c.send("RCPT TO:<bob@example.com>\r\n");
  c.read_reply();
  c.send("DATA\r\n");
  c.read_reply();
  c.send("From: alice@example.com\r\nTo: bob@example.com\r\nSubject: " + subject +
         "\r\n\r\nbody line\r\n..dot stuffed\r\n.\r\n");
  std::string reply = c.read_reply();
  c.send("QUIT\r\n");
  return reply;
}

struct row_counts {
  int messages = 0;
  int with_subject = 0;
};

row_counts count_rows(const fs::path& db_path, const std::string& subject) {
  row_counts r;
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return r;
  }
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db, "SELECT count(*), sum(subject = ?1) FROM messages WHERE mailbox = 'inbox'",
                     -1, &st, nullptr);
  sqlite3_bind_text(st, 1, subject.c_str(), -1, SQLITE_TRANSIENT);
  if (sqlite3_step(st) == SQLITE_ROW) {
    r.messages = sqlite3_column_int(st, 0);
    r.with_subject = sqlite3_column_int(st, 1);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  return r;
}

}  // namespace

TEST(StoreIntegration, AcknowledgedMessageSurvivesSigkillAndRestart) {
  if (!smtp_plugin_built()) GTEST_SKIP() << "smtp.so is not built";
  temp_dir dir;
  {
    sluice_process p(dir.path(), kConfig);
    ASSERT_TRUE(p.running()) << p.log();
    const std::string reply = send_mail(p, "before the kill");
    ASSERT_EQ(reply.substr(0, 3), "250") << reply << "\n" << p.log();
    p.kill();  // SIGKILL right after the 250: the commit point must already be behind us
  }
  auto rows = count_rows(dir.path() / "mail.db", "before the kill");
  EXPECT_EQ(rows.messages, 1);
  EXPECT_EQ(rows.with_subject, 1);

  {
    sluice_process p(dir.path(), kConfig);  // re-opens the same database
    ASSERT_TRUE(p.running()) << p.log();
    const std::string reply = send_mail(p, "after the restart");
    ASSERT_EQ(reply.substr(0, 3), "250") << reply << "\n" << p.log();
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  rows = count_rows(dir.path() / "mail.db", "after the restart");
  EXPECT_EQ(rows.messages, 2);
  EXPECT_EQ(rows.with_subject, 1);
}

// Captured mail is private: the database, its WAL and the spool are this user's only, and a
// data directory that other users can write to (a squatted /var/tmp/sluice, say) is refused
// with a message that names it.
TEST(StoreIntegration, DataIsPrivateAndASharedDirectoryIsRefused) {
  if (!smtp_plugin_built()) GTEST_SKIP() << "smtp.so is not built";
  temp_dir dir;
  {
    sluice_process p(dir.path(), kConfig);
    ASSERT_TRUE(p.running()) << p.log();
    ASSERT_EQ(send_mail(p, "private").substr(0, 3), "250") << p.log();
    for (const char* f : {"mail.db", "mail.db-wal", "spool"}) {
      const auto perms = fs::status(dir.path() / f).permissions();
      EXPECT_EQ(perms & (fs::perms::group_all | fs::perms::others_all), fs::perms::none) << f;
    }
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  temp_dir shared;
  const fs::path squat = shared.path() / "data";
  fs::create_directories(squat);
  fs::permissions(squat, fs::perms::all);  // 0777, no sticky bit
  std::string config = kConfig;
  config.replace(config.find("./mail.db"), 9, (squat / "mail.db").string());
  const fs::path cfg = dir.path() / "shared.yaml";
  sluice::test::write_file(cfg, config);
  std::string out;
  const int rc = sluice::test::run_command(
      sluice::test::sluice_binary() + " serve -c " + sluice::test::shell_quote(cfg.string()), &out,
      true, std::chrono::seconds(20));
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find(squat.string() + " is writable by other users"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(squat / "mail.db"));
}

// Below min_free_space a new message gets 452 4.3.1 and is not stored; nothing else is held
// up by it, and a reserve of 0 turns the check off. (The reserve here is more than any disk.)
TEST(StoreIntegration, BelowTheFreeSpaceReserveNewMailIsTempfailed) {
  if (!smtp_plugin_built()) GTEST_SKIP() << "smtp.so is not built";
  temp_dir dir;
  std::string cfg = kConfig;
  const std::string key = "    path: ./mail.db\n";
  cfg.replace(cfg.find(key), key.size(), key + "    min_free_space: 100000000GB\n");
  {
    sluice_process p(dir.path(), cfg);
    ASSERT_TRUE(p.running()) << p.log();
    const std::string reply = send_mail(p, "no room");
    EXPECT_EQ(reply.substr(0, 9), "452 4.3.1") << reply << "\n" << p.log();
    EXPECT_NE(p.log().find("store refusing new messages: free space below min_free_space"),
              std::string::npos)
        << p.log();
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  EXPECT_EQ(count_rows(dir.path() / "mail.db", "no room").messages, 0);
  cfg.replace(cfg.find("100000000GB"), 11, "0");
  {
    sluice_process p(dir.path(), cfg);
    ASSERT_TRUE(p.running()) << p.log();
    const std::string reply = send_mail(p, "room again");
    EXPECT_EQ(reply.substr(0, 3), "250") << reply << "\n" << p.log();
    EXPECT_EQ(p.stop(), 0) << p.log();
  }
  EXPECT_EQ(count_rows(dir.path() / "mail.db", "room again").messages, 1);
}
