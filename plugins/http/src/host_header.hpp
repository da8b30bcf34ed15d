// plugins/http/src/host_header.hpp — the request's authority (RFC 9112 §3.2, RFC 9110 §7.2).
//
// An HTTP/1.1 request must carry exactly one Host header field with a valid value
// (uri-host [":" port], RFC 3986 §3.2.2); HTTP/1.0 may omit it. For an absolute-form
// target (RFC 9112 §3.2.2) the target's authority is the request's host and the Host field
// is ignored (it must still be well-formed and single). check_authority() applies these
// rules to a request's version, its Host field values and its target and says either what
// the effective host is or why the request is a 400.
//
// Pure functions, no state.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

// True for uri-host [":" port]: an IP-literal ("[v6]" or "[vF.x]"), an IPv4 address or a
// reg-name (unreserved, sub-delims and %XX), and an optional port of at most 5 digits
// (<= 65535). The empty string is valid (RFC 9110 §7.2: a Host with an empty value).
bool valid_host_value(std::string_view v);

struct authority_result {
  bool ok = false;
  std::string host;   // effective host[:port] (from the target when absolute-form)
  std::string error;  // why not ok, for the 400 body
  // For an absolute-form target: the path and query part ("/" when none).
  std::optional<std::string> origin_form;
};

// `version` as Beast gives it (10, 11); `hosts` every Host field value in order; `target`
// the request-target as sent (origin-form, absolute-form; "*" and authority-form are the
// caller's business and pass through with the Host rules applied).
authority_result check_authority(unsigned version, const std::vector<std::string_view>& hosts,
                                 std::string_view target);

}  // namespace sluice::http
