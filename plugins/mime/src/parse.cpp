// parse.cpp — see parse.hpp.
#include "parse.hpp"

#include <gmime/gmime.h>
#include <libxml/parser.h>
#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "body_stream.hpp"
#include "sluice/text.hpp"
#include "text.hpp"
#include "unsubscribe.hpp"

namespace sluice::mime {
namespace {

constexpr std::size_t kMaxProblems = 100;
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr std::size_t kMessageHeadBytes = 64 * 1024;  // of an attached message, for its name

// GObject references released at scope exit.
template <class T>
struct gref {
  T* p = nullptr;
  gref() = default;
  explicit gref(T* q) : p(q) {}
  ~gref() {
    if (p) g_object_unref(p);
  }
  gref(const gref&) = delete;
  gref& operator=(const gref&) = delete;
  T* get() const { return p; }
};

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string clean(const char* s) {
  std::string out = s ? s : "";
  make_valid_utf8(out);
  return out;
}

// For messages naming attacker-controlled text: valid UTF-8, no controls, bounded.
std::string shown(std::string_view s, std::size_t max = 60) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out += static_cast<unsigned char>(c) < 0x20 ? ' ' : c;
  }
  make_valid_utf8(out);
  if (s.size() > max) out += "...";
  return out;
}

class problems {
 public:
  void add(std::string p) {
    if (seen_.contains(p)) return;
    if (list_.size() >= kMaxProblems) {
      if (!capped_) list_.push_back("more problems were found and not listed");
      capped_ = true;
      return;
    }
    seen_.insert(p);
    list_.push_back(std::move(p));
  }
  std::vector<std::string> take() { return std::move(list_); }

 private:
  std::vector<std::string> list_;
  std::set<std::string> seen_;
  bool capped_ = false;
};

void on_warning(gint64 offset, GMimeParserWarning code, const gchar* item, gpointer data) {
  auto& out = *static_cast<problems*>(data);
  const std::string at = offset >= 0 ? " at byte " + std::to_string(offset) : std::string();
  const std::string what = item ? " \"" + shown(item) + "\"" : std::string();
  switch (code) {
    case GMIME_WARN_INVALID_CONTENT_TYPE:
      out.add("invalid Content-Type" + what + at + ", read as application/octet-stream");
      break;
    case GMIME_WARN_INVALID_RFC2047_HEADER_VALUE:
      out.add("invalid RFC 2047 encoded word in a header" + what + at);
      break;
    case GMIME_WARN_INVALID_PARAMETER:
      out.add("invalid header parameter" + what + at);
      break;
    case GMIME_WARN_MALFORMED_MULTIPART:
      out.add("multipart without parts" + at);
      break;
    case GMIME_WARN_MALFORMED_MESSAGE:
      out.add("malformed message" + at);
      break;
    case GMIME_WARN_INVALID_ADDRESS_LIST:
      out.add("invalid address list" + what);
      break;
    case GMIME_CRIT_INVALID_HEADER_NAME:
      out.add("invalid header field name" + what + at);
      break;
    case GMIME_CRIT_CONFLICTING_HEADER:
      out.add("conflicting header" + what + at);
      break;
    case GMIME_CRIT_CONFLICTING_PARAMETER:
      out.add("conflicting header parameter" + what + at);
      break;
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
      out.add("multipart without a boundary parameter" + at + ": its body is kept as one part");
      break;
    case GMIME_CRIT_NESTING_OVERFLOW:
      out.add("MIME nesting too deep" + at);
      break;
    case GMIME_WARN_PART_WITHOUT_CONTENT:
      out.add("MIME part without content" + at);
      break;
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
      out.add("MIME part without headers or content" + at);
      break;
    default:
      // Duplicated headers or parameters and unencoded 8-bit headers (RFC 6532 allows
      // UTF-8) are not problems worth listing; a truncated multipart is reported by the
      // prescan, which names the part, and a message without a body is legal.
      break;
  }
}

GMimeParserOptions* new_options(const parse_limits& limits, problems* sink, const char** charsets) {
  GMimeParserOptions* o = g_mime_parser_options_new();
  g_mime_parser_options_set_address_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_parameter_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_rfc2047_compliance_mode(o, GMIME_RFC_COMPLIANCE_LOOSE);
  g_mime_parser_options_set_allow_addresses_without_domain(o, TRUE);
  g_mime_parser_options_set_fallback_charsets(o, charsets);
  if (sink) g_mime_parser_options_set_warning_callback(o, on_warning, sink);
  return o;
}

