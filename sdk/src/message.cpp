// message.cpp — message bodies (in memory or spilled to a file), header edits applied
// on output, and message ids.
//
// A file-backed body deletes its file when the last reference goes; the spool keeps a
// message by hard-linking that file into place, so no ownership transfer is needed.
#include "sluice/message.hpp"
#include "sluice/text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <optional>
#include <random>

namespace sluice {
namespace {

class memory_body final : public message_body {
 public:
  explicit memory_body(std::string bytes) : bytes_(std::move(bytes)) {}
  std::uint64_t size() const noexcept override { return bytes_.size(); }
  std::size_t read(std::uint64_t offset, std::span<char> out,
                   std::error_code& ec) const noexcept override {
    ec.clear();
    if (offset >= bytes_.size()) return 0;
    std::size_t n = std::min<std::uint64_t>(out.size(), bytes_.size() - offset);
    std::memcpy(out.data(), bytes_.data() + offset, n);
    return n;
  }
  std::optional<std::string_view> memory() const noexcept override { return bytes_; }
  const std::filesystem::path& file() const noexcept override { return no_file_; }

 private:
  std::string bytes_;
  std::filesystem::path no_file_;
};

class file_body final : public message_body {
 public:
  file_body(std::filesystem::path path, int fd, std::uint64_t size, bool owned = true)
      : path_(std::move(path)), fd_(fd), size_(size), owned_(owned) {}
  ~file_body() override {
    ::close(fd_);
    std::error_code ec;
    if (owned_) std::filesystem::remove(path_, ec);
  }
  std::uint64_t size() const noexcept override { return size_; }
  std::size_t read(std::uint64_t offset, std::span<char> out,
                   std::error_code& ec) const noexcept override {
    return read_file_at(fd_, size_, offset, out, ec);
  }
  std::optional<std::string_view> memory() const noexcept override { return std::nullopt; }
  const std::filesystem::path& file() const noexcept override { return path_; }

