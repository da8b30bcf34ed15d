// The relay stage against a real Postfix: a private instance of Debian's Postfix (its own
// main.cf, master.cf, queue and data directories under the test's temp dir, SMTP on a free
// loopback port, nothing else of the system's mail setup touched) configured as a plain
// relay target: it accepts mail for example.org from 127.0.0.0/8 and delivers it with its
// virtual(8) agent into a Maildir, so the tests read what Postfix itself received and
// delivered: the envelope (Return-Path and Delivered-To, which Postfix writes) and the
// message as stored.
//
//   - the staging gateway (mime → rewrite → dkim_sign → relay) to Postfix, the delivered
//     copy's DKIM signature verified with dkimpy;
//   - Postfix's own 450 and 550 replies at RCPT (check_recipient_access): the 550 is a
//     permanent failure kept with Postfix's exact text, the 450 is retried from the spool
//     and delivered once Postfix accepts it (after `postfix reload`), nobody twice;
//   - Postfix stopped while mail arrives, then started: everything arrives, once.
//
// Starting Postfix needs root (its master and delivery agents change user); the tests skip,
// saying so, when not root or when Postfix is not installed.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <boost/json.hpp>

#include "relay_test_support.hpp"
#include "sluice_test.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace sluice::test;
using namespace std::chrono_literals;
using namespace sluice::test::relay;

constexpr const char* kPostfix = "/usr/sbin/postfix";

// A private Postfix instance. Every path is under `dir`; the instance is stopped (and waited
// for) on destruction.
class postfix_target {
 public:
  postfix_target(const fs::path& dir, const std::string& rcpt_access)
      : dir_(dir), port_(unused_port()) {
    for (const char* d : {"conf", "queue", "data", "mail"})
      fs::create_directories(dir_ / d);
    // The daemons run as "postfix" (data) and deliver as "nobody" (mail): both must reach
    // their directories through the test's temp dir.
    for (fs::path p = dir_; p.has_relative_path() && p != p.root_path(); p = p.parent_path())
      fs::permissions(p, fs::perms::others_exec | fs::perms::group_exec, fs::perm_options::add);
    run_command("chown postfix " + shell_quote((dir_ / "data").string()));
    run_command("chown nobody:nogroup " + shell_quote((dir_ / "mail").string()));
    set_access_file(rcpt_access);
    std::string nobody_uid, nogroup_gid;
    run_command("id -u nobody", &nobody_uid, false);
    run_command("getent group nogroup | cut -d: -f3", &nogroup_gid, false);
    auto trim = [](std::string s) {
      s.erase(std::remove(s.begin(), s.end(), '\n'), s.end());
      return s;
    };
    const std::string d = dir_.string();
    write_file(dir_ / "conf" / "main.cf",
               "compatibility_level = 3.6\n"
               "queue_directory = " +
                   d +
                   "/queue\n"
                   "data_directory = " +
                   d +
                   "/data\n"
                   "mail_owner = postfix\n"
                   "setgid_group = postdrop\n"
                   "inet_interfaces = loopback-only\n"
                   "inet_protocols = ipv4\n"
                   "myhostname = postfix-target.test\n"
                   "mydomain = postfix-target.test\n"
                   "myorigin = $myhostname\n"
                   "mydestination =\n"
                   "mynetworks = 127.0.0.0/8\n"
                   "relayhost =\n"
                   "alias_maps =\n"
                   "alias_database =\n"
                   "local_recipient_maps =\n"
                   "virtual_mailbox_domains = example.org\n"
                   "virtual_mailbox_base = " +
                   d +
                   "/mail\n"
                   "virtual_mailbox_maps = static:inbox/\n"
                   "virtual_uid_maps = static:" +
                   trim(nobody_uid) +
                   "\n"
                   "virtual_gid_maps = static:" +
                   trim(nogroup_gid) +
                   "\n"
                   "virtual_minimum_uid = 1\n"
                   "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination\n"
                   "smtpd_recipient_restrictions = check_recipient_access texthash:" +
                   d +
                   "/conf/rcpt_access\n"
                   "smtputf8_enable = yes\n"
                   "biff = no\n"
                   "maillog_file_prefixes = " +
                   d +
                   "\n"
                   "maillog_file = " +
                   d + "/maillog\n");
    // No chroot (column 5 "n"): the instance's paths are outside any chroot. Each smtpd
    // process serves one session (max_use=1), so a changed access table applies to the next.
    write_file(dir_ / "conf" / "master.cf", "127.0.0.1:" + std::to_string(port_) +
                                                " inet n - n - - smtpd -o max_use=1\n"
                                                "pickup    unix n - n 60 1 pickup\n"
                                                "cleanup   unix n - n - 0 cleanup\n"
                                                "qmgr      unix n - n 300 1 qmgr\n"
                                                "rewrite   unix - - n - - trivial-rewrite\n"
                                                "bounce    unix - - n - 0 bounce\n"
                                                "defer     unix - - n - 0 bounce\n"
                                                "trace     unix - - n - 0 bounce\n"
                                                "verify    unix - - n - 1 verify\n"
                                                "flush     unix n - n 1000? 0 flush\n"
                                                "proxymap  unix - - n - - proxymap\n"
                                                "smtp      unix - - n - - smtp\n"
                                                "relay     unix - - n - - smtp\n"
                                                "showq     unix n - n - - showq\n"
                                                "error     unix - - n - - error\n"
                                                "retry     unix - - n - - error\n"
                                                "discard   unix - - n - - discard\n"
                                                "local     unix - n n - - local\n"
                                                "virtual   unix - n n - - virtual\n"
                                                "anvil     unix - - n - 1 anvil\n"
                                                "scache    unix - - n - 1 scache\n"
                                                "postlog   unix-dgram n - n - 1 postlogd\n");
  }
  ~postfix_target() { stop(); }
  postfix_target(const postfix_target&) = delete;
  postfix_target& operator=(const postfix_target&) = delete;

