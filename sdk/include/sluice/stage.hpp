// sluice/stage.hpp — a step of a pipeline.
//
// A stage looks at (and may edit) a message and returns a verdict. Inline stages run
// while the client waits; deferred stages run after the reply, from the spool, with
// retries. The kernel bounds every call with the instance's `timeout` and applies its
// `on_error` policy when the stage throws, times out or fails; a stage therefore reports
// ordinary failures as verdicts and may leave the unexpected to the runner.
//
// Cancellation: on timeout the kernel emits a cancellation on the coroutine's
// cancellation slot (terminal) and stops waiting; a stage should stop promptly but its
// frame may outlive the call, so it must hold shared ownership of anything it touches.
// A committing stage (stage_traits::commits) is awaited for its timeout once more (at least
// 60 s) after the cancellation. It either withdraws a write that has not started, by
// calling sluice::withdraw() (below: nothing was stored, the call counts as timed out and
// `on_error` applies), or finishes and gives its real answer, which then stands whatever it
// is (a message it made durable is acknowledged rather than stored again when the client
// retries; a genuine tempfail stays a tempfail). Once its coroutine is cancelled every
// later co_await throws, so such a stage starts with
// `co_await boost::asio::this_coro::throw_if_cancelled(false)` and checks
// `(co_await this_coro::cancellation_state).cancelled()` itself before it commits.
//
// Threading: process() is called on an I/O thread, possibly concurrently for different
// messages: stages must be safe for concurrent calls.
#pragma once

#include <memory>
#include <string>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include "sluice/host.hpp"
#include "sluice/message.hpp"
#include "sluice/verdict.hpp"

namespace sluice {

enum class phase : std::uint8_t { inline_, deferred };

struct stage_call {
  sluice::phase phase = phase::inline_;
  unsigned attempt = 1;  // deferred: 1 on the first try, then 2, 3, …
  std::string pipeline;  // pipeline instance name
  sluice::logger log;    // carries stage, pipeline and message id
};

class stage {
 public:
  virtual ~stage() = default;
  virtual boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                                  const stage_call& call) = 0;

  // Called by the pipeline for each of its inline stages before the first one runs, with the
  // message as received. A stage that will look something up may start that now (e.g.
  // resolver::prefetch_txt) so that the answer is on its way while the stages before it work.
  // It must be cheap, must not block or change the message, and must not be relied on:
  // process() gives the same verdict whether or not it was called. Exceptions are logged and
  // ignored. The default does nothing.
  virtual void prefetch(const message& msg) { (void)msg; }
};

// Called by a committing stage that gives up its write because the call was cancelled (its
// timeout) before the write started: nothing was stored. It throws operation_aborted, which
// is also what a co_await of a cancelled coroutine throws, so a stage that does not catch
// that exception withdraws the same way. The kernel counts the call as timed out.
[[noreturn]] inline void withdraw() {
  throw boost::system::system_error(boost::asio::error::operation_aborted,
                                    "withdrawn after cancellation");
}

// Declared by a stage type when it registers.
struct stage_traits {
  // The stage makes the message durable (a store). A message is acknowledged only after
  // every committing stage of its pipeline succeeded, or after it was spooled.
  bool commits = false;
  // Phase used when the config does not say: inline, or deferred (relay, webhook).
  sluice::phase default_phase = phase::inline_;
};

}  // namespace sluice
