// store.hpp — the SQLite store: a sluice::mailbox_service with one group-committing
// writer thread and a pool of read-only connections.
//
// Writes (new messages, set_read, remove, tag changes, pruning) are jobs queued to the
// writer thread. The writer takes everything queued (up to max_batch jobs and
// max_batch_bytes of message data), runs it in one BEGIN IMMEDIATE … COMMIT (each job in a
// SAVEPOINT, so one bad job fails alone), and then completes every job by posting its
// handler to the caller's executor. A job is completed as successful only after its COMMIT
// returned: that is the durability point (WAL with synchronous=NORMAL survives SIGKILL;
// FULL also survives power loss).
//
// Reads run on `read_connections` threads of their own, each with a read-only
// connection (WAL readers never block the writer, and the writer never blocks them).
// Nothing here blocks an I/O thread.
//
// Ownership: share the store by std::shared_ptr; callers keep it alive while they await.
// The destructor drains the queue (every queued write is committed and completed) and
// joins all threads; only one process should write a database file.
//
// Failure: construction throws (sqlite_error / std::runtime_error) when the database
// cannot be opened or migrated. Write failures come back as write_result codes (for the
// stage to turn into a tempfail); read failures throw std::runtime_error to the awaiter.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/thread_pool.hpp>

#include "checkpoint.hpp"
#include "codec.hpp"
#include "sluice/events.hpp"
#include "sluice/log.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/metrics.hpp"
#include "sqlite.hpp"

