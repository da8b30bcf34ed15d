// testkit.cpp — stages used by the kernel's tests (see README.md). Not for production.
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <fstream>
#include <mutex>

#include "sluice/sdk.hpp"

namespace {

namespace asio = boost::asio;
using sluice::verdict;

class sink_stage final : public sluice::stage {
 public:
  explicit sink_stage(sluice::instance_context& ctx)
      : host_(ctx.host), dir_(ctx.host.config_dir() / ctx.config.at("dir").as_string()) {
    if (!ctx.check_only) std::filesystem::create_directories(dir_);
  }
  asio::awaitable<verdict> process(std::shared_ptr<sluice::message> msg,
                                   const sluice::stage_call&) override {
    auto dir = dir_;
    bool ok = co_await sluice::offload(host_, [msg, dir]() {
      auto tmp = dir / (msg->id + ".tmp");
      int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd < 0) return false;
      bool good = !msg->write_output([&](std::string_view c) {
        return ::write(fd, c.data(), c.size()) == static_cast<ssize_t>(c.size());
      });
      good = good && ::fsync(fd) == 0;
      ::close(fd);
      return good && ::rename(tmp.c_str(), (dir / (msg->id + ".eml")).c_str()) == 0;
    });
    if (!ok) co_return verdict::tempfail(451, "4.3.0", "cannot store message");
    co_return verdict::next();
  }

 private:
  sluice::host& host_;
  std::filesystem::path dir_;
};

class verdict_stage final : public sluice::stage {
 public:
  explicit verdict_stage(sluice::instance_context& ctx) {
    auto& c = ctx.config;
    auto v = c.get_string("verdict", "continue");
    using k = sluice::verdict_kind;
    if (v == "continue")
      v_.kind = k::continue_;
    else if (v == "accept")
      v_ = verdict::accept();
    else if (v == "reject")
      v_ = verdict::reject(550, "5.7.1", "Rejected by test");
    else if (v == "tempfail")
      v_ = verdict::tempfail(451, "4.7.1", "Try again later (test)");
    else if (v == "discard")
      v_ = verdict::discard();
    else if (v == "quarantine")
      v_ = verdict::quarantine();
    else
      c.at("verdict").fail("unknown verdict \"" + v + "\"");
    v_.reply.code = static_cast<int>(c.get_int("code", v_.reply.code));
    v_.reply.enhanced = c.get_string("enhanced", v_.reply.enhanced);
    v_.reply.text = c.get_string("text", v_.reply.text);
    when_rcpt_ = c.get_string("when_rcpt", "");
    delay_ = c.get_duration("delay", std::chrono::milliseconds(0));
    throw_ = c.get_bool("throw", false);
  }
  asio::awaitable<verdict> process(std::shared_ptr<sluice::message> msg,
                                   const sluice::stage_call&) override {
    if (delay_.count() > 0) {
      asio::steady_timer t(co_await asio::this_coro::executor, delay_);
      co_await t.async_wait(asio::use_awaitable);  // throws operation_aborted on timeout
    }
    if (throw_) throw std::runtime_error("test stage failure");
    if (!when_rcpt_.empty()) {
      bool hit = false;
      for (auto& r : msg->envelope.recipients)
        hit = hit || r.address == when_rcpt_;
      if (!hit) co_return verdict::next();
    }
    co_return v_;
  }

 private:
  verdict v_;
  std::string when_rcpt_;
  std::chrono::milliseconds delay_{0};
  bool throw_ = false;
};

class header_stage final : public sluice::stage {
 public:
  explicit header_stage(sluice::instance_context& ctx)
      : name_(ctx.config.at("name").as_string()), value_(ctx.config.at("value").as_string()) {}
  asio::awaitable<verdict> process(std::shared_ptr<sluice::message> msg,
                                   const sluice::stage_call&) override {
    msg->append_header(name_, value_);
    co_return verdict::next();
  }

 private:
  std::string name_, value_;
};