 private:
  std::filesystem::path path_;
  int fd_;
  std::uint64_t size_;
  bool owned_;
};

// Whether `text` starts with a header field: a field name of printable US-ASCII other than
// ':' (RFC 5322 §3.6.8), optional WSP (the obsolete syntax of §4.5), then ':'. nullopt when
// `text` ends before that is decided (a prefix of a longer message).
std::optional<bool> starts_with_field(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size() && text[i] > ' ' && text[i] < 127 && text[i] != ':')
    ++i;
  const std::size_t name = i;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t'))
    ++i;
  if (i == text.size()) return std::nullopt;
  return name > 0 && text[i] == ':';
}

// Offset just past the header block's terminating empty line, or npos if the block has
// no end within `text` (then everything is header). A message whose first line is not a
// header field has no header section: its body starts at 0 (RFC 5322 §2.1), so added
// fields go before that line, not after it.
// `whole`: text is the entire message, not a prefix of it.
std::size_t header_block_end(std::string_view text, bool whole) {
  if (text.starts_with("\r\n")) return 2;
  if (text.starts_with("\n")) return 1;
  if (!starts_with_field(text).value_or(!whole)) return 0;
  std::size_t crlf = text.find("\r\n\r\n");
  // A bare-LF terminator counts only if it comes first: past the CRLF one it is not
  // looked for (a CRLF message has none, and the search would read the whole body).
  std::size_t lf = (crlf == std::string_view::npos ? text : text.substr(0, crlf + 2)).find("\n\n");
  if (crlf == std::string_view::npos && lf == std::string_view::npos) return std::string_view::npos;
  if (lf != std::string_view::npos && (crlf == std::string_view::npos || lf + 1 < crlf + 2)) {
    return lf + 2;
  }
  return crlf + 4;
}

struct field {
  std::string name;
  std::string text;  // the whole field as it goes out, including its line ending(s)
};

// Renders "Name: value" folded at whitespace so that lines stay under 78 columns where
// possible (RFC 5322 §2.2.3). Values are single lines: CR and LF are replaced by spaces so
// an edit can never inject a header or end the header block.
std::string render_field(std::string_view name, std::string_view value, std::string_view eol) {
  std::string clean(value);
  for (char& c : clean) {
    if (c == '\r' || c == '\n') c = ' ';
  }
  std::string out(name);
  out += ": ";
  std::size_t col = out.size();
  std::size_t i = 0;
  while (i < clean.size()) {
    std::size_t sp = clean.find(' ', i + 1);
    std::size_t word_end = sp == std::string::npos ? clean.size() : sp;
    std::size_t len = word_end - i;
    if (col + len > 78 && col > name.size() + 2 && clean[i] == ' ') {
      // RFC 5322 §2.2.3: a fold is a line end put before white space that is there; the
      // space itself starts the continuation, so unfolding gives the value back.
      out += eol;
      out.append(clean, i, len);
      col = len;
    } else {
      out.append(clean, i, len);
      col += len;
    }
    i = word_end;
  }
  out += eol;
  return out;
}

std::vector<field> split_fields(std::string_view header) {
  std::vector<field> fields;
  std::size_t pos = 0;
  while (pos < header.size()) {
    std::size_t eol = header.find('\n', pos);
    std::size_t next = eol == std::string_view::npos ? header.size() : eol + 1;
    std::string_view line = header.substr(pos, next - pos);
    bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (continuation && !fields.empty()) {
      fields.back().text.append(line);
    } else {
      std::size_t colon = line.find(':');
      std::string name(colon == std::string_view::npos ? std::string_view{}
                                                       : line.substr(0, colon));
      while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
        name.pop_back();
      fields.push_back({std::move(name), std::string(line)});
    }
    pos = next;
  }
  return fields;
}

void apply_edit(std::vector<field>& fields, const header_edit& e, std::string_view eol) {
  using op = edit_op;
  switch (e.op) {
    case op::prepend:
      fields.insert(fields.begin(), {e.name, render_field(e.name, e.value, eol)});
      break;
    case op::append:
      fields.push_back({e.name, render_field(e.name, e.value, eol)});
      break;
    case op::set: {
      auto it = std::find_if(fields.begin(), fields.end(),
                             [&](const field& f) { return iequals(f.name, e.name); });
      if (it == fields.end()) {
        fields.push_back({e.name, render_field(e.name, e.value, eol)});
      } else {
        *it = {e.name, render_field(e.name, e.value, eol)};
        fields.erase(std::remove_if(it + 1, fields.end(),
                                    [&](const field& f) { return iequals(f.name, e.name); }),
                     fields.end());
      }
      break;
    }
    case op::remove:
      fields.erase(std::remove_if(fields.begin(), fields.end(),
                                  [&](const field& f) { return iequals(f.name, e.name); }),
                   fields.end());
      break;
    case op::remove_nth: {
      std::size_t want = 0;
      auto [end, err] = std::from_chars(e.value.data(), e.value.data() + e.value.size(), want);
      if (err != std::errc() || end != e.value.data() + e.value.size()) break;
      std::size_t seen = 0;
      for (auto it = fields.begin(); it != fields.end(); ++it) {
        if (iequals(it->name, e.name) && seen++ == want) {
          fields.erase(it);
          break;
        }
      }
      break;
    }
    case op::rename:
      for (auto& f : fields) {
        if (iequals(f.name, e.name)) {
          std::size_t colon = f.text.find(':');
          f.text = e.value + f.text.substr(colon);
          f.name = e.value;
        }
      }
      break;
  }
}

}  // namespace

