// plugin.cpp — the resolver plugin: the `resolver` service (DNS lookups via
// c-ares).
//
// Service factory "resolver": parses the config, creates one c-ares channel and
// registers it as a `resolver` under the instance name. c-ares runs on the
// host's io_context with no thread per query: its sockets are watched with
// posix::stream_descriptor::async_wait (told by ARES_OPT_SOCK_STATE_CB),
// readiness is fed back through ares_process_fd, and a steady_timer set from
// ares_timeout drives retries and timeouts.
//
// Threading: a c-ares channel is not thread-safe, so every channel call, socket
// watch, timer and the cache live on one strand. Public lookups co_spawn a
// coroutine on that strand and co_await it, which resumes the caller on its own
// executor.
//
// In-flight coalescing: identical lookups (type, name) that are in flight at the same time
// share one query (a "flight"); a prefetch hint starts a flight nobody waits for yet, whose
// answer goes into the cache under the usual TTL rules and to the callers that join it. A
// caller that joined a prefetch that failed makes its own query, so a failed prefetch is
// never anyone's answer.
//
// Failures: the factory throws config_error for bad configuration or a channel
// that cannot be created. At run time nothing throws for DNS outcomes; they
// become a dns_status. In-flight lookups keep the service alive until they
// complete (bounded by timeout × tries); socket and timer handlers hold only a
// weak reference.
#include <ares.h>
#include <ares_dns.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/time.h>

#include <algorithm>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "sluice/plugin.hpp"
#include "sluice/resolver.hpp"

