// gate.cpp — the drain gate (see sluice/gate.hpp).
//
// Callbacks are always invoked without the mutex held, so they may re-enter the gate.
#include "sluice/gate.hpp"

#include <vector>

namespace sluice {

gate::holder gate::try_enter() {
  std::lock_guard lock(mu_);
  if (closed_) return {};
  ++count_;
  return holder(shared_from_this());
}

void gate::leave() {
  std::function<void()> idle;
  {
    std::lock_guard lock(mu_);
    --count_;
    if (closed_ && count_ == 0) idle = std::exchange(on_idle_, nullptr);
  }
  if (idle) idle();
}

void gate::close(std::function<void()> on_idle) {
  std::vector<std::function<void()>> callbacks;
  bool idle_now = false;
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      closed_ = true;
      for (auto& [token, fn] : close_callbacks_)
        callbacks.push_back(std::move(fn));
      close_callbacks_.clear();
    }
    if (on_idle) {
      if (count_ == 0) {
        idle_now = true;
      } else {
        on_idle_ = std::move(on_idle);
      }
    }
  }
  for (auto& fn : callbacks)
    fn();
  if (idle_now) on_idle();
}

bool gate::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

std::size_t gate::count() const {
  std::lock_guard lock(mu_);
  return count_;
}

std::uint64_t gate::on_close(std::function<void()> fn) {
  {
    std::lock_guard lock(mu_);
    if (!closed_) {
      auto token = next_token_++;
      close_callbacks_.emplace(token, std::move(fn));
      return token;
    }
  }
  fn();
  return 0;
}

void gate::cancel(std::uint64_t token) {
  std::lock_guard lock(mu_);
  close_callbacks_.erase(token);
}

}  // namespace sluice