class deferred_stage final : public sluice::stage {
 public:
  explicit deferred_stage(sluice::instance_context& ctx)
      : log_(ctx.host.config_dir() / ctx.config.at("log").as_string()),
        fail_times_(static_cast<unsigned>(ctx.config.get_int("fail_times", 0))) {}
  asio::awaitable<verdict> process(std::shared_ptr<sluice::message> msg,
                                   const sluice::stage_call& call) override {
    const bool fail = call.attempt <= fail_times_;
    {
      std::lock_guard lock(mu_);
      std::ofstream out(log_, std::ios::app);
      out << msg->id << " " << call.attempt << " " << (fail ? "tempfail" : "ok") << " "
          << (call.phase == sluice::phase::deferred ? "deferred" : "inline") << "\n";
    }
    // What a real deferred stage reports about its attempt (the delivery log's Details).
    msg->attributes["delivery_report"] =
        boost::json::object{{"attempt", call.attempt}, {"upstream", "test"}};
    if (fail) co_return verdict::tempfail(451, "4.4.1", "test upstream unavailable");
    co_return verdict::next();
  }

 private:
  std::mutex mu_;
  std::filesystem::path log_;
  unsigned fail_times_;
};

// Proves DESIGN.md §3 "one Asio for everyone": everything below is compiled into this
// plugin, yet runs on the kernel's io_context and finds the kernel's services.
class asio_stage final : public sluice::stage {
  static asio::awaitable<bool> inside_strand(asio::strand<asio::io_context::executor_type> s) {
    co_return s.running_in_this_thread();
  }

 public:
  explicit asio_stage(sluice::instance_context& ctx) : host_(ctx.host) {}
  asio::awaitable<verdict> process(std::shared_ptr<sluice::message> msg,
                                   const sluice::stage_call& call) override {
    auto& io = host_.io();
    std::vector<std::string> failures;
    // A strand of the kernel's io_context: a handler posted to it sees itself inside it.
    auto strand = asio::make_strand(io);
    bool inside = co_await asio::co_spawn(strand, inside_strand(strand), asio::use_awaitable);
    if (!inside) failures.push_back("strand");
    // A timer created here fires through the kernel's scheduler.
    asio::steady_timer timer(io, std::chrono::milliseconds(5));
    auto [tec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    if (tec) failures.push_back("timer");
    // A loopback TCP echo through the kernel's reactor.
    try {
      asio::ip::tcp::acceptor acc(io, {asio::ip::make_address("127.0.0.1"), 0});
      asio::ip::tcp::socket client(io);
      co_await client.async_connect(acc.local_endpoint(), asio::use_awaitable);
      auto server = co_await acc.async_accept(asio::use_awaitable);
      co_await asio::async_write(client, asio::buffer(std::string_view("ping")),
                                 asio::use_awaitable);
      char buf[4];
      co_await asio::async_read(server, asio::buffer(buf), asio::use_awaitable);
      if (std::string_view(buf, 4) != "ping") failures.push_back("socket");
    } catch (const std::exception& e) {
      failures.push_back(std::string("socket: ") + e.what());
    }
    // The executor we run on belongs to the same io_context the kernel runs.
    auto ex = co_await asio::this_coro::executor;
    if (&asio::query(ex, asio::execution::context) != &static_cast<asio::execution_context&>(io)) {
      failures.push_back("executor context");
    }
    if (!failures.empty()) {
      std::string all;
      for (auto& f : failures)
        all += f + " ";
      call.log.error("asio checks failed", {{"failed", all}});
      co_return verdict::tempfail(451, "4.3.0", "asio check failed: " + all);
    }
    msg->append_header("X-Test-Asio", "ok");
    co_return verdict::next();
  }

 private:
  sluice::host& host_;
};

void register_testkit(sluice::registrar& r) {
  r.add_stage("test_sink",
              [](sluice::instance_context& c) { return std::make_shared<sink_stage>(c); },
              {.commits = true});
  r.add_stage("test_verdict",
              [](sluice::instance_context& c) { return std::make_shared<verdict_stage>(c); });
  r.add_stage("test_header",
              [](sluice::instance_context& c) { return std::make_shared<header_stage>(c); });
  r.add_stage("test_deferred",
              [](sluice::instance_context& c) { return std::make_shared<deferred_stage>(c); },
              {.commits = false, .default_phase = sluice::phase::deferred});
  r.add_stage("test_asio",
              [](sluice::instance_context& c) { return std::make_shared<asio_stage>(c); });
}

}  // namespace

SLUICE_PLUGIN("testkit", "0.1.0", "stages for testing the kernel (not for production)",
              register_testkit);
