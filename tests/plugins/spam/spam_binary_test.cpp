// spam_binary_test.cpp — the spam stage in the real sluice binary, driven by independent
// clients: Python's smtplib sends the corpus over SMTP, Python's urllib reads Mailpit's
// sa-check and trains over the API; `sluice spam train` fills a database from the command
// line; SpamAssassin's spamd (Debian) runs on loopback as the spamassassin engine, checked
// against spamd's own answer to the same bytes; a small Python fake of rspamd's /checkv2
// checks the envelope headers and drives every action mapping, and Debian's rspamd runs on
// loopback too; a dead engine applies on_error.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "spam_corpus.hpp"

namespace sluice::test::spam {
namespace {

namespace json = boost::json;

std::string corpus_path(const std::string& f) {
  return test_data_dir() + "/spam/corpus/" + f;
}

// Sends a file over SMTP with smtplib; prints "OK" or "ERR <code> <text>".
std::string smtp_send_file(const std::string& endpoint, const std::string& file,
                           int recipients = 1) {
  auto colon = endpoint.rfind(':');
  std::string script =
      "import smtplib,sys\n"
      "host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])\n"
      "data = open(path,'rb').read().replace(b'\\r\\n', b'\\n').replace(b'\\n', b'\\r\\n')\n"
      "rcpts = ['r%d@example.org' % i for i in range(n)]\n"
      "try:\n"
      "    with smtplib.SMTP(host, port, timeout=30) as s:\n"
      "        s.sendmail('sender@example.com', rcpts, data)\n"
      "    print('OK')\n"
      "except smtplib.SMTPResponseException as e:\n"
      "    print('ERR', e.smtp_code, e.smtp_error.decode())\n"
      "except smtplib.SMTPRecipientsRefused as e:\n"
      "    print('ERR', 'rcpt', e)\n";
  std::string out;
  run_command("python3 -c " + shell_quote(script) + " " + endpoint.substr(0, colon) + " " +
                  endpoint.substr(colon + 1) + " " + shell_quote(file) + " " +
                  std::to_string(recipients),
              &out);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r'))
    out.pop_back();
  return out;
}

// An HTTP request with urllib: prints the status, a newline, the body.
std::pair<int, std::string> http(const std::string& method, const std::string& url,
                                 const std::string& body = {}) {
  std::string script =
      "import sys,urllib.request,urllib.error\n"
      "m, u, b = sys.argv[1], sys.argv[2], sys.argv[3]\n"
      "req = urllib.request.Request(u, data=b.encode() if b else None, method=m,\n"
      "      headers={'Content-Type': 'application/json'})\n"
      "try:\n"
      "    r = urllib.request.urlopen(req, timeout=30); print(r.status); print(r.read().decode())\n"
      "except urllib.error.HTTPError as e:\n"
      "    print(e.code); print(e.read().decode())\n";
  std::string out;
  run_command("python3 -c " + shell_quote(script) + " " + method + " " + shell_quote(url) + " " +
                  shell_quote(body),
              &out, false);
  auto nl = out.find('\n');
  int code = std::atoi(out.substr(0, nl).c_str());
  return {code, nl == std::string::npos ? "" : out.substr(nl + 1)};
}

std::string base_url(const sluice_process& p) {
  return "http://" + p.host("http") + ":" + std::to_string(p.port("http"));
}

// The newest stored message's id whose subject contains `subject`.
std::string find_id(const sluice_process& p, const std::string& subject) {
  for (int i = 0; i < 50; ++i) {
    auto [code, body] = http("GET", base_url(p) + "/api/v1/messages?limit=100");
    if (code == 200) {
      auto v = json::parse(body);
      for (const auto& m : v.at("messages").as_array())
        if (std::string(m.at("Subject").as_string()).find(subject) != std::string::npos)
          return std::string(m.at("ID").as_string());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {};
}

std::string config(const std::string& stage_yaml, const std::string& services = "") {
  return "log: {level: debug}\n"
         "spool: {path: ./spool}\n"
         "services:\n"
         "  - {name: default, plugin: store, path: ./sluice.db}\n" +
         services +
         "listeners:\n"
         "  - {name: smtp, plugin: smtp, pipeline: in, listen: ['127.0.0.1:0']}\n"
         "  - {name: http, plugin: http, pipeline: in, listen: ['127.0.0.1:0']}\n"
         "pipelines:\n"
         "  - name: in\n"
         "    stages:\n"
         "      - {plugin: mime}\n" +
         stage_yaml + "      - {plugin: store, mailbox: default}\n";
}

std::set<std::string> rule_names(const json::value& sa) {
  std::set<std::string> out;
  for (const auto& r : sa.at("Rules").as_array())
    out.insert(std::string(r.at("Name").as_string()));
  return out;
}

TEST(SpamBinary, NativeEngineTagsServesSaCheckAndTrainsOverTheApi) {
  sluice_process p(config(
      "      - plugin: spam\n"
      "        bayes: bayes\n"
      "        subject_prefix: '[SPAM] '\n"
      "        actions:\n"
      "          - {score: 100, action: reject, reply: '550 5.7.1 GTUBE is not welcome here'}\n",
      "  - {name: bayes, plugin: spam, path: ./bayes.db, min_spam: 1, min_ham: 1}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  std::string smtp = p.endpoints("smtp").at(0);
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("ham-plain.eml")), "OK");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-phish.eml")), "OK");
  // GTUBE scores 1000: the reject action with its reply.
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-gtube.eml")),
            "ERR 550 5.7.1 GTUBE is not welcome here");

  std::string ham = find_id(p, "design review");
  std::string spam = find_id(p, "account has been limited");
  ASSERT_FALSE(ham.empty()) << p.log();
  ASSERT_FALSE(spam.empty()) << p.log();
  auto [c1, b1] = http("GET", base_url(p) + "/api/v1/message/" + spam + "/sa-check");
  ASSERT_EQ(c1, 200) << b1;
  auto sa = json::parse(b1);
  EXPECT_EQ(sa.as_object().size(), 4u);  // Mailpit's shape: Error, IsSpam, Score, Rules
  EXPECT_TRUE(sa.at("IsSpam").as_bool());
  EXPECT_EQ(sa.at("Error").as_string(), "");
  EXPECT_GE(sa.at("Score").as_double(), 5.0);
  auto names = rule_names(sa);
  EXPECT_TRUE(names.count("URI_TEXT_MISMATCH")) << b1;
  EXPECT_TRUE(names.count("URI_IP_LITERAL")) << b1;
  for (const auto& r : sa.at("Rules").as_array()) {
    EXPECT_FALSE(r.at("Description").as_string().empty());
    EXPECT_TRUE(r.at("Score").is_double());
  }
  auto [c2, b2] = http("GET", base_url(p) + "/api/v1/message/" + ham + "/sa-check");
  ASSERT_EQ(c2, 200) << b2;
  EXPECT_FALSE(json::parse(b2).at("IsSpam").as_bool());

  // The headers on output: X-Spam-* and the subject prefix on the spam only.
  auto [c3, raw] = http("GET", base_url(p) + "/api/v1/message/" + spam + "/raw");
  ASSERT_EQ(c3, 200);
  EXPECT_NE(raw.find("X-Spam-Flag: YES"), std::string::npos) << raw;
  EXPECT_NE(raw.find("X-Spam-Status: Yes, score="), std::string::npos);
  EXPECT_NE(raw.find("Subject: [SPAM] Your account has been limited"), std::string::npos);
  auto [c4, hraw] = http("GET", base_url(p) + "/api/v1/message/" + ham + "/raw");
  EXPECT_NE(hraw.find("X-Spam-Status: No, score="), std::string::npos);
  EXPECT_EQ(hraw.find("X-Spam-Flag"), std::string::npos);

  // Training over the API: learned, unchanged, relearned; bad bodies are 400.
  std::string train = base_url(p) + "/api/v1/message/" + spam + "/train";
  auto [t1, tb1] = http("POST", train, R"({"As":"spam"})");
  ASSERT_EQ(t1, 200) << tb1;
  EXPECT_EQ(json::parse(tb1).at("Outcome").as_string(), "learned");
  EXPECT_EQ(json::parse(http("POST", train, R"({"As":"spam"})").second).at("Outcome").as_string(),
            "unchanged");
  auto relabel = json::parse(http("POST", train, R"({"As":"ham"})").second);
  EXPECT_EQ(relabel.at("Outcome").as_string(), "relearned");
  EXPECT_EQ(relabel.at("HamMessages").as_int64(), 1);
  EXPECT_EQ(http("POST", train, R"({"As":"maybe"})").first, 400);
  EXPECT_EQ(http("POST", train, "not json").first, 400);
  EXPECT_EQ(http("POST", base_url(p) + "/api/v1/message/nope/train", R"({"As":"spam"})").first,
            404);
  // Learn the spam again as spam and the ham as ham: with min 1/1 the classifier now runs
  // and a message like the spam gets a high Bayes band.
  http("POST", train, R"({"As":"spam"})");
  http("POST", base_url(p) + "/api/v1/message/" + ham + "/train", R"({"As":"ham"})");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-phish.eml")), "OK");
  std::string again;
  for (int i = 0; i < 50 && again.empty(); ++i) {
    auto v = json::parse(http("GET", base_url(p) + "/api/v1/messages").second);
    for (const auto& m : v.at("messages").as_array()) {
      std::string id(m.at("ID").as_string());
      if (id != spam &&
          std::string(m.at("Subject").as_string()).find("limited") != std::string::npos)
        again = id;
    }
    if (again.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(again.empty());
  auto sa2 =
      json::parse(http("GET", base_url(p) + "/api/v1/message/" + again + "/sa-check").second);
  EXPECT_TRUE(rule_names(sa2).count("BAYES_99")) << sa2;
}

TEST(SpamBinary, SaCheckIs404WithoutSpamResult) {
  sluice_process p(config(""));
  ASSERT_TRUE(p.running()) << p.log();
  EXPECT_EQ(smtp_send_file(p.endpoints("smtp").at(0), corpus_path("ham-plain.eml")), "OK");
  std::string id = find_id(p, "design review");
  ASSERT_FALSE(id.empty());
  auto [code, body] = http("GET", base_url(p) + "/api/v1/message/" + id + "/sa-check");
  EXPECT_EQ(code, 404);
  EXPECT_EQ(body.substr(0, 14), "File not found");
  // No spam service: training is refused with a reason.
  auto [tc, tb] =
      http("POST", base_url(p) + "/api/v1/message/" + id + "/train", R"({"As":"spam"})");
  EXPECT_EQ(tc, 400);
  EXPECT_NE(tb.find("not configured"), std::string::npos);
}

TEST(SpamBinary, QuarantineAndTempfailActions) {
  sluice_process p(
      config("      - plugin: spam\n"
             "        actions:\n"
             "          - {score: 5, action: quarantine}\n"
             "          - {score: 500, action: tempfail}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  std::string smtp = p.endpoints("smtp").at(0);
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-pharma.eml")), "OK");
  auto r = smtp_send_file(smtp, corpus_path("spam-gtube.eml"));
  EXPECT_EQ(r.substr(0, 8), "ERR 451 ") << r;
  std::string id = find_id(p, "CHEAP MEDS");
  ASSERT_FALSE(id.empty());
  auto sa = json::parse(http("GET", base_url(p) + "/api/v1/message/" + id + "/sa-check").second);
  EXPECT_TRUE(sa.at("IsSpam").as_bool());
}

TEST(SpamBinary, BadRuleFileFailsCheckConfigWithItsLocation) {
  temp_dir d;
  write_file(d.path() / "mine.yaml",
             "rules:\n  - name: MINE\n    score: 1\n    body: '(unclosed'\n");
  write_file(d.path() / "sluice.yaml", config("      - {plugin: spam, rules: [mine.yaml]}\n"));
  std::string out;
  int rc = run_command(shell_quote(sluice_binary()) + " check-config -c " +
                           shell_quote((d.path() / "sluice.yaml").string()),
                       &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("mine.yaml:4:11: rules[0].body: bad regular expression"), std::string::npos)
      << out;
  // A native-only key with an external engine is an unknown key, not silently ignored.
  write_file(d.path() / "sluice.yaml",
             config("      - {plugin: spam, engine: spamassassin, threshold: 3,\n"
                    "         spamassassin: {address: '127.0.0.1:783'}}\n"));
  out.clear();
  rc = run_command(shell_quote(sluice_binary()) + " check-config -c " +
                       shell_quote((d.path() / "sluice.yaml").string()),
                   &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("threshold: unknown key"), std::string::npos) << out;
  // A bad reply in an action.
  write_file(
      d.path() / "sluice.yaml",
      config("      - {plugin: spam, actions: [{score: 9, action: reject, reply: '451 no'}]}\n"));
  out.clear();
  rc = run_command(shell_quote(sluice_binary()) + " check-config -c " +
                       shell_quote((d.path() / "sluice.yaml").string()),
                   &out);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("reply: expected \"5NN X.Y.Z text\""), std::string::npos) << out;
}

TEST(SpamBinary, CommandLineTrainerReadsDirectoriesAndMbox) {
  temp_dir d;
  std::filesystem::create_directories(d.path() / "ham");
  generator g(11);
  for (int i = 0; i < 5; ++i)
    write_file(d.path() / "ham" / ("m" + std::to_string(i) + ".eml"), g.make(false, i));
  std::string mbox;
  for (int i = 0; i < 4; ++i) {
    std::string m = g.make(true, 100 + i);
    // mboxrd: a body line starting with "From " is escaped.
    mbox += "From spammer@example.com Tue Dec  1 10:00:00 2026\n" + m + "\n>From the desk\n\n";
  }
  write_file(d.path() / "spam.mbox", mbox);
  std::string db = (d.path() / "bayes.db").string();
  std::string out;
  int rc = run_command(shell_quote(sluice_binary()) + " spam train --spam " +
                           shell_quote((d.path() / "spam.mbox").string()) + " --ham " +
                           shell_quote((d.path() / "ham").string()) + " --db " + shell_quote(db),
                       &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("learned 9, relearned 0, unchanged 0"), std::string::npos) << out;
  EXPECT_NE(out.find("4 spam, 5 ham"), std::string::npos) << out;
  rc = run_command(shell_quote(sluice_binary()) + " spam train --ham " +
                       shell_quote((d.path() / "spam.mbox").string()) + " --db " + shell_quote(db),
                   &out);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("relearned 4"), std::string::npos) << out;
  out.clear();
  rc = run_command(shell_quote(sluice_binary()) + " spam stats --db " + shell_quote(db), &out);
  EXPECT_EQ(rc, 0);
  EXPECT_NE(out.find("spam 0\nham 9\n"), std::string::npos) << out;
  EXPECT_EQ(run_command(shell_quote(sluice_binary()) + " spam train --spam /nonexistent --db " +
                        shell_quote(db)),
            66);
  EXPECT_EQ(run_command(shell_quote(sluice_binary()) + " spam bogus"), 64);
}

// ---- external engines ----------------------------------------------------------------------

std::uint16_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

bool port_open(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// A child process in its own process group, killed (group) on destruction.
class child {
 public:
  explicit child(const std::string& cmd) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~child() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGTERM);
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(pid_, nullptr, WNOHANG) == pid_) return;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  child(const child&) = delete;
  child& operator=(const child&) = delete;

 private:
  pid_t pid_ = -1;
};

bool wait_port(std::uint16_t port, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (port_open(port)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return false;
}

// spamd's own answer to a message, asked with a raw SPAMC/1.5 CHECK from Python: "True 7.5".
std::string spamd_direct(std::uint16_t port, const std::string& file) {
  std::string script =
      "import socket,sys\n"
      "data = open(sys.argv[2],'rb').read().replace(b'\\r\\n', b'\\n').replace(b'\\n', b'\\r\\n')\n"
      "s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=60)\n"
      "s.sendall(b'CHECK SPAMC/1.5\\r\\nContent-length: %d\\r\\n\\r\\n' % len(data) + data)\n"
      "s.shutdown(socket.SHUT_WR)\n"
      "r = b''\n"
      "while True:\n"
      "    c = s.recv(65536)\n"
      "    if not c: break\n"
      "    r += c\n"
      "for line in r.decode().split('\\r\\n'):\n"
      "    if line.startswith('Spam:'):\n"
      "        flag, rest = line[5:].split(';')\n"
      "        print(flag.strip(), rest.split('/')[0].strip())\n";
  std::string out;
  run_command(
      "python3 -c " + shell_quote(script) + " " + std::to_string(port) + " " + shell_quote(file),
      &out, false, std::chrono::seconds(90));
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

TEST(SpamBinary, SpamAssassinSpamdEngine) {
  if (run_command("test -x /usr/sbin/spamd") != 0) GTEST_SKIP() << "spamd is not installed";
  temp_dir home;
  std::uint16_t port = free_port();
  // -L: local tests only (no DNS/network); -x: no user config; a throwaway home and
  // helper dir; one child so that startup is quick.
  child spamd("exec /usr/sbin/spamd -L -x --listen=127.0.0.1:" + std::to_string(port) +
              " --allowed-ips=127.0.0.1 --max-children=1 --min-children=1 --pidfile=" +
              shell_quote((home.path() / "spamd.pid").string()) +
              " --helper-home-dir=" + shell_quote(home.path().string()) +
              " -u nobody -s stderr 2>" + shell_quote((home.path() / "spamd.log").string()));
  ASSERT_TRUE(wait_port(port, std::chrono::seconds(120)))
      << "spamd did not listen: " << read_file(home.path() / "spamd.log");
  sluice_process p(
      config("      - plugin: spam\n"
             "        engine: spamassassin\n"
             "        timeout: 60s\n"
             "        spamassassin: {address: '127.0.0.1:" +
             std::to_string(port) + "', timeout: 60s}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  std::string smtp = p.endpoints("smtp").at(0);
  for (const std::string f : {"spam-gtube.eml", "ham-plain.eml", "spam-pharma.eml"}) {
    SCOPED_TRACE(f);
    ASSERT_EQ(smtp_send_file(smtp, corpus_path(f)), "OK") << p.log();
  }
  struct expect {
    std::string file, subject;
  };
  for (const auto& e : {expect{"spam-gtube.eml", "GTUBE"}, expect{"ham-plain.eml", "design review"},
                        expect{"spam-pharma.eml", "CHEAP MEDS"}}) {
    SCOPED_TRACE(e.file);
    std::string id = find_id(p, e.subject);
    ASSERT_FALSE(id.empty());
    auto [code, body] = http("GET", base_url(p) + "/api/v1/message/" + id + "/sa-check");
    ASSERT_EQ(code, 200) << body;
    auto sa = json::parse(body);
    // spamd's own verdict on the same message (sent directly, without the stage).
    std::string direct = spamd_direct(port, corpus_path(e.file));
    auto sp = direct.find(' ');
    ASSERT_NE(sp, std::string::npos) << direct;
    bool spam = direct.substr(0, sp) == "True";
    EXPECT_EQ(sa.at("IsSpam").as_bool(), spam) << body;
    // The stage's copy carries Received and X-Spam-free headers the direct copy has not:
    // scores may differ by header rules only, never the verdict.
    if (e.file == "spam-gtube.eml") {
      EXPECT_TRUE(spam);
      EXPECT_TRUE(rule_names(sa).count("GTUBE")) << body;
      // GTUBE scores 1000; rules that depend on the machine (ALL_TRUSTED -1 for a message
      // that only crossed trusted hosts, …) may move the total by a few points.
      EXPECT_GE(sa.at("Score").as_double(), 990);
    }
    EXPECT_FALSE(sa.at("Rules").as_array().empty()) << body;
  }
}

// A Python fake of rspamd's /checkv2, to drive every action (real rspamd's stock rules only
// give reject and no action for the corpus): it checks the envelope headers and answers by
// the subject.
const char* fake_rspamd = R"PY(
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get('Content-Length', '0'))
        body = self.rfile.read(n)
        ok = (self.path == '/checkv2' and self.headers.get('From') == 'sender@example.com'
              and self.headers.get_all('Rcpt') == ['r0@example.org', 'r1@example.org']
              and self.headers.get('IP') == '127.0.0.1' and self.headers.get('Helo'))
        if not ok:
            self.send_response(400); self.end_headers(); self.wfile.write(b'bad envelope'); return
        if b'GTUBE' in body: action, score = 'reject', 1000.0
        elif b'CHEAP MEDS' in body: action, score = 'rewrite subject', 9.0
        elif b'limited' in body: action, score = 'soft reject', 8.0
        else: action, score = 'no action', 0.5
        r = {'action': action, 'score': score, 'required_score': 15.0,
             'symbols': {'FAKE_RULE': {'name': 'FAKE_RULE', 'score': score, 'description': 'fake'}}}
        if action == 'rewrite subject': r['subject'] = '*** SPAM *** CHEAP MEDS ONLINE TODAY'
        out = json.dumps(r).encode()
        self.send_response(200)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(out)))
        self.end_headers(); self.wfile.write(out)
    def log_message(self, *a): pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
)PY";

TEST(SpamBinary, RspamdEngineAgainstAFakeCheckv2) {
  temp_dir d;
  write_file(d.path() / "fake.py", fake_rspamd);
  std::uint16_t port = free_port();
  child fake("exec python3 " + shell_quote((d.path() / "fake.py").string()) + " " +
             std::to_string(port));
  ASSERT_TRUE(wait_port(port, std::chrono::seconds(20)));
  sluice_process p(
      config("      - plugin: spam\n"
             "        engine: rspamd\n"
             "        rspamd: {address: '127.0.0.1:" +
             std::to_string(port) + "'}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  std::string smtp = p.endpoints("smtp").at(0);
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("ham-plain.eml"), 2), "OK");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-gtube.eml"), 2),
            "ERR 550 5.7.1 Message rejected as spam");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-phish.eml"), 2).substr(0, 8), "ERR 451 ");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-pharma.eml"), 2), "OK");
  std::string id = find_id(p, "CHEAP MEDS");
  ASSERT_FALSE(id.empty());
  auto [c, raw] = http("GET", base_url(p) + "/api/v1/message/" + id + "/raw");
  EXPECT_NE(raw.find("Subject: *** SPAM *** CHEAP MEDS ONLINE TODAY"), std::string::npos) << raw;
  EXPECT_NE(raw.find("X-Spam-Flag: YES"), std::string::npos);
  auto sa = json::parse(http("GET", base_url(p) + "/api/v1/message/" + id + "/sa-check").second);
  EXPECT_TRUE(sa.at("IsSpam").as_bool());
  EXPECT_TRUE(rule_names(sa).count("FAKE_RULE"));
  std::string ham = find_id(p, "design review");
  auto hs = json::parse(http("GET", base_url(p) + "/api/v1/message/" + ham + "/sa-check").second);
  EXPECT_FALSE(hs.at("IsSpam").as_bool());
}

