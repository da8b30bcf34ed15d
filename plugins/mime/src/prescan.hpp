// prescan.hpp — a bounded pass over the raw message before GMime sees it.
//
// GMime's parser recurses once per multipart level (stack use grows with depth), checks
// every line against every open boundary (time grows with depth times lines) and builds
// an object per part (memory grows with the part count). Its own nesting cap (1024) is
// neither configurable nor cheap. This scanner reads the message once, line by line, in
// bounded memory, follows the multipart structure the way GMime does (Content-Type
// multipart/* with a boundary opens a level; "--boundary" and "--boundary--" lines with
// only trailing white space continue or close it, checked innermost first) and returns a
// plan for the GMime pass:
//   - a multipart at the depth limit is presented to GMime as a single part by patching
//     its type token ("multipart" -> "x--------", same length, so no offset moves);
//   - message/* parts are patched the same way, so GMime keeps an attached message as one
//     part (it is served as an .eml attachment) instead of parsing it recursively;
//   - past the part limit the stream ends at the boundary line of the first excess part.
// What it cannot follow exactly (conflicting or oversize Content-Type fields, RFC 2231
// boundaries) it also patches, so GMime never descends where the scan did not. GMime's
// own cap and the parse walk's depth check remain as a second line of defence.
//
// Threading: pure function. Failure: returns the body's read error in ec.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <vector>

#include "body_stream.hpp"
#include "sluice/message.hpp"

namespace sluice::mime {

struct prescan_limits {
  std::size_t max_depth = 64;
  std::size_t max_parts = 1000;
  std::size_t max_header_bytes = 1024 * 1024;
};

struct patched_type {
  std::uint64_t field_offset = 0;  // where the Content-Type field starts in the raw message
  std::string mime_type;           // its original "type/subtype", lower case
};

struct prescan_result {
  std::vector<byte_patch> patches;  // sorted by offset
  std::vector<patched_type> originals;
  std::uint64_t end = 0;  // GMime reads raw[0, end)
  bool truncated = false;
  std::size_t entities = 0;   // MIME entities seen (the message itself included)
  std::size_t max_depth = 0;  // deepest entity seen (the message is depth 1)
  std::vector<std::string> problems;
};

prescan_result prescan(const message_body& body, const prescan_limits& limits, std::error_code& ec);

}  // namespace sluice::mime
