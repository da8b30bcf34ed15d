// checkpoint.hpp — WAL checkpoints on their own thread and connection.
//
// SQLite's autocheckpoint runs inside the COMMIT that crosses the threshold: the writer then
// copies up to `pages` WAL frames into the database and fsyncs it before it can take the
// next batch, and the sessions of that batch wait for all of it. Here the writer's WAL hook
// only wakes a thread that runs PASSIVE checkpoints on a second connection, concurrently
// with the writer (SQLite's WAL allows one checkpointer beside one writer).
//
// SQLite restarts the WAL from its start only when a write transaction begins after a
// checkpoint has copied every frame. Under back-to-back commits the thread never gets there
// alone: its pass copies the frames committed when it began, and the writer's next batch has
// begun by the time it ends. So the thread copies the bulk, and once a pass of it has copied
// every frame it saw, the writer's hook (after a COMMIT, no transaction open) copies the few
// frames committed since then itself: a short PASSIVE pass of at most `pages` / 8 frames,
// which completes, so that the writer's next transaction restarts the WAL (unless a reader
// that began before it is still reading). The writer never waits for the thread on this
// path: it skips its own pass when the thread is in one. SQLite syncs the database file at
// the end of a pass only when no frame came in during it; when the thread's passes left more
// than the writer would copy unsynced, the thread syncs the file itself, outside the lock the
// writer takes, so that the writer's short pass does not flush it all inside a COMMIT.
//
// When the WAL reaches 2 × `pages` anyway (the thread behind or failing, one transaction that
// large, or many tiny transactions back to back, which leave the thread no time to complete
// a pass), the writer waits for the thread's pass to end and checkpoints inline, as SQLite
// would: the WAL stays bounded as with autocheckpoint (unless a reader pins an old snapshot,
// which stops every checkpoint). Durability is unchanged: a checkpoint only copies committed
// frames, and nothing is removed from the WAL before the database file is synced.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>

#include "sluice/log.hpp"
#include "sluice/metrics.hpp"
#include "sqlite.hpp"

namespace sluice::store {

// Counts since start; each read is a snapshot of relaxed counters.
struct checkpoint_stats {
  std::uint64_t thread_passes = 0;    // checkpoint calls of the thread
  std::uint64_t thread_frames = 0;    // frames the thread's passes copied
  std::uint64_t catch_up_passes = 0;  // the writer's short passes after the thread's
  std::uint64_t bound_passes = 0;     // the writer's passes at 2 × pages (it waited)
  std::uint64_t restarts = 0;         // WAL restarts the writer's hook saw
  std::uint64_t failures = 0;         // calls that failed, BUSY apart
  std::uint64_t busy = 0;             // calls that returned SQLITE_BUSY (see checkpoint())
  std::uint64_t thread_syncs = 0;     // database syncs of the thread's own (see run())
};

// Optional Prometheus series, updated beside the counters above (any may be null).
struct checkpoint_metrics {
  sluice::counter* thread_passes = nullptr;
  sluice::counter* catch_up_passes = nullptr;
  sluice::counter* bound_passes = nullptr;
  sluice::counter* restarts = nullptr;
  sluice::counter* failures = nullptr;
  sluice::counter* busy = nullptr;
  sluice::gauge* wal_frames = nullptr;          // frames in the WAL after the last commit
  sluice::histogram* writer_seconds = nullptr;  // the writer's own passes, in its COMMIT
};

class wal_checkpointer {
 public:
  // Opens its own connection to `path` (set up by the writer already). Throws sqlite_error.
  wal_checkpointer(const std::filesystem::path& path, std::uint32_t pages, bool durability_full,
                   sluice::logger log, checkpoint_metrics metrics = {});
  ~wal_checkpointer();
  wal_checkpointer(const wal_checkpointer&) = delete;
  wal_checkpointer& operator=(const wal_checkpointer&) = delete;

  // Turns the writer's autocheckpoint off and installs the hook that wakes this thread.
  // The hook runs on the writer's thread; `writer` must outlive this object's hook use
  // (call stop() before closing it).
  void attach(database& writer);
  // Joins the thread and closes the connection; the writer can then close last.
  void stop();
  // Asks the thread for a pass now, as the writer's hook does past the threshold.
  void request_pass();

  checkpoint_stats stats() const noexcept;

 private:
  struct pass_result {
    int rc = SQLITE_OK;
    int log = 0;               // frames in the WAL (-1: no WAL open on this connection)
    int done = 0;              // frames in the database in all, this pass's and earlier ones
    std::uint64_t copied = 0;  // by this pass
  };
  struct wal_mark {
    std::uint32_t generation = 0;  // 0: none
    std::uint64_t frames = 0;
  };

  static int on_commit(void* self, sqlite3* db, const char* schema, int pages);
  void on_commit(sqlite3* db, const char* schema, std::uint64_t frames);
  void run();
  // One PASSIVE call; the caller holds pass_mu_. Counts a failure and logs it (once a minute).
  pass_result checkpoint(sqlite3* db, const char* schema, std::uint32_t generation, bool writer,
                         std::string_view who);
  void writer_pass(sqlite3* db, const char* schema, std::string_view who);
  bool sync_database();  // the thread's connection's database file (thread only)
  void warn(std::string_view what, int rc, sqlite3* db) noexcept;  // at most once a minute
  static void count(std::atomic<std::uint64_t>& n, sluice::counter* m) noexcept;

  const std::uint32_t pages_;
  const std::uint64_t slack_;  // the most frames the writer copies on the catch-up path
  sluice::logger log_;
  const checkpoint_metrics metrics_;
  std::unique_ptr<database> db_;               // used by the thread only
  std::atomic<std::int64_t> last_warning_{0};  // steady_clock ticks; any thread
  std::mutex mu_;                              // guards wanted_, stopping_
  std::condition_variable cv_;
  bool wanted_ = false;
  bool stopping_ = false;
  std::atomic<bool> stop_now_{false};  // read by the thread between passes
  // The writer hook's own state (writer thread only). The generation is bumped at each WAL
  // restart the hook sees; the thread reads it under pass_mu_ to tag its passes.
  std::uint64_t last_frames_ = 0;
  std::atomic<std::uint32_t> generation_{1};
  // Held through each checkpoint call, the thread's and the writer's, and guards:
  std::mutex pass_mu_;
  wal_mark last_pass_;  // the last pass's generation and `done`, to count what a pass copied
  wal_mark completed_;  // the thread's last pass that copied and synced every frame it saw;
                        // used once by the writer, cleared by any writer pass
  std::uint64_t unsynced_ = 0;       // frames the thread's passes copied since the last sync
  std::uint64_t writer_passes_ = 0;  // a sequence number: the thread's sync runs unlocked
  // Counters.
  std::atomic<std::uint64_t> thread_passes_{0}, thread_frames_{0}, catch_up_passes_{0},
      bound_passes_{0}, restarts_{0}, failures_{0}, busy_{0}, thread_syncs_{0};
  std::thread thread_;  // last: starts after the members above
};

}  // namespace sluice::store
