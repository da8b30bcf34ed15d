// sluice/message.hpp — a message as it flows through a pipeline.
//
// The raw bytes are kept exactly as received (DKIM signatures must survive); header
// changes are recorded as edits and applied only when the message is written out.
// Bodies past a threshold live in a file in the spool directory, not in memory.
//
// Threading: a message is owned by one pipeline run and touched by one stage at a time;
// it needs no locking. A message_body is immutable once built and may be read from any
// thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <boost/json/object.hpp>

namespace sluice {

// The raw message (header block + body) as received. Immutable.
class message_body {
 public:
  virtual ~message_body() = default;
  virtual std::uint64_t size() const noexcept = 0;
  // Copies up to out.size() bytes starting at offset into out; returns how many were
  // copied (0 at the end). Sets ec on an I/O error of a file-backed body.
  virtual std::size_t read(std::uint64_t offset, std::span<char> out,
                           std::error_code& ec) const noexcept = 0;
  // The bytes, when the body is held in memory; std::nullopt for a file-backed body.
  virtual std::optional<std::string_view> memory() const noexcept = 0;
  // The backing file of a file-backed body, empty otherwise.
  virtual const std::filesystem::path& file() const noexcept = 0;

  // Calls fn(chunk) for consecutive chunks of at most chunk_size bytes until fn returns
  // false or the end is reached. In-memory bodies yield one chunk without copying.
  std::error_code for_each_chunk(const std::function<bool(std::string_view)>& fn,
                                 std::size_t chunk_size = 64 * 1024) const;
  // The whole body as one string (copies a file-backed body into memory).
  std::string to_string() const;
  // The header block, up to and including the empty line (or the whole body if there
  // is none), read from the start of the body; at most limit bytes.
  std::string header_block(std::size_t limit = 1024 * 1024) const;

  static std::shared_ptr<const message_body> from_string(std::string bytes);
  // A body backed by an existing file that it does not own (never deletes it).
  static std::shared_ptr<const message_body> from_file(const std::filesystem::path& path,
                                                       std::error_code& ec);
};

// The read of a file-backed message_body, for other read-only files a plugin keeps open
// (the store's spilled zstd frames): copies up to out.size() bytes of the open file `fd`
// from `offset` into out, never past `size` (the file's length as the caller knows it),
// with pread, so it is safe from any thread; EINTR is retried. Returns how many bytes were
// copied: 0 at or past `size`, fewer than asked when the file ends early. On a read error it
// sets ec (errno) and returns what it copied before it; otherwise it clears ec.
std::size_t read_file_at(int fd, std::uint64_t size, std::uint64_t offset, std::span<char> out,
                         std::error_code& ec) noexcept;

// Builds a body while it arrives. Keeps up to `spill_threshold` bytes in memory, then
// moves everything to a new file in `spill_dir` and appends there. The file is removed
// when the last reference to the finished body goes away, unless it was adopted (the
// spool renames it into place and takes ownership).
class body_builder {
 public:
  body_builder(std::filesystem::path spill_dir, std::size_t spill_threshold);
  ~body_builder();
  body_builder(const body_builder&) = delete;
  body_builder& operator=(const body_builder&) = delete;

  std::error_code append(std::string_view bytes);
  std::uint64_t size() const noexcept { return size_; }
  bool spilled() const noexcept { return fd_ >= 0; }
  // Flushes and returns the body; the builder is empty afterwards.
  std::shared_ptr<const message_body> finish(std::error_code& ec);
  // Drops what was appended so far (RSET, aborted DATA).
  void reset();

 private:
  std::filesystem::path spill_dir_;
  std::size_t threshold_;
  std::string memory_;
  std::filesystem::path file_;
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

// One header change, applied on output in the order recorded.
enum class edit_op : std::uint8_t {
  prepend,  // insert a new field above all others (trace fields: Received, Return-Path)
  append,   // insert a new field after the last existing one
  set,      // replace the value of every field with this name (append if absent)
  remove,   // remove every field with this name
  rename,   // rename every field with this name to `value`, keeping its value
  // remove one field: the one at (0-based, decimal) index `value` among the fields with
  // this name as they stand when the edit applies (nothing when there are fewer)
  remove_nth,
};

struct header_edit {
  edit_op op = edit_op::append;
  std::string name;   // field name, compared case-insensitively
  std::string value;  // unfolded value (for rename: the new name)
};

struct recipient {
  std::string address;                                      // without angle brackets
  std::vector<std::pair<std::string, std::string>> params;  // ESMTP RCPT parameters
};

// Who sent the message, how, and to whom: everything the protocol carried outside the
// message itself.
struct envelope {
  std::string mail_from;  // reverse-path without brackets; empty is the null sender <>
  std::vector<std::pair<std::string, std::string>> mail_params;  // ESMTP MAIL parameters
  std::vector<recipient> recipients;

  std::string listener;    // listener instance name
  std::string protocol;    // RFC 3848 "with" keyword: SMTP, ESMTP, ESMTPS, ESMTPSA, LMTP, HTTP…
  std::string session_id;  // listener's id for the connection, for log correlation
  std::string helo;        // HELO/EHLO argument
  std::string client_address;  // IP literal of the peer (after PROXY/XCLIENT), empty for unix
  std::uint16_t client_port = 0;
  std::string client_name;  // reverse DNS name if known
  std::string local_address;
  std::string auth_user;    // authenticated identity, empty if none
  std::string tls_version;  // e.g. "TLSv1.3", empty without TLS
  std::string tls_cipher;
  std::chrono::system_clock::time_point received_at{};
};

class message {
 public:
  std::string id;  // kernel-assigned: unique, URL-safe, sorts by arrival time
  sluice::envelope envelope;
  std::shared_ptr<const message_body> raw;
  std::vector<header_edit> edits;
  // Structured results of stages, by namespace ("mime", "auth", "spam", "tags",
  // "mailbox", …). Serialized into the spool and kept by the store.
  boost::json::object attributes;
  bool quarantined = false;

  void prepend_header(std::string name, std::string value);
  void append_header(std::string name, std::string value);
  void set_header(std::string name, std::string value);
  void remove_header(std::string name);
  void rename_header(std::string name, std::string new_name);
  // Removes the index-th field named `name` (0-based, counting the edits before this one).
  void remove_nth_header(std::string name, std::size_t index);

  // The message as it leaves: raw bytes with the edits applied. Fields that are added
  // are folded at 78 columns and end in CRLF. The body part is passed through untouched.
  std::error_code write_output(const std::function<bool(std::string_view)>& sink) const;
  std::string output() const;
  // The edited header block only (for stages that need the final headers).
  std::string output_headers() const;
};

// Creates a new message id: 22 characters of base62, sorting by creation time (to the
// millisecond across processes; strictly increasing within one process).
std::string make_message_id();

// An RFC 5322 §3.3 date-time, "Fri, 04 Dec 2026 18:28:54 +0000": in UTC, or with local_zone
// in the process's time zone and its offset. English names whatever the C locale.
std::string rfc5322_date(std::chrono::system_clock::time_point t, bool local_zone = false);

}  // namespace sluice
