// server.cpp — see server.hpp.
#include "server.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <mutex>
#include <thread>

#include "pipeline.hpp"
#include "services_impl.hpp"
#include "sluice/submit.hpp"
#include "spool.hpp"

namespace sluice::kernel {

namespace asio = boost::asio;

namespace {

class listener_ctx final : public listener_context {
 public:
  listener_ctx(pipeline_runner* runner, std::string pipeline, std::shared_ptr<gate> g)
      : runner_(runner), pipeline_(std::move(pipeline)), gate_(std::move(g)) {}
  asio::awaitable<submit_result> submit(std::shared_ptr<message> msg) override {
    if (!runner_) {
      auto v = verdict::local_error();
      co_return submit_result{v.kind, v.reply, {}};
    }
    co_return co_await runner_->submit(pipeline_, std::move(msg));
  }
  const std::string& pipeline() const override { return pipeline_; }
  std::shared_ptr<gate> drain_gate() const override { return gate_; }

 private:
  pipeline_runner* runner_;
  std::string pipeline_;
  std::shared_ptr<gate> gate_;
};

// The `pipelines` service (sluice/submit.hpp): plugins submit into a named pipeline
// through the same runner the listeners use.
class pipelines_service final : public pipeline_service {
 public:
  explicit pipelines_service(pipeline_runner* runner) : runner_(runner) {}
  bool has(std::string_view name) const override {
    auto set = visible();
    return set && set->pipelines.count(std::string(name)) > 0;
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    if (auto set = visible()) {
      for (auto& [n, p] : set->pipelines)
        out.push_back(n);
    }
    return out;
  }
  // While a reload validates the new listener sections, has() and names() answer for the
  // pipelines of the new file (not yet in force); null again when it is done.
  void set_candidate(std::shared_ptr<const pipeline_set> s) {
    std::lock_guard lock(mu_);
    candidate_ = std::move(s);
  }
  asio::awaitable<submit_result> submit(std::string name, std::shared_ptr<message> msg) override {
    co_return co_await runner_->submit(std::move(name), std::move(msg));
  }

 private:
  std::shared_ptr<const pipeline_set> visible() const {
    {
      std::lock_guard lock(mu_);
      if (candidate_) return candidate_;
    }
    return runner_->current();
  }
  pipeline_runner* runner_;  // owned by the server, which outlives the registry's users
  mutable std::mutex mu_;
  std::shared_ptr<const pipeline_set> candidate_;
};

// CPUs this process may run on (taskset, cgroup cpusets), not all CPUs of the machine:
// one I/O thread per usable core.
unsigned cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

struct server::impl final : host {
  server_options opts;
  kernel_config cfg;
  plugin_loader loader;
  std::unique_ptr<asio::io_context> io_ctx;
  std::unique_ptr<asio::thread_pool> pool;
  registry_impl registry;
  std::shared_ptr<metrics_impl> metrics_svc = std::make_shared<metrics_impl>();
  std::shared_ptr<events_impl> events_svc = std::make_shared<events_impl>();
  std::unique_ptr<pipeline_runner> runner;
  std::shared_ptr<spool> spool_q;
  std::vector<std::shared_ptr<service>> service_objs;
  std::vector<std::unique_ptr<listener_ctx>> listener_ctxs;
  std::vector<std::pair<std::string, std::shared_ptr<listener>>> listeners;
  std::shared_ptr<pipelines_service> pipelines_svc;
  std::shared_ptr<gate> drain_gate = gate::make();
  logger log{"kernel"};
  std::filesystem::path incoming;
  std::filesystem::path cfg_dir;
  // log.file, opened by build() and reopened on reload (log rotation); -1: standard error.
  // The descriptor number never changes once opened: a reload dup2()s the new file onto it,
  // so a line being written concurrently never goes to a closed or reused descriptor.
  int log_fd = -1;
  void open_log(const kernel_config& c);
  std::atomic<bool> draining{false};  // read by posted reloads on any io thread
  // The drain did not finish: shutdown_timeout or a second signal stopped it (exit 75).
  std::atomic<bool> forced_stop{false};
  std::atomic<bool> drained{false};  // the drain finished (sessions and deferred attempts)
  // A reload is posted and has not started yet: further SIGHUPs fold into it.
  std::atomic<bool> reload_queued{false};

  // host
  asio::io_context& io() override { return *io_ctx; }
  asio::thread_pool& workers() override { return *pool; }
  sluice::service_registry& services() override { return registry; }
  const std::filesystem::path& spool_dir() const override { return incoming; }
  const std::filesystem::path& config_dir() const override { return cfg_dir; }
  std::size_t spill_threshold() const override { return cfg.spill_threshold; }
  bool durability_full() const override { return cfg.durability_full; }

