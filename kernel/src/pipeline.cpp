// pipeline.cpp — the inline phase, timeouts, on_error and the commit point.
#include "pipeline.hpp"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

#include "spool.hpp"

namespace sluice::kernel {

namespace asio = boost::asio;

const stage_instance* pipeline::find_deferred(const std::string& stage) const {
  for (const auto& s : deferred_stages) {
    if (s.name == stage) return &s;
  }
  return nullptr;
}

verdict apply_on_error(on_error_policy p) {
  switch (p) {
    case on_error_policy::tempfail:
      return verdict::local_error();
    case on_error_policy::reject:
      return verdict::reject(554, "5.3.0", "Transaction failed: local error in processing");
    case on_error_policy::continue_:
      return verdict::next();
    case on_error_policy::accept:
      return verdict::accept();
  }
  return verdict::local_error();
}

pipeline_runner::pipeline_runner(asio::io_context& io, sluice::metrics& m, sluice::logger log)
    : io_(io), metrics_(m), log_(std::move(log)) {}

void pipeline_runner::swap(std::shared_ptr<const pipeline_set> set) {
  std::lock_guard lock(mu_);
  current_ = std::move(set);
}

std::shared_ptr<const pipeline_set> pipeline_runner::current() const {
  std::lock_guard lock(mu_);
  return current_;
}

namespace {

// How long a committing stage is awaited after its timeout's cancellation: its timeout
// again, at least kCommitGrace, and never past kReplyBound in all (the SMTP client waits 10
// minutes for the reply to its final dot, RFC 5321 4.5.3.2.6).
constexpr std::chrono::milliseconds kCommitGrace{60000};
constexpr std::chrono::milliseconds kReplyBound{600000};

// The stage gave up its work because it was cancelled: sluice::withdraw(), or a co_await
// of the cancelled coroutine.
bool withdrawn(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const boost::system::system_error& se) {
    return se.code() == asio::error::operation_aborted;
  } catch (...) {
  }
  return false;
}

std::chrono::milliseconds commit_grace(std::chrono::milliseconds timeout) {
  if (timeout >= kReplyBound) return std::chrono::milliseconds(0);
  return std::min(std::max(timeout, kCommitGrace), kReplyBound - timeout);
}

// Shared between the waiting coroutine and the stage's completion. Everything in here is
// touched only on `strand`, so no further locking is needed.
struct call_state {
  explicit call_state(asio::strand<asio::io_context::executor_type> s) : strand(s), timer(s) {}
  asio::strand<asio::io_context::executor_type> strand;
  asio::steady_timer timer;
  asio::cancellation_signal cancel;
  bool settled = false;
  bool timed_out = false;  // the timeout fired and the cancellation was emitted
  std::optional<verdict> result;
  std::exception_ptr error;
  // What process() gets by reference: here, because the stage's frame may outlive the
  // waiting coroutine (a timeout), and this state lives until the stage completes.
  std::optional<stage_call> call;
};

// Runs entirely on st->strand: the stage's completion and the timeout race there. A plain
// function (not a capturing lambda) because GCC 12 mishandles lambda coroutine captures.
//
// A committing stage is not abandoned at its timeout: once cancelled it is awaited for
// commit_grace() more. One that can still withdraw its write answers at once (the store:
// sluice::withdraw(), nothing written); one past that point (the store's transaction is committing)
// gives its real answer, so a message it stored is acknowledged instead of being stored a
// second time on the client's retry. Only a stage that answers neither way is given up on.
asio::awaitable<void> race_with_timeout(std::shared_ptr<call_state> st,
                                        std::shared_ptr<sluice::stage> impl,
                                        std::shared_ptr<message> msg, stage_call call,
                                        std::chrono::milliseconds timeout, bool commits) {
  st->call.emplace(std::move(call));
  asio::co_spawn(
      st->strand, impl->process(msg, *st->call),
      asio::bind_cancellation_slot(
          st->cancel.slot(), asio::bind_executor(st->strand, [st](std::exception_ptr e, verdict v) {
            if (st->settled) return;  // too late: the runner gave up on it
            st->settled = true;
            if (e) {
              st->error = e;
            } else {
              st->result = std::move(v);
            }
            // Any wait, even one not yet started, now completes at once.
            st->timer.expires_at(asio::steady_timer::time_point::min());
          })));
  if (!st->settled) {
    st->timer.expires_after(timeout);
    co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
  if (!st->settled) {
    st->timed_out = true;
    if (!commits) st->settled = true;  // its answer, if it still gives one, is too late
    st->cancel.emit(asio::cancellation_type::terminal);
    if (commits && !st->settled) {
      st->timer.expires_after(commit_grace(timeout));
      co_await st->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  st->settled = true;
}

}  // namespace

asio::awaitable<verdict> pipeline_runner::call_stage(const stage_instance& s,
                                                     std::shared_ptr<message> msg,
                                                     stage_call call) {
  const auto started = std::chrono::steady_clock::now();
  auto st = std::make_shared<call_state>(asio::make_strand(io_));
  auto impl = s.impl;  // the stage object must outlive a timed-out call
  auto log = call.log;
  try {
    auto race = race_with_timeout(st, impl, msg, std::move(call), s.timeout, s.traits.commits);
    co_await asio::co_spawn(st->strand, std::move(race), asio::use_awaitable);
  } catch (...) {
    st->error = std::current_exception();
  }
  if (s.duration) {
    s.duration->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  verdict v;
  if (st->timed_out && st->result) {
    // A committing stage awaited after the cancellation that finished its work: its answer
    // stands, a tempfail too. A withdrawal (sluice::withdraw()) or a failure then is the
    // timeout, below.
    log.warn("stage finished after its timeout; its answer stands",
             {{"timeout_ms", static_cast<std::int64_t>(s.timeout.count())},
              {"verdict", std::string(to_string(st->result->kind))}});
    metrics_
        .get_counter("sluice_stage_errors_total", "Stage calls that threw or timed out",
                     {{"stage", s.name}, {"reason", "late"}})
        .inc();
    v = std::move(*st->result);
  } else if (st->result && !st->timed_out) {
    v = std::move(*st->result);
  } else if (st->error && !st->timed_out) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(st->error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    log.error("stage failed", {{"error", what}});
    metrics_
        .get_counter("sluice_stage_errors_total", "Stage calls that threw or timed out",
                     {{"stage", s.name}, {"reason", "error"}})
        .inc();
    v = apply_on_error(s.on_error);
  } else {
    // After the cancellation: nothing (given up on), a withdrawal, or some other failure.
    const char* outcome = !st->error ? "no answer" : withdrawn(st->error) ? "withdrawn" : "failed";
    log.error("stage timed out",
              {{"timeout_ms", static_cast<std::int64_t>(s.timeout.count())}, {"outcome", outcome}});
    metrics_
        .get_counter("sluice_stage_errors_total", "Stage calls that threw or timed out",
                     {{"stage", s.name}, {"reason", "timeout"}})
        .inc();
    v = apply_on_error(s.on_error);
  }
  co_return v;
}

asio::awaitable<submit_result> pipeline_runner::submit(std::string name,
                                                       std::shared_ptr<message> msg) {
  submit_result result;
  auto set = current();
  std::shared_ptr<const pipeline> p;
  if (set) {
    auto it = set->pipelines.find(name);
    if (it != set->pipelines.end()) p = it->second;
  }
  if (!p) {
    log_.error("no such pipeline", {{"pipeline", name}});
    auto v = verdict::local_error();
    co_return submit_result{v.kind, v.reply, {}};
  }
  if (msg->id.empty()) msg->id = make_message_id();
  auto mlog = log_.with({"pipeline", p->name}).with({"msg", msg->id});

  // Lookahead: stages may start the lookups they will need (stage::prefetch), so that a
  // later stage's DNS answer is on its way while the earlier stages wait for theirs.
  for (const auto& s : p->inline_stages) {
    try {
      s.impl->prefetch(*msg);
    } catch (const std::exception& e) {
      mlog.warn("stage prefetch failed", {{"stage", s.name}, {"error", e.what()}});
    }
  }
  // A pipeline with deferred stages needs the spool as well as its committing stages. The
  // message is held in the spool before the first committing stage runs and released into
  // it after the inline phase: a spool that cannot take it fails the message before a store
  // has it, so the client's retry does not store it twice.
  const bool spooled = !p->deferred_stages.empty();
  std::optional<spool::held> held;
  // A run that ends by an exception, or whose frame is destroyed (a forced stop), removes
  // what it held; the normal ends release or drop it and reset `held`.
  struct held_guard {
    std::shared_ptr<spool> sp;  // a frame destroyed after a forced stop outlives the server's
    std::optional<spool::held>& h;
    ~held_guard() {
      if (h && sp) sp->drop_now(h->id);
    }
  } guard{spooled && spool_ ? spool_->shared_from_this() : nullptr, held};
  auto spool_failed = [&](std::error_code ec) {
    mlog.error("spool write failed", {{"error", ec.message()}});
    auto v = is_disk_full(ec) ? verdict::insufficient_storage()
                              : verdict::tempfail(451, "4.3.0",
                                                  "Requested action aborted: cannot queue message");
    return submit_result{v.kind, v.reply, {}};
  };
  bool skip_filters = false;  // after accept or quarantine only committing stages run
  for (const auto& s : p->inline_stages) {
    if (skip_filters && !s.traits.commits) continue;
    if (spooled && s.traits.commits && !held && !msg->quarantined) {
      if (!spool_) {
        auto v = verdict::local_error();
        co_return submit_result{v.kind, v.reply, {}};
      }
      held.emplace();
      if (auto ec = co_await spool_->hold(p, msg, *held)) co_return spool_failed(ec);
    }
    stage_call call{phase::inline_, 1, p->name, mlog.with({"stage", s.name})};
    verdict v = co_await call_stage(s, msg, std::move(call));
    metrics_
        .get_counter(
            "sluice_stage_verdicts_total", "Verdicts returned by stages",
            {{"pipeline", p->name}, {"stage", s.name}, {"verdict", std::string(to_string(v.kind))}})
        .inc();
    switch (v.kind) {
      case verdict_kind::continue_:
        // A committing stage that let the message through on error has not made it
        // durable; the commit point must not be claimed.
        break;
      case verdict_kind::accept:
        skip_filters = true;
        break;
      case verdict_kind::quarantine:
        msg->quarantined = true;
        skip_filters = true;
        break;
      case verdict_kind::discard:
        mlog.info("discarded", {{"stage", s.name}});
        if (held) co_await spool_->drop(*held);
        held.reset();
        co_return submit_result{verdict_kind::discard, v.reply, msg->id};
      case verdict_kind::reject:
      case verdict_kind::tempfail:
        mlog.info(v.kind == verdict_kind::reject ? "rejected" : "deferred by stage",
                  {{"stage", s.name}, {"code", v.reply.code}, {"reply", v.reply.text}});
        if (held) co_await spool_->drop(*held);
        held.reset();
        co_return submit_result{v.kind, v.reply, {}};
    }
  }
  // The commit point. Committing stages have stored the message; the spool keeps it for
  // the deferred stages. Acknowledge only after both.
  if (spooled && !msg->quarantined) {
    if (!spool_) {
      auto v = verdict::local_error();
      co_return submit_result{v.kind, v.reply, {}};
    }
    // From here the release owns the held files (a failed release removes them), also if
    // this frame is destroyed while it runs.
    std::optional<spool::held> releasing = std::move(held);
    held.reset();
    auto ec =
        releasing ? co_await spool_->release(p, msg, *releasing) : co_await spool_->put(p, msg);
    if (ec) {
      if (releasing) {
        // The committing stages have the message, the spool does not: the client's retry
        // will store it again. A failed rename, record rewrite or (durability "full")
        // directory fsync gets here.
        mlog.error("spool release failed after the message was committed",
                   {{"error", ec.message()}});
      }
      co_return spool_failed(ec);
    }
  } else if (held) {
    co_await spool_->drop(*held);  // quarantined after the hold: no deferred stages run
    held.reset();
  }
  result.kind = msg->quarantined ? verdict_kind::quarantine : verdict_kind::accept;
  result.reply = {250, "2.0.0", "Ok: queued as " + msg->id};
  result.id = msg->id;
  co_return result;
}

}  // namespace sluice::kernel