  // Starts the instance and waits (bounded) until its SMTP port answers.
  bool start() {
    std::string out;
    if (command("start", &out) != 0) {
      start_output_ = out;
      return false;
    }
    started_ = true;
    return eventually(
        [&] {
          try {
            line_client c(address(), 1s);
            return c.read_reply().starts_with("220");
          } catch (...) {
            return false;
          }
        },
        15s);
  }
  // Stops it and waits (bounded) until its master has exited and the port is free.
  void stop() {
    if (!started_) return;
    command("stop", nullptr);
    eventually([&] { return command("status", nullptr) != 0; }, 15s);
    started_ = false;
  }
  // Replaces the recipient access table and makes the running daemons read it.
  void set_access(const std::string& rcpt_access) {
    set_access_file(rcpt_access);
    command("reload", nullptr);
  }
  std::uint16_t port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string log() const {
    return start_output_ + (fs::exists(dir_ / "maillog") ? read_file(dir_ / "maillog") : "");
  }
  // What virtual(8) delivered, as stored in the Maildir.
  std::vector<std::string> delivered() const {
    std::vector<std::string> out;
    for (const char* sub : {"new", "cur"}) {
      const fs::path d = dir_ / "mail" / "inbox" / sub;
      if (!fs::exists(d)) continue;
      for (auto& e : fs::directory_iterator(d))
        out.push_back(read_file(e.path()));
    }
    return out;
  }
  std::vector<fs::path> delivered_files() const {
    std::vector<fs::path> out;
    const fs::path d = dir_ / "mail" / "inbox" / "new";
    if (fs::exists(d))
      for (auto& e : fs::directory_iterator(d))
        out.push_back(e.path());
    return out;
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds limit = 30s) const {
    return eventually([&] { return delivered().size() >= n; }, limit);
  }

 private:
  int command(const std::string& verb, std::string* out) {
    return run_command(
        std::string(kPostfix) + " -c " + shell_quote((dir_ / "conf").string()) + " " + verb, out,
        true, 30s);
  }
  void set_access_file(const std::string& text) {
    write_file(dir_ / "conf" / "rcpt_access", text.empty() ? "# no entries\n" : text);
  }

