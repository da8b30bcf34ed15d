// codec.cpp — row preparation, header summary, RFC 2047, zstd (see codec.hpp).
#include "codec.hpp"

#include "sluice/base64.hpp"
#include "sluice/message_json.hpp"
#include "sluice/text.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <stdexcept>
#include <system_error>

#include <boost/json.hpp>

namespace sluice::store {
namespace {

constexpr std::size_t kMaxSubject = 16 * 1024;
constexpr std::size_t kMaxAddressField = 64 * 1024;
constexpr std::size_t kMaxMessageId = 1024;
// In-memory bodies up to this size are prepared on the calling (I/O) thread: compressing
// 64 KiB at zstd level 1 takes well under 100 µs, less than a round trip to the workers.
constexpr std::uint64_t kInlinePrepareLimit = 64 * 1024;
// A compressed frame must save at least 3 % or the body is stored plain.
constexpr double kMinSaving = 0.97;
// Tags on one message, from all sources together.
constexpr std::size_t kMaxTagsPerMessage = 100;

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one encoded word's text into UTF-8; false if the charset or encoding is not
// one we handle cheaply (the caller then keeps the word as it was).
bool decode_word(std::string_view charset, char enc, std::string_view text, std::string& out) {
  if (auto star = charset.find('*'); star != std::string_view::npos) {
    charset = charset.substr(0, star);  // RFC 2231 language suffix
  }
  const bool utf8 = sluice::iequals(charset, "utf-8") || sluice::iequals(charset, "us-ascii");
  const bool latin1 = sluice::iequals(charset, "iso-8859-1") || sluice::iequals(charset, "latin1");
  if (!utf8 && !latin1) return false;
  std::string bytes;
  if (enc == 'B' || enc == 'b') {
    // A byte outside the alphabet before the padding makes the word undecodable here.
    if (sluice::base64_decode_lenient(text, bytes) != 0) return false;
  } else if (enc == 'Q' || enc == 'q') {
    for (std::size_t i = 0; i < text.size(); ++i) {
      char c = text[i];
      if (c == '_') {
        bytes.push_back(' ');
      } else if (c == '=' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 &&
                 hex_value(text[i + 2]) >= 0) {
        bytes.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
        i += 2;
      } else {
        bytes.push_back(c);
      }
    }
  } else {
    return false;
  }
  if (utf8) {
    out += bytes;
  } else {
    for (unsigned char c : bytes)
      append_utf8(out, c);
  }
  return true;
}

// Unfolds a field value: CRLF/LF followed by white space becomes that white space.
std::string unfold(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  while (!v.empty()) {  // copies the pieces between line breaks in one append each
    const std::size_t brk = v.find_first_of("\r\n");
    out.append(v.substr(0, brk));
    if (brk == std::string_view::npos) break;
    v.remove_prefix(brk + 1);
  }
  return out;
}

std::string clip(std::string s, std::size_t max) {
  if (s.size() <= max) return s;
  s.resize(max);
  return sanitize_utf8(s);  // the cut may have split a sequence
}

struct zstd_contexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~zstd_contexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
zstd_contexts& contexts() {
  // One pair per thread: creating a context allocates its workspace, reusing it is free.
  thread_local zstd_contexts ctx;
  return ctx;
}

// Streams the body through ZSTD_compressStream2 into a fixed staging buffer and moves
// each piece of output on: into `out` while the frame stays within kFrameMemoryLimit,
// then into a frame_file in scratch_dir (`file`). So compressing holds one input chunk,
// the staging buffer and at most kFrameMemoryLimit of frame, whatever the body's size.
// Returns false (leaving `out` and `file` empty) when the frame would not be smaller than
// kMinSaving × the body: such bodies are stored plain. Throws std::system_error if the
// body cannot be read or the frame cannot be spilled.
bool compress_body(const message_body& body, int level, const std::filesystem::path& scratch_dir,
                   std::string& out, std::shared_ptr<const frame_file>& file) {
  ZSTD_CCtx* cctx = contexts().c;
  if (!cctx) throw std::runtime_error("zstd: cannot allocate a compression context");
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);  // detects corruption on read
  const std::uint64_t raw_size = body.size();
  ZSTD_CCtx_setPledgedSrcSize(cctx, raw_size);  // also records the size in the frame header
  const auto limit = static_cast<std::uint64_t>(static_cast<double>(raw_size) * kMinSaving);
  out.clear();
  if (const auto memory = body.memory();
      memory && ZSTD_compressBound(raw_size) <= kFrameMemoryLimit) {
    // A small in-memory body (the common case) in one call, into a per-thread buffer:
    // no staging copies, and `out` is allocated once at the frame's size.
    thread_local std::vector<char> frame;
    frame.resize(ZSTD_compressBound(raw_size));
    const std::size_t n =
        ZSTD_compress2(cctx, frame.data(), frame.size(), memory->data(), memory->size());
    if (ZSTD_isError(n)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
    if (n >= limit) return false;  // not worth it: stored plain
    out.assign(frame.data(), n);
    return true;
  }
  out.reserve(std::min<std::size_t>(ZSTD_compressBound(raw_size), kFrameMemoryLimit));
  // One per thread, reused: ZSTD_CStreamOutSize() is enough for zstd to always progress.
  thread_local std::vector<char> staging(ZSTD_CStreamOutSize());
  std::unique_ptr<frame_file> spill;
  std::uint64_t used = 0;
  bool gave_up = false;
  std::string error;
  std::error_code io_ec;
  auto emit = [&](std::string_view bytes) -> bool {
    used += bytes.size();
    if (used >= limit && raw_size > 0) {
      gave_up = true;  // not worth it; stop before buffering more than the body's size
      return false;
    }
    if (!spill && out.size() + bytes.size() > kFrameMemoryLimit) {
      spill = frame_file::create(
          scratch_dir.empty() ? std::filesystem::temp_directory_path() : scratch_dir, io_ec);
      if (!spill) return false;
      io_ec = spill->append(out);
      out.clear();
      out.shrink_to_fit();  // from here on the frame lives in the file only
      if (io_ec) return false;
    }
    if (spill) {
      io_ec = spill->append(bytes);
      return !io_ec;
    }
    out.append(bytes);
    return true;
  };
  auto drive = [&](ZSTD_inBuffer& in, ZSTD_EndDirective mode) -> bool {
    for (;;) {
      ZSTD_outBuffer ob{staging.data(), staging.size(), 0};
      std::size_t r = ZSTD_compressStream2(cctx, &ob, &in, mode);
      if (ZSTD_isError(r)) {
        error = ZSTD_getErrorName(r);
        return false;
      }
      if (ob.pos > 0 && !emit(std::string_view(staging.data(), ob.pos))) return false;
      if (mode == ZSTD_e_end ? r == 0 : in.pos == in.size) return true;
    }
  };
  std::error_code ec = body.for_each_chunk(
      [&](std::string_view chunk) {
        ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
        return drive(in, ZSTD_e_continue);
      },
      kIoChunk);
  if (ec) throw std::system_error(ec, "read message body");
  if (!gave_up && error.empty() && !io_ec) {
    ZSTD_inBuffer in{nullptr, 0, 0};
    drive(in, ZSTD_e_end);
  }
  if (!error.empty()) throw std::runtime_error("zstd: " + error);
  if (io_ec) throw std::system_error(io_ec, "spill compressed message");
  if (gave_up) {
    out.clear();
    out.shrink_to_fit();
    return false;  // `spill`, if any, is closed here and its file vanishes
  }
  if (spill) {
    file = std::move(spill);
  } else {
    out.shrink_to_fit();
  }
  return true;
}

}  // namespace

std::string sanitize_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    std::size_t len = 0;
    unsigned cp = 0;
    if (c < 0x80) {
      std::size_t run = i + 1;  // a run of ASCII goes in one append
      while (run < in.size() && static_cast<unsigned char>(in[run]) < 0x80)
        ++run;
      out.append(in.substr(i, run - i));
      i = run;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len != 0 && i + len <= in.size();
    for (std::size_t k = 1; ok && k < len; ++k) {
      auto cc = static_cast<unsigned char>(in[i + k]);
      if ((cc & 0xC0) != 0x80) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Reject overlong forms, surrogates and values past U+10FFFF.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
               cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) {
      ok = false;
    }
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

std::string decode_rfc2047(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  // Set after an encoded word: where it ended in `out`. White space between two encoded
  // words is dropped (RFC 2047 §6.2); any other character clears it.
  std::size_t after_word = std::string::npos;
  while (i < in.size()) {
    if (in[i] == '=' && i + 1 < in.size() && in[i + 1] == '?') {
      std::size_t cs_end = in.find('?', i + 2);
      if (cs_end != std::string_view::npos && cs_end + 2 < in.size() && in[cs_end + 2] == '?') {
        std::size_t text_end = in.find("?=", cs_end + 3);
        if (text_end != std::string_view::npos) {
          std::string decoded;
          if (decode_word(in.substr(i + 2, cs_end - i - 2), in[cs_end + 1],
                          in.substr(cs_end + 3, text_end - cs_end - 3), decoded)) {
            if (after_word != std::string::npos) out.resize(after_word);
            out += decoded;
            after_word = out.size();
            i = text_end + 2;
            continue;
          }
        }
      }
    }
    char c = in[i++];
    out.push_back(c);
    if (c != ' ' && c != '\t') after_word = std::string::npos;
  }
  return out;
}

namespace {

// Calls fn(name, raw_value) for each field of a header block (a field is its first line
// and every continuation line starting with WSP). Stops at the empty line.
template <class Fn>
void for_each_field(std::string_view block, Fn&& fn) {
  std::size_t pos = 0;
  while (pos < block.size()) {
    if (block[pos] == '\n' ||
        (block[pos] == '\r' && pos + 1 < block.size() && block[pos + 1] == '\n')) {
      return;  // the empty line ends the header block
    }
    std::size_t end = pos;
    for (;;) {
      std::size_t nl = block.find('\n', end);
      if (nl == std::string_view::npos) {
        end = block.size();
        break;
      }
      end = nl + 1;
      if (end >= block.size() || (block[end] != ' ' && block[end] != '\t')) break;
    }
    std::string_view field = block.substr(pos, end - pos);
    pos = end;
    std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;  // junk line
    std::string_view name = trim(field.substr(0, colon));
    if (name.empty()) continue;
    if (!fn(name, field.substr(colon + 1))) return;
  }
}

}  // namespace

header_summary summarize_headers(std::string_view block) {
  header_summary h;
  bool have_mid = false, have_subject = false, have_from = false, have_to = false, have_cc = false,
       have_bcc = false, have_reply_to = false, have_return_path = false;
  for_each_field(block, [&](std::string_view name, std::string_view raw_value) {
    auto value = [&] { return std::string(trim(unfold(raw_value))); };
    auto address = [&](bool& have, std::string& out) {
      if (have) return;
      out = clip(sanitize_utf8(decode_rfc2047(value())), kMaxAddressField);
      have = true;
    };
    if (!have_mid && sluice::iequals(name, "Message-ID")) {
      std::string v = value();
      std::string_view s = v;
      if (auto lt = s.find('<'); lt != std::string_view::npos) {
        s.remove_prefix(lt + 1);
        if (auto gt = s.find('>'); gt != std::string_view::npos) s = s.substr(0, gt);
      }
      h.message_id = clip(sanitize_utf8(trim(s)), kMaxMessageId);
      have_mid = true;
    } else if (!have_subject && sluice::iequals(name, "Subject")) {
      h.subject = clip(sanitize_utf8(decode_rfc2047(value())), kMaxSubject);
      have_subject = true;
    } else if (sluice::iequals(name, "From")) {
      address(have_from, h.from);
    } else if (sluice::iequals(name, "To")) {
      address(have_to, h.to);
    } else if (sluice::iequals(name, "Cc")) {
      address(have_cc, h.cc);
    } else if (sluice::iequals(name, "Bcc")) {
      address(have_bcc, h.bcc);
    } else if (sluice::iequals(name, "Reply-To")) {
      address(have_reply_to, h.reply_to);
    } else if (!have_return_path && sluice::iequals(name, "Return-Path")) {
      std::string v = value();
      std::string_view s = trim(v);
      if (s.starts_with('<')) s.remove_prefix(1);
      if (s.ends_with('>')) s.remove_suffix(1);
      h.return_path = clip(sanitize_utf8(s), kMaxMessageId);
      have_return_path = true;
    } else if (sluice::iequals(name, "X-Tags") && h.x_tags.size() < kMaxAddressField) {
      if (!h.x_tags.empty()) h.x_tags += ',';
      h.x_tags += clip(sanitize_utf8(decode_rfc2047(value())), kMaxAddressField);
    }
    return true;
  });
  return h;
}

std::vector<std::pair<std::string, std::string>> header_fields(std::string_view block) {
  std::vector<std::pair<std::string, std::string>> out;
  for_each_field(block, [&](std::string_view name, std::string_view raw_value) {
    out.emplace_back(clip(sanitize_utf8(name), 256),
                     clip(sanitize_utf8(trim(unfold(raw_value))), kMaxHeaderValue));
    return out.size() < kMaxHeaderFields;
  });
  return out;
}

std::vector<mail_address> parse_address_list(std::string_view in) {
  std::vector<mail_address> out;
  // Split at commas that are outside "…", <…> and (…); a ':' outside them ends a group
  // name, a ';' a group.
  std::vector<std::string> items;
  std::string cur;
  bool quoted = false;
  int angle = 0, comment = 0;
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (quoted) {
      if (c == '\\' && i + 1 < in.size()) {
        cur.push_back(in[++i]);
        continue;
      }
      if (c == '"') quoted = false;
      cur.push_back(c);
      continue;
    }
    if (c == '"') {
      quoted = true;
    } else if (c == '(') {
      ++comment;
    } else if (c == ')' && comment > 0) {
      --comment;
    } else if (comment == 0 && c == '<') {
      ++angle;
    } else if (comment == 0 && c == '>' && angle > 0) {
      --angle;
    } else if (comment == 0 && angle == 0 && (c == ',' || c == ';')) {
      items.push_back(std::move(cur));
      cur.clear();
      continue;
    } else if (comment == 0 && angle == 0 && c == ':') {
      cur.clear();  // "group name:" — the members follow
      continue;
    }
    cur.push_back(c);
  }
  items.push_back(std::move(cur));
  for (auto& item : items) {
    std::string_view t = trim(item);
    if (t.empty()) continue;
    mail_address a;
    std::string name;
    auto lt = t.rfind('<');
    auto gt = lt == std::string_view::npos ? std::string_view::npos : t.find('>', lt);
    if (lt != std::string_view::npos && gt != std::string_view::npos) {
      a.address = std::string(trim(t.substr(lt + 1, gt - lt - 1)));
      name = std::string(trim(t.substr(0, lt)));
    } else {
      // addr-spec, possibly followed by a (comment) holding the name.
      std::string_view spec = t;
      if (auto p = t.find('('); p != std::string_view::npos) {
        auto q = t.rfind(')');
        if (q != std::string_view::npos && q > p)
          name = std::string(trim(t.substr(p + 1, q - p - 1)));
        spec = trim(t.substr(0, p));
      }
      a.address = std::string(spec);
    }
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"') {
      name = name.substr(1, name.size() - 2);
    }
    a.name = std::string(trim(name));
    if (a.address.empty() && a.name.empty()) continue;
    out.push_back(std::move(a));
    if (out.size() >= 1000) break;  // bounded
  }
  return out;
}

