// sluice/verdict.hpp — what a stage decides about a message.
//
// The set is closed: the kernel switches over it, so a plugin cannot invent a new outcome.
// A reject or tempfail carries the reply the client sees; it must be safe to show (no
// internal paths, no secrets).
#pragma once

#include <cerrno>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace sluice {

enum class verdict_kind : std::uint8_t {
  // Run the next stage. At the end of the inline phase this means accept.
  continue_,
  // Stop the inline phase now, successfully: the kernel reaches the commit point (the
  // message is made durable) and the client gets 250. Deferred stages still run.
  accept,
  // Permanent failure: the client gets the 5xx reply; nothing is kept; deferred stages do
  // not run. In the deferred phase: the stage failed for good; recorded, not retried.
  reject,
  // Transient failure: the client gets the 4xx reply and may retry; nothing is kept. In the
  // deferred phase: retried from the spool with exponential backoff.
  tempfail,
  // Accept but drop: the client gets 250, nothing is stored, deferred stages do not run.
  discard,
  // Keep but flag: the remaining filtering stages are skipped, committing stages (the
  // store) still run and record the message as quarantined; the client gets 250; deferred
  // stages do not run.
  quarantine,
};

std::string_view to_string(verdict_kind k) noexcept;

// An SMTP-style reply: basic code (RFC 5321), enhanced code (RFC 3463) and text.
// Listeners that are not SMTP map it (HTTP: 4xx→503/400, 5xx→400/422, text in the body).
struct reply {
  int code = 250;
  std::string enhanced;  // e.g. "5.7.1"; empty for none
  std::string text;      // one line, no CR/LF
};

struct verdict {
  verdict_kind kind = verdict_kind::continue_;
  sluice::reply reply;  // meaningful for reject/tempfail; may override the 250 text otherwise

  static verdict next() { return {}; }
  static verdict accept() { return {verdict_kind::accept, {250, "2.0.0", "Ok"}}; }
  static verdict discard() { return {verdict_kind::discard, {250, "2.0.0", "Ok"}}; }
  static verdict quarantine() { return {verdict_kind::quarantine, {250, "2.0.0", "Ok"}}; }
  static verdict reject(int code, std::string enhanced, std::string text) {
    return {verdict_kind::reject, {code, std::move(enhanced), std::move(text)}};
  }
  static verdict tempfail(int code, std::string enhanced, std::string text) {
    return {verdict_kind::tempfail, {code, std::move(enhanced), std::move(text)}};
  }
  // The default transient failure used when a stage errs, times out or is overloaded.
  static verdict local_error() {
    return tempfail(451, "4.3.0", "Requested action aborted: local error in processing");
  }
  // A full disk (RFC 3463 4.3.1): the client retries later, elsewhere if it can.
  static verdict insufficient_storage() {
    return tempfail(452, "4.3.1", "Insufficient system storage");
  }
};

// Whether a write failed because the disk (or the user's quota) is full: answer it with
// verdict::insufficient_storage(), other write errors with a 451.
inline bool is_disk_full(const std::error_code& ec) {
  return ec == std::errc::no_space_on_device ||
         ec == std::error_condition(EDQUOT, std::generic_category());
}

}  // namespace sluice