  fs::path dir_;
  std::uint16_t port_;
  bool started_ = false;
  std::string start_output_;
};

// One header field's value from a message as Postfix stored it (LF line ends), or "".
std::string header_value(const std::string& msg, const std::string& name) {
  const std::string needle = "\n" + name + ": ";
  const std::string head = "\n" + msg.substr(0, msg.find("\n\n"));
  const auto p = head.find(needle);
  if (p == std::string::npos) return {};
  const auto start = p + needle.size();
  return head.substr(start, head.find('\n', start) - start);
}

class PostfixTarget : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(kPostfix)) GTEST_SKIP() << "postfix is not installed (scripts/install-deps.sh)";
    if (::geteuid() != 0) GTEST_SKIP() << "starting a private Postfix instance needs root";
    for (const char* p : {"mime", "store", "http"})
      if (!plugin_built(p)) GTEST_SKIP() << "the " << p << " plugin is not built";
  }
  temp_dir tmp_;
};

// The staging gateway relays to Postfix: the delivered copy has the rewritten envelope
// (Postfix's Return-Path and Delivered-To), the rewritten headers, the body untouched
// (dot-stuffing undone), and a DKIM signature made after the rewrite that dkimpy verifies
// on the copy Postfix stored.
TEST_F(PostfixTarget, RewrittenSignedMailArrivesAndTheSignatureVerifiesWithDkimpy) {
  if (!python_has("dkim")) GTEST_SKIP() << "python3-dkim (dkimpy) is not installed";
  for (const char* p : {"rewrite", "auth"})
    if (!plugin_built(p)) GTEST_SKIP() << "the " << p << " plugin is not built";
  const fs::path key = tmp_.path() / "dkim.pem";
  const fs::path txt = tmp_.path() / "keygen.out";
  std::string out;
  ASSERT_EQ(dkim_keygen(key, txt, &out), 0) << out;
  postfix_target pf(tmp_.path() / "postfix", "");
  ASSERT_TRUE(pf.start()) << pf.log();
  fs::create_directories(tmp_.path() / "gw");
  sluice_process s(tmp_.path() / "gw", staging_gateway_config(key, "qa@example.org", pf.address()));
  ASSERT_TRUE(s.running()) << s.log();
  const std::string msg = invoice_message("invoice-postfix@app.example");
  const std::string sent =
      smtplib_send(tmp_.path(), s.endpoints("smtp").at(0), "bounces@app.example",
                   {"customer@real.example", "other@real.example"}, {msg});
  ASSERT_EQ(sent.substr(0, 3), "250") << sent;
  ASSERT_TRUE(pf.wait_for(1)) << s.log() << pf.log();
  std::this_thread::sleep_for(500ms);  // a duplicate delivery would show up here
  const auto got = pf.delivered();
  ASSERT_EQ(got.size(), 1u) << pf.log();
  const std::string& m = got[0];
  // The envelope as Postfix saw it: two recipients became one, the sender follows the From
  // override.
  EXPECT_EQ(header_value(m, "Return-Path"), "<noreply@staging.example>") << m;
  EXPECT_EQ(header_value(m, "Delivered-To"), "qa@example.org") << m;
  EXPECT_NE(m.find("from gw.test (localhost [127.0.0.1])"), std::string::npos) << m;
  EXPECT_EQ(header_value(m, "From"), "\"Jane Doe\" <noreply@staging.example>") << m;
  EXPECT_EQ(header_value(m, "X-Original-From"), "jane@app.example") << m;
  EXPECT_EQ(header_value(m, "Subject"), "[STAGING] Your invoice") << m;
  // Postfix adds its own X-Original-To (the recipient it was given) above; the gateway's
  // records the original recipients.
  EXPECT_EQ(header_value(m, "X-Original-To"), "qa@example.org") << m;
  EXPECT_NE(m.find("\nX-Original-To: customer@real.example"), std::string::npos) << m;
  EXPECT_EQ(header_value(m, "Message-ID"), "<invoice-postfix@app.example>") << m;
  EXPECT_NE(m.find("\n.a line that starts with a dot\n"), std::string::npos) << m;
  EXPECT_NE(m.find("DKIM-Signature: v=1; a=rsa-sha256"), std::string::npos) << m;
  // dkimpy verifies the copy Postfix delivered (LF line ends turned back into CRLF, as on
  // the wire) ...
  const auto files = pf.delivered_files();
  ASSERT_EQ(files.size(), 1u);
  std::string v;
  EXPECT_EQ(dkimpy_verify(tmp_.path(), files[0], txt, false, &v), 0) << v << m;
  EXPECT_NE(v.find("verified"), std::string::npos) << v;
  // ... and not once the signed Subject is changed by one letter.
  std::string bad;
  EXPECT_EQ(dkimpy_verify(tmp_.path(), files[0], txt, true, &bad), 1) << bad;
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// Postfix answers RCPT with its own 450 (for later@) and 550 (for nobody@): ok@ is delivered
// at once, nobody@ is a permanent failure recorded with Postfix's exact reply, later@ is
// retried from the spool until Postfix accepts it, and nobody receives the message twice.
TEST_F(PostfixTarget, PostfixsTemporaryReplyIsRetriedAndItsPermanentReplyRecorded) {
  postfix_target pf(tmp_.path() / "postfix",
                    "later@example.org 450 4.2.0 greylisted, try again later\n"
                    "nobody@example.org 550 5.1.1 no such user here\n");
  ASSERT_TRUE(pf.start()) << pf.log();
  fs::create_directories(tmp_.path() / "gw");
  // Postfix's smtpd reads the access table when its process starts and one process serves
  // one session here; without connection reuse every attempt meets the current table.
  sluice_process s(tmp_.path() / "gw", store_and_relay_config(pf.address(), 0));
  ASSERT_TRUE(s.running()) << s.log();
  const std::string sent =
      smtplib_send(tmp_.path(), s.endpoints("smtp").at(0), "app@example.com",
                   {"ok@example.org", "later@example.org", "nobody@example.org"},
                   {"From: App <app@example.com>\r\nTo: ok@example.org\r\nSubject: greylist\r\n"
                    "Message-ID: <greylist@example.com>\r\n\r\nHello.\r\n"});
  const auto ids = queued_ids(sent);
  ASSERT_EQ(ids.size(), 1u) << sent;
  const std::string id = ids[0];

  // First attempts: ok@ delivered, later@ deferred with Postfix's 450, nobody@ failed.
  ASSERT_TRUE(pf.wait_for(1)) << s.log() << pf.log();
  ASSERT_TRUE(eventually([&] { return deliveries(s, id).size() >= 2; })) << s.log();
  {
    const auto log = deliveries(s, id);
    const auto& first = log.at(0).as_object();
    EXPECT_EQ(first.at("Stage").as_string(), "relay");
    EXPECT_EQ(first.at("Status").as_string(), "retry") << json::serialize(log);
    std::map<std::string, json::object> by_rcpt;
    for (const auto& r : first.at("Details").at("recipients").as_array())
      by_rcpt[std::string(r.at("rcpt").as_string())] = r.as_object();
    ASSERT_EQ(by_rcpt.size(), 3u) << json::serialize(first);
    EXPECT_EQ(by_rcpt["ok@example.org"].at("status").as_string(), "delivered");
    EXPECT_EQ(by_rcpt["later@example.org"].at("status").as_string(), "deferred");
    EXPECT_EQ(by_rcpt["later@example.org"].at("code").as_int64(), 450);
    EXPECT_EQ(by_rcpt["later@example.org"].at("text").as_string(),
              "<later@example.org>: Recipient address rejected: greylisted, try again later");
    EXPECT_EQ(by_rcpt["nobody@example.org"].at("status").as_string(), "failed");
    EXPECT_EQ(by_rcpt["nobody@example.org"].at("code").as_int64(), 550);
    EXPECT_EQ(by_rcpt["nobody@example.org"].at("enhanced").as_string(), "5.1.1");
    EXPECT_EQ(by_rcpt["nobody@example.org"].at("text").as_string(),
              "<nobody@example.org>: Recipient address rejected: no such user here");
    // Later attempts send only to later@.
    const auto& second = log.at(1).as_object();
    ASSERT_EQ(second.at("Details").at("recipients").as_array().size(), 1u)
        << json::serialize(second);
    EXPECT_EQ(second.at("Details").at("recipients").at(0).at("rcpt").as_string(),
              "later@example.org");
  }
  EXPECT_EQ(pf.delivered().size(), 1u);

  // Postfix now accepts later@: the next retry delivers it, and the message is settled with
  // nobody@'s permanent failure.
  pf.set_access("nobody@example.org 550 5.1.1 no such user here\n");
  ASSERT_TRUE(pf.wait_for(2)) << s.log() << pf.log();
  json::array log;
  ASSERT_TRUE(eventually([&] {
    log = deliveries(s, id);
    return !log.empty() && log.back().at("Status").as_string() != "retry";
  })) << json::serialize(log);
  const auto& last = log.back().as_object();
  EXPECT_EQ(last.at("Details").at("delivered").as_int64(), 1) << json::serialize(last);
  EXPECT_TRUE(last.at("NextAttempt").is_null()) << json::serialize(last);
  std::this_thread::sleep_for(1500ms);  // longer than the retry interval: nothing more comes
  std::multiset<std::string> to;
  for (const auto& m : pf.delivered())
    to.insert(header_value(m, "Delivered-To"));
  EXPECT_EQ(to, (std::multiset<std::string>{"later@example.org", "ok@example.org"}));
  EXPECT_NE(pf.log().find("to=<later@example.org>, relay=virtual"), std::string::npos) << pf.log();
  EXPECT_EQ(s.stop(), 0) << s.log();
}

// Postfix is down while five messages arrive, then starts: every message arrives exactly
// once, and the delivery log shows the attempts that failed while it was down.
TEST_F(PostfixTarget, PostfixDownThenUpDeliversEveryMessageOnce) {
  postfix_target pf(tmp_.path() / "postfix", "");
  fs::create_directories(tmp_.path() / "gw");
  sluice_process s(tmp_.path() / "gw", store_and_relay_config(pf.address()));
  ASSERT_TRUE(s.running()) << s.log();
  std::vector<std::string> msgs;
  for (int i = 1; i <= 5; ++i)
    msgs.push_back("From: App <app@example.com>\r\nTo: user@example.org\r\nSubject: down " +
                   std::to_string(i) + "\r\nMessage-ID: <pf-down-" + std::to_string(i) +
                   "@example.com>\r\n\r\nMessage " + std::to_string(i) + ".\r\n");
  const auto ids = queued_ids(smtplib_send(tmp_.path(), s.endpoints("smtp").at(0),
                                           "app@example.com", {"user@example.org"}, msgs));
  ASSERT_EQ(ids.size(), 5u);
  for (const auto& id : ids)
    ASSERT_TRUE(eventually([&] { return deliveries(s, id).size() >= 2; })) << id << s.log();

  ASSERT_TRUE(pf.start()) << pf.log();
  ASSERT_TRUE(pf.wait_for(5)) << s.log() << pf.log();
  for (const auto& id : ids) {
    json::array log;
    ASSERT_TRUE(eventually([&] {
      log = deliveries(s, id);
      return !log.empty() && log.back().at("Status").as_string() == "done";
    })) << id
        << json::serialize(log);
    ASSERT_GE(log.size(), 3u) << json::serialize(log);
    for (std::size_t i = 0; i + 1 < log.size(); ++i)
      EXPECT_EQ(log[i].at("Status").as_string(), "retry") << json::serialize(log);
  }
  std::this_thread::sleep_for(1500ms);
  std::set<std::string> subjects;
  const auto got = pf.delivered();
  EXPECT_EQ(got.size(), 5u);
  for (const auto& m : got)
    subjects.insert(header_value(m, "Subject"));
  EXPECT_EQ(subjects, (std::set<std::string>{"down 1", "down 2", "down 3", "down 4", "down 5"}));
  EXPECT_EQ(s.stop(), 0) << s.log();
}

}  // namespace
