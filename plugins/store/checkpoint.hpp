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
// begun by the time it ends. So the thread copies the bulk, and once a pass of it has
// completed, the writer's hook (after a COMMIT, no transaction open) copies the few frames
// committed since then itself: a short PASSIVE pass of at most `pages` / 8 frames, which
// completes, so the writer's next transaction restarts the WAL. The WAL restarts near
// `pages`, and the writer never waits for the thread's pass on this path (it skips its own
// when the thread is in one).
//
// When the WAL reaches 2 × `pages` anyway (the thread behind or failing, or one transaction
// that large), the writer waits for the thread's pass to end and checkpoints inline, as
// SQLite would: the WAL stays bounded as with autocheckpoint (unless a reader pins an old
// snapshot, which stops every checkpoint). Durability is unchanged: a checkpoint only copies
// committed frames and fsyncs by the same `synchronous`.
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
  std::uint64_t failures = 0;         // calls that failed (BUSY included)
};

// Optional Prometheus series, updated beside the counters above (any may be null).
struct checkpoint_metrics {
  sluice::counter* thread_passes = nullptr;
  sluice::counter* catch_up_passes = nullptr;
  sluice::counter* bound_passes = nullptr;
  sluice::counter* restarts = nullptr;
  sluice::counter* failures = nullptr;
  sluice::gauge* wal_frames = nullptr;  // frames in the WAL after the last commit
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

  checkpoint_stats stats() const noexcept;

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int pages);
  void on_commit(sqlite3* db, const char* schema, std::uint64_t frames);
  void run();
  // One PASSIVE call under pass_mu_ (held by the caller); counts and logs a failure.
  // Returns the frames copied in all (`done`), or -1 when nothing can be known.
  std::int64_t pass(sqlite3* db, const char* schema, std::string_view who);
  void warn(std::string_view what, int rc, sqlite3* db) noexcept;  // at most once a minute
  void wake();
  static void count(std::atomic<std::uint64_t>& n, sluice::counter* m) noexcept;

  const std::uint32_t pages_;
  const std::uint64_t slack_;  // the most frames the writer copies on the catch-up path
  sluice::logger log_;
  const checkpoint_metrics metrics_;
  std::unique_ptr<database> db_;               // used by the thread only
  std::atomic<std::int64_t> last_warning_{0};  // steady_clock ticks; any thread
  std::mutex mu_;                              // guards wanted_, stopping_
  std::condition_variable cv_;
  std::mutex pass_mu_;  // held through each checkpoint call, the thread's and the writer's
  bool wanted_ = false;
  bool stopping_ = false;
  std::atomic<bool> stop_now_{false};  // read by the thread between passes
  // The writer hook's own state (writer thread only).
  std::uint64_t last_frames_ = 0;
  // WAL generation (bumped by the hook at each restart it sees) and, in `completed_`, the
  // generation and frame count of the thread's last pass that copied every frame it saw:
  // (generation << 32) | frames. A stale generation makes the writer ignore it.
  std::atomic<std::uint32_t> generation_{1};
  std::atomic<std::uint64_t> completed_{0};
  // Counters.
  std::atomic<std::uint64_t> thread_passes_{0}, thread_frames_{0}, catch_up_passes_{0},
      bound_passes_{0}, restarts_{0}, failures_{0};
  std::thread thread_;  // last: starts after the members above
};

}  // namespace sluice::store