namespace sluice::resolver_plugin {
namespace {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

// Negative answers without an SOA in the authority section (RFC 2308 §5 says
// such answers SHOULD NOT be cached at all; we keep them briefly to damp query
// storms).
constexpr std::uint32_t kNegativeFallbackTtl = 60;
// Upper bound for any cached TTL (RFC 2308 §5 suggests capping; one day is
// common).
constexpr std::uint32_t kMaxTtl = 86400;

// RFC 1035 §3.2.2 / RFC 3596 type codes and the IN class.
constexpr int kTypeA = 1, kTypeSoa = 6, kTypePtr = 12, kTypeMx = 15, kTypeTxt = 16, kTypeAaaa = 28;
constexpr int kClassIn = 1;

struct resolver_options {
  std::vector<ares_addr_port_node> servers;  // empty: c-ares reads /etc/resolv.conf
  std::chrono::milliseconds timeout{2000};
  int tries = 3;
  bool edns = true;
  bool cache = true;
  std::size_t cache_max_entries = 10000;
  std::size_t prefetch_max_in_flight = 256;  // 0: prefetch hints are ignored
};

// "192.0.2.1:53", "192.0.2.1" (port 53), "[2001:db8::1]:53", "2001:db8::1".
std::optional<ares_addr_port_node> parse_server(const std::string& s) {
  ares_addr_port_node node{};
  std::string host = s;
  int port = 53;
  auto parse_port = [&](const std::string& p) {
    if (p.empty() || p.size() > 5 ||
        !std::all_of(p.begin(), p.end(), [](unsigned char c) { return std::isdigit(c); }))
      return false;
    port = std::stoi(p);
    return port > 0 && port < 65536;
  };
  if (!s.empty() && s.front() == '[') {
    auto close = s.find(']');
    if (close == std::string::npos) return std::nullopt;
    host = s.substr(1, close - 1);
    if (close + 1 < s.size()) {
      if (s[close + 1] != ':' || !parse_port(s.substr(close + 2))) return std::nullopt;
    }
  } else if (std::count(s.begin(), s.end(), ':') == 1) {
    auto colon = s.find(':');
    host = s.substr(0, colon);
    if (!parse_port(s.substr(colon + 1))) return std::nullopt;
  }
  if (inet_pton(AF_INET, host.c_str(), &node.addr.addr4) == 1) {
    node.family = AF_INET;
  } else if (inet_pton(AF_INET6, host.c_str(), &node.addr.addr6) == 1) {
    node.family = AF_INET6;
  } else {
    return std::nullopt;
  }
  node.udp_port = port;
  node.tcp_port = port;
  return node;
}

resolver_options parse_options(const config_node& cfg) {
  resolver_options o;
  if (auto servers = cfg.find("servers")) {
    for (const auto& item : servers->items()) {
      auto node = parse_server(item.as_string());
      if (!node) item.fail("expected an IP address with an optional port, like 192.0.2.1:53");
      o.servers.push_back(*node);
    }
    if (o.servers.empty()) servers->fail("expected at least one server");
  }
  o.timeout = cfg.get_duration("timeout", o.timeout);
  if (o.timeout.count() <= 0 || o.timeout > std::chrono::minutes(5)) {
    cfg.at("timeout").fail("expected a duration between 1ms and 5m");
  }
  auto tries = cfg.get_int("tries", o.tries);
  if (tries < 1 || tries > 10) cfg.at("tries").fail("expected a number from 1 to 10");
  o.tries = static_cast<int>(tries);
  o.edns = cfg.get_bool("edns", o.edns);
  o.cache = cfg.get_bool("cache", o.cache);
  auto max = cfg.get_int("cache_max_entries", static_cast<std::int64_t>(o.cache_max_entries));
  if (max < 1) cfg.at("cache_max_entries").fail("expected a positive number");
  o.cache_max_entries = static_cast<std::size_t>(max);
  auto pre =
      cfg.get_int("prefetch_max_in_flight", static_cast<std::int64_t>(o.prefetch_max_in_flight));
  if (pre < 0 || pre > 100000) {
    cfg.at("prefetch_max_in_flight").fail("expected a number from 0 to 100000");
  }
  o.prefetch_max_in_flight = static_cast<std::size_t>(pre);
  return o;
}

// ---- wire-format helpers: TTLs are not exposed by every c-ares parser (TXT,
// MX, PTR) ----

// Skips a (possibly compressed) domain name; returns the offset after it or
// npos.
std::size_t skip_name(const unsigned char* p, std::size_t len, std::size_t off) {
  while (off < len) {
    unsigned char l = p[off];
    if ((l & 0xC0) == 0xC0) return off + 2 <= len ? off + 2 : std::string::npos;
    if (l == 0) return off + 1;
    off += 1 + l;
  }
  return std::string::npos;
}

std::uint16_t get16(const unsigned char* p) {
  return static_cast<std::uint16_t>(p[0] << 8 | p[1]);
}
std::uint32_t get32(const unsigned char* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// Positive: the smallest TTL of the answer section (CNAMEs included, as they
// bound the whole chain). Negative: min(SOA TTL, SOA MINIMUM) from the
// authority section (RFC 2308 §5), or kNegativeFallbackTtl without an SOA.
// nullopt when the message is malformed.
std::optional<std::uint32_t> answer_ttl(const std::vector<unsigned char>& msg, bool negative) {
  const unsigned char* p = msg.data();
  const std::size_t len = msg.size();
  if (len < 12) return std::nullopt;
  std::size_t qd = get16(p + 4), an = get16(p + 6), ns = get16(p + 8);
  std::size_t off = 12;
  for (std::size_t i = 0; i < qd; ++i) {
    off = skip_name(p, len, off);
    if (off == std::string::npos || off + 4 > len) return std::nullopt;
    off += 4;
  }
  std::optional<std::uint32_t> ttl;
  for (std::size_t i = 0; i < an + ns; ++i) {
    off = skip_name(p, len, off);
    if (off == std::string::npos || off + 10 > len) return std::nullopt;
    std::uint16_t type = get16(p + off);
    std::uint32_t rr_ttl = get32(p + off + 4);
    std::size_t rdlen = get16(p + off + 8);
    std::size_t rdata = off + 10;
    if (rdata + rdlen > len) return std::nullopt;
    if (!negative && i < an) {
      ttl = std::min(ttl.value_or(rr_ttl), rr_ttl);
    } else if (negative && i >= an && type == kTypeSoa) {
      // SOA rdata: mname, rname, then serial refresh retry expire minimum.
      std::size_t q = skip_name(p, len, rdata);
      if (q != std::string::npos) q = skip_name(p, len, q);
      if (q != std::string::npos && q + 20 <= rdata + rdlen) {
        ttl = std::min(rr_ttl, get32(p + q + 16));
      }
    }
    off = rdata + rdlen;
  }
  if (negative && !ttl) ttl = kNegativeFallbackTtl;
  if (!ttl) return std::nullopt;
  return std::min(*ttl, kMaxTtl);
}

std::string strip_dot(std::string s) {
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The reverse-lookup name of an address literal, or nullopt.
std::optional<std::string> reverse_name(const std::string& address) {
  unsigned char buf[16];
  char tmp[8];
  std::string out;
  if (inet_pton(AF_INET, address.c_str(), buf) == 1) {
    for (int i = 3; i >= 0; --i) {
      std::snprintf(tmp, sizeof tmp, "%u.", buf[i]);
      out += tmp;
    }
    return out + "in-addr.arpa";
  }
  if (inet_pton(AF_INET6, address.c_str(), buf) == 1) {
    static const char* hex = "0123456789abcdef";
    for (int i = 15; i >= 0; --i) {
      out += hex[buf[i] & 0xF];
      out += '.';
      out += hex[buf[i] >> 4];
      out += '.';
    }
    return out + "ip6.arpa";
  }
  return std::nullopt;
}

dns_status map_status(int status) {
  switch (status) {
    case ARES_SUCCESS:
      return dns_status::ok;
    case ARES_ENOTFOUND:
      return dns_status::nxdomain;
    case ARES_ENODATA:
      return dns_status::nodata;
    case ARES_ESERVFAIL:
      return dns_status::servfail;
    case ARES_ETIMEOUT:
      return dns_status::timeout;
    case ARES_EREFUSED:
      return dns_status::refused;
    default:
      return dns_status::error;
  }
}

// One lookup's complete outcome, as cached.
struct lookup_result {
  dns_answer answer;
  std::vector<mx_record> mx;
};

// What the c-ares callback delivers: its status and the raw answer (when there
// is one).
struct raw_reply {
  int status = ARES_EDESTRUCTION;
  std::vector<unsigned char> message;
};

// Turns a raw reply into the typed result. Runs on the strand.
lookup_result parse_reply(int type, const raw_reply& raw) {
  lookup_result r;
  dns_answer& ans = r.answer;
  ans.status = map_status(raw.status);
  if (ans.status != dns_status::ok) {
    ans.error = ares_strerror(raw.status);
    if (ans.status == dns_status::nxdomain || ans.status == dns_status::nodata) {
      ans.ttl = answer_ttl(raw.message, true).value_or(kNegativeFallbackTtl);
    }
    return r;
  }
  const unsigned char* buf = raw.message.data();
  const int len = static_cast<int>(raw.message.size());
  int rc = ARES_EBADRESP;
  char text[INET6_ADDRSTRLEN];
  // A/AAAA: the addresses come from the hostent (no cap on their number); the TTL from
  // answer_ttl like every other type.
  if (type == kTypeA || type == kTypeAaaa) {
    hostent* host = nullptr;
    const int family = type == kTypeA ? AF_INET : AF_INET6;
    rc = family == AF_INET ? ares_parse_a_reply(buf, len, &host, nullptr, nullptr)
                           : ares_parse_aaaa_reply(buf, len, &host, nullptr, nullptr);
    if (rc == ARES_SUCCESS) {
      for (char** addr = host->h_addr_list; addr && *addr; ++addr) {
        inet_ntop(family, *addr, text, sizeof text);
        ans.records.emplace_back(text);
      }
      ares_free_hostent(host);
    }
  } else if (type == kTypeTxt) {
    ares_txt_ext* txt = nullptr;
    rc = ares_parse_txt_reply_ext(buf, len, &txt);
    if (rc == ARES_SUCCESS) {
      // record_start marks the first character-string of each TXT record.
      for (ares_txt_ext* t = txt; t; t = t->next) {
        std::string_view part(reinterpret_cast<const char*>(t->txt), t->length);
        if (t->record_start || ans.records.empty()) {
          ans.records.emplace_back(part);
        } else {
          ans.records.back() += part;
        }
      }
      ares_free_data(txt);
    }
  } else if (type == kTypeMx) {
    ares_mx_reply* mx = nullptr;
    rc = ares_parse_mx_reply(buf, len, &mx);
    if (rc == ARES_SUCCESS) {
      for (ares_mx_reply* m = mx; m; m = m->next) {
        r.mx.push_back({m->priority, strip_dot(m->host ? m->host : "")});
      }
      ares_free_data(mx);
      std::stable_sort(r.mx.begin(), r.mx.end(),
                       [](const auto& x, const auto& y) { return x.preference < y.preference; });
      for (const auto& m : r.mx)
        ans.records.push_back(m.host);
    }
  } else if (type == kTypePtr) {
    hostent* host = nullptr;
    // The address is only copied into the hostent; the names come from the
    // answer.
    in_addr dummy{};
    rc = ares_parse_ptr_reply(buf, len, &dummy, sizeof dummy, AF_INET, &host);
    if (rc == ARES_SUCCESS) {
      if (host->h_name) ans.records.push_back(strip_dot(host->h_name));
      for (char** alias = host->h_aliases; alias && *alias; ++alias) {
        std::string name = strip_dot(*alias);
        if (std::find(ans.records.begin(), ans.records.end(), name) == ans.records.end()) {
          ans.records.push_back(std::move(name));
        }
      }
      ares_free_hostent(host);
    }
  }
  if (rc != ARES_SUCCESS) {
    ans.status = map_status(rc);
    ans.error = ares_strerror(rc);
    ans.records.clear();
    r.mx.clear();
    return r;
  }
  if (ans.records.empty()) {
    // Answers of other types only (e.g. a CNAME without its target): no data.
    ans.status = dns_status::nodata;
    ans.error = "no records of the requested type";
    ans.ttl = kNegativeFallbackTtl;
    return r;
  }
  ans.ttl = answer_ttl(raw.message, false).value_or(0);
  return r;
}

void init_library() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (int rc = ares_library_init(ARES_LIB_INIT_ALL); rc != ARES_SUCCESS) {
      throw std::runtime_error(std::string("ares_library_init: ") + ares_strerror(rc));
    }
  });
}

class cares_resolver final : public resolver, public std::enable_shared_from_this<cares_resolver> {
 public:
  using strand_type = asio::strand<asio::io_context::executor_type>;

