// body_stream.hpp — a GMime stream over a sluice::message_body, with same-length patches.
//
// GMime parses with a persistent stream: leaf parts keep a substream of the source rather
// than a copy, and the bounds of that substream (bound_start, bound_end) are byte offsets
// in this stream. This stream reads the raw message through message_body::read (pread
// for a spooled file, memcpy for an in-memory body), so a big message is parsed from its
// spool file without a second copy, and offsets are offsets in the raw message as
// received. The prescan (prescan.hpp) may ask for a few bytes to be presented differently
// (patches of the same length, so offsets never shift) and for the stream to end early.
//
// Threading: a stream and its substreams share one source and are used by one parse on
// one thread. Ownership: every stream holds a shared_ptr to the source, which holds the
// body. Failure: a read error of the body makes read() return -1 (GMime then sees the end
// of its input) and is recorded in source::error, which the caller must check.
#pragma once

#include <gmime/gmime.h>

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "sluice/message.hpp"

namespace sluice::mime {

struct byte_patch {
  std::uint64_t offset = 0;
  std::string bytes;  // replaces raw[offset, offset + bytes.size())
  // Instead of bytes: raw[offset, offset + blank_length) is shown as one header field
  // "X:" whose continuation lines are spaces (every byte but '\n' becomes ' '), so GMime
  // builds one field where the raw bytes hold any number (header lines past the limit).
  std::uint64_t blank_length = 0;
  std::uint64_t size() const { return blank_length ? blank_length : bytes.size(); }
};

struct stream_source {
  std::shared_ptr<const message_body> body;
  std::vector<byte_patch> patches;  // sorted by offset, non-overlapping
  std::uint64_t end = 0;            // the stream ends here (<= body->size())
  std::error_code error;            // first read error of the body
};

// A new reference to a stream over [0, source->end).
GMimeStream* new_body_stream(std::shared_ptr<stream_source> source);

}  // namespace sluice::mime
