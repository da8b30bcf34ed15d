// unsubscribe.hpp — List-Unsubscribe (RFC 2369) and List-Unsubscribe-Post (RFC 8058).
//
// Threading: pure function. Failure: problems are described in the result's `errors`.
#pragma once

#include <string_view>

#include "sluice/parsed_message.hpp"

namespace sluice::mime {

// `header` and `post` are the unfolded field values, empty when absent.
list_unsubscribe check_list_unsubscribe(std::string_view header, std::string_view post);

}  // namespace sluice::mime