  cares_resolver(asio::io_context& io, resolver_options opts, logger log)
      : strand_(asio::make_strand(io)),
        timer_(strand_),
        opts_(std::move(opts)),
        log_(std::move(log)) {}

  // Creates the channel. Separate from the constructor so that a failure throws
  // before anything is registered.
  void open() {
    init_library();
    ares_options o{};
    int mask = ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_SOCK_STATE_CB;
    // ARES_FLAG_NOSEARCH: names are absolute; never append a search domain.
    // ARES_FLAG_NOCHECKRESP: hand SERVFAIL and REFUSED answers to us. Without it c-ares
    // 1.18 retries them on the next server and, once all are exhausted, reports
    // ARES_ECONNREFUSED, which callers could not tell from an unreachable server. The
    // price: no failover to the next server on SERVFAIL/REFUSED (timeouts still fail
    // over). TCP retry on truncation stays on (no ARES_FLAG_IGNTC).
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP | (opts_.edns ? ARES_FLAG_EDNS : 0);
    o.timeout = static_cast<int>(opts_.timeout.count());
    o.tries = opts_.tries;
    o.sock_state_cb = &cares_resolver::on_sock_state;
    o.sock_state_cb_data = this;
    if (int rc = ares_init_options(&channel_, &o, mask); rc != ARES_SUCCESS) {
      throw std::runtime_error(std::string("ares_init_options: ") + ares_strerror(rc));
    }
    if (!opts_.servers.empty()) {
      for (std::size_t i = 0; i + 1 < opts_.servers.size(); ++i) {
        opts_.servers[i].next = &opts_.servers[i + 1];
      }
      opts_.servers.back().next = nullptr;
      if (int rc = ares_set_servers_ports(channel_, opts_.servers.data()); rc != ARES_SUCCESS) {
        throw std::runtime_error(std::string("ares_set_servers_ports: ") + ares_strerror(rc));
      }
    }
  }