// rspamd's own answer to a message (POST /checkv2 from Python, the same envelope headers as
// the stage sends): its action.
std::string rspamd_direct_action(std::uint16_t port, const std::string& file) {
  std::string script =
      "import json,sys,urllib.request\n"
      "data = open(sys.argv[2],'rb').read().replace(b'\\r\\n', b'\\n').replace(b'\\n', b'\\r\\n')\n"
      "req = urllib.request.Request('http://127.0.0.1:%s/checkv2' % sys.argv[1], data=data,\n"
      "      headers={'From': 'sender@example.com', 'Rcpt': 'r0@example.org', 'IP': '127.0.0.1',\n"
      "               'Helo': 'localhost'})\n"
      "print(json.load(urllib.request.urlopen(req, timeout=60))['action'])\n";
  std::string out;
  run_command(
      "python3 -c " + shell_quote(script) + " " + std::to_string(port) + " " + shell_quote(file),
      &out, false, std::chrono::seconds(90));
  while (!out.empty() && out.back() == '\n')
    out.pop_back();
  return out;
}

// Debian's rspamd (bookworm main) on loopback, with its stock configuration and the workers
// moved to free ports in a throwaway directory; no network (lookups fail fast).
TEST(SpamBinary, RspamdEngineAgainstDebianRspamd) {
  if (run_command("test -x /usr/bin/rspamd") != 0) GTEST_SKIP() << "rspamd is not installed";
  temp_dir d;
  for (const char* sub : {"local/override.d", "local/local.d", "db", "run", "log"})
    std::filesystem::create_directories(d.path() / sub);
  std::uint16_t normal = free_port(), controller = free_port(), proxy = free_port();
  auto ov = d.path() / "local/override.d";
  write_file(ov / "worker-normal.inc",
             "bind_socket = \"127.0.0.1:" + std::to_string(normal) + "\";\ncount = 1;\n");
  write_file(ov / "worker-controller.inc",
             "bind_socket = \"127.0.0.1:" + std::to_string(controller) + "\";\ncount = 1;\n");
  write_file(ov / "worker-proxy.inc",
             "bind_socket = \"127.0.0.1:" + std::to_string(proxy) + "\";\ncount = 1;\n");
  write_file(ov / "logging.inc", "type = \"console\";\nlevel = \"error\";\n");
  write_file(d.path() / "local/local.d/options.inc", "dns { timeout = 0.2s; retransmits = 1; }\n");
  run_command("chown -R nobody " + shell_quote((d.path() / "db").string()) + " " +
              shell_quote((d.path() / "run").string()) + " " +
              shell_quote((d.path() / "log").string()));
  std::string dir = d.path().string();
  child rspamd(
      "exec /usr/bin/rspamd -f -u nobody -g nogroup -c /etc/rspamd/rspamd.conf"
      " --var=LOCAL_CONFDIR=" +
      shell_quote(dir + "/local") + " --var=DBDIR=" + shell_quote(dir + "/db") +
      " --var=RUNDIR=" + shell_quote(dir + "/run") + " --var=LOGDIR=" + shell_quote(dir + "/log") +
      " > " + shell_quote(dir + "/rspamd.log") + " 2>&1");
  ASSERT_TRUE(wait_port(normal, std::chrono::seconds(90)))
      << "rspamd did not listen: " << read_file(d.path() / "rspamd.log");
  sluice_process p(
      config("      - plugin: spam\n"
             "        engine: rspamd\n"
             "        timeout: 60s\n"
             "        rspamd: {address: '127.0.0.1:" +
             std::to_string(normal) + "', timeout: 60s}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  std::string smtp = p.endpoints("smtp").at(0);
  // GTUBE: rspamd's action is reject, and so is the stage's verdict.
  EXPECT_EQ(rspamd_direct_action(normal, corpus_path("spam-gtube.eml")), "reject");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("spam-gtube.eml")),
            "ERR 550 5.7.1 Message rejected as spam");
  std::string ham_action = rspamd_direct_action(normal, corpus_path("ham-plain.eml"));
  EXPECT_EQ(ham_action, "no action");
  EXPECT_EQ(smtp_send_file(smtp, corpus_path("ham-plain.eml")), "OK");
  std::string id = find_id(p, "design review");
  ASSERT_FALSE(id.empty());
  auto [code, body] = http("GET", base_url(p) + "/api/v1/message/" + id + "/sa-check");
  ASSERT_EQ(code, 200) << body;
  auto sa = json::parse(body);
  EXPECT_FALSE(sa.at("IsSpam").as_bool()) << body;
  EXPECT_EQ(sa.at("Error").as_string(), "");
  EXPECT_FALSE(sa.at("Rules").as_array().empty()) << body;  // rspamd's symbols
}

