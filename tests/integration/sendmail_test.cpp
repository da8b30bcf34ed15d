// sendmail_test.cpp — `sluice sendmail` end to end: a running sluice (smtp listener, a
// testkit sink stage that writes each committed message to <dir>/sink/<id>.eml) receives
// messages piped into the real binary, invoked as `sluice sendmail ...` and through a
// symlink named sendmail, the way PHP (sendmail -t -i) and Symfony (sendmail -bs) call it.
// Each test starts its own sluice; processes are bounded by run_command's timeout.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "sluice_test.hpp"

namespace {

using sluice::test::shell_quote;

namespace fs = std::filesystem;
using sluice::test::run_command;
using sluice::test::sluice_process;
using sluice::test::temp_dir;

constexpr const char* config_yaml = R"(log: {format: text, level: info}
spool: {path: ./spool}
listeners:
  - name: smtp
    plugin: smtp
    pipeline: capture
    listen: ["127.0.0.1:0"]
pipelines:
  - name: capture
    stages:
      - plugin: test_sink
        dir: ./sink
)";

// Pipes `input` into `command` (through a file, so the shell does no quoting of it).
int pipe_into(const fs::path& dir, const std::string& command, const std::string& input,
              std::string* out) {
  const fs::path in = dir / "stdin.txt";
  sluice::test::write_file(in, input);
  return run_command(command + " < " + shell_quote(in.string()), out, true,
                     std::chrono::seconds(60));
}

class SendmailIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.path() / "sink");
    sluice_.emplace(dir_.path(), config_yaml);
    ASSERT_TRUE(sluice_->running()) << sluice_->log();
    server_ = "127.0.0.1:" + std::to_string(sluice_->port("smtp"));
  }

  fs::path sink() const { return dir_.path() / "sink"; }

  temp_dir dir_;
  std::optional<sluice_process> sluice_;
  std::string server_;
};

const std::string php_message =
    "From: App <app@example.org>\n"
    "To: Alice <alice@example.org>, bob@example.org\n"
    "Bcc: hidden@example.org\n"
    "Subject: sendmail integration\n"
    "\n"
    "first line\n"
    ".\n"
    "..two dots\n"
    "last line\n";

TEST_F(SendmailIntegration, PhpStyleDashTDashI) {
  std::string out;
  const int rc = pipe_into(
      dir_.path(), shell_quote(sluice::test::sluice_binary()) + " sendmail -t -i -S " + server_,
      php_message, &out);
  ASSERT_EQ(rc, 0) << out << "\n" << sluice_->log();
  const auto msgs = sluice::test::read_eml_files(sink());
  ASSERT_EQ(msgs.size(), 1u) << sluice_->log();
  const std::string& m = msgs[0];
  EXPECT_NE(m.find("Subject: sendmail integration"), std::string::npos) << m;
  // sendmail removed the Bcc line it was given (it followed To:). The server then records
  // envelope recipients that no To/Cc names in a Bcc field of its own, after Message-ID
  // (as Mailpit does), so the address appears exactly once, there.
  EXPECT_EQ(m.find("bob@example.org\r\nBcc:"), std::string::npos) << m;
  const auto bcc = m.find("Bcc: hidden@example.org");
  ASSERT_NE(bcc, std::string::npos) << m;
  EXPECT_GT(bcc, m.find("Message-ID:")) << m;
  EXPECT_EQ(m.find("hidden@example.org", bcc + std::string_view("Bcc: hidden@example.org").size()),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("Date: "), std::string::npos) << m;
  // The lone dot survived -i, and the doubled dot arrived as sent (stuffed, then unstuffed).
  EXPECT_NE(m.find("first line\r\n.\r\n..two dots\r\nlast line\r\n"), std::string::npos) << m;
}

TEST_F(SendmailIntegration, ThroughASymlinkNamedSendmailWithEnvServer) {
  temp_dir bin;
  const fs::path link = bin.path() / "sendmail";
  fs::create_symlink(sluice::test::sluice_binary(), link);
  std::string out;
  const int rc = pipe_into(dir_.path(),
                           "SLUICE_SENDMAIL_SERVER=" + server_ + " " + shell_quote(link.string()) +
                               " -f sender@example.org carol@example.org",
                           "Subject: via symlink\n\nhello\n.\nnot part of the message\n", &out);
  ASSERT_EQ(rc, 0) << out << "\n" << sluice_->log();
  const auto msgs = sluice::test::read_eml_files(sink());
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NE(msgs[0].find("Subject: via symlink"), std::string::npos) << msgs[0];
  EXPECT_NE(msgs[0].find("From: sender@example.org"), std::string::npos) << msgs[0];
  EXPECT_EQ(msgs[0].find("not part of the message"), std::string::npos) << msgs[0];
}

TEST_F(SendmailIntegration, SymfonyStyleDashBs) {
  const std::string session =
      "EHLO symfony.local\r\n"
      "MAIL FROM:<app@example.org>\r\n"
      "RCPT TO:<dave@example.org>\r\n"
      "DATA\r\n"
      "From: app@example.org\r\nTo: dave@example.org\r\nSubject: over -bs\r\n\r\nbody\r\n.\r\n"
      "QUIT\r\n";
  std::string out;
  const int rc = pipe_into(
      dir_.path(), shell_quote(sluice::test::sluice_binary()) + " sendmail -bs -S " + server_,
      session, &out);
  ASSERT_EQ(rc, 0) << out << "\n" << sluice_->log();
  EXPECT_TRUE(out.starts_with("220")) << out;
  EXPECT_NE(out.find("354"), std::string::npos) << out;
  EXPECT_NE(out.find("221"), std::string::npos) << out;
  const auto msgs = sluice::test::read_eml_files(sink());
  ASSERT_EQ(msgs.size(), 1u);
  EXPECT_NE(msgs[0].find("Subject: over -bs"), std::string::npos) << msgs[0];
}

TEST_F(SendmailIntegration, NoServerMeansTempfailExit) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&sa), &len);
  ::close(s);
  std::string out;
  const int rc = pipe_into(dir_.path(),
                           shell_quote(sluice::test::sluice_binary()) +
                               " sendmail -t -i -S 127.0.0.1:" + std::to_string(ntohs(sa.sin_port)),
                           php_message, &out);
  EXPECT_EQ(rc, 75) << out;  // EX_TEMPFAIL
  EXPECT_NE(out.find("sendmail: cannot connect"), std::string::npos) << out;
  EXPECT_TRUE(sluice::test::read_eml_files(sink()).empty());
}

TEST_F(SendmailIntegration, UsageErrorExit) {
  std::string out;
  const int rc = pipe_into(dir_.path(), shell_quote(sluice::test::sluice_binary()) + " sendmail -Z",
                           "x\n", &out);
  EXPECT_EQ(rc, 64) << out;  // EX_USAGE
  EXPECT_NE(out.find("sendmail: unknown option -Z"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(
      pipe_into(dir_.path(), shell_quote(sluice::test::sluice_binary()) + " sendmail --verbose",
                "x\n", &out),
      64);
  EXPECT_NE(out.find("sendmail: unknown option --verbose"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(pipe_into(dir_.path(),
                      shell_quote(sluice::test::sluice_binary()) + " sendmail --version", "", &out),
            0)
      << out;
  EXPECT_NE(out.find("sluice sendmail "), std::string::npos) << out;
}

}  // namespace