  ~cares_resolver() override {
    // Only reached when no lookup is in flight (each holds a shared_ptr).
    // Release the descriptors first: c-ares owns and closes the sockets.
    for (auto& [fd, w] : watches_) {
      w->closed = true;
      w->descriptor.release();
    }
    watches_.clear();
    if (channel_) ares_destroy(channel_);
  }

  asio::awaitable<dns_answer> txt(std::string name) override {
    co_return (co_await run(kTypeTxt, std::move(name))).answer;
  }
  asio::awaitable<dns_answer> a(std::string name) override {
    co_return (co_await run(kTypeA, std::move(name))).answer;
  }
  asio::awaitable<dns_answer> aaaa(std::string name) override {
    co_return (co_await run(kTypeAaaa, std::move(name))).answer;
  }
  asio::awaitable<dns_answer> ptr(std::string address) override {
    auto name = reverse_name(address);
    if (!name) {
      dns_answer bad;
      bad.status = dns_status::error;
      bad.error = "not an IPv4 or IPv6 address: " + address;
      co_return bad;
    }
    co_return (co_await run(kTypePtr, std::move(*name))).answer;
  }
  asio::awaitable<std::pair<dns_answer, std::vector<mx_record>>> mx(std::string name) override {
    lookup_result r = co_await run(kTypeMx, std::move(name));
    co_return std::pair{std::move(r.answer), std::move(r.mx)};
  }
  void prefetch_txt(std::string name) override {
    if (opts_.prefetch_max_in_flight == 0) return;
    asio::co_spawn(strand_, prefetch(shared_from_this(), kTypeTxt, std::move(name)),
                   asio::detached);
  }

