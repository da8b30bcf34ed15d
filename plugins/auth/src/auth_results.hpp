// auth_results.hpp — builds the value of an Authentication-Results field (RFC 8601) from
// the message's "auth" attribute (the shape is documented in plugins/auth/README.md).
//
// Pure function, no I/O, thread-safe. Unknown or malformed entries of the attribute are
// skipped, never thrown on: the attribute may have been written by another version.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/object.hpp>

namespace sluice::auth {

// "<authserv_id>; spf=pass (reason) smtp.mailfrom=a@b.example; dkim=… ; dmarc=…", or
// "<authserv_id>; none" when no method produced a result.
std::string authentication_results(const std::string& authserv_id, const boost::json::object& auth);

// Whether an Authentication-Results field's value (after the colon, folds and all) names
// `authserv_id` as its authserv-id: the first token after any white space and comments,
// compared case-insensitively (it is a domain name as a rule). RFC 8601 §5: such a field
// that arrived with the message is forged and must not reach the mailbox.
bool claims_authserv_id(std::string_view value, std::string_view authserv_id);

// An RFC 8601 pvalue: as is when it is a token or local-part@domain of dot-atom text,
// otherwise a quoted-string.
std::string pvalue(const std::string& v);

}  // namespace sluice::auth
