// mailpit_facade_test.cpp — the real binary started only with Mailpit's flags and MP_*
// variables (no -c), driven by independent clients: Python's smtplib, curl, Apache's
// htpasswd, and aiosmtpd as the relay upstream (tests/plugins/relay/upstream.py).
#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <csignal>
#include <set>

#include "../plugins/relay/relay_test_support.hpp"
#include "sluice_test.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace std::chrono_literals;
using sluice::test::read_file;
using sluice::test::run_command;
using sluice::test::shell_quote;
using sluice::test::sluice_process;
using sluice::test::temp_dir;
using sluice::test::write_file;
using sluice::test::relay::eventually;
using sluice::test::relay::upstream;

const std::vector<std::string> loopback = {"--smtp", "127.0.0.1:0", "-l", "127.0.0.1:0"};

std::vector<std::string> with(std::vector<std::string> more) {
  auto a = loopback;
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

std::pair<int, std::string> curl(const std::string& args) {
  std::string out;
  run_command("curl -sS --max-time 30 -w '\\n%{http_code}' " + args, &out, false, 40s);
  auto nl = out.rfind('\n');
  if (nl == std::string::npos) return {0, out};
  return {std::atoi(out.c_str() + nl + 1), out.substr(0, nl)};
}

json::object messages(const sluice_process& p) {
  auto [code, body] = curl(shell_quote("http://" + p.endpoints("http").at(0) + "/api/v1/messages"));
  if (code != 200) return {};
  return json::parse(body).as_object();
}

// smtplib sends one message; returns the script's exit status, its output in *out.
int smtplib_send(const fs::path& dir, const sluice_process& p, const std::string& subject,
                 const std::string& to, const std::string& login = {}, std::string* out = nullptr) {
  write_file(dir / "send.py",
             "import smtplib, sys\n"
             "from email.message import EmailMessage\n"
             "m = EmailMessage()\n"
             "m['From'] = 'app@example.org'\n"
             "m['To'] = sys.argv[4]\n"
             "m['Subject'] = sys.argv[3]\n"
             "m.set_content('hello from smtplib\\n')\n"
             "with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20) as s:\n"
             "    if len(sys.argv) > 5:\n"
             "        u, pw = sys.argv[5].split(':', 1)\n"
             "        s.login(u, pw)\n"
             "    s.send_message(m)\n");
  std::string cmd = "python3 " + shell_quote((dir / "send.py").string()) + " " + p.host("smtp") +
                    " " + std::to_string(p.port("smtp")) + " " + shell_quote(subject) + " " +
                    shell_quote(to);
  if (!login.empty()) cmd += " " + shell_quote(login);
  std::string local;
  return run_command(cmd, out ? out : &local);
}

TEST(mailpit_facade, smtplib_mail_is_listed_by_the_api_and_the_temp_data_is_removed) {
  temp_dir dir;
  sluice_process p(dir.path(), sluice_process::no_config{loopback, {}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "hello facade", "dev@example.org", {}, &out), 0) << out;
  json::object list;
  ASSERT_TRUE(eventually([&] {
    list = messages(p);
    return list.contains("total") && list["total"].as_int64() == 1;
  })) << p.log();
  auto& m = list["messages"].as_array().at(0).as_object();
  EXPECT_EQ(m["Subject"].as_string(), "hello facade");
  EXPECT_EQ(m["To"].as_array().at(0).as_object()["Address"].as_string(), "dev@example.org");
  // No --database: a temporary directory, announced in the log and gone after the drain.
  auto log = p.log();
  auto at = log.find("no --database: data in ");
  ASSERT_NE(at, std::string::npos) << log;
  auto start = at + std::string("no --database: data in ").size();
  fs::path data = log.substr(start, log.find(' ', start) - start);
  EXPECT_TRUE(fs::exists(data / "sluice.db")) << data;
  EXPECT_EQ(p.stop(), 0) << p.log();
  EXPECT_FALSE(fs::exists(data)) << data;
}

TEST(mailpit_facade, mp_variables_alone_select_the_facade_and_a_database_persists) {
  temp_dir dir;
  const auto db = dir.path() / "mail.db";
  {
    sluice_process p(dir.path(), sluice_process::no_config{{},
                                                           {{"MP_SMTP_BIND_ADDR", "127.0.0.1:0"},
                                                            {"MP_UI_BIND_ADDR", "127.0.0.1:0"},
                                                            {"MP_DATABASE", db.string()},
                                                            {"MP_LABEL", "facade-env"}}});
    ASSERT_TRUE(p.running());
    std::string out;
    ASSERT_EQ(smtplib_send(dir.path(), p, "kept", "a@example.org", {}, &out), 0) << out;
    ASSERT_TRUE(eventually([&] {
      auto l = messages(p);
      return l.contains("total") && l["total"].as_int64() == 1;
    }));
    auto [code, body] = curl(shell_quote("http://" + p.endpoints("http").at(0) + "/api/v1/info"));
    EXPECT_EQ(code, 200);
    EXPECT_EQ(p.stop(), 0);
  }
  EXPECT_TRUE(fs::exists(db));
  EXPECT_TRUE(fs::is_directory(fs::path(db.string() + "-spool")));
  // Restarted over the same file, the message is still there.
  sluice_process p(dir.path(), sluice_process::no_config{with({"-d", db.string()}), {}});
  ASSERT_TRUE(p.running());
  auto l = messages(p);
  ASSERT_TRUE(l.contains("total"));
  EXPECT_EQ(l["total"].as_int64(), 1);
}

TEST(mailpit_facade, smtp_auth_file_from_htpasswd_requires_auth) {
  if (run_command("command -v htpasswd", nullptr) != 0) GTEST_SKIP() << "apache2-utils missing";
  temp_dir dir;
  auto users = dir.path() / "smtp.htpasswd";
  ASSERT_EQ(run_command("htpasswd -cbB " + shell_quote(users.string()) + " mailer s3cret"), 0);
  sluice_process p(
      dir.path(),
      sluice_process::no_config{
          with({"--smtp-auth-file", users.string(), "--smtp-auth-allow-insecure"}), {}});
  ASSERT_TRUE(p.running());
  std::string out;
  EXPECT_NE(smtplib_send(dir.path(), p, "no auth", "x@example.org", {}, &out), 0);
  EXPECT_NE(out.find("530"), std::string::npos) << out;
  out.clear();
  EXPECT_NE(smtplib_send(dir.path(), p, "bad auth", "x@example.org", "mailer:wrong", &out), 0);
  EXPECT_NE(out.find("535"), std::string::npos) << out;
  out.clear();
  ASSERT_EQ(smtplib_send(dir.path(), p, "with auth", "x@example.org", "mailer:s3cret", &out), 0)
      << out;
  json::object l;
  ASSERT_TRUE(eventually([&] {
    l = messages(p);
    return l.contains("total") && l["total"].as_int64() == 1;
  }));
  EXPECT_EQ(l["messages"].as_array().at(0).as_object()["Subject"].as_string(), "with auth");
}

TEST(mailpit_facade, mp_smtp_auth_and_allowed_recipients) {
  temp_dir dir;
  sluice_process p(dir.path(),
                   sluice_process::no_config{with({"--smtp-auth-allow-insecure",
                                                   "--smtp-allowed-recipients", "@example\\.org$"}),
                                             {{"MP_SMTP_AUTH", "ann:pw1 bob:pw2"}}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "as bob", "x@example.org", "bob:pw2", &out), 0) << out;
  out.clear();
  EXPECT_NE(smtplib_send(dir.path(), p, "wrong pw", "x@example.org", "ann:pw2", &out), 0);
  EXPECT_NE(out.find("535"), std::string::npos) << out;
  out.clear();
  // Mailpit's reply for a recipient outside --smtp-allowed-recipients.
  EXPECT_NE(smtplib_send(dir.path(), p, "elsewhere", "x@example.com", "ann:pw1", &out), 0);
  EXPECT_NE(out.find("550"), std::string::npos) << out;
  EXPECT_NE(out.find("5.1.0 Requested action not taken: mailbox unavailable"), std::string::npos)
      << out;
  json::object l;
  ASSERT_TRUE(eventually([&] {
    l = messages(p);
    return l.contains("total") && l["total"].as_int64() == 1;
  }));
  EXPECT_EQ(l["messages"].as_array().at(0).as_object()["Subject"].as_string(), "as bob");
  EXPECT_EQ(p.log().find("pw2"), std::string::npos);
}

TEST(mailpit_facade, pop3_with_users_and_chaos_through_the_api) {
  if (run_command("command -v htpasswd", nullptr) != 0) GTEST_SKIP() << "apache2-utils missing";
  temp_dir dir;
  auto users = dir.path() / "pop3.htpasswd";
  ASSERT_EQ(run_command("htpasswd -cbB " + shell_quote(users.string()) + " reader popsecret"), 0);
  sluice_process p(dir.path(),
                   sluice_process::no_config{with({"--pop3", "127.0.0.1:0", "--pop3-auth-file",
                                                   users.string(), "--enable-chaos"}),
                                             {}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "for pop3", "x@example.org", {}, &out), 0) << out;
  ASSERT_TRUE(eventually([&] {
    auto l = messages(p);
    return l.contains("total") && l["total"].as_int64() == 1;
  }));
  write_file(dir.path() / "pop.py",
             "import poplib, sys\n"
             "p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=20)\n"
             "p.user('reader'); p.pass_('popsecret')\n"
             "n, size = p.stat()\n"
             "print('count', n)\n"
             "print(b'\\n'.join(p.retr(1)[1]).decode())\n"
             "p.quit()\n");
  out.clear();
  ASSERT_EQ(run_command("python3 " + shell_quote((dir.path() / "pop.py").string()) + " " +
                            p.host("pop3") + " " + std::to_string(p.port("pop3")),
                        &out),
            0)
      << out << p.log();
  EXPECT_NE(out.find("count 1"), std::string::npos) << out;
  EXPECT_NE(out.find("Subject: for pop3"), std::string::npos) << out;
  // --enable-chaos: the chaos API is on, and a trigger set there fires at RCPT.
  const std::string api = "http://" + p.endpoints("http").at(0) + "/api/v1/chaos";
  auto [code, body] = curl("-X PUT -H 'Content-Type: application/json' -d " +
                           shell_quote(R"({"Recipient": {"ErrorCode": 451, "Probability": 100}})") +
                           " " + shell_quote(api));
  EXPECT_EQ(code, 200) << body;
  out.clear();
  EXPECT_NE(smtplib_send(dir.path(), p, "chaos", "x@example.org", {}, &out), 0);
  EXPECT_NE(out.find("451"), std::string::npos) << out;
}

TEST(mailpit_facade, max_prunes_to_the_newest_messages) {
  temp_dir dir;
  sluice_process p(dir.path(), sluice_process::no_config{with({"--max", "2"}), {}});
  ASSERT_TRUE(p.running());
  for (int i = 1; i <= 5; ++i) {
    std::string out;
    ASSERT_EQ(smtplib_send(dir.path(), p, "msg " + std::to_string(i), "x@example.org", {}, &out), 0)
        << out;
  }
  // Mailpit prunes every 60 s; so does the facade's store.
  json::object l;
  ASSERT_TRUE(eventually(
      [&] {
        l = messages(p);
        return l.contains("total") && l["total"].as_int64() == 2;
      },
      90s))
      << json::serialize(l);
  std::set<std::string> subjects;
  for (auto& m : l["messages"].as_array())
    subjects.insert(std::string(m.as_object()["Subject"].as_string()));
  EXPECT_EQ(subjects, (std::set<std::string>{"msg 4", "msg 5"}));
}

TEST(mailpit_facade, ignore_duplicate_ids_and_use_message_dates) {
  temp_dir dir;
  sluice_process p(dir.path(), sluice_process::no_config{
                                   with({"--ignore-duplicate-ids", "--use-message-dates"}), {}});
  ASSERT_TRUE(p.running());
  // smtplib sends the same Message-ID twice and another once; every one gets its 250
  // (sendmail() raises otherwise), as in Mailpit.
  write_file(
      dir.path() / "dup.py",
      "import smtplib, sys\n"
      "def msg(mid, subject):\n"
      "    return ('From: app@example.org\\r\\nTo: dev@example.org\\r\\n'\n"
      "            'Date: Sat, 3 Feb 2001 04:05:06 +0000\\r\\n'\n"
      "            'Message-ID: <' + mid + '>\\r\\nSubject: ' + subject + '\\r\\n\\r\\nhi\\r\\n')\n"
      "with smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20) as s:\n"
      "    for mid, subject in [('dup@example.org', 'first'), ('dup@example.org', 'again'),\n"
      "                         ('other@example.org', 'other')]:\n"
      "        s.sendmail('app@example.org', ['dev@example.org'], msg(mid, subject))\n"
      "        print(subject, s.noop()[0])\n");
  std::string out;
  ASSERT_EQ(run_command("python3 " + shell_quote((dir.path() / "dup.py").string()) + " " +
                            p.host("smtp") + " " + std::to_string(p.port("smtp")),
                        &out),
            0)
      << out << p.log();
  json::object l;
  ASSERT_TRUE(eventually([&] {
    l = messages(p);
    return l.contains("total") && l["total"].as_int64() == 2;
  })) << json::serialize(l);
  std::set<std::string> subjects;
  for (auto& mv : l["messages"].as_array()) {
    auto& m = mv.as_object();
    subjects.insert(std::string(m["Subject"].as_string()));
    EXPECT_EQ(m["Created"].as_string(), "2001-02-03T04:05:06Z") << json::serialize(m);
  }
  EXPECT_EQ(subjects, (std::set<std::string>{"first", "other"}));
  auto [code, info] = curl(shell_quote("http://" + p.endpoints("http").at(0) + "/api/v1/info"));
  ASSERT_EQ(code, 200) << info;
  EXPECT_EQ(json::parse(info).at("RuntimeStats").at("SMTPIgnored").to_number<int>(), 1) << info;
  EXPECT_NE(p.log().find("duplicate Message-ID, not stored"), std::string::npos) << p.log();
}

TEST(mailpit_facade, tag_rules_and_the_flag_over_its_variable) {
  temp_dir dir;
  // MP_TAG is overridden by --tag, as in Mailpit: its rule must not apply.
  sluice_process p(dir.path(), sluice_process::no_config{with({"--tag", "Urgent=subject:urgent"}),
                                                         {{"MP_TAG", "Weekly=subject:weekly"}}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "urgent: disk full", "ops@example.org", {}, &out), 0)
      << out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "weekly report", "ops@example.org", {}, &out), 0) << out;
  json::object l;
  ASSERT_TRUE(eventually([&] {
    l = messages(p);
    return l.contains("total") && l["total"].as_int64() == 2;
  }));
  for (auto& mv : l["messages"].as_array()) {
    auto& m = mv.as_object();
    if (m["Subject"].as_string() == "urgent: disk full")
      EXPECT_EQ(json::serialize(m["Tags"]), R"(["Urgent"])");
    else
      EXPECT_EQ(json::serialize(m["Tags"]), "[]");
  }
}

