// checkpoint.hpp — WAL checkpoints on their own thread and connection.
//
// SQLite's autocheckpoint runs inside the COMMIT that crosses the threshold: the writer then
// copies up to `pages` WAL frames into the database and fsyncs it before it can take the
// next batch, and the sessions of that batch wait for all of it. Here the writer's WAL hook
// only wakes a thread that runs PASSIVE checkpoints on a second connection, concurrently
// with the writer (SQLite's WAL allows one checkpointer beside one writer). When a pass has
// copied every frame, the writer's next transaction restarts the WAL from its start, as
// after an autocheckpoint, so the file stays near `pages`.
//
// A pass that runs while the writer commits cannot copy the newest frames, so under constant
// load the thread may never catch up. When the WAL reaches 2 × `pages` (the thread behind
// or failing), the writer waits for the thread's pass to end and checkpoints inline, as
// SQLite would: the WAL stays bounded as with autocheckpoint (unless a reader pins an old
// snapshot). Under back-to-back commits that inline pass does most WAL restarts (the
// writer's next batch begins before the thread's pass completes; plugins/store/README.md,
// known limitation). Durability is
// unchanged: a checkpoint only copies committed frames and fsyncs by the same `synchronous`.
#pragma once

#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <thread>

#include "sluice/log.hpp"
#include "sqlite.hpp"

namespace sluice::store {

class wal_checkpointer {
 public:
  // Opens its own connection to `path` (set up by the writer already). Throws sqlite_error.
  wal_checkpointer(const std::filesystem::path& path, std::uint32_t pages, bool durability_full,
                   sluice::logger log);
  ~wal_checkpointer();
  wal_checkpointer(const wal_checkpointer&) = delete;
  wal_checkpointer& operator=(const wal_checkpointer&) = delete;

  // Turns the writer's autocheckpoint off and installs the hook that wakes this thread.
  // The hook runs on the writer's thread; `writer` must outlive this object's hook use
  // (call stop() before closing it).
  void attach(database& writer);
  // Joins the thread and closes the connection; the writer can then close last.
  void stop();

  std::uint64_t passes() const noexcept { return passes_.load(std::memory_order_relaxed); }

 private:
  static int on_commit(void* self, sqlite3* db, const char* schema, int pages);
  void run();
  bool warning_due();  // at most one warning a minute (thread only)

  const std::uint32_t pages_;
  sluice::logger log_;
  std::unique_ptr<database> db_;                          // used by the thread only
  std::chrono::steady_clock::time_point last_warning_{};  // thread only
  std::mutex mu_;                                         // guards wanted_, stopping_
  std::condition_variable cv_;
  std::mutex pass_mu_;  // held through each checkpoint call, the thread's and the writer's
  bool wanted_ = false;
  bool stopping_ = false;
  std::atomic<std::uint64_t> passes_{0};
  std::thread thread_;  // last: starts after the members above
};

}  // namespace sluice::store
