// downgrade.cpp — see downgrade.hpp.
#include "downgrade.hpp"

#include <gmime/gmime.h>

#include <algorithm>
#include <memory>
#include <mutex>

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

// Gives every leaf part of `obj` that is not 7-bit a 7-bit transfer encoding; `changed`
// becomes true when one was given.
void encode_parts(GMimeObject* obj, bool& changed) {
  if (GMIME_IS_MULTIPART(obj)) {
    auto* mp = GMIME_MULTIPART(obj);
    const int n = g_mime_multipart_get_count(mp);
    for (int i = 0; i < n; ++i)
      encode_parts(g_mime_multipart_get_part(mp, i), changed);
    return;
  }
  if (GMIME_IS_MESSAGE_PART(obj)) {
    if (auto* inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj))) {
      if (auto* body = g_mime_message_get_mime_part(inner)) encode_parts(body, changed);
    }
    return;
  }
  if (!GMIME_IS_PART(obj)) return;
  auto* part = GMIME_PART(obj);
  const auto before = g_mime_part_get_content_encoding(part);
  switch (before) {
    case GMIME_CONTENT_ENCODING_BASE64:
    case GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE:
    case GMIME_CONTENT_ENCODING_UUENCODE:
      return;  // already 7-bit
    default:
      break;
  }
  const auto best = g_mime_part_get_best_content_encoding(part, GMIME_ENCODING_CONSTRAINT_7BIT);
  if (best == GMIME_CONTENT_ENCODING_7BIT || best == GMIME_CONTENT_ENCODING_DEFAULT) return;
  // Text stays readable as quoted-printable (as Postfix converts it); the rest is base64.
  GMimeContentType* type = g_mime_object_get_content_type(obj);
  const bool text = !type || g_mime_content_type_is_type(type, "text", "*");
  g_mime_part_set_content_encoding(
      part, text ? GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE : GMIME_CONTENT_ENCODING_BASE64);
  changed = true;
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
    out.error = "the message cannot be parsed as MIME";
    return out;
  }
  GMimeObject* body = g_mime_message_get_mime_part(msg.get());
  if (!body) {
    out.error = "the message has no body to convert";
    return out;
  }
  bool changed = false;
  encode_parts(body, changed);
  if (changed && !g_mime_object_get_header(GMIME_OBJECT(msg.get()), "MIME-Version")) {
    g_mime_object_set_header(GMIME_OBJECT(msg.get()), "MIME-Version", "1.0", nullptr);
  }
  GMimeFormatOptions* options = g_mime_format_options_new();
  g_mime_format_options_set_newline_format(options, GMIME_NEWLINE_FORMAT_DOS);
  gptr<GMimeStream> sink(g_mime_stream_mem_new());
  const auto written = g_mime_object_write_to_stream(GMIME_OBJECT(msg.get()), options, sink.get());
  g_mime_format_options_free(options);
  if (written < 0) {
    out.error = "the converted message could not be written";
    return out;
  }
  GByteArray* bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(sink.get()));
  out.bytes.assign(reinterpret_cast<const char*>(bytes->data), bytes->len);
  return out;
}

}  // namespace sluice::relay