 private:
  struct watch {
    explicit watch(const strand_type& s, int fd) : descriptor(s, fd) {}
    asio::posix::stream_descriptor descriptor;
    bool want_read = false, want_write = false;
    bool reading = false, writing = false;
    bool closed = false;
  };
  struct cache_entry {
    lookup_result result;
    std::multimap<clock::time_point, std::pair<int, std::string>>::iterator expiry;
  };
  using key_type = std::pair<int, std::string>;
  // Something waiting for a flight's result: a suspended lookup() on the strand.
  struct waiter {
    virtual ~waiter() = default;
    virtual void complete(const lookup_result& r) = 0;
  };
  // One query on the wire and the lookups waiting for it besides the one that started it.
  struct flight {
    bool prefetch = false;  // started by a prefetch hint
    std::vector<std::unique_ptr<waiter>> waiters;
  };
  struct key_hash {
    std::size_t operator()(const std::pair<int, std::string>& k) const noexcept {
      return std::hash<std::string>{}(k.second) ^ static_cast<std::size_t>(k.first);
    }
  };

  // Hops onto the strand and back: co_spawn on the strand, awaited with
  // use_awaitable, resumes this coroutine on the caller's executor.
  asio::awaitable<lookup_result> run(int type, std::string name) {
    return asio::co_spawn(strand_, lookup(shared_from_this(), type, std::move(name)),
                          asio::use_awaitable);
  }

  static bool definitive(dns_status s) {
    return s == dns_status::ok || s == dns_status::nxdomain || s == dns_status::nodata;
  }

  // Runs on the strand. `self` keeps the service (and its channel) alive
  // meanwhile.
  static asio::awaitable<lookup_result> lookup(std::shared_ptr<cares_resolver> self, int type,
                                               std::string name) {
    name = lower(strip_dot(std::move(name)));
    if (name.empty()) {
      lookup_result bad;
      bad.answer.error = "empty domain name";
      co_return bad;
    }
    key_type key{type, name};
    if (auto hit = self->cache_find(key)) co_return *hit;
    if (auto it = self->flights_.find(key); it != self->flights_.end()) {
      const bool joined_prefetch = it->second->prefetch;
      lookup_result r = co_await self->join(it->second);
      if (!joined_prefetch || definitive(r.answer.status)) co_return r;
      // The prefetch failed: this caller's own lookup, as if there had been no prefetch
      // (it may share a flight another caller started, never another prefetch).
      if (auto hit = self->cache_find(key)) co_return *hit;
      it = self->flights_.find(key);
      if (it != self->flights_.end() && !it->second->prefetch) {
        co_return co_await self->join(it->second);
      }
      co_return co_await self->fly(type, key, false, it == self->flights_.end());
    }
    co_return co_await self->fly(type, key, false, true);
  }

