// sluice/mailbox.hpp — the `mailbox` service: reading and managing stored mail.
//
// Offered by the store plugin; consumed by the HTTP API, POP3, webhooks and tests. A store
// holds several named mailboxes; every call names the mailbox it concerns, and a message
// is identified by (mailbox, id): one message delivered to two mailboxes is two stored
// messages with the same id.
//
// Implementations run their blocking work on their own threads or the host's workers and
// complete on the caller's executor. Thread-safe. Read failures (I/O, a corrupt row)
// throw std::runtime_error to the awaiter; a bad search query throws search_error.
//
// Events (published on the `events` service, if any, with event.mailbox set):
//   new       data: the message summary (sluice/mailpit_json.hpp summary_json)
//   update    data: {"ID": id, "Read": bool} or {"ID": id, "Tags": [tags]}
//   delete    data: {"ID": id}, one event per deleted message
//   truncate  data: null (the mailbox was emptied)
//   prune     data: null (messages were removed by pruning or tags were renamed/deleted)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "sluice/message.hpp"
#include "sluice/parsed_message.hpp"
#include "sluice/search.hpp"
#include "sluice/services.hpp"

namespace sluice {

struct stored_message {
  std::string id;
  std::string mailbox;
  std::int64_t created_ms = 0;  // arrival, ms since the Unix epoch
  std::uint64_t size = 0;       // size of the output (raw + header edits), in bytes
  std::string message_id;       // Message-ID header, without angle brackets
  std::string subject;          // decoded
  std::optional<mail_address> from;
  std::vector<mail_address> to;
  std::vector<mail_address> cc;
  std::vector<mail_address> bcc;
  std::vector<mail_address> reply_to;
  std::string username;  // the authenticated submitter (SMTP AUTH, HTTP Basic), if any
  std::string snippet;
  std::uint32_t attachments = 0;  // count of attachment parts
  std::uint32_t inline_parts = 0;
  bool read = false;
  bool quarantined = false;
  std::vector<std::string> tags;  // sorted case-insensitively
  std::string envelope_from;
  std::vector<std::string> envelope_to;

  // Filled by get() only (empty in search results):
  boost::json::object attributes;      // every stage result kept with the message
  std::optional<parsed_message> view;  // the "mime" attribute, decoded
  // The header fields of the output (edits applied), in order, values unfolded and not
  // decoded.
  std::vector<std::pair<std::string, std::string>> headers;
};

struct search_request {
  std::string mailbox = "default";
  std::string query;  // sluice/search.hpp; empty matches everything
  // IANA time zone ("Europe/Berlin", "UTC") for before:/after:; empty = the server's.
  std::string tz;
  std::uint64_t offset = 0;
  std::uint64_t limit = 50;               // 0 = no limit; newest first
  std::optional<std::int64_t> before_ms;  // only messages created before this time
};

struct search_result {
  std::vector<stored_message> messages;  // the requested page, newest first
  std::uint64_t total = 0;               // messages in the mailbox
  std::uint64_t unread = 0;              // unread messages in the mailbox
  std::uint64_t matched = 0;             // messages matching the query
  std::uint64_t matched_unread = 0;      // unread messages matching the query
  std::vector<std::string> tags;         // every tag used in the mailbox, sorted
};

// A decoded part, ready to serve.
struct part_content {
  mime_part part;
  std::string data;
};

struct mailbox_stats {
  std::uint64_t total = 0;
  std::uint64_t unread = 0;
  std::map<std::string, std::uint64_t> tags;  // tag -> number of messages
};

struct store_info {
  std::string location;  // database path or URL (no credentials)
  std::uint64_t size_bytes = 0;
  std::uint64_t deleted_total = 0;  // messages deleted since start (API, POP3, pruning)
};

// A change the mailbox could not make because its disk is full; what() is safe to show.
// (The HTTP API answers 507 Insufficient Storage with it.)
class storage_full_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A read or change the mailbox could not do because its storage failed (an I/O error, a
// damaged file); what() is safe to show. (The HTTP API answers 500 with it.)
class storage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Which messages a bulk operation applies to: the listed ids, or those matching a query,
// or (neither) every message of the mailbox.
struct message_selector {
  std::vector<std::string> ids;
  std::optional<std::string> query;
  std::string tz;
};

class mailbox_service : public service {
 public:
  static constexpr std::string_view kind = "mailbox";

  // Mailboxes that exist (declared by a store stage, or holding mail), sorted.
  virtual std::vector<std::string> mailboxes() const = 0;
  virtual boost::asio::awaitable<search_result> search(search_request r) = 0;
  // The newest message matching query (empty: the newest), or nothing.
  virtual boost::asio::awaitable<std::optional<std::string>> latest(std::string mailbox,
                                                                    std::string query,
                                                                    std::string tz) = 0;
  // Whether message `id` of `mailbox` matches query (for waiting on new mail).
  virtual boost::asio::awaitable<bool> matches(std::string mailbox, std::string id,
                                               std::string query, std::string tz) = 0;
  virtual boost::asio::awaitable<std::optional<stored_message>> get(std::string mailbox,
                                                                    std::string id) = 0;
  // The message as stored: `with_edits` applies the recorded header edits (what clients
  // see); without, the bytes exactly as received.
  virtual boost::asio::awaitable<std::optional<std::string>> raw(std::string mailbox,
                                                                 std::string id,
                                                                 bool with_edits = true) = 0;
  // One part, decoded (part ids as in parsed_message); nothing if the message or part
  // does not exist.
  virtual boost::asio::awaitable<std::optional<part_content>> part(std::string mailbox,
                                                                   std::string id,
                                                                   std::string part_id) = 0;
  // Returns how many messages changed.
  virtual boost::asio::awaitable<std::uint64_t> set_read(std::string mailbox,
                                                         message_selector which, bool read) = 0;
  // Returns how many were deleted.
  virtual boost::asio::awaitable<std::uint64_t> remove(std::string mailbox,
                                                       message_selector which) = 0;
  // Tags used in the mailbox, sorted.
  virtual boost::asio::awaitable<std::vector<std::string>> tags(std::string mailbox) = 0;
  // Replaces the tags of the listed messages (an empty list clears them). Names are
  // cleaned with Mailpit's rules ([A-Za-z0-9 ._@-], 1..100 characters).
  virtual boost::asio::awaitable<void> set_tags(std::string mailbox, std::vector<std::string> ids,
                                                std::vector<std::string> tags) = 0;
  virtual boost::asio::awaitable<void> rename_tag(std::string mailbox, std::string from,
                                                  std::string to) = 0;
  virtual boost::asio::awaitable<void> delete_tag(std::string mailbox, std::string tag) = 0;
  virtual boost::asio::awaitable<mailbox_stats> stats(std::string mailbox) = 0;
  virtual boost::asio::awaitable<store_info> info() = 0;
  // The delivery log of a stored message: one entry per attempt of a deferred stage
  // (relay, webhook, …), oldest first, each the data of the kernel's "delivery" event
  // (sluice/events.hpp). Nothing when the message is not in that mailbox.
  virtual boost::asio::awaitable<std::optional<boost::json::array>> deliveries(std::string mailbox,
                                                                               std::string id) = 0;
};

}  // namespace sluice