TEST(SpamBinary, FailingEngineAppliesOnError) {
  std::uint16_t port = free_port();  // nothing listens there
  sluice_process p(
      config("      - plugin: spam\n"
             "        engine: spamassassin\n"
             "        on_error: tempfail\n"
             "        spamassassin: {address: '127.0.0.1:" +
             std::to_string(port) +
             "', timeout: 5s}\n"
             "      - plugin: spam\n"
             "        name: spam2\n"
             "        engine: rspamd\n"
             "        on_error: continue\n"
             "        rspamd: {address: '127.0.0.1:" +
             std::to_string(port) + "', timeout: 5s}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  auto r = smtp_send_file(p.endpoints("smtp").at(0), corpus_path("ham-plain.eml"));
  EXPECT_EQ(r.substr(0, 8), "ERR 451 ") << r;
}

TEST(SpamBinary, FailingEngineWithContinueKeepsTheErrorForSaCheck) {
  std::uint16_t port = free_port();
  sluice_process p(
      config("      - plugin: spam\n"
             "        engine: rspamd\n"
             "        on_error: continue\n"
             "        rspamd: {address: '127.0.0.1:" +
             std::to_string(port) + "', timeout: 5s}\n"));
  ASSERT_TRUE(p.running()) << p.log();
  EXPECT_EQ(smtp_send_file(p.endpoints("smtp").at(0), corpus_path("ham-plain.eml")), "OK");
  std::string id = find_id(p, "design review");
  ASSERT_FALSE(id.empty());
  auto [code, body] = http("GET", base_url(p) + "/api/v1/message/" + id + "/sa-check");
  ASSERT_EQ(code, 200) << body;
  auto sa = json::parse(body);
  EXPECT_NE(std::string(sa.at("Error").as_string()).find("127.0.0.1"), std::string::npos) << body;
  EXPECT_FALSE(sa.at("IsSpam").as_bool());
}

}  // namespace
}  // namespace sluice::test::spam
