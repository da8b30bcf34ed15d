// store.cpp — the SQLite store (see store.hpp for the threading and durability model).
#include "store.hpp"

#include <algorithm>
#include <climits>
#include <limits>
#include <map>
#include <span>
#include <stdexcept>
#include <system_error>
#include <utility>

#include <sys/statvfs.h>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "async.hpp"
#include "index.hpp"
#include "query.hpp"
#include "schema.hpp"
#include "sluice/listen.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/message_json.hpp"
#include "sluice/text.hpp"

namespace asio = boost::asio;

namespace sluice::store {
namespace {

// A page of search results holds at most this many messages (limit 0 = "all" included).
constexpr std::uint64_t kMaxListLimit = 100'000;
// Most ids one bulk call (remove, set_read, set_tags) takes.
constexpr std::size_t kMaxSelectorIds = 100'000;
// A bulk change of more messages than this publishes one "changed" event instead of one
// event per message: a burst of thousands of frames would push every WebSocket client
// past its queue limit (http limits.websocket_queue, 256) and disconnect it. Mailpit
// itself sends no per-message events for "mark all read".
constexpr std::size_t kMaxEventsPerChange = 200;

// Full-text segment merging (FTS5). Each commit adds a segment to each full-text index, and
// FTS5 merges a level's segments into one on the next level as it writes, by default once a
// level holds 4. The writer lets a level grow to 16 (64 before a merge that cannot wait):
// less merging per message (plugins/store/README.md "Segments", measured in bench/README.md)
// for more segments per search to read. Once it is idle, it merges in steps of
// kFtsMergePages pages down to fewer than 4 per level (usermerge), the default shape. Set
// at open where they differ (tune_fts): the values live in each index's %_config table.
constexpr const char* kFtsTables[] = {"messages_fts", "body_fts"};
constexpr int kFtsMergePages = 16;

// Ends the connection's transaction after a failure, if the failure did not end it already.
// A ROLLBACK that fails is logged; SQLite rolls the transaction back when it closes.
void roll_back(database& db, sluice::logger& log) {
  if (!db.in_transaction()) return;
  try {
    db.exec("ROLLBACK");
  } catch (const std::exception& e) {
    log.error("store rollback failed", {{"error", e.what()}});
  }
}

// Writes the settings an index does not have yet: opening an unchanged store writes nothing
// (a store on a full disk must still open to serve reads and deletes).
void tune_fts(database& db) {
  struct setting {
    const char* key;
    int value;
  };
  constexpr setting kSettings[] = {{"automerge", 16}, {"crisismerge", 64}, {"usermerge", 4}};
  bool open = false;
  for (const char* table : kFtsTables) {
    for (const setting& st : kSettings) {
      {
        statement q(db.get(), std::string("SELECT v FROM ") + table + "_config WHERE k = ?1");
        q.bind(1, st.key);
        if (q.step() && q.column_int(0) == st.value) continue;
      }
      if (!open) {
        db.exec("BEGIN IMMEDIATE");
        open = true;
      }
      db.exec(std::string("INSERT INTO ") + table + "(" + table + ", rank) VALUES('" + st.key +
              "', " + std::to_string(st.value) + ")");
    }
  }
  if (open) db.exec("COMMIT");
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The columns every stored_message is read from, in the order row_to_message expects.

// The columns every stored_message is read from, in the order row_to_message expects.
constexpr const char* kSelectMessage =
    "SELECT m.id, m.mailbox, m.created, m.size, m.message_id, m.subject, m.from_addr,"
    " m.to_addr, m.cc_addr, m.bcc_addr, m.reply_to, m.username, m.snippet, m.attachments,"
    " m.inline_parts, m.env_from, m.envelope, m.read, m.quarantined,"
    " (SELECT json_group_array(t.name) FROM message_tags mt JOIN tags t ON t.id = mt.tag_id"
    "  WHERE mt.seq = m.seq), m.seq, m.data_id "
    "FROM messages m ";
constexpr int kColSeq = 20;
constexpr int kColDataId = 21;

stored_message row_to_message(const statement& s) {
  stored_message m;
  m.id = s.column_text(0);
  m.mailbox = s.column_text(1);
  m.created_ms = s.column_int(2);
  m.size = static_cast<std::uint64_t>(s.column_int(3));
  m.message_id = s.column_text(4);
  m.subject = s.column_text(5);
  m.from = address_from_json_text(s.column_text(6));
  m.to = address_list_from_json_text(s.column_text(7));
  m.cc = address_list_from_json_text(s.column_text(8));
  m.bcc = address_list_from_json_text(s.column_text(9));
  m.reply_to = address_list_from_json_text(s.column_text(10));
  m.username = s.column_text(11);
  m.snippet = s.column_text(12);
  m.attachments = static_cast<std::uint32_t>(s.column_int(13));
  m.inline_parts = static_cast<std::uint32_t>(s.column_int(14));
  m.envelope_from = s.column_text(15);
  m.envelope_to = envelope_recipients(s.column_text(16));
  m.read = s.column_int(17) != 0;
  m.quarantined = s.column_int(18) != 0;
  boost::system::error_code ec;
  auto tags = sluice::parse_stored_json(s.column_text(19), ec);
  if (!ec && tags.is_array()) {
    for (const auto& t : tags.get_array()) {
      if (t.is_string()) m.tags.emplace_back(t.get_string());
    }
  }
  sort_tags(m.tags);
  return m;
}

write_result failure(const std::exception& e) {
  if (auto* se = dynamic_cast<const sqlite_error*>(&e)) return {se->primary(), 0, se->what()};
  if (auto* sy = dynamic_cast<const std::system_error*>(&e)) {
    return {SQLITE_IOERR, 0, sy->what()};
  }
  return {SQLITE_ERROR, 0, e.what()};
}

// Data up to this size is bound to the INSERT; larger data is streamed into a zeroblob.
constexpr std::uint64_t kBindLimit = 256 * 1024;

// Fills the `raw` zeroblob of message_data row `seq` (`size` bytes) in kIoChunk pieces.
// next(offset, buffer, ec) returns the bytes at offset: a view into `buffer` it filled, or
// into memory it owns; an empty view before `size` means the source shrank. Runs on the
// writer thread; the one buffer is reused for every row.
template <class Next>
write_result write_blob(database& db, std::int64_t seq, std::uint64_t size, Next&& next) {
  thread_local std::vector<char> buffer(kIoChunk);
  sqlite3_blob* blob = nullptr;
  int rc = sqlite3_blob_open(db.get(), "main", "message_data", "raw", seq, 1, &blob);
  if (rc != SQLITE_OK) throw_sqlite(db.get(), rc, "blob open");
  std::uint64_t offset = 0;
  std::error_code ec;
  while (offset < size) {
    std::string_view chunk = next(offset, std::span<char>(buffer), ec);
    if (ec || chunk.empty()) break;
    chunk = chunk.substr(0, size - offset);
    rc = sqlite3_blob_write(blob, chunk.data(), static_cast<int>(chunk.size()),
                            static_cast<int>(offset));
    if (rc != SQLITE_OK) break;
    offset += chunk.size();
  }
  sqlite3_blob_close(blob);
  if (rc != SQLITE_OK) throw_sqlite(db.get(), rc, "blob write");
  if (ec) throw std::system_error(ec, "read message data");
  if (offset != size) return {SQLITE_IOERR, 0, "message body changed size while stored"};
  return {};
}

}  // namespace
struct sqlite_store::reader_lease {
  sqlite_store* store;
  std::unique_ptr<database> db;
  ~reader_lease() {
    if (!db) return;
    std::lock_guard lk(store->readers_mu_);
    store->idle_readers_.push_back(std::move(db));
  }
};

sqlite_store::sqlite_store(store_options opts, std::string name, sluice::logger log,
                           std::shared_ptr<sluice::events> events,
                           std::shared_ptr<sluice::metrics> metrics)
    : opts_(std::move(opts)),
      name_(std::move(name)),
      log_(std::move(log)),
      events_(std::move(events)),
      metrics_(std::move(metrics)),
      readers_(std::max(1u, opts_.read_connections)) {
  // readers_ threads are idle until the first read; if anything below throws, the
  // thread_pool destructor stops and joins them.
  if (opts_.path.has_parent_path()) sluice::ensure_data_directory(opts_.path.parent_path());
  writer_db_ = std::make_unique<database>(opts_.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  database& db = *writer_db_;
  db.exec("PRAGMA busy_timeout=" + std::to_string(opts_.busy_timeout.count()));
  {
    statement s(db.get(), "PRAGMA journal_mode=WAL");
    if (!s.step() || s.column_text(0) != "wal") {
      throw std::runtime_error("cannot switch " + opts_.path.string() + " to WAL mode");
    }
  }
  db.exec(opts_.durability_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // Checkpoints: every checkpoint_bytes of WAL (32 MB) rather than SQLite's 1000 pages, so the
  // hot pages (indexes, FTS segments) are copied back once per interval, not once per 4 MB
  // (~10% of the writer's CPU per message); and on their own thread (checkpoint.hpp),
  // attached below once the schema is in place. PRAGMA page_size is the page size a new
  // database will get, or an existing one's. A WAL file that grew past twice the threshold
  // (the most the writer lets it hold: frames of a page and a 24-byte header, after the
  // file's 32-byte header) is truncated back to that after a restart.
  page_size_ = static_cast<std::uint64_t>(db.query_int("PRAGMA page_size"));
  checkpoint_pages_ = static_cast<std::uint32_t>(
      std::max<std::uint64_t>(1, opts_.checkpoint_bytes / std::max<std::uint64_t>(page_size_, 1)));
  db.exec(
      "PRAGMA foreign_keys=ON; PRAGMA secure_delete=FAST; PRAGMA temp_store=MEMORY;"
      "PRAGMA cache_size=-16384; PRAGMA journal_size_limit=" +
      std::to_string(2 * std::uint64_t{checkpoint_pages_} * (page_size_ + 24) + 32) +
      ";"
      "PRAGMA wal_autocheckpoint=" +
      std::to_string(checkpoint_pages_) + ";");
  register_functions(db);  // tag rules run searches on the writer
  const std::int64_t found = migrate(db);
  if (found != schema_version()) {
    log_.info("store schema migrated", {{"from", found}, {"to", std::int64_t{schema_version()}}});
  }
  repair_index(db);
  try {
    tune_fts(db);
  } catch (const std::exception& e) {
    roll_back(db, log_);
    log_.warn("store could not set the full-text merge settings", {{"error", e.what()}});
  }
  {
    statement s(db.get(), "SELECT name FROM mailboxes UNION SELECT DISTINCT mailbox FROM messages");
    while (s.step())
      mailboxes_.emplace(s.column_text(0));
  }
  checkpoint_metrics cm;  // the checkpointer's series, filled in with the store's
  if (metrics_) {
    const metric_labels labels{{"store", name_}};
    m_messages_ = &metrics_->get_counter("sluice_store_messages_total",
                                         "Messages committed to the store", labels);
    m_pruned_ = &metrics_->get_counter("sluice_store_pruned_total",
                                       "Messages removed by max_messages/max_age pruning", labels);
    m_index_merges_ =
        &metrics_->get_counter("sluice_store_index_merges_total",
                               "Idle merge steps that merged full-text index segments", labels);
    m_write_errors_ = &metrics_->get_counter("sluice_store_write_errors_total",
                                             "Store write jobs that failed", labels);
    m_batch_size_ =
        &metrics_->get_histogram("sluice_store_commit_batch_size", "Write jobs per group commit",
                                 labels, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
    m_commit_seconds_ = &metrics_->get_histogram(
        "sluice_store_commit_seconds", "Duration of one group commit transaction", labels,
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
    const auto by = [&](const char* who) {
      return &metrics_->get_counter("sluice_store_wal_checkpoints_total",
                                    "WAL checkpoint passes, by who ran them: the checkpoint "
                                    "thread, the writer catching up after it, or the writer at "
                                    "twice the threshold (it waited)",
                                    {{"store", name_}, {"by", who}});
    };
    cm.thread_passes = by("thread");
    cm.catch_up_passes = by("writer_catch_up");
    cm.bound_passes = by("writer_bound");
    cm.restarts = &metrics_->get_counter("sluice_store_wal_restarts_total",
                                         "Times the WAL was restarted from its start", labels);
    cm.failures =
        &metrics_->get_counter("sluice_store_wal_checkpoint_failures_total",
                               "WAL checkpoint passes that failed (I/O, full, ...)", labels);
    cm.busy = &metrics_->get_counter(
        "sluice_store_wal_checkpoint_busy_total",
        "WAL checkpoint passes that found the WAL locked (transient; retried)", labels);
    cm.writer_seconds = &metrics_->get_histogram(
        "sluice_store_wal_writer_checkpoint_seconds",
        "Duration of the writer's own WAL checkpoint passes (catch-up and bound), inside a "
        "commit",
        labels, {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1});
    cm.wal_frames = &metrics_->get_gauge("sluice_store_wal_frames",
                                         "Frames (pages) in the WAL after the last commit", labels);
  }
  checkpointer_ = std::make_unique<wal_checkpointer>(opts_.path, checkpoint_pages_,
                                                     opts_.durability_full, log_, cm);
  checkpointer_->attach(db);
  writer_thread_ = std::thread([this] { writer_loop(); });
  if (events_) {
    delivery_subscription_ = events_->subscribe([this](const sluice::event& e) {
      if (e.type == "delivery") record_delivery(e.data);
    });
  }
}

std::uint64_t sqlite_store::space_available(database& db) {
  struct statvfs fs {};
  const auto dir = opts_.path.has_parent_path() ? opts_.path.parent_path() : ".";
  if (::statvfs(dir.c_str(), &fs) != 0) {
    throw std::system_error(errno, std::generic_category(), "statvfs " + dir.string());
  }
  std::uint64_t pages = 0;
  {
    auto s = db.cached("PRAGMA freelist_count");
    if (s->step()) pages = static_cast<std::uint64_t>(s->column_int(0));
    s->reset();
  }
  return static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize + pages * page_size_;
}

void sqlite_store::repair_index(database& db) {
  // Full-text rows above the highest data id belong to no message, and the next message
  // would be given such an id and fail on them (every batch with it). Migration 5 removed
  // every such row older versions left (schema.cpp); this cheap check (two rowid range
  // scans) heals the case that blocks all new mail should one ever appear again.
  std::int64_t removed = 0;
  for (const char* sql :
       {"DELETE FROM messages_fts WHERE rowid > (SELECT coalesce(max(id), 0) FROM message_data)",
        "DELETE FROM body_fts WHERE rowid > (SELECT coalesce(max(id), 0) FROM message_data)"}) {
    db.exec(sql);
    removed += db.changes();
  }
  if (removed > 0) {
    log_.warn("store removed index rows of deleted messages", {{"rows", removed}});
  }
}

sqlite_store::~sqlite_store() {
  stop();
}

void sqlite_store::stop() {
  std::call_once(stop_once_, [this] {
    if (delivery_subscription_) events_->unsubscribe(*delivery_subscription_);
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (writer_thread_.joinable()) {
      // Invariant: the writer never holds the last reference to the store, so this runs
      // on another thread; detaching is a last resort that keeps the process alive.
      if (writer_thread_.get_id() == std::this_thread::get_id()) {
        writer_thread_.detach();
      } else {
        writer_thread_.join();
      }
    }
    readers_.join();  // waits for reads in flight
    {
      std::lock_guard lk(readers_mu_);
      idle_readers_.clear();
    }
    if (checkpointer_) {
      checkpointer_->stop();
      if (writer_db_) sqlite3_wal_hook(writer_db_->get(), nullptr, nullptr);
    }
    writer_db_.reset();  // last connection out: SQLite checkpoints and removes the WAL
  });
}

// ---------------------------------------------------------------------------------------
// Writer side

asio::awaitable<write_result> sqlite_store::submit(write_job job) {
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(write_result)>(
      [this](auto handler, write_job job) {
        // Tracked work keeps the caller's io_context from running out of work while the
        // job waits; the handler runs on the caller's executor, never on the writer.
        auto work = asio::prefer(asio::get_associated_executor(handler),
                                 asio::execution::outstanding_work.tracked);
        auto slot = asio::get_associated_cancellation_slot(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        job.complete = [h, work](write_result r) mutable {
          asio::post(work, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
        };
        if (slot.is_connected()) {
          // A cancellation (the kernel's stage timeout) withdraws the job while it waits in
          // the queue: nothing is written and the caller learns at once. Once the writer
          // has it, the job runs and its real result is delivered. The handler runs on the
          // caller's (running) executor, so it needs no tracked work; it holds the awaiting
          // handler weakly, because the slot lives in the coroutine that handler owns (a
          // strong reference would keep the frame alive for good if the completion never
          // ran, as at a forced stop). While the job is queued, job.complete holds it.
          job.claim = std::make_shared<std::atomic<int>>(kQueued);
          slot.assign([claim = job.claim, weak = std::weak_ptr(h),
                       ex = asio::get_associated_executor(*h)](asio::cancellation_type) {
            int expected = kQueued;
            if (!claim->compare_exchange_strong(expected, kWithdrawn)) return;
            if (auto h = weak.lock()) {
              asio::post(ex, [h] {
                std::move (*h)(
                    write_result{SQLITE_INTERRUPT, 0, "cancelled before it was written"});
              });
            }
          });
        }
        enqueue(std::move(job));
      },
      asio::use_awaitable, std::move(job));
}

void sqlite_store::enqueue(write_job job) {
  {
    std::lock_guard lk(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(job));
      cv_.notify_one();
      return;
    }
  }
  if (take(job)) job.complete({SQLITE_MISUSE, 0, "store is shutting down"});
}

bool sqlite_store::take(write_job& job) {
  if (!job.claim) return true;
  int expected = kQueued;
  return job.claim->compare_exchange_strong(expected, kTaken);
}

bool sqlite_store::withdrawn(const write_job& job) {
  return job.claim && job.claim->load() == kWithdrawn;
}

void sqlite_store::writer_loop() {
  using clock = std::chrono::steady_clock;
  const bool pruning = opts_.max_messages > 0 || opts_.max_age.count() > 0;
  auto next_prune = clock::now() + opts_.prune_interval;
  bool prune_more = false;  // a prune run hit its batch limit: continue after client work
  // When full-text segments are next merged (index_merge_step): index_merge_idle after the
  // last write (and after start, for what an earlier run left), then step after step, client
  // work first, until a step finds nothing; max() = nothing to merge.
  constexpr auto kNoMerge = clock::time_point::max();
  auto merge_at = clock::now() + opts_.index_merge_idle;
  std::vector<write_job> batch;
  batch.reserve(opts_.max_batch);
  for (;;) {
    bool prune_now = false;
    bool merge_now = false;
    {
      std::unique_lock lk(mu_);
      auto prune_due = [&] { return pruning && (prune_more || clock::now() >= next_prune); };
      auto merge_due = [&] { return clock::now() >= merge_at; };
      while (queue_.empty() && !stopping_ && !prune_due() && !merge_due()) {
        const auto until = pruning ? std::min(next_prune, merge_at) : merge_at;
        if (until == kNoMerge) {
          cv_.wait(lk);
        } else {
          cv_.wait_until(lk, until);
        }
      }
      // Invariant: we leave only with an empty queue, so every acknowledged job is done.
      if (queue_.empty() && stopping_) break;
      // Jobs withdrawn by a cancellation are already completed: dropped unrun.
      // Jobs are claimed only as they go into the batch, so one may be withdrawn up to then.
      bool dropped = false;
      while (!queue_.empty() && withdrawn(queue_.front())) {
        queue_.pop_front();
        dropped = true;
      }
      if (dropped && queue_.empty() && !prune_due() && !merge_due()) continue;
      if (!queue_.empty() && queue_.front().standalone) {
        if (take(queue_.front())) batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      } else if (!queue_.empty()) {
        // Under concurrent load (the last batch held several jobs) wait up to max_delay
        // for the batch to fill; a lone message is never delayed.
        if (last_batch_size_ > 1 && opts_.max_delay.count() > 0 && !stopping_ &&
            queue_.size() < opts_.max_batch) {
          cv_.wait_until(lk, clock::now() + opts_.max_delay, [&] {
            return stopping_ || queue_.size() >= opts_.max_batch || queue_.back().standalone;
          });
        }
        std::uint64_t batch_bytes = 0;
        while (!queue_.empty() && batch.size() < opts_.max_batch && !queue_.front().standalone) {
          // The first job always goes, so a message larger than the budget still commits.
          if (!batch.empty() && batch_bytes + queue_.front().bytes > opts_.max_batch_bytes) break;
          if (!take(queue_.front())) {  // withdrawn: already completed, dropped unrun
            queue_.pop_front();
            continue;
          }
          batch_bytes += queue_.front().bytes;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      prune_now = batch.empty() && prune_due();
      merge_now = batch.empty() && !prune_now && merge_due();
    }
    if (!batch.empty()) {
      if (batch.front().standalone) {
        run_standalone(batch.front());
      } else {
        run_batch(batch);
      }
      batch.clear();
      merge_at = clock::now() + opts_.index_merge_idle;
      continue;  // client work goes before pruning and merging
    }
    if (merge_now) {
      merge_at = index_merge_step() ? clock::now() : kNoMerge;
      continue;
    }
    if (!prune_now) continue;  // only withdrawn jobs were queued
    std::uint64_t removed = 0;
    try {
      removed = prune_step(prune_more);
    } catch (const std::exception& e) {
      prune_more = false;
      log_.warn("store pruning failed", {{"error", e.what()}});
    }
    if (!prune_more) {
      if (removed > 0) prune_housekeeping();
      next_prune = clock::now() + opts_.prune_interval;
    }
    // Deletes add to the full-text indexes too.
    if (removed > 0) merge_at = clock::now() + opts_.index_merge_idle;
  }
}

bool sqlite_store::index_merge_step() {
  database& db = *writer_db_;
  bool merged = false;
  try {
    db.cached("BEGIN IMMEDIATE")->run();
    for (const char* table : kFtsTables) {
      // A 'merge' that found nothing to merge changes at most one row (FTS5's own test).
      const sqlite3_int64 before = sqlite3_total_changes64(db.get());
      db.cached(std::string("INSERT INTO ") + table + "(" + table + ", rank) VALUES('merge', " +
                std::to_string(kFtsMergePages) + ")")
          ->run();
      if (sqlite3_total_changes64(db.get()) - before >= 2) merged = true;
    }
    db.cached("COMMIT")->run();
  } catch (const std::exception& e) {
    roll_back(db, log_);
    // Tried again after the next write; logged at most once a minute (a full disk would
    // otherwise log after every write).
    const auto now = std::chrono::steady_clock::now();
    if (now - last_merge_warning_ >= std::chrono::minutes(1)) {
      last_merge_warning_ = now;
      log_.warn("store full-text index merge failed", {{"error", e.what()}});
    }
    return false;
  }
  if (merged) {
    index_merges_.fetch_add(1, std::memory_order_relaxed);
    if (m_index_merges_) m_index_merges_->inc();
  }
  return merged;
}

void sqlite_store::run_batch(std::vector<write_job>& batch) {
  database& db = *writer_db_;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<write_result> results(batch.size());
  std::optional<write_result> fatal;  // set when the whole transaction is lost
  // The transaction and savepoint statements are prepared once (db.cached): exec would
  // parse them again for every message of every batch.
  auto run_cached = [&db](const char* sql) { db.cached(sql)->run(); };
  try {
    run_cached("BEGIN IMMEDIATE");
  } catch (const std::exception& e) {
    fatal = failure(e);
  }
  // The deferred full-text rows of the jobs before `pending_from` are written. A job that
  // deletes messages runs after them: otherwise a message deleted in the same batch would
  // get index rows after its data was gone, and the next message given that data id would
  // fail on them (found by a delete-all under SMTP load). Other jobs do not touch the
  // full-text tables (a tag rule searches only its own, inline-indexed row).
  std::size_t pending_from = 0;
  auto write_pending_index = [&](std::size_t until) {
    for (; !fatal && pending_from < until; ++pending_from) {
      const std::size_t j = pending_from;
      if (!results[j].ok() || !batch[j].index) continue;
      try {
        batch[j].index(db);
      } catch (const std::exception& e) {
        fatal = failure(e);
      }
    }
  };
  // The reserve (min_free_space): checked once per batch, then counted down per message.
  std::optional<std::uint64_t> space;
  for (std::size_t i = 0; !fatal && i < batch.size(); ++i) {
    if (batch[i].space > 0 && opts_.min_free_space > 0) {
      if (!space) {
        try {
          space = space_available(db);
        } catch (const std::exception& e) {
          space = std::numeric_limits<std::uint64_t>::max();  // unknown: SQLite will tell
          log_.warn("store could not measure free space", {{"error", e.what()}});
        }
        const bool low = *space < opts_.min_free_space;
        if (low != low_space_) {
          low_space_ = low;
          if (low) {
            log_.warn("store refusing new messages: free space below min_free_space",
                      {{"available", *space}, {"min_free_space", opts_.min_free_space}});
          } else {
            log_.info("store accepting new messages again", {{"available", *space}});
          }
        }
      }
      if (*space < opts_.min_free_space + batch[i].space) {
        results[i] = {SQLITE_FULL, 0, "free space below the store's min_free_space"};
        continue;
      }
      *space -= batch[i].space;
    }
    if (batch[i].deletes_messages) {
      write_pending_index(i);
      if (fatal) break;
    }
    try {
      run_cached("SAVEPOINT job");
    } catch (const std::exception& e) {
      fatal = failure(e);
      break;
    }
    try {
      results[i] = batch[i].run(db);
    } catch (const std::exception& e) {
      results[i] = failure(e);
    }
    // SQLITE_FULL, IOERR, NOMEM… may have rolled back the whole transaction already.
    if (!db.in_transaction()) {
      fatal =
          results[i].ok() ? write_result{SQLITE_ERROR, 0, "transaction rolled back"} : results[i];
      break;
    }
    try {
      if (!results[i].ok()) run_cached("ROLLBACK TO job");
      run_cached("RELEASE job");
    } catch (const std::exception& e) {
      fatal = failure(e);
    }
  }
  write_pending_index(batch.size());
  if (!fatal) {
    try {
      run_cached("COMMIT");
    } catch (const std::exception& e) {
      fatal = failure(e);
    }
  }
  if (fatal) {
    roll_back(db, log_);
    log_.warn("store group commit failed",
              {{"jobs", batch.size()}, {"rc", fatal->rc}, {"error", fatal->error}});
    // Invariant: nothing of this transaction is durable, so no job may report success.
    for (auto& r : results)
      r = *fatal;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  transactions_.fetch_add(1, std::memory_order_relaxed);
  jobs_.fetch_add(batch.size(), std::memory_order_relaxed);
  if (batch.size() > largest_batch_.load(std::memory_order_relaxed)) {
    largest_batch_.store(batch.size(), std::memory_order_relaxed);
  }
  last_batch_size_ = batch.size();
  if (m_batch_size_) m_batch_size_->observe(static_cast<double>(batch.size()));
  if (m_commit_seconds_) m_commit_seconds_->observe(seconds);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (results[i].ok() && batch[i].after_commit) {
      try {
        batch[i].after_commit(results[i]);
      } catch (const std::exception& e) {
        log_.warn("store post-commit action failed", {{"error", e.what()}});
      }
    }
    if (!results[i].ok() && m_write_errors_) m_write_errors_->inc();
    batch[i].complete(std::move(results[i]));
  }
}

void sqlite_store::run_standalone(write_job& job) {
  write_result r;
  try {
    r = job.run(*writer_db_);
  } catch (const std::exception& e) {
    r = failure(e);
    if (writer_db_->in_transaction()) {
      try {
        writer_db_->exec("ROLLBACK");
      } catch (...) {
      }
    }
  }
  if (r.ok() && job.after_commit) {
    try {
      job.after_commit(r);
    } catch (const std::exception& e) {
      log_.warn("store post-commit action failed", {{"error", e.what()}});
    }
  }
  job.complete(std::move(r));
}

namespace {

// A read transaction around several statements, so counts and the page agree.
class read_txn {
 public:
  explicit read_txn(database& db) : db_(db) { db_.exec("BEGIN"); }
  ~read_txn() {
    try {
      if (db_.in_transaction()) db_.exec("COMMIT");
    } catch (...) {
    }
  }
  read_txn(const read_txn&) = delete;
  read_txn& operator=(const read_txn&) = delete;

 private:
  database& db_;
};

// The filter selecting what a bulk call applies to (see message_selector).
sql_filter selector_filter(const std::string& mailbox, const message_selector& which) {
  if (!which.ids.empty()) {
    if (which.ids.size() > kMaxSelectorIds) {
      throw std::invalid_argument("too many message ids in one request (at most " +
                                  std::to_string(kMaxSelectorIds) + ")");
    }
    boost::json::array ids;
    for (const auto& id : which.ids)
      ids.emplace_back(id);
    sql_filter f;
    f.where = "m.mailbox = ? AND m.id IN (SELECT value FROM json_each(?))";
    f.binds = {mailbox, boost::json::serialize(ids)};
    return f;
  }
  if (which.query) return compile_filter(parse_search(*which.query), mailbox, which.tz);
  return compile_filter({}, mailbox, which.tz);
}

// A keyed search (sql_filter::keys) finds its page either from its set (`set`: the ids
// through messages_data, which holds created, then a sort of the matches) or by walking the
// mailbox newest first (`scan`: messages_mailbox_created holds data_id, so a non-match
// costs no row read) until the page is full, whichever reads fewer index entries for
// evenly spread matches (a set entry costs a probe and a sorter insert: about four).
bool page_from_set(std::uint64_t set_size, std::uint64_t matched, std::uint64_t total,
                   std::uint64_t offset, std::uint64_t limit) {
  if (matched == 0) return true;
  const double wanted = static_cast<double>(offset) + static_cast<double>(limit);
  const double scan = std::min(static_cast<double>(total),
                               wanted * static_cast<double>(total) / static_cast<double>(matched));
  return 4.0 * static_cast<double>(set_size) < scan;
}

boost::json::array json_strings(const std::vector<std::string>& v) {
  boost::json::array a;
  for (const auto& s : v)
    a.emplace_back(s);
  return a;
}

}  // namespace

write_result sqlite_store::write_data(database& db, const prepared_message& p, bool with_index,
                                      std::int64_t& data_id) {
  // Where the `raw` bytes come from: memory (a small frame, an in-memory body) or a file
  // (a spilled frame, a spooled body).
  const std::uint64_t stored = p.stored_size();
  std::optional<std::string_view> memory;
  if (p.compressed && !p.compressed_file) {
    memory = p.compressed_data;
  } else if (!p.compressed && p.body) {
    memory = p.body->memory();
  }
  // Binding hands SQLite the bytes, and it builds the whole record (a full copy) in
  // memory before writing it. Only small data is bound; anything else gets a zeroblob
  // (SQLite writes its zeros page by page, never holding them) and is then streamed in.
  const bool stream = stored > 0 && (!memory || stored > kBindLimit);
  if (stream && stored > static_cast<std::uint64_t>(INT_MAX)) {
    return {SQLITE_TOOBIG, 0, "message too large for the store"};
  }
  {
    auto s = db.cached("INSERT INTO message_data(raw, compressed, raw_size) VALUES(?1, ?2, ?3)");
    // The bound bytes (compressed frame or in-memory body) live in `p` until the job is
    // completed, longer than this statement execution.
    if (!stream && stored > 0) {
      s->bind_blob_static(1, *memory);
    } else {
      s->bind_zeroblob(1, stored);
    }
    s->bind(2, p.compressed ? 1 : 0);
    s->bind(3, static_cast<std::int64_t>(p.raw_size));
    s->run();
  }
  data_id = db.last_insert_rowid();
  if (stream) {
    auto next = [&](std::uint64_t off, std::span<char> buf,
                    std::error_code& ec) -> std::string_view {
      ec.clear();
      if (memory) return memory->substr(off, kIoChunk);  // no copy: straight from memory
      if (p.compressed) return {buf.data(), p.compressed_file->read(off, buf, ec)};
      return {buf.data(), p.body->read(off, buf, ec)};
    };
    if (auto r = write_blob(db, data_id, stored, next); !r.ok()) return r;
  }
  if (!p.view_blob.empty()) {
    auto s = db.cached("INSERT INTO message_views(data_id, view, compressed) VALUES(?1, ?2, ?3)");
    s->bind(1, data_id);
    s->bind_blob_static(2, p.view_blob);
    s->bind(3, p.view_compressed ? 1 : 0);
    s->run();
  }
  write_fields(db, data_id, p.headers);
  if (with_index) write_index(db, data_id, p.index, /*fresh=*/true);
  return {};
}

std::vector<std::string> sqlite_store::tag_rows(database& db, std::int64_t seq,
                                                const std::string& mailbox,
                                                const std::vector<std::string>& tags) {
  std::vector<std::string> names;
  for (const auto& tag : tags) {
    {
      auto s = db.cached(
          "INSERT INTO tags(mailbox, name) VALUES(?1, ?2) ON CONFLICT(mailbox, name) DO NOTHING");
      s->bind(1, mailbox);
      s->bind(2, tag);
      s->run();
    }
    std::int64_t tag_id = 0;
    {
      auto s = db.cached("SELECT id, name FROM tags WHERE mailbox = ?1 AND name = ?2");
      s->bind(1, mailbox);
      s->bind(2, tag);
      if (!s->step()) throw std::runtime_error("tag vanished");
      tag_id = s->column_int(0);
      names.emplace_back(s->column_text(1));  // the spelling the mailbox already uses
    }
    auto s = db.cached("INSERT OR IGNORE INTO message_tags(seq, tag_id) VALUES(?1, ?2)");
    s->bind(1, seq);
    s->bind(2, tag_id);
    s->run();
  }
  return names;
}

void sqlite_store::prune_unused_tags(database& db) {
  db.exec("DELETE FROM tags WHERE NOT EXISTS (SELECT 1 FROM message_tags WHERE tag_id = tags.id)");
}

write_result sqlite_store::insert_rows(database& db, prepared_message& p, const insert_options& o,
                                       std::vector<stored_copy>& added, bool defer_index,
                                       std::int64_t& data_id) {
  data_id = 0;
  std::vector<std::string> fresh;
  std::uint64_t duplicates = 0;
  const bool check_message_id = o.drop_duplicate_ids && !p.meta.message_id.empty();
  for (const auto& mailbox : p.mailboxes) {
    {
      auto s = db.cached("SELECT 1 FROM messages WHERE mailbox = ?1 AND id = ?2");
      s->bind(1, mailbox);
      s->bind(2, p.meta.id);
      if (s->step()) continue;  // already stored (idempotent retry)
    }
    if (check_message_id) {
      auto s = db.cached("SELECT 1 FROM messages WHERE mailbox = ?1 AND message_id = ?2 LIMIT 1");
      s->bind(1, mailbox);
      s->bind(2, p.meta.message_id);
      if (s->step()) {
        ++duplicates;
        continue;
      }
    }
    fresh.push_back(mailbox);
  }
  if (fresh.empty()) return {SQLITE_OK, 0, {}, duplicates};
  if (auto r = write_data(db, p, !defer_index, data_id); !r.ok()) return r;
  const stored_message& m = p.meta;
  for (const auto& mailbox : fresh) {
    {
      auto s =
          db.cached("INSERT INTO mailboxes(name, created) VALUES(?1, ?2) ON CONFLICT DO NOTHING");
      s->bind(1, mailbox);
      s->bind(2, now_ms());
      s->run();
    }
    {
      auto s = db.cached(
          "INSERT INTO messages(id, mailbox, data_id, created, size, message_id, subject,"
          " from_addr, to_addr, cc_addr, bcc_addr, reply_to, username, snippet, attachments,"
          " inline_parts, env_from, envelope, attributes, edits, read, quarantined)"
          " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
          " ?18, ?19, ?20, 0, ?21)");
      s->bind(1, m.id);
      s->bind(2, mailbox);
      s->bind(3, data_id);
      s->bind(4, m.created_ms);
      s->bind(5, static_cast<std::int64_t>(m.size));
      s->bind(6, m.message_id);
      s->bind(7, m.subject);
      s->bind(8, address_json_text(m.from));
      s->bind(9, address_list_json_text(m.to));
      s->bind(10, address_list_json_text(m.cc));
      s->bind(11, address_list_json_text(m.bcc));
      s->bind(12, address_list_json_text(m.reply_to));
      s->bind(13, m.username);
      s->bind(14, m.snippet);
      s->bind(15, static_cast<std::int64_t>(m.attachments));
      s->bind(16, static_cast<std::int64_t>(m.inline_parts));
      s->bind(17, m.envelope_from);
      s->bind(18, p.envelope_json);
      s->bind(19, p.attributes_json);
      s->bind(20, p.edits_json);
      s->bind(21, m.quarantined ? 1 : 0);
      s->run();
    }
    const std::int64_t seq = db.last_insert_rowid();
    std::vector<std::string> names = tag_rows(db, seq, mailbox, p.tags);
    // Rules see the row as stored so far (its own tags included): the same SQL as a search.
    std::vector<std::string> rule_tags;
    for (const auto& rule : o.rules) {
      const sql_filter f = compile_filter(rule.query, mailbox, std::string());
      statement s(db.get(), "SELECT 1 FROM messages m WHERE m.seq = ? AND " + f.where);
      s.bind(1, seq);
      bind_filter(s, f, 2);
      if (s.step()) {
        for (const auto& t : rule.tags)
          add_tag(rule_tags, t);
      }
    }
    if (!rule_tags.empty()) {
      for (auto& n : tag_rows(db, seq, mailbox, rule_tags))
        add_tag(names, n);
    }
    sort_tags(names);
    added.push_back({mailbox, std::move(names)});
  }
  return {SQLITE_OK, fresh.size(), {}, duplicates};
}

asio::awaitable<write_result> sqlite_store::insert(prepared_message p, insert_options o) {
  struct state {
    prepared_message row;
    insert_options options;
    std::vector<stored_copy> added;
    std::int64_t data_id = 0;
  };
  auto st = std::make_shared<state>(state{std::move(p), std::move(o), {}});
  // Tag rules search the new row inside its own job, so they need its index entry there.
  const bool defer_index = st->options.rules.empty();
  write_job job;
  job.bytes = st->row.stored_size();
  job.space = st->row.growth_estimate();
  job.run = [this, st, defer_index](database& db) {
    st->added.clear();  // a retried savepoint starts over
    return insert_rows(db, st->row, st->options, st->added, defer_index, st->data_id);
  };
  if (defer_index) {
    job.index = [st](database& db) {
      if (st->data_id != 0) write_index(db, st->data_id, st->row.index, /*fresh=*/true);
    };
  }
  job.after_commit = [this, st](const write_result& r) {
    if (r.n == 0) return;  // duplicate: nothing new to announce
    for (const auto& copy : st->added) {
      stored_message meta = st->row.meta;
      meta.mailbox = copy.mailbox;
      meta.tags = copy.tags;
      {
        std::lock_guard lk(mu_);
        mailboxes_.insert(meta.mailbox);
      }
      if (m_messages_) m_messages_->inc();
      publish("new", meta.mailbox, sluice::mailpit::summary_json(meta));
    }
  };
  co_return co_await submit(std::move(job));
}

void sqlite_store::declare_mailbox(const std::string& mailbox) {
  {
    std::lock_guard lk(mu_);
    if (!mailboxes_.insert(mailbox).second) return;
  }
  write_job job;
  job.run = [mailbox](database& db) {
    auto s =
        db.cached("INSERT INTO mailboxes(name, created) VALUES(?1, ?2) ON CONFLICT DO NOTHING");
    s->bind(1, mailbox);
    s->bind(2, now_ms());
    s->run();
    return write_result{};
  };
  job.complete = [this, mailbox](write_result r) {
    if (!r.ok())
      log_.warn("store could not record a mailbox", {{"mailbox", mailbox}, {"error", r.error}});
  };
  enqueue(std::move(job));
}

void sqlite_store::require_message_id_index() {
  {
    std::lock_guard lk(mu_);
    if (std::exchange(message_id_index_, true)) return;
  }
  write_job job;
  job.run = [](database& db) {
    db.exec(
        "CREATE INDEX IF NOT EXISTS messages_mailbox_message_id"
        " ON messages(mailbox, message_id)");
    return write_result{};
  };
  job.complete = [this](write_result r) {
    if (!r.ok()) {
      // The duplicate check still works without it (a scan of the mailbox's rows).
      log_.warn("store could not create the Message-ID index", {{"error", r.error}});
      std::lock_guard lk(mu_);
      message_id_index_ = false;
    }
  };
  enqueue(std::move(job));
}

asio::awaitable<write_result> sqlite_store::submit_checked(write_job job, const char* what) {
  write_result r = co_await submit(std::move(job));
  if ((r.rc & 0xff) == SQLITE_FULL) {
    throw sluice::storage_full_error("the mail store's disk is full (" + std::string(what) +
                                     " not done): free disk space");
  }
  if (!r.ok()) {
    throw sluice::storage_error("the mail store failed (" + std::string(what) +
                                " not done): " + r.error);
  }
  co_return r;
}

asio::awaitable<std::uint64_t> sqlite_store::set_read(std::string mailbox, message_selector which,
                                                      bool read) {
  // Compiled here, so a bad query reaches the caller as search_error.
  auto f = std::make_shared<sql_filter>(selector_filter(mailbox, which));
  auto changed = std::make_shared<std::vector<std::string>>();
  write_job job;
  job.run = [f, read, changed](database& db) {
    changed->clear();
    statement s(db.get(),
                "UPDATE messages SET read = ? WHERE read != ? AND seq IN"
                " (SELECT m.seq FROM messages m WHERE " +
                    f->where + ") RETURNING id");
    s.bind(1, read ? 1 : 0);
    s.bind(2, read ? 1 : 0);
    bind_filter(s, *f, 3);
    while (s.step())
      changed->emplace_back(s.column_text(0));
    return write_result{SQLITE_OK, changed->size(), {}};
  };
  job.after_commit = [this, mailbox, read, changed](const write_result&) {
    if (changed->size() > kMaxEventsPerChange) {
      publish("changed", mailbox, boost::json::object{{"Count", changed->size()}, {"Read", read}});
      return;
    }
    for (const auto& id : *changed)
      publish("update", mailbox, boost::json::object{{"ID", id}, {"Read", read}});
  };
  co_return (co_await submit_checked(std::move(job), "set_read")).n;
}

asio::awaitable<std::uint64_t> sqlite_store::remove(std::string mailbox, message_selector which) {
  const bool everything = which.ids.empty() && !which.query;
  auto f = std::make_shared<sql_filter>(selector_filter(mailbox, which));
  auto removed = std::make_shared<std::vector<std::string>>();
  write_job job;
  job.deletes_messages = true;
  job.run = [this, f, removed](database& db) {
    removed->clear();
    statement s(db.get(), "DELETE FROM messages WHERE seq IN (SELECT m.seq FROM messages m WHERE " +
                              f->where + ") RETURNING id");
    bind_filter(s, *f, 1);
    while (s.step())
      removed->emplace_back(s.column_text(0));
    s.reset();
    if (!removed->empty()) prune_unused_tags(db);
    return write_result{SQLITE_OK, removed->size(), {}};
  };
  job.after_commit = [this, mailbox, removed, everything](const write_result& r) {
    deleted_.fetch_add(r.n, std::memory_order_relaxed);
    if (everything) {
      publish("truncate", mailbox, nullptr);
      return;
    }
    if (removed->size() > kMaxEventsPerChange) {
      publish("changed", mailbox,
              boost::json::object{{"Count", removed->size()}, {"Deleted", true}});
      return;
    }
    for (const auto& id : *removed)
      publish("delete", mailbox, boost::json::object{{"ID", id}});
  };
  co_return (co_await submit_checked(std::move(job), "remove")).n;
}

asio::awaitable<void> sqlite_store::set_tags(std::string mailbox, std::vector<std::string> ids,
                                             std::vector<std::string> tags) {
  if (ids.size() > kMaxSelectorIds) throw std::invalid_argument("too many message ids");
  std::vector<std::string> cleaned;
  for (const auto& t : tags)
    add_tag(cleaned, t);
  auto changed = std::make_shared<std::vector<std::pair<std::string, std::vector<std::string>>>>();
  write_job job;
  job.run = [this, mailbox, ids = std::move(ids), cleaned, changed](database& db) {
    changed->clear();
    for (const auto& id : ids) {
      std::int64_t seq = 0;
      {
        auto s = db.cached("SELECT seq FROM messages WHERE mailbox = ?1 AND id = ?2");
        s->bind(1, mailbox);
        s->bind(2, id);
        if (!s->step()) continue;
        seq = s->column_int(0);
      }
      {
        auto s = db.cached("DELETE FROM message_tags WHERE seq = ?1");
        s->bind(1, seq);
        s->run();
      }
      auto names = tag_rows(db, seq, mailbox, cleaned);
      sort_tags(names);
      changed->emplace_back(id, std::move(names));
    }
    prune_unused_tags(db);
    return write_result{SQLITE_OK, changed->size(), {}};
  };
  job.after_commit = [this, mailbox, changed](const write_result&) {
    if (changed->size() > kMaxEventsPerChange) {
      publish("changed", mailbox, boost::json::object{{"Count", changed->size()}, {"Tags", true}});
      return;
    }
    for (const auto& [id, names] : *changed)
      publish("update", mailbox, boost::json::object{{"ID", id}, {"Tags", json_strings(names)}});
  };
  co_await submit_checked(std::move(job), "set_tags");
}

asio::awaitable<void> sqlite_store::rename_tag(std::string mailbox, std::string from,
                                               std::string to) {
  const std::string target = clean_tag(to);
  if (target.empty()) throw std::invalid_argument("invalid tag name");
  write_job job;
  job.run = [mailbox, from, target](database& db) {
    std::int64_t from_id = 0;
    {
      auto s = db.cached("SELECT id FROM tags WHERE mailbox = ?1 AND name = ?2");
      s->bind(1, mailbox);
      s->bind(2, from);
      if (!s->step()) return write_result{SQLITE_OK, 0, {}};
      from_id = s->column_int(0);
    }
    std::int64_t to_id = 0;
    {
      auto s = db.cached("SELECT id FROM tags WHERE mailbox = ?1 AND name = ?2");
      s->bind(1, mailbox);
      s->bind(2, target);
      if (s->step()) to_id = s->column_int(0);
    }
    if (to_id == 0 || to_id == from_id) {
      // A new name, or the same tag spelled differently: rename in place.
      auto s = db.cached("UPDATE tags SET name = ?2 WHERE id = ?1");
      s->bind(1, from_id);
      s->bind(2, target);
      s->run();
    } else {
      // Merge into the existing tag.
      {
        auto s = db.cached(
            "INSERT OR IGNORE INTO message_tags(seq, tag_id)"
            " SELECT seq, ?2 FROM message_tags WHERE tag_id = ?1");
        s->bind(1, from_id);
        s->bind(2, to_id);
        s->run();
      }
      auto s = db.cached("DELETE FROM tags WHERE id = ?1");
      s->bind(1, from_id);
      s->run();
    }
    return write_result{SQLITE_OK, 1, {}};
  };
  job.after_commit = [this, mailbox](const write_result& r) {
    if (r.n > 0) publish("prune", mailbox, nullptr);
  };
  co_await submit_checked(std::move(job), "rename_tag");
}

asio::awaitable<void> sqlite_store::delete_tag(std::string mailbox, std::string tag) {
  write_job job;
  job.run = [mailbox, tag](database& db) {
    auto s = db.cached("DELETE FROM tags WHERE mailbox = ?1 AND name = ?2");
    s->bind(1, mailbox);
    s->bind(2, tag);
    s->run();  // message_tags rows go with it (ON DELETE CASCADE)
    return write_result{SQLITE_OK, static_cast<std::uint64_t>(db.changes()), {}};
  };
  job.after_commit = [this, mailbox](const write_result& r) {
    if (r.n > 0) publish("prune", mailbox, nullptr);
  };
  co_await submit_checked(std::move(job), "delete_tag");
}

std::uint64_t sqlite_store::prune_step(bool& more) {
  more = false;
  database& db = *writer_db_;
  std::set<std::string> mailboxes;
  std::uint64_t budget = opts_.prune_batch;
  auto take = [&](statement& s) {
    while (s.step()) {
      mailboxes.emplace(s.column_text(1));
      --budget;
    }
  };
  db.exec("BEGIN IMMEDIATE");
  try {
    if (opts_.max_age.count() > 0) {
      auto s = db.cached(
          "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE created < ?1"
          " ORDER BY created LIMIT ?2) RETURNING id, mailbox");
      s->bind(1, now_ms() - opts_.max_age.count());
      s->bind(2, static_cast<std::int64_t>(budget));
      take(*s);
    }
    if (opts_.max_messages > 0 && budget > 0) {
      std::vector<std::pair<std::string, std::uint64_t>> excess;
      {
        auto s = db.cached(
            "SELECT mailbox, count(*) FROM messages GROUP BY mailbox HAVING count(*) > ?1");
        s->bind(1, static_cast<std::int64_t>(opts_.max_messages));
        while (s->step()) {
          excess.emplace_back(s->column_text(0),
                              static_cast<std::uint64_t>(s->column_int(1)) - opts_.max_messages);
        }
      }
      for (const auto& [mailbox, n] : excess) {
        if (budget == 0) break;
        auto s = db.cached(
            "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages WHERE mailbox = ?1"
            " ORDER BY created, seq LIMIT ?2) RETURNING id, mailbox");
        s->bind(1, mailbox);
        s->bind(2, static_cast<std::int64_t>(std::min(n, budget)));
        take(*s);
      }
    }
    if (budget < opts_.prune_batch) prune_unused_tags(db);
    db.exec("COMMIT");
  } catch (...) {
    if (db.in_transaction()) db.exec("ROLLBACK");
    throw;
  }
  const std::uint64_t total = opts_.prune_batch - budget;
  more = budget == 0;  // the batch was full: there may be more to remove
  pruned_.fetch_add(total, std::memory_order_relaxed);
  deleted_.fetch_add(total, std::memory_order_relaxed);
  if (m_pruned_ && total > 0) m_pruned_->inc(static_cast<double>(total));
  for (const auto& mailbox : mailboxes)
    publish("prune", mailbox, nullptr);
  if (total > 0) log_.debug("store pruned messages", {{"count", total}});
  return total;
}

void sqlite_store::prune_housekeeping() {
  database& db = *writer_db_;
  try {
    // Give freed pages back in bounded steps so a big prune does not stall writers.
    if (db.query_int("PRAGMA freelist_count") > 1024) db.exec("PRAGMA incremental_vacuum(4096)");
  } catch (const std::exception& e) {
    log_.warn("store housekeeping failed", {{"error", e.what()}});
  }
}

asio::awaitable<std::uint64_t> sqlite_store::prune_now() {
  write_job job;
  job.standalone = true;
  job.run = [this](database&) {
    write_result r;
    bool more = true;
    while (more)
      r.n += prune_step(more);
    if (r.n > 0) prune_housekeeping();
    return r;
  };
  write_result r = co_await submit(std::move(job));
  if (!r.ok()) throw std::runtime_error("store: prune failed: " + r.error);
  co_return r.n;
}

void sqlite_store::publish(std::string type, std::string mailbox, boost::json::value data) {
  if (!events_) return;
  try {
    events_->publish(sluice::event{std::move(type), std::move(mailbox), std::move(data)});
  } catch (const std::exception& e) {
    log_.warn("store event subscriber failed", {{"error", e.what()}});
  }
}

void sqlite_store::record_delivery(const boost::json::value& data) {
  const auto* o = data.if_object();
  const auto* id = o ? o->if_contains("ID") : nullptr;
  if (!id || !id->is_string()) return;
  const auto* at = o->if_contains("At");
  struct entry {
    std::string id;
    std::int64_t at;
    std::string json;
  };
  auto e = std::make_shared<entry>(entry{std::string(id->get_string()),
                                         at && at->is_int64() ? at->get_int64() : now_ms(),
                                         boost::json::serialize(data)});
  write_job job;
  job.run = [e](database& db) -> write_result {
    {
      // Only for a message this store holds (the mailbox list makes the lookup indexed).
      auto s = db.cached(
          "INSERT INTO deliveries(id, at, entry) SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM"
          " messages WHERE mailbox IN (SELECT name FROM mailboxes) AND id = ?1)");
      s->bind(1, e->id);
      s->bind(2, e->at);
      s->bind(3, e->json);
      s->run();
    }
    if (db.changes() == 0) return {SQLITE_OK, 0, {}};
    auto s = db.cached(
        "DELETE FROM deliveries WHERE id = ?1 AND seq <= (SELECT seq FROM deliveries WHERE id = ?1"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?2)");
    s->bind(1, e->id);
    s->bind(2, static_cast<std::int64_t>(kMaxDeliveries));
    s->run();
    return {SQLITE_OK, 1, {}};
  };
  job.complete = [this](write_result r) {
    if (!r.ok()) log_.warn("store could not record a delivery", {{"error", r.error}});
  };
  enqueue(std::move(job));
}

asio::awaitable<std::optional<boost::json::array>> sqlite_store::deliveries(std::string mailbox,
                                                                            std::string id) {
  auto fn = [mailbox = std::move(mailbox),
             id = std::move(id)](database& db) -> std::optional<boost::json::array> {
    read_txn txn(db);
    {
      auto s = db.cached("SELECT 1 FROM messages WHERE mailbox = ?1 AND id = ?2");
      s->bind(1, mailbox);
      s->bind(2, id);
      if (!s->step()) return std::nullopt;
    }
    boost::json::array out;
    auto s = db.cached("SELECT entry FROM deliveries WHERE id = ?1 ORDER BY seq");
    s->bind(1, id);
    while (s->step()) {
      boost::system::error_code ec;
      auto v = sluice::parse_stored_json(s->column_text(0), ec);
      if (!ec) out.push_back(std::move(v));
    }
    return out;
  };
  co_return co_await read(std::move(fn));
}

store_stats sqlite_store::write_stats() const {
  return {transactions_.load(),  jobs_.load(),
          largest_batch_.load(), pruned_.load(),
          index_merges_.load(),  checkpointer_ ? checkpointer_->stats() : checkpoint_stats{}};
}

// ---------------------------------------------------------------------------------------
// Reader side

std::unique_ptr<database> sqlite_store::open_reader() {
  auto db = std::make_unique<database>(opts_.path, SQLITE_OPEN_READONLY);
  db->exec("PRAGMA busy_timeout=" + std::to_string(opts_.busy_timeout.count()));
  db->exec("PRAGMA query_only=1; PRAGMA cache_size=-8192;");
  register_functions(*db);
  return db;
}

template <class F>
auto sqlite_store::read(F fn) -> asio::awaitable<std::invoke_result_t<F&, database&>> {
  auto on_reader = [this, fn = std::move(fn)]() mutable {
    // Runs on a reader thread; at most read_connections leases exist at once, one per
    // thread, so a connection is never shared.
    reader_lease lease{this, nullptr};
    {
      std::lock_guard lk(readers_mu_);
      if (!idle_readers_.empty()) {
        lease.db = std::move(idle_readers_.back());
        idle_readers_.pop_back();
      }
    }
    try {
      if (!lease.db) lease.db = open_reader();
      return fn(*lease.db);
    } catch (const sqlite_error& e) {
      // The database could not be read (an I/O error, a damaged file): the caller gets an
      // error it may show, not the message of an internal exception.
      if (e.storage_failure()) {
        throw sluice::storage_error(std::string("the mail store could not be read: ") + e.what());
      }
      throw;
    }
  };
  return run_blocking(readers_.get_executor(), std::move(on_reader));
}

std::vector<std::string> sqlite_store::mailboxes() const {
  std::lock_guard lk(mu_);
  return {mailboxes_.begin(), mailboxes_.end()};
}

asio::awaitable<search_result> sqlite_store::search(search_request r) {
  // Parsed and compiled on the caller's thread: a bad query throws search_error here.
  sql_filter f = compile_filter(parse_search(r.query), r.mailbox, r.tz);
  if (r.before_ms) {
    f.where += " AND m.created < ?";
    f.binds.emplace_back(*r.before_ms);
    f.key_rest += " AND m.created < ?";
    f.key_rest_binds.emplace_back(*r.before_ms);
    f.unfiltered = false;
  }
  auto fn = [r = std::move(r), f = std::move(f)](database& db) {
    search_result out;
    read_txn txn(db);
    const std::uint64_t limit = r.limit == 0 ? kMaxListLimit : std::min(r.limit, kMaxListLimit);
    const auto offset = static_cast<std::int64_t>(std::min<std::uint64_t>(r.offset, INT64_MAX));
    // The page's rows, by seq from an inner query over an index: the wide rows are read
    // for the page only.
    auto read_page = [&](statement& s) {
      while (s.step())
        out.messages.push_back(row_to_message(s));
    };
    const std::string page_head =
        std::string(kSelectMessage) + "WHERE m.seq IN (SELECT m.seq FROM messages m ";
    const char* page_tail =
        " ORDER BY m.created DESC, m.seq DESC LIMIT ? OFFSET ?) ORDER BY m.created DESC, m.seq "
        "DESC";
    {
      auto s = db.cached("SELECT total, unread FROM mailbox_counts WHERE mailbox = ?1");
      s->bind(1, r.mailbox);
      if (s->step()) {
        out.total = static_cast<std::uint64_t>(s->column_int(0));
        out.unread = static_cast<std::uint64_t>(s->column_int(1));
      }
    }
    if (f.keys.empty()) {
      if (f.unfiltered) {
        out.matched = out.total;  // the list: no second count of the same rows
        out.matched_unread = out.unread;
      } else {
        statement s(
            db.get(),
            "SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m WHERE " + f.where);
        bind_filter(s, f);
        if (s.step()) {
          out.matched = static_cast<std::uint64_t>(s.column_int(0));
          out.matched_unread = static_cast<std::uint64_t>(s.column_int(1));
        }
      }
      if (r.offset < out.matched) {
        statement s(db.get(), page_head + "WHERE " + f.where + page_tail);
        const int next = bind_filter(s, f);
        s.bind(next, static_cast<std::int64_t>(limit));
        s.bind(next + 1, offset);
        read_page(s);
      }
    } else {
      // The index sets first (each term's set from its index, intersected), as a bitmap of
      // data ids. A small set is then counted through messages_data (which holds mailbox,
      // read and created); a large one by one scan of the mailbox's (mailbox, read, data_id,
      // created) index, testing each entry against the set (sluice_keys) and the other
      // conditions: no temporary table, no wide row.
      const std::int64_t max_id = db.query_int("SELECT coalesce(max(id), 0) FROM message_data");
      key_set keys(max_id);
      for (std::size_t i = 0; i < f.keys.size(); ++i) {
        if (i == 0) {
          add_keys(db, f.keys[i], keys);
        } else {
          key_set more(max_id);
          add_keys(db, f.keys[i], more);
          keys.intersect(more);
        }
      }
      const std::uint64_t set_size = keys.size();
      std::string ids_json;  // the set as a JSON array, for json_each(), when it is small
      const bool small = 4 * set_size < out.total;
      if (small) {
        boost::json::array ids;
        for (std::int64_t id : keys.ids())
          ids.emplace_back(id);
        ids_json = boost::json::serialize(ids);
      }
      {
        statement s(db.get(),
                    small ? "SELECT m.read, count(*) FROM messages m INDEXED BY messages_data"
                            " WHERE m.data_id IN (SELECT value FROM json_each(?)) AND"
                            " m.mailbox = ?" +
                                f.key_rest + " GROUP BY m.read"
                          : "SELECT m.read, coalesce(sum(sluice_keys(?, m.data_id)" + f.key_rest +
                                "), 0) FROM messages m INDEXED BY messages_mailbox_read"
                                " WHERE m.mailbox = ? GROUP BY m.read");
        int next = 1;
        if (small) {
          s.bind(next++, ids_json);
          s.bind(next++, r.mailbox);
          bind_values(s, f.key_rest_binds, next);
        } else {
          bind_key_set(s, next++, keys);
          next = bind_values(s, f.key_rest_binds, next);
          s.bind(next, r.mailbox);
        }
        while (s.step()) {
          const auto hits = static_cast<std::uint64_t>(s.column_int(1));
          out.matched += hits;
          if (s.column_int(0) == 0) out.matched_unread += hits;
        }
      }
      if (r.offset < out.matched) {
        if (small && page_from_set(set_size, out.matched, out.total, r.offset, limit)) {
          statement s(db.get(), page_head +
                                    "INDEXED BY messages_data WHERE m.data_id IN"
                                    " (SELECT value FROM json_each(?)) AND m.mailbox = ?" +
                                    f.key_rest + page_tail);
          s.bind(1, ids_json);
          s.bind(2, r.mailbox);
          const int next = bind_values(s, f.key_rest_binds, 3);
          s.bind(next, static_cast<std::int64_t>(limit));
          s.bind(next + 1, offset);
          read_page(s);
        } else {
          statement s(db.get(), page_head +
                                    "INDEXED BY messages_mailbox_created WHERE m.mailbox = ?"
                                    " AND sluice_keys(?, m.data_id)" +
                                    f.key_rest + page_tail);
          s.bind(1, r.mailbox);
          bind_key_set(s, 2, keys);
          const int next = bind_values(s, f.key_rest_binds, 3);
          s.bind(next, static_cast<std::int64_t>(limit));
          s.bind(next + 1, offset);
          read_page(s);
        }
      }
    }
    {
      auto s = db.cached("SELECT name FROM tags WHERE mailbox = ?1 ORDER BY name COLLATE NOCASE");
      s->bind(1, r.mailbox);
      while (s->step())
        out.tags.emplace_back(s->column_text(0));
    }
    return out;
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::optional<std::string>> sqlite_store::latest(std::string mailbox,
                                                                 std::string query,
                                                                 std::string tz) {
  sql_filter f = compile_filter(parse_search(query), mailbox, tz);
  auto fn = [f = std::move(f)](database& db) -> std::optional<std::string> {
    statement s(db.get(), "SELECT m.id FROM messages m WHERE " + f.where +
                              " ORDER BY m.created DESC, m.seq DESC LIMIT 1");
    bind_filter(s, f);
    if (!s.step()) return std::nullopt;
    return std::string(s.column_text(0));
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<bool> sqlite_store::matches(std::string mailbox, std::string id, std::string query,
                                            std::string tz) {
  sql_filter f = compile_filter(parse_search(query), mailbox, tz);
  auto fn = [f = std::move(f), id = std::move(id)](database& db) {
    statement s(db.get(), "SELECT 1 FROM messages m WHERE m.id = ? AND " + f.where);
    s.bind(1, id);
    bind_filter(s, f, 2);
    return s.step();
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::optional<stored_message>> sqlite_store::get(std::string mailbox,
                                                                 std::string id) {
  auto fn = [mailbox = std::move(mailbox),
             id = std::move(id)](database& db) -> std::optional<stored_message> {
    read_txn txn(db);
    std::int64_t seq = 0, data_id = 0;
    std::optional<stored_message> m;
    {
      auto s = db.cached(std::string(kSelectMessage) + "WHERE m.mailbox = ?1 AND m.id = ?2");
      s->bind(1, mailbox);
      s->bind(2, id);
      if (!s->step()) return std::nullopt;
      m = row_to_message(*s);
      seq = s->column_int(kColSeq);
      data_id = s->column_int(kColDataId);
    }
    {
      auto s = db.cached("SELECT attributes FROM messages WHERE seq = ?1");
      s->bind(1, seq);
      if (s->step()) {
        boost::system::error_code ec;
        auto attrs = sluice::parse_stored_json(s->column_text(0), ec);
        if (!ec && attrs.is_object()) m->attributes = std::move(attrs.get_object());
      }
    }
    {
      auto s = db.cached("SELECT view, compressed FROM message_views WHERE data_id = ?1");
      s->bind(1, data_id);
      if (s->step()) {
        m->view = decode_view(s->column_blob(0), s->column_int(1) != 0);
        m->attributes["mime"] = to_json(*m->view);  // every stage result, as documented
      }
    }
    {
      auto s = db.cached("SELECT fields FROM message_fields WHERE data_id = ?1");
      s->bind(1, data_id);
      if (s->step()) m->headers = decode_fields(s->column_blob(0));
    }
    return m;
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::optional<std::string>> sqlite_store::raw(std::string mailbox, std::string id,
                                                              bool with_edits) {
  auto fn = [mailbox = std::move(mailbox), id = std::move(id),
             with_edits](database& db) -> std::optional<std::string> {
    auto s = db.cached(
        "SELECT d.raw, d.compressed, d.raw_size, m.edits FROM messages m"
        " JOIN message_data d ON d.id = m.data_id WHERE m.mailbox = ?1 AND m.id = ?2");
    s->bind(1, mailbox);
    s->bind(2, id);
    if (!s->step()) return std::nullopt;
    const auto raw_size = static_cast<std::uint64_t>(s->column_int(2));
    std::string bytes = s->column_int(1) != 0 ? decompress(s->column_blob(0), raw_size)
                                              : std::string(s->column_blob(0));
    if (bytes.size() != raw_size) throw std::runtime_error("stored message data is truncated");
    std::string_view edits_json = s->column_text(3);
    if (!with_edits || edits_json.empty() || edits_json == "[]") return bytes;
    message m;
    m.edits = edits_from_json_text(edits_json);
    m.raw = message_body::from_string(std::move(bytes));
    return m.output();
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::optional<part_content>> sqlite_store::part(std::string mailbox, std::string id,
                                                                std::string part_id) {
  auto fn = [mailbox = std::move(mailbox), id = std::move(id),
             part_id = std::move(part_id)](database& db) -> std::optional<part_content> {
    read_txn txn(db);
    std::int64_t data_id = 0;
    std::optional<parsed_message> view;
    {
      auto s = db.cached(
          "SELECT m.data_id, v.view, v.compressed FROM messages m"
          " JOIN message_views v ON v.data_id = m.data_id WHERE m.mailbox = ?1 AND m.id = ?2");
      s->bind(1, mailbox);
      s->bind(2, id);
      if (!s->step()) return std::nullopt;  // no such message, or no view to find parts in
      data_id = s->column_int(0);
      view = decode_view(s->column_blob(1), s->column_int(2) != 0);
    }
    const mime_part* found = nullptr;
    for (const auto* list : {&view->attachments, &view->inline_parts}) {
      for (const auto& p : *list) {
        if (p.part_id == part_id) found = &p;
      }
    }
    if (!found) return std::nullopt;
    bool compressed = false;
    std::uint64_t raw_size = 0;
    {
      auto s = db.cached("SELECT compressed, raw_size FROM message_data WHERE id = ?1");
      s->bind(1, data_id);
      if (!s->step()) return std::nullopt;
      compressed = s->column_int(0) != 0;
      raw_size = static_cast<std::uint64_t>(s->column_int(1));
    }
    if (found->offset > raw_size || found->length > raw_size - found->offset) {
      throw std::runtime_error("stored part lies outside its message");
    }
    // Only the part's bytes are read (plain) or kept (compressed: streamed through zstd).
    sqlite3_blob* blob = nullptr;
    int rc = sqlite3_blob_open(db.get(), "main", "message_data", "raw", data_id, 0, &blob);
    if (rc != SQLITE_OK) throw_sqlite(db.get(), rc, "blob open");
    std::string encoded;
    try {
      const auto blob_size = static_cast<std::uint64_t>(sqlite3_blob_bytes(blob));
      if (!compressed) {
        if (found->offset + found->length > blob_size) {
          throw std::runtime_error("stored message data is truncated");
        }
        encoded.resize(found->length);
        rc = sqlite3_blob_read(blob, encoded.data(), static_cast<int>(found->length),
                               static_cast<int>(found->offset));
        if (rc != SQLITE_OK) throw_sqlite(db.get(), rc, "blob read");
      } else {
        std::uint64_t at = 0;
        auto next = [&](std::span<char> buf) -> std::size_t {
          const std::size_t n = std::min<std::uint64_t>(buf.size(), blob_size - at);
          if (n == 0) return 0;
          int r = sqlite3_blob_read(blob, buf.data(), static_cast<int>(n), static_cast<int>(at));
          if (r != SQLITE_OK) throw_sqlite(db.get(), r, "blob read");
          at += n;
          return n;
        };
        encoded = decompress_slice(next, found->offset, found->length);
      }
    } catch (...) {
      sqlite3_blob_close(blob);
      throw;
    }
    sqlite3_blob_close(blob);
    part_content out;
    out.part = *found;
    out.data = decode_transfer(found->transfer_encoding, encoded);
    return out;
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::vector<std::string>> sqlite_store::tags(std::string mailbox) {
  auto fn = [mailbox = std::move(mailbox)](database& db) {
    std::vector<std::string> out;
    auto s = db.cached("SELECT name FROM tags WHERE mailbox = ?1 ORDER BY name COLLATE NOCASE");
    s->bind(1, mailbox);
    while (s->step())
      out.emplace_back(s->column_text(0));
    return out;
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<mailbox_stats> sqlite_store::stats(std::string mailbox) {
  auto fn = [mailbox = std::move(mailbox)](database& db) {
    mailbox_stats out;
    read_txn txn(db);
    {
      auto s = db.cached("SELECT total, unread FROM mailbox_counts WHERE mailbox = ?1");
      s->bind(1, mailbox);
      if (s->step()) {
        out.total = static_cast<std::uint64_t>(s->column_int(0));
        out.unread = static_cast<std::uint64_t>(s->column_int(1));
      }
    }
    auto s = db.cached(
        "SELECT t.name, count(mt.seq) FROM tags t JOIN message_tags mt ON mt.tag_id = t.id"
        " WHERE t.mailbox = ?1 GROUP BY t.id");
    s->bind(1, mailbox);
    while (s->step())
      out.tags[std::string(s->column_text(0))] = static_cast<std::uint64_t>(s->column_int(1));
    return out;
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<store_info> sqlite_store::info() {
  auto fn = [this](database&) {
    store_info out;
    out.location = opts_.path.string();
    std::error_code ec;
    for (const char* suffix : {"", "-wal"}) {
      auto n = std::filesystem::file_size(opts_.path.string() + suffix, ec);
      if (!ec) out.size_bytes += n;
    }
    out.deleted_total = deleted_.load(std::memory_order_relaxed);
    return out;
  };
  co_return co_await read(std::move(fn));
}

}  // namespace sluice::store
