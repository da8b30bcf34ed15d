// fields.hpp — what a webhook can say about a message: Mailpit's MessageSummary and the
// named fields that templates (`template:`, `url:`) draw from.
//
// The summary is built from the "mime" attribute (the parsed view the mime stage attaches)
// and the envelope, with exactly the keys of Mailpit's MessageSummary (mailpit_json.hpp),
// empty lists as [] as Mailpit sends them to webhooks. Without a "mime" attribute the
// envelope stands in for From and To.
//
// Pure functions over one message; no threading concerns.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "sluice/message.hpp"

namespace sluice::webhook {

using field_map = std::map<std::string, boost::json::value, std::less<>>;

// Mailpit's MessageSummary of `m`.
boost::json::object message_summary(const message& m);

// Every placeholder's value for `m` (summary is message_summary(m)).
field_map message_fields(const message& m, const boost::json::object& summary);

// The placeholder names message_fields() provides, sorted (for config errors and docs).
const std::vector<std::string>& field_names();

}  // namespace sluice::webhook
