// prescan.cpp — see prescan.hpp.
#include "prescan.hpp"

#include <algorithm>
#include <cstring>
#include <optional>
#include <string_view>

namespace sluice::mime {
namespace {

constexpr std::size_t kLineCap = 64 * 1024;   // bytes of a line kept for inspection
constexpr std::size_t kFieldCap = 64 * 1024;  // bytes of a Content-Type field kept

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_lwsp(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

bool is_token_char(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  return std::strchr("()<>@,;:\\\"/[]?=", c) == nullptr;
}

// Skips white space, folding and (nested) comments from i.
std::size_t skip_cfws(std::string_view s, std::size_t i) {
  while (i < s.size()) {
    if (is_lwsp(s[i])) {
      ++i;
    } else if (s[i] == '(') {
      int level = 0;
      while (i < s.size()) {
        if (s[i] == '\\') {
          i += 2;
          continue;
        }
        if (s[i] == '(') ++level;
        if (s[i] == ')' && --level == 0) {
          ++i;
          break;
        }
        ++i;
      }
    } else {
      break;
    }
  }
  return std::min(i, s.size());
}

struct content_type_field {
  std::uint64_t offset = 0;  // of the field in the raw message
  std::string text;          // the raw field (folded), at most kFieldCap bytes
  bool truncated = false;
};

struct analysed_type {
  std::string type, subtype;       // lower case
  std::uint64_t token_offset = 0;  // raw offset of the type token
  std::optional<std::string> boundary;
  bool unusual_boundary = false;  // boundary*=, boundary*0= (RFC 2231): not followed
};

analysed_type analyse(const content_type_field& f) {
  analysed_type a;
  std::string_view s = f.text;
  std::size_t i = s.find(':');
  if (i == std::string_view::npos) return a;
  i = skip_cfws(s, i + 1);
  const std::size_t t0 = i;
  while (i < s.size() && is_token_char(s[i]))
    ++i;
  for (std::size_t k = t0; k < i; ++k)
    a.type += lower(s[k]);
  a.token_offset = f.offset + t0;
  i = skip_cfws(s, i);
  if (i < s.size() && s[i] == '/') {
    i = skip_cfws(s, i + 1);
    while (i < s.size() && is_token_char(s[i]))
      a.subtype += lower(s[i++]);
  }
  // Parameters: ; name = value, value a token or a quoted string.
  while (i < s.size()) {
    i = skip_cfws(s, i);
    if (i >= s.size()) break;
    if (s[i] != ';') {
      ++i;  // junk: GMime skips it too, loosely
      continue;
    }
    i = skip_cfws(s, i + 1);
    std::string name;
    while (i < s.size() && s[i] != '=' && s[i] != ';' && !is_lwsp(s[i]))
      name += lower(s[i++]);
    i = skip_cfws(s, i);
    if (i >= s.size() || s[i] != '=') continue;
    i = skip_cfws(s, i + 1);
    std::string value;
    if (i < s.size() && s[i] == '"') {
      ++i;
      while (i < s.size() && s[i] != '"') {
        if (s[i] == '\\' && i + 1 < s.size()) ++i;
        if (s[i] != '\r' && s[i] != '\n') value += s[i];
        ++i;
      }
      ++i;
    } else {
      while (i < s.size() && s[i] != ';' && !is_lwsp(s[i]))
        value += s[i++];
    }
    if (name == "boundary") {
      a.boundary = value;
    } else if (name.starts_with("boundary*")) {
      a.unusual_boundary = true;
    }
  }
  return a;
}

struct frame {
  std::string marker;  // "--" + boundary
  std::string id;      // part id of the multipart ("" for the message itself)
  std::size_t children = 0;
};

class scanner {
 public:
  explicit scanner(const prescan_limits& l, std::uint64_t size) : limits_(l) { r_.end = size; }

  // Returns false once the scan is complete (truncated).
  bool feed(std::string_view chunk) {
    while (!chunk.empty() && !done_) {
      const char* nl = static_cast<const char*>(std::memchr(chunk.data(), '\n', chunk.size()));
      const std::size_t take = nl ? static_cast<std::size_t>(nl - chunk.data()) + 1 : chunk.size();
      if (line_.size() < kLineCap) {
        line_.append(chunk.substr(0, std::min(take, kLineCap - line_.size())));
      }
      line_len_ += take;
      chunk.remove_prefix(take);
      if (nl) end_line();
    }
    return !done_;
  }

  prescan_result finish() {
    if (!done_) {
      if (line_len_ > 0) end_line();
      if (in_headers_) end_headers();
      for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
        problem("missing closing boundary of " + where(it->id));
    }
    std::sort(r_.patches.begin(), r_.patches.end(),
              [](const byte_patch& a, const byte_patch& b) { return a.offset < b.offset; });
    return std::move(r_);
  }

 private:
  static std::string where(const std::string& id) {
    return id.empty() ? std::string("the message") : "part " + id;
  }

  void problem(std::string p) {
    if (r_.problems.size() < 50) r_.problems.push_back(std::move(p));
  }

  void end_line() {
    std::string_view text = line_;
    if (text.ends_with('\n')) text.remove_suffix(1);
    if (text.ends_with('\r')) text.remove_suffix(1);
    const std::uint64_t start = offset_;
    offset_ += line_len_;
    process(text, start, line_len_);
    line_.clear();
    line_len_ = 0;
  }

  // Which open multipart (index into frames_) a line continues or closes, if any.
  struct boundary_hit {
    std::size_t index;
    bool final;
  };
  std::optional<boundary_hit> match(std::string_view line) const {
    if (!line.starts_with("--")) return std::nullopt;
    auto rest_is_lwsp = [](std::string_view r) {
      return std::all_of(r.begin(), r.end(), [](char c) { return c == ' ' || c == '\t'; });
    };
    for (std::size_t k = frames_.size(); k-- > 0;) {
      const std::string& m = frames_[k].marker;
      if (!line.starts_with(m)) continue;
      std::string_view rest = line.substr(m.size());
      if (rest.starts_with("--") && rest_is_lwsp(rest.substr(2))) return boundary_hit{k, true};
      if (rest_is_lwsp(rest)) return boundary_hit{k, false};
    }
    return std::nullopt;
  }

  void process(std::string_view line, std::uint64_t start, std::uint64_t length) {
    if (auto hit = match(line)) {
      if (in_headers_) {
        end_headers();
      }
      on_boundary(*hit, start);
      return;
    }
    if (!in_headers_) return;
    const bool over = header_bytes_ + length > limits_.max_header_bytes;
    header_bytes_ += length;
    // The message's own header block is checked by the parse (its fields are cut there).
    if (header_bytes_ > limits_.max_header_bytes && !header_noted_ && !entity_id_.empty()) {
      header_noted_ = true;
      problem("header block of " + where(entity_id_) + " is larger than " +
              std::to_string(limits_.max_header_bytes) + " bytes");
    }
    if (line.empty()) {
      end_headers();
      return;
    }
    const bool continuation = line[0] == ' ' || line[0] == '\t';
    // Fields that start past max_header_bytes are hidden from GMime as one blank field
    // (byte_patch::blank_length): it would build an object per field, ~50 times the
    // header's size in memory for a header block of many small fields.
    if (blank_length_ > 0) {
      if (!continuation && line.find(':') == std::string_view::npos) {
        end_headers();  // not a header field: the content starts here
        return;
      }
      blank_length_ += length;
      return;
    }
    if (over && !continuation && line.find(':') != std::string_view::npos) {
      close_field();
      blank_from_ = start;
      blank_length_ = length;
      return;
    }
    if (continuation) {
      if (field_) append_field(start, length);
      return;
    }
    close_field();
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      // Not a header field: the content starts here (GMime reads it as content too).
      end_headers();
      return;
    }
    std::string_view name = line.substr(0, colon);
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
      name.remove_suffix(1);
    if (iequals(name, "content-type")) {
      field_ = content_type_field{start, {}, false};
      append_field(start, length);
    }
  }

  void append_field(std::uint64_t /*start*/, std::uint64_t length) {
    if (field_->text.size() + line_.size() > kFieldCap || line_.size() < length) {
      field_->truncated = true;
      return;
    }
    field_->text += line_;
  }

  void close_field() {
    if (field_) fields_.push_back(std::move(*field_));
    field_.reset();
  }

  void patch(const analysed_type& a, std::uint64_t field_offset) {
    if (a.type.empty()) return;
    std::string bytes = "x" + std::string(a.type.size() - 1, '-');
    r_.patches.push_back(byte_patch{a.token_offset, std::move(bytes)});
    r_.originals.push_back(patched_type{field_offset, a.type + "/" + a.subtype});
  }

  void end_headers() {
    close_field();
    if (blank_length_ > 0) {
      r_.patches.push_back(byte_patch{blank_from_, {}, blank_length_});
      blank_length_ = 0;
    }
    in_headers_ = false;
    std::vector<analysed_type> types;
    types.reserve(fields_.size());
    bool any_message = false, any_multipart = false, any_truncated = false, unusual = false;
    std::optional<std::string> boundary;
    bool conflicting = false;
    for (const auto& f : fields_) {
      types.push_back(analyse(f));
      const auto& a = types.back();
      any_message |= a.type == "message";
      if (a.type == "multipart") {
        any_multipart = true;
        any_truncated |= f.truncated;
        unusual |= a.unusual_boundary;
        if (a.boundary) {
          if (boundary && *boundary != *a.boundary) conflicting = true;
          boundary = a.boundary;
        }
      }
    }
    conflicting |= any_multipart && fields_.size() > 1;
    const std::string id = entity_id_.empty() ? "1" : entity_id_;
    auto patch_all = [&] {
      for (std::size_t k = 0; k < types.size(); ++k) {
        if (types[k].type == "multipart" || types[k].type == "message") {
          patch(types[k], fields_[k].offset);
        }
      }
    };
    if (any_message) {
      patch_all();  // attached messages are kept whole; not a problem
    } else if (any_multipart) {
      if (any_truncated || unusual || conflicting) {
        problem("unusual or conflicting Content-Type of " + where(id) + ": kept as one part");
        patch_all();
      } else if (depth_ >= limits_.max_depth) {
        problem("MIME nesting deeper than " + std::to_string(limits_.max_depth) + " levels at " +
                where(id) + ": kept as one part");
        patch_all();
      } else if (boundary && !boundary->empty()) {
        frames_.push_back(frame{"--" + *boundary, entity_id_, 0});
      }
      // A multipart without a boundary: GMime reads its whole body as the preamble.
    }
    fields_.clear();
  }

  void on_boundary(boundary_hit hit, std::uint64_t line_start) {
    for (std::size_t k = frames_.size(); k-- > hit.index + 1;) {
      problem("missing closing boundary of " + where(frames_[k].id));
    }
    frames_.resize(hit.index + 1);
    if (hit.final) {
      frames_.pop_back();
      return;  // the epilogue follows; its lines are checked against outer boundaries
    }
    frame& f = frames_.back();
    ++f.children;
    if (r_.entities + 1 > limits_.max_parts) {
      problem("more than " + std::to_string(limits_.max_parts) + " MIME parts: parts from byte " +
              std::to_string(line_start) + " on are not listed");
      r_.end = line_start;
      r_.truncated = true;
      done_ = true;
      return;
    }
    begin_entity(
        f.id.empty() ? std::to_string(f.children) : f.id + "." + std::to_string(f.children),
        frames_.size() + 1);
  }

  void begin_entity(std::string id, std::size_t depth) {
    ++r_.entities;
    r_.max_depth = std::max(r_.max_depth, depth);
    entity_id_ = std::move(id);
    depth_ = depth;
    in_headers_ = true;
    header_bytes_ = 0;
    header_noted_ = false;
  }

  const prescan_limits& limits_;
  prescan_result r_;
  std::string line_;
  std::uint64_t line_len_ = 0;
  std::uint64_t offset_ = 0;
  bool done_ = false;

  std::vector<frame> frames_;
  bool in_headers_ = true;
  std::string entity_id_;  // "" for the message itself
  std::size_t depth_ = 1;
  std::uint64_t header_bytes_ = 0;
  bool header_noted_ = false;
  std::uint64_t blank_from_ = 0;    // where the hidden header lines start
  std::uint64_t blank_length_ = 0;  // their length so far (0: none)
  std::optional<content_type_field> field_;
  std::vector<content_type_field> fields_;

 public:
  void start() {
    r_.entities = 1;
    r_.max_depth = 1;
  }
};

}  // namespace

prescan_result prescan(const message_body& body, const prescan_limits& limits,
                       std::error_code& ec) {
  scanner s(limits, body.size());
  s.start();
  ec = body.for_each_chunk([&](std::string_view chunk) { return s.feed(chunk); });
  return s.finish();
}

}  // namespace sluice::mime
