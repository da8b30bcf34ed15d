// sluice/gate.hpp — the drain gate: the named primitive for graceful shutdown.
//
// Problem solved: on SIGTERM the kernel must stop taking new work, let work in flight
// finish, and know when it has. Every session and every in-flight message holds the gate
// (enter/leave through an RAII holder); close() refuses new entries and tells holders
// that asked to be told (on_close); the kernel waits until the count drops to zero.
//
// Thread-safe: all members may be called from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

namespace sluice {

class gate : public std::enable_shared_from_this<gate> {
 public:
  class holder {
   public:
    holder() = default;
    explicit holder(std::shared_ptr<gate> g) : gate_(std::move(g)) {}
    holder(holder&& o) noexcept = default;
    holder& operator=(holder&& o) noexcept {
      release();
      gate_ = std::move(o.gate_);
      return *this;
    }
    ~holder() { release(); }
    void release() {
      if (gate_) std::exchange(gate_, nullptr)->leave();
    }
    explicit operator bool() const { return gate_ != nullptr; }

   private:
    std::shared_ptr<gate> gate_;
  };

  static std::shared_ptr<gate> make() { return std::shared_ptr<gate>(new gate()); }

  // Enters the gate; empty holder when it is closed.
  holder try_enter();
  // Refuses new entries, runs the on_close callbacks once, and calls on_idle when (or as
  // soon as) no holder remains.
  void close(std::function<void()> on_idle = {});
  bool closed() const;
  std::size_t count() const;

  // Registers a callback run (on the closing thread) when the gate closes; returns a token
  // for cancel(). If the gate is already closed, fn runs now.
  std::uint64_t on_close(std::function<void()> fn);
  void cancel(std::uint64_t token);

 private:
  gate() = default;
  void leave();

  mutable std::mutex mu_;
  std::size_t count_ = 0;
  bool closed_ = false;
  std::function<void()> on_idle_;
  std::uint64_t next_token_ = 1;
  std::unordered_map<std::uint64_t, std::function<void()>> close_callbacks_;
};

}  // namespace sluice
