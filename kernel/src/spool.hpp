// spool.hpp — the kernel's durable queue for deferred stages.
//
// Layout under the spool directory:
//   incoming/      bodies spilled to disk while they arrive (emptied at start)
//   queue/<id>.eml the raw message, exactly as received (a hard link of the spilled body
//                  or a copy of the in-memory one)
//   queue/<id>.json envelope, header edits, attributes, and per deferred stage: status,
//                  attempts, next attempt time, last reply
// A message is in the spool once its .json exists: it is written to a temporary name and
// renamed over, after the .eml is complete. With durability "full" both files and the
// directory are fsynced before put() completes; otherwise the page cache carries them
// across a SIGKILL.
//
// Each pending stage of each message is retried with exponential backoff (initial, ×2,
// capped at max, ±20 % jitter) until it succeeds, fails permanently (reject), or its
// lifetime expires. Outcomes are logged, counted, and every attempt is published on the
// event bus as a "delivery" event (sluice/events.hpp): the store keeps them as the
// message's delivery log. Survives restarts: recover() reschedules everything found.
//
// Threading: the schedule lives on a strand; file I/O runs on the worker pool.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <system_error>

#include "pipeline.hpp"
#include "sluice/events.hpp"
#include "sluice/gate.hpp"

namespace sluice::kernel {

class spool : public std::enable_shared_from_this<spool> {
 public:
  spool(boost::asio::io_context& io, boost::asio::thread_pool& workers, std::filesystem::path dir,
        bool durability_full, pipeline_runner& runner, sluice::metrics& m, sluice::events* ev,
        sluice::logger log);

  // Creates the directories and empties incoming/. Throws std::system_error.
  void prepare();
  const std::filesystem::path& incoming_dir() const { return incoming_; }
  // Schedules every message found in queue/.
  void recover();
  // Makes msg durable for the deferred stages of p and schedules them.
  boost::asio::awaitable<std::error_code> put(std::shared_ptr<const pipeline> p,
                                              std::shared_ptr<message> msg);
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
  void arm_timer();
  void run_due();
  boost::asio::awaitable<void> attempt(std::string id, std::string stage);
  std::error_code write_record(const record& r) const;
  bool read_record(const std::string& id, record& r) const;
  void remove_files(const std::string& id) const;
  std::filesystem::path eml(const std::string& id) const { return queue_ / (id + ".eml"); }
  std::filesystem::path meta(const std::string& id) const { return queue_ / (id + ".json"); }

  boost::asio::thread_pool& workers_;
  std::filesystem::path dir_, incoming_, queue_;
  bool full_;
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
  bool stopped_ = false;
  std::size_t queued_ = 0;
};

}  // namespace sluice::kernel