struct options_holder {
  GMimeParserOptions* p;
  ~options_holder() { g_mime_parser_options_free(p); }
};

void flatten(InternetAddressList* list, std::vector<mail_address>& out, int depth = 0) {
  if (!list) return;
  const int n = internet_address_list_length(list);
  for (int i = 0; i < n && out.size() < 10000; ++i) {
    InternetAddress* a = internet_address_list_get_address(list, i);
    if (INTERNET_ADDRESS_IS_GROUP(a)) {
      if (depth < 2) {
        flatten(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(a)), out, depth + 1);
      }
    } else if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
      out.push_back(
          mail_address{clean(internet_address_get_name(a)),
                       clean(internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a)))});
    }
  }
}

// The address of a one-address field (Return-Path, Sender), without brackets.
std::string single_address(GMimeParserOptions* po, GMimeObject* obj, const char* name) {
  const char* value = g_mime_object_get_header(obj, name);
  if (!value) return {};
  gref<InternetAddressList> list(internet_address_list_parse(po, value));
  std::vector<mail_address> v;
  flatten(list.get(), v);
  if (!v.empty()) return v.front().address;
  // "<>" (the null reverse-path) or something GMime could not read.
  std::string s = clean(value);
  std::string out;
  for (char c : s) {
    if (c != '<' && c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n') out += c;
  }
  return out;
}

std::string unfolded(const char* raw) {
  std::string out;
  if (!raw) return out;
  for (const char* p = raw; *p; ++p) {
    if (*p == '\r' || *p == '\n') continue;
    out += *p;
  }
  make_valid_utf8(out);
  return out;
}

// GMime 3.2 merges adjacent encoded words of one charset before decoding them, which
// for base64 words with padding ("...bG4=?= =?utf-8?B?4pyT...") loses every word after
// the first: Python's email package and many mailers write exactly that. Such words are
// rewritten here, in the copy of the header block used for header fields, into Q words
// with the same bytes (only letters, digits and =XX, valid in any RFC 2047 position).
std::string requote_padded_base64_words(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    const std::size_t start = in.find("=?", i);
    if (start == std::string_view::npos) break;
    out.append(in.substr(i, start - i));
    // =?charset?B?data?=
    const std::size_t q1 = in.find('?', start + 2);
    const bool b_word = q1 != std::string_view::npos && q1 + 2 < in.size() &&
                        (in[q1 + 1] == 'B' || in[q1 + 1] == 'b') && in[q1 + 2] == '?';
    const std::size_t end = b_word ? in.find("?=", q1 + 3) : std::string_view::npos;
    const std::string_view charset = b_word ? in.substr(start + 2, q1 - start - 2) : "";
    const std::string_view data =
        end != std::string_view::npos ? in.substr(q1 + 3, end - q1 - 3) : std::string_view();
    if (end == std::string_view::npos || data.find('=') == std::string_view::npos ||
        charset.find_first_of(" \t\r\n") != std::string_view::npos ||
        data.find_first_of(" \t\r\n") != std::string_view::npos) {
      out.append("=?");
      i = start + 2;
      continue;
    }
    gsize n = 0;
    std::string encoded(data);
    guchar* bytes = g_base64_decode(encoded.c_str(), &n);
    out += "=?";
    out += charset;
    out += "?Q?";
    for (gsize k = 0; k < n; ++k) {
      const unsigned char c = bytes[k];
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
        out += static_cast<char>(c);
      } else {
        out += '=';
        append_hex(out, c);
      }
    }
    g_free(bytes);
    out += "?=";
    i = end + 2;
  }
  if (i < in.size()) out.append(in.substr(i));
  return out;
}

