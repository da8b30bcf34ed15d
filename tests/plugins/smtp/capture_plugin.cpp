// tests/plugins/smtp/capture_plugin.cpp — `smtp_capture`, a committing stage for the SMTP
// tests only: writes each message's output (raw bytes + header edits) to <dir>/<id>.eml
// on the worker pool, fsyncs, then renames into place. Built into the test's own plugin
// directory, never installed. A failed write becomes a 451 tempfail.
#include <fcntl.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <filesystem>

#include "sluice/sdk.hpp"

namespace {

namespace asio = boost::asio;

bool write_message(const sluice::message& msg, const std::filesystem::path& dir) {
  auto tmp = dir / (msg.id + ".tmp");
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool good = !msg.write_output([&](std::string_view c) {
    return ::write(fd, c.data(), c.size()) == static_cast<ssize_t>(c.size());
  });
  good = good && ::fsync(fd) == 0;
  ::close(fd);
  return good && ::rename(tmp.c_str(), (dir / (msg.id + ".eml")).c_str()) == 0;
}

// A coroutine function (not a capturing lambda) so its arguments live in its own frame.
asio::awaitable<bool> write_on_worker(std::shared_ptr<sluice::message> msg,
                                      std::filesystem::path dir) {
  co_return write_message(*msg, dir);
}

class capture_stage final : public sluice::stage {
 public:
  explicit capture_stage(sluice::instance_context& ctx)
      : host_(ctx.host), dir_(ctx.host.config_dir() / ctx.config.at("dir").as_string()) {
    std::filesystem::create_directories(dir_);
  }
  asio::awaitable<sluice::verdict> process(std::shared_ptr<sluice::message> msg,
                                           const sluice::stage_call&) override {
    bool ok =
        co_await asio::co_spawn(host_.workers(), write_on_worker(msg, dir_), asio::use_awaitable);
    if (!ok) co_return sluice::verdict::tempfail(451, "4.3.0", "cannot store message");
    co_return sluice::verdict::next();
  }

 private:
  sluice::host& host_;
  std::filesystem::path dir_;
};

void register_capture(sluice::registrar& r) {
  r.add_stage("smtp_capture",
              [](sluice::instance_context& c) { return std::make_shared<capture_stage>(c); },
              {.commits = true});
}

}  // namespace

SLUICE_PLUGIN("smtp_capture", "0.1.0", "message capture stage for the smtp tests",
              register_capture);
