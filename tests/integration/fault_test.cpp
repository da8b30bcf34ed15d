// fault_test.cpp — I/O faults: the real sluice binary runs with tests/support/faultfs.c
// preloaded, which makes writes (EIO or ENOSPC), syncs or reads of the files under its data
// directory fail on demand. While they fail, no message gets a 250, every client gets a
// clear 4xx or 5xx (SMTP), 500/507 with a message (HTTP API) or -ERR [SYS/TEMP] (POP3,
// Python's poplib), and the process stays up; once they stop, mail is accepted again on the
// same connection. Afterwards every acknowledged message is in the store byte-identical,
// exactly once, and sluice stops with exit 0 (so, in the sanitizer build, with no leak).
#include <gtest/gtest.h>

#include <signal.h>
#include <stdlib.h>
#include <boost/json.hpp>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace fs = std::filesystem;
using sluice::test::line_client;
using sluice::test::run_command;
using sluice::test::shell_quote;
using sluice::test::sluice_process;
using sluice::test::temp_dir;

namespace {

// Two ways into the store: straight (capture) and with a deferred stage, so every message
// also goes through the kernel's spool before its 250. Bodies over 64 KB spill to the spool
// while they arrive.
std::string config(const std::string& durability) {
  return R"(log: {level: info}
spool: {path: ./data/spool, spill_threshold: 64KB, durability: )" +
         durability + R"(}
services:
  - {name: default, plugin: store, path: ./data/mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
  - {name: smtp_spool, plugin: smtp, pipeline: spooled, listen: ["127.0.0.1:0"]}
  - {name: lmtp, plugin: smtp, mode: lmtp, pipeline: capture, listen: ["127.0.0.1:0"]}
  - {name: http, plugin: http, pipeline: capture, listen: ["127.0.0.1:0"]}
  - {name: pop3, plugin: pop3, listen: ["127.0.0.1:0"], users: "u:p", allow_insecure: true}
pipelines:
  - name: capture
    stages: [{plugin: store, mailbox: default}]
  - name: spooled
    stages:
      - {plugin: store, mailbox: default}
      - {plugin: test_deferred, log: ./deferred.log}
)";
}

std::string make_message(const std::string& tag, std::size_t size) {
  std::string m = "From: fault@example.org\r\nTo: sink@example.org\r\nMessage-ID: <" + tag +
                  "@fault.test>\r\nSubject: fault " + tag + "\r\n\r\n";
  for (int line = 0; m.size() < size; ++line)
    m += tag + " line " + std::to_string(line) + " " + std::string(60, 'a' + line % 26) + "\r\n";
  return m;
}

// One SMTP session kept open across the phases of a test.
class session {
 public:
  explicit session(const std::string& endpoint) : c_(endpoint, std::chrono::seconds(30)) {
    EXPECT_TRUE(c_.read_reply().starts_with("220"));
    c_.send("EHLO fault.test\r\n");
    EXPECT_TRUE(c_.read_reply().starts_with("250"));
  }
  // The reply to the message's final dot (or the first reply that was not the expected one).
  std::string send(const std::string& msg) {
    c_.send("MAIL FROM:<fault@example.org>\r\n");
    if (auto r = c_.read_reply(); !r.starts_with("250")) return r;
    c_.send("RCPT TO:<sink@example.org>\r\n");
    if (auto r = c_.read_reply(); !r.starts_with("250")) return r;
    c_.send("DATA\r\n");
    if (auto r = c_.read_reply(); !r.starts_with("354")) return r;
    c_.send(msg + ".\r\n");
    return c_.read_reply();
  }
  // The same message in one BDAT LAST chunk (RFC 3030).
  std::string send_bdat(const std::string& msg) {
    c_.send("MAIL FROM:<fault@example.org>\r\n");
    if (auto r = c_.read_reply(); !r.starts_with("250")) return r;
    c_.send("RCPT TO:<sink@example.org>\r\n");
    if (auto r = c_.read_reply(); !r.starts_with("250")) return r;
    c_.send("BDAT " + std::to_string(msg.size()) + " LAST\r\n" + msg);
    return c_.read_reply();
  }
  std::string noop() {
    c_.send("NOOP\r\n");
    return c_.read_reply();
  }

