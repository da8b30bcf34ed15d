#include "checkpoint.hpp"

#include <limits>
#include <string>

namespace sluice::store {

namespace {

struct pass_result {
  int rc = SQLITE_OK;
  int log = 0;   // frames in the WAL (-1: no WAL open on this connection)
  int done = 0;  // frames copied into the database in all, this pass's and earlier ones
};

pass_result passive(sqlite3* db, const char* schema) {
  pass_result r;
  r.rc = sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, &r.log, &r.done);
  return r;
}

}  // namespace

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
          bound_passes_.load(r),  restarts_.load(r),      failures_.load(r)};
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
    // This transaction began after a complete checkpoint and wrote from the WAL's start.
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
    const auto r = passive(db, schema);
    if (r.rc != SQLITE_OK) {
      count(failures_, metrics_.failures);
      warn("store checkpoint (writer, at twice the threshold) failed", r.rc, db);
    }
    return;
  }
  if (frames < pages_) return;
  // The thread's last complete pass, if it is of this WAL and the writer has added at most
  // slack_ frames since: copy those here, so that the next transaction restarts the WAL.
  const std::uint64_t c = completed_.load(std::memory_order_acquire);
  const std::uint64_t copied = c & 0xffffffffu;
  if ((c >> 32) == generation_.load(std::memory_order_relaxed) && copied <= frames &&
      frames - copied <= slack_) {
    std::unique_lock pass(pass_mu_, std::try_to_lock);
    if (pass.owns_lock()) {  // else the thread is in a pass: leave it the work
      count(catch_up_passes_, metrics_.catch_up_passes);
      const auto r = passive(db, schema);
      if (r.rc != SQLITE_OK) {
        count(failures_, metrics_.failures);
        warn("store checkpoint (writer, catching up) failed", r.rc, db);
      }
      return;
    }
  }
  wake();
}

void wal_checkpointer::count(std::atomic<std::uint64_t>& n, sluice::counter* m) noexcept {
  n.fetch_add(1, std::memory_order_relaxed);
  if (m) m->inc();
}

void wal_checkpointer::wake() {
  {
    std::lock_guard lk(mu_);
    wanted_ = true;
  }
  cv_.notify_one();
}

void wal_checkpointer::run() {
  std::uint32_t last_generation = 0;
  std::uint64_t last_done = 0;
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return wanted_ || stopping_; });
    if (stopping_) return;
    wanted_ = false;
    lk.unlock();
    // A pass copies the frames committed when it began; the writer may add more meanwhile,
    // so a few passes catch up with it (each is shorter than the last) until one copies every
    // frame it saw. The writer copies what came after (on_commit).
    for (int i = 0; i < 8 && !stop_now_.load(std::memory_order_relaxed); ++i) {
      pass_result r;
      std::uint32_t generation = 0;
      {
        std::lock_guard pass(pass_mu_);
        generation = generation_.load(std::memory_order_relaxed);
        r = passive(db_->get(), nullptr);
      }
      count(thread_passes_, metrics_.thread_passes);
      if (r.rc != SQLITE_OK) {
        // BUSY: another process checkpoints (this one's are serialised by pass_mu_). Any
        // failure repeats at every commit past the threshold (a full disk): logged once a
        // minute; the frames stay in the WAL.
        count(failures_, metrics_.failures);
        warn("store checkpoint failed", r.rc, db_->get());
        break;
      }
      if (r.log < 0) {
        // The WAL is not open on this connection (see the constructor): nothing was copied.
        warn("store checkpoint found no WAL open on its connection", SQLITE_OK, db_->get());
        break;
      }
      const auto done = static_cast<std::uint64_t>(r.done);
      const std::uint64_t before = generation == last_generation ? last_done : 0;
      if (done > before) thread_frames_.fetch_add(done - before, std::memory_order_relaxed);
      last_generation = generation;
      last_done = done;
      if (r.log == r.done) {
        if (r.log > 0) {
          completed_.store((std::uint64_t{generation} << 32) | done, std::memory_order_release);
        }
        break;
      }
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
