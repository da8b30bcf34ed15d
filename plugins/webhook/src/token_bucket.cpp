// token_bucket.cpp — see token_bucket.hpp.
#include "token_bucket.hpp"

#include <algorithm>

namespace sluice::webhook {

token_bucket::token_bucket(double rate, double burst, clock::time_point now)
    : rate_(rate), burst_(std::max(1.0, burst)), tokens_(burst_), last_(now) {}

void token_bucket::refill(clock::time_point now) {
  if (now <= last_) return;
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
  last_ = now;
}

token_bucket::clock::duration token_bucket::reserve(clock::time_point now) {
  std::lock_guard lk(mu_);
  refill(now);
  tokens_ -= 1.0;
  if (tokens_ >= 0) return clock::duration::zero();
  // The deficit is paid back at `rate`: the wait until this caller's token exists.
  return std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(-tokens_ / rate_));
}

void token_bucket::cancel(clock::time_point now) {
  std::lock_guard lk(mu_);
  refill(now);
  tokens_ = std::min(burst_, tokens_ + 1.0);
}

}  // namespace sluice::webhook