 private:
  line_client c_;
};

struct http_reply {
  int status = 0;
  std::string body;
};

http_reply curl(const std::string& args) {
  std::string out;
  run_command("curl -sS --max-time 20 -w '\\n%{http_code}' " + args, &out, false,
              std::chrono::seconds(30));
  http_reply r;
  auto nl = out.rfind('\n');
  if (nl == std::string::npos) return r;
  r.status = std::atoi(out.c_str() + nl + 1);
  r.body = out.substr(0, nl);
  return r;
}

// Starts sluice under faultfs. The fault control file is <dir>/fault.ctl; only files under
// <dir>/data are affected (the log, <dir>/sluice.log, is not).
class faulty {
 public:
  explicit faulty(const std::string& durability) : faulty(config(durability), 0) {}
  // Another configuration (its files under ./data).
  faulty(std::string config_text, int) : config_(std::move(config_text)) {
    fs::create_directories(dir_.path() / "data");
    data_ = fs::canonical(dir_.path() / "data");
    ctl_ = dir_.path() / "fault.ctl";
    start();
  }
  // Stops sluice (expecting exit 0) and starts it again over the same data.
  void restart() {
    EXPECT_EQ(proc_->stop(), 0) << proc_->log();
    proc_.reset();
    start();
  }
  sluice_process& proc() { return *proc_; }
  const fs::path& dir() const { return dir_.path(); }
  const fs::path& data() const { return data_; }
  void fail(const std::string& words) {
    fs::remove(hits_path());
    // Written whole under another name and renamed: a call never reads half of it.
    const fs::path tmp = ctl_.string() + ".tmp";
    sluice::test::write_file(tmp, words);
    fs::rename(tmp, ctl_);
  }
  void heal() { fs::remove(ctl_); }
  // How many calls failed since the last fail().
  std::size_t hits() const {
    std::error_code ec;
    auto n = fs::file_size(hits_path(), ec);
    return ec ? 0 : n;
  }
  std::string api(const std::string& path) const {
    return "http://" + proc_->host("http") + ":" + std::to_string(proc_->port("http")) + path;
  }