// The header block to read header-derived fields from: at most `limit` bytes of the raw
// one (cut before the first field that does not fit), with the edits applied.
std::string edited_headers(const std::shared_ptr<const message_body>& raw,
                           const std::vector<header_edit>& edits, std::size_t limit,
                           problems& out) {
  std::string head = raw->header_block(limit);
  const bool terminated =
      head.ends_with("\n\n") || head.ends_with("\r\n\r\n") || head == "\n" || head == "\r\n";
  if (!terminated && head.size() >= limit && raw->size() > head.size()) {
    out.add("the header block is larger than " + std::to_string(limit) +
            " bytes: fields after the first " + std::to_string(limit) + " bytes are ignored");
    // Cut before the last field that starts inside the limit (it may be incomplete).
    std::size_t cut = head.size();
    for (std::size_t i = head.size(); i-- > 1;) {
      if (head[i - 1] == '\n' && head[i] != ' ' && head[i] != '\t') {
        cut = i;
        break;
      }
    }
    head.resize(cut);
  }
  message tmp;
  tmp.raw = message_body::from_string(std::move(head));
  tmp.edits = edits;
  std::string text = requote_padded_base64_words(tmp.output_headers());
  if (!(text.ends_with("\n\n") || text.ends_with("\r\n\r\n"))) {
    if (!text.empty() && !text.ends_with('\n')) text += "\r\n";
    text += "\r\n";
  }
  return text;
}

void header_fields(const std::string& text, const parse_limits& limits, const char** charsets,
                   parsed_message& v, problems& out) {
  options_holder po{new_options(limits, nullptr, charsets)};
  gref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(text.data(), text.size()));
  gref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  gref<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), po.p));
  if (!msg.get()) {
    out.add("the header block could not be parsed");
    return;
  }
  auto* obj = GMIME_OBJECT(msg.get());
  std::vector<mail_address> from;
  flatten(g_mime_message_get_from(msg.get()), from);
  const char* raw_from = g_mime_object_get_header(obj, "From");
  v.from = from_address(from, raw_from ? clean(raw_from) : std::string());
  flatten(g_mime_message_get_to(msg.get()), v.to);
  flatten(g_mime_message_get_cc(msg.get()), v.cc);
  flatten(g_mime_message_get_bcc(msg.get()), v.bcc);
  flatten(g_mime_message_get_reply_to(msg.get()), v.reply_to);
  v.return_path = single_address(po.p, obj, "Return-Path");
  v.sender = single_address(po.p, obj, "Sender");
  v.subject = clean(g_mime_message_get_subject(msg.get()));
  if (const char* id = g_mime_message_get_message_id(msg.get())) {
    v.message_id = clean(id);
  } else if (const char* raw_id = g_mime_object_get_header(obj, "Message-ID")) {
    std::string s = unfolded(raw_id);
    std::string id2;
    for (char c : s) {
      if (c != '<' && c != '>' && c != ' ' && c != '\t') id2 += c;
    }
    v.message_id = id2;
  }
  if (GDateTime* d = g_mime_message_get_date(msg.get())) {
    v.date_ms = static_cast<std::int64_t>(g_date_time_to_unix(d)) * 1000 +
                g_date_time_get_microsecond(d) / 1000;
    v.date_offset_min = static_cast<int>(g_date_time_get_utc_offset(d) / G_TIME_SPAN_MINUTE);
  } else if (const char* raw_date = g_mime_object_get_header(obj, "Date")) {
    out.add("unreadable Date header \"" + shown(unfolded(raw_date)) + "\"");
  }
  GMimeHeaderList* headers = g_mime_object_get_header_list(obj);
  auto raw_value = [&](const char* name) -> std::string {
    GMimeHeader* h = g_mime_header_list_get_header(headers, name);
    return h ? unfolded(g_mime_header_get_raw_value(h)) : std::string();
  };
  v.list_unsubscribe =
      check_list_unsubscribe(raw_value("List-Unsubscribe"), raw_value("List-Unsubscribe-Post"));
}

// Digests and size of decoded content.
class digests {
 public:
  digests() {
    for (auto*& c : ctx_)
      c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx_[0], EVP_md5(), nullptr);
    EVP_DigestInit_ex(ctx_[1], EVP_sha1(), nullptr);
    EVP_DigestInit_ex(ctx_[2], EVP_sha256(), nullptr);
  }
  ~digests() {
    for (auto* c : ctx_)
      EVP_MD_CTX_free(c);
  }
  digests(const digests&) = delete;
  digests& operator=(const digests&) = delete;
  void update(const char* p, std::size_t n) {
    for (auto* c : ctx_)
      EVP_DigestUpdate(c, p, n);
  }
  void finish(mime_part& part) {
    part.md5 = hex(ctx_[0]);
    part.sha1 = hex(ctx_[1]);
    part.sha256 = hex(ctx_[2]);
  }

 private:
  static std::string hex(EVP_MD_CTX* c) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(c, md, &n);
    return to_hex(md, n);
  }
  EVP_MD_CTX* ctx_[3];
};