namespace sluice::store {

struct store_options {
  std::filesystem::path path = "sluice.db";
  std::uint64_t max_messages = 0;        // per mailbox; 0 = unlimited
  std::chrono::milliseconds max_age{0};  // 0 = off
  std::chrono::milliseconds prune_interval{60'000};
  int compression_level = 1;  // zstd level; 0 = store plain
  unsigned read_connections = 4;
  std::size_t max_batch = 256;
  // Message data (stored `raw` bytes) per group commit; a batch stops growing past it, so
  // one transaction never writes an unbounded amount (a single larger job runs alone).
  std::uint64_t max_batch_bytes = 16 * 1024 * 1024;
  // 0: natural group commit. The writer takes whatever queued while it committed the last
  // batch and never lingers; lingering left the one core idle under the benchmark's
  // closed-loop load (64 sessions can never fill a 256-job batch).
  std::chrono::microseconds max_delay{0};
  bool durability_full = false;  // synchronous=FULL instead of NORMAL
  // WAL size that wakes the checkpoint thread (checkpoint.hpp), in bytes; the store turns it
  // into pages of the database's page size (8,192 pages of 4 KB). Key `wal_checkpoint`.
  std::uint64_t checkpoint_bytes = 32ull * 1024 * 1024;
  std::size_t prune_batch = 5'000;  // messages deleted per prune transaction
  // After this long with no write job, the writer merges full-text index segments in small
  // steps (index_merge_step) until none is left to merge; see kFtsTables in store.cpp.
  std::chrono::milliseconds index_merge_idle{250};
  std::chrono::milliseconds busy_timeout{5'000};
  // New messages are refused (452 4.3.1) while the space left for the database (free space
  // on its file system plus SQLite's free pages) is below this plus the message. The reserve
  // keeps room for what must still work on a full disk: deletes, pruning, and the WAL
  // checkpoint (up to twice checkpoint_bytes of WAL copied into the database file; the key's
  // default is the larger of 64 MB and that). 0 = no check.
  std::uint64_t min_free_space = 64ull * 1024 * 1024;
};

struct write_result {
  int rc = SQLITE_OK;  // primary SQLite result code (SQLITE_FULL, SQLITE_IOERR, …)
  std::uint64_t n = 0;
  std::string error;  // for logs only; may name paths
  // insert(): copies not stored because their mailbox holds the Message-ID already
  // (insert_options::drop_duplicate_ids).
  std::uint64_t duplicates = 0;
  bool ok() const noexcept { return rc == SQLITE_OK; }
};

// A tag rule of a store stage: messages matching `query` get `tags`. The query is parsed
// once (at startup) and compiled per insert (dates such as "today" move).
struct tag_rule {
  search_query query;
  std::vector<std::string> tags;  // cleaned
};

// What the stage asks of one insert beyond the prepared row.
struct insert_options {
  std::vector<tag_rule> rules;
  // Skip a copy whose mailbox already holds a message with this (non-empty) Message-ID,
  // as Mailpit's --ignore-duplicate-ids does. Checked on the writer thread, inside the
  // batch transaction, so two copies in one batch are caught too. The stage calls
  // require_message_id_index() first.
  bool drop_duplicate_ids = false;
};

// Entries kept in one message's delivery log (the oldest go first).
inline constexpr std::size_t kMaxDeliveries = 200;

struct store_stats {
  std::uint64_t transactions = 0;  // group commits (batch transactions) so far
  std::uint64_t jobs = 0;          // write jobs committed or failed in them
  std::uint64_t largest_batch = 0;
  std::uint64_t pruned = 0;        // messages removed by pruning
  std::uint64_t index_merges = 0;  // idle merge steps that merged full-text segments
  checkpoint_stats checkpoints;
};

class sqlite_store final : public mailbox_service {
 public:
  sqlite_store(store_options opts, std::string name, sluice::logger log,
               std::shared_ptr<sluice::events> events, std::shared_ptr<sluice::metrics> metrics);
  ~sqlite_store() override;
  sqlite_store(const sqlite_store&) = delete;
  sqlite_store& operator=(const sqlite_store&) = delete;

  // mailbox_service
  std::vector<std::string> mailboxes() const override;
  boost::asio::awaitable<search_result> search(search_request r) override;
  boost::asio::awaitable<std::optional<std::string>> latest(std::string mailbox, std::string query,
                                                            std::string tz) override;
  boost::asio::awaitable<bool> matches(std::string mailbox, std::string id, std::string query,
                                       std::string tz) override;
  boost::asio::awaitable<std::optional<stored_message>> get(std::string mailbox,
                                                            std::string id) override;
  boost::asio::awaitable<std::optional<std::string>> raw(std::string mailbox, std::string id,
                                                         bool with_edits = true) override;
  boost::asio::awaitable<std::optional<part_content>> part(std::string mailbox, std::string id,
                                                           std::string part_id) override;
  boost::asio::awaitable<std::uint64_t> set_read(std::string mailbox, message_selector which,
                                                 bool read) override;
  boost::asio::awaitable<std::uint64_t> remove(std::string mailbox,
                                               message_selector which) override;
  boost::asio::awaitable<std::vector<std::string>> tags(std::string mailbox) override;
  boost::asio::awaitable<void> set_tags(std::string mailbox, std::vector<std::string> ids,
                                        std::vector<std::string> tags) override;
  boost::asio::awaitable<void> rename_tag(std::string mailbox, std::string from,
                                          std::string to) override;
  boost::asio::awaitable<void> delete_tag(std::string mailbox, std::string tag) override;
  boost::asio::awaitable<mailbox_stats> stats(std::string mailbox) override;
  boost::asio::awaitable<store_info> info() override;
  boost::asio::awaitable<std::optional<boost::json::array>> deliveries(std::string mailbox,
                                                                       std::string id) override;

  // Stores a prepared message into each of p.mailboxes, all copies in one transaction;
  // completes once it is committed (or failed). n is the number of new copies: a copy
  // whose (mailbox, id) is already stored is skipped, so retries are idempotent.
  boost::asio::awaitable<write_result> insert(prepared_message p, insert_options o = {});
  // Makes a mailbox exist (listed by mailboxes()) before it holds any message.
  void declare_mailbox(const std::string& mailbox);
  // Creates the (mailbox, message_id) index that drop_duplicate_ids looks up, once, on the
  // writer thread ahead of any insert queued after this call. Only stores that drop
  // duplicates pay for it on every insert; it stays in the file once created.
  void require_message_id_index();
  // Runs pruning to completion now; returns how many messages it removed.
  boost::asio::awaitable<std::uint64_t> prune_now();

  store_stats write_stats() const;
  const store_options& options() const noexcept { return opts_; }
  const std::string& name() const noexcept { return name_; }
  // Drains the write queue and joins every thread. Idempotent; called by the destructor.
  void stop();

 private:
  struct write_job {
    // Standalone jobs manage their own transactions (pruning) and run alone.
    bool standalone = false;
    // Message data this job writes, counted against max_batch_bytes.
    std::uint64_t bytes = 0;
    // A new message: how much it may grow the database and WAL (an estimate). Refused
    // without running while the space left after it would be below min_free_space; 0 for
    // jobs that are not checked.
    std::uint64_t space = 0;
    // Deletes messages: runs after the earlier jobs' deferred index rows are written.
    bool deletes_messages = false;
    // Runs on the writer thread, inside the batch transaction (unless standalone).
    std::function<write_result(database&)> run;
    // Runs on the writer thread inside the batch transaction once every job's savepoint
    // is released: the full-text rows. FTS5 flushes its pending index into a new segment
    // at every SAVEPOINT, so rows written inside the per-job savepoints made one segment
    // (and merge work) per message; written together they make one per batch. A failure
    // here fails the whole batch (nothing of it is acknowledged). A job that deletes
    // messages runs only after the earlier jobs' index rows are written (run_batch).
    std::function<void(database&)> index;
    // Runs on the writer thread after a successful commit: caches, events, metrics.
    std::function<void(const write_result&)> after_commit;
    // Hands the result to the awaiting coroutine (posted to its executor).
    std::function<void(write_result)> complete;
    // Set when the awaiting coroutine can be cancelled: kQueued until the writer takes the
    // job (kTaken) or a cancellation withdraws it (kWithdrawn, completed by the canceller,
    // and the writer drops it). A taken job is always run and completed.
    std::shared_ptr<std::atomic<int>> claim;
  };
  static constexpr int kQueued = 0, kTaken = 1, kWithdrawn = 2;
  // Claims a queued job for the writer; false if a cancellation withdrew it.
  static bool take(write_job& job);
  // Whether a cancellation withdrew it (then it is completed already and only dropped).
  static bool withdrawn(const write_job& job);
  struct reader_lease;

  boost::asio::awaitable<write_result> submit(write_job job);
  void enqueue(write_job job);
  void writer_loop();
  void run_batch(std::vector<write_job>& batch);
  void repair_index(database& db);
  // Bytes the database can still grow by: free space of its file system plus free pages.
  std::uint64_t space_available(database& db);
  void run_standalone(write_job& job);
  // One prune transaction of at most prune_batch messages; sets `more` when it hit the
  // limit and more may be due. Returns how many it removed.
  std::uint64_t prune_step(bool& more);
  void prune_housekeeping();
  // One idle merge transaction over both full-text indexes; false when neither had
  // segments to merge (or it failed: logged, tried again after the next write).
  bool index_merge_step();
  struct stored_copy {
    std::string mailbox;
    std::vector<std::string> tags;  // as stored, sorted
  };
  // With defer_index, the full-text rows are left to the job's `index` step; data_id is
  // the new data row (0 when every copy was already stored).
  write_result insert_rows(database& db, prepared_message& p, const insert_options& o,
                           std::vector<stored_copy>& added, bool defer_index,
                           std::int64_t& data_id);
  write_result write_data(database& db, const prepared_message& p, bool with_index,
                          std::int64_t& data_id);
  std::vector<std::string> tag_rows(database& db, std::int64_t seq, const std::string& mailbox,
                                    const std::vector<std::string>& tags);
  void prune_unused_tags(database& db);
  // submit(), throwing std::runtime_error for a failed job.
  boost::asio::awaitable<write_result> submit_checked(write_job job, const char* what);
  void publish(std::string type, std::string mailbox, boost::json::value data);
  // Queues a "delivery" event's data for the delivery log of the message it names (kept
  // only while this store holds that message; at most kMaxDeliveries entries each).
  void record_delivery(const boost::json::value& data);

  template <class F>
  auto read(F fn) -> boost::asio::awaitable<std::invoke_result_t<F&, database&>>;
  std::unique_ptr<database> open_reader();

  const store_options opts_;
  const std::string name_;
  sluice::logger log_;
  std::shared_ptr<sluice::events> events_;
  std::shared_ptr<sluice::metrics> metrics_;
  sluice::counter* m_messages_ = nullptr;
  sluice::counter* m_pruned_ = nullptr;
  sluice::counter* m_index_merges_ = nullptr;
  sluice::counter* m_write_errors_ = nullptr;
  sluice::histogram* m_batch_size_ = nullptr;
  sluice::histogram* m_commit_seconds_ = nullptr;

  // The writer connection: used by the constructor, then only by writer_thread_, then
  // closed last by stop() (so SQLite can checkpoint and remove the WAL).
  std::unique_ptr<database> writer_db_;
  // Stopped by stop() before writer_db_ closes; destroyed before it.
  std::unique_ptr<wal_checkpointer> checkpointer_;

  mutable std::mutex mu_;  // guards queue_, stopping_, mailboxes_, message_id_index_
  std::condition_variable cv_;
  std::deque<write_job> queue_;
  bool stopping_ = false;
  std::set<std::string> mailboxes_;
  bool message_id_index_ = false;  // require_message_id_index() has queued its job

  std::mutex readers_mu_;  // guards idle_readers_
  std::vector<std::unique_ptr<database>> idle_readers_;

  std::atomic<std::uint64_t> transactions_{0};
  std::atomic<std::uint64_t> jobs_{0};
  std::atomic<std::uint64_t> largest_batch_{0};
  std::atomic<std::uint64_t> pruned_{0};
  std::atomic<std::uint64_t> index_merges_{0};
  std::atomic<std::uint64_t> deleted_{0};  // API/POP3 deletes and pruning, since start
  std::size_t last_batch_size_ = 0;        // writer thread only
  // Writer thread: when a failed index merge step was last logged.
  std::chrono::steady_clock::time_point last_merge_warning_{};
  bool low_space_ = false;                 // writer thread: the last check was below min_free_space
  std::uint64_t page_size_ = 4096;         // of the database, read once at open
  std::uint32_t checkpoint_pages_ = 8192;  // opts_.checkpoint_bytes in pages of page_size_

  std::optional<std::uint64_t> delivery_subscription_;  // on events_

  std::once_flag stop_once_;
  // Declared last: threads start after every member above is constructed and are joined
  // in stop() before any of them is destroyed.
  boost::asio::thread_pool readers_;
  std::thread writer_thread_;
};

}  // namespace sluice::store