std::size_t read_file_at(int fd, std::uint64_t size, std::uint64_t offset, std::span<char> out,
                         std::error_code& ec) noexcept {
  ec.clear();
  if (offset >= size) return 0;
  const std::size_t want = std::min<std::uint64_t>(out.size(), size - offset);
  std::size_t done = 0;
  while (done < want) {
    ssize_t n = ::pread(fd, out.data() + done, want - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      ec = std::error_code(errno, std::generic_category());
      return done;
    }
    if (n == 0) break;  // the file is shorter than `size`
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::error_code message_body::for_each_chunk(const std::function<bool(std::string_view)>& fn,
                                             std::size_t chunk_size) const {
  if (auto m = memory()) {
    if (!m->empty()) fn(*m);
    return {};
  }
  std::string buf(std::max<std::size_t>(chunk_size, 4096), '\0');
  std::uint64_t off = 0;
  std::error_code ec;
  for (;;) {
    std::size_t n = read(off, buf, ec);
    if (ec) return ec;
    if (n == 0) return {};
    if (!fn(std::string_view(buf.data(), n))) return {};
    off += n;
  }
}

std::string message_body::to_string() const {
  if (auto m = memory()) return std::string(*m);
  std::string out;
  out.reserve(size());
  for_each_chunk([&](std::string_view c) {
    out.append(c);
    return true;
  });
  return out;
}

std::string message_body::header_block(std::size_t limit) const {
  std::string head;
  if (auto m = memory()) {
    std::string_view v = m->substr(0, limit);
    const std::size_t end = header_block_end(v, v.size() == m->size());
    if (end != std::string_view::npos) v = v.substr(0, end);
    head.assign(v);  // the header block only, not the body
    return head;
  }
  // File-backed: read in growing steps and stop at the empty line, so a typical header
  // costs a few KB, not `limit` bytes per message in flight.
  std::size_t want = 8 * 1024;
  std::error_code ec;
  for (;;) {
    const std::size_t old = head.size();
    const std::size_t step = std::min<std::uint64_t>(std::min(want, limit) - old, size() - old);
    head.resize(old + step);
    head.resize(old + read(old, std::span<char>(head.data() + old, step), ec));
    // The terminator may straddle the previous read; header_block_end scans from the start.
    std::size_t end = header_block_end(head, head.size() >= size());
    if (end != std::string::npos) {
      head.resize(end);
      break;
    }
    if (ec || head.size() == old || head.size() >= limit || head.size() >= size()) break;
    want *= 4;
  }
  head.shrink_to_fit();
  return head;
}

std::shared_ptr<const message_body> message_body::from_string(std::string bytes) {
  return std::make_shared<memory_body>(std::move(bytes));
}

std::shared_ptr<const message_body> message_body::from_file(const std::filesystem::path& path,
                                                            std::error_code& ec) {
  ec.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    ec = std::error_code(errno, std::generic_category());
    return nullptr;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ec = std::error_code(errno, std::generic_category());
    ::close(fd);
    return nullptr;
  }
  return std::make_shared<file_body>(path, fd, static_cast<std::uint64_t>(st.st_size), false);
}

body_builder::body_builder(std::filesystem::path spill_dir, std::size_t spill_threshold)
    : spill_dir_(std::move(spill_dir)), threshold_(spill_threshold) {}

body_builder::~body_builder() {
  reset();
}

void body_builder::reset() {
  memory_.clear();
  memory_.shrink_to_fit();
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    std::filesystem::remove(file_, ec);
  }
  size_ = 0;
}

static std::error_code write_all(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::generic_category()};
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::error_code body_builder::append(std::string_view bytes) {
  if (fd_ < 0 && memory_.size() + bytes.size() <= threshold_) {
    memory_.append(bytes);
    size_ += bytes.size();
    return {};
  }
  if (fd_ < 0) {
    std::error_code ec;
    std::filesystem::create_directories(spill_dir_, ec);
    std::string tmpl = (spill_dir_ / "body-XXXXXX").string();
    fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd_ < 0) return {errno, std::generic_category()};
    file_ = tmpl;
    if (auto e = write_all(fd_, memory_)) return e;
    memory_.clear();
    memory_.shrink_to_fit();
  }
  if (auto e = write_all(fd_, bytes)) return e;
  size_ += bytes.size();
  return {};
}

std::shared_ptr<const message_body> body_builder::finish(std::error_code& ec) {
  ec.clear();
  if (fd_ < 0) {
    auto body = std::make_shared<memory_body>(std::move(memory_));
    memory_.clear();
    size_ = 0;
    return body;
  }
  auto body = std::make_shared<file_body>(file_, fd_, size_);
  fd_ = -1;
  file_.clear();
  size_ = 0;
  return body;
}

void message::prepend_header(std::string name, std::string value) {
  edits.push_back({edit_op::prepend, std::move(name), std::move(value)});
}
void message::append_header(std::string name, std::string value) {
  edits.push_back({edit_op::append, std::move(name), std::move(value)});
}
void message::set_header(std::string name, std::string value) {
  edits.push_back({edit_op::set, std::move(name), std::move(value)});
}
void message::remove_header(std::string name) {
  edits.push_back({edit_op::remove, std::move(name), {}});
}
void message::rename_header(std::string name, std::string new_name) {
  edits.push_back({edit_op::rename, std::move(name), std::move(new_name)});
}