  std::shared_ptr<const pipeline_set> build_pipelines(const kernel_config& c, bool check_only);
  void make_services(const kernel_config& c, bool build_them);
  void make_listeners(const kernel_config& c, bool build_them);
  void write_ready_file();
  void start_signals(asio::signal_set& signals);
  void drain();
  void reload();
  kernel_config load() const {
    if (opts.config_text.empty()) return load_kernel_config(opts.config_file);
    return parse_kernel_config(opts.config_text, opts.config_name, std::filesystem::current_path());
  }
};

std::shared_ptr<const pipeline_set> server::impl::build_pipelines(const kernel_config& c,
                                                                  bool check_only) {
  auto set = std::make_shared<pipeline_set>();
  for (const auto& pc : c.pipelines) {
    auto p = std::make_shared<pipeline>();
    p->name = pc.name;
    bool commits = false;
    for (const auto& sc : pc.stages) {
      const auto* type = loader.find_stage(sc.plugin);
      if (!type) {
        sc.node.at("plugin").fail("unknown stage plugin \"" + sc.plugin +
                                  "\" (known: " + loader.known_stages() + ")");
      }
      stage_instance si;
      si.name = sc.name;
      si.plugin = sc.plugin;
      si.traits = type->traits;
      si.phase = sc.phase.value_or(type->traits.default_phase);
      si.timeout = sc.timeout;
      si.on_error = sc.on_error;
      si.retry = sc.retry;
      si.after = sc.after;
      si.when = sc.when;
      if (!si.after.empty()) {
        if (si.phase != phase::deferred)
          sc.node.at("after").fail("after orders deferred stages; stage \"" + sc.name +
                                   "\" runs inline");
        if (!p->find_deferred(si.after))
          sc.node.at("after").fail("\"" + si.after +
                                   "\" is not a deferred stage earlier in pipeline \"" + pc.name +
                                   "\"");
      }
      if (si.traits.commits && si.phase == phase::deferred) {
        sc.node.fail("stage \"" + sc.name + "\" makes messages durable and must run inline");
      }
      if (si.traits.commits && si.on_error != on_error_policy::tempfail &&
          si.on_error != on_error_policy::reject) {
        sc.node.at("on_error")
            .fail(
                "a stage that makes messages durable must fail with tempfail or reject, otherwise "
                "a message could be acknowledged without being stored");
      }
      instance_context ictx{*this, sc.node, sc.name, logger("stage/" + sc.name), check_only};
      si.impl = type->factory(ictx);
      if (!si.impl && !check_only) sc.node.fail("the plugin created no stage");
      si.duration =
          &static_cast<sluice::metrics&>(*metrics_svc)
               .get_histogram("sluice_stage_duration_seconds", "Time spent in each stage call",
                              {{"pipeline", pc.name}, {"stage", sc.name}});
      if (si.phase == phase::inline_) {
        commits = commits || si.traits.commits;
        p->inline_stages.push_back(std::move(si));
      } else {
        p->deferred_stages.push_back(std::move(si));
      }
    }
    if (!commits && p->deferred_stages.empty()) {
      pc.node.fail("pipeline \"" + pc.name +
                   "\" never makes a message durable: add a storing stage (e.g. store) or a "
                   "deferred stage");
    }
    set->pipelines.emplace(pc.name, std::move(p));
  }
  return set;
}

// Runs the factories of services (and below, of listeners). With build_them false
// (check-config and reload) they only validate their configuration.
void server::impl::make_services(const kernel_config& c, bool build_them) {
  for (const auto& sc : c.services) {
    const auto* type = loader.find_service(sc.plugin);
    if (!type) {
      sc.node.at("plugin").fail("unknown service plugin \"" + sc.plugin +
                                "\" (known: " + loader.known_services() + ")");
    }
    instance_context ictx{*this, sc.node, sc.name, logger("service/" + sc.name), !build_them};
    auto svc = type->factory(ictx);
    if (build_them) service_objs.push_back(std::move(svc));
  }
}

void server::impl::make_listeners(const kernel_config& c, bool build_them) {
  for (const auto& lc : c.listeners) {
    const auto* type = loader.find_listener(lc.plugin);
    if (!type) {
      lc.node.at("plugin").fail("unknown listener plugin \"" + lc.plugin +
                                "\" (known: " + loader.known_listeners() + ")");
    }
    instance_context ictx{*this, lc.node, lc.name, logger("listener/" + lc.name), !build_them};
    auto ctx = std::make_unique<listener_ctx>(build_them ? runner.get() : nullptr, lc.pipeline,
                                              drain_gate);
    auto l = type->factory(ictx, *ctx);
    if (build_them) {
      if (!l) lc.node.fail("the plugin created no listener");
      listeners.emplace_back(lc.name, std::move(l));
      listener_ctxs.push_back(std::move(ctx));
    }
  }
}

server::server(server_options opts) : impl_(std::make_unique<impl>()) {
  impl_->opts = std::move(opts);
}

server::~server() {
  if (!impl_) return;
  // Order matters: sessions and listeners first, then stages, then the services they use.
  impl_->listeners.clear();
  impl_->listener_ctxs.clear();
  if (impl_->runner) impl_->runner->swap(nullptr);
  impl_->service_objs.clear();
  impl_->registry.clear();
  impl_->spool_q.reset();
  if (impl_->pool) impl_->pool->join();
}

const plugin_loader& server::plugins() const {
  return impl_->loader;
}
const kernel_config& server::config() const {
  return impl_->cfg;
}

namespace {

// The signals the kernel handles. From build() on they are blocked in the thread that
// builds and runs the server, so every thread started after that (plugins' threads, the
// spool's, run()'s io threads, those of a reload) inherits the block and none of them can
// ever take a signal's default action. run() unblocks them in its own thread only, while
// the io_context runs: the signal_set's handler then always runs on that thread, and the
// teardown after run() can block them again before the signal_set (whose destructor
// restores SIG_DFL) goes away.
sigset_t handled_signals() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGTERM);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGHUP);
  return s;
}

