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
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
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
  std::string bcc;
  std::string reply_to;
  std::string return_path;
  std::string x_tags;  // X-Tags, every occurrence joined with ","
};

// Reads Message-ID, Subject, From, To, Cc, Bcc, Reply-To, Return-Path (first occurrence
// of each) and X-Tags from a header block (unfolded, encoded words decoded where cheap,
// invalid UTF-8 replaced).
header_summary summarize_headers(std::string_view header_block);
// The header fields of a block in order: names as written, values unfolded (CR/LF
// removed), leading/trailing white space trimmed, not decoded, invalid UTF-8 replaced.
// At most kMaxHeaderFields fields; values clipped to kMaxHeaderValue bytes.
inline constexpr std::size_t kMaxHeaderFields = 2'000;
inline constexpr std::size_t kMaxHeaderValue = 64 * 1024;
std::vector<std::pair<std::string, std::string>> header_fields(std::string_view header_block);
// A minimal address-list parser for messages without the MIME view: splits on commas
// outside quotes, angle brackets and comments, takes <addr> or the bare addr-spec, the
// rest as the (unquoted) display name; groups are flattened. Never fails.
std::vector<mail_address> parse_address_list(std::string_view decoded_value);
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

// The text the search index holds for one stored message (see README "Search").
struct index_text {
  std::string subject, from, to, cc, bcc, reply_to, return_path, message_id;
  std::string body;   // the view's search_text, at most kMaxIndexedBody bytes
  std::string files;  // attachment and inline file names, one a line
};
inline constexpr std::size_t kMaxIndexedBody = 4 * 1024 * 1024;

struct prepared_message {
  // The summary as search results show it: id, created_ms, size (output), message_id,
  // subject, addresses, username, snippet, part counts, quarantined, tags, envelope.
  // meta.mailbox is unused: the copies go to `mailboxes`.
  stored_message meta;
  std::vector<std::string> mailboxes;  // distinct, valid names; one stored copy each
  std::uint64_t raw_size = 0;
  // The Date header as the parsed view read it (ms since the epoch); empty without a view
  // or when it did not parse. meta.created_ms is the arrival time either way.
  std::optional<std::int64_t> date_ms;
  std::string envelope_json;
  std::string attributes_json;  // every attribute but "mime"
  std::string edits_json;
  // The "mime" attribute without search_text, serialized (zstd-compressed when that
  // saves space); empty when the message has no view.
  std::string view_blob;
  bool view_compressed = false;
  std::vector<std::pair<std::string, std::string>> headers;  // of the output
  index_text index;
  // Tag candidates from the message itself, cleaned and unique case-insensitively:
  // the "tags" attribute, then X-Tags and plus-addresses and the username when those
  // sources are enabled (tag_sources). Rule tags are added by the store on insert.
  std::vector<std::string> tags;

  // Exactly one of these holds the data: a zstd frame (in memory, or in a file when it
  // is larger than kFrameMemoryLimit), or (compressed == false) the body itself, to be
  // bound or streamed by the writer.
  bool compressed = false;
  std::string compressed_data;
  std::shared_ptr<const frame_file> compressed_file;
  std::shared_ptr<const message_body> body;

  // Bytes of the `raw` column: the frame's size, or the body's.
  std::uint64_t stored_size() const noexcept;
  // How much storing it may grow the database's files: every row and index entry it
  // writes goes to the WAL first and into the database at the checkpoint (so twice), plus
  // page slack per stored copy. Checked against the free-space reserve.
  std::uint64_t growth_estimate() const noexcept;
};

// Which parts of a message become tags (the store stage's `tags:` keys).
struct tag_sources {
  bool x_tags = true;          // the X-Tags header (comma list)
  bool plus_addresses = true;  // user+t1+t2@domain in From/To/Cc/Bcc
  bool username = false;       // the authenticated submitter
  bool title_case = false;     // "shop" → "Shop" for X-Tags and plus-address tags
};

// zstd level (>= 1) or 0 for no compression. Bodies that do not shrink are kept plain.
// A large frame is spilled into an anonymous file in `scratch_dir` (empty: the system's
// temporary directory). The summary comes from the "mime" attribute when there is one,
// else from the output header block.
prepared_message prepare_message(const message& msg, std::string mailbox, int zstd_level,
                                 const std::filesystem::path& scratch_dir = {},
                                 const tag_sources& sources = {});

// Adds a tag (cleaned; skipped when empty or already present case-insensitively).
void add_tag(std::vector<std::string>& tags, std::string_view tag, bool title_case = false);
// Sorts tags case-insensitively (the order stored_message::tags has).
void sort_tags(std::vector<std::string>& tags);
// The tags a plus-address carries: "user+a+b@d" → {"a", "b"}.
std::vector<std::string> plus_address_tags(std::string_view address);

// Fills `p.index` and the summary fields of p.meta from a view / from header_summary.
void summary_from_view(prepared_message& p, const parsed_message& view);
void summary_from_headers(prepared_message& p, const header_summary& h);

// Serializes the view for storage (without search_text), compressed when worthwhile;
// and back.
std::string encode_view(const boost::json::object& view_json, int zstd_level, bool& compressed);
// JSON text of an object without the listed members (their values are not copied).
std::string serialize_without(const boost::json::object& o,
                              std::initializer_list<std::string_view> skip);
parsed_message decode_view(std::string_view blob, bool compressed);

// Whether prepare_message is cheap enough to run on an I/O thread for this message.
bool prepare_inline_ok(const message& msg) noexcept;

// Decodes a part's content: base64, quoted-printable, x-uuencode (uuencode, x-uue);
// 7bit, 8bit, binary, empty and unknown encodings are passed through. Tolerant of bad
// input (skips what it cannot decode), never throws but std::bad_alloc.
std::string decode_transfer(std::string_view encoding, std::string_view data);

// Reads bytes [offset, offset + length) of the raw message from a zstd frame, streaming:
// holds at most the slice and one window of decompressed data. next(buffer) fills the
// buffer with the next frame bytes and returns how many (0 at the end).
std::string decompress_slice(const std::function<std::size_t(std::span<char>)>& next,
                             std::uint64_t offset, std::uint64_t length);

// Decompresses one zstd frame that must hold exactly raw_size bytes.
std::string decompress(std::string_view frame, std::uint64_t raw_size);

std::string edits_to_json_text(const std::vector<header_edit>& edits);
std::vector<header_edit> edits_from_json_text(std::string_view json);
std::string envelope_to_json_text(const envelope& env);
// Only the envelope recipients' addresses, from envelope_to_json's output.
std::vector<std::string> envelope_recipients(std::string_view envelope_json);

}  // namespace sluice::store
