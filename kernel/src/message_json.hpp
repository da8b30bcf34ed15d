// message_json.hpp — envelope, header edits and spool records as JSON.
#pragma once

#include <boost/json.hpp>

#include "sluice/message.hpp"

namespace sluice::kernel {

boost::json::object envelope_to_json(const envelope& e);
envelope envelope_from_json(const boost::json::object& o);
boost::json::array edits_to_json(const std::vector<header_edit>& edits);
std::vector<header_edit> edits_from_json(const boost::json::array& a);

}  // namespace sluice::kernel
