// store_reader.hpp — opens a store database written by a (stopped) sluice through the real
// store plugin, loaded into the test process, and reads it via its mailbox service.
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <thread>

#include "plugin_loader.hpp"
#include "services_impl.hpp"
#include "sluice/mailbox.hpp"
#include "sluice_test.hpp"

namespace sluice::test {

class store_reader final : public host {
 public:
  // `db` relative to `dir`.
  store_reader(const std::filesystem::path& dir, const std::string& db) : dir_(dir) {
    loader_.load_dirs({build_dir() + "/lib/sluice/plugins"});
    const auto* type = loader_.find_service("store");
    if (!type) throw std::runtime_error("store plugin not found");
    auto cfg = config_node::parse("path: " + db + "\n", "reader.yaml");
    instance_context ictx{*this, cfg, "default", logger("reader"), false};
    svc_ = type->factory(ictx);
    mailbox_ = reg_.get<mailbox_service>();
    runner_ = std::thread([this] { ioc_.run(); });
  }
  ~store_reader() override {
    mailbox_.reset();
    svc_.reset();
    reg_.clear();
    work_.reset();
    runner_.join();
    pool_.join();
  }

  std::optional<std::string> raw(std::string id, bool with_edits) {
    return boost::asio::co_spawn(ioc_, mailbox_->raw(std::move(id), with_edits),
                                 boost::asio::use_future)
        .get();
  }
  std::vector<stored_message> all(const std::string& mailbox = "default") {
    std::vector<stored_message> out;
    mailbox_query q;
    q.mailbox = mailbox;
    q.limit = 1000;
    for (;;) {
      auto page = boost::asio::co_spawn(ioc_, mailbox_->list(q), boost::asio::use_future).get();
      out.insert(out.end(), page.begin(), page.end());
      if (page.size() < q.limit) return out;
      q.offset += q.limit;
    }
  }

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
  boost::asio::io_context ioc_{1};
  boost::asio::thread_pool pool_{2};
  kernel::registry_impl reg_;
  std::shared_ptr<service> svc_;
  std::shared_ptr<mailbox_service> mailbox_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::thread runner_;
};

}  // namespace sluice::test
