// token_bucket.hpp — the rate limit of a webhook stage instance: deliveries wait for a
// token instead of being dropped.
//
// `rate` tokens per second accrue up to `burst`. reserve() takes the next token even when
// none is available yet and says how long the caller must wait for it (so waiting callers
// are served in order, each one interval after the previous); a caller that will not wait
// that long gives the token back with cancel(). The clock is passed in, so tests need no
// sleeping.
//
// Thread-safe (one mutex; every operation is O(1)).
#pragma once

#include <chrono>
#include <mutex>

namespace sluice::webhook {

class token_bucket {
 public:
  using clock = std::chrono::steady_clock;

  // rate > 0 tokens per second, burst >= 1. Starts full.
  token_bucket(double rate, double burst, clock::time_point now = clock::now());

  // Takes one token; returns how long to wait before using it (zero when one was there).
  clock::duration reserve(clock::time_point now = clock::now());
  // Returns a token taken by reserve() that will not be used.
  void cancel(clock::time_point now = clock::now());

  double rate() const noexcept { return rate_; }
  double burst() const noexcept { return burst_; }

 private:
  void refill(clock::time_point now);

  const double rate_;
  const double burst_;
  std::mutex mu_;
  double tokens_;  // may go negative: tokens promised to callers still waiting
  clock::time_point last_;
};

}  // namespace sluice::webhook
