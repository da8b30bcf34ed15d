// plugin_host.hpp — the kernel's side of a plugin, inside a test process: an io_context
// running on its own threads, a worker pool, the kernel's service registry and plugin
// loader. Tests load a real plugin .so and create its services and stages as the kernel
// would, then drive them with run(). Header-only; tests using it link sluice_kernel.
//
// Destruction drops the services (their destructors stop their own work) before the
// io_context threads are joined. Not thread-safe: use it from the test's thread.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <future>
#include <stdexcept>
#include <thread>
#include <vector>

#include "plugin_loader.hpp"
#include "services_impl.hpp"
#include "sluice/plugin.hpp"
#include "sluice_test.hpp"

namespace sluice::test {

class plugin_host final : public host {
 public:
  // Loads the plugins in `plugin_dirs` (default: the build's plugin directory); relative
  // paths in configs resolve against `dir`.
  explicit plugin_host(std::vector<std::string> plugin_dirs = {build_dir() + "/lib/sluice/plugins"},
                       std::filesystem::path dir = std::filesystem::temp_directory_path(),
                       unsigned io_threads = 2)
      : dir_(std::move(dir)) {
    std::vector<std::filesystem::path> dirs(plugin_dirs.begin(), plugin_dirs.end());
    loader_.load_dirs(dirs);
    for (unsigned i = 0; i < io_threads; ++i)
      runners_.emplace_back([this] { ioc_.run(); });
  }
  ~plugin_host() override {
    services_.clear();
    reg_.clear();
    work_.reset();
    for (auto& t : runners_)
      t.join();
    pool_.join();
  }
  plugin_host(const plugin_host&) = delete;
  plugin_host& operator=(const plugin_host&) = delete;

  // Creates a service of factory `plugin` from `yaml` as instance `name`, and reports
  // unknown keys like the kernel does (throws config_error).
  std::shared_ptr<service> make_service(const std::string& plugin, const std::string& yaml,
                                        const std::string& name = "default",
                                        bool check_only = false) {
    const auto* type = loader_.find_service(plugin);
    if (!type) throw std::runtime_error("no service plugin \"" + plugin + "\" was loaded");
    auto cfg = config_node::parse(yaml, plugin + ".yaml");
    instance_context ictx{*this, cfg, name, logger(plugin), check_only};
    auto svc = type->factory(ictx);
    cfg.check_unknown_keys();
    if (svc) services_.push_back(svc);
    return svc;
  }

  std::shared_ptr<stage> make_stage(const std::string& plugin, const std::string& yaml) {
    const auto* type = loader_.find_stage(plugin);
    if (!type) throw std::runtime_error("no stage plugin \"" + plugin + "\" was loaded");
    auto cfg = config_node::parse(yaml, plugin + ".yaml");
    instance_context ictx{*this, cfg, plugin, logger(plugin), false};
    auto s = type->factory(ictx);
    cfg.check_unknown_keys();
    return s;
  }

  // Runs `op` on the io_context and waits for it, at most `limit`.
  template <class T>
  T run(boost::asio::awaitable<T> op, std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto f = boost::asio::co_spawn(ioc_, std::move(op), boost::asio::use_future);
    if (f.wait_for(limit) != std::future_status::ready) {
      throw std::runtime_error("operation did not complete in " + std::to_string(limit.count()) +
                               " s");
    }
    return f.get();
  }

  kernel::plugin_loader& loader() { return loader_; }
  kernel::registry_impl& registry() { return reg_; }

  boost::asio::io_context& io() override { return ioc_; }
  boost::asio::thread_pool& workers() override { return pool_; }
  service_registry& services() override { return reg_; }
  const std::filesystem::path& spool_dir() const override { return dir_; }
  const std::filesystem::path& config_dir() const override { return dir_; }
  std::size_t spill_threshold() const override { return 1 << 20; }
  bool durability_full() const override { return false; }

 private:
  std::filesystem::path dir_;
  kernel::plugin_loader loader_;
  boost::asio::io_context ioc_{2};
  boost::asio::thread_pool pool_{2};
  kernel::registry_impl reg_;
  std::vector<std::shared_ptr<service>> services_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::vector<std::thread> runners_;
};

}  // namespace sluice::test