void mask_handled_signals(int how) {
  const sigset_t s = handled_signals();
  ::pthread_sigmask(how, &s, nullptr);
}

}  // namespace

void server::impl::open_log(const kernel_config& c) {
  if (c.log_file.empty()) {
    configure_logging(c.log_format, c.log_level);
    return;
  }
  int fd = ::open(c.log_file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
  if (fd < 0) {
    throw std::runtime_error("log.file: cannot open \"" + c.log_file.string() +
                             "\": " + std::strerror(errno));
  }
  if (log_fd < 0) {
    log_fd = fd;
  } else {
    if (::dup2(fd, log_fd) < 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error(std::string("log.file: dup2: ") + std::strerror(e));
    }
    ::close(fd);
  }
  configure_logging(c.log_format, c.log_level, log_fd);
}

void server::build() {
  mask_handled_signals(SIG_BLOCK);
  auto& k = *impl_;
  k.cfg = k.load();
  k.cfg_dir = k.cfg.dir;
  k.open_log(k.cfg);
  k.loader.load_dirs(plugin_search_path(k.opts.plugin_dirs, k.cfg.plugin_path));
  for (const auto& p : k.loader.plugins()) {
    if (!p.loaded) k.log.warn("plugin refused", {{"path", p.path.string()}, {"reason", p.refusal}});
  }
  const unsigned io_threads = k.cfg.io_threads ? k.cfg.io_threads : cores();
  k.io_ctx = std::make_unique<asio::io_context>(static_cast<int>(io_threads));
  k.pool = std::make_unique<asio::thread_pool>(k.cfg.worker_threads ? k.cfg.worker_threads
                                                                    : std::max(2u, cores()));
  k.incoming = k.cfg.spool_dir / "incoming";
  k.registry.add(metrics::kind, "default", k.metrics_svc);
  k.registry.add(events::kind, "default", k.events_svc);
  k.runner = std::make_unique<pipeline_runner>(*k.io_ctx, *k.metrics_svc, logger("pipeline"));
  k.pipelines_svc = std::make_shared<pipelines_service>(k.runner.get());
  k.registry.add(pipeline_service::kind, "default", k.pipelines_svc);
  const bool check = k.opts.check_only;
  if (!check) {
    k.spool_q = std::make_shared<spool>(*k.io_ctx, *k.pool, k.cfg.spool_dir, k.cfg.durability_full,
                                        k.cfg.spool_min_free_space, *k.runner, *k.metrics_svc,
                                        k.events_svc.get(), logger("spool"));
    k.spool_q->prepare();
    k.runner->set_spool(k.spool_q.get());
  }
  // Services first: stages and listeners look them up (or, checking, what they declare).
  k.registry.clear_declarations();
  k.make_services(k.cfg, !check);
  k.runner->swap(k.build_pipelines(k.cfg, check));
  k.make_listeners(k.cfg, !check);
  for (const auto& doc : k.cfg.documents)
    doc.check_unknown_keys();
  check_listen_conflicts(k.cfg);  // after: it reads `listen` of every listener
}

void server::impl::write_ready_file() {
  if (opts.ready_file.empty()) return;
  boost::json::object o;
  o["pid"] = static_cast<std::int64_t>(::getpid());
  boost::json::object ls;
  for (auto& [name, l] : listeners) {
    boost::json::array eps;
    for (auto& e : l->endpoints())
      eps.push_back(boost::json::string(e));
    ls[name] = std::move(eps);
  }
  o["listeners"] = std::move(ls);
  auto tmp = opts.ready_file;
  tmp += ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << boost::json::serialize(o) << "\n";
  }
  std::filesystem::rename(tmp, opts.ready_file);
}

