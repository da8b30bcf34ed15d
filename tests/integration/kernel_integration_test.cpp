// kernel_integration_test.cpp — the kernel through the real binary: SIGHUP reload swaps
// pipelines while listeners and open sessions keep running, a bad reload keeps the old
// configuration, JSON logs, and deferred stages retried from the spool across a SIGKILL.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <sstream>
#include <thread>

#include "sluice_test.hpp"

namespace {

using sluice::test::read_file;
using sluice::test::sluice_process;
using sluice::test::smtp_send;
using sluice::test::write_file;

std::string config_with(const std::string& verdict_stage, const std::string& log_format = "text") {
  return "log: {format: " + log_format +
         ", level: info}\n"
         "spool: {path: ./spool}\n"
         "listeners:\n"
         "  - {name: smtp, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:0\"]}\n"
         "pipelines:\n"
         "  - name: p\n"
         "    stages:\n" +
         verdict_stage + "      - {plugin: test_sink, dir: ./sink}\n";
}

const std::string message = "Subject: reload\r\n\r\nbody\r\n";

template <class F>
bool eventually(F cond, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

TEST(reload, sighup_swaps_pipelines_and_keeps_sessions) {
  const std::string rejecting =
      "      - {plugin: test_verdict, verdict: reject, when_rcpt: blocked@example.org}\n";
  sluice_process proc(config_with(rejecting));
  ASSERT_TRUE(proc.running());
  const auto ep = proc.endpoints("smtp").at(0);
  EXPECT_TRUE(smtp_send(ep, "a@example.org", {"blocked@example.org"}, message).starts_with("550"));

  // A session opened before the reload stays usable after it.
  sluice::test::line_client early(ep);
  ASSERT_TRUE(early.read_reply().starts_with("220"));
  early.send("EHLO early\r\n");
  ASSERT_TRUE(early.read_reply().starts_with("250"));

  write_file(proc.dir() / "sluice.yaml", config_with(""));
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return proc.log().find("configuration reloaded") != std::string::npos;
  })) << proc.log();
  EXPECT_TRUE(smtp_send(ep, "a@example.org", {"blocked@example.org"}, message).starts_with("250"))
      << proc.log();

  early.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<blocked@example.org>\r\nDATA\r\n");
  EXPECT_TRUE(early.read_reply().starts_with("250"));
  EXPECT_TRUE(early.read_reply().starts_with("250"));
  EXPECT_TRUE(early.read_reply().starts_with("354"));
  early.send(message + ".\r\n");
  EXPECT_TRUE(early.read_reply().starts_with("250")) << proc.log();
  EXPECT_EQ(proc.endpoints("smtp").at(0), ep);
}

TEST(reload, bad_config_keeps_the_running_one) {
  sluice_process proc(config_with(""));
  ASSERT_TRUE(proc.running());
  const auto ep = proc.endpoints("smtp").at(0);
  write_file(proc.dir() / "sluice.yaml", config_with("      - {plugin: nosuch}\n"));
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return proc.log().find("reload failed") != std::string::npos; }))
      << proc.log();
  EXPECT_NE(proc.log().find("unknown stage plugin \\\"nosuch\\\""), std::string::npos)
      << proc.log();
  EXPECT_TRUE(smtp_send(ep, "a@example.org", {"b@example.org"}, message).starts_with("250"));
}

// SMTP into pipeline p, and an http listener whose section ends with http_extra.
std::string http_config(const std::string& http_extra, const std::string& more_pipelines) {
  return "spool: {path: ./spool}\n"
         "listeners:\n"
         "  - {name: smtp, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:0\"]}\n"
         "  - {name: http, plugin: http, listen: [\"127.0.0.1:0\"]" +
         http_extra +
         "}\n"
         "services:\n"
         "  - {name: default, plugin: store, path: ./mail.db}\n"
         "pipelines:\n"
         "  - {name: p, stages: [{plugin: store}]}\n" +
         more_pipelines;
}

// Listener sections that name a pipeline (http's release_pipeline) are checked against the
// pipelines of the file being loaded, not those still in force: a reload that adds the
// pipeline and names it is valid; one that names a pipeline nobody defines is refused.
TEST(reload, a_release_pipeline_is_checked_against_the_new_pipelines) {
  sluice_process proc(http_config("", ""));
  ASSERT_TRUE(proc.running());
  write_file(
      proc.dir() / "sluice.yaml",
      http_config(", release_pipeline: out", "  - {name: out, stages: [{plugin: store}]}\n"));
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return proc.log().find("configuration reloaded") != std::string::npos ||
           proc.log().find("reload failed") != std::string::npos;
  }));
  EXPECT_EQ(proc.log().find("reload failed"), std::string::npos) << proc.log();
  write_file(proc.dir() / "sluice.yaml", http_config(", release_pipeline: nowhere", ""));
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return proc.log().find("reload failed") != std::string::npos; }))
      << proc.log();
  EXPECT_NE(proc.log().find("no pipeline named \\\"nowhere\\\""), std::string::npos) << proc.log();
}

