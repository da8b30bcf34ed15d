// store.cpp — the SQLite store (see store.hpp for the threading and durability model).
#include "store.hpp"

#include <algorithm>
#include <climits>
#include <map>
#include <span>
#include <stdexcept>
#include <system_error>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>

#include "async.hpp"
#include "schema.hpp"

namespace asio = boost::asio;

namespace sluice::store {
namespace {

constexpr std::uint64_t kMaxListLimit = 10'000;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The columns every stored_message is read from, in the order row_to_message expects.
constexpr const char* kSelectMessage =
    "SELECT m.id, m.mailbox, m.created, m.size, m.message_id, m.subject, m.from_hdr, "
    "m.env_from, m.envelope, m.read, m.quarantined, m.attributes, "
    "(SELECT json_group_array(t.name) FROM message_tags mt JOIN tags t ON t.id = mt.tag_id "
    " WHERE mt.seq = m.seq) "
    "FROM messages m ";

stored_message row_to_message(const statement& s) {
  stored_message m;
  m.id = s.column_text(0);
  m.mailbox = s.column_text(1);
  m.created_ms = s.column_int(2);
  m.size = static_cast<std::uint64_t>(s.column_int(3));
  m.message_id = s.column_text(4);
  m.subject = s.column_text(5);
  m.from = s.column_text(6);
  m.envelope_from = s.column_text(7);
  m.envelope_to = envelope_recipients(s.column_text(8));
  m.read = s.column_int(9) != 0;
  m.quarantined = s.column_int(10) != 0;
  boost::system::error_code ec;
  auto attrs = boost::json::parse(s.column_text(11), ec);
  if (!ec && attrs.is_object()) m.attributes = std::move(attrs.get_object());
  auto tags = boost::json::parse(s.column_text(12), ec);
  if (!ec && tags.is_array()) {
    for (const auto& t : tags.get_array()) {
      if (t.is_string()) m.tags.emplace_back(t.get_string());
    }
  }
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
  if (opts_.path.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(opts_.path.parent_path(), ec);
  }
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
  db.exec(
      "PRAGMA foreign_keys=ON; PRAGMA secure_delete=FAST; PRAGMA temp_store=MEMORY;"
      "PRAGMA cache_size=-16384; PRAGMA journal_size_limit=67108864;");
  const std::int64_t found = migrate(db);
  if (found != schema_version()) {
    log_.info("store schema migrated", {{"from", found}, {"to", std::int64_t{schema_version()}}});
  }
  {
    statement s(db.get(), "SELECT name FROM mailboxes UNION SELECT DISTINCT mailbox FROM messages");
    while (s.step())
      mailboxes_.emplace(s.column_text(0));
  }
  if (metrics_) {
    const metric_labels labels{{"store", name_}};
    m_messages_ = &metrics_->get_counter("sluice_store_messages_total",
                                         "Messages committed to the store", labels);
    m_pruned_ = &metrics_->get_counter("sluice_store_pruned_total",
                                       "Messages removed by max_messages/max_age pruning", labels);
    m_write_errors_ = &metrics_->get_counter("sluice_store_write_errors_total",
                                             "Store write jobs that failed", labels);
    m_batch_size_ =
        &metrics_->get_histogram("sluice_store_commit_batch_size", "Write jobs per group commit",
                                 labels, {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024});
    m_commit_seconds_ = &metrics_->get_histogram(
        "sluice_store_commit_seconds", "Duration of one group commit transaction", labels,
        {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5});
  }
  writer_thread_ = std::thread([this] { writer_loop(); });
}

sqlite_store::~sqlite_store() {
  stop();
}

void sqlite_store::stop() {
  std::call_once(stop_once_, [this] {
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
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        job.complete = [h, work](write_result r) mutable {
          asio::post(work, [h, r = std::move(r)]() mutable { std::move (*h)(std::move(r)); });
        };
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
  job.complete({SQLITE_MISUSE, 0, "store is shutting down"});
}

void sqlite_store::writer_loop() {
  using clock = std::chrono::steady_clock;
  const bool pruning = opts_.max_messages > 0 || opts_.max_age.count() > 0;
  auto next_prune = clock::now() + opts_.prune_interval;
  bool prune_more = false;  // a prune run hit its batch limit: continue after client work
  std::vector<write_job> batch;
  batch.reserve(opts_.max_batch);
  for (;;) {
    {
      std::unique_lock lk(mu_);
      auto prune_due = [&] { return pruning && (prune_more || clock::now() >= next_prune); };
      while (queue_.empty() && !stopping_ && !prune_due()) {
        if (pruning) {
          cv_.wait_until(lk, next_prune);
        } else {
          cv_.wait(lk);
        }
      }
      // Invariant: we leave only with an empty queue, so every acknowledged job is done.
      if (queue_.empty() && stopping_) break;
      if (!queue_.empty() && queue_.front().standalone) {
        batch.push_back(std::move(queue_.front()));
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
          batch_bytes += queue_.front().bytes;
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
    }
    if (!batch.empty()) {
      if (batch.front().standalone) {
        run_standalone(batch.front());
      } else {
        run_batch(batch);
      }
      batch.clear();
      continue;  // client work goes before pruning
    }
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
  }
}

void sqlite_store::run_batch(std::vector<write_job>& batch) {
  database& db = *writer_db_;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<write_result> results(batch.size());
  std::optional<write_result> fatal;  // set when the whole transaction is lost
  try {
    db.exec("BEGIN IMMEDIATE");
  } catch (const std::exception& e) {
    fatal = failure(e);
  }
  for (std::size_t i = 0; !fatal && i < batch.size(); ++i) {
    try {
      db.exec("SAVEPOINT job");
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
      if (!results[i].ok()) db.exec("ROLLBACK TO job");
      db.exec("RELEASE job");
    } catch (const std::exception& e) {
      fatal = failure(e);
    }
  }
  if (!fatal) {
    try {
      db.exec("COMMIT");
    } catch (const std::exception& e) {
      fatal = failure(e);
    }
  }
  if (fatal) {
    if (db.in_transaction()) {
      try {
        db.exec("ROLLBACK");
      } catch (const std::exception& e) {
        log_.error("store rollback failed", {{"error", e.what()}});
      }
    }
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

write_result sqlite_store::insert_row(database& db, const prepared_message& p) {
  {
    auto s =
        db.cached("INSERT INTO mailboxes(name, created) VALUES(?1, ?2) ON CONFLICT DO NOTHING");
    s->bind(1, p.mailbox);
    s->bind(2, now_ms());
    s->run();
  }
  {
    auto s = db.cached(
        "INSERT INTO messages(id, mailbox, created, size, message_id, subject, from_hdr, to_hdr,"
        " cc_hdr, env_from, envelope, attributes, edits, read, quarantined)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 0, ?14)"
        " ON CONFLICT(id) DO NOTHING");
    s->bind(1, p.id);
    s->bind(2, p.mailbox);
    s->bind(3, p.created_ms);
    s->bind(4, static_cast<std::int64_t>(p.size));
    s->bind(5, p.headers.message_id);
    s->bind(6, p.headers.subject);
    s->bind(7, p.headers.from);
    s->bind(8, p.headers.to);
    s->bind(9, p.headers.cc);
    s->bind(10, p.env_from);
    s->bind(11, p.envelope_json);
    s->bind(12, p.attributes_json);
    s->bind(13, p.edits_json);
    s->bind(14, p.quarantined ? 1 : 0);
    s->run();
  }
  if (db.changes() == 0) return {SQLITE_OK, 0, {}};  // already stored: idempotent retry
  const std::int64_t seq = db.last_insert_rowid();

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
    auto s = db.cached(
        "INSERT INTO message_data(seq, raw, compressed, raw_size) VALUES(?1, ?2, ?3, ?4)");
    s->bind(1, seq);
    // The bound bytes (compressed frame or in-memory body) live in `p` until the job is
    // completed, longer than this statement execution.
    if (!stream && stored > 0) {
      s->bind_blob_static(2, *memory);
    } else {
      s->bind_zeroblob(2, stored);
    }
    s->bind(3, p.compressed ? 1 : 0);
    s->bind(4, static_cast<std::int64_t>(p.raw_size));
    s->run();
  }
  if (stream) {
    auto next = [&](std::uint64_t off, std::span<char> buf,
                    std::error_code& ec) -> std::string_view {
      ec.clear();
      if (memory) return memory->substr(off, kIoChunk);  // no copy: straight from memory
      if (p.compressed) return {buf.data(), p.compressed_file->read(off, buf, ec)};
      return {buf.data(), p.body->read(off, buf, ec)};
    };
    if (auto r = write_blob(db, seq, stored, next); !r.ok()) return r;
  }
  for (const auto& tag : p.tags) {
    std::int64_t tag_id = 0;
    {
      auto s = db.cached("INSERT INTO tags(name) VALUES(?1) ON CONFLICT(name) DO NOTHING");
      s->bind(1, tag);
      s->run();
    }
    {
      auto s = db.cached("SELECT id FROM tags WHERE name = ?1");
      s->bind(1, tag);
      if (!s->step()) return {SQLITE_ERROR, 0, "tag vanished"};
      tag_id = s->column_int(0);
    }
    auto s = db.cached("INSERT OR IGNORE INTO message_tags(seq, tag_id) VALUES(?1, ?2)");
    s->bind(1, seq);
    s->bind(2, tag_id);
    s->run();
  }
  return {SQLITE_OK, 1, {}};
}

asio::awaitable<write_result> sqlite_store::insert(prepared_message p) {
  auto row = std::make_shared<prepared_message>(std::move(p));
  write_job job;
  job.bytes = row->stored_size();
  job.run = [this, row](database& db) { return insert_row(db, *row); };
  job.after_commit = [this, row](const write_result& r) {
    if (r.n == 0) return;  // duplicate: nothing new to announce
    {
      std::lock_guard lk(mu_);
      mailboxes_.insert(row->mailbox);
    }
    if (m_messages_) m_messages_->inc();
    boost::json::array tags;
    for (const auto& t : row->tags)
      tags.emplace_back(t);
    publish("new", row->mailbox,
            boost::json::object{{"ID", row->id},
                                {"Mailbox", row->mailbox},
                                {"MessageID", row->headers.message_id},
                                {"Subject", row->headers.subject},
                                {"From", row->headers.from},
                                {"Size", row->size},
                                {"Created", row->created_ms},
                                {"Read", false},
                                {"Quarantined", row->quarantined},
                                {"Tags", std::move(tags)}});
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

asio::awaitable<bool> sqlite_store::set_read(std::string id, bool read) {
  auto mailbox = std::make_shared<std::string>();  // filled by run, read by after_commit
  write_job job;
  job.run = [id, read, mailbox](database& db) {
    auto s = db.cached("UPDATE messages SET read = ?1 WHERE id = ?2 RETURNING mailbox");
    s->bind(1, read ? 1 : 0);
    s->bind(2, id);
    write_result r;
    if (s->step()) {
      r.n = 1;
      *mailbox = s->column_text(0);
    }
    return r;
  };
  job.after_commit = [this, id, read, mailbox](const write_result& r) {
    if (r.n > 0) publish("update", *mailbox, boost::json::object{{"ID", id}, {"Read", read}});
  };
  write_result r = co_await submit(std::move(job));
  if (!r.ok()) throw std::runtime_error("store: set_read failed: " + r.error);
  co_return r.n > 0;
}

asio::awaitable<std::uint64_t> sqlite_store::remove(std::vector<std::string> ids) {
  auto removed = std::make_shared<std::map<std::string, boost::json::array>>();
  write_job job;
  job.run = [ids = std::move(ids), removed](database& db) {
    write_result r;
    for (const auto& id : ids) {
      auto s = db.cached("DELETE FROM messages WHERE id = ?1 RETURNING mailbox");
      s->bind(1, id);
      if (s->step()) {
        (*removed)[std::string(s->column_text(0))].emplace_back(id);
        ++r.n;
      }
    }
    return r;
  };
  job.after_commit = [this, removed](const write_result&) {
    for (auto& [mailbox, list] : *removed) {
      publish("delete", mailbox, boost::json::object{{"IDs", std::move(list)}});
    }
  };
  write_result r = co_await submit(std::move(job));
  if (!r.ok()) throw std::runtime_error("store: remove failed: " + r.error);
  co_return r.n;
}

asio::awaitable<std::uint64_t> sqlite_store::remove_all(std::string mailbox) {
  write_job job;
  job.run = [mailbox](database& db) {
    auto s = db.cached("DELETE FROM messages WHERE mailbox = ?1");
    s->bind(1, mailbox);
    s->run();
    return write_result{SQLITE_OK, static_cast<std::uint64_t>(db.changes()), {}};
  };
  job.after_commit = [this, mailbox](const write_result& r) {
    publish("truncate", mailbox, boost::json::object{{"Deleted", r.n}});
  };
  write_result r = co_await submit(std::move(job));
  if (!r.ok()) throw std::runtime_error("store: remove_all failed: " + r.error);
  co_return r.n;
}

std::uint64_t sqlite_store::prune_step(bool& more) {
  more = false;
  database& db = *writer_db_;
  std::map<std::string, boost::json::array> removed;
  std::uint64_t budget = opts_.prune_batch;
  auto take = [&](statement& s) {
    while (s.step()) {
      removed[std::string(s.column_text(1))].emplace_back(s.column_text(0));
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
    db.exec("COMMIT");
  } catch (...) {
    if (db.in_transaction()) db.exec("ROLLBACK");
    throw;
  }
  const std::uint64_t total = opts_.prune_batch - budget;
  more = budget == 0;  // the batch was full: there may be more to remove
  pruned_.fetch_add(total, std::memory_order_relaxed);
  if (m_pruned_ && total > 0) m_pruned_->inc(static_cast<double>(total));
  for (auto& [mailbox, ids] : removed) {
    const auto n = ids.size();
    publish("prune", mailbox, boost::json::object{{"IDs", std::move(ids)}, {"Deleted", n}});
  }
  if (total > 0) log_.debug("store pruned messages", {{"count", total}});
  return total;
}

void sqlite_store::prune_housekeeping() {
  database& db = *writer_db_;
  try {
    db.exec("DELETE FROM tags WHERE id NOT IN (SELECT tag_id FROM message_tags)");
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

store_stats sqlite_store::stats() const {
  return {transactions_.load(), jobs_.load(), largest_batch_.load(), pruned_.load()};
}

// ---------------------------------------------------------------------------------------
// Reader side

std::unique_ptr<database> sqlite_store::open_reader() {
  auto db = std::make_unique<database>(opts_.path, SQLITE_OPEN_READONLY);
  db->exec("PRAGMA busy_timeout=" + std::to_string(opts_.busy_timeout.count()));
  db->exec("PRAGMA query_only=1; PRAGMA cache_size=-8192;");
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
    if (!lease.db) lease.db = open_reader();
    return fn(*lease.db);
  };
  return run_blocking(readers_.get_executor(), std::move(on_reader));
}

std::vector<std::string> sqlite_store::mailboxes() const {
  std::lock_guard lk(mu_);
  return {mailboxes_.begin(), mailboxes_.end()};
}

asio::awaitable<std::vector<stored_message>> sqlite_store::list(mailbox_query q) {
  auto fn = [q = std::move(q)](database& db) {
    std::vector<stored_message> out;
    auto s =
        db.cached(std::string(kSelectMessage) +
                  "WHERE m.mailbox = ?1 ORDER BY m.created DESC, m.seq DESC LIMIT ?2 OFFSET ?3");
    s->bind(1, q.mailbox);
    s->bind(2, static_cast<std::int64_t>(std::min(q.limit, kMaxListLimit)));
    s->bind(3, static_cast<std::int64_t>(std::min<std::uint64_t>(q.offset, INT64_MAX)));
    while (s->step())
      out.push_back(row_to_message(*s));
    return out;
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::uint64_t> sqlite_store::count(std::string mailbox) {
  auto fn = [mailbox = std::move(mailbox)](database& db) {
    auto s = db.cached("SELECT count(*) FROM messages WHERE mailbox = ?1");
    s->bind(1, mailbox);
    return s->step() ? static_cast<std::uint64_t>(s->column_int(0)) : std::uint64_t{0};
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::optional<stored_message>> sqlite_store::get(std::string id) {
  auto fn = [id = std::move(id)](database& db) -> std::optional<stored_message> {
    auto s = db.cached(std::string(kSelectMessage) + "WHERE m.id = ?1");
    s->bind(1, id);
    if (!s->step()) return std::nullopt;
    return row_to_message(*s);
  };
  co_return co_await read(std::move(fn));
}

asio::awaitable<std::optional<std::string>> sqlite_store::raw(std::string id, bool with_edits) {
  auto fn = [id = std::move(id), with_edits](database& db) -> std::optional<std::string> {
    auto s = db.cached(
        "SELECT d.raw, d.compressed, d.raw_size, m.edits FROM messages m"
        " JOIN message_data d ON d.seq = m.seq WHERE m.id = ?1");
    s->bind(1, id);
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

}  // namespace sluice::store