std::string clean_tag(std::string_view tag) {
  std::string out;
  bool space = false;
  for (char c : tag) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-';
    if (ok) {
      if (space && !out.empty()) out.push_back(' ');
      out.push_back(c);
      space = false;
    } else {
      space = true;  // any other character (and runs of them) becomes one space
    }
  }
  if (out.size() > 100) {
    out.resize(100);
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
  }
  return out;
}

void add_tag(std::vector<std::string>& tags, std::string_view tag, bool title_case) {
  std::string c = clean_tag(tag);
  if (c.empty()) return;
  if (title_case) {
    bool start = true;
    for (char& ch : c) {
      if (start && ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
      start = ch == ' ';
    }
  }
  bool dup = std::any_of(tags.begin(), tags.end(), [&](const std::string& x) {
    return sluice::iequals(x, c);  // tag names are unique case-insensitively
  });
  if (!dup && tags.size() < kMaxTagsPerMessage) tags.push_back(std::move(c));
}

void sort_tags(std::vector<std::string>& tags) {
  std::sort(tags.begin(), tags.end(), [](const std::string& a, const std::string& b) {
    const std::string la = sluice::to_lower_ascii(a), lb = sluice::to_lower_ascii(b);
    return la != lb ? la < lb : a < b;
  });
}

std::vector<std::string> plus_address_tags(std::string_view address) {
  std::vector<std::string> out;
  const auto at = address.rfind('@');
  std::string_view local = address.substr(0, at == std::string_view::npos ? address.size() : at);
  auto plus = local.find('+');
  if (plus == std::string_view::npos || at == std::string_view::npos) return out;
  local.remove_prefix(plus + 1);
  while (!local.empty()) {
    auto next = local.find('+');
    std::string_view t = local.substr(0, next);
    if (!t.empty()) out.emplace_back(t);
    if (next == std::string_view::npos) break;
    local.remove_prefix(next + 1);
  }
  return out;
}

namespace {

std::string join_addresses(const std::vector<mail_address>& v) {
  std::string out;
  for (const auto& a : v) {
    if (!out.empty()) out += ", ";
    if (!a.name.empty()) out += a.name + " ";
    out += "<" + a.address + ">";
  }
  return out;
}

}  // namespace

void summary_from_view(prepared_message& p, const parsed_message& v) {
  stored_message& m = p.meta;
  m.message_id = clip(v.message_id, kMaxMessageId);
  m.subject = clip(v.subject, kMaxSubject);
  m.from = v.from;
  m.to = v.to;
  m.cc = v.cc;
  m.bcc = v.bcc;
  m.reply_to = v.reply_to;
  m.snippet = v.snippet;
  m.attachments = static_cast<std::uint32_t>(v.attachments.size());
  m.inline_parts = static_cast<std::uint32_t>(v.inline_parts.size());
  index_text& ix = p.index;
  ix.subject = m.subject;
  ix.from = m.from ? join_addresses({*m.from}) : std::string();
  ix.to = join_addresses(m.to);
  ix.cc = join_addresses(m.cc);
  ix.bcc = join_addresses(m.bcc);
  ix.reply_to = join_addresses(m.reply_to);
  ix.return_path = v.return_path;
  ix.message_id = m.message_id;
  ix.body = clip(v.search_text, kMaxIndexedBody);
  ix.files.clear();
  for (const auto* parts : {&v.attachments, &v.inline_parts}) {
    for (const auto& part : *parts) {
      if (part.file_name.empty()) continue;
      ix.files += part.file_name;
      ix.files += '\n';
    }
  }
}

void summary_from_headers(prepared_message& p, const header_summary& h) {
  stored_message& m = p.meta;
  m.message_id = h.message_id;
  m.subject = h.subject;
  m.from = from_address(parse_address_list(h.from), h.from);
  m.to = parse_address_list(h.to);
  m.cc = parse_address_list(h.cc);
  m.bcc = parse_address_list(h.bcc);
  m.reply_to = parse_address_list(h.reply_to);
  index_text& ix = p.index;
  ix.subject = m.subject;
  ix.from = h.from;
  ix.to = h.to;
  ix.cc = h.cc;
  ix.bcc = h.bcc;
  ix.reply_to = h.reply_to;
  ix.return_path = h.return_path;
  ix.message_id = m.message_id;
}

// Serializes an object without the members named in `skip`, copying no member value.
std::string serialize_without(const boost::json::object& o,
                              std::initializer_list<std::string_view> skip) {
  std::string out = "{";
  for (const auto& kv : o) {
    if (std::find(skip.begin(), skip.end(), kv.key()) != skip.end()) continue;
    if (out.size() > 1) out += ',';
    out += boost::json::serialize(boost::json::string_view(kv.key()));
    out += ':';
    out += boost::json::serialize(kv.value());
  }
  out += '}';
  return out;
}

std::string encode_view(const boost::json::object& view_json, int zstd_level, bool& compressed) {
  std::string text = serialize_without(view_json, {"search_text"});  // indexed, not kept
  compressed = false;
  if (zstd_level <= 0 || text.size() < 512) return text;
  ZSTD_CCtx* cctx = contexts().c;
  if (!cctx) return text;
  ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, zstd_level);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  std::string out(ZSTD_compressBound(text.size()), '\0');
  std::size_t n = ZSTD_compress2(cctx, out.data(), out.size(), text.data(), text.size());
  if (ZSTD_isError(n) || n >= text.size() * kMinSaving) return text;
  out.resize(n);
  compressed = true;
  return out;
}

