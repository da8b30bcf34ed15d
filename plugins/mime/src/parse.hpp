// parse.hpp — the MIME stage's parse: a raw message to a sluice::parsed_message.
//
// Header-derived fields (addresses, Subject, Date, Message-ID, List-Unsubscribe) come
// from the header block as the message would leave now: the raw header block (at most
// max_header_bytes of it) with the recorded header edits applied. The MIME structure,
// bodies and parts come from the raw bytes, read through a GMime stream over the body
// (its spool file for a spilled body), so part offsets are offsets in the raw message.
//
// Threading: parse() may run on any thread, concurrently with other parses; GMime and
// libxml2 are initialised once per process by init_libraries() (idempotent, thread-safe;
// neither library is ever shut down, as plugins are never unloaded). Failure: a malformed
// message never fails: the view holds what could be parsed and lists the problems. Only a
// read error of the body is reported, in io_error (the view is then incomplete).
#pragma once

#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "prescan.hpp"
#include "sluice/message.hpp"
#include "sluice/parsed_message.hpp"

namespace sluice::mime {

struct parse_limits {
  prescan_limits structure;                       // depth, parts, header block bytes
  std::size_t max_text_bytes = 8 * 1024 * 1024;   // decoded text and HTML kept, each
  std::string fallback_charset = "windows-1252";  // 8-bit text without a usable charset
};

struct parse_result {
  parsed_message view;
  std::error_code io_error;
};

void init_libraries();

parse_result parse(const std::shared_ptr<const message_body>& raw,
                   const std::vector<header_edit>& edits, const parse_limits& limits);

}  // namespace sluice::mime
