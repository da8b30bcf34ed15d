// spool.hpp — the kernel's durable queue for deferred stages.
//
// Layout under the spool directory:
//   incoming/      bodies spilled to disk while they arrive (emptied at start)
//   queue/<id>.eml the raw message, exactly as received (a hard link of the spilled body
//                  or a copy of the in-memory one)
//   queue/<id>.json envelope, header edits, attributes, and per deferred stage: status,
//                  attempts, next attempt time, last reply
//   queue/<id>.json.held  the record of a message whose committing stages (a store) have
//                  not finished yet, written in place: removed at start, whole or torn,
//                  because its message was never acknowledged
// A message is in the spool once its .json exists: it is written to a temporary name and
// renamed over, after the .eml is complete. A pipeline that commits inline as well (store,
// then relay) holds the message first: body and record are written before the store stage
// runs, and renamed into the spool after it, so a spool that cannot take the message
// (full, failing) fails it before it is stored and the client's retry makes no duplicate.
// Duplicates it does not prevent: an inline stage after the store that tempfails, a second
// committing stage that fails after the first committed, a committing stage still busy
// after its timeout and the grace that follows it (pipeline.cpp: the store's commit is
// awaited, a write still queued is withdrawn), and a failed release (rename, or the
// directory fsync of durability "full") after the store committed. With
// durability "full" both files and the directory are fsynced before put() completes; otherwise the
// page cache carries them across a SIGKILL.
//
// Each pending stage of each message is retried with exponential backoff (initial, ×2,
// capped at max, ±20 % jitter) until it succeeds, fails permanently (reject), or its
// lifetime expires. Outcomes are logged, counted, and every attempt is published on the
// event bus as a "delivery" event (sluice/events.hpp): the store keeps them as the
// message's delivery log. Survives restarts: recover() reschedules everything found.
//
// At most retry.concurrency attempts of a stage run at once; the others that are due wait
// in the order they came due and start as that stage's attempts finish.
//
// Threading: the schedule lives on a strand; file I/O runs on the worker pool.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <system_error>

#include "pipeline.hpp"
#include "sluice/events.hpp"
#include "sluice/gate.hpp"

namespace sluice::kernel {

class spool : public std::enable_shared_from_this<spool> {
 public:
  spool(boost::asio::io_context& io, boost::asio::thread_pool& workers, std::filesystem::path dir,
        bool durability_full, std::uint64_t min_free_space, pipeline_runner& runner,
        sluice::metrics& m, sluice::events* ev, sluice::logger log);

  // A message written to the spool but not yet in it (hold → release or drop).
  struct held {
    std::string id;
    boost::json::object message;  // the held record's message part: unchanged, the release
                                  // only renames
    std::int64_t created_ms = 0;
  };

  ~spool();
  spool(const spool&) = delete;
  spool& operator=(const spool&) = delete;

  // Takes the spool's lock file (<dir>/lock, flock: one process per spool), creates the
  // directories and empties incoming/. Throws std::system_error.
  void prepare();
  const std::filesystem::path& incoming_dir() const { return incoming_; }
  // Schedules every message found in queue/.
  void recover();
  // Makes msg durable for the deferred stages of p and schedules them: hold, then release.
  boost::asio::awaitable<std::error_code> put(std::shared_ptr<const pipeline> p,
                                              std::shared_ptr<message> msg);
  // Writes msg's body and its record under the held name. Fails with ENOSPC, writing
  // nothing, while the file system's free space is below min_free_space plus the message.
  boost::asio::awaitable<std::error_code> hold(std::shared_ptr<const pipeline> p,
                                               std::shared_ptr<message> msg, held& out);
  // Puts a held message into the spool (rewriting its record if msg changed since the
  // hold) and schedules its stages. On failure the held files are removed.
  boost::asio::awaitable<std::error_code> release(std::shared_ptr<const pipeline> p,
                                                  std::shared_ptr<message> msg, const held& h);
  // Removes a held message (the pipeline did not accept it).
  boost::asio::awaitable<void> drop(const held& h);
  // The same, on the calling thread: for a pipeline run that ends by an exception or is
  // destroyed before its end (a forced stop).
  void drop_now(const std::string& id) const;
  // No new attempts start after this; attempts in flight finish (they hold the gate).
  void stop();
  std::shared_ptr<gate> attempts_gate() const { return gate_; }
  std::size_t queued() const;