namespace {

// A configuration section as text, for telling whether a reload changed it (after
// check_unknown_keys: reading every entry marks it as known).
std::string canonical(const config_node& n) {
  std::string out;
  if (n.is_map()) {
    out = "{";
    for (const auto& [k, v] : n.entries())
      out += k + ":" + canonical(v) + ",";
    return out + "}";
  }
  if (n.is_sequence()) {
    out = "[";
    for (const auto& v : n.items())
      out += canonical(v) + ",";
    return out + "]";
  }
  if (n.is_null()) return "~";
  return "\"" + n.as_string() + "\"";
}

// The names of the listeners or services whose section differs between the two sets.
std::string changed_sections(const std::vector<instance_config>& running,
                             const std::vector<instance_config>& next) {
  std::string changed;
  auto note = [&](const std::string& name) { changed += (changed.empty() ? "" : ", ") + name; };
  for (const auto& n : next) {
    auto it = std::find_if(running.begin(), running.end(),
                           [&](const instance_config& r) { return r.name == n.name; });
    if (it == running.end() || canonical(it->node) != canonical(n.node)) note(n.name);
  }
  for (const auto& r : running) {
    if (std::none_of(next.begin(), next.end(),
                     [&](const instance_config& n) { return n.name == r.name; })) {
      note(r.name);
    }
  }
  return changed;
}

}  // namespace

void server::impl::reload() {
  log.info("reloading configuration",
           {{"file", opts.config_text.empty() ? opts.config_file.string() : opts.config_name}});
  try {
    auto next = load();
    // Services and listeners keep running; their sections are validated so the whole
    // file is checked, but changes to them take effect only after a restart.
    registry.clear_declarations();
    make_services(next, false);
    auto set = build_pipelines(next, false);
    {
      // Listener sections that name pipelines (http's release_pipeline) are checked
      // against the new file's pipelines.
      pipelines_svc->set_candidate(set);
      struct reset {
        pipelines_service* svc;
        ~reset() { svc->set_candidate(nullptr); }
      } guard{pipelines_svc.get()};
      make_listeners(next, false);
    }
    for (const auto& doc : next.documents)
      doc.check_unknown_keys();
    check_listen_conflicts(next);
    // The running listeners keep the pipeline they were started with: the new set must
    // still have it, or every message they take would fail.
    for (const auto& l : cfg.listeners) {
      if (!l.pipeline.empty() && !set->pipelines.count(l.pipeline)) {
        throw config_error("listener \"" + l.name + "\" runs pipeline \"" + l.pipeline +
                           "\", which the new configuration does not define (listeners keep "
                           "their pipeline until a restart)");
      }
    }
    // Nor may it lose a pipeline a running listener submits into by its own section (the
    // http listener's release_pipeline), whatever the new file says for that section.
    for (const auto& [name, l] : listeners) {
      for (const auto& p : l->pipelines_used()) {
        if (!set->pipelines.count(p)) {
          throw config_error("listener \"" + name + "\" submits into pipeline \"" + p +
                             "\", which the new configuration does not define (listeners keep "
                             "their configuration until a restart)");
        }
      }
    }
    const std::string listeners_changed = changed_sections(cfg.listeners, next.listeners);
    const std::string services_changed = changed_sections(cfg.services, next.services);
    open_log(next);  // may throw: then nothing of the new configuration is in force
    runner->swap(std::move(set));
    log.info("configuration reloaded", {{"pipelines", next.pipelines.size()}});
    if (!listeners_changed.empty() || !services_changed.empty()) {
      log.warn("changed listeners and services keep running as they were until a restart",
               {{"listeners", listeners_changed}, {"services", services_changed}});
    }
  } catch (const std::exception& e) {
    log.error("reload failed; the previous configuration stays in force", {{"error", e.what()}});
  }
}