  // A prefetch hint, on the strand: a flight of its own unless the answer is cached, the
  // same query is already in flight or too many prefetches are.
  static asio::awaitable<void> prefetch(std::shared_ptr<cares_resolver> self, int type,
                                        std::string name) {
    name = lower(strip_dot(std::move(name)));
    if (name.empty()) co_return;
    key_type key{type, name};
    if (self->cache_find(key) || self->flights_.contains(key)) co_return;
    if (self->prefetches_ >= self->opts_.prefetch_max_in_flight) co_return;
    if (self->recently_uncacheable(key)) co_return;
    co_await self->fly(type, key, true, true);
  }

  // Sends the query and settles it: parse, cache, hand the result to every waiter. With
  // `shared`, the flight is registered so that identical lookups join it. Runs on the strand.
  asio::awaitable<lookup_result> fly(int type, key_type key, bool prefetch, bool shared) {
    auto f = std::make_shared<flight>();
    f->prefetch = prefetch;
    if (shared) flights_[key] = f;
    if (prefetch) ++prefetches_;
    lookup_result r;
    std::exception_ptr error;
    try {
      raw_reply raw = co_await query(type, key.second);
      r = parse_reply(type, raw);
      if (!definitive(r.answer.status)) {
        log_.debug("DNS lookup failed", {{"name", key.second},
                                         {"type", type},
                                         {"status", to_string(r.answer.status)},
                                         {"error", r.answer.error},
                                         {"prefetch", prefetch}});
      }
      cache_store(key, r);
      note_cacheability(key, r);
    } catch (...) {
      error = std::current_exception();  // memory exhaustion: the waiters still complete
      r = lookup_result{};
      r.answer.error = "lookup failed";
    }
    if (shared) {
      if (auto it = flights_.find(key); it != flights_.end() && it->second == f) flights_.erase(it);
    }
    if (prefetch) --prefetches_;
    for (auto& w : f->waiters)
      w->complete(r);
    if (error) std::rethrow_exception(error);
    co_return r;
  }

  // Waits, on the strand, for a flight another lookup started. Not cancellable, like the
  // query itself (bounded by timeout × tries).
  asio::awaitable<lookup_result> join(std::shared_ptr<flight> f) {
    return asio::async_initiate<decltype(asio::use_awaitable), void(lookup_result)>(
        [this, f](auto handler) {
          using handler_type = decltype(handler);
          struct waiter_of final : waiter {
            waiter_of(handler_type h, strand_type s) : handler(std::move(h)), strand(s) {}
            void complete(const lookup_result& r) override {
              // Posted, never resumed inline while the flight is being settled.
              asio::post(strand, [h = std::move(handler), r]() mutable { std::move(h)(r); });
            }
            handler_type handler;
            strand_type strand;
          };
          f->waiters.push_back(std::make_unique<waiter_of>(std::move(handler), strand_));
        },
        asio::use_awaitable);
  }

  // Names whose last definitive answer had TTL 0 (so could not be kept) are not prefetched
  // for kUncacheableMemory: a prefetch of them only helps a lookup that asks while it is on
  // the wire, and otherwise costs a query. Only the fact is remembered, never the answer.
  static constexpr auto kUncacheableMemory = std::chrono::minutes(10);

  void note_cacheability(const key_type& key, const lookup_result& r) {
    if (!definitive(r.answer.status)) return;  // says nothing about the records' TTL
    if (r.answer.ttl > 0) {
      uncacheable_.erase(key);
      return;
    }
    if (uncacheable_.size() >= opts_.cache_max_entries) {
      const auto now = clock::now();
      std::erase_if(uncacheable_, [&](const auto& e) { return e.second <= now; });
      if (uncacheable_.size() >= opts_.cache_max_entries) uncacheable_.erase(uncacheable_.begin());
    }
    uncacheable_[key] = clock::now() + kUncacheableMemory;
  }