 private:
  struct stage_state {
    std::string name;
    std::string status = "pending";  // pending, waiting, done, failed, skipped
    unsigned attempts = 0;
    std::int64_t next_ms = 0;
    std::string last;
    std::string after;  // waiting for this stage to settle (a copy of the stage's config)
    std::string when;   // done, failed or settled
  };
  struct record {
    std::string id;
    std::string pipeline;
    std::int64_t created_ms = 0;
    std::vector<stage_state> stages;
    boost::json::object message;  // envelope, edits, attributes, quarantined
  };

  void schedule(const std::string& id, const std::string& stage, std::int64_t due_ms);
  // Moves waiting stages whose `after` stage has settled to pending (when its outcome is
  // theirs) or skipped, until nothing changes; returns the stages that became pending.
  static std::vector<std::string> release_waiting(record& r, std::int64_t now);
  // Makes sure run_due() runs when the earliest due attempt is due: a timer, or a post when
  // it is due already. Does nothing when an earlier or equal wake-up is pending.
  void arm_timer();
  void run_due();
  // The stage's retry.concurrency in the current pipelines (16 when none has it).
  unsigned stage_limit(const std::string& stage) const;
  // An attempt of another stage of this message is running.
  bool busy(const std::string& id) const;
  void start(const std::string& id, const std::string& stage);
  // Starts parked attempts of the stage, in order, while it is below its concurrency.
  void start_parked(const std::string& stage);
  boost::asio::awaitable<void> attempt(std::string id, std::string stage);
  record make_record(const pipeline& p, const message& msg, std::int64_t created_ms) const;
  static std::string serialize(const record& r);
  // Writes `json` to a temporary name and renames it to meta(id) (with durability "full":
  // the file fsynced before, the directory after).
  std::error_code write_json(const std::string& id, const std::string& json) const;
  std::error_code write_record(const record& r) const;
  // Writes msg's body to queue/<id>.eml and its record: under the held name when `held`,
  // else into the spool (through a temporary name). Refuses with ENOSPC, writing nothing,
  // below min_free_space plus the message. On failure what it wrote is removed.
  std::error_code write_message(const std::string& id, const std::string& json, const message& msg,
                                bool held) const;
  void schedule_new(const record& r);
  bool read_record(const std::string& id, record& r) const;
  void remove_files(const std::string& id) const;
  std::filesystem::path eml(const std::string& id) const { return queue_ / (id + ".eml"); }
  std::filesystem::path meta(const std::string& id) const { return queue_ / (id + ".json"); }
  std::filesystem::path held_meta(const std::string& id) const {
    return queue_ / (id + ".json.held");
  }

  boost::asio::thread_pool& workers_;
  std::filesystem::path dir_, incoming_, queue_;
  bool full_;
  std::uint64_t min_free_;
  int lock_fd_ = -1;
  pipeline_runner& runner_;
  sluice::metrics& metrics_;
  sluice::events* events_;
  sluice::logger log_;
  std::shared_ptr<gate> gate_ = gate::make();
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::steady_timer timer_;
  // All below only on strand_.
  std::multimap<std::int64_t, std::pair<std::string, std::string>> due_;
  std::set<std::pair<std::string, std::string>> running_;
  std::map<std::string, unsigned> running_per_stage_;
  // Due attempts held back by their stage's concurrency, per stage in the order they came
  // due: each finished attempt of the stage starts the next (no polling of a backlog).
  std::map<std::string, std::deque<std::string>> parked_;
  std::optional<std::int64_t> armed_ms_;  // the due time of the pending wake-up
  std::uint64_t arm_gen_ = 0;             // a superseded wake-up sees another value
  bool stopped_ = false;
  std::size_t queued_ = 0;
};

}  // namespace sluice::kernel
