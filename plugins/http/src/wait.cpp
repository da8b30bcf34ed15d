// wait.cpp — GET /api/v1/wait (Sluice, beyond Mailpit): long-poll for a message.
//
//   GET /api/v1/wait?query=<search>&timeout=<30s>&since=<time>&tz=<zone>
//
// Answers 200 with the MessageSummary of the first message of the request's mailbox that
// matches `query` (empty: any message): immediately when one that arrived at or after
// `since` (RFC 3339, YYYY-MM-DD or milliseconds since the epoch) is already stored — the
// oldest such one — else as soon as one arrives. `timeout` is a number of seconds or a
// duration with unit ms, s or m (default 30 s, at most 300 s); when it passes, 408
// "no matching message arrived within …". While the server drains: 503.
//
// No message is missed: the handler subscribes to the `events` service before it looks
// at what is stored, so a message committed between the look and the subscription is
// both found and announced (an id seen twice is only checked twice). New-message ids
// travel from the publisher's thread to this coroutine over a thread-safe channel of
// bounded size; when it is full the handler notes the overflow and searches the mailbox
// again instead of losing ids. At most kMaxWaiters requests wait at once (503 beyond).
#include <atomic>
#include <chrono>
#include <memory>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/concurrent_channel.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "api.hpp"
#include "api_util.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/text.hpp"

