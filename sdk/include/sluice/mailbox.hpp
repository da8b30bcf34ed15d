// sluice/mailbox.hpp — the `mailbox` service: reading and managing stored mail.
//
// Offered by the store plugin; consumed by the HTTP API, POP3 and tests. A store holds
// several named mailboxes. Implementations run their blocking work on their own threads
// or the host's workers and complete on the caller's executor. Thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include "sluice/services.hpp"

namespace sluice {

struct stored_message {
  std::string id;
  std::string mailbox;
  std::int64_t created_ms = 0;  // arrival, ms since the Unix epoch
  std::uint64_t size = 0;       // size of the output (raw + header edits), in bytes
  std::string message_id;       // Message-ID header, without angle brackets
  std::string subject;
  std::string from;  // From header, as found
  std::string envelope_from;
  std::vector<std::string> envelope_to;
  bool read = false;
  bool quarantined = false;
  std::vector<std::string> tags;
  boost::json::object attributes;  // stage results kept with the message
};

struct mailbox_query {
  std::string mailbox = "default";
  std::uint64_t offset = 0;
  std::uint64_t limit = 50;  // newest first
};

class mailbox_service : public service {
 public:
  static constexpr std::string_view kind = "mailbox";

  virtual std::vector<std::string> mailboxes() const = 0;
  virtual boost::asio::awaitable<std::vector<stored_message>> list(mailbox_query q) = 0;
  virtual boost::asio::awaitable<std::uint64_t> count(std::string mailbox) = 0;
  virtual boost::asio::awaitable<std::optional<stored_message>> get(std::string id) = 0;
  // The message as stored: `with_edits` applies the recorded header edits (what clients
  // see); without, the bytes exactly as received.
  virtual boost::asio::awaitable<std::optional<std::string>> raw(std::string id,
                                                                 bool with_edits = true) = 0;
  virtual boost::asio::awaitable<bool> set_read(std::string id, bool read) = 0;
  // Returns how many were deleted.
  virtual boost::asio::awaitable<std::uint64_t> remove(std::vector<std::string> ids) = 0;
  virtual boost::asio::awaitable<std::uint64_t> remove_all(std::string mailbox) = 0;
};

}  // namespace sluice