TEST(mailpit_facade, relay_all_delivers_every_message_to_the_upstream) {
  temp_dir dir;
  upstream up(dir.path() / "up", "");
  ASSERT_NE(up.port(), 0) << up.log();
  sluice_process p(dir.path(),
                   sluice_process::no_config{with({"--smtp-relay-all"}),
                                             {{"MP_SMTP_RELAY_HOST", "127.0.0.1"},
                                              {"MP_SMTP_RELAY_PORT", std::to_string(up.port())}}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "relay me", "dest@example.net", {}, &out), 0) << out;
  ASSERT_TRUE(up.wait_for(1)) << p.log() << up.log();
  auto m = up.messages().at(0);
  EXPECT_EQ(m["mail_from"].as_string(), "app@example.org");
  EXPECT_EQ(json::serialize(m["rcpt_tos"]), R"(["dest@example.net"])");
  EXPECT_NE(std::string(m["content"].as_string()).find("Subject: relay me"), std::string::npos);
  // Captured as well.
  auto l = messages(p);
  ASSERT_TRUE(l.contains("total"));
  EXPECT_EQ(l["total"].as_int64(), 1);
}

TEST(mailpit_facade, relay_config_file_and_release_through_the_api) {
  temp_dir dir;
  upstream up(dir.path() / "up", "--auth relayuser:relaypass");
  ASSERT_NE(up.port(), 0) << up.log();
  auto relay = dir.path() / "relay.yaml";
  write_file(relay, "host: 127.0.0.1\nport: " + std::to_string(up.port()) +
                        "\nauth: plain\nusername: relayuser\npassword: relaypass\n"
                        "return-path: bounces@example.org\n"
                        "override-from: noreply@example.org\n"
                        "preserve-message-ids: true\n");
  const auto args = with({"--smtp-relay-config", relay.string()});

  // check-config --print: no secret in it, and the text is itself a valid configuration.
  std::string printed;
  std::string cmd = shell_quote(sluice::test::sluice_binary()) + " check-config --print";
  for (const auto& a : args)
    cmd += " " + shell_quote(a);
  ASSERT_EQ(run_command("env -u SLUICE_CONFIG " + cmd, &printed, false), 0) << printed;
  EXPECT_EQ(printed.find("relaypass"), std::string::npos) << printed;
  EXPECT_NE(printed.find("${MP_SMTP_RELAY_PASSWORD}"), std::string::npos) << printed;
  write_file(dir.path() / "printed.yaml", printed);
  std::string check;
  const std::string check_cmd = shell_quote(sluice::test::sluice_binary()) + " check-config -c " +
                                shell_quote((dir.path() / "printed.yaml").string());
  EXPECT_EQ(run_command("MP_SMTP_RELAY_PASSWORD=x " + check_cmd, &check), 0) << check;
  EXPECT_NE(check.find("configuration is valid"), std::string::npos) << check;
  check.clear();
  EXPECT_EQ(run_command("env -u MP_SMTP_RELAY_PASSWORD " + check_cmd, &check), 78) << check;
  EXPECT_NE(check.find("MP_SMTP_RELAY_PASSWORD is not set"), std::string::npos) << check;
  // Mailpit flags together with -c are a usage error.
  EXPECT_EQ(run_command(check_cmd + " --max 5", &check), 64);

  sluice_process p(dir.path(), sluice_process::no_config{args, {}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "release me", "captured@example.net", {}, &out), 0) << out;
  std::string id;
  ASSERT_TRUE(eventually([&] {
    auto l = messages(p);
    if (!l.contains("messages") || l["messages"].as_array().empty()) return false;
    id = std::string(l["messages"].as_array().at(0).as_object()["ID"].as_string());
    return true;
  }));
  EXPECT_TRUE(up.messages().empty());  // no auto relay without --smtp-relay-all
  const std::string api = "http://" + p.endpoints("http").at(0) + "/api/v1/";
  auto [code, body] = curl("-X POST -H 'Content-Type: application/json' -d " +
                           shell_quote(R"({"To": ["dest@example.org"]})") + " " +
                           shell_quote(api + "message/" + id + "/release"));
  EXPECT_EQ(code, 200) << body << p.log();
  ASSERT_TRUE(up.wait_for(1)) << p.log() << up.log();
  auto m = up.messages().at(0);
  EXPECT_EQ(m["auth"].as_string(), "relayuser");
  EXPECT_EQ(m["mail_from"].as_string(), "bounces@example.org");
  EXPECT_EQ(json::serialize(m["rcpt_tos"]), R"(["dest@example.org"])");
  const std::string content(m["content"].as_string());
  EXPECT_NE(content.find("From: <noreply@example.org>"), std::string::npos) << content;
  EXPECT_NE(content.find("X-Original-From: app@example.org"), std::string::npos) << content;
  // preserve-message-ids: the stored message's Message-ID goes out unchanged.
  auto [dcode, detail] = curl(shell_quote(api + "message/" + id));
  ASSERT_EQ(dcode, 200) << detail;
  const std::string mid(json::parse(detail).as_object()["MessageID"].as_string());
  ASSERT_FALSE(mid.empty());
  EXPECT_NE(content.find("Message-ID: <" + mid + ">"), std::string::npos) << mid << "\n" << content;
  EXPECT_EQ(p.log().find("relaypass"), std::string::npos);
}

