#include "checkpoint.hpp"

#include <chrono>
#include <string>

namespace sluice::store {

wal_checkpointer::wal_checkpointer(const std::filesystem::path& path, std::uint32_t pages,
                                   bool durability_full, sluice::logger log)
    : pages_(pages == 0 ? 1 : pages),
      log_(std::move(log)),
      db_(std::make_unique<database>(path, SQLITE_OPEN_READWRITE)) {
  // A checkpoint fsyncs by its own connection's setting: the same as the writer's.
  db_->exec(durability_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  // A connection opens the WAL only once it has read the database; until then a checkpoint
  // returns SQLITE_OK with log = -1 and copies nothing. Read it explicitly rather than rely
  // on the pragma above happening to do so (found in review).
  db_->exec("SELECT 1 FROM sqlite_schema LIMIT 1");
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
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  db_.reset();
}

int wal_checkpointer::on_commit(void* self, sqlite3* db, const char* schema, int pages) {
  auto* c = static_cast<wal_checkpointer*>(self);
  const auto n = static_cast<std::uint64_t>(pages < 0 ? 0 : pages);
  if (n >= 2ull * c->pages_) {
    // Behind or failing: the writer waits for the thread's pass to end, then copies the
    // rest itself, as autocheckpoint would. No one writes meanwhile, so the pass completes
    // and the writer's next transaction restarts the WAL.
    std::lock_guard pass(c->pass_mu_);
    int log = 0, done = 0;
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
  } else if (n >= c->pages_) {
    {
      std::lock_guard lk(c->mu_);
      c->wanted_ = true;
    }
    c->cv_.notify_one();
  }
  // Anything else would make the COMMIT that called us report an error it did not have.
  return SQLITE_OK;
}

void wal_checkpointer::run() {
  std::unique_lock lk(mu_);
  while (true) {
    cv_.wait(lk, [&] { return wanted_ || stopping_; });
    if (stopping_) return;
    wanted_ = false;
    lk.unlock();
    // A pass copies the frames committed when it began; the writer may add more meanwhile,
    // so a few passes catch up with it (each is shorter than the last).
    for (int i = 0; i < 8; ++i) {
      int log = 0, done = 0;
      int rc = SQLITE_OK;
      {
        std::lock_guard pass(pass_mu_);
        rc = sqlite3_wal_checkpoint_v2(db_->get(), nullptr, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
      }
      passes_.fetch_add(1, std::memory_order_relaxed);
      if (rc != SQLITE_OK) {
        // BUSY: a reader or the writer's close holds a lock. A failure repeats at every
        // commit past the threshold (a full disk): logged once a minute.
        if (rc != SQLITE_BUSY && warning_due()) {
          log_.warn("store checkpoint failed",
                    {{"rc", std::int64_t{rc}}, {"error", std::string(sqlite3_errmsg(db_->get()))}});
        }
        break;
      }
      if (log < 0) {
        // The WAL is not open on this connection (see the constructor): nothing was copied.
        if (warning_due()) log_.warn("store checkpoint found no WAL open on its connection", {});
        break;
      }
      if (log == done) break;
    }
    lk.lock();
  }
}

bool wal_checkpointer::warning_due() {
  const auto now = std::chrono::steady_clock::now();
  if (now - last_warning_ < std::chrono::minutes(1)) return false;
  last_warning_ = now;
  return true;
}

}  // namespace sluice::store