parsed_message decode_view(std::string_view blob, bool compressed) {
  std::string text;
  if (compressed) {
    const unsigned long long declared = ZSTD_getFrameContentSize(blob.data(), blob.size());
    if (declared == ZSTD_CONTENTSIZE_ERROR || declared == ZSTD_CONTENTSIZE_UNKNOWN ||
        declared > (1ull << 31)) {
      throw std::runtime_error("stored message view is corrupt (zstd frame header)");
    }
    text = decompress(blob, declared);
    blob = text;
  }
  boost::system::error_code ec;
  boost::json::value v = sluice::parse_stored_json(blob, ec);
  if (ec || !v.is_object()) throw std::runtime_error("stored message view is not a JSON object");
  return parsed_message_from_json(v.get_object());
}

bool prepare_inline_ok(const message& msg) noexcept {
  return msg.raw && msg.raw->memory() && msg.raw->size() <= kInlinePrepareLimit;
}

std::unique_ptr<frame_file> frame_file::create(const std::filesystem::path& dir,
                                               std::error_code& ec) {
  ec.clear();
  auto open_in = [&] { return ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600); };
  int fd = open_in();
  if (fd < 0 && errno == ENOENT) {
    std::filesystem::create_directories(dir, ec);
    fd = open_in();
  }
  if (fd < 0) {
    // File systems without O_TMPFILE: a named file, unlinked at once.
    std::string tmpl = (dir / "frame-XXXXXX").string();
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) {
      ec = std::error_code(errno, std::generic_category());
      return nullptr;
    }
    ::unlink(tmpl.c_str());
  }
  ec.clear();
  return std::unique_ptr<frame_file>(new frame_file(fd));
}

