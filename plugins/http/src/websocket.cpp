// plugins/http/src/websocket.cpp — see websocket.hpp.
#include "websocket.hpp"

#include <deque>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/json.hpp>

#include "server.hpp"

namespace sluice::http {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;

namespace {

constexpr auto stats_delay = 250ms;
constexpr std::size_t max_client_message = 64 * 1024;

bool is_change(std::string_view type) {
  return type == "new" || type == "update" || type == "delete" || type == "truncate" ||
         type == "prune" || type == "changed";
}

std::shared_ptr<const std::string> frame_of(std::string_view type, const boost::json::value& data) {
  boost::json::object o;
  o["Type"] = type;
  o["Data"] = data;
  return std::make_shared<const std::string>(boost::json::serialize(o));
}

// Mailpit's frames for one bus event: "delete" is one {"ID"} frame per message (a store may
// publish one event listing "IDs"), "truncate" and "prune" carry null.
std::vector<std::shared_ptr<const std::string>> frames_of(const event& e) {
  std::vector<std::shared_ptr<const std::string>> out;
  if (e.type == "delete") {
    if (const auto* o = e.data.if_object()) {
      if (const auto* ids = o->if_contains("IDs"); ids && ids->is_array()) {
        for (const auto& id : ids->get_array())
          out.push_back(frame_of("delete", boost::json::object{{"ID", id}}));
        return out;
      }
    }
  }
  if (e.type == "truncate" || e.type == "prune") {
    out.push_back(frame_of(e.type, nullptr));
    return out;
  }
  out.push_back(frame_of(e.type, e.data));
  return out;
}

template <class Stream>
class ws_session final : public ws_client, public std::enable_shared_from_this<ws_session<Stream>> {
 public:
  ws_session(std::shared_ptr<server_state> st, Stream stream, std::string mailbox,
             gate::holder holder)
      : st_(std::move(st)),
        ws_(std::move(stream)),
        mailbox_(std::move(mailbox)),
        holder_(std::move(holder)),
        wake_(ws_.get_executor()),
        watchdog_(ws_.get_executor()) {}

  ~ws_session() override {
    // Normally finish() has run; this covers a frame destroyed with the io_context.
    st_->hub->remove(this);
    if (st_->metrics.websockets_active && counted_) st_->metrics.websockets_active->add(-1);
  }

  const std::string& mailbox() const override { return mailbox_; }

  void deliver(std::shared_ptr<const std::string> frame) override {
    asio::post(ws_.get_executor(),
               [self = this->shared_from_this(), f = std::move(frame)]() mutable {
                 self->enqueue(std::move(f));
               });
  }

  void shutdown() override {
    asio::post(ws_.get_executor(), [self = this->shared_from_this()] {
      self->going_away_ = true;
      self->wake_.cancel();
    });
  }

