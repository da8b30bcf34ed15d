// body_stream.cpp — see body_stream.hpp.
#include "body_stream.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <span>

namespace sluice::mime {
namespace {

struct body_stream {
  GMimeStream parent;
  // Owned; deleted in finalize. A plain pointer because GObject instances are C structs.
  std::shared_ptr<stream_source>* source;
};

struct body_stream_class {
  GMimeStreamClass parent_class;
};

GMimeStreamClass* parent_class = nullptr;

stream_source& src(GMimeStream* s) {
  return **reinterpret_cast<body_stream*>(s)->source;
}

std::int64_t upper(GMimeStream* s) {
  const auto end = static_cast<std::int64_t>(src(s).end);
  return s->bound_end == -1 ? end : std::min<std::int64_t>(s->bound_end, end);
}

ssize_t stream_read(GMimeStream* s, char* buf, size_t len) {
  stream_source& source = src(s);
  const std::int64_t limit = upper(s);
  if (s->position >= limit) return 0;
  len = static_cast<size_t>(
      std::min<std::int64_t>(static_cast<std::int64_t>(len), limit - s->position));
  const auto pos = static_cast<std::uint64_t>(s->position);
  std::error_code ec;
  const std::size_t n = source.body->read(pos, std::span<char>(buf, len), ec);
  if (ec) {
    if (!source.error) source.error = ec;
    return -1;
  }
  // Overlay the patches that intersect [pos, pos + n).
  auto it = std::lower_bound(
      source.patches.begin(), source.patches.end(), pos,
      [](const byte_patch& p, std::uint64_t o) { return p.offset + p.size() <= o; });
  for (; it != source.patches.end() && it->offset < pos + n; ++it) {
    const std::uint64_t from = std::max(pos, it->offset);
    const std::uint64_t to = std::min(pos + n, it->offset + it->size());
    if (it->blank_length) {
      for (std::uint64_t k = from; k < to; ++k) {
        char& c = buf[k - pos];
        c = k == it->offset ? 'X' : k == it->offset + 1 ? ':' : c == '\n' ? '\n' : ' ';
      }
      continue;
    }
    std::memcpy(buf + (from - pos), it->bytes.data() + (from - it->offset), to - from);
  }
  s->position += static_cast<std::int64_t>(n);
  return static_cast<ssize_t>(n);
}

ssize_t stream_write(GMimeStream*, const char*, size_t) {
  return -1;
}
int stream_flush(GMimeStream*) {
  return 0;
}
int stream_close(GMimeStream*) {
  return 0;
}
gboolean stream_eos(GMimeStream* s) {
  return s->position >= upper(s);
}

int stream_reset(GMimeStream* s) {
  s->position = s->bound_start;
  return 0;
}

gint64 stream_seek(GMimeStream* s, gint64 offset, GMimeSeekWhence whence) {
  std::int64_t real = 0;
  switch (whence) {
    case GMIME_STREAM_SEEK_SET:
      real = s->bound_start + offset;
      break;
    case GMIME_STREAM_SEEK_CUR:
      real = s->position + offset;
      break;
    case GMIME_STREAM_SEEK_END:
      real = upper(s) + offset;
      break;
  }
  if (real < s->bound_start || real > upper(s)) return -1;
  s->position = real;
  return real;
}

gint64 stream_tell(GMimeStream* s) {
  return s->position;
}
gint64 stream_length(GMimeStream* s) {
  return upper(s) - s->bound_start;
}

GMimeStream* stream_substream(GMimeStream* s, gint64 start, gint64 end);

void body_stream_finalize(GObject* object) {
  auto* self = reinterpret_cast<body_stream*>(object);
  delete self->source;
  self->source = nullptr;
  G_OBJECT_CLASS(parent_class)->finalize(object);
}

void body_stream_class_init(gpointer klass, gpointer) {
  auto* stream_class = static_cast<GMimeStreamClass*>(klass);
  parent_class = static_cast<GMimeStreamClass*>(g_type_class_peek_parent(klass));
  G_OBJECT_CLASS(klass)->finalize = body_stream_finalize;
  stream_class->read = stream_read;
  stream_class->write = stream_write;
  stream_class->flush = stream_flush;
  stream_class->close = stream_close;
  stream_class->eos = stream_eos;
  stream_class->reset = stream_reset;
  stream_class->seek = stream_seek;
  stream_class->tell = stream_tell;
  stream_class->length = stream_length;
  stream_class->substream = stream_substream;
}

void body_stream_init(GTypeInstance* instance, gpointer) {
  reinterpret_cast<body_stream*>(instance)->source = nullptr;
}

GType body_stream_get_type() {
  static gsize type = 0;
  // g_once_init_enter makes the registration safe when several threads parse at once.
  if (g_once_init_enter(&type)) {
    GTypeInfo info{};
    info.class_size = sizeof(body_stream_class);
    info.class_init = body_stream_class_init;
    info.instance_size = sizeof(body_stream);
    info.instance_init = body_stream_init;
    // The name carries this copy's address: a test process links this code statically
    // and also loads the plugin, and GType names are process-wide.
    char name[64];
    std::snprintf(name, sizeof name, "SluiceBodyStream_%p", static_cast<void*>(&type));
    GType t = g_type_register_static(GMIME_TYPE_STREAM, name, &info, GTypeFlags(0));
    g_once_init_leave(&type, t);
  }
  return static_cast<GType>(type);
}

GMimeStream* make(std::shared_ptr<stream_source> source, gint64 start, gint64 end) {
  auto* s = static_cast<body_stream*>(g_object_new(body_stream_get_type(), nullptr));
  s->source = new std::shared_ptr<stream_source>(std::move(source));
  g_mime_stream_construct(&s->parent, start, end);
  return &s->parent;
}

GMimeStream* stream_substream(GMimeStream* s, gint64 start, gint64 end) {
  return make(*reinterpret_cast<body_stream*>(s)->source, start, end);
}

}  // namespace

GMimeStream* new_body_stream(std::shared_ptr<stream_source> source) {
  const auto end = static_cast<gint64>(source->end);
  return make(std::move(source), 0, end);
}

}  // namespace sluice::mime
