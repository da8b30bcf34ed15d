// plugins/smtp/src/data_decoder.hpp — the streaming DATA decoder (RFC 5321 §4.5.2).
//
// Feeds on the bytes that follow "354", in chunks of any size and split anywhere, removes
// dot-stuffing and finds the end of the data. Only <CRLF>.<CRLF> ends DATA: <LF>.<LF>,
// <CR>.<CR> and <LF>.<CR><LF> are content (the SMTP smuggling class), because a line starts
// only after a CRLF. The CRLF before the final dot belongs to the message.
//
// Pure state machine: no allocation, no I/O, no exceptions; one instance per transaction,
// not thread-safe. It also measures line lengths (terminator included) so the session can
// refuse over-long lines after reading to the end. A libFuzzer target.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace sluice::smtp {

class data_decoder {
 public:
  struct result {
    std::size_t consumed = 0;  // bytes of the input used (up to and including the final LF)
    bool done = false;         // the terminator was seen; the rest of the input is not data
  };

  // max_line_length: longest line accepted, CRLF included; 0 means unlimited.
  explicit data_decoder(std::size_t max_line_length = 0) noexcept : max_line_(max_line_length) {}

  // Decodes `in`; calls sink(std::string_view) with the unstuffed bytes, in order (several
  // calls per feed, views into `in` or into static storage). Stops right after the
  // terminator. After done, reset() before the next message.
  template <class Sink>
  result feed(std::string_view in, Sink&& sink);

  bool done() const noexcept { return state_ == state::done; }
  bool line_too_long() const noexcept { return too_long_; }
  std::uint64_t decoded_size() const noexcept { return decoded_; }
  void reset() noexcept {
    state_ = state::line_start;
    line_len_ = 0;
    decoded_ = 0;
    too_long_ = false;
  }

 private:
  enum class state : std::uint8_t {
    line_start,  // after CRLF (or at the very start): a '.' here is special
    dot,         // saw '.' at line start; it is withheld until we know what it is
    dot_cr,      // saw ".\r" at line start; withheld
    text,        // inside a line
    cr,          // after a CR inside a line (or ending one)
    done,        // saw CRLF.CRLF
  };

  void count_(std::size_t n, bool ends_line) noexcept {
    line_len_ += n;
    if (max_line_ != 0 && line_len_ > max_line_) too_long_ = true;
    if (ends_line) line_len_ = 0;
  }

  std::size_t max_line_ = 0;
  state state_ = state::line_start;
  std::size_t line_len_ = 0;
  std::uint64_t decoded_ = 0;
  bool too_long_ = false;
};

template <class Sink>
data_decoder::result data_decoder::feed(std::string_view in, Sink&& sink) {
  std::size_t run = 0;  // start of the bytes not yet given to sink
  std::size_t i = 0;
  auto emit = [&](std::size_t end) {
    if (end > run) {
      decoded_ += end - run;
      sink(in.substr(run, end - run));
    }
  };
  while (i < in.size()) {
    const char c = in[i];
    switch (state_) {
      case state::line_start:
        if (c == '.') {
          emit(i);
          ++i;
          // The dot is not content (yet): skip it. Nor does it count towards the line
          // length: RFC 5321 §4.5.3.1.6 sets the limit "not counting the leading dot
          // duplicated for transparency".
          run = i;
          state_ = state::dot;
          continue;
        }
        state_ = state::text;
        continue;  // reprocess c as text
      case state::dot:
        if (c == '\r') {
          ++i;
          run = i;  // withhold the CR: ".\r\n" would end the data
          state_ = state::dot_cr;
          continue;
        }
        // The dot was stuffing (RFC 5321 §4.5.2: delete the first '.' of the line).
        state_ = state::text;
        continue;
      case state::dot_cr:
        if (c == '\n') {
          ++i;
          run = i;
          state_ = state::done;
          line_len_ = 0;
          return {i, true};
        }
        // ".\r" + c: the dot was stuffing; the withheld CR is content. run == i here, so
        // emitting the CR from static storage keeps the byte order.
        decoded_ += 1;
        sink(std::string_view("\r", 1));
        count_(1, false);
        state_ = state::cr;
        continue;  // reprocess c after a CR
      case state::text: {
        // Fast path: jump to the next CR with memchr (SIMD); bare LFs before it only
        // end lines for the length count.
        const char* base = in.data();
        const void* cr = std::memchr(base + i, '\r', in.size() - i);
        const std::size_t stop =
            cr ? static_cast<std::size_t>(static_cast<const char*>(cr) - base) : in.size();
        std::size_t j = i;
        while (const void* lf = std::memchr(base + j, '\n', stop - j)) {
          const auto k = static_cast<std::size_t>(static_cast<const char*>(lf) - base);
          count_(k - j + 1, true);
          j = k + 1;
        }
        count_(stop - j, false);
        i = stop;
        if (i < in.size()) {  // at the CR
          count_(1, false);
          state_ = state::cr;
          ++i;
        }
        continue;
      }
      case state::cr:
        count_(1, c == '\n');
        if (c == '\n') {
          state_ = state::line_start;  // the only way to start a line: CRLF
        } else if (c != '\r') {
          state_ = state::text;
        }
        ++i;
        continue;
      case state::done:
        emit(i);
        return {i, true};
    }
  }
  emit(i);
  return {i, false};
}

}  // namespace sluice::smtp