frame_file::~frame_file() {
  ::close(fd_);
}

std::error_code frame_file::append(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(size_));
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::generic_category()};
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  return {};
}

std::size_t frame_file::read(std::uint64_t offset, std::span<char> out,
                             std::error_code& ec) const noexcept {
  return read_file_at(fd_, size_, offset, out, ec);
}

std::uint64_t prepared_message::stored_size() const noexcept {
  if (compressed) return compressed_file ? compressed_file->size() : compressed_data.size();
  return raw_size;
}

std::uint64_t prepared_message::growth_estimate() const noexcept {
  std::uint64_t bytes = stored_size() + view_blob.size() + envelope_json.size() +
                        attributes_json.size() + edits_json.size() + index.body.size() +
                        index.files.size() + index.subject.size() + index.from.size() +
                        index.to.size() + index.cc.size() + index.bcc.size() +
                        index.reply_to.size() + index.return_path.size() + index.message_id.size();
  for (const auto& [name, value] : headers)
    bytes += name.size() + value.size();
  return 2 * bytes + 16 * 1024 * std::max<std::uint64_t>(1, mailboxes.size());
}

prepared_message prepare_message(const message& msg, std::string mailbox, int zstd_level,
                                 const std::filesystem::path& scratch_dir,
                                 const tag_sources& sources) {
  prepared_message p;
  stored_message& m = p.meta;
  m.id = msg.id;
  p.mailboxes.push_back(std::move(mailbox));
  m.quarantined = msg.quarantined;
  const auto received = msg.envelope.received_at;
  const auto when =
      received.time_since_epoch().count() != 0 ? received : std::chrono::system_clock::now();
  m.created_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
  m.username = clip(sanitize_utf8(msg.envelope.auth_user), kMaxMessageId);

  std::shared_ptr<const message_body> body =
      msg.raw ? msg.raw : message_body::from_string(std::string());
  p.raw_size = body->size();
  const std::string original_head = body->header_block();
  std::string edited_head;
  if (msg.edits.empty()) {
    m.size = p.raw_size;
  } else {
    // Output = edited header block + the untouched rest (message::write_output).
    edited_head = msg.output_headers();
    m.size = p.raw_size - original_head.size() + edited_head.size();
  }
  const std::string& head = msg.edits.empty() ? original_head : edited_head;
  const header_summary h = summarize_headers(head);
  p.headers = header_fields(head);

  // The view may hold megabytes of decoded text and HTML: it is read and serialized from
  // the message's own attribute, never copied whole.
  if (const auto* mime = msg.attributes.if_contains("mime"); mime && mime->is_object()) {
    boost::json::object light;  // the view without its bodies: the summary needs none
    for (const auto& kv : mime->get_object()) {
      if (kv.key() != "text" && kv.key() != "html") light.emplace(kv.key(), kv.value());
    }
    const parsed_message view = parsed_message_from_json(light);
    summary_from_view(p, view);
    p.date_ms = view.date_ms;
    p.view_blob = encode_view(mime->get_object(), zstd_level, p.view_compressed);
  } else {
    summary_from_headers(p, h);
  }

  m.envelope_from = msg.envelope.mail_from;
  for (const auto& r : msg.envelope.recipients)
    m.envelope_to.push_back(r.address);
  p.envelope_json = envelope_to_json_text(msg.envelope);
  p.attributes_json = serialize_without(msg.attributes, {"mime"});  // kept apart, as the view
  p.edits_json = edits_to_json_text(msg.edits);

  if (const auto* tags = msg.attributes.if_contains("tags"); tags && tags->is_array()) {
    for (const auto& t : tags->get_array()) {
      if (t.is_string()) add_tag(p.tags, t.get_string());
    }
  }
  if (sources.x_tags && !h.x_tags.empty()) {
    std::string_view rest = h.x_tags;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      add_tag(p.tags, trim(rest.substr(0, comma)), sources.title_case);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (sources.plus_addresses) {
    auto from_list = [&](const std::vector<mail_address>& v) {
      for (const auto& a : v) {
        for (const auto& t : plus_address_tags(a.address))
          add_tag(p.tags, t, sources.title_case);
      }
    };
    if (m.from) from_list({*m.from});
    from_list(m.to);
    from_list(m.cc);
    from_list(m.bcc);
  }
  if (sources.username && !m.username.empty()) add_tag(p.tags, m.username);

  if (zstd_level > 0 && p.raw_size > 0 &&
      compress_body(*body, zstd_level, scratch_dir, p.compressed_data, p.compressed_file)) {
    p.compressed = true;
  } else {
    p.body = std::move(body);  // stored plain: the writer binds or streams it, no copy here
  }
  return p;
}

std::string decode_transfer(std::string_view encoding, std::string_view data) {
  const std::string enc = to_lower_ascii(trim(encoding));
  std::string out;
  if (enc == "base64") {
    sluice::base64_decode_lenient(data, out);  // skips line breaks and junk (RFC 2045 §6.8)
    return out;
  }
  if (enc == "quoted-printable") {
    out.reserve(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
      const char c = data[i];
      if (c != '=') {
        out.push_back(c);
        continue;
      }
      // Soft line break: "=" then optional transport padding then CRLF or LF.
      std::size_t j = i + 1;
      while (j < data.size() && (data[j] == ' ' || data[j] == '\t'))
        ++j;
      if (j < data.size() && (data[j] == '\r' || data[j] == '\n')) {
        if (data[j] == '\r' && j + 1 < data.size() && data[j + 1] == '\n') ++j;
        i = j;
        continue;
      }
      if (j >= data.size()) break;  // "=" at the very end
      if (i + 2 < data.size() && hex_value(data[i + 1]) >= 0 && hex_value(data[i + 2]) >= 0) {
        out.push_back(static_cast<char>(hex_value(data[i + 1]) * 16 + hex_value(data[i + 2])));
        i += 2;
      } else {
        out.push_back(c);  // a literal "=" (RFC 2045 §6.7 note 1: be liberal)
      }
    }
    return out;
  }
  if (enc == "x-uuencode" || enc == "uuencode" || enc == "x-uue") {
    bool in_body = false;
    std::size_t pos = 0;
    while (pos < data.size()) {
      std::size_t nl = data.find('\n', pos);
      std::string_view line = data.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
      pos = nl == std::string_view::npos ? data.size() : nl + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!in_body) {
        in_body = line.starts_with("begin ");
        continue;
      }
      if (line == "end") break;
      if (line.empty()) continue;
      const int n = (line[0] - 0x20) & 0x3f;
      if (n == 0) continue;  // the "`" line before "end"
      auto val = [&](std::size_t k) {
        return k < line.size() ? static_cast<unsigned>((line[k] - 0x20) & 0x3f) : 0u;
      };
      int written = 0;
      for (std::size_t k = 1; written < n; k += 4) {
        const unsigned v = (val(k) << 18) | (val(k + 1) << 12) | (val(k + 2) << 6) | val(k + 3);
        for (int b = 2; b >= 0 && written < n; --b, ++written)
          out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
        if (k > line.size()) break;
      }
    }
    return out;
  }
  return std::string(data);  // 7bit, 8bit, binary: the bytes are the content
}

