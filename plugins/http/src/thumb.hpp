// thumb.hpp — 180×120 JPEG thumbnails of image attachments (gdk-pixbuf).
//
// Mailpit's GET /api/v1/message/{ID}/part/{PartID}/thumb: the image scaled to fit
// 180×120 and padded on white (transparent pixels composite over white); anything that is
// not an image gives a blank white JPEG of that size.
//
// Decoding is bounded before any pixel memory is allocated (Mailpit had an
// oversized-thumbnail-decode vulnerability): only PNG, JPEG, GIF and BMP are decoded,
// recognised by their signature (never by the declared Content-Type, and never SVG, TIFF
// or ICO); the encoded data is at most kMaxThumbInput bytes; the declared dimensions are
// checked in the loader's size-prepared callback, which cancels the decode (by asking for
// a 0×0 image) when a side exceeds kMaxThumbSide or the area kMaxThumbPixels. Accepted
// images are decoded straight at thumbnail size where the format allows (JPEG DCT
// scaling).
//
// Threading: make_thumbnail() blocks (CPU); call it on a worker thread. It keeps no
// state between calls and is safe to run concurrently. It never throws.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sluice::http {

inline constexpr int kThumbWidth = 180;
inline constexpr int kThumbHeight = 120;
inline constexpr std::size_t kMaxThumbInput = 25u << 20;
inline constexpr int kMaxThumbSide = 10000;
inline constexpr std::uint64_t kMaxThumbPixels = 25'000'000;

enum class thumb_status {
  ok,         // jpeg holds the thumbnail of the image
  not_image,  // not a format we decode: jpeg is the blank thumbnail
  refused,    // an image over the bounds: not decoded, jpeg is the blank thumbnail
  failed,     // a corrupt image: jpeg is the blank thumbnail
};

struct thumb_result {
  thumb_status status = thumb_status::not_image;
  std::string jpeg;
  std::string reason;  // why it was refused or failed, for logs and a response header
};

thumb_result make_thumbnail(std::string_view data);

// The blank white 180×120 JPEG (built once).
const std::string& blank_thumbnail();

std::string_view to_string(thumb_status s);

}  // namespace sluice::http
