// sluice/message_json.hpp — envelopes and header edits as JSON.
//
// One format for everything that persists a message outside memory (the kernel's spool,
// the store). Readers take missing or unknown fields as defaults and skip unknown edit
// operations, so records written by an older version still load.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <vector>

#include "sluice/message.hpp"

namespace sluice {

boost::json::object envelope_to_json(const envelope& e);
envelope envelope_from_json(const boost::json::object& o);
boost::json::array edits_to_json(const std::vector<header_edit>& edits);
std::vector<header_edit> edits_from_json(const boost::json::array& a);

}  // namespace sluice