std::string decompress_slice(const std::function<std::size_t(std::span<char>)>& next,
                             std::uint64_t offset, std::uint64_t length) {
  ZSTD_DCtx* dctx = contexts().d;
  if (!dctx) throw std::runtime_error("zstd: cannot allocate a decompression context");
  ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
  std::string out;
  out.reserve(length);
  thread_local std::vector<char> in_buf(ZSTD_DStreamInSize());
  thread_local std::vector<char> out_buf(ZSTD_DStreamOutSize());
  std::uint64_t pos = 0;  // decompressed bytes seen so far
  const std::uint64_t end = offset + length;
  bool finished = false;
  while (pos < end && !finished) {
    const std::size_t got = next(std::span<char>(in_buf));
    if (got == 0) break;
    ZSTD_inBuffer in{in_buf.data(), got, 0};
    while (in.pos < in.size && pos < end) {
      ZSTD_outBuffer ob{out_buf.data(), out_buf.size(), 0};
      const std::size_t r = ZSTD_decompressStream(dctx, &ob, &in);
      if (ZSTD_isError(r)) {
        throw std::runtime_error(std::string("stored message data is corrupt: ") +
                                 ZSTD_getErrorName(r));
      }
      // Keep only the part of this window that falls into [offset, end).
      const std::uint64_t w0 = pos, w1 = pos + ob.pos;
      const std::uint64_t a = std::max(w0, offset), b = std::min(w1, end);
      if (a < b) out.append(out_buf.data() + (a - w0), static_cast<std::size_t>(b - a));
      pos = w1;
      if (r == 0) {
        finished = true;
        break;
      }
    }
  }
  if (out.size() != length) throw std::runtime_error("stored message data is truncated");
  return out;
}