void server::impl::drain() {
  if (draining) return;
  draining = true;
  log.info("draining", {{"sessions", drain_gate->count()}});
  for (auto& [name, l] : listeners)
    l->stop();
  auto remaining = std::make_shared<std::atomic<int>>(2);
  auto* ioc = io_ctx.get();
  auto done = [this, ioc, remaining]() {
    asio::post(*ioc, [this, ioc, remaining]() {
      if (remaining->fetch_sub(1) == 1) {
        drained = true;  // the timer may still fire before the threads stop: not forced
        ioc->stop();
      }
    });
  };
  drain_gate->close(done);
  if (spool_q) {
    spool_q->stop();
    spool_q->attempts_gate()->close(done);
  } else {
    done();
  }
  auto timer = std::make_shared<asio::steady_timer>(*io_ctx, cfg.shutdown_timeout);
  timer->async_wait([timer, ioc, this](boost::system::error_code ec) {
    if (ec || drained) return;
    log.warn("shutdown timeout reached; stopping with work in flight",
             {{"sessions", drain_gate->count()}});
    forced_stop = true;
    ioc->stop();
  });
}

void server::impl::start_signals(asio::signal_set& signals) {
  signals.async_wait([this, &signals](boost::system::error_code ec, int sig) {
    if (ec) return;
    if (sig == SIGHUP) {
      // The reload runs as its own handler and SIGHUPs that arrive before it starts fold
      // into it, so this handler stays short: asio hands out pending signals lowest number
      // first, and a slow reload per SIGHUP let a stream of them starve SIGTERM (1 < 15).
      // Once draining, a reload is pointless and is skipped.
      if (draining) {
        log.debug("reload skipped: draining");
      } else if (!reload_queued.exchange(true)) {
        asio::post(*io_ctx, [this] {
          reload_queued = false;
          if (!draining) reload();
        });
      }
    } else if (draining) {
      log.warn("second signal: stopping now");
      if (!drained) forced_stop = true;
      io_ctx->stop();
      return;
    } else {
      drain();
    }
    start_signals(signals);
  });
}

int server::run() {
  auto& k = *impl_;
  auto signals = std::make_unique<asio::signal_set>(*k.io_ctx, SIGTERM, SIGINT, SIGHUP);
  k.start_signals(*signals);
  for (auto& [name, l] : k.listeners) {
    // Name the listener and where it is configured: the address may be the plugin's
    // default, which no `listen` key in the file shows.
    const std::string& lname = name;
    auto located = [&](std::error_code code, const std::string& what) {
      auto lc = std::find_if(k.cfg.listeners.begin(), k.cfg.listeners.end(),
                             [&](const instance_config& c) { return c.name == lname; });
      std::string prefix = "listener \"" + lname + "\"";
      if (lc != k.cfg.listeners.end()) {
        prefix = lc->node.where() + ": " + lc->node.path() + " (" + prefix + ")";
      }
      // what() is "<what>: <error text>"; the new error appends the text again.
      return std::system_error(code, prefix + ": " + what.substr(0, what.rfind(": ")));
    };
    try {
      l->start();
    } catch (const std::system_error& e) {
      throw located(e.code(), e.what());
    } catch (const boost::system::system_error& e) {
      throw located(std::error_code(e.code()), e.what());
    }
    for (auto& e : l->endpoints())
      k.log.info("listening", {{"listener", name}, {"address", e}});
  }
  k.spool_q->recover();
  k.write_ready_file();
  const unsigned n = k.cfg.io_threads ? k.cfg.io_threads : cores();
  std::vector<std::thread> threads;
  // build() blocked the signals in this thread, so the io threads start with them blocked.
  for (unsigned i = 1; i < n; ++i)
    threads.emplace_back([&k] { k.io_ctx->run(); });
  mask_handled_signals(SIG_UNBLOCK);  // signals are taken by this thread only
  k.io_ctx->run();
  // From here on the process only tears down: a further SIGTERM/SIGINT must not kill it
  // half-way. No other thread takes these signals (see handled_signals), so blocking
  // them here leaves them pending while the signal_set's destructor restores SIG_DFL;
  // ignoring them then discards what is pending and anything that comes later.
  mask_handled_signals(SIG_BLOCK);
  for (auto& t : threads)
    t.join();
  signals.reset();
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);
  if (k.forced_stop) {
    // Nothing acknowledged is lost (the spool and the store are durable), but sessions and
    // deferred attempts were cut off: a supervisor should see that the drain failed.
    k.log.warn("stopped before the drain finished");
    return 75;  // EX_TEMPFAIL
  }
  k.log.info("stopped");
  return 0;
}

}  // namespace sluice::kernel