 private:
  void start() {
    const char* old = getenv("ASAN_OPTIONS");
    std::string asan = old ? old : "";
    // faultfs comes before the sanitizer runtime in the library list.
    ::setenv("ASAN_OPTIONS",
             (asan + (asan.empty() ? "" : ":") + "verify_asan_link_order=0").c_str(), 1);
    ::setenv("LD_PRELOAD", SLUICE_FAULTFS, 1);
    ::setenv("SLUICE_FAULT_DIR", data_.c_str(), 1);
    ::setenv("SLUICE_FAULT_CTL", ctl_.c_str(), 1);
    proc_.emplace(dir_.path(), config_);
    ::unsetenv("LD_PRELOAD");
    ::unsetenv("SLUICE_FAULT_DIR");
    ::unsetenv("SLUICE_FAULT_CTL");
    if (asan.empty()) {
      ::unsetenv("ASAN_OPTIONS");
    } else {
      ::setenv("ASAN_OPTIONS", asan.c_str(), 1);
    }
  }
  fs::path hits_path() const { return fs::path(ctl_.string() + ".hits"); }
  std::string config_;
  temp_dir dir_;
  fs::path data_, ctl_;
  std::optional<sluice_process> proc_;
};

std::string queued_id(const std::string& reply) {
  auto pos = reply.find("queued as ");
  return pos == std::string::npos ? std::string() : reply.substr(pos + 10);
}

// What the store holds after the run, checked against what was acknowledged.
void expect_stored_exactly(const fs::path& dir, const std::map<std::string, std::string>& acked,
                           const std::set<std::string>& refused_tags) {
  sluice::test::store_reader store(dir, "data/mail.db");
  for (const auto& [id, bytes] : acked) {
    auto raw = store.raw(id, false);
    ASSERT_TRUE(raw.has_value()) << "acknowledged message " << id << " is missing";
    EXPECT_TRUE(*raw == bytes) << "acknowledged message " << id << " differs (" << raw->size()
                               << " bytes stored, " << bytes.size() << " sent)";
  }
  std::map<std::string, int> seen;
  for (auto& m : store.all())
    ++seen[m.message_id];
  for (auto& [mid, n] : seen)
    EXPECT_EQ(n, 1) << mid << " stored " << n << " times";
  for (const auto& tag : refused_tags)
    EXPECT_EQ(seen.count(tag + "@fault.test"), 0u) << tag << " was refused but is stored";
  EXPECT_EQ(seen.size(), acked.size());
}

// Write faults of one kind: every listener tempfails, the API reports the failure, and the
// same connections work again once the disk does.
void run_write_faults(const std::string& fault, const std::string& durability,
                      const std::string& expected) {
  faulty f(durability);
  ASSERT_TRUE(f.proc().running());
  const auto capture = f.proc().endpoints("smtp").at(0);
  const auto spooled = f.proc().endpoints("smtp_spool").at(0);
  session a(capture), b(spooled);
  std::map<std::string, std::string> acked;
  std::set<std::string> refused;
  std::vector<std::pair<std::string, std::string>> retry;  // tag, message
  const std::size_t sizes[] = {2 * 1024, 100 * 1024};
  int n = 0;
  auto send = [&](session& s, const char* where, bool expect_ok) {
    for (auto size : sizes) {
      auto tag = std::string(where) + "-" + std::to_string(n++);
      auto msg = make_message(tag, size);
      // The large one goes as BDAT on the direct listener: it spills to the spool chunk by
      // chunk instead of line by line.
      auto reply =
          size > 64 * 1024 && std::string_view(where) == "capture" ? s.send_bdat(msg) : s.send(msg);
      if (expect_ok) {
        EXPECT_TRUE(reply.starts_with("250")) << tag << ": " << reply;
        if (auto id = queued_id(reply); !id.empty()) acked[id] = msg;
      } else {
        // A transient failure of this server: 451 4.3.0 (local error) for I/O errors,
        // 452 4.3.1 (insufficient storage) for a full disk.
        EXPECT_TRUE(reply.starts_with(expected)) << tag << " under " << fault << ": " << reply;
        if (reply.starts_with("250")) {
          if (auto id = queued_id(reply); !id.empty()) acked[id] = msg;
        } else {
          refused.insert(tag);
          retry.emplace_back(tag, msg);
        }
      }
    }
  };
  send(a, "capture", true);
  send(b, "spooled", true);

  f.fail(fault);
  send(a, "capture", false);
  send(b, "spooled", false);
  EXPECT_GT(f.hits(), 0u) << "the fault never hit sluice";
  // Reading still works; a change answers with an error and a message, never a 2xx.
  auto list = f.proc().running() ? curl(shell_quote(f.api("/api/v1/messages"))) : http_reply{};
  EXPECT_EQ(list.status, 200) << list.body;
  auto del = curl("-X DELETE " + shell_quote(f.api("/api/v1/messages")));
  EXPECT_TRUE(del.status == 500 || del.status == 507) << del.body;
  EXPECT_TRUE(del.body.starts_with("the mail store")) << del.body;
  auto read = curl("-X PUT -H 'Content-Type: application/json' -d '{\"Read\":true}' " +
                   shell_quote(f.api("/api/v1/messages")));
  EXPECT_TRUE(read.status == 500 || read.status == 507) << read.body;
  EXPECT_TRUE(read.body.starts_with("the mail store")) << read.body;
  EXPECT_TRUE(a.noop().starts_with("250"));
  EXPECT_TRUE(b.noop().starts_with("250"));

  f.heal();
  // The client retries what was refused, on the same connections, and sends more.
  for (auto& [tag, msg] : retry) {
    auto reply = (tag.starts_with("capture") ? a : b).send(msg);
    EXPECT_TRUE(reply.starts_with("250")) << tag << " retried: " << reply;
    if (auto id = queued_id(reply); !id.empty()) acked[id] = msg;
    refused.erase(tag);
  }
  send(a, "capture", true);
  send(b, "spooled", true);
  list = curl(shell_quote(f.api("/api/v1/messages?limit=1")));
  EXPECT_EQ(list.status, 200) << list.body;
  auto total = boost::json::parse(list.body).at("total").to_number<std::size_t>();
  EXPECT_EQ(total, acked.size());

  EXPECT_TRUE(f.proc().running()) << f.proc().log();
  EXPECT_EQ(f.proc().stop(), 0) << f.proc().log();
  expect_stored_exactly(f.dir(), acked, refused);
}

TEST(faults, write_eio_tempfails_mail_and_nothing_acknowledged_is_lost) {
  run_write_faults("write=EIO", "normal", "451 4.3.0 ");
}

TEST(faults, write_enospc_tempfails_mail_and_nothing_acknowledged_is_lost) {
  run_write_faults("write=ENOSPC", "normal", "452 4.3.1 ");
}

// Only the kernel's spool fails; the store works. Messages for the pipeline with a deferred
// stage are refused before the store has them (so the retry stores each once); so are
// bodies that spill to the spool while they arrive. The rest is accepted.
TEST(faults, a_failing_spool_refuses_before_the_store_commits) {
  faulty f("normal");
  ASSERT_TRUE(f.proc().running());
  session a(f.proc().endpoints("smtp").at(0)), b(f.proc().endpoints("smtp_spool").at(0));
  std::map<std::string, std::string> acked;
  auto keep = [&](const std::string& reply, const std::string& msg) {
    if (auto id = queued_id(reply); !id.empty()) acked[id] = msg;
  };
  f.fail("write=EIO under=" + (f.data() / "spool").string());
  const auto small = make_message("spool-small", 2048), big = make_message("spool-big", 100 * 1024),
             direct = make_message("direct-small", 2048),
             spilled = make_message("direct-big", 100 * 1024);
  auto r1 = b.send(small), r2 = b.send(big), r3 = a.send(direct), r4 = a.send(spilled);
  EXPECT_TRUE(r1.starts_with("451 4.3.0")) << r1;
  EXPECT_TRUE(r2.starts_with("451 4.3.0")) << r2;
  EXPECT_TRUE(r3.starts_with("250")) << r3;
  EXPECT_TRUE(r4.starts_with("451 4.3.0")) << r4;
  keep(r3, direct);
  // LMTP (RFC 2033 §4.2): the failed body gets one reply per recipient, and the session
  // stays in step (the next command's reply is its own).
  {
    line_client l(f.proc().endpoints("lmtp").at(0), std::chrono::seconds(30));
    EXPECT_TRUE(l.read_reply().starts_with("220"));
    l.send(
        "LHLO fault.test\r\nMAIL FROM:<fault@example.org>\r\nRCPT TO:<a@example.org>\r\n"
        "RCPT TO:<b@example.org>\r\nDATA\r\n");
    for (const char* want : {"250", "250", "250", "250", "354"})
      EXPECT_TRUE(l.read_reply().starts_with(want)) << want;
    l.send(make_message("lmtp-big", 100 * 1024) + ".\r\nNOOP\r\n");
    auto x = l.read_reply(), y = l.read_reply(), z = l.read_reply();
    EXPECT_TRUE(x.starts_with("451 4.3.0")) << x;
    EXPECT_TRUE(y.starts_with("451 4.3.0")) << y;
    EXPECT_TRUE(z.starts_with("250 2.0.0 Ok")) << z;
    // The same with BDAT LAST.
    const std::string body = make_message("lmtp-bdat", 100 * 1024);
    l.send(
        "MAIL FROM:<fault@example.org>\r\nRCPT TO:<a@example.org>\r\n"
        "RCPT TO:<b@example.org>\r\nBDAT " +
        std::to_string(body.size()) + " LAST\r\n" + body + "NOOP\r\n");
    for (const char* want : {"250", "250", "250", "451 4.3.0", "451 4.3.0", "250 2.0.0 Ok"}) {
      auto r = l.read_reply();
      EXPECT_TRUE(r.starts_with(want)) << want << ": " << r;
    }
  }
  EXPECT_GT(f.hits(), 0u);
  auto list = curl(shell_quote(f.api("/api/v1/messages?limit=1")));
  EXPECT_EQ(boost::json::parse(list.body).at("total").to_number<std::size_t>(), 1u) << list.body;

  f.heal();
  for (auto* m : {&small, &big}) {
    auto r = b.send(*m);
    EXPECT_TRUE(r.starts_with("250")) << r;
    keep(r, *m);
  }
  auto r = a.send(spilled);
  EXPECT_TRUE(r.starts_with("250")) << r;
  keep(r, spilled);
  // The deferred stage runs right after each 250; wait (bounded) until it ran for all.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fs::is_empty(f.data() / "spool/queue") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(f.proc().stop(), 0) << f.proc().log();
  // Nothing is left in the spool's incoming/ or queue/ (the deferred stages ran).
  EXPECT_TRUE(fs::is_empty(f.data() / "spool/incoming"));
  EXPECT_TRUE(fs::is_empty(f.data() / "spool/queue"));
  expect_stored_exactly(f.dir(), acked, {});
}

TEST(faults, failed_syncs_under_full_durability_tempfail_mail) {
  run_write_faults("sync=EIO", "full", "451 4.3.0 ");
}

// Read faults: the API answers with an error, not with wrong data, and recovers.
TEST(faults, read_eio_fails_api_reads_cleanly_and_recovers) {
  faulty f("normal");
  ASSERT_TRUE(f.proc().running());
  std::map<std::string, std::string> acked;
  {
    session a(f.proc().endpoints("smtp").at(0));
    for (int i = 0; i < 3; ++i) {
      auto msg = make_message("read-" + std::to_string(i), 20 * 1024);
      auto reply = a.send(msg);
      ASSERT_TRUE(reply.starts_with("250")) << reply;
      acked[queued_id(reply)] = msg;
    }
  }
  // After a restart nothing is in SQLite's page caches: every read goes to the file.
  f.restart();
  ASSERT_TRUE(f.proc().running());
  const auto id = acked.begin()->first;
  f.fail("read=EIO");
  auto msg = curl(shell_quote(f.api("/api/v1/message/" + id)));
  EXPECT_EQ(msg.status, 500) << msg.body;
  EXPECT_TRUE(msg.body.starts_with("the mail store could not be read: ")) << msg.body;
  auto raw = curl(shell_quote(f.api("/api/v1/message/" + id + "/raw")));
  EXPECT_EQ(raw.status, 500) << raw.body;
  EXPECT_TRUE(raw.body.starts_with("the mail store could not be read: ")) << raw.body;
  auto search = curl(shell_quote(f.api("/api/v1/search?query=line")));
  EXPECT_EQ(search.status, 500) << search.body;
  EXPECT_TRUE(search.body.starts_with("the mail store could not be read: ")) << search.body;
  session a(f.proc().endpoints("smtp").at(0));
  auto during = make_message("read-during", 2048);
  auto reply = a.send(during);
  EXPECT_TRUE(reply.starts_with("250") || reply.starts_with("451 4.")) << reply;
  if (auto qid = queued_id(reply); !qid.empty()) acked[qid] = during;
  EXPECT_GT(f.hits(), 0u) << "the fault never hit sluice";
  // POP3 (Python's poplib): the maildrop cannot be opened, and the client is told to retry.
  auto pop = [&](const std::string& script, std::string* out) {
    return run_command(
        "python3 -c " +
            shell_quote("import poplib,sys\np=poplib.POP3('" + f.proc().host("pop3") + "'," +
                        std::to_string(f.proc().port("pop3")) + ",timeout=20)\n" + script),
        out, true, std::chrono::seconds(30));
  };
  std::string pop_out;
  pop("p.user('u')\ntry:\n  p.pass_('p'); print('logged in')\n"
      "except poplib.error_proto as e: print(e)\n",
      &pop_out);
  EXPECT_NE(pop_out.find("-ERR [SYS/TEMP]"), std::string::npos) << pop_out;

  f.heal();
  pop_out.clear();
  ASSERT_EQ(pop("p.user('u'); p.pass_('p')\nn, size = p.stat(); print(n)\n"
                "sys.stdout.write(b'\\r\\n'.join(p.retr(1)[1]).decode())\np.quit()\n",
                &pop_out),
            0)
      << pop_out;
  // Every message acknowledged so far (the one sent during the fault only if it got 250).
  EXPECT_TRUE(pop_out.starts_with(std::to_string(acked.size()) + "\n")) << pop_out;
  EXPECT_NE(pop_out.find("read-0 line 1 "), std::string::npos) << pop_out.substr(0, 400);
  raw = curl(shell_quote(f.api("/api/v1/message/" + id + "/raw")));
  EXPECT_EQ(raw.status, 200);
  // The raw view carries the trace headers the SMTP listener added in front of the message.
  EXPECT_TRUE(raw.body.ends_with("\r\n" + acked[id])) << raw.body.substr(0, 400);
  if (!reply.starts_with("250")) {
    reply = a.send(during);
    EXPECT_TRUE(reply.starts_with("250")) << reply;
    if (auto qid = queued_id(reply); !qid.empty()) acked[qid] = during;
  }
  EXPECT_EQ(f.proc().stop(), 0) << f.proc().log();
  expect_stored_exactly(f.dir(), acked, {});
}

}  // namespace