std::string decompress(std::string_view frame, std::uint64_t raw_size) {
  const unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR || declared != raw_size) {
    throw std::runtime_error("stored message data is corrupt (zstd frame header)");
  }
  ZSTD_DCtx* dctx = contexts().d;
  if (!dctx) throw std::runtime_error("zstd: cannot allocate a decompression context");
  std::string out(raw_size, '\0');
  std::size_t n = ZSTD_decompressDCtx(dctx, out.data(), out.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != raw_size) {
    throw std::runtime_error(std::string("stored message data is corrupt: ") +
                             (ZSTD_isError(n) ? ZSTD_getErrorName(n) : "size mismatch"));
  }
  return out;
}

// The SDK owns the JSON format (shared with the kernel's spool); the store keeps it as text.
std::string edits_to_json_text(const std::vector<header_edit>& edits) {
  return boost::json::serialize(sluice::edits_to_json(edits));
}

std::vector<header_edit> edits_from_json_text(std::string_view json) {
  boost::system::error_code ec;
  boost::json::value v = sluice::parse_stored_json(json, ec);
  if (ec || !v.is_array()) throw std::runtime_error("stored edits are not a JSON array");
  return sluice::edits_from_json(v.as_array());
}

std::string envelope_to_json_text(const envelope& env) {
  return boost::json::serialize(sluice::envelope_to_json(env));
}

std::vector<std::string> envelope_recipients(std::string_view envelope_json) {
  std::vector<std::string> out;
  boost::system::error_code ec;
  boost::json::value v = sluice::parse_stored_json(envelope_json, ec);
  if (ec || !v.is_object()) return out;
  if (const auto* r = v.as_object().if_contains("recipients"); r && r->is_array()) {
    for (const auto& item : r->get_array()) {
      if (!item.is_object()) continue;
      if (const auto* a = item.get_object().if_contains("address"); a && a->is_string()) {
        out.emplace_back(a->get_string());
      }
    }
  }
  return out;
}

}  // namespace sluice::store
