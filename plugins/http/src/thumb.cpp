// thumb.cpp — see thumb.hpp.
#include "thumb.hpp"

#include <algorithm>
#include <cstring>
#include <memory>

#include <gdk-pixbuf/gdk-pixbuf.h>

namespace sluice::http {
namespace {

struct gobject_deleter {
  void operator()(void* p) const {
    if (p) g_object_unref(p);
  }
};
template <class T>
using gptr = std::unique_ptr<T, gobject_deleter>;

// The loader for data's signature, or nullptr when it is not a format we decode.
const char* loader_type(std::string_view d) {
  auto starts = [&](std::string_view sig) { return d.substr(0, sig.size()) == sig; };
  if (starts("\x89PNG\r\n\x1a\n")) return "png";
  if (starts("\xff\xd8\xff")) return "jpeg";
  if (starts("GIF87a") || starts("GIF89a")) return "gif";
  if (starts("BM") && d.size() > 26) return "bmp";
  return nullptr;
}

// What the size-prepared callback decided.
struct size_check {
  int width = 0, height = 0;  // declared size
  bool refused = false;
};

// Runs before the loader allocates pixels. Asking for 0×0 makes every gdk-pixbuf loader
// abort with an error instead of allocating ("Transformed … has zero width or height").
void on_size_prepared(GdkPixbufLoader* loader, int width, int height, gpointer user) {
  auto* check = static_cast<size_check*>(user);
  check->width = width;
  check->height = height;
  if (width <= 0 || height <= 0 || width > kMaxThumbSide || height > kMaxThumbSide ||
      static_cast<std::uint64_t>(width) * static_cast<std::uint64_t>(height) > kMaxThumbPixels) {
    check->refused = true;
    gdk_pixbuf_loader_set_size(loader, 0, 0);
    return;
  }
  // Decode straight to the fitted size when the image is larger than the thumbnail.
  if (width > kThumbWidth || height > kThumbHeight) {
    const double scale = std::min(static_cast<double>(kThumbWidth) / width,
                                  static_cast<double>(kThumbHeight) / height);
    gdk_pixbuf_loader_set_size(loader, std::max(1, static_cast<int>(width * scale + 0.5)),
                               std::max(1, static_cast<int>(height * scale + 0.5)));
  }
}

std::string encode_jpeg(GdkPixbuf* pb, std::string& error) {
  gchar* buf = nullptr;
  gsize size = 0;
  GError* err = nullptr;
  if (!gdk_pixbuf_save_to_buffer(pb, &buf, &size, "jpeg", &err, "quality", "85", nullptr)) {
    error = err ? err->message : "JPEG encoding failed";
    if (err) g_error_free(err);
    return {};
  }
  std::string out(buf, size);
  g_free(buf);
  return out;
}

gptr<GdkPixbuf> white_canvas() {
  gptr<GdkPixbuf> canvas(gdk_pixbuf_new(GDK_COLORSPACE_RGB, FALSE, 8, kThumbWidth, kThumbHeight));
  if (canvas) gdk_pixbuf_fill(canvas.get(), 0xffffffffu);
  return canvas;
}

thumb_result blank(thumb_status s, std::string reason) {
  thumb_result r;
  r.status = s;
  r.jpeg = blank_thumbnail();
  r.reason = std::move(reason);
  return r;
}

}  // namespace

std::string_view to_string(thumb_status s) {
  switch (s) {
    case thumb_status::ok:
      return "ok";
    case thumb_status::not_image:
      return "not-image";
    case thumb_status::refused:
      return "refused";
    case thumb_status::failed:
      return "failed";
  }
  return "failed";
}

const std::string& blank_thumbnail() {
  static const std::string jpeg = [] {
    auto canvas = white_canvas();
    std::string error;
    return canvas ? encode_jpeg(canvas.get(), error) : std::string();
  }();
  return jpeg;
}

thumb_result make_thumbnail(std::string_view data) {
  const char* type = loader_type(data);
  if (!type) return blank(thumb_status::not_image, "not a PNG, JPEG, GIF or BMP image");
  if (data.size() > kMaxThumbInput) {
    return blank(thumb_status::refused,
                 "image data larger than " + std::to_string(kMaxThumbInput) + " bytes");
  }
  GError* err = nullptr;
  gptr<GdkPixbufLoader> loader(gdk_pixbuf_loader_new_with_type(type, &err));
  if (!loader) {
    std::string why = err ? err->message : "no loader";
    if (err) g_error_free(err);
    return blank(thumb_status::failed, "cannot decode " + std::string(type) + ": " + why);
  }
  size_check check;
  g_signal_connect(loader.get(), "size-prepared", G_CALLBACK(on_size_prepared), &check);

  // Feed in chunks so that a refusal stops further work early.
  constexpr std::size_t chunk = 64 * 1024;
  bool ok = true;
  for (std::size_t off = 0; off < data.size() && ok && !check.refused; off += chunk) {
    const std::size_t n = std::min(chunk, data.size() - off);
    ok = gdk_pixbuf_loader_write(loader.get(), reinterpret_cast<const guchar*>(data.data() + off),
                                 n, &err);
  }
  if (err) {
    g_error_free(err);
    err = nullptr;
  }
  // close() must always run (it releases the loader's decoder state); its error is the
  // expected outcome after a refusal or a truncated image.
  const bool closed = gdk_pixbuf_loader_close(loader.get(), &err);
  std::string close_error = err ? err->message : "";
  if (err) g_error_free(err);
  if (check.refused) {
    return blank(thumb_status::refused, "image of " + std::to_string(check.width) + "x" +
                                            std::to_string(check.height) +
                                            " pixels exceeds the thumbnail bounds");
  }
  GdkPixbuf* img = gdk_pixbuf_loader_get_pixbuf(loader.get());  // owned by the loader
  if (!ok || !closed || !img) {
    if (!img) {
      return blank(thumb_status::failed,
                   "corrupt image" + (close_error.empty() ? "" : ": " + close_error));
    }
    // A truncated image still yields what was decoded; show it as browsers do.
  }
  int w = gdk_pixbuf_get_width(img);
  int h = gdk_pixbuf_get_height(img);
  gptr<GdkPixbuf> scaled;
  if (w > kThumbWidth || h > kThumbHeight) {
    // Loaders that cannot decode at a reduced size (PNG, GIF, BMP) return the full image.
    const double scale =
        std::min(static_cast<double>(kThumbWidth) / w, static_cast<double>(kThumbHeight) / h);
    const int sw = std::max(1, static_cast<int>(w * scale + 0.5));
    const int sh = std::max(1, static_cast<int>(h * scale + 0.5));
    scaled.reset(gdk_pixbuf_scale_simple(img, sw, sh, GDK_INTERP_BILINEAR));
    if (!scaled) return blank(thumb_status::failed, "out of memory while scaling");
    img = scaled.get();
    w = sw;
    h = sh;
  }
  auto canvas = white_canvas();
  if (!canvas) return blank(thumb_status::failed, "out of memory");
  const int x = (kThumbWidth - w) / 2;
  const int y = (kThumbHeight - h) / 2;
  // Composite (not copy) so that transparent pixels come out white, as in Mailpit.
  gdk_pixbuf_composite(img, canvas.get(), x, y, w, h, x, y, 1.0, 1.0, GDK_INTERP_BILINEAR, 255);
  thumb_result r;
  std::string error;
  r.jpeg = encode_jpeg(canvas.get(), error);
  if (r.jpeg.empty()) return blank(thumb_status::failed, error);
  r.status = thumb_status::ok;
  return r;
}

}  // namespace sluice::http