  asio::awaitable<void> run(request req) {
    auto self = this->shared_from_this();
    // The HTTP layer's timer must not fire under the WebSocket, which has its own.
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout t{};
    t.handshake_timeout = st_->cfg.limits.write_timeout;
    t.idle_timeout = websocket::stream_base::none();
    t.keep_alive_pings = false;
    ws_.set_option(t);
    ws_.read_message_max(max_client_message);
    if (!st_->cfg.disable_compression) {
      websocket::permessage_deflate pmd;
      pmd.server_enable = true;
      pmd.server_max_window_bits = 12;
      pmd.client_max_window_bits = 12;
      pmd.memLevel = 5;
      pmd.msg_size_threshold = 256;
      ws_.set_option(pmd);
    }
    const server_state* stp = st_.get();
    ws_.set_option(websocket::stream_base::decorator([stp](websocket::response_type& res) {
      set_security_headers(res, *stp);
      // Beast names itself and its version when no Server is set.
      res.set(boost::beast::http::field::server, "Sluice");
    }));
    boost::system::error_code ec;
    co_await ws_.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    if (!st_->hub->add(self)) {
      co_await ws_.async_close(websocket::close_code::try_again_later,
                               asio::redirect_error(asio::use_awaitable, ec));
      co_return;
    }
    counted_ = true;
    if (st_->metrics.websockets_active) st_->metrics.websockets_active->add(1);
    ws_.control_callback([this](websocket::frame_type, beast::string_view) { touch(); });
    touch();
    next_ping_ = std::chrono::steady_clock::now() + st_->cfg.limits.ws_ping_interval;
    asio::co_spawn(ws_.get_executor(), writer(self), asio::detached);
    asio::co_spawn(ws_.get_executor(), watchdog(self), asio::detached);
    // Stats on connect, as Mailpit sends them.
    asio::co_spawn(ws_.get_executor(), initial_stats(self), asio::detached);
    beast::flat_buffer buf;
    while (!closing_) {
      co_await ws_.async_read(buf, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
      touch();
      buf.consume(buf.size());  // client messages are ignored
    }
    finish();
  }

 private:
  void touch() { last_rx_ = std::chrono::steady_clock::now(); }

  void enqueue(std::shared_ptr<const std::string> f) {
    if (closing_) return;
    if (queue_.size() >= st_->cfg.limits.max_ws_queue) {
      st_->log.warn("websocket client too slow, disconnecting",
                    {{"queued", static_cast<std::uint64_t>(queue_.size())}});
      if (st_->metrics.websocket_slow_disconnects) st_->metrics.websocket_slow_disconnects->inc();
      abort();
      return;
    }
    queue_.push_back(std::move(f));
    wake_.cancel();
  }

  // Abrupt close (slow or dead peer): pending reads and writes fail and the loops end.
  void abort() {
    closing_ = true;
    boost::system::error_code ec;
    beast::get_lowest_layer(ws_).socket().shutdown(asio::socket_base::shutdown_both, ec);
    beast::get_lowest_layer(ws_).close();
    wake_.cancel();
    watchdog_.cancel();
  }

  void finish() {
    closing_ = true;
    st_->hub->remove(this);
    wake_.cancel();
    watchdog_.cancel();
    holder_.release();
  }

  asio::awaitable<void> initial_stats(std::shared_ptr<ws_session> self) {
    try {
      auto f = co_await ws_hub::stats_frame(st_->env.store, mailbox_, st_->env.version);
      enqueue(std::move(f));
    } catch (const std::exception& e) {
      st_->log.warn("websocket stats failed", {{"error", e.what()}});
    }
  }

  // The only writer: frames, pings and the closing handshake never overlap.
  asio::awaitable<void> writer(std::shared_ptr<ws_session> self) {
    boost::system::error_code ec;
    while (!closing_) {
      if (queue_.empty() && !going_away_) {
        wake_.expires_at(next_ping_);
        co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      if (closing_) break;
      if (!queue_.empty()) {
        auto f = std::move(queue_.front());
        queue_.pop_front();
        ws_.text(true);
        co_await ws_.async_write(asio::buffer(*f), asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        if (st_->metrics.websocket_frames) st_->metrics.websocket_frames->inc();
        continue;
      }
      if (going_away_) {
        closing_ = true;
        co_await ws_.async_close(websocket::close_code::going_away,
                                 asio::redirect_error(asio::use_awaitable, ec));
        break;
      }
      if (std::chrono::steady_clock::now() >= next_ping_) {
        next_ping_ = std::chrono::steady_clock::now() + st_->cfg.limits.ws_ping_interval;
        co_await ws_.async_ping({}, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
    }
    if (!going_away_) abort();
  }

  asio::awaitable<void> watchdog(std::shared_ptr<ws_session> self) {
    boost::system::error_code ec;
    while (!closing_) {
      const auto pong_wait = st_->cfg.limits.ws_pong_timeout;
      watchdog_.expires_at(last_rx_ + pong_wait);
      co_await watchdog_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (closing_) break;
      if (std::chrono::steady_clock::now() >= last_rx_ + pong_wait) {
        st_->log.info("websocket peer silent, disconnecting",
                      {{"timeout_ms", static_cast<std::int64_t>(pong_wait.count())}});
        abort();
        break;
      }
    }
  }

  std::shared_ptr<server_state> st_;
  websocket::stream<Stream> ws_;
  std::string mailbox_;
  gate::holder holder_;
  asio::steady_timer wake_;
  asio::steady_timer watchdog_;
  std::deque<std::shared_ptr<const std::string>> queue_;
  std::chrono::steady_clock::time_point last_rx_{};
  std::chrono::steady_clock::time_point next_ping_{};
  bool closing_ = false;
  bool going_away_ = false;
  bool counted_ = false;
};

template <class Stream>
void start(std::shared_ptr<server_state> st, Stream stream, request req, std::string mailbox,
           gate::holder holder) {
  auto ex = stream.get_executor();
  auto s = std::make_shared<ws_session<Stream>>(std::move(st), std::move(stream),
                                                std::move(mailbox), std::move(holder));
  asio::co_spawn(ex, s->run(std::move(req)), asio::detached);
}

}  // namespace

void run_websocket(std::shared_ptr<server_state> st, tcp_stream stream, request req,
                   std::string mailbox, gate::holder holder) {
  start(std::move(st), std::move(stream), std::move(req), std::move(mailbox), std::move(holder));
}
void run_websocket(std::shared_ptr<server_state> st, tls_stream stream, request req,
                   std::string mailbox, gate::holder holder) {
  start(std::move(st), std::move(stream), std::move(req), std::move(mailbox), std::move(holder));
}
void run_websocket(std::shared_ptr<server_state> st, unix_stream stream, request req,
                   std::string mailbox, gate::holder holder) {
  start(std::move(st), std::move(stream), std::move(req), std::move(mailbox), std::move(holder));
}

// ---- hub ----

ws_hub::ws_hub(sluice::host& h, const api_env& env, std::size_t max_clients)
    : store_(env.store),
      events_(env.events),
      version_(env.version),
      log_(env.log),
      max_clients_(max_clients),
      strand_(asio::make_strand(h.io())) {}

void ws_hub::start() {
  if (!events_) return;
  std::weak_ptr<ws_hub> w = weak_from_this();
  token_ = events_->subscribe([w](const event& e) {
    if (auto h = w.lock()) h->on_event(e);
  });
}

void ws_hub::stop() {
  std::vector<std::shared_ptr<ws_client>> all;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [p, w] : clients_)
      if (auto c = w.lock()) all.push_back(std::move(c));
  }
  if (events_ && token_) events_->unsubscribe(token_);
  for (auto& c : all)
    c->shutdown();
}

bool ws_hub::add(const std::shared_ptr<ws_client>& c) {
  std::lock_guard lock(mu_);
  if (stopped_ || clients_.size() >= max_clients_) return false;
  clients_.emplace(c.get(), c);
  return true;
}

void ws_hub::remove(ws_client* c) {
  std::lock_guard lock(mu_);
  clients_.erase(c);
}

std::size_t ws_hub::clients() const {
  std::lock_guard lock(mu_);
  return clients_.size();
}

std::pair<std::uint64_t, std::uint64_t> ws_hub::accepted(const std::string& mailbox) const {
  std::lock_guard lock(mu_);
  auto it = accepted_.find(mailbox);
  return it == accepted_.end() ? std::pair<std::uint64_t, std::uint64_t>{0, 0} : it->second;
}

void ws_hub::on_event(const event& e) {
  // Publisher's thread: serialise once, then only hand out shared frames.
  if (e.type == "new") {
    std::uint64_t size = 0;
    if (auto* o = e.data.if_object()) {
      if (auto* s = o->if_contains("Size")) {
        if (s->is_uint64())
          size = s->as_uint64();
        else if (s->is_int64() && s->as_int64() > 0)
          size = static_cast<std::uint64_t>(s->as_int64());
      }
    }
    std::lock_guard lock(mu_);
    auto& a = accepted_[e.mailbox];
    a.first += 1;
    a.second += size;
  }
  std::vector<std::shared_ptr<ws_client>> targets;
  {
    std::lock_guard lock(mu_);
    if (stopped_) return;
    for (auto& [p, w] : clients_) {
      auto c = w.lock();  // never touch *p itself: it may be mid-destruction
      if (c && (e.mailbox.empty() || c->mailbox() == e.mailbox)) targets.push_back(std::move(c));
    }
  }
  if (!targets.empty()) {
    for (auto& f : frames_of(e)) {
      for (auto& c : targets)
        c->deliver(f);
    }
  }
  if (is_change(e.type) && !e.mailbox.empty()) schedule_stats(e.mailbox);
}

void ws_hub::schedule_stats(const std::string& mailbox) {
  asio::post(strand_, [self = shared_from_this(), mailbox] {
    if (!self->stats_pending_.insert(mailbox).second) return;  // one already scheduled
    asio::co_spawn(self->strand_, self->send_stats_later(mailbox), asio::detached);
  });
}

asio::awaitable<void> ws_hub::send_stats_later(std::string mailbox) {
  auto self = shared_from_this();
  asio::steady_timer t(strand_, stats_delay);
  boost::system::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  // Cleared before the query: a change during it schedules the next frame.
  stats_pending_.erase(mailbox);
  std::vector<std::shared_ptr<ws_client>> targets;
  {
    std::lock_guard lock(mu_);
    if (stopped_) co_return;
    for (auto& [p, w] : clients_) {
      auto c = w.lock();
      if (c && c->mailbox() == mailbox) targets.push_back(std::move(c));
    }
  }
  if (targets.empty()) co_return;
  try {
    auto f = co_await stats_frame(store_, mailbox, version_);
    for (auto& c : targets)
      c->deliver(f);
  } catch (const std::exception& e) {
    log_.warn("websocket stats failed", {{"mailbox", mailbox}, {"error", e.what()}});
  }
}

asio::awaitable<std::shared_ptr<const std::string>> ws_hub::stats_frame(
    std::shared_ptr<mailbox_service> store, std::string mailbox, std::string version) {
  auto s = co_await store->stats(mailbox);
  boost::json::object d;
  d["Total"] = s.total;
  d["Unread"] = s.unread;
  d["Version"] = version;
  co_return frame_of("stats", d);
}

}  // namespace sluice::http
