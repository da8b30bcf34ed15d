// codec.hpp — turning a sluice::message into a row, and stored bytes back into messages.
//
// prepare_message() does all the CPU and file work of storing (header summary, JSON,
// zstd compression streamed from the body) so that the writer thread only runs SQL. It
// may read a file-backed body, so it runs on a worker thread unless the body is small and
// in memory. It never copies the body: a plain (uncompressed) row keeps a reference to
// the immutable message_body and the writer streams it into SQLite. A zstd frame larger
// than kFrameMemoryLimit goes to an anonymous temporary file instead of memory, so a
// queued row holds at most that many bytes of its data however large the message is
// (many large messages can wait for the writer at once).
//
// Threading: pure functions; zstd contexts are per thread (thread_local).
// Failure: prepare_message throws std::system_error when a file-backed body cannot be
// read; decompress throws std::runtime_error on a corrupt frame.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <boost/json/object.hpp>

#include "sluice/mailbox.hpp"
#include "sluice/message.hpp"

namespace sluice::store {

struct header_summary {
  std::string message_id;  // without angle brackets
  std::string subject;     // RFC 2047 decoded (UTF-8, ISO-8859-1), valid UTF-8
  std::string from;
  std::string to;
  std::string cc;
};

// Reads Message-ID, Subject, From, To and Cc from a header block (first occurrence of
// each, unfolded, encoded words decoded where cheap, invalid UTF-8 replaced).
header_summary summarize_headers(std::string_view header_block);
// Decodes RFC 2047 encoded words in UTF-8/US-ASCII/ISO-8859-1; others are kept as is.
std::string decode_rfc2047(std::string_view in);
// Replaces invalid UTF-8 sequences with U+FFFD.
std::string sanitize_utf8(std::string_view in);
// Mailpit's tag rules: [A-Za-z0-9 ._@-], other characters become spaces, 1..100 chars.
// Returns an empty string for a tag that is empty after cleaning.
std::string clean_tag(std::string_view tag);

// A zstd frame kept in memory up to this size; a larger one is spilled to a file.
inline constexpr std::size_t kFrameMemoryLimit = 256 * 1024;
// Chunk size for reading bodies and frames and for incremental blob writes: bounds the
// buffers one message needs while it is compressed or written.
inline constexpr std::size_t kIoChunk = 256 * 1024;

// An anonymous temporary file holding a spilled zstd frame. It is unlinked from the start
// (O_TMPFILE, else mkstemp + unlink), so it vanishes when closed, even after a crash.
// Written once by prepare_message, then only read (pread: safe from any thread).
class frame_file {
 public:
  // Creates the file in `dir` (created if missing). Returns nullptr and sets ec on error.
  static std::unique_ptr<frame_file> create(const std::filesystem::path& dir, std::error_code& ec);
  ~frame_file();
  frame_file(const frame_file&) = delete;
  frame_file& operator=(const frame_file&) = delete;

  std::error_code append(std::string_view bytes);
  // Like message_body::read: up to out.size() bytes at offset; 0 at the end.
  std::size_t read(std::uint64_t offset, std::span<char> out, std::error_code& ec) const noexcept;
  std::uint64_t size() const noexcept { return size_; }

 private:
  explicit frame_file(int fd) noexcept : fd_(fd) {}
  int fd_;
  std::uint64_t size_ = 0;
};

struct prepared_message {
  std::string id;
  std::string mailbox;
  std::int64_t created_ms = 0;
  std::uint64_t size = 0;  // output size
  std::uint64_t raw_size = 0;
  header_summary headers;
  std::string env_from;
  std::vector<std::string> env_to;
  std::string envelope_json;
  std::string attributes_json;
  std::string edits_json;
  std::vector<std::string> tags;
  bool quarantined = false;

  // Exactly one of these holds the data: a zstd frame (in memory, or in a file when it
  // is larger than kFrameMemoryLimit), or (compressed == false) the body itself, to be
  // bound or streamed by the writer.
  bool compressed = false;
  std::string compressed_data;
  std::shared_ptr<const frame_file> compressed_file;
  std::shared_ptr<const message_body> body;

  // Bytes of the `raw` column: the frame's size, or the body's.
  std::uint64_t stored_size() const noexcept;
};

// zstd level (>= 1) or 0 for no compression. Bodies that do not shrink are kept plain.
// A large frame is spilled into an anonymous file in `scratch_dir` (empty: the system's
// temporary directory).
prepared_message prepare_message(const message& msg, std::string mailbox, int zstd_level,
                                 const std::filesystem::path& scratch_dir = {});

// Whether prepare_message is cheap enough to run on an I/O thread for this message.
bool prepare_inline_ok(const message& msg) noexcept;

// Decompresses one zstd frame that must hold exactly raw_size bytes.
std::string decompress(std::string_view frame, std::uint64_t raw_size);

std::string edits_to_json_text(const std::vector<header_edit>& edits);
std::vector<header_edit> edits_from_json_text(std::string_view json);
std::string envelope_to_json_text(const envelope& env);
// Only the envelope recipients' addresses, from envelope_to_json's output.
std::vector<std::string> envelope_recipients(std::string_view envelope_json);

}  // namespace sluice::store