namespace sluice::http::api {
namespace {

namespace asio = boost::asio;
using asio::awaitable;

constexpr std::int64_t kDefaultTimeoutMs = 30'000;
constexpr std::int64_t kMaxTimeoutMs = 300'000;
constexpr int kMaxWaiters = 512;
constexpr std::size_t kChannelSize = 256;
// The initial look pages through at most this many matching messages.
constexpr std::uint64_t kPageSize = 100;
constexpr int kMaxPages = 10;

std::atomic<int> g_waiters{0};

// "30", "30s", "1500ms", "2m" → milliseconds; nullopt when unreadable or negative.
std::optional<std::int64_t> parse_timeout(std::string_view s) {
  s = trim(s);
  std::size_t n = 0;
  while (n < s.size() && s[n] >= '0' && s[n] <= '9')
    ++n;
  if (n == 0 || n > 9) return std::nullopt;
  const auto v = static_cast<std::int64_t>(*parse_uint(s.substr(0, n)));
  const std::string_view unit = s.substr(n);
  if (unit.empty() || unit == "s") return v * 1000;
  if (unit == "ms") return v;
  if (unit == "m") return v * 60'000;
  return std::nullopt;
}

using id_channel =
    asio::experimental::concurrent_channel<void(boost::system::error_code, std::string)>;

// Shared by the coroutine and the callbacks (events, gate), which may outlive the
// subscription by one in-flight call: they hold it by shared_ptr.
struct wait_state {
  explicit wait_state(const asio::any_io_executor& ex) : ids(ex, kChannelSize) {}
  id_channel ids;
  std::atomic<bool> overflow{false};
  std::atomic<bool> closing{false};
};

// The oldest message matching the query that was created at or after since_ms.
awaitable<std::optional<stored_message>> stored_since(request_context& ctx,
                                                      const std::string& query,
                                                      const std::string& tz,
                                                      std::int64_t since_ms) {
  std::optional<stored_message> found;
  search_request sr;
  sr.mailbox = ctx.mailbox;
  sr.query = query;
  sr.tz = tz;
  sr.limit = kPageSize;
  for (int page = 0; page < kMaxPages; ++page) {
    sr.offset = static_cast<std::uint64_t>(page) * kPageSize;
    auto res = co_await ctx.env.store->search(sr);
    bool older = false;
    for (auto& m : res.messages) {
      if (m.created_ms < since_ms) {
        older = true;
        break;
      }
      found = std::move(m);
    }
    if (older || res.messages.size() < kPageSize) break;
  }
  co_return found;
}

awaitable<response> wait_handler(request_context& ctx) {
  const std::string query = ctx.param("query") ? *ctx.param("query") : std::string();
  const std::string tz = ctx.param("tz") ? *ctx.param("tz") : std::string();
  std::int64_t timeout_ms = kDefaultTimeoutMs;
  if (const auto* t = ctx.param("timeout"); t && !t->empty()) {
    auto v = parse_timeout(*t);
    if (!v || *v > kMaxTimeoutMs) {
      co_return bad_request(ctx.req, "invalid timeout: " + *t +
                                         " (seconds, or a duration in ms, s or m; at most 300 s)");
    }
    timeout_ms = *v;
  }
  std::optional<std::int64_t> since;
  if (const auto* s = ctx.param("since"); s && !s->empty()) {
    since = parse_time_ms(*s);
    if (!since) {
      co_return bad_request(
          ctx.req, "invalid since: " + *s + " (RFC 3339 time, YYYY-MM-DD or milliseconds)");
    }
  }
  if (!ctx.env.events) {
    co_return text_response(ctx.req, bhttp::status::service_unavailable,
                            "waiting needs the events service, which is not running");
  }
  if (g_waiters.fetch_add(1) >= kMaxWaiters) {
    g_waiters.fetch_sub(1);
    co_return text_response(ctx.req, bhttp::status::service_unavailable,
                            "too many requests are waiting; try again later");
  }
  struct waiter_count {
    ~waiter_count() { g_waiters.fetch_sub(1); }
  } count_guard;

  const std::int64_t started_ms = now_ms();
  auto ex = co_await asio::this_coro::executor;
  auto st = std::make_shared<wait_state>(ex);

  // Subscribe first (see the header comment); unsubscribe on every way out.
  const std::string mailbox = ctx.mailbox;
  const std::uint64_t token = ctx.env.events->subscribe([st, mailbox](const event& e) {
    if (e.type != "new" || e.mailbox != mailbox || !e.data.is_object()) return;
    const auto* id = e.data.get_object().if_contains("ID");
    if (!id || !id->is_string()) return;
    if (!st->ids.try_send(boost::system::error_code{}, std::string(id->get_string()))) {
      st->overflow = true;
    }
  });
  struct unsubscriber {
    std::shared_ptr<sluice::events> ev;
    std::uint64_t token;
    ~unsubscriber() { ev->unsubscribe(token); }
  } unsub{ctx.env.events, token};

  std::shared_ptr<gate> drain = ctx.env.submit ? ctx.env.submit->drain_gate() : nullptr;
  std::uint64_t close_token = 0;
  if (drain) {
    close_token = drain->on_close([st] {
      st->closing = true;
      st->ids.try_send(asio::error::shut_down, std::string());
    });
  }
  struct close_canceller {
    std::shared_ptr<gate> g;
    std::uint64_t token;
    ~close_canceller() {
      if (g) g->cancel(token);
    }
  } close_guard{drain, close_token};

  auto found = [&](const stored_message& m) {
    return json_response(ctx.req, mailpit::summary_json(m));
  };

  if (since) {
    if (auto m = co_await stored_since(ctx, query, tz, *since)) co_return found(*m);
  } else {
    // Only to refuse a bad query now (search_error → 400) rather than at the first
    // arrival; one row at most.
    search_request probe;
    probe.mailbox = ctx.mailbox;
    probe.query = query;
    probe.tz = tz;
    probe.limit = 1;
    co_await ctx.env.store->search(probe);
  }

  using namespace asio::experimental::awaitable_operators;
  asio::steady_timer timer(ex, std::chrono::milliseconds(timeout_ms));
  for (;;) {
    if (st->closing) break;
    auto next = co_await (st->ids.async_receive(asio::as_tuple(asio::use_awaitable)) ||
                          timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (next.index() == 1) {
      co_return text_response(
          ctx.req, bhttp::status::request_timeout,
          "no matching message arrived within " + std::to_string(timeout_ms) + " ms");
    }
    auto& [ec, id] = std::get<0>(next);
    if (ec) break;  // shutting down
    if (co_await ctx.env.store->matches(ctx.mailbox, id, query, tz)) {
      if (auto m = co_await ctx.env.store->get(ctx.mailbox, id)) co_return found(*m);
    }
    if (st->overflow.exchange(false)) {
      // Ids were dropped while the channel was full: look at what arrived meanwhile.
      if (auto m = co_await stored_since(ctx, query, tz,
                                         since ? std::min(*since, started_ms) : started_ms))
        co_return found(*m);
    }
  }
  co_return text_response(ctx.req, bhttp::status::service_unavailable,
                          "the server is shutting down");
}

}  // namespace

void add_wait_routes(router& r) {
  r.add(bhttp::verb::get, "/api/v1/wait", guarded(wait_handler));
}

}  // namespace sluice::http::api
