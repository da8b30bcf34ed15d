// sluice/message_json.hpp — envelopes and header edits as JSON.
//
// One format for everything that persists a message outside memory (the kernel's spool,
// the store). Readers take missing or unknown fields as defaults and skip unknown edit
// operations, so records written by an older version still load.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <boost/system/error_code.hpp>
#include <string_view>
#include <vector>

#include "sluice/message.hpp"

namespace sluice {

boost::json::object envelope_to_json(const envelope& e);
envelope envelope_from_json(const boost::json::object& o);
boost::json::array edits_to_json(const std::vector<header_edit>& edits);
std::vector<header_edit> edits_from_json(const boost::json::array& a);

// Parses JSON that this program wrote with boost::json::serialize. Its strings may hold
// bytes that are not UTF-8 (a header edit keeps a field's 8-bit text as the message had
// it; serialize() writes such bytes as they are), which a strict parser refuses: every
// reader of a spool record or stored row parses with this, so such a message still loads.
boost::json::value parse_stored_json(std::string_view text, boost::system::error_code& ec);

}  // namespace sluice
