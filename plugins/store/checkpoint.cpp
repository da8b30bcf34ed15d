#include "checkpoint.hpp"

#include <limits>
#include <string>

namespace sluice::store {

wal_checkpointer::wal_checkpointer(const std::filesystem::path& path, std::uint32_t pages,
                                   bool durability_full, sluice::logger log,
                                   checkpoint_metrics metrics)
    : pages_(pages == 0 ? 1 : pages),
      slack_(pages_ / 8 < 4 ? 4 : pages_ / 8),
      log_(std::move(log)),
      metrics_(metrics),
      db_(std::make_unique<database>(path, SQLITE_OPEN_READWRITE)) {
  // A checkpoint fsyncs by its own connection's setting: the same as the writer's.
  db_->exec(durability_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // A connection opens the WAL only once it has read the database; until then a checkpoint
  // returns SQLITE_OK with log = -1 and copies nothing. Read it explicitly rather than rely
  // on the pragma above happening to do so (found in review).
  db_->exec("SELECT 1 FROM sqlite_schema LIMIT 1");
  last_warning_.store(std::numeric_limits<std::int64_t>::min() / 2, std::memory_order_relaxed);
  thread_ = std::thread([this] { run(); });
}

wal_checkpointer::~wal_checkpointer() {
  stop();
}

void wal_checkpointer::attach(database& writer) {
  writer.exec("PRAGMA wal_autocheckpoint=0");
  sqlite3_wal_hook(writer.get(), &wal_checkpointer::on_commit, this);
}

void wal_checkpointer::stop() {
  stop_now_.store(true, std::memory_order_relaxed);
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  db_.reset();
}

checkpoint_stats wal_checkpointer::stats() const noexcept {
  constexpr auto r = std::memory_order_relaxed;
  return {thread_passes_.load(r), thread_frames_.load(r), catch_up_passes_.load(r),
          bound_passes_.load(r),  restarts_.load(r),      failures_.load(r),
          busy_.load(r),          thread_syncs_.load(r)};
}

int wal_checkpointer::on_commit(void* self, sqlite3* db, const char* schema, int pages) {
  static_cast<wal_checkpointer*>(self)->on_commit(
      db, schema, static_cast<std::uint64_t>(pages < 0 ? 0 : pages));
  // Anything else would make the COMMIT that called us report an error it did not have.
  return SQLITE_OK;
}

// Runs on the writer's thread after each COMMIT, with no transaction open (SQLite calls the
// WAL hook once the write lock is released).
void wal_checkpointer::on_commit(sqlite3* db, const char* schema, std::uint64_t frames) {
  if (frames < last_frames_) {
    // This transaction began after a complete checkpoint and wrote from the WAL's start. (A
    // first transaction larger than the whole WAL before it goes unseen: then a catch-up pass
    // may copy that one transaction, never more than the bound path below would.)
    count(restarts_, metrics_.restarts);
    generation_.fetch_add(1, std::memory_order_relaxed);
  }
  last_frames_ = frames;
  if (metrics_.wal_frames) metrics_.wal_frames->set(static_cast<double>(frames));
  if (frames >= 2ull * pages_) {
    // Behind or failing: wait for the thread's pass to end, then copy the rest inline, as
    // autocheckpoint would. No one writes meanwhile, so the pass completes (unless a reader
    // pins an older snapshot) and the next transaction restarts the WAL.
    std::lock_guard pass(pass_mu_);
    count(bound_passes_, metrics_.bound_passes);
    writer_pass(db, schema, "store checkpoint (writer, at twice the threshold) failed");
    return;
  }
  if (frames < pages_) return;
  {
    // The thread's last complete pass, if it is of this WAL and the writer has added at most
    // slack_ frames since: copy those here, so that the next transaction restarts the WAL.
    // When the thread is in a pass, leave it the work.
    std::unique_lock pass(pass_mu_, std::try_to_lock);
    const auto gen = generation_.load(std::memory_order_relaxed);
    if (pass.owns_lock() && completed_.generation == gen && completed_.frames <= frames &&
        frames - completed_.frames <= slack_) {
      count(catch_up_passes_, metrics_.catch_up_passes);
      writer_pass(db, schema, "store checkpoint (writer, catching up) failed");
      return;
    }
  }
  request_pass();
}

// pass_mu_ held.
void wal_checkpointer::writer_pass(sqlite3* db, const char* schema, std::string_view who) {
  const auto start = std::chrono::steady_clock::now();
  const auto r =
      checkpoint(db, schema, generation_.load(std::memory_order_relaxed), /*writer=*/true, who);
  // SQLite synced the database file if this pass reached the WAL's end (nothing else
  // commits meanwhile). Whatever the thread completed before is stale now: used, or overtaken.
  if (r.rc == SQLITE_OK && r.log >= 0 && r.log == r.done) unsynced_ = 0;
  completed_ = {};
  ++writer_passes_;
  if (metrics_.writer_seconds) {
    metrics_.writer_seconds->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
}

// pass_mu_ held.
wal_checkpointer::pass_result wal_checkpointer::checkpoint(sqlite3* db, const char* schema,
                                                           std::uint32_t generation, bool writer,
                                                           std::string_view who) {
  pass_result r;
  r.rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, &r.log, &r.done);
  if ((r.rc & 0xff) == SQLITE_BUSY) {
    // The thread's pass read the WAL index while the writer was committing (a torn header
    // read needs the write lock, which a PASSIVE pass does not wait for): transient, the next
    // commit wakes it again. A writer pass, with no commit under way, is busy only when
    // another process checkpoints (this one's are serialised by pass_mu_): logged.
    count(busy_, metrics_.busy);
    if (writer) warn(who, r.rc, db);
    return r;
  }
  if (r.rc != SQLITE_OK) {
    // It repeats at every commit past the threshold (a full disk); the frames stay in the WAL.
    count(failures_, metrics_.failures);
    warn(who, r.rc, db);
    return r;
  }
  if (r.log < 0) return r;
  // A thread pass that runs after a restart but before the writer's hook has seen it carries
  // the old generation: its frames count as 0 here and again in the next pass (stats only).
  const auto done = static_cast<std::uint64_t>(r.done);
  const std::uint64_t before = last_pass_.generation == generation ? last_pass_.frames : 0;
  r.copied = done > before ? done - before : 0;
  last_pass_ = {generation, done};
  return r;
}

// Thread only, pass_mu_ not held: the connection is the thread's own and the call is an
// fsync of its file descriptor (no SQLite lock is involved). SQLite syncs the database file
// at the end of a pass only when no frame was committed during it; otherwise the pages the
// pass wrote stay dirty until the next pass that reaches the end, the writer's catch-up,
// which would then flush them all in its COMMIT. NORMAL, as SQLite's own checkpoint syncs
// (FULL would mean F_FULLFSYNC on macOS, which SQLite uses only with checkpoint_fullfsync).
bool wal_checkpointer::sync_database() {
  sqlite3_file* file = nullptr;
  if (sqlite3_file_control(db_->get(), "main", SQLITE_FCNTL_FILE_POINTER, &file) != SQLITE_OK ||
      file == nullptr || file->pMethods == nullptr) {
    return false;
  }
  const int rc = file->pMethods->xSync(file, SQLITE_SYNC_NORMAL);
  if (rc != SQLITE_OK) {
    count(failures_, metrics_.failures);
    warn("store checkpoint could not sync the database file", rc, db_->get());
    return false;
  }
  return true;
}

void wal_checkpointer::count(std::atomic<std::uint64_t>& n, sluice::counter* m) noexcept {
  n.fetch_add(1, std::memory_order_relaxed);
  if (m) m->inc();
}

void wal_checkpointer::request_pass() {
  {
    std::lock_guard lk(mu_);
    wanted_ = true;
  }
  cv_.notify_one();
}

void wal_checkpointer::run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return wanted_ || stopping_; });
    if (stopping_) return;
    wanted_ = false;
    lk.unlock();
    // An unpinned pass copies every frame committed when it began. A reader that keeps an
    // older snapshot stops it short; a further pass helps only once that reader has moved on,
    // so passes go on while they copy something and stop when one copies nothing.
    for (int i = 0; i < 8 && !stop_now_.load(std::memory_order_relaxed); ++i) {
      pass_result r;
      std::uint32_t gen = 0;
      bool complete = false, sync = false;
      std::uint64_t seq = 0;
      {
        std::lock_guard pass(pass_mu_);
        gen = generation_.load(std::memory_order_relaxed);
        r = checkpoint(db_->get(), nullptr, gen, /*writer=*/false, "store checkpoint failed");
        unsynced_ += r.copied;
        complete = r.rc == SQLITE_OK && r.log > 0 && r.log == r.done;
        // More than the writer's catch-up may copy itself: sync it here, outside the lock,
        // so that the writer neither flushes it in a COMMIT nor waits for it.
        sync = complete && unsynced_ > slack_;
        if (complete && !sync) completed_ = {gen, static_cast<std::uint64_t>(r.done)};
        seq = writer_passes_;
      }
      if (sync && sync_database()) {
        std::lock_guard pass(pass_mu_);
        // A writer pass meanwhile has made this one stale (and cleared unsynced_ if it
        // reached the end); else every frame the thread copied is on disk.
        if (writer_passes_ == seq) {
          unsynced_ = 0;
          completed_ = {gen, static_cast<std::uint64_t>(r.done)};
        }
        count(thread_syncs_, nullptr);
      }
      thread_frames_.fetch_add(r.copied, std::memory_order_relaxed);
      count(thread_passes_, metrics_.thread_passes);  // after completed_: tests poll it
      if (r.rc != SQLITE_OK) break;
      if (r.log < 0) {
        // The WAL is not open on this connection (see the constructor): nothing was copied.
        warn("store checkpoint found no WAL open on its connection", SQLITE_OK, db_->get());
        break;
      }
      if (complete || r.copied == 0) break;
    }
    lk.lock();
  }
}

void wal_checkpointer::warn(std::string_view what, int rc, sqlite3* db) noexcept {
  const std::int64_t now = std::chrono::steady_clock::now().time_since_epoch().count();
  const std::int64_t minute =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::minutes(1))
          .count();
  std::int64_t last = last_warning_.load(std::memory_order_relaxed);
  if (now - last < minute ||
      !last_warning_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    return;
  }
  try {
    if (rc == SQLITE_OK) {
      log_.warn(what, {});
    } else {
      log_.warn(what, {{"rc", std::int64_t{rc}}, {"error", std::string(sqlite3_errmsg(db))}});
    }
  } catch (...) {
    // Out of memory while logging: the checkpoint's outcome is counted all the same.
  }
}

}  // namespace sluice::store