// A store stage whose write outlasts its timeout (every sync of the disk takes 3 s, the
// stage's timeout is 300 ms). The message already committing is awaited and acknowledged,
// not tempfailed (the client's retry would store it twice); one still queued behind it is
// withdrawn, tempfailed and not stored. The retry stores it once.
TEST(faults, a_store_write_past_its_timeout_is_acknowledged_once_and_a_queued_one_withdrawn) {
  faulty f(R"(log: {level: info}
spool: {path: ./data/spool, durability: full}
services:
  - {name: default, plugin: store, path: ./data/mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages: [{plugin: store, mailbox: default, timeout: 300ms}]
)",
           0);
  ASSERT_TRUE(f.proc().running());
  const auto ep = f.proc().endpoints("smtp").at(0);
  std::map<std::string, std::string> acked;
  auto open = [&](line_client& c) {
    EXPECT_TRUE(c.read_reply().starts_with("220"));
    c.send(
        "EHLO fault.test\r\nMAIL FROM:<fault@example.org>\r\nRCPT TO:<sink@example.org>\r\n"
        "DATA\r\n");
    for (const char* code : {"250", "250", "250", "354"})
      EXPECT_TRUE(c.read_reply().starts_with(code));
  };
  line_client first(ep, std::chrono::seconds(30)), second(ep, std::chrono::seconds(30));
  open(first);
  open(second);
  const auto committing = make_message("committing", 2048), queued = make_message("queued", 2048);
  f.fail("delay=3000");
  const auto t0 = std::chrono::steady_clock::now();
  first.send(committing + ".\r\n");
  // Its commit is syncing once faultfs counted the delayed sync (before sleeping in it).
  for (int i = 0; i < 1000 && f.hits() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ASSERT_GT(f.hits(), 0u) << f.proc().log();
  second.send(queued + ".\r\n");
  const auto r2 = second.read_reply();
  const auto r1 = first.read_reply();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(r1.starts_with("250")) << r1 << "\n" << f.proc().log();
  EXPECT_TRUE(r2.starts_with("451 4.3.0")) << r2 << "\n" << f.proc().log();
  EXPECT_GE(took, std::chrono::milliseconds(3000));  // the first waited for its commit
  if (auto id = queued_id(r1); !id.empty()) acked[id] = committing;
  EXPECT_NE(f.proc().log().find("stage finished after its timeout; its answer stands"),
            std::string::npos)
      << f.proc().log();
  EXPECT_NE(f.proc().log().find("store write withdrawn"), std::string::npos) << f.proc().log();
  EXPECT_NE(f.proc().log().find("stage timed out"), std::string::npos) << f.proc().log();
  EXPECT_NE(f.proc().log().find("outcome=withdrawn"), std::string::npos) << f.proc().log();

  f.heal();
  session retry(ep);
  const auto r3 = retry.send(queued);
  EXPECT_TRUE(r3.starts_with("250")) << r3;
  if (auto id = queued_id(r3); !id.empty()) acked[id] = queued;
  EXPECT_EQ(f.proc().stop(), 0) << f.proc().log();
  expect_stored_exactly(f.dir(), acked, {});
}

// A database the disk cannot read or write at start stops serve with exit 74 (EX_IOERR) and
// a storage error at the store's section, not a configuration error.
TEST(faults, a_store_failing_at_start_is_a_storage_error) {
  for (const std::string fault : {"read=EIO", "write=EIO"}) {
    temp_dir dir;
    fs::create_directories(dir.path() / "data");
    const auto data = fs::canonical(dir.path() / "data");
    sluice::test::write_file(
        dir.path() / "sluice.yaml",
        "spool: {path: ./spool}\n"
        "listeners:\n"
        "  - {name: smtp, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:0\"]}\n"
        "services:\n"
        "  - {name: default, plugin: store, path: ./data/mail.db}\n"
        "pipelines:\n"
        "  - {name: p, stages: [{plugin: store}]}\n");
    if (fault == "read=EIO") {
      // An existing database, so that opening it reads.
      sluice_process first(dir.path(), sluice::test::read_file(dir.path() / "sluice.yaml"));
      ASSERT_TRUE(first.running());
      EXPECT_EQ(first.stop(), 0);
    }
    sluice::test::write_file(dir.path() / "fault.ctl", fault);
    const char* asan = getenv("ASAN_OPTIONS");
    std::string out;
    const int rc =
        run_command("ASAN_OPTIONS=" +
                        shell_quote(std::string(asan ? asan : "") + (asan && *asan ? ":" : "") +
                                    "verify_asan_link_order=0") +
                        " LD_PRELOAD=" + shell_quote(SLUICE_FAULTFS) +
                        " SLUICE_FAULT_DIR=" + shell_quote(data.string()) +
                        " SLUICE_FAULT_CTL=" + shell_quote((dir.path() / "fault.ctl").string()) +
                        " " + shell_quote(sluice::test::sluice_binary()) + " serve -c " +
                        shell_quote((dir.path() / "sluice.yaml").string()) + " --plugin-dir " +
                        shell_quote(sluice::test::test_plugin_dir()),
                    &out, true, std::chrono::seconds(20));
    EXPECT_EQ(rc, 74) << fault << ": " << out;
    EXPECT_NE(out.find("sluice: storage error: "), std::string::npos) << out;
    EXPECT_NE(out.find("sluice.yaml:5:5: services[0]: cannot open the store database"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("disk I/O error"), std::string::npos) << out;
  }
}

// The spool release fails after the store committed (its rename; faultfs decides by the new
// name, so the hold's own rename to .json.held still works). The client gets 451 and nothing
// of the message is left in the spool. Its retry is then stored a second time: the duplicate
// spool.hpp documents, asserted here so that a change to it is noticed.
TEST(faults, a_failed_spool_release_after_the_store_committed_tempfails) {
  faulty f("normal");
  ASSERT_TRUE(f.proc().running());
  session b(f.proc().endpoints("smtp_spool").at(0));
  const auto spool = f.data() / "spool";
  f.fail("rename=EIO suffix=.json under=" + spool.string());
  const auto msg = make_message("release", 2048);
  const auto r1 = b.send(msg);
  EXPECT_TRUE(r1.starts_with("451 4.3.0")) << r1;
  EXPECT_GT(f.hits(), 0u) << "the fault never hit sluice";
  EXPECT_NE(f.proc().log().find("spool release failed after the message was committed"),
            std::string::npos)
      << f.proc().log();
  EXPECT_TRUE(fs::is_empty(spool / "queue"));
  EXPECT_TRUE(fs::is_empty(spool / "incoming"));
  EXPECT_TRUE(b.noop().starts_with("250"));

  f.heal();
  const auto r2 = b.send(msg);
  EXPECT_TRUE(r2.starts_with("250")) << r2;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!fs::is_empty(spool / "queue") && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(f.proc().stop(), 0) << f.proc().log();
  sluice::test::store_reader store(f.dir(), "data/mail.db");
  int copies = 0;
  for (auto& m : store.all())
    copies += m.message_id == "release@fault.test";
  EXPECT_EQ(copies, 2) << "the documented duplicate changed: update spool.hpp and this test";
  auto raw = store.raw(queued_id(r2), false);
  ASSERT_TRUE(raw.has_value());
  EXPECT_TRUE(*raw == msg);
}