// Checks encoded content while it is decoded: characters outside the base64 alphabet,
// a group cut short; quoted-printable "=" not followed by two hex digits or a line end.
class encoding_check {
 public:
  explicit encoding_check(GMimeContentEncoding e) : enc_(e) {}
  void feed(const char* p, std::size_t n) {
    if (enc_ == GMIME_CONTENT_ENCODING_BASE64) {
      for (std::size_t i = 0; i < n; ++i) {
        const char c = p[i];
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '+' || c == '/') {
          if (padded_) after_pad_ = true;
          ++sextets_;
        } else if (c == '=') {
          padded_ = true;
          ++pads_;
        } else if (c != '\r' && c != '\n' && c != ' ' && c != '\t') {
          ++invalid_;
        }
      }
    } else if (enc_ == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) {
      for (std::size_t i = 0; i < n; ++i) {
        const char c = p[i];
        const bool hexd =
            (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
        switch (qp_) {
          case 0:
            if (c == '=') qp_ = 1;
            break;
          case 1:  // after '='
            if (hexd) {
              qp_ = 2;
            } else if (c == '\r' || c == '\n') {
              qp_ = 0;
            } else if (c == ' ' || c == '\t') {
              qp_ = 3;
            } else {
              ++invalid_;
              qp_ = c == '=' ? 1 : 0;
            }
            break;
          case 2:  // after '=' and one hex digit
            if (!hexd) ++invalid_;
            qp_ = (!hexd && c == '=') ? 1 : 0;
            break;
          case 3:  // soft break with trailing white space
            if (c == '\r' || c == '\n') {
              qp_ = 0;
            } else if (c != ' ' && c != '\t') {
              ++invalid_;
              qp_ = c == '=' ? 1 : 0;
            }
            break;
        }
      }
    }
  }
  void report(const std::string& id, problems& out) const {
    if (enc_ == GMIME_CONTENT_ENCODING_BASE64) {
      if (invalid_) {
        out.add("invalid base64 in part " + id + ": " + std::to_string(invalid_) +
                " characters outside the alphabet were skipped");
      }
      if (sextets_ % 4 == 1 || (pads_ == 0 && sextets_ % 4 != 0)) {
        out.add("base64 in part " + id + " ends in the middle of a group");
      }
      if (after_pad_) out.add("base64 in part " + id + " continues after its padding");
    } else if (enc_ == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE) {
      if (invalid_ || qp_ == 1 || qp_ == 2) {
        out.add("invalid quoted-printable escapes in part " + id);
      }
    }
  }

 private:
  GMimeContentEncoding enc_;
  std::uint64_t sextets_ = 0, pads_ = 0, invalid_ = 0;
  bool padded_ = false, after_pad_ = false;
  int qp_ = 0;
};

struct leaf {
  GMimePart* part = nullptr;  // owned by the tree
  mime_part info;
  std::string alternative;  // id of the nearest multipart/alternative ancestor, or none
  bool in_alternative = false;
};

