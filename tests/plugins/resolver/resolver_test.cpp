// resolver_test.cpp — the resolver plugin, loaded in-process through the real
// plugin loader, against a DNS server on loopback
// (tests/data/resolver/dns_server.py, python3-dnslib) serving
// tests/data/resolver/zone.txt. The server logs every query it receives, so the
// tests can tell cache hits and the TCP retry apart from what reached the wire.
//
// The host runs its io_context on two threads so lookups really cross onto the
// resolver's strand. Every wait is bounded (server start 10 s, each lookup by
// the resolver's timeout).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "plugin_host.hpp"
#include "plugin_loader.hpp"
#include "services_impl.hpp"
#include "sluice/resolver.hpp"
#include "sluice_test.hpp"

namespace sluice::test {
namespace {

namespace asio = boost::asio;

// The zone's server, started once for the whole suite. Its query log is kept in
// log_dir_, which is created before the server starts and outlives it.
class dns_server {
 public:
  dns_server()
      : log_(log_dir_.path() / "queries.log"),
        server_({"/usr/bin/python3",
                 test_data_dir() + "/resolver/dns_server.py",
                 "--zone",
                 test_data_dir() + "/resolver/zone.txt",
                 "--log",
                 log_.string(),
                 "--servfail",
                 "broken.example.test",
                 "--refused",
                 "private.example.test",
                 "--truncate",
                 "big.example.test",
                 "--servfail",
                 "slowbroken.example.test",
                 "--slow",
                 "slow.example.test",
                 "--slow",
                 "slowzero.example.test",
                 "--slow",
                 "slowbroken.example.test",
                 "--delay",
                 "0.3"},
                "dns_server.py", "is python3-dnslib installed?") {}
  int port() const { return server_.port(); }
  // How many queries for (protocol, name, type) reached the server, e.g.
  // ("udp", "cached.example.test.", "A"); protocol "" counts both.
  int count(const std::string& proto, const std::string& name, const std::string& type) const {
    std::ifstream in(log_);
    std::string p, n, t;
    int c = 0;
    while (in >> p >> n >> t) {
      if ((proto.empty() || p == proto) && n == name && t == type) ++c;
    }
    return c;
  }

 private:
  temp_dir log_dir_;
  std::filesystem::path log_;
  ready_server server_;
};

// The --slow names are answered after this long.
constexpr auto kSlow = std::chrono::milliseconds(300);

// The real resolver plugin's service, running on a test host's io_context.
class resolver_host {
 public:
  explicit resolver_host(const std::string& yaml, bool check_only = false) {
    svc_ = host_.make_service("resolver", yaml, "default", check_only);
    resolver_ = host_.registry().get<resolver>();
  }

  // Runs one lookup from outside the io_context and waits for it (bounded by the
  // resolver's own timeout; the wait limit is a safety net).
  template <class T>
  T wait(asio::awaitable<T> op) {
    return host_.run(std::move(op));
  }

  std::shared_ptr<resolver> r() const { return resolver_; }
  std::shared_ptr<service> svc() const { return svc_; }
  asio::io_context& io() { return host_.io(); }