  bool recently_uncacheable(const key_type& key) {
    auto it = uncacheable_.find(key);
    if (it == uncacheable_.end()) return false;
    if (it->second > clock::now()) return true;
    uncacheable_.erase(it);
    return false;
  }

  std::optional<lookup_result> cache_find(const std::pair<int, std::string>& key) {
    if (!opts_.cache) return std::nullopt;
    auto it = cache_.find(key);
    if (it == cache_.end()) return std::nullopt;
    auto now = clock::now();
    if (it->second.expiry->first <= now) {
      expiries_.erase(it->second.expiry);
      cache_.erase(it);
      return std::nullopt;
    }
    lookup_result r = it->second.result;
    // Hand out the remaining lifetime, as a recursive resolver would.
    r.answer.ttl = static_cast<std::uint32_t>(
        std::chrono::ceil<std::chrono::seconds>(it->second.expiry->first - now).count());
    return r;
  }

  void cache_store(const std::pair<int, std::string>& key, const lookup_result& r) {
    // Only definitive answers are cached; TTL 0 means "use once" (RFC 1035
    // §3.2.1).
    if (!opts_.cache || r.answer.ttl == 0) return;
    auto s = r.answer.status;
    if (s != dns_status::ok && s != dns_status::nxdomain && s != dns_status::nodata) return;
    if (auto old = cache_.find(key); old != cache_.end()) {
      expiries_.erase(old->second.expiry);
      cache_.erase(old);
    }
    // Full: evict what expires soonest (expired entries first, by
    // construction).
    while (cache_.size() >= opts_.cache_max_entries && !expiries_.empty()) {
      cache_.erase(expiries_.begin()->second);
      expiries_.erase(expiries_.begin());
    }
    auto at = clock::now() + std::chrono::seconds(r.answer.ttl);
    auto exp = expiries_.emplace(at, key);
    cache_.emplace(key, cache_entry{r, exp});
  }

  // Sends one query through the channel; completes (via post, never inline
  // inside a c-ares callback) with the raw reply. Runs on the strand.
  asio::awaitable<raw_reply> query(int type, const std::string& name) {
    return asio::async_initiate<decltype(asio::use_awaitable), void(raw_reply)>(
        [this, type, &name](auto handler) {
          using handler_type = decltype(handler);
          struct pending {
            handler_type handler;
            strand_type strand;
          };
          auto* p = new pending{std::move(handler), strand_};
          ares_query(
              channel_, name.c_str(), kClassIn, type,
              [](void* arg, int status, int, unsigned char* abuf, int alen) {
                std::unique_ptr<pending> p(static_cast<pending*>(arg));
                raw_reply got;
                got.status = status;
                if (abuf && alen > 0) got.message.assign(abuf, abuf + alen);
                asio::post(p->strand, [h = std::move(p->handler), got = std::move(got)]() mutable {
                  std::move(h)(std::move(got));
                });
              },
              p);
          arm_timer();
        },
        asio::use_awaitable);
  }

  // c-ares tells which sockets it wants watched (both false: it is closing the
  // socket).
  static void on_sock_state(void* data, ares_socket_t fd, int readable, int writable) {
    auto* self = static_cast<cares_resolver*>(data);
    // Called from inside c-ares: nothing may propagate. If a socket cannot be watched
    // (e.g. out of memory), its query simply times out.
    try {
      self->sock_state(fd, readable != 0, writable != 0);
    } catch (const std::exception& e) {
      self->log_.error("cannot watch a DNS socket", {{"fd", fd}, {"error", e.what()}});
    }
  }

  void sock_state(ares_socket_t fd, bool readable, bool writable) {
    auto it = watches_.find(fd);
    if (!readable && !writable) {
      if (it != watches_.end()) {
        it->second->closed = true;
        it->second->descriptor.release();  // cancels the waits; c-ares closes the fd
        watches_.erase(it);
      }
      return;
    }
    if (it == watches_.end()) {
      it = watches_.emplace(fd, std::make_shared<watch>(strand_, fd)).first;
    }
    it->second->want_read = readable;
    it->second->want_write = writable;
    arm(it->second);
  }