TEST(mailpit_facade, label_is_in_the_smtp_banner_and_the_pop3_greeting) {
  temp_dir dir;
  sluice_process p(dir.path(), sluice_process::no_config{
                                   with({"--pop3", "127.0.0.1:0"}),
                                   {{"MP_LABEL", "QA box"}, {"MP_POP3_AUTH", "reader:popsecret"}}});
  ASSERT_TRUE(p.running());
  write_file(dir.path() / "greet.py",
             "import smtplib, poplib, sys\n"
             "s = smtplib.SMTP(timeout=20)\n"
             "code, text = s.connect(sys.argv[1], int(sys.argv[2]))\n"
             "print('smtp', code, text.decode())\n"
             "s.quit()\n"
             "p = poplib.POP3(sys.argv[3], int(sys.argv[4]), timeout=20)\n"
             "print('pop3', p.getwelcome().decode())\n"
             "p.user('reader'); p.pass_('popsecret')\n"
             "print('stat', p.stat()[0])\n"
             "p.quit()\n");
  std::string out;
  ASSERT_EQ(run_command("python3 " + shell_quote((dir.path() / "greet.py").string()) + " " +
                            p.host("smtp") + " " + std::to_string(p.port("smtp")) + " " +
                            p.host("pop3") + " " + std::to_string(p.port("pop3")),
                        &out),
            0)
      << out << p.log();
  // Mailpit: "Mailpit (label)"; Sluice keeps its own name and adds the label the same way.
  EXPECT_NE(out.find("smtp 220 "), std::string::npos) << out;
  EXPECT_NE(out.find(" ESMTP Sluice (QA box) ready\n"), std::string::npos) << out;
  EXPECT_NE(out.find("pop3 +OK Sluice (QA box) POP3 server ready"), std::string::npos) << out;
  EXPECT_NE(out.find("stat 0"), std::string::npos) << out;
  auto [code, body] = curl(shell_quote("http://" + p.endpoints("http").at(0) + "/api/v1/webui"));
  EXPECT_EQ(code, 200) << body;
  EXPECT_NE(body.find("\"Label\":\"QA box\""), std::string::npos) << body;
}

