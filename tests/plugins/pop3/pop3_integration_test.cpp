// tests/plugins/pop3/pop3_integration_test.cpp — the real sluice binary with the smtp
// listener feeding a store (pipeline smtp → store) and the pop3 listener reading it,
// driven by golden transcripts and independent clients: Python's poplib, curl (pop3://,
// pop3s://), Ruby's net/pop and fetchmail. Messages go in with Python's smtplib.
//
// Clients that are not installed (ruby, fetchmail) make their test skip with the reason;
// scripts/install-deps.sh installs them. Every wait is bounded.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <boost/json.hpp>

#include <csignal>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sluice_test.hpp"
#include "transcript.hpp"

namespace fs = std::filesystem;
using sluice::test::run_command;
using sluice::test::shell_quote;
using sluice::test::sluice_process;

namespace {

fs::path data_dir() {
  return fs::path(sluice::test::test_data_dir()) / "pop3";
}

bool have(const std::string& tool) {
  return run_command("command -v " + tool + " >/dev/null 2>&1") == 0;
}

// Test credentials: alice's secret is stored hashed (SHA-512-crypt), bob's in plain text
// (APOP needs the shared secret).
struct credentials {
  sluice::test::temp_dir dir;
  fs::path htpasswd, cert, key;
  credentials() {
    std::string hash;
    if (run_command("openssl passwd -6 secret", &hash, false) != 0) {
      throw std::runtime_error("openssl passwd failed");
    }
    while (!hash.empty() && (hash.back() == '\n' || hash.back() == '\r'))
      hash.pop_back();
    htpasswd = dir.path() / "users.htpasswd";
    sluice::test::write_file(htpasswd, "# test users\nalice:" + hash + "\nbob:hunter2\n");
    cert = dir.path() / "cert.pem";
    key = dir.path() / "key.pem";
    std::string out;
    int rc = run_command(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost"
        " -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
            key.string() + " -out " + cert.string(),
        &out);
    if (rc != 0) throw std::runtime_error("openssl req failed: " + out);
  }
  std::string tls(const std::string& mode) const {
    return "    tls: {mode: " + mode + ", cert: " + cert.string() + ", key: " + key.string() +
           "}\n";
  }
};

const credentials& creds() {
  static const credentials c;  // its directory is removed at exit
  return c;
}

// One pop3 listener instance's YAML (indented as a list item under listeners:).
std::string pop3_listener(const std::string& name, const std::string& keys) {
  return "  - name: " + name +
         "\n    plugin: pop3\n    hostname: pop.test\n    htpasswd: " + creds().htpasswd.string() +
         "\n" + keys;
}

std::string config(const std::string& listeners) {
  return "log: {format: text, level: info}\n"
         "spool: {path: ./spool}\n"
         "services:\n"
         "  - name: default\n"
         "    plugin: store\n"
         "    path: ./sluice.db\n"
         "listeners:\n"
         "  - name: smtp\n"
         "    plugin: smtp\n"
         "    pipeline: capture\n"
         "    hostname: mx.test\n"
         "    listen: [\"127.0.0.1:0\"]\n" +
         listeners +
         "pipelines:\n"
         "  - name: capture\n"
         "    stages:\n"
         "      - plugin: store\n";
}

std::string tcp_endpoint(const sluice_process& p, const std::string& listener) {
  for (const auto& e : p.endpoints(listener)) {
    if (!e.starts_with("unix:")) return e;
  }
  return "";
}

// Sends the message files (names under tests/data/pop3/messages) with smtplib.
void seed(const sluice_process& p, const std::vector<std::string>& files, bool raw_lf = false) {
  std::string cmd = "python3 " + shell_quote((data_dir() / "send_mail.py").string()) +
                    " 127.0.0.1 " + std::to_string(p.port("smtp")) + (raw_lf ? " --lf" : "");
  for (const auto& f : files)
    cmd += " " + shell_quote((data_dir() / "messages" / f).string());
  std::string out;
  ASSERT_EQ(run_command(cmd, &out), 0) << out;
}

// Logs in over a plain connection (the listener must allow it) and returns the client.
std::unique_ptr<pop3_test::client> login(const std::string& endpoint, const std::string& user,
                                         const std::string& pass, std::string* reply = nullptr) {
  auto c = std::make_unique<pop3_test::client>(endpoint);
  auto greeting = c->read_line();
  EXPECT_TRUE(greeting && greeting->starts_with("+OK")) << greeting.value_or("<none>");
  c->send("USER " + user + "\r\nPASS " + pass + "\r\n");
  auto u = c->read_line();
  auto r = c->read_line();
  EXPECT_TRUE(u && u->starts_with("+OK"));
  if (reply) *reply = r.value_or("<none>");
  return c;
}

// login() right after another session of the same user ended: the server releases the
// maildrop lock when it sees that session close, which may be just after the client did.
std::unique_ptr<pop3_test::client> login_after(const std::string& endpoint, const std::string& user,
                                               const std::string& pass, std::string* reply) {
  for (int i = 0;; ++i) {
    auto c = login(endpoint, user, pass, reply);
    if (i == 50 || reply->find("[IN-USE]") == std::string::npos) return c;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::string command(pop3_test::client& c, const std::string& line) {
  c.send(line + "\r\n");
  return c.read_line().value_or("<none>");
}

const std::string plain_keys =
    "    listen: [\"127.0.0.1:0\"]\n    allow_insecure: true\n    max_errors: 50\n";

// ---------------------------------------------------------------------------- transcripts

struct transcript_case {
  const char* file;
  std::string keys;  // the pop3 listener's keys
};

void PrintTo(const transcript_case& c, std::ostream* os) {
  *os << c.file;
}

class Pop3Transcript : public ::testing::TestWithParam<transcript_case> {};

TEST_P(Pop3Transcript, MatchesGolden) {
  const auto& tc = GetParam();
  sluice_process p(config(pop3_listener("pop3", tc.keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml", "second.eml"});
  std::string result = pop3_test::run_transcript(tcp_endpoint(p, "pop3"), data_dir() / tc.file);
  EXPECT_EQ(result, "") << tc.file << "\n" << p.log();
}

INSTANTIATE_TEST_SUITE_P(
    Golden, Pop3Transcript,
    ::testing::Values(transcript_case{"authorization.txt", plain_keys},
                      transcript_case{"transaction.txt", plain_keys},
                      transcript_case{"auth_plain.txt", plain_keys},
                      transcript_case{"auth_plain_initial.txt", plain_keys},
                      transcript_case{"auth_failures.txt", plain_keys},
                      transcript_case{"pipelining.txt", plain_keys},
                      transcript_case{"insecure.txt", "    listen: [\"127.0.0.1:0\"]\n"},
                      transcript_case{"stls_required.txt",
                                      "    listen: [\"127.0.0.1:0\"]\n" + creds().tls("starttls")},
                      transcript_case{"limits.txt",
                                      "    listen: [\"127.0.0.1:0\"]\n    allow_insecure: true\n"
                                      "    max_errors: 3\n    max_line_length: 255\n"}),
    [](const auto& info) {
      std::string n = info.param.file;
      return n.substr(0, n.find('.'));
    });

// ---------------------------------------------------------------------------- state

TEST(Pop3, UpdateRemovesOnlyOnQuitAndOnlyMarkedMessages) {
  sluice_process p(config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml", "second.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  {
    // Dropped without QUIT: nothing is removed (RFC 1939 §6).
    auto c = login(ep, "alice", "secret", &reply);
    EXPECT_EQ(reply, "+OK maildrop locked and ready, 2 messages");
    EXPECT_EQ(command(*c, "DELE 1"), "+OK message 1 deleted");
    EXPECT_EQ(command(*c, "DELE 2"), "+OK message 2 deleted");
  }
  std::string uid2;
  {
    auto c = login_after(ep, "alice", "secret", &reply);
    EXPECT_EQ(reply, "+OK maildrop locked and ready, 2 messages");
    std::string u = command(*c, "UIDL 2");
    uid2 = u.substr(u.rfind(' ') + 1);
    EXPECT_EQ(command(*c, "DELE 1"), "+OK message 1 deleted");
    EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (1 deleted, 1 left)");
  }
  auto c = login_after(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
  EXPECT_EQ(command(*c, "UIDL 1"), "+OK 1 " + uid2);
  c->send("RETR 1\r\n");
  EXPECT_TRUE(c->read_line().value_or("").starts_with("+OK"));
  auto body = c->read_multiline();
  ASSERT_TRUE(body);
  EXPECT_NE(body->find("Subject: Second message\r\n"), std::string::npos);
  EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
}

TEST(Pop3, ArrivalsDuringASessionDoNotChangeItsNumbering) {
  sluice_process p(config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml", "second.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  auto c = login(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 2 messages");
  std::string stat = command(*c, "STAT");
  c->send("UIDL\r\n");
  ASSERT_TRUE(c->read_line());
  auto uids = c->read_multiline();
  ASSERT_TRUE(uids);
  seed(p, {"second.eml", "first.eml"});  // two more arrive
  EXPECT_EQ(command(*c, "STAT"), stat);
  c->send("UIDL\r\n");
  ASSERT_TRUE(c->read_line());
  EXPECT_EQ(c->read_multiline(), uids);
  EXPECT_EQ(command(*c, "LIST 3"), "-ERR no such message, only 2 in the maildrop");
  c->send("TOP 1 0\r\n");
  ASSERT_TRUE(c->read_line());
  auto head = c->read_multiline();
  ASSERT_TRUE(head);
  EXPECT_NE(head->find("Subject: First message"), std::string::npos);  // still the oldest
  // More lines than any body (RFC 1939: n is a non-negative number): the whole message.
  c->send("TOP 1 99999999999999999999\r\n");
  ASSERT_TRUE(c->read_line());
  auto whole = c->read_multiline();
  ASSERT_TRUE(whole);
  c->send("RETR 1\r\n");
  ASSERT_TRUE(c->read_line());
  EXPECT_EQ(c->read_multiline(), whole);
  EXPECT_EQ(command(*c, "TOP 1 -1"), "-ERR invalid number of lines");
  EXPECT_EQ(command(*c, "DELE 2"), "+OK message 2 deleted");
  EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (1 deleted, 1 left)");
  // The next session sees what is there now: first.eml plus the two that arrived.
  auto c2 = login(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 3 messages");
  EXPECT_EQ(command(*c2, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 3 left)");
}

// The maildrop is unlocked before the QUIT reply goes out: a client that has read "+OK" and
// logs in again at once (a fetchmail poll loop, say) never finds it still locked.
TEST(Pop3, QuitUnlocksTheMaildropBeforeItsReply) {
  sluice_process p(config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  auto c = login(ep, "alice", "secret", &reply);
  ASSERT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
    c = login(ep, "alice", "secret", &reply);
    ASSERT_EQ(reply, "+OK maildrop locked and ready, 1 messages") << "round " << i;
  }
  EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
}

TEST(Pop3, SecondLoginToALockedMaildropIsInUse) {
  sluice_process p(config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  auto first = login(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
  // bob maps to the same (shared, default) mailbox.
  auto second = login(ep, "bob", "hunter2", &reply);
  EXPECT_EQ(reply, "-ERR [IN-USE] maildrop already locked by another session");
  EXPECT_EQ(command(*first, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
  EXPECT_FALSE(first->read_line());
  // The lock is gone with the first session; the second retries in the same connection.
  second->send("USER bob\r\nPASS hunter2\r\n");
  EXPECT_EQ(second->read_line().value_or(""), "+OK send PASS");
  EXPECT_EQ(second->read_line().value_or(""), "+OK maildrop locked and ready, 1 messages");
}

// htpasswd and users together are one credential set, as for smtp's auth.
TEST(Pop3, HtpasswdFileAndUsersTogether) {
  sluice_process p(config(pop3_listener("pop3", plain_keys + "    users: \"carol:pw3\"\n")));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  auto c = login(ep, "carol", "pw3", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
  EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
  auto a = login_after(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
  EXPECT_EQ(command(*a, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
  auto wrong = login(ep, "carol", "nope", &reply);
  EXPECT_EQ(reply.rfind("-ERR", 0), 0u) << reply;
}

TEST(Pop3, PerUserMailboxesAndMessageCap) {
  // alice reads the shared mailbox; bob's template mailbox "box-bob" is empty.
  sluice_process p(config(pop3_listener(
      "pop3", plain_keys + "    mailbox: \"box-{user}\"\n    mailboxes: {alice: default}\n"
                           "    max_messages: 1\n")));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml", "second.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  auto a = login(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");  // the cap keeps the newest
  a->send("TOP 1 0\r\n");
  ASSERT_TRUE(a->read_line());
  auto head = a->read_multiline();
  ASSERT_TRUE(head);
  EXPECT_NE(head->find("Subject: Second message"), std::string::npos);
  // Different mailboxes lock independently.
  auto b = login(ep, "bob", "hunter2", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 0 messages");
  EXPECT_EQ(command(*b, "STAT"), "+OK 0 0");
  EXPECT_EQ(command(*b, "LIST 1"), "-ERR no such message, only 0 in the maildrop");
}

TEST(Pop3, SizesAreExactForBareLfMessages) {
  // smtplib sends these bytes as they are: lines end in bare LF in the store, and POP3
  // must count (and send) them with CRLF.
  sluice_process p(config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml", "second.eml"}, /*raw_lf=*/true);
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  auto c = login(ep, "alice", "secret", &reply);
  for (int n = 1; n <= 2; ++n) {
    std::string list = command(*c, "LIST " + std::to_string(n));
    std::uint64_t size = std::stoull(list.substr(list.rfind(' ') + 1));
    c->send("RETR " + std::to_string(n) + "\r\n");
    EXPECT_EQ(c->read_line().value_or(""), "+OK " + std::to_string(size) + " octets");
    auto body = c->read_multiline();
    ASSERT_TRUE(body);
    EXPECT_EQ(body->size(), size);
    EXPECT_EQ(body->find("\n"), body->find("\r\n") + 1);  // the first LF is part of a CRLF
  }
  std::string stat = command(*c, "STAT");
  EXPECT_TRUE(stat.starts_with("+OK 2 ")) << stat;
}

TEST(Pop3, IdleSessionIsLoggedOutWithoutUpdate) {
  sluice_process p(config(pop3_listener("pop3", plain_keys + "    idle_timeout: 1s\n")));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml"});
  const std::string ep = tcp_endpoint(p, "pop3");
  std::string reply;
  {
    auto c = login(ep, "alice", "secret", &reply);
    EXPECT_EQ(command(*c, "DELE 1"), "+OK message 1 deleted");
    // No more commands: the autologout timer fires (bounded by the client's 10 s timeout).
    EXPECT_EQ(c->read_line().value_or(""),
              "-ERR autologout: idle for too long, closing (no messages deleted)");
    EXPECT_FALSE(c->read_line());
    EXPECT_TRUE(c->eof());
  }
  auto c = login_after(ep, "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
}

TEST(Pop3, DrainTellsIdleSessionsAndKeepsMarkedMessages) {
  sluice_process p(config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml"});
  std::string reply;
  auto c = login(tcp_endpoint(p, "pop3"), "alice", "secret", &reply);
  EXPECT_EQ(command(*c, "DELE 1"), "+OK message 1 deleted");
  p.signal(SIGTERM);
  EXPECT_EQ(c->read_line().value_or(""), "-ERR [SYS/TEMP] server shutting down");
  EXPECT_FALSE(c->read_line());
  EXPECT_TRUE(c->eof());
  EXPECT_EQ(p.stop(), 0) << p.log();
  // Restarted over the same data: the marked message was not removed.
  sluice_process again(p.dir(), config(pop3_listener("pop3", plain_keys)));
  ASSERT_TRUE(again.running()) << again.log();
  auto c2 = login(tcp_endpoint(again, "pop3"), "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
}

TEST(Pop3, ConnectionLimit) {
  sluice_process p(config(pop3_listener("pop3", plain_keys + "    max_connections: 1\n")));
  ASSERT_TRUE(p.running()) << p.log();
  const std::string ep = tcp_endpoint(p, "pop3");
  pop3_test::client first(ep);
  EXPECT_TRUE(first.read_line().value_or("").starts_with("+OK"));
  pop3_test::client second(ep);
  EXPECT_EQ(second.read_line().value_or(""),
            "-ERR [SYS/TEMP] too many connections, try again later");
  EXPECT_FALSE(second.read_line());
  EXPECT_TRUE(second.eof());
  EXPECT_EQ(command(first, "QUIT"), "+OK Sluice POP3 server signing off");
}

TEST(Pop3, UnixSocketWithMode) {
  sluice_process p(config(
      pop3_listener("pop3", "    listen: [\"unix:pop3.sock:600\"]\n    allow_insecure: true\n")));
  ASSERT_TRUE(p.running()) << p.log();
  auto eps = p.endpoints("pop3");
  ASSERT_EQ(eps.size(), 1u);
  ASSERT_TRUE(eps[0].starts_with("unix:"));
  struct stat st {};
  ASSERT_EQ(::stat(eps[0].substr(5).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  seed(p, {"first.eml"});
  std::string reply;
  auto c = login(eps[0], "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 1 messages");
  EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (0 deleted, 1 left)");
  // A second server refuses the socket while the first is listening on it.
  std::string sock = eps[0].substr(5);
  sluice::test::temp_dir d;
  sluice::test::write_file(d.path() / "sluice.yaml",
                           config(pop3_listener("pop3", "    listen: [\"unix:" + sock +
                                                            "\"]\n    allow_insecure: true\n")));
  std::string out;
  int rc = run_command(sluice::test::sluice_binary() + " serve -c " +
                           shell_quote((d.path() / "sluice.yaml").string()),
                       &out, true, std::chrono::seconds(20));
  EXPECT_NE(rc, 0) << out;
  EXPECT_NE(out.find("another server is listening"), std::string::npos) << out;
  EXPECT_EQ(command(*login(eps[0], "alice", "secret"), "NOOP"), "+OK");  // still served
}

TEST(Pop3, ConfigErrorsAreReported) {
  std::string out;
  sluice::test::temp_dir d;
  auto check = [&](const std::string& yaml) {
    sluice::test::write_file(d.path() / "sluice.yaml", yaml);
    out.clear();
    return run_command(sluice::test::sluice_binary() + " check-config -c " +
                           shell_quote((d.path() / "sluice.yaml").string()),
                       &out);
  };
  EXPECT_NE(check(config("  - name: pop3\n    plugin: pop3\n    allow_insecure: true\n")), 0);
  EXPECT_NE(out.find("POP3 needs users"), std::string::npos) << out;
  EXPECT_NE(check(config(pop3_listener("pop3", "    listen: [\"127.0.0.1:0\"]\n    idle: 1\n"))),
            0);
  EXPECT_NE(out.find("unknown key"), std::string::npos) << out;
  EXPECT_NE(check(config(pop3_listener("pop3", "    pipeline: capture\n"))), 0);
  EXPECT_NE(out.find("takes no pipeline"), std::string::npos) << out;
}

// ---------------------------------------------------------------------------- clients

// One server with the three ways in: STLS only (no cleartext login), POP3S, and a
// cleartext-allowed listener.
struct client_server {
  sluice_process p;
  client_server()
      : p(config(
            pop3_listener("pop3", "    listen: [\"127.0.0.1:0\"]\n" + creds().tls("starttls")) +
            pop3_listener("pop3s", "    listen: [\"127.0.0.1:0\"]\n" + creds().tls("implicit")) +
            pop3_listener("pop3plain", plain_keys))) {}
  std::uint16_t port(const std::string& l) const { return p.port(l); }
};

// RFC 8446 §6.1: QUIT over STLS or POP3S ends with close_notify.
TEST(Pop3Clients, TlsSessionsEndWithCloseNotify) {
  client_server s;
  ASSERT_TRUE(s.p.running()) << s.p.log();
  const std::string script =
      "python3 " + shell_quote((data_dir().parent_path() / "tls" / "close_notify.py").string());
  std::string out;
  EXPECT_EQ(run_command(script + " stls 127.0.0.1 " + std::to_string(s.port("pop3")), &out), 0)
      << out;
  EXPECT_NE(out.find("OK close_notify after '+OK"), std::string::npos) << out;
  out.clear();
  EXPECT_EQ(run_command(script + " pop3s 127.0.0.1 " + std::to_string(s.port("pop3s")), &out), 0)
      << out;
  EXPECT_NE(out.find("OK close_notify after '+OK"), std::string::npos) << out;
}

TEST(Pop3Clients, PythonPoplibEveryCommand) {
  client_server s;
  ASSERT_TRUE(s.p.running()) << s.p.log();
  seed(s.p, {"first.eml", "second.eml"});
  std::string script = "python3 " + shell_quote((data_dir() / "poplib_client.py").string());
  std::string out;
  EXPECT_EQ(run_command(script + " stls 127.0.0.1 " + std::to_string(s.port("pop3")) + " " +
                            shell_quote(creds().cert.string()) + " alice secret",
                        &out),
            0)
      << out << s.p.log();
  out.clear();
  EXPECT_EQ(
      run_command(script + " apop 127.0.0.1 " + std::to_string(s.port("pop3")) + " bob hunter2",
                  &out),
      0)
      << out << s.p.log();
  out.clear();
  EXPECT_EQ(run_command(script + " pop3s 127.0.0.1 " + std::to_string(s.port("pop3s")) + " " +
                            shell_quote(creds().cert.string()) + " alice secret",
                        &out),
            0)
      << out << s.p.log();
  out.clear();
  EXPECT_EQ(run_command(script + " plain 127.0.0.1 " + std::to_string(s.port("pop3")) + " " +
                            shell_quote(creds().cert.string()) + " alice secret",
                        &out),
            0)
      << out << s.p.log();
}

TEST(Pop3Clients, CurlPop3AndPop3s) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  client_server s;
  ASSERT_TRUE(s.p.running()) << s.p.log();
  seed(s.p, {"first.eml", "second.eml"});
  const std::string ca = " --cacert " + shell_quote(creds().cert.string());
  const std::string curl = "curl -sS --max-time 20 -u alice:secret ";
  std::vector<std::uint64_t> sizes;
  for (const std::string& which :
       {std::string("pop3plain"), std::string("pop3s"), std::string("pop3")}) {
    // pop3s:// is implicit TLS; pop3:// with --ssl-reqd makes curl use STLS.
    const std::string scheme = which == "pop3s" ? "pop3s://" : "pop3://";
    const std::string tls = which == "pop3s"  ? ca
                            : which == "pop3" ? ca + " --ssl-reqd"
                                              : std::string();
    const std::string url = scheme + "127.0.0.1:" + std::to_string(s.port(which));
    std::string list;
    ASSERT_EQ(run_command(curl + tls + " " + url + "/", &list, false), 0) << list;
    std::istringstream in(list);
    std::vector<std::pair<int, std::uint64_t>> entries;
    int n;
    std::uint64_t size;
    while (in >> n >> size)
      entries.emplace_back(n, size);
    ASSERT_EQ(entries.size(), 2u) << list;
    for (auto [num, sz] : entries) {
      std::string body;
      ASSERT_EQ(run_command(curl + tls + " " + url + "/" + std::to_string(num), &body, false), 0);
      // curl undoes the dot-stuffing and writes the message with its CRLFs.
      EXPECT_EQ(body.size(), sz) << url << " message " << num;
      if (num == 1) EXPECT_NE(body.find("\r\n..two dots\r\n"), std::string::npos) << body;
    }
    if (sizes.empty()) {
      for (auto& e : entries)
        sizes.push_back(e.second);
    }
  }
  // DELE (curl needs -I: the reply is a single line), then its QUIT applies the deletion.
  std::string out;
  ASSERT_EQ(run_command(curl + ca + " -I -X DELE pop3s://127.0.0.1:" +
                            std::to_string(s.port("pop3s")) + "/1",
                        &out),
            0)
      << out;
  std::string list;
  ASSERT_EQ(run_command(curl + "pop3://127.0.0.1:" + std::to_string(s.port("pop3plain")) + "/",
                        &list, false),
            0);
  std::istringstream in(list);
  int n = 0;
  std::uint64_t size = 0;
  ASSERT_TRUE(in >> n >> size) << list;
  EXPECT_EQ(n, 1);
  EXPECT_EQ(size, sizes.at(1));  // the second message is now number 1
  EXPECT_FALSE(in >> n >> size) << list;
}

TEST(Pop3Clients, RubyNetPop) {
  if (!have("ruby")) GTEST_SKIP() << "ruby is not installed (scripts/install-deps.sh)";
  client_server s;
  ASSERT_TRUE(s.p.running()) << s.p.log();
  seed(s.p, {"first.eml", "second.eml", "first.eml"});
  std::string script = "ruby " + shell_quote((data_dir() / "netpop_client.rb").string());
  std::string out;
  EXPECT_EQ(
      run_command(script + " 127.0.0.1 " + std::to_string(s.port("pop3plain")) + " alice secret",
                  &out),
      0)
      << out << s.p.log();
  EXPECT_NE(out.find("net/pop: finished, 3 listed"), std::string::npos) << out;
  out.clear();
  // Again over POP3S with certificate verification; one message fewer.
  EXPECT_EQ(run_command(script + " 127.0.0.1 " + std::to_string(s.port("pop3s")) +
                            " alice secret " + shell_quote(creds().cert.string()),
                        &out),
            0)
      << out << s.p.log();
  EXPECT_NE(out.find("net/pop: finished, 2 listed"), std::string::npos) << out;
}

TEST(Pop3Clients, FetchmailOverStls) {
  if (!have("fetchmail")) GTEST_SKIP() << "fetchmail is not installed (scripts/install-deps.sh)";
  client_server s;
  ASSERT_TRUE(s.p.running()) << s.p.log();
  seed(s.p, {"first.eml", "second.eml"});
  sluice::test::temp_dir home;
  fs::path out_dir = home.path() / "mail";
  fs::create_directories(out_dir);
  fs::path mda = home.path() / "mda.sh";
  // Each delivered message goes to a file of its own.
  sluice::test::write_file(mda, "#!/bin/sh\nexec cat > \"$1/$(date +%s%N).$$.eml\"\n");
  fs::permissions(mda, fs::perms::owner_all);
  fs::path rc = home.path() / "fetchmailrc";
  sluice::test::write_file(
      rc, "poll 127.0.0.1 service " + std::to_string(s.port("pop3")) +
              " protocol pop3 auth password\n"
              "  user alice password secret\n"
              "  sslproto 'TLS1.2+' sslcertck sslcommonname localhost sslcertfile " +
              creds().cert.string() + "\n  mda \"" + mda.string() + " " + out_dir.string() +
              "\"\n");
  fs::permissions(rc, fs::perms::owner_read | fs::perms::owner_write);
  std::string out;
  // --nokeep: fetchmail deletes what it fetched (DELE, then QUIT applies it).
  int status = run_command("env HOME=" + shell_quote(home.path().string()) +
                               " FETCHMAILHOME=" + shell_quote(home.path().string()) +
                               " fetchmail -v --nodetach --nosyslog --all --nokeep -f " +
                               shell_quote(rc.string()) + " --idfile " +
                               shell_quote((home.path() / "ids").string()),
                           &out, true, std::chrono::seconds(60));
  EXPECT_EQ(status, 0) << out << s.p.log();
  EXPECT_NE(out.find("STLS"), std::string::npos) << out;
  std::vector<std::string> got;
  for (const auto& e : fs::directory_iterator(out_dir))
    got.push_back(sluice::test::read_file(e.path()));
  ASSERT_EQ(got.size(), 2u) << out;
  // fetchmail hands the MDA LF line ends and may add its own trace header on top; the
  // message itself must be there byte for byte (as LF text).
  for (const char* f : {"first.eml", "second.eml"}) {
    std::string original = sluice::test::read_file(data_dir() / "messages" / f);
    std::string body = original.substr(original.find("\n\n"));
    bool found = false;
    for (const auto& g : got)
      found = found || (g.find(original.substr(0, original.find('\n'))) != std::string::npos &&
                        g.ends_with(body));
    EXPECT_TRUE(found) << f;
  }
  // And they are gone from the store.
  std::string reply;
  auto c = login(tcp_endpoint(s.p, "pop3plain"), "alice", "secret", &reply);
  EXPECT_EQ(reply, "+OK maildrop locked and ready, 0 messages");
}

}  // namespace

// A message deleted over POP3 is gone from the HTTP API too (the same mailbox service);
// the store's delete event itself is checked in pop3_event_test.cpp.
TEST(Pop3, DeletionShowsInTheHttpApi) {
  if (!have("curl")) GTEST_SKIP() << "curl is not installed";
  sluice_process p(config(pop3_listener("pop3", plain_keys) +
                          "  - name: http\n    plugin: http\n    listen: [\"127.0.0.1:0\"]\n"));
  ASSERT_TRUE(p.running()) << p.log();
  seed(p, {"first.eml", "second.eml"});
  const std::string api = "http://" + tcp_endpoint(p, "http") + "/api/v1/";
  auto total = [&] {
    std::string out;
    run_command("curl -sS --max-time 10 " + api + "messages", &out, false);
    auto v = boost::json::parse(out);
    return v.at("total").to_number<std::uint64_t>();
  };
  ASSERT_EQ(total(), 2u);
  std::string reply;
  std::string uid1;
  {
    auto c = login(tcp_endpoint(p, "pop3"), "alice", "secret", &reply);
    std::string u = command(*c, "UIDL 1");
    uid1 = u.substr(u.rfind(' ') + 1);
    EXPECT_EQ(command(*c, "DELE 1"), "+OK message 1 deleted");
    EXPECT_EQ(total(), 2u) << "nothing is removed before QUIT";
    EXPECT_EQ(command(*c, "QUIT"), "+OK Sluice POP3 server signing off (1 deleted, 1 left)");
  }
  EXPECT_EQ(total(), 1u);
  std::string out;
  run_command("curl -sS -o /dev/null -w '%{http_code}' --max-time 10 " + api + "message/" + uid1,
              &out, false);
  EXPECT_EQ(out, "404");
}