 private:
  plugin_host host_;
  std::shared_ptr<service> svc_;
  std::shared_ptr<resolver> resolver_;
};

class resolver_test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { server_ = new dns_server(); }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static std::string config(const std::string& extra = "") {
    return "servers: [\"127.0.0.1:" + std::to_string(server_->port()) +
           "\"]\ntimeout: 1s\ntries: 2\n" + extra;
  }
  static dns_server* server_;
  friend int resolver_test_server_count(const std::string& name, const std::string& type);
};
dns_server* resolver_test::server_ = nullptr;

int resolver_test_server_count(const std::string& name, const std::string& type) {
  return resolver_test::server_->count("", name, type);
}

std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

TEST_F(resolver_test, txt_concatenates_the_strings_of_each_record) {
  resolver_host h(config());
  auto ans = h.wait(h.r()->txt("example.test"));
  ASSERT_EQ(ans.status, dns_status::ok) << ans.error;
  EXPECT_EQ(sorted(ans.records),
            (std::vector<std::string>{"single", "v=spf1 ip4:192.0.2.0/24 -all"}));
  EXPECT_GT(ans.ttl, 0u);
  EXPECT_LE(ans.ttl, 300u);
  EXPECT_TRUE(ans.error.empty());
}

TEST_F(resolver_test, a_and_aaaa) {
  resolver_host h(config());
  auto a = h.wait(h.r()->a("example.test."));  // trailing dot accepted
  ASSERT_EQ(a.status, dns_status::ok) << a.error;
  EXPECT_EQ(sorted(a.records), (std::vector<std::string>{"192.0.2.1", "192.0.2.2"}));
  EXPECT_EQ(a.ttl, 300u);
  auto aaaa = h.wait(h.r()->aaaa("EXAMPLE.test"));  // case-insensitive
  ASSERT_EQ(aaaa.status, dns_status::ok) << aaaa.error;
  EXPECT_EQ(aaaa.records, (std::vector<std::string>{"2001:db8::1"}));
}

TEST_F(resolver_test, mx_is_sorted_by_preference) {
  resolver_host h(config());
  auto [ans, mx] = h.wait(h.r()->mx("example.test"));
  ASSERT_EQ(ans.status, dns_status::ok) << ans.error;
  ASSERT_EQ(mx.size(), 3u);
  EXPECT_EQ(mx[0].preference, 10);
  EXPECT_EQ(mx[0].host, "mx1.example.test");
  EXPECT_EQ(mx[1].preference, 20);
  EXPECT_EQ(mx[1].host, "mx2.example.test");
  EXPECT_EQ(mx[2].preference, 30);
  EXPECT_EQ(mx[2].host, "mx3.example.test");
  EXPECT_EQ(ans.records,
            (std::vector<std::string>{"mx1.example.test", "mx2.example.test", "mx3.example.test"}));
}

TEST_F(resolver_test, ptr_for_ipv4_and_ipv6_literals) {
  resolver_host h(config());
  auto v4 = h.wait(h.r()->ptr("192.0.2.1"));
  ASSERT_EQ(v4.status, dns_status::ok) << v4.error;
  EXPECT_EQ(v4.records, (std::vector<std::string>{"host1.example.test"}));
  auto v6 = h.wait(h.r()->ptr("2001:db8::1"));
  ASSERT_EQ(v6.status, dns_status::ok) << v6.error;
  EXPECT_EQ(v6.records, (std::vector<std::string>{"host6.example.test"}));
  auto bad = h.wait(h.r()->ptr("not-an-address"));
  EXPECT_EQ(bad.status, dns_status::error);
  EXPECT_FALSE(bad.error.empty());
}

TEST_F(resolver_test, nxdomain_and_nodata_carry_the_negative_ttl) {
  resolver_host h(config());
  auto nx = h.wait(h.r()->a("nope.example.test"));
  EXPECT_EQ(nx.status, dns_status::nxdomain);
  EXPECT_TRUE(nx.records.empty());
  EXPECT_EQ(nx.ttl, 120u);  // min(SOA TTL 300, SOA MINIMUM 120), RFC 2308 §5
  auto nodata = h.wait(h.r()->txt("mx1.example.test"));
  EXPECT_EQ(nodata.status, dns_status::nodata);
  EXPECT_EQ(nodata.ttl, 120u);
  // Cached: a second negative lookup does not reach the server.
  auto again = h.wait(h.r()->a("nope.example.test"));
  EXPECT_EQ(again.status, dns_status::nxdomain);
  EXPECT_EQ(server_->count("", "nope.example.test.", "A"), 1);
}

TEST_F(resolver_test, servfail_is_reported_and_not_cached) {
  resolver_host h(config());
  auto ans = h.wait(h.r()->a("broken.example.test"));
  EXPECT_EQ(ans.status, dns_status::servfail) << ans.error;
  EXPECT_EQ(ans.ttl, 0u);
  int before = server_->count("", "broken.example.test.", "A");
  h.wait(h.r()->a("broken.example.test"));
  EXPECT_GT(server_->count("", "broken.example.test.", "A"), before);
}

TEST_F(resolver_test, refused_is_reported) {
  resolver_host h(config());
  auto ans = h.wait(h.r()->txt("private.example.test"));
  EXPECT_EQ(ans.status, dns_status::refused) << ans.error;
  EXPECT_EQ(ans.ttl, 0u);
}

TEST_F(resolver_test, positive_answers_are_cached_for_their_ttl_but_ttl_0_is_not) {
  resolver_host h(config());
  auto first = h.wait(h.r()->a("cached.example.test"));
  ASSERT_EQ(first.status, dns_status::ok) << first.error;
  EXPECT_EQ(first.ttl, 600u);
  auto second = h.wait(h.r()->a("cached.example.test"));
  ASSERT_EQ(second.status, dns_status::ok);
  EXPECT_EQ(second.records, first.records);
  EXPECT_LE(second.ttl, 600u);
  EXPECT_EQ(server_->count("", "cached.example.test.", "A"), 1);

  for (int i = 0; i < 2; ++i) {
    auto zero = h.wait(h.r()->a("zero.example.test"));
    ASSERT_EQ(zero.status, dns_status::ok) << zero.error;
    EXPECT_EQ(zero.ttl, 0u);
  }
  EXPECT_EQ(server_->count("", "zero.example.test.", "A"), 2);
}

TEST_F(resolver_test, cache_can_be_turned_off) {
  resolver_host h(config("cache: false\n"));
  int before = server_->count("", "mx1.example.test.", "A");
  h.wait(h.r()->a("mx1.example.test"));
  h.wait(h.r()->a("mx1.example.test"));
  EXPECT_EQ(server_->count("", "mx1.example.test.", "A"), before + 2);
}

TEST_F(resolver_test, a_full_cache_evicts_what_expires_soonest) {
  resolver_host h(config("cache_max_entries: 1\n"));
  int before = server_->count("", "example.test.", "AAAA");
  h.wait(h.r()->aaaa("example.test"));        // cached (TTL 300)
  h.wait(h.r()->txt("single.example.test"));  // nxdomain: evicts the AAAA entry
  h.wait(h.r()->aaaa("example.test"));        // must go to the server again
  EXPECT_EQ(server_->count("", "example.test.", "AAAA"), before + 2);
}

TEST_F(resolver_test, truncated_udp_answer_is_retried_over_tcp) {
  resolver_host h(config());
  auto ans = h.wait(h.r()->txt("big.example.test"));
  ASSERT_EQ(ans.status, dns_status::ok) << ans.error;
  ASSERT_EQ(ans.records.size(), 1u);
  EXPECT_EQ(ans.records[0], std::string(200, 'a') + std::string(200, 'b') + std::string(200, 'c'));
  EXPECT_GE(server_->count("udp", "big.example.test.", "TXT"), 1);
  EXPECT_GE(server_->count("tcp", "big.example.test.", "TXT"), 1);
}

TEST_F(resolver_test, concurrent_lookups_from_many_threads) {
  resolver_host h(config("cache: false\n"));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      std::vector<std::future<dns_answer>> futures;
      for (int i = 0; i < 10; ++i) {
        futures.push_back(asio::co_spawn(h.io(), h.r()->a("example.test"), asio::use_future));
      }
      for (auto& f : futures) {
        if (f.wait_for(std::chrono::seconds(20)) == std::future_status::ready &&
            f.get().status == dns_status::ok) {
          ++ok;
        }
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(ok.load(), 40);
}

// Starts `n` identical lookups at once (from outside the io_context) and waits for all.
std::vector<dns_answer> concurrent_txt(resolver_host& h, const std::string& name, int n) {
  std::vector<std::future<dns_answer>> futures;
  for (int i = 0; i < n; ++i)
    futures.push_back(asio::co_spawn(h.io(), h.r()->txt(name), asio::use_future));
  std::vector<dns_answer> out;
  for (auto& f : futures) {
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready) {
      ADD_FAILURE() << "lookup did not complete";
      continue;
    }
    out.push_back(f.get());
  }
  return out;
}

// Waits (bounded) until the server has received `at_least` queries for the name.
void wait_for_queries(const std::string& name, const std::string& type, int at_least) {
  for (int i = 0; i < 100 && resolver_test_server_count(name, type) < at_least; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

TEST_F(resolver_test, identical_concurrent_lookups_share_one_query) {
  // No cache: only the in-flight sharing can save the queries.
  resolver_host h(config("cache: false\n"));
  const int before = server_->count("", "slow.example.test.", "TXT");
  const auto start = std::chrono::steady_clock::now();
  auto answers = concurrent_txt(h, "slow.example.test", 5);
  const auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(answers.size(), 5u);
  for (const auto& a : answers) {
    EXPECT_EQ(a.status, dns_status::ok) << a.error;
    EXPECT_EQ(a.records, (std::vector<std::string>{"slow record"}));
    EXPECT_EQ(a.ttl, 300u);
  }
  EXPECT_EQ(server_->count("", "slow.example.test.", "TXT"), before + 1);
  // One round trip for all five, not five after one another (1.5 s).
  EXPECT_LT(took, kSlow * 4);
  // Once settled, the next lookup (cache off) is a query of its own again.
  h.wait(h.r()->txt("slow.example.test"));
  EXPECT_EQ(server_->count("", "slow.example.test.", "TXT"), before + 2);
}

TEST_F(resolver_test, a_shared_failure_reaches_every_caller_and_is_not_cached) {
  resolver_host h(config());
  const int before = server_->count("", "slowbroken.example.test.", "TXT");
  auto answers = concurrent_txt(h, "slowbroken.example.test", 3);
  ASSERT_EQ(answers.size(), 3u);
  for (const auto& a : answers)
    EXPECT_EQ(a.status, dns_status::servfail) << a.error;
  EXPECT_EQ(server_->count("", "slowbroken.example.test.", "TXT"), before + 1);
  h.wait(h.r()->txt("slowbroken.example.test"));
  EXPECT_EQ(server_->count("", "slowbroken.example.test.", "TXT"), before + 2);
}

TEST_F(resolver_test, a_lookup_joins_a_prefetch_in_flight_and_the_answer_is_cached) {
  resolver_host h(config());
  const int before = server_->count("", "slow.example.test.", "TXT");
  h.r()->prefetch_txt("SLOW.example.test.");  // returns at once
  h.r()->prefetch_txt("slow.example.test");   // already in flight: no second query
  auto joined = h.wait(h.r()->txt("slow.example.test"));
  ASSERT_EQ(joined.status, dns_status::ok) << joined.error;
  EXPECT_EQ(joined.records, (std::vector<std::string>{"slow record"}));
  EXPECT_EQ(server_->count("", "slow.example.test.", "TXT"), before + 1);
  // TTL 300: cached like any answer; a later prefetch of a cached name sends nothing.
  h.r()->prefetch_txt("slow.example.test");
  auto cached = h.wait(h.r()->txt("slow.example.test"));
  EXPECT_EQ(cached.status, dns_status::ok);
  EXPECT_EQ(server_->count("", "slow.example.test.", "TXT"), before + 1);
}

TEST_F(resolver_test, a_prefetched_ttl_0_answer_is_shared_in_flight_but_never_kept) {
  {
    resolver_host h(config());
    const int before = server_->count("", "slowzero.example.test.", "TXT");
    // Joined while in flight: the TTL 0 answer is the current answer for both.
    h.r()->prefetch_txt("slowzero.example.test");
    auto joined = h.wait(h.r()->txt("slowzero.example.test"));
    ASSERT_EQ(joined.status, dns_status::ok) << joined.error;
    EXPECT_EQ(joined.ttl, 0u);
    EXPECT_EQ(server_->count("", "slowzero.example.test.", "TXT"), before + 1);
  }
  {
    resolver_host h(config());
    const int before = server_->count("", "slowzero.example.test.", "TXT");
    // A prefetch that settled before anyone asked: the answer was not kept.
    h.r()->prefetch_txt("slowzero.example.test");
    wait_for_queries("slowzero.example.test.", "TXT", before + 1);
    std::this_thread::sleep_for(kSlow * 2);  // its answer has arrived by now
    auto fresh = h.wait(h.r()->txt("slowzero.example.test"));
    EXPECT_EQ(fresh.status, dns_status::ok);
    EXPECT_EQ(server_->count("", "slowzero.example.test.", "TXT"), before + 2);
    // Its answers have TTL 0: further hints for it are skipped (they could only cost queries).
    h.r()->prefetch_txt("slowzero.example.test");
    std::this_thread::sleep_for(kSlow);
    EXPECT_EQ(server_->count("", "slowzero.example.test.", "TXT"), before + 2);
    // A name with a TTL is still prefetched by the same resolver.
    const int slow = server_->count("", "slow.example.test.", "TXT");
    h.r()->prefetch_txt("slow.example.test");
    wait_for_queries("slow.example.test.", "TXT", slow + 1);
    EXPECT_EQ(server_->count("", "slow.example.test.", "TXT"), slow + 1);
  }
}

TEST_F(resolver_test, a_failed_prefetch_is_nobodys_answer) {
  resolver_host h(config());
  const int before = server_->count("", "slowbroken.example.test.", "TXT");
  h.r()->prefetch_txt("slowbroken.example.test");
  // Joins the prefetch, which fails: the caller makes its own lookup (and gets its own
  // SERVFAIL from this server).
  auto a = h.wait(h.r()->txt("slowbroken.example.test"));
  EXPECT_EQ(a.status, dns_status::servfail) << a.error;
  EXPECT_EQ(server_->count("", "slowbroken.example.test.", "TXT"), before + 2);
}

TEST_F(resolver_test, prefetches_are_bounded_and_can_be_turned_off) {
  {
    resolver_host h(config("prefetch_max_in_flight: 1\n"));
    const int slow = server_->count("", "slow.example.test.", "TXT");
    const int zero = server_->count("", "slowzero.example.test.", "TXT");
    h.r()->prefetch_txt("slow.example.test");
    h.r()->prefetch_txt("slowzero.example.test");  // over the bound: dropped
    wait_for_queries("slow.example.test.", "TXT", slow + 1);
    std::this_thread::sleep_for(kSlow * 2);
    EXPECT_EQ(server_->count("", "slow.example.test.", "TXT"), slow + 1);
    EXPECT_EQ(server_->count("", "slowzero.example.test.", "TXT"), zero);
    // Lookups are never bounded by it.
    EXPECT_EQ(h.wait(h.r()->txt("slowzero.example.test")).status, dns_status::ok);
  }
  {
    resolver_host h(config("prefetch_max_in_flight: 0\n"));
    const int before = server_->count("", "slowzero.example.test.", "TXT");
    h.r()->prefetch_txt("slowzero.example.test");
    std::this_thread::sleep_for(kSlow);
    EXPECT_EQ(server_->count("", "slowzero.example.test.", "TXT"), before);
  }
}

TEST_F(resolver_test, a_server_that_never_answers_times_out_in_bounded_time) {
  // A bound UDP socket nobody reads: queries are accepted by the kernel and
  // never answered.
  asio::io_context silent_io;
  asio::ip::udp::socket silent(silent_io,
                               asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const int port = silent.local_endpoint().port();
  resolver_host h("servers: [\"127.0.0.1:" + std::to_string(port) +
                  "\"]\ntimeout: 200ms\ntries: 2\n");
  auto start = std::chrono::steady_clock::now();
  auto ans = h.wait(h.r()->a("example.test"));
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(ans.status, dns_status::timeout) << ans.error;
  EXPECT_EQ(ans.ttl, 0u);
  // c-ares doubles the timeout per round: 200 ms + 400 ms, plus slack for a
  // busy machine.
  EXPECT_GE(took, std::chrono::milliseconds(150));
  EXPECT_LT(took, std::chrono::seconds(5));
}

TEST_F(resolver_test, config_is_validated_and_check_only_registers_nothing) {
  EXPECT_THROW(resolver_host("servers: [\"not-an-ip:53\"]\n"), config_error);
  EXPECT_THROW(resolver_host("servers: [\"127.0.0.1:99999\"]\n"), config_error);
  EXPECT_THROW(resolver_host("tries: 0\n"), config_error);
  EXPECT_THROW(resolver_host("timeout: fast\n"), config_error);
  EXPECT_THROW(resolver_host("cache_max_entries: 0\n"), config_error);
  EXPECT_THROW(resolver_host("prefetch_max_in_flight: -1\n"), config_error);
  EXPECT_THROW(resolver_host("colour: blue\n"), config_error);  // unknown key
  resolver_host h("servers: [\"[::1]:5353\", \"192.0.2.53\"]\nedns: false\n", true);
  EXPECT_NE(h.svc(), nullptr);
  EXPECT_EQ(h.r(), nullptr);  // check_only: not registered, no channel
}

TEST_F(resolver_test, system_default_servers_when_none_are_configured) {
  // Only that a channel can be created from /etc/resolv.conf; no lookup leaves
  // the host.
  resolver_host h("edns: true\n");
  EXPECT_NE(h.r(), nullptr);
}

}  // namespace
}  // namespace sluice::test
