// crash_test.cpp — nothing acknowledged is lost: sluice is killed with SIGKILL while
// clients send mail; after a restart every message that got a 250 is in the store,
// byte-identical, exactly once.
//
// The load is bounded (at most 4000 messages or 20 s); messages of 1 KB, 20 KB and 200 KB
// (the last spill to disk while they arrive). The store is read back through the real store
// plugin, loaded in this process, so "byte-identical" means what its mailbox service returns.
#include <gtest/gtest.h>

#include <signal.h>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "sluice_test.hpp"
#include "store_reader.hpp"

namespace {

namespace asio = boost::asio;
using namespace sluice;

constexpr const char* config = R"(log: {level: warn}
spool: {path: ./spool, spill_threshold: 64KB}
services:
  - {name: default, plugin: store, path: ./mail.db}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages:
      - {plugin: store, mailbox: default}
)";

std::string make_message(int client, int seq, std::mt19937& rng) {
  static constexpr std::size_t sizes[] = {1024, 20 * 1024, 200 * 1024};
  const std::size_t size = sizes[(client + seq) % 3];
  std::string m = "From: load@example.org\r\nTo: sink@example.org\r\nMessage-ID: <crash-" +
                  std::to_string(client) + "-" + std::to_string(seq) +
                  "@example.org>\r\nSubject: crash test " + std::to_string(seq) + "\r\n\r\n";
  std::uniform_int_distribution<int> ch('a', 'z');
  while (m.size() < size) {
    std::string line(76, 'x');
    for (auto& c : line)
      c = static_cast<char>(ch(rng));
    m += line + "\r\n";
  }
  return m;
}

struct acked {
  std::string id;
  std::string bytes;
};

// Sends messages over one connection until the server goes away or the budget is spent.
void client(const std::string& endpoint, int n, std::atomic<int>& budget, std::mutex& mu,
            std::vector<acked>& out) {
  std::mt19937 rng(static_cast<unsigned>(n) * 7919u);
  try {
    sluice::test::line_client c(endpoint, std::chrono::seconds(5));
    if (!c.read_reply().starts_with("220")) return;
    c.send("EHLO crash.test\r\n");
    if (!c.read_reply().starts_with("250")) return;
    for (int seq = 0; budget.fetch_sub(1) > 0; ++seq) {
      auto msg = make_message(n, seq, rng);
      c.send("MAIL FROM:<load@example.org>\r\nRCPT TO:<sink@example.org>\r\nDATA\r\n");
      if (!c.read_reply().starts_with("250") || !c.read_reply().starts_with("250") ||
          !c.read_reply().starts_with("354")) {
        return;
      }
      c.send(msg + ".\r\n");
      auto reply = c.read_reply();
      if (!reply.starts_with("250")) return;
      auto pos = reply.find("queued as ");
      if (pos == std::string::npos) return;
      std::lock_guard lock(mu);
      out.push_back({reply.substr(pos + 10), std::move(msg)});
    }
  } catch (const std::exception&) {
    // The server was killed under us: expected.
  }
}

TEST(crash, sigkill_under_load_loses_nothing_acknowledged) {
  sluice::test::temp_dir dir;
  std::vector<acked> acks;
  {
    sluice::test::sluice_process proc(dir.path(), config);
    ASSERT_TRUE(proc.running());
    const auto endpoint = proc.endpoints("smtp").at(0);
    std::atomic<int> budget{4000};
    std::mutex mu;
    std::vector<std::thread> clients;
    for (int i = 0; i < 8; ++i) {
      clients.emplace_back([&, i] { client(endpoint, i, budget, mu, acks); });
    }
    // Kill in the middle of the load: once a good number were acknowledged (bounded wait).
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      {
        std::lock_guard lock(mu);
        if (acks.size() >= 300) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    proc.kill();  // SIGKILL: no drain, no flush
    for (auto& t : clients)
      t.join();
  }
  ASSERT_GE(acks.size(), 300u) << "the load did not get far enough before the deadline";

  // Restart over the same data: the store must open and recover, then stop cleanly.
  {
    sluice::test::sluice_process again(dir.path(), config);
    ASSERT_TRUE(again.running()) << again.log();
    EXPECT_EQ(again.stop(), 0) << again.log();
  }

  // Read everything back through the store plugin itself.
  sluice::test::store_reader store(dir.path(), "mail.db");

  std::set<std::string> ids;
  std::size_t missing = 0, different = 0;
  for (const auto& a : acks) {
    EXPECT_TRUE(ids.insert(a.id).second) << "acknowledged twice: " << a.id;
    auto raw = store.raw(a.id, false);
    if (!raw) {
      ++missing;
    } else if (*raw != a.bytes) {
      ++different;
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acks.size() << " acknowledged messages";
  EXPECT_EQ(different, 0u) << "of " << acks.size() << " acknowledged messages";

  // Each message (by its unique Message-ID) is stored at most once.
  std::map<std::string, int> seen;
  for (auto& m : store.all())
    ++seen[m.message_id];
  for (auto& [mid, n] : seen)
    EXPECT_EQ(n, 1) << mid;
  EXPECT_GE(seen.size(), acks.size());
  std::cout << "acknowledged before SIGKILL: " << acks.size()
            << ", stored after restart: " << seen.size() << "\n";
}

}  // namespace