// The running http listener keeps its release_pipeline until a restart, whatever the new
// file's http section says: a reload that drops that pipeline is refused even when the new
// section no longer names it.
TEST(reload, a_running_listeners_release_pipeline_must_stay) {
  const std::string out = "  - {name: out, stages: [{plugin: store}]}\n";
  sluice_process proc(http_config(", release_pipeline: out", out));
  ASSERT_TRUE(proc.running()) << proc.log();
  write_file(proc.dir() / "sluice.yaml", http_config("", ""));
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return proc.log().find("configuration reloaded") != std::string::npos ||
           proc.log().find("reload failed") != std::string::npos;
  }));
  EXPECT_NE(proc.log().find("listener \\\"http\\\" submits into pipeline \\\"out\\\""),
            std::string::npos)
      << proc.log();
  EXPECT_EQ(proc.log().find("configuration reloaded"), std::string::npos) << proc.log();
  // Keeping the pipeline while dropping it from the http section is a valid reload.
  write_file(proc.dir() / "sluice.yaml", http_config("", out));
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return proc.log().find("configuration reloaded") != std::string::npos;
  })) << proc.log();
}

// A reload that drops the pipeline a running listener uses is refused (every message would
// fail until a restart); one that changes a listener's section is applied to the pipelines
// only, and says so.
TEST(reload, the_listeners_pipeline_must_stay_and_listener_changes_are_named) {
  sluice_process proc(config_with(""));
  ASSERT_TRUE(proc.running());
  const auto ep = proc.endpoints("smtp").at(0);
  std::string renamed = config_with("");
  for (auto pos = renamed.find(" p"); pos != std::string::npos; pos = renamed.find(" p", pos + 3)) {
    if (renamed.compare(pos, 3, " p\n") == 0 || renamed.compare(pos, 3, " p,") == 0)
      renamed.replace(pos, 2, " p2");
  }
  ASSERT_NE(renamed.find("pipeline: p2,"), std::string::npos) << renamed;
  write_file(proc.dir() / "sluice.yaml", renamed);
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] { return proc.log().find("reload failed") != std::string::npos; }))
      << proc.log();
  EXPECT_NE(proc.log().find("listener \\\"smtp\\\" runs pipeline \\\"p\\\""), std::string::npos)
      << proc.log();
  EXPECT_TRUE(smtp_send(ep, "a@example.org", {"b@example.org"}, message).starts_with("250"))
      << proc.log();

  std::string moved = config_with("");
  moved.replace(moved.find("127.0.0.1:0"), 11, "127.0.0.1:1");
  write_file(proc.dir() / "sluice.yaml", moved);
  proc.signal(SIGHUP);
  ASSERT_TRUE(eventually([&] {
    return proc.log().find("configuration reloaded") != std::string::npos;
  })) << proc.log();
  EXPECT_NE(proc.log().find("changed listeners and services keep running as they were until a "
                            "restart listeners=smtp"),
            std::string::npos)
      << proc.log();
  EXPECT_TRUE(smtp_send(ep, "a@example.org", {"b@example.org"}, message).starts_with("250"));
}

TEST(shutdown, sigterm_drains_and_exits_zero) {
  sluice_process proc(config_with(""));
  ASSERT_TRUE(proc.running());
  sluice::test::line_client idle(proc.endpoints("smtp").at(0));
  ASSERT_TRUE(idle.read_reply().starts_with("220"));
  proc.signal(SIGTERM);
  EXPECT_TRUE(idle.read_reply().starts_with("421 4.3.2"));
  int status = proc.stop();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << proc.log();
}