// One transaction with the given recipients through smtplib; prints each reply.
int smtplib_rcpts(const fs::path& dir, const sluice_process& p, const std::string& subject,
                  const std::vector<std::string>& rcpts, std::string* out) {
  write_file(
      dir / "rcpts.py",
      "import smtplib, sys\n"
      "s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=20)\n"
      "s.ehlo('client.test')\n"
      "print('mail', *s.mail('app@example.org'))\n"
      "for r in sys.argv[4:]:\n"
      "    print('rcpt', r, *s.rcpt(r))\n"
      "body = ('From: app@example.org\\r\\nTo: x@example.org\\r\\nSubject: ' + sys.argv[3] +\n"
      "        '\\r\\n\\r\\nhello\\r\\n').encode()\n"
      "print('data', *s.data(body))\n"
      "s.quit()\n");
  std::string cmd = "python3 " + shell_quote((dir / "rcpts.py").string()) + " " + p.host("smtp") +
                    " " + std::to_string(p.port("smtp")) + " " + shell_quote(subject);
  for (const auto& r : rcpts)
    cmd += " " + shell_quote(r);
  return run_command(cmd, out);
}

TEST(mailpit_facade, ignore_rejected_recipients_answers_250_and_keeps_only_the_allowed) {
  temp_dir dir;
  sluice_process p(dir.path(),
                   sluice_process::no_config{with({"--smtp-allowed-recipients", "@example\\.org$",
                                                   "--smtp-ignore-rejected-recipients"}),
                                             {}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_rcpts(dir.path(), p, "mixed", {"x@example.org", "spy@elsewhere.test"}, &out), 0)
      << out << p.log();
  EXPECT_NE(out.find("rcpt x@example.org 250 b'2.1.5 Ok'"), std::string::npos) << out;
  EXPECT_NE(out.find("rcpt spy@elsewhere.test 250 b'2.1.5 Ok'"), std::string::npos) << out;
  EXPECT_NE(out.find("data 250 b'2.0.0 Ok: queued as "), std::string::npos) << out;
  // Every recipient rejected: Mailpit's "250 2.0.0 Ok: queued" (no ID), and nothing stored.
  out.clear();
  ASSERT_EQ(smtplib_rcpts(dir.path(), p, "nobody", {"a@elsewhere.test", "b@other.test"}, &out), 0)
      << out << p.log();
  EXPECT_NE(out.find("rcpt b@other.test 250 b'2.1.5 Ok'"), std::string::npos) << out;
  EXPECT_NE(out.find("data 250 b'2.0.0 Ok: queued'"), std::string::npos) << out;
  json::object l;
  ASSERT_TRUE(eventually([&] {
    l = messages(p);
    return l.contains("total") && l["total"].as_int64() >= 1;
  }));
  // A message after the dropped one is stored, so the dropped one had its chance to appear.
  out.clear();
  ASSERT_EQ(smtplib_rcpts(dir.path(), p, "after", {"y@example.org"}, &out), 0) << out;
  ASSERT_TRUE(eventually([&] {
    l = messages(p);
    return l.contains("total") && l["total"].as_int64() == 2;
  }));
  std::set<std::string> subjects;
  std::string mixed_id;
  for (const auto& m : l["messages"].as_array()) {
    const auto& o = m.as_object();
    subjects.insert(std::string(o.at("Subject").as_string()));
    if (o.at("Subject").as_string() == "mixed") mixed_id = std::string(o.at("ID").as_string());
  }
  EXPECT_EQ(subjects, (std::set<std::string>{"mixed", "after"}));
  // The dropped recipient is not in the envelope, so not in the Bcc Mailpit-style capture adds.
  ASSERT_FALSE(mixed_id.empty());
  auto [code, raw] = curl(
      shell_quote("http://" + p.endpoints("http").at(0) + "/api/v1/message/" + mixed_id + "/raw"));
  EXPECT_EQ(code, 200) << raw;
  EXPECT_NE(raw.find("Subject: mixed"), std::string::npos) << raw;
  EXPECT_EQ(raw.find("spy@elsewhere.test"), std::string::npos) << raw;
  EXPECT_NE(p.log().find("message dropped"), std::string::npos) << p.log();
}

TEST(mailpit_facade, without_ignore_rejected_recipients_the_550_stays) {
  temp_dir dir;
  sluice_process p(dir.path(),
                   sluice_process::no_config{with({"--smtp-allowed-recipients", "@example\\.org$"}),
                                             {{"MP_SMTP_IGNORE_REJECTED_RECIPIENTS", "false"}}});
  ASSERT_TRUE(p.running());
  std::string out;
  // smtplib's data() raises: no recipient was accepted.
  EXPECT_NE(smtplib_rcpts(dir.path(), p, "refused", {"spy@elsewhere.test"}, &out), 0);
  EXPECT_NE(out.find("rcpt spy@elsewhere.test 550 b'5.1.0 Requested action not taken: mailbox "
                     "unavailable'"),
            std::string::npos)
      << out;
}

TEST(mailpit_facade, log_file_receives_the_log_instead_of_stderr) {
  temp_dir dir;
  const fs::path file = dir.path() / "logs-mailpit.log";
  sluice_process p(dir.path(), sluice_process::no_config{with({"--log-file", file.string()}), {}});
  ASSERT_TRUE(p.running());
  std::string out;
  ASSERT_EQ(smtplib_send(dir.path(), p, "logged", "x@example.org", {}, &out), 0) << out;
  ASSERT_TRUE(
      eventually([&] { return read_file(file).find("message accepted") != std::string::npos; }));
  const std::string logged = read_file(file);
  EXPECT_NE(logged.find("listening"), std::string::npos) << logged;
  EXPECT_EQ(p.log().find("message accepted"), std::string::npos) << p.log();
  // SIGHUP reopens the file (rotation): the old one moved away, new lines go to a new file.
  fs::rename(file, dir.path() / "logs-mailpit.log.1");
  p.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return fs::exists(file) && read_file(file).find("configuration reloaded") != std::string::npos;
  })) << read_file(dir.path() / "logs-mailpit.log.1");
  EXPECT_EQ(p.stop(), 0);
  EXPECT_NE(read_file(file).find("stopped"), std::string::npos) << read_file(file);
}

TEST(mailpit_facade, refused_flags_exit_with_usage_status) {
  std::string out;
  const std::string bin = "env -u SLUICE_CONFIG " + shell_quote(sluice::test::sluice_binary());
  EXPECT_EQ(run_command(bin + " --smtp 127.0.0.1:0 --disable-wal", &out), 64);
  EXPECT_NE(out.find("--disable-wal: not supported by sluice"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(bin + " check-config --max-age 3w", &out), 64);
  EXPECT_NE(out.find("--max-age"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(bin + " --help", &out), 0);
  EXPECT_NE(out.find("--smtp-relay-config"), std::string::npos) << out;
}

}  // namespace