  void arm(const std::shared_ptr<watch>& w) {
    if (w->closed) return;
    std::weak_ptr<cares_resolver> weak = weak_from_this();
    if (w->want_read && !w->reading) {
      w->reading = true;
      w->descriptor.async_wait(
          asio::posix::descriptor_base::wait_read,
          asio::bind_executor(strand_, [weak, w](boost::system::error_code ec) {
            w->reading = false;
            auto self = weak.lock();
            if (!self || w->closed || ec) return;
            ares_process_fd(self->channel_, w->descriptor.native_handle(), ARES_SOCKET_BAD);
            self->arm(w);
            self->arm_timer();
          }));
    }
    if (w->want_write && !w->writing) {
      w->writing = true;
      w->descriptor.async_wait(
          asio::posix::descriptor_base::wait_write,
          asio::bind_executor(strand_, [weak, w](boost::system::error_code ec) {
            w->writing = false;
            auto self = weak.lock();
            if (!self || w->closed || ec) return;
            ares_process_fd(self->channel_, ARES_SOCKET_BAD, w->descriptor.native_handle());
            self->arm(w);
            self->arm_timer();
          }));
    }
  }

  // Sets the timer to c-ares' next deadline (or leaves it idle with no query
  // pending).
  void arm_timer() {
    timeval tv{};
    if (!ares_timeout(channel_, nullptr, &tv)) {
      timer_.cancel();
      return;
    }
    timer_.expires_after(std::chrono::seconds(tv.tv_sec) + std::chrono::microseconds(tv.tv_usec));
    std::weak_ptr<cares_resolver> weak = weak_from_this();
    timer_.async_wait(asio::bind_executor(strand_, [weak](boost::system::error_code ec) {
      if (ec) return;  // re-armed or destroyed
      auto self = weak.lock();
      if (!self) return;
      // Both BAD: only handle timeouts (retries go to the next server/try).
      ares_process_fd(self->channel_, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
      self->arm_timer();
    }));
  }

  strand_type strand_;
  asio::steady_timer timer_;
  resolver_options opts_;
  logger log_;
  ares_channel channel_ = nullptr;
  std::unordered_map<ares_socket_t, std::shared_ptr<watch>> watches_;
  std::unordered_map<std::pair<int, std::string>, cache_entry, key_hash> cache_;
  std::unordered_map<key_type, std::shared_ptr<flight>, key_hash> flights_;
  std::size_t prefetches_ = 0;  // prefetch flights in flight
  std::unordered_map<key_type, clock::time_point, key_hash> uncacheable_;  // → forget at
  std::multimap<clock::time_point, std::pair<int, std::string>> expiries_;
};

std::shared_ptr<service> make_resolver_service(instance_context& ctx) {
  resolver_options opts = parse_options(ctx.config);
  auto r = std::make_shared<cares_resolver>(ctx.host.io(), opts, ctx.log);
  if (ctx.check_only) {  // validated; no channel, only declared for the consumers' checks
    ctx.host.services().declare(resolver::kind, ctx.name);
    return r;
  }
  try {
    r->open();
  } catch (const std::exception& e) {
    ctx.config.fail(std::string("cannot create the DNS resolver: ") + e.what());
  }
  ctx.host.services().add(resolver::kind, ctx.name, r);
  ctx.log.info(
      "resolver ready",
      {{"servers",
        opts.servers.empty() ? std::string("system") : std::to_string(opts.servers.size())},
       {"timeout_ms", static_cast<std::int64_t>(opts.timeout.count())},
       {"tries", opts.tries},
       {"edns", opts.edns},
       {"cache", opts.cache},
       {"prefetch_max_in_flight", static_cast<std::int64_t>(opts.prefetch_max_in_flight)}});
  return r;
}

void register_resolver(registrar& r) {
  r.add_service("resolver", make_resolver_service);
}

}  // namespace
}  // namespace sluice::resolver_plugin

SLUICE_PLUGIN("resolver", "0.1.0",
              "DNS lookups (TXT, A, AAAA, MX, PTR) via c-ares with a TTL cache",
              ::sluice::resolver_plugin::register_resolver);