// Decodes a part's content from the stream: digests and size always, and up to
// `keep` decoded bytes into `bytes`. A read error shows in the stream source's error.
void decode(leaf& l, bool hash, std::size_t keep, std::string* bytes, problems& out) {
  GMimeDataWrapper* w = g_mime_part_get_content(l.part);
  if (!w) return;
  GMimeStream* s = g_mime_data_wrapper_get_stream(w);
  if (!s) return;
  const GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(w);
  const bool coded = enc == GMIME_CONTENT_ENCODING_BASE64 ||
                     enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
                     enc == GMIME_CONTENT_ENCODING_UUENCODE;
  GMimeEncoding state;
  if (coded) g_mime_encoding_init_decode(&state, enc);
  encoding_check check(enc);
  digests d;
  std::uint64_t size = 0;
  std::vector<char> in(kReadChunk);
  std::vector<char> decoded;
  auto emit = [&](const char* p, std::size_t n) {
    size += n;
    if (hash) d.update(p, n);
    if (bytes && bytes->size() < keep) bytes->append(p, std::min(n, keep - bytes->size()));
  };
  g_mime_stream_reset(s);
  for (;;) {
    const ssize_t n = g_mime_stream_read(s, in.data(), in.size());
    if (n <= 0) break;
    const auto len = static_cast<std::size_t>(n);
    check.feed(in.data(), len);
    if (coded) {
      decoded.resize(g_mime_encoding_outlen(&state, len));
      const std::size_t m = g_mime_encoding_step(&state, in.data(), len, decoded.data());
      emit(decoded.data(), m);
    } else {
      emit(in.data(), len);
    }
  }
  if (coded) {
    decoded.resize(g_mime_encoding_outlen(&state, 0) + 16);
    const std::size_t m = g_mime_encoding_flush(&state, nullptr, 0, decoded.data());
    emit(decoded.data(), m);
  }
  check.report(l.info.part_id, out);
  l.info.size = size;
  if (hash) d.finish(l.info);
}

std::string cid_of(GMimeObject* o) {
  return clean(g_mime_object_get_content_id(o));
}

// A file name for an attached message without one: its Subject, made safe, + ".eml".
std::string message_file_name(const std::string& head, const char** charsets,
                              const parse_limits& limits) {
  std::string subject;
  {
    options_holder po{new_options(limits, nullptr, charsets)};
    std::string text = requote_padded_base64_words(head);
    text += "\r\n\r\n";
    gref<GMimeStream> stream(g_mime_stream_mem_new_with_buffer(text.data(), text.size()));
    gref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
    gref<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), po.p));
    if (msg.get()) subject = clean(g_mime_message_get_subject(msg.get()));
  }
  std::string name;
  for (char c : subject) {
    if (static_cast<unsigned char>(c) < 0x20 || c == '/' || c == '\\' || c == ':' || c == '"' ||
        c == '*' || c == '?' || c == '<' || c == '>' || c == '|') {
      name += '_';
    } else {
      name += c;
    }
  }
  truncate_utf8(name, 100);
  while (!name.empty() && (name.back() == ' ' || name.back() == '.'))
    name.pop_back();
  return (name.empty() ? std::string("message") : name) + ".eml";
}

}  // namespace