void message::remove_nth_header(std::string name, std::size_t index) {
  edits.push_back({edit_op::remove_nth, std::move(name), std::to_string(index)});
}

std::string message::output_headers() const {
  std::string head = raw ? raw->header_block() : std::string();
  if (edits.empty()) return head;
  std::string_view eol = head.find("\r\n") != std::string::npos || head.empty() ? "\r\n" : "\n";
  // Keep the empty line that ends the block out of the field list.
  std::string_view fields_text = head;
  std::string_view terminator;
  if (fields_text.ends_with("\r\n\r\n")) {
    terminator = "\r\n";
    fields_text.remove_suffix(2);
  } else if (fields_text.ends_with("\n\n")) {
    terminator = "\n";
    fields_text.remove_suffix(1);
  } else if (fields_text == "\r\n" || fields_text == "\n") {
    terminator = fields_text;
    fields_text = {};
  } else if (fields_text.empty() && raw && raw->size() > 0) {
    // No header section (header_block_end): the added fields need the empty line that
    // separates them from the body.
    terminator = eol;
  }
  auto fields = split_fields(fields_text);
  for (const auto& e : edits)
    apply_edit(fields, e, eol);
  std::string out;
  out.reserve(head.size() + 256);
  for (const auto& f : fields) {
    out += f.text;
    if (!f.text.ends_with('\n')) out += eol;  // a last line without its end of line
  }
  out += terminator;
  return out;
}

std::error_code message::write_output(const std::function<bool(std::string_view)>& sink) const {
  if (!raw) return {};
  if (edits.empty()) return raw->for_each_chunk(sink);
  std::string original_head = raw->header_block();
  std::string head = output_headers();
  if (!sink(head)) return {};
  const std::uint64_t body_start = original_head.size();
  if (auto m = raw->memory()) {
    if (m->size() > body_start) sink(m->substr(body_start));
    return {};
  }
  std::string buf(64 * 1024, '\0');
  std::uint64_t off = body_start;
  std::error_code ec;
  for (;;) {
    std::size_t n = raw->read(off, buf, ec);
    if (ec) return ec;
    if (n == 0) return {};
    if (!sink(std::string_view(buf.data(), n))) return {};
    off += n;
  }
}

std::string message::output() const {
  std::string out;
  out.reserve(raw ? raw->size() + 512 : 0);
  write_output([&](std::string_view c) {
    out.append(c);
    return true;
  });
  return out;
}

std::string rfc5322_date(std::chrono::system_clock::time_point t, bool local_zone) {
  static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  if (local_zone) {
    ::localtime_r(&tt, &tm);
  } else {
    ::gmtime_r(&tt, &tm);
  }
  const long offset_min = local_zone ? tm.tm_gmtoff / 60 : 0;
  const long abs_min = offset_min < 0 ? -offset_min : offset_min;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %d %02d:%02d:%02d %c%02ld%02ld", days[tm.tm_wday % 7],
                tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec, offset_min < 0 ? '-' : '+', abs_min / 60, abs_min % 60);
  return buf;
}

std::string make_message_id() {
  static constexpr char alphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  using u128 = unsigned __int128;
  const auto ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  // 48 bits of time on top keep ids sorted by arrival across processes; 80 random bits below
  // keep them unique across processes. Within the process each id is also greater than the
  // one before (like a monotonic ULID): an id in the same millisecond as the last one (or
  // after the clock stepped back) is the last one plus a random step, so two messages
  // arriving in one millisecond still sort in arrival order.
  const u128 fresh = (static_cast<u128>(ms & 0xFFFFFFFFFFFFull) << 80) |
                     (static_cast<u128>(rng() & 0xFFFFull) << 64) | static_cast<u128>(rng());
  const u128 step = 1 + static_cast<u128>(rng() & 0xFFFFFFFFull);
  static std::mutex mu;
  static u128 last = 0;
  u128 v;
  {
    std::lock_guard lk(mu);
    v = fresh > last ? fresh : last + step;
    last = v;
  }
  char out[22];
  for (int i = 21; i >= 0; --i) {
    out[i] = alphabet[static_cast<unsigned>(v % 62)];
    v /= 62;
  }
  return std::string(out, 22);
}

}  // namespace sluice
