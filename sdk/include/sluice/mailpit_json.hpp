// sluice/mailpit_json.hpp — stored messages in the JSON shapes of Mailpit's API v1.
//
// Mailpit's clients (test helpers, the mailpit-api npm client, webhook consumers) rely on
// exact key sets and casing, so these objects have exactly Mailpit's keys and no others:
// see ../shared/reference/mailpit-compat.md §2.2. Used by the HTTP API, the WebSocket
// events, the store's `new` event and webhooks.
#pragma once

#include <cstdint>
#include <string>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "sluice/mailbox.hpp"
#include "sluice/parsed_message.hpp"

namespace sluice::mailpit {

// RFC 3339 with milliseconds in UTC, as Go marshals a time.Time: "2026-12-01T19:50:00.123Z".
std::string rfc3339(std::int64_t ms_since_epoch);
// The same time written in the zone `offset_min` minutes east of UTC, as Go marshals a
// time with a fixed zone: "2026-12-01T10:00:00+02:00" ("Z" for offset 0).
std::string rfc3339(std::int64_t ms_since_epoch, int offset_min);

// {"Name": …, "Address": …}
boost::json::object address_json(const mail_address& a);
// [Address…]; [] for an absent or unreadable header, as Mailpit (internal/storage
// addressToSlice) gives everywhere: lists, searches, messages, events, webhooks.
boost::json::array address_list_json(const std::vector<mail_address>& v);

// MessageSummary: ID, MessageID, Read, From, To, Cc, Bcc, ReplyTo, Subject, Created,
// Username, Tags, Size, Attachments, Snippet.
// From is {"Name": "", "Address": ""} when the message has none.
boost::json::object summary_json(const stored_message& m);

// Mailpit's FileName of a part: its file name, else its Content-ID.
inline const std::string& file_name(const mime_part& p) {
  return p.file_name.empty() ? p.content_id : p.file_name;
}

// Attachment: PartID, FileName (falls back to ContentID), ContentType, ContentID, Size,
// Checksums{MD5, SHA1, SHA256}.
boost::json::object attachment_json(const mime_part& p);

// Message: ID, MessageID, From, To, Cc, Bcc, ReplyTo, ReturnPath, Subject,
// ListUnsubscribe{Header, Links, Errors, HeaderPost}, Date, Tags, Username, Text, HTML,
// Size, Inline, Attachments. Needs m.view (an empty view is used when it is missing).
boost::json::object message_json(const stored_message& m);

}  // namespace sluice::mailpit
