// downgrade.cpp — see downgrade.hpp.
#include "downgrade.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "sluice/text.hpp"

namespace sluice::relay {

namespace {

template <class T>
struct unref {
  void operator()(T* p) const {
    if (p) g_object_unref(p);
  }
};
template <class T>
using gptr = std::unique_ptr<T, unref<T>>;

constexpr int kMaxDepth = 64;
constexpr int kMaxParts = 1000;

struct walk {
  bool changed = false;
  int parts = 0;
  std::string error;
};

bool is_safe_encoding(GMimeContentEncoding e) {
  return e == GMIME_CONTENT_ENCODING_BASE64 || e == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
         e == GMIME_CONTENT_ENCODING_UUENCODE;
}

// The encoding a leaf part needs, or DEFAULT when it is 7-bit as it is.
GMimeContentEncoding needed_encoding(GMimePart* part) {
  if (is_safe_encoding(g_mime_part_get_content_encoding(part)))
    return GMIME_CONTENT_ENCODING_DEFAULT;
  const auto best = g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT);
  if (best == GMIME_CONTENT_ENCODING_7BIT || best == GMIME_CONTENT_ENCODING_DEFAULT) {
    return GMIME_CONTENT_ENCODING_DEFAULT;
  }
  // Text stays readable as quoted-printable (as Postfix converts it); the rest is base64.
  GMimeContentType* type = g_mime_object_get_content_type(GMIME_OBJECT(part));
  const bool text = !type || g_mime_content_type_is_type(type, "text", "*");
  return text ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE : GMIME_CONTENT_ENCODING_BASE64;
}

// A container (multipart, message/rfc822) declared 8bit or binary: 7bit once its parts are.
void relabel_container(GMimeObject* obj) {
  const char* cte = g_mime_object_get_header(obj, "Content-Transfer-Encoding");
  if (!cte) return;
  const std::string v = sluice::to_lower_ascii(sluice::trim(cte));
  if (v == "8bit" || v == "binary")
    g_mime_object_set_header(obj, "Content-Transfer-Encoding", "7bit", nullptr);
}

// Gives every leaf part under `obj` that is not 7-bit a 7-bit transfer encoding; with
// `check_only` (under multipart/signed) it only finds whether one would need it.
void encode_parts(GMimeObject* obj, int depth, bool check_only, walk& w) {
  if (!w.error.empty()) return;
  if (depth > kMaxDepth) {
    w.error = "its MIME structure is nested deeper than " + std::to_string(kMaxDepth) + " levels";
    return;
  }
  if (++w.parts > kMaxParts) {
    w.error = "it has more than " + std::to_string(kMaxParts) + " MIME parts";
    return;
  }
  if (GMIME_IS_MULTIPART(obj)) {
    // RFC 1847: what is signed must reach the verifier byte for byte.
    const bool signed_part = GMIME_IS_MULTIPART_SIGNED(obj);
    auto* mp = GMIME_MULTIPART(obj);
    const int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; ++i)
      encode_parts(g_mime_multipart_get_part(mp, i), depth + 1, check_only || signed_part, w);
    if (signed_part && !check_only && w.error == "signed") {
      w.error = "its multipart/signed content is 8-bit and converting it would break the signature";
    }
    if (!check_only && w.error.empty()) relabel_container(obj);
    return;
  }
  if (GMIME_IS_MESSAGE_PART(obj)) {
    if (auto* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj))) {
      if (auto* body = g_mime_message_get_mime_part(inner))
        encode_parts(body, depth + 1, check_only, w);
    }
    if (!check_only && w.error.empty()) relabel_container(obj);
    return;
  }
  if (!GMIME_IS_PART(obj)) return;
  const auto enc = needed_encoding(GMIME_PART(obj));
  if (enc == GMIME_CONTENT_ENCODING_DEFAULT) return;
  if (check_only) {
    w.error = "signed";
    return;
  }
  g_mime_part_set_content_encoding(GMIME_PART(obj), enc);
  w.changed = true;
}

}  // namespace

bool has_8bit_bytes(std::string_view bytes) {
  return std::any_of(bytes.begin(), bytes.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0x80) != 0 || c == '\0';
  });
}

downgraded downgrade_to_7bit(std::string_view message) {
  static std::once_flag once;
  std::call_once(once, [] { g_mime_init(); });
  downgraded out;
  gptr<GMimeStream> in(g_mime_stream_mem_new_with_buffer(message.data(), message.size()));
  gptr<GMimeParser> parser(g_mime_parser_new_with_stream(in.get()));
  gptr<GMimeMessage> msg(g_mime_parser_construct_message(parser.get(), nullptr));
  if (!msg) {
    out.error = "it cannot be parsed as MIME";
    return out;
  }
  GMimeObject* body = g_mime_message_get_mime_part(msg.get());
  if (!body) {
    out.error = "it has no body to convert";
    return out;
  }
  walk w;
  encode_parts(body, 0, false, w);
  if (!w.error.empty()) {
    out.error = w.error == "signed" ? "its signed content is 8-bit" : w.error;
    return out;
  }
  if (!w.changed) return out;  // 8-bit only in header fields, or declared but 7-bit
  auto* top = GMIME_OBJECT(msg.get());
  if (!g_mime_object_get_header(top, "MIME-Version")) {
    g_mime_object_set_header(top, "MIME-Version", "1.0", nullptr);
  }
  if (!g_mime_object_get_header(top, "Content-Type") && GMIME_IS_PART(body)) {
    // RFC 2045 §5.2: without a Content-Type the text would read as US-ASCII.
    const auto header_end = message.find("\r\n\r\n");
    const auto text =
        header_end == std::string_view::npos ? std::string_view() : message.substr(header_end + 4);
    const bool utf8 = g_utf8_validate(text.data(), static_cast<gssize>(text.size()), nullptr);
    gptr<GMimeContentType> type(g_mime_content_type_parse(
        nullptr, utf8 ? "text/plain; charset=utf-8" : "text/plain; charset=unknown-8bit"));
    g_mime_object_set_content_type(body, type.get());
  }
  GMimeFormatOptions* options = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(options, GMIME_NEWLINE_FORMAT_DOS);
  gptr<GMimeStream> sink(g_mime_stream_mem_new());
  const auto written = g_mime_object_write_to_stream(top, options, sink.get());
  g_mime_format_options_free(options);
  if (written < 0) {
    out.error = "the converted message could not be written";
    return out;
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(sink.get()));
  out.bytes.assign(reinterpret_cast<const char*>(bytes->data), bytes->len);
  out.changed = true;
  return out;
}

}  // namespace sluice::relay
