// async.hpp — run a blocking function on a thread pool and resume the awaiting coroutine
// on its own executor with the result (or the exception the function threw).
//
// Deliberately not a coroutine: GCC 12 mis-destroys capturing coroutine lambdas handed
// to co_spawn as temporaries, so this uses async_initiate with plain handlers. Tracked
// work keeps the caller's io_context alive until the result is delivered.
#pragma once

#include <exception>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace sluice::store {

// fn() runs on `ex` (a thread pool's executor); R must be default-constructible.
template <class Executor, class F>
auto run_blocking(Executor ex, F fn) -> boost::asio::awaitable<std::invoke_result_t<F&>> {
  namespace asio = boost::asio;
  using result = std::invoke_result_t<F&>;
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, result)>(
      [](auto handler, Executor ex, F fn) {
        auto work = asio::prefer(asio::get_associated_executor(handler),
                                 asio::execution::outstanding_work.tracked);
        asio::post(ex, [handler = std::move(handler), work, fn = std::move(fn)]() mutable {
          std::exception_ptr error;
          result r{};
          try {
            r = fn();
          } catch (...) {
            error = std::current_exception();
          }
          asio::post(work, [handler = std::move(handler), error, r = std::move(r)]() mutable {
            std::move(handler)(error, std::move(r));
          });
        });
      },
      asio::use_awaitable, std::move(ex), std::move(fn));
}

}  // namespace sluice::store
