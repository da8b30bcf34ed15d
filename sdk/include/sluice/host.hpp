// sluice/host.hpp — what the kernel offers every plugin instance.
//
// One io_context runs on one thread per core: plugins put their sockets, timers and
// strands on it (there is one Asio implementation in the process, compiled into
// libsluice_sdk.so). Blocking work (SQLite, large parses, hashing) goes to workers()
// via sluice::offload, never onto the I/O threads.
//
// The host outlives every plugin object. Thread-safe.
#pragma once

#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "sluice/config.hpp"
#include "sluice/log.hpp"
#include "sluice/services.hpp"

namespace sluice {

class host {
 public:
  virtual ~host() = default;
  virtual boost::asio::io_context& io() = 0;
  virtual boost::asio::thread_pool& workers() = 0;
  virtual service_registry& services() = 0;
  // Where the kernel keeps its spool; bodies too big for memory spill here.
  virtual const std::filesystem::path& spool_dir() const = 0;
  // The directory relative paths in the config are resolved against.
  virtual const std::filesystem::path& config_dir() const = 0;
  // Bodies larger than this spill to a file in spool_dir().
  virtual std::size_t spill_threshold() const = 0;
  // "normal" (survives SIGKILL) or "full" (also power loss: fsync per commit).
  virtual bool durability_full() const = 0;
};

// What a factory receives: the host, its own config map, its instance name, a logger.
struct instance_context {
  sluice::host& host;
  const config_node& config;
  std::string name;
  sluice::logger log;
  // `sluice check-config`: validate the config and return an object that is never
  // started; open no files, sockets or threads, and expect services to be inert.
  bool check_only = false;
};

// Runs fn() on `pool` and resumes the caller on its own executor with the result (or
// the exception fn threw). fn must return a value (not void).
//
// Implemented with async_initiate rather than a capturing coroutine lambda: GCC 12
// destroys the captures of a lambda coroutine passed to co_spawn twice.
template <class F>
auto offload(boost::asio::thread_pool& pool, F fn) -> boost::asio::awaitable<decltype(fn())> {
  using result = decltype(fn());
  return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                     void(std::exception_ptr, result)>(
      [&pool](auto handler, F f) {
        boost::asio::post(pool, [h = std::move(handler), f = std::move(f)]() mutable {
          std::exception_ptr error;
          std::optional<result> value;
          try {
            value.emplace(f());
          } catch (...) {
            error = std::current_exception();
          }
          auto ex = boost::asio::get_associated_executor(h);
          boost::asio::dispatch(ex, [h = std::move(h), error, value = std::move(value)]() mutable {
            if (error) {
              std::move(h)(error, result{});
            } else {
              std::move(h)(nullptr, std::move(*value));
            }
          });
        });
      },
      boost::asio::use_awaitable, std::move(fn));
}

template <class F>
auto offload(host& h, F fn) -> boost::asio::awaitable<decltype(fn())> {
  return offload(h.workers(), std::move(fn));
}

}  // namespace sluice