parse_result parse(const std::shared_ptr<const message_body>& raw,
                   const std::vector<header_edit>& edits, const parse_limits& limits) {
  init_libraries();
  parse_result result;
  parsed_message& v = result.view;
  problems out;
  if (!raw) {
    out.add("the message has no content");
    v.problems = out.take();
    return result;
  }
  const char* charsets[] = {"utf-8", limits.fallback_charset.c_str(), nullptr};

  // 1. The structure plan: a bounded scan of the raw bytes.
  std::error_code ec;
  prescan_result plan = prescan(*raw, limits.structure, ec);
  if (ec) {
    result.io_error = ec;
    return result;
  }

  // 2. Header-derived fields, from the header block as it would leave.
  header_fields(edited_headers(raw, edits, limits.structure.max_header_bytes, out), limits,
                charsets, v, out);
  for (auto& p : plan.problems)
    out.add(std::move(p));

  // 3. The MIME tree, from the raw bytes (through the plan's patches).
  auto source = std::make_shared<stream_source>();
  source->body = raw;
  source->patches = std::move(plan.patches);
  source->end = plan.end;
  std::map<std::uint64_t, std::string> originals;
  for (auto& o : plan.originals)
    originals[o.field_offset] = o.mime_type;

  options_holder po{new_options(limits, &out, charsets)};
  gref<GMimeStream> stream(new_body_stream(source));
  gref<GMimeParser> parser(g_mime_parser_new_with_stream(stream.get()));
  g_mime_parser_set_format(parser.get(), GMIME_FORMAT_MESSAGE);
  g_mime_parser_set_persist_stream(parser.get(), TRUE);
  gref<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), po.p));
  if (source->error) {
    result.io_error = source->error;
    return result;
  }

  std::vector<leaf> leaves;
  if (msg.get() && g_mime_message_get_mime_part(msg.get())) {
    struct item {
      GMimeObject* obj;
      std::string id;
      std::size_t depth;
      std::string alternative;
      bool in_alternative;
    };
    // Iterative, so that no depth of tree can exhaust the stack here.
    std::vector<item> stack;
    stack.push_back({g_mime_message_get_mime_part(msg.get()), "", 1, "", false});
    while (!stack.empty() && leaves.size() < limits.structure.max_parts) {
      item it = std::move(stack.back());
      stack.pop_back();
      if (GMIME_IS_MULTIPART(it.obj)) {
        auto* mp = GMIME_MULTIPART(it.obj);
        if (it.depth >= limits.structure.max_depth) {
          out.add("MIME nesting deeper than " + std::to_string(limits.structure.max_depth) +
                  " levels at " + (it.id.empty() ? std::string("the message") : "part " + it.id) +
                  ": its parts are not listed");
          continue;
        }
        GMimeContentType* ct = g_mime_object_get_content_type(it.obj);
        const bool alt = ct && g_mime_content_type_is_type(ct, "multipart", "alternative");
        const int n = g_mime_multipart_get_count(mp);
        for (int i = n; i-- > 0;) {
          std::string id =
              it.id.empty() ? std::to_string(i + 1) : it.id + "." + std::to_string(i + 1);
          stack.push_back({g_mime_multipart_get_part(mp, i), std::move(id), it.depth + 1,
                           alt ? it.id : it.alternative, alt || it.in_alternative});
        }
        continue;
      }
      if (!GMIME_IS_PART(it.obj)) {
        // A message part the scan did not keep whole (it always should): listed without
        // content, as nothing of it can be served by offset.
        mime_part p;
        p.part_id = it.id.empty() ? "1" : it.id;
        p.content_type = "message/rfc822";
        p.file_name = "message.eml";
        v.attachments.push_back(std::move(p));
        continue;
      }
      leaf l;
      l.part = GMIME_PART(it.obj);
      l.alternative = it.alternative;
      l.in_alternative = it.in_alternative;
      mime_part& p = l.info;
      p.part_id = it.id.empty() ? "1" : it.id;
      GMimeContentType* ct = g_mime_object_get_content_type(it.obj);
      if (ct) {
        char* t = g_mime_content_type_get_mime_type(ct);
        // GMime keeps the bytes of a malformed type as they were (found by fuzz_mime).
        p.content_type = lower(clean(t ? t : "text/plain"));
        g_free(t);
      } else {
        p.content_type = "text/plain";
      }
      // A type the scan patched: report what the message said.
      GMimeHeaderList* hl = g_mime_object_get_header_list(it.obj);
      const int nh = g_mime_header_list_get_count(hl);
      for (int i = 0; i < nh; ++i) {
        GMimeHeader* h = g_mime_header_list_get_header_at(hl, i);
        if (g_ascii_strcasecmp(g_mime_header_get_name(h), "Content-Type") != 0) continue;
        if (auto f = originals.find(static_cast<std::uint64_t>(g_mime_header_get_offset(h)));
            f != originals.end()) {
          p.content_type = f->second;
          make_valid_utf8(p.content_type);
        }
      }
      p.charset = lower(clean(g_mime_object_get_content_type_parameter(it.obj, "charset")));
      p.file_name = clean(g_mime_part_get_filename(l.part));
      p.content_id = cid_of(it.obj);
      p.disposition = lower(clean(g_mime_object_get_disposition(it.obj)));
      const GMimeContentEncoding enc = g_mime_part_get_content_encoding(l.part);
      if (enc != GMIME_CONTENT_ENCODING_DEFAULT) {
        p.transfer_encoding = lower(g_mime_content_encoding_to_string(enc));
      }
      if (GMimeDataWrapper* w = g_mime_part_get_content(l.part)) {
        if (GMimeStream* s = g_mime_data_wrapper_get_stream(w)) {
          const std::int64_t end =
              s->bound_end == -1 ? static_cast<std::int64_t>(source->end) : s->bound_end;
          p.offset = static_cast<std::uint64_t>(s->bound_start);
          p.length = static_cast<std::uint64_t>(std::max<std::int64_t>(0, end - s->bound_start));
        }
      }
      leaves.push_back(std::move(l));
    }
  } else {
    out.add("the message could not be parsed as MIME");
  }

  // 4. Bodies: the first text/plain and text/html that are not attachments; inside one
  // multipart/alternative the last of each kind (RFC 2046 §5.1.4: the preferred one).
  std::optional<std::size_t> text_at, html_at;
  auto body_candidate = [](const leaf& l) {
    return (l.info.content_type == "text/plain" || l.info.content_type == "text/html") &&
           l.info.disposition != "attachment" && l.info.file_name.empty();
  };
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (!body_candidate(leaves[i])) continue;
    auto& slot = leaves[i].info.content_type == "text/plain" ? text_at : html_at;
    if (!slot) {
      slot = i;
    } else if (leaves[i].in_alternative && leaves[*slot].in_alternative &&
               leaves[i].alternative == leaves[*slot].alternative) {
      slot = i;
    }
  }
  auto read_body = [&](std::size_t i, std::string& into, std::string& id) {
    leaf& l = leaves[i];
    std::string bytes;
    decode(l, false, limits.max_text_bytes, &bytes, out);
    if (l.info.size > limits.max_text_bytes) {
      out.add("the body in part " + l.info.part_id + " is larger than " +
              std::to_string(limits.max_text_bytes) + " bytes: only the first " +
              std::to_string(limits.max_text_bytes) + " bytes are kept");
    }
    charset_outcome how;
    into = to_utf8(bytes, l.info.charset, limits.fallback_charset, how);
    truncate_utf8(into, limits.max_text_bytes);
    switch (how) {
      case charset_outcome::ok:
        break;
      case charset_outcome::no_charset_fallback:
        out.add("8-bit text without a charset in part " + l.info.part_id + ", read as " +
                limits.fallback_charset);
        break;
      case charset_outcome::unknown_charset_utf8:
        out.add("unknown charset " + shown(l.info.charset) + " in part " + l.info.part_id +
                ", read as UTF-8");
        break;
      case charset_outcome::unknown_charset_fallback:
        out.add("unknown charset " + shown(l.info.charset) + " in part " + l.info.part_id +
                ", read as " + limits.fallback_charset);
        break;
      case charset_outcome::invalid_bytes:
        out.add("bytes invalid in charset " +
                (l.info.charset.empty() ? std::string("UTF-8") : shown(l.info.charset)) +
                " in part " + l.info.part_id + " were replaced by U+FFFD");
        break;
    }
    id = l.info.part_id;
  };
  if (text_at) read_body(*text_at, v.text, v.text_part_id);
  if (html_at) read_body(*html_at, v.html, v.html_part_id);

  // 5. Every other part: inline (Content-ID or inline disposition) or attachment.
  const std::string html_lower = lower(v.html);
  for (std::size_t i = 0; i < leaves.size(); ++i) {
    if (i == text_at || i == html_at) continue;
    leaf& l = leaves[i];
    const bool message = l.info.content_type.starts_with("message/");
    std::string head;
    decode(l, true, message ? kMessageHeadBytes : 0, message ? &head : nullptr, out);
    if (message && l.info.file_name.empty()) {
      l.info.file_name = message_file_name(head, charsets, limits);
    }
    bool is_inline = false;
    if (!message) {
      if (l.info.disposition == "inline") {
        is_inline = true;
      } else if (!l.info.content_id.empty()) {
        // An attachment disposition loses to a cid: reference from the HTML: the part
        // is shown in the message, not offered as a download (Mailpit #589).
        is_inline = l.info.disposition != "attachment" ||
                    html_lower.find("cid:" + lower(l.info.content_id)) != std::string::npos;
      }
    }
    (is_inline ? v.inline_parts : v.attachments).push_back(std::move(l.info));
  }
  if (source->error) {
    result.io_error = source->error;
    return result;
  }

  // 6. Text for the index and the snippet.
  // As Mailpit: the search text is the HTML's text with its links (html2text.Strip with
  // links), else the text; the snippet prefers the HTML's text without links
  // (tools.CreateSnippet); an HTML-only message reads as its HTML's text with the links
  // (enmime's down-conversion).
  html_texts html_text = v.html.empty() ? html_texts{} : html_to_texts(v.html);
  v.search_text = html_text.with_links.empty() ? v.text : html_text.with_links;
  v.snippet = make_snippet(v.html.empty() ? v.text : html_text.plain);
  if (v.text.empty()) v.text = std::move(html_text.with_links);
  v.problems = out.take();
  return result;
}

}  // namespace sluice::mime