// A drain cut short, by shutdown_timeout or by a second signal, exits 75 (EX_TEMPFAIL), so
// a supervisor sees that sessions were cut off; a message in DATA was not acknowledged.
TEST(shutdown, a_drain_cut_short_exits_75) {
  for (const bool second_signal : {false, true}) {
    SCOPED_TRACE(second_signal ? "second signal" : "shutdown_timeout");
    sluice_process proc((second_signal ? "" : "shutdown_timeout: 300ms\n") + config_with(""));
    ASSERT_TRUE(proc.running());
    sluice::test::line_client busy(proc.endpoints("smtp").at(0));
    ASSERT_TRUE(busy.read_reply().starts_with("220"));
    busy.send("EHLO busy\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n");
    ASSERT_TRUE(busy.read_reply().starts_with("250"));
    ASSERT_TRUE(busy.read_reply().starts_with("250"));
    ASSERT_TRUE(busy.read_reply().starts_with("250"));
    ASSERT_TRUE(busy.read_reply().starts_with("354"));
    busy.send("Subject: never finished\r\n\r\npart of a body\r\n");
    proc.signal(SIGTERM);
    if (second_signal) {
      ASSERT_TRUE(eventually([&] { return proc.log().find("draining") != std::string::npos; }))
          << proc.log();
      ::kill(proc.pid(), SIGINT);
    }
    const int status =
        proc.wait_exit([] {}, std::chrono::seconds(20), std::chrono::milliseconds(20));
    ASSERT_TRUE(WIFEXITED(status)) << status << proc.log();
    EXPECT_EQ(WEXITSTATUS(status), 75) << proc.log();
    EXPECT_NE(proc.log().find("stopped before the drain finished"), std::string::npos)
        << proc.log();
    EXPECT_NE(
        proc.log().find(second_signal ? "second signal: stopping now" : "shutdown timeout reached"),
        std::string::npos)
        << proc.log();
  }
}

// Signals keep coming while sluice drains and tears down (an impatient supervisor, a
// shell's repeated Ctrl-C, a reload racing the stop): each is handled or ignored, none
// takes its default action half-way through the teardown, and the exit status is 0 (or
// 75 when a second signal cut the drain short).
// Bounded: 25 rounds, each at most 15 s and 100000 signals.
TEST(shutdown, a_storm_of_signals_never_kills_the_teardown) {
  int total = 0;
  for (int round = 0; round < 25; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    sluice_process proc(config_with(""));
    ASSERT_TRUE(proc.running());
    ASSERT_TRUE(smtp_send(proc.endpoints("smtp").at(0), "a@example.org", {"b@example.org"}, message)
                    .starts_with("250"));
    const int pid = proc.pid();
    int sent = 0;
    const int signals[] = {SIGTERM, SIGINT, SIGHUP};
    const int status = proc.wait_exit(
        [&] {
          if (sent < 100000) ::kill(pid, signals[sent++ % 3]);
        },
        std::chrono::seconds(15), std::chrono::microseconds(50));
    // A round may end after its first signal when this loop is descheduled while sluice
    // drains (it did once in CI on a loaded machine); the storm is checked over all rounds.
    total += sent;
    ASSERT_TRUE(WIFEXITED(status))
        << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0) << " after " << sent
        << " signals\n"
        << proc.log();
    EXPECT_TRUE(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 75)
        << WEXITSTATUS(status) << proc.log();
    EXPECT_NE(proc.log().find("stopped"), std::string::npos) << proc.log();
  }
  EXPECT_GT(total, 25 * 2) << "the signals did not come as a storm";
}

TEST(logging, json_lines_parse) {
  sluice_process proc(config_with("", "json"));
  ASSERT_TRUE(proc.running());
  smtp_send(proc.endpoints("smtp").at(0), "a@example.org", {"b@example.org"}, message);
  proc.stop();
  std::istringstream in(proc.log());
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    boost::system::error_code ec;
    auto v = boost::json::parse(line, ec);
    ASSERT_FALSE(ec) << "not JSON: " << line;
    ASSERT_TRUE(v.is_object());
    EXPECT_TRUE(v.as_object().contains("ts"));
    EXPECT_TRUE(v.as_object().contains("level"));
    EXPECT_TRUE(v.as_object().contains("msg"));
    ++lines;
  }
  EXPECT_GT(lines, 3);
}

// Runs `sluice serve -c config` in the foreground (bounded: 20 s) for a start that must fail;
// returns its exit status, with stdout and stderr in `out`.
int serve_until_exit(const std::filesystem::path& config, std::string& out) {
  return sluice::test::run_command(sluice::test::shell_quote(sluice::test::sluice_binary()) +
                                       " serve -c " + sluice::test::shell_quote(config.string()) +
                                       " --plugin-dir " +
                                       sluice::test::shell_quote(sluice::test::test_plugin_dir()),
                                   &out, true, std::chrono::seconds(20));
}

// An address that cannot be bound (here: one this test holds) stops serve with exit 71 and an
// error naming the listener and where it is configured, also when the address is not
// written in the file (a plugin's default).
TEST(startup, an_address_in_use_names_the_listener_and_its_location) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const std::string port = std::to_string(ntohs(sa.sin_port));
  sluice::test::temp_dir dir;
  write_file(dir.path() / "sluice.yaml",
             "spool: {path: ./spool}\n"
             "listeners:\n"
             "  - {name: free, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:0\"]}\n"
             "  - {name: taken, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:" +
                 port +
                 "\"]}\n"
                 "pipelines:\n"
                 "  - {name: p, stages: [{plugin: test_sink, dir: ./sink}]}\n");
  std::string out;
  int rc = serve_until_exit(dir.path() / "sluice.yaml", out);
  ::close(fd);
  EXPECT_EQ(rc, 71) << out;
  EXPECT_NE(out.find("sluice.yaml:4:5: listeners[1] (listener \"taken\"): listen 127.0.0.1:" +
                     port + ": Address already in use"),
            std::string::npos)
      << out;
}

// One process per spool: a second serve on the same spool directory is refused (it would
// delete the first one's spilled bodies and run its queue twice); the first keeps working.
TEST(startup, a_second_sluice_on_the_same_spool_is_refused) {
  sluice_process first(config_with(""));
  ASSERT_TRUE(first.running());
  std::string out;
  int rc = serve_until_exit(first.dir() / "sluice.yaml", out);
  EXPECT_EQ(rc, 71) << out;
  EXPECT_NE(out.find("is in use by another running sluice (spool.path must differ)"),
            std::string::npos)
      << out;
  EXPECT_TRUE(smtp_send(first.endpoints("smtp").at(0), "a@example.org", {"b@example.org"}, message)
                  .starts_with("250"));
  EXPECT_EQ(first.stop(), 0) << first.log();
}

// A store database the system cannot use is a storage error, not a configuration error: serve
// exits 74 (EX_IOERR) naming the section, the file and SQLite's reason.
TEST(startup, a_damaged_store_database_is_a_storage_error_at_its_section) {
  sluice::test::temp_dir dir;
  write_file(dir.path() / "mail.db", std::string(8192, 'x'));
  write_file(dir.path() / "sluice.yaml",
             "spool: {path: ./spool}\n"
             "listeners:\n"
             "  - {name: smtp, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:0\"]}\n"
             "services:\n"
             "  - {name: default, plugin: store, path: ./mail.db}\n"
             "pipelines:\n"
             "  - {name: p, stages: [{plugin: store}]}\n");
  std::string out;
  int rc = serve_until_exit(dir.path() / "sluice.yaml", out);
  EXPECT_EQ(rc, 74) << out;
  EXPECT_NE(out.find("sluice: storage error: "), std::string::npos) << out;
  EXPECT_NE(out.find("sluice.yaml:5:5: services[0]: cannot open the store database"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("not a database"), std::string::npos) << out;
  EXPECT_EQ(out.find("configuration error"), std::string::npos) << out;
}

TEST(spool, deferred_stage_retries_across_a_sigkill) {
  const std::string cfg =
      "log: {level: info}\n"
      "spool: {path: ./spool}\n"
      "listeners:\n"
      "  - {name: smtp, plugin: smtp, pipeline: p, listen: [\"127.0.0.1:0\"]}\n"
      "pipelines:\n"
      "  - name: p\n"
      "    stages:\n"
      "      - {plugin: test_sink, dir: ./sink}\n"
      "      - plugin: test_deferred\n"
      "        log: attempts.log\n"
      "        fail_times: 2\n"
      "        retry: {initial: 1500ms, max: 2s, lifetime: 1h}\n";
  sluice::test::temp_dir dir;
  std::string id;
  {
    sluice_process proc(dir.path(), cfg);
    ASSERT_TRUE(proc.running());
    auto reply =
        smtp_send(proc.endpoints("smtp").at(0), "a@example.org", {"b@example.org"}, message);
    ASSERT_TRUE(reply.starts_with("250")) << reply;
    id = reply.substr(reply.find("queued as ") + 10);
    // First attempt (immediate) fails; kill before the second one is due.
    ASSERT_TRUE(eventually([&] {
      return read_file(dir.path() / "attempts.log").find(" 1 tempfail") != std::string::npos;
    }));
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "spool/queue" / (id + ".json")));
    proc.kill();
  }
  sluice_process again(dir.path(), cfg);
  ASSERT_TRUE(again.running());
  ASSERT_TRUE(eventually(
      [&] {
        return read_file(dir.path() / "attempts.log").find(" 3 ok deferred") != std::string::npos;
      },
      std::chrono::seconds(20)))
      << read_file(dir.path() / "attempts.log") << again.log();
  auto attempts = read_file(dir.path() / "attempts.log");
  EXPECT_NE(attempts.find(id + " 1 tempfail deferred"), std::string::npos) << attempts;
  EXPECT_NE(attempts.find(id + " 2 tempfail deferred"), std::string::npos) << attempts;
  EXPECT_NE(attempts.find(id + " 3 ok deferred"), std::string::npos) << attempts;
  EXPECT_TRUE(eventually(
      [&] { return !std::filesystem::exists(dir.path() / "spool/queue" / (id + ".json")); }));
}

}  // namespace
