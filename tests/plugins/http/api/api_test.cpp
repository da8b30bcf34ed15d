// api_test.cpp — the API handlers driven through the router against fake services:
// status codes, Mailpit's texts and exact JSON key sets, search/delete/read selectors,
// latest, tags, chaos, send (the built MIME parsed back with GMime), views, thumbnails,
// wait, and mailbox-prefixed requests.
#include <gdk-pixbuf/gdk-pixbuf.h>
#include <gmime/gmime.h>
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <set>
#include <thread>

#include "api.hpp"
#include "api_util.hpp"
#include "fake_services.hpp"
#include "routing.hpp"
#include "send.hpp"
#include "thumb.hpp"
#include "view.hpp"

namespace sluice::test {
namespace {

namespace json = boost::json;
namespace bhttp = boost::beast::http;
using http::request;
using http::response;

std::set<std::string> keys(const json::value& v) {
  std::set<std::string> k;
  for (auto& kv : v.as_object())
    k.insert(std::string(kv.key()));
  return k;
}

const std::set<std::string> kSummaryKeys = {
    "ID",      "MessageID", "Read",     "From", "To",   "Cc",          "Bcc",    "ReplyTo",
    "Subject", "Created",   "Username", "Tags", "Size", "Attachments", "Snippet"};
const std::set<std::string> kListKeys = {"total",           "unread", "count", "messages_count",
                                         "messages_unread", "start",  "tags",  "messages"};

std::string pct_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

class ApiTest : public ::testing::Test {
 protected:
  ApiTest() {
    env_.host = &host_;
    env_.store = store_;
    env_.events = events_;
    env_.metrics = metrics_;
    env_.submit = &listener_;
    env_.version = "0.1.0-test";
    env_.label = "Test";
    env_.started_ms = http::api::now_ms() - 5000;
    env_.log = logger("listener/web");
    http::add_api_routes(router_);
  }

  // Performs one request as the core would: route, then await the handler.
  response call(bhttp::verb method, std::string target, std::string body = {},
                std::string mailbox = "default", std::string base = "/") {
    request req{method, target, 11};
    req.body() = std::move(body);
    req.prepare_payload();
    std::string path = target.substr(0, target.find('?'));
    http::request_context ctx{req, env_, path, {}, {}, mailbox, base, "alice"};
    if (auto q = target.find('?'); q != std::string::npos) {
      std::string_view qs = std::string_view(target).substr(q + 1);
      while (!qs.empty()) {
        auto amp = qs.find('&');
        auto kv = qs.substr(0, amp);
        auto eq = kv.find('=');
        ctx.query[pct_decode(kv.substr(0, eq))] =
            eq == std::string_view::npos ? "" : pct_decode(kv.substr(eq + 1));
        qs = amp == std::string_view::npos ? std::string_view() : qs.substr(amp + 1);
      }
    }
    bool known = false;
    const http::handler* h = router_.match(method, path, ctx.params, known);
    if (!h)
      return known ? http::text_response(req, bhttp::status::method_not_allowed, "")
                   : http::not_found(req);
    auto f = boost::asio::co_spawn(host_.io(), (*h)(ctx), boost::asio::use_future);
    if (f.wait_for(std::chrono::seconds(20)) != std::future_status::ready)
      throw std::runtime_error("handler did not complete");
    return f.get();
  }
  response get(std::string t, std::string mailbox = "default", std::string base = "/") {
    return call(bhttp::verb::get, std::move(t), {}, std::move(mailbox), std::move(base));
  }
  static json::value body_json(const response& r) { return json::parse(r.body()); }

  fake_entry entry(std::string id, std::string subject, std::int64_t created,
                   std::string mailbox = "default") {
    fake_entry e;
    e.m.id = std::move(id);
    e.m.mailbox = std::move(mailbox);
    e.m.created_ms = created;
    e.m.subject = subject;
    e.m.message_id = e.m.id + "@example.org";
    e.m.from = mail_address{"Alice", "alice@example.org"};
    e.m.to = {mail_address{"Bob", "bob@example.org"}};
    e.m.size = 100;
    e.m.snippet = "hello";
    e.m.headers = {{"message-id", "<" + e.m.message_id + ">"},
                   {"MIME-Version", "1.0"},
                   {"content-type", "text/plain"},
                   {"Received", "from a"},
                   {"Received", "from b"}};
    parsed_message v;
    v.subject = subject;
    v.text = "hello " + subject;
    e.m.view = v;
    e.raw = "Subject: " + subject + "\r\n\r\nhello\r\n";
    e.text = subject + " alice@example.org bob@example.org hello";
    return e;
  }

  fake_host host_;
  std::shared_ptr<fake_events> events_ = std::make_shared<fake_events>();
  std::shared_ptr<fake_mailbox> store_ = std::make_shared<fake_mailbox>(events_);
  std::shared_ptr<fake_metrics> metrics_ = std::make_shared<fake_metrics>();
  fake_listener listener_;
  http::api_env env_;
  http::router router_;
};

TEST_F(ApiTest, ListMessagesKeySetsPagesAndBefore) {
  for (int i = 1; i <= 3; ++i)
    store_->add(entry("id" + std::to_string(i), "subject " + std::to_string(i), 1000 * i));
  auto r = get("/api/v1/messages?start=1&limit=1");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "application/json");
  auto v = body_json(r);
  EXPECT_EQ(keys(v), kListKeys);
  EXPECT_EQ(v.at("total").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(v.at("messages_count").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(v.at("count").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(v.at("start").to_number<std::uint64_t>(), 1u);
  ASSERT_EQ(v.at("messages").as_array().size(), 1u);
  const auto& m = v.at("messages").as_array()[0];
  EXPECT_EQ(keys(m), kSummaryKeys);
  EXPECT_EQ(m.at("ID").as_string(), "id2");
  // Absent headers: [] and an empty From object, as Mailpit (addressToSlice) everywhere.
  EXPECT_EQ(m.at("Cc"), boost::json::array());
  EXPECT_EQ(m.at("ReplyTo"), boost::json::array());
  EXPECT_EQ(m.at("Created").as_string(), "1970-01-01T00:00:02Z");

  v = body_json(get("/api/v1/messages?before=1970-01-01T00:00:02.500Z"));
  ASSERT_EQ(v.at("messages").as_array().size(), 2u);
  EXPECT_EQ(v.at("messages").as_array()[0].at("ID").as_string(), "id2");
  EXPECT_EQ(v.at("messages_count").to_number<std::uint64_t>(), 3u);  // the mailbox's, as Mailpit
  v = body_json(get("/api/v1/messages?before=2500"));
  EXPECT_EQ(v.at("messages").as_array().size(), 2u);

  // Not a positive number: the default, as Mailpit (strconv.Atoi, then n > 0).
  for (const char* q : {"start=x", "start=-1", "limit=-1", "limit=undefined", "limit=1.5",
                        "start=99999999999999999999"}) {
    auto r = get(std::string("/api/v1/messages?") + q);
    EXPECT_EQ(r.result(), bhttp::status::ok) << q;
    EXPECT_EQ(body_json(r).at("messages").as_array().size(), 3u) << q;
  }
  v = body_json(get("/api/v1/messages?start=%2B1&limit=%2B1"));  // "+1": Atoi takes it
  ASSERT_EQ(v.at("messages").as_array().size(), 1u);
  EXPECT_EQ(v.at("messages").as_array()[0].at("ID").as_string(), "id2");
  // A before= that is no time is ignored, as Mailpit.
  v = body_json(get("/api/v1/messages?before=yesterdayish"));
  EXPECT_EQ(v.at("messages").as_array().size(), 3u);
  // limit=0 is Mailpit's default page.
  EXPECT_EQ(body_json(get("/api/v1/messages?limit=0")).at("count").to_number<std::uint64_t>(), 3u);
}

TEST_F(ApiTest, SearchAndDeleteBySearch) {
  store_->add(entry("a", "invoice 1", 1000));
  store_->add(entry("b", "welcome", 2000));
  store_->add(entry("c", "invoice 2", 3000));
  auto r = get("/api/v1/search");
  EXPECT_EQ(r.result(), bhttp::status::bad_request);
  EXPECT_EQ(r.body(), "Error: no search query");
  auto v = body_json(get("/api/v1/search?query=invoice&limit=1"));
  EXPECT_EQ(keys(v), kListKeys);
  EXPECT_EQ(v.at("total").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(v.at("messages_count").to_number<std::uint64_t>(), 2u);
  EXPECT_EQ(v.at("messages_unread").to_number<std::uint64_t>(), 2u);
  EXPECT_EQ(v.at("messages").as_array()[0].at("ID").as_string(), "c");
  // A query the store cannot read: 400 with its text, not a 500.
  r = get("/api/v1/search?query=%28broken");
  EXPECT_EQ(r.result(), bhttp::status::bad_request);
  EXPECT_NE(r.body().find("cannot read"), std::string::npos);

  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/search").result(), bhttp::status::bad_request);
  // Only unreadable dates (ignored): it would select everything, so the delete refuses.
  r = call(bhttp::verb::delete_, "/api/v1/search?query=before:2024-13-01");
  EXPECT_EQ(r.result(), bhttp::status::bad_request);
  EXPECT_NE(r.body().find("no usable term"), std::string::npos) << r.body();
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("total").to_number<std::uint64_t>(), 3u);
  r = call(bhttp::verb::delete_, "/api/v1/search?query=invoice");
  EXPECT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r.body(), "ok");
  v = body_json(get("/api/v1/messages"));
  ASSERT_EQ(v.at("total").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(v.at("messages").as_array()[0].at("ID").as_string(), "b");
}

TEST_F(ApiTest, MarkReadByIdsSearchOrAll) {
  store_->add(entry("a", "one", 1000));
  store_->add(entry("b", "two", 2000));
  auto r = call(bhttp::verb::put, "/api/v1/messages", R"({"IDs":["a"],"Read":true})");
  EXPECT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("unread").to_number<std::uint64_t>(), 1u);
  // Go matches keys case-insensitively.
  r = call(bhttp::verb::put, "/api/v1/messages?tz=Europe/Berlin",
           R"({"search":"two","read":true})");
  EXPECT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(store_->set_read_calls.back(), "default||two|Europe/Berlin|1");
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("unread").to_number<std::uint64_t>(), 0u);
  r = call(bhttp::verb::put, "/api/v1/messages", R"({"Read":false})");
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("unread").to_number<std::uint64_t>(), 2u);
  r = call(bhttp::verb::put, "/api/v1/messages", R"({"IDs":["a"],"Search":"x","Read":true})");
  EXPECT_EQ(r.result(), bhttp::status::bad_request);
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/messages", "{").result(), bhttp::status::bad_request);
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/messages", R"({"IDs":"a"})").result(),
            bhttp::status::bad_request);
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/messages", R"({"Read":"yes"})").result(),
            bhttp::status::bad_request);
}

TEST_F(ApiTest, DeleteByIdsEmptyUnparseableAndTooLarge) {
  for (auto id : {"a", "b", "c", "d"})
    store_->add(entry(id, id, 1000));
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/messages", R"({"IDs":["a"]})").body(), "ok");
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("total").to_number<std::uint64_t>(), 3u);
  // Over 5 MB: refused, nothing deleted (never "delete all" for a truncated list).
  std::string big = R"({"IDs":[")" + std::string(6u << 20, 'x') + R"("]})";
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/messages", big).result(),
            bhttp::status::payload_too_large);
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("total").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/messages", "not json").body(), "ok");
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("total").to_number<std::uint64_t>(), 0u);
  store_->add(entry("e", "e", 1000));
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/messages").body(), "ok");
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("total").to_number<std::uint64_t>(), 0u);
}

TEST_F(ApiTest, MessageLatestHeadersRawAndNotFound) {
  store_->add(entry("a", "first", 1000));
  store_->add(entry("b", "second", 2000));
  auto r = get("/api/v1/message/a");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  auto v = body_json(r);
  EXPECT_EQ(keys(v),
            (std::set<std::string>{"ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo",
                                   "ReturnPath", "Subject", "ListUnsubscribe", "Date", "Tags",
                                   "Username", "Text", "HTML", "Size", "Inline", "Attachments"}));
  EXPECT_EQ(keys(v.at("ListUnsubscribe")),
            (std::set<std::string>{"Header", "Links", "Errors", "HeaderPost"}));
  EXPECT_EQ(v.at("Text").as_string(), "hello first");
  // Side effect: read.
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("unread").to_number<std::uint64_t>(), 1u);

  EXPECT_EQ(body_json(get("/api/v1/message/latest")).at("ID").as_string(), "b");
  EXPECT_EQ(body_json(get("/api/v1/message/latest?query=first&tz=UTC")).at("ID").as_string(), "a");
  EXPECT_EQ(store_->last_tz, "UTC");
  r = get("/api/v1/message/latest?query=nothing");
  EXPECT_EQ(r.result(), bhttp::status::not_found);
  EXPECT_EQ(r.body(), "Message not found");
  r = get("/api/v1/message/zzz");
  EXPECT_EQ(r.result(), bhttp::status::not_found);
  EXPECT_EQ(r.body(), "404 page not found\n");

  v = body_json(get("/api/v1/message/a/headers"));
  EXPECT_EQ(keys(v),
            (std::set<std::string>{"Message-Id", "Mime-Version", "Content-Type", "Received"}));
  EXPECT_EQ(v.at("Received").as_array().size(), 2u);
  EXPECT_EQ(v.at("Message-Id").as_array()[0].as_string(), "<a@example.org>");

  r = get("/api/v1/message/latest/raw?dl=1");
  EXPECT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(r[bhttp::field::content_disposition], "attachment; filename=\"b.eml\"");
  EXPECT_EQ(r.body(), "Subject: second\r\n\r\nhello\r\n");
  EXPECT_EQ(get("/api/v1/message/a/raw")[bhttp::field::content_disposition], "");
  EXPECT_EQ(get("/api/v1/message/nope/raw").result(), bhttp::status::not_found);

  EXPECT_EQ(call(bhttp::verb::post, "/api/v1/message/a/release", R"({"To":["x@y.z"]})").body(),
            "message relay is not configured");
  EXPECT_EQ(get("/api/v1/message/a/sa-check").result(), bhttp::status::not_found);
  EXPECT_EQ(get("/api/v1/message/a/html-check").result(), bhttp::status::not_found);
  EXPECT_EQ(get("/api/v1/message/a/link-check").result(), bhttp::status::not_found);
}

std::string make_png(int w, int h) {
  GdkPixbuf* pb = gdk_pixbuf_new(GDK_COLORSPACE_RGB, TRUE, 8, w, h);
  gdk_pixbuf_fill(pb, 0xff000080u);
  gchar* buf = nullptr;
  gsize n = 0;
  gdk_pixbuf_save_to_buffer(pb, &buf, &n, "png", nullptr, nullptr);
  std::string out(buf, n);
  g_free(buf);
  g_object_unref(pb);
  return out;
}

std::uint32_t crc32(std::string_view s) {
  std::uint32_t c = 0xffffffffu;
  for (unsigned char b : s) {
    c ^= b;
    for (int k = 0; k < 8; ++k)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

// A PNG whose IHDR declares w×h but carries almost no data.
std::string declared_png(std::uint32_t w, std::uint32_t h) {
  auto be = [](std::uint32_t v) {
    return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)};
  };
  std::string ihdr = "IHDR" + be(w) + be(h) + std::string("\x08\x02\x00\x00\x00", 5);
  std::string png = "\x89PNG\r\n\x1a\n";
  png += be(13) + ihdr + be(crc32(ihdr));
  std::string idat = std::string("IDAT") + std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8);
  png += be(8) + idat + be(crc32(idat));
  return png;
}

std::pair<int, int> jpeg_size(const std::string& jpeg) {
  GdkPixbufLoader* l = gdk_pixbuf_loader_new_with_type("jpeg", nullptr);
  gdk_pixbuf_loader_write(l, reinterpret_cast<const guchar*>(jpeg.data()), jpeg.size(), nullptr);
  gdk_pixbuf_loader_close(l, nullptr);
  GdkPixbuf* pb = gdk_pixbuf_loader_get_pixbuf(l);
  std::pair<int, int> out{-1, -1};
  if (pb) out = {gdk_pixbuf_get_width(pb), gdk_pixbuf_get_height(pb)};
  g_object_unref(l);
  return out;
}

TEST_F(ApiTest, PartsAndThumbnails) {
  auto e = entry("a", "pics", 1000);
  mime_part png{.part_id = "2", .content_type = "image/png", .file_name = "pixel é.png"};
  e.parts["2"] = part_content{png, make_png(400, 100)};
  mime_part txt{
      .part_id = "3", .content_type = "text/plain", .charset = "utf-8", .file_name = "a\"b.txt"};
  e.parts["3"] = part_content{txt, "just text"};
  mime_part huge{.part_id = "4", .content_type = "image/png", .file_name = "bomb.png"};
  e.parts["4"] = part_content{huge, declared_png(60000, 60000)};
  store_->add(e);

  auto r = get("/api/v1/message/a/part/3");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "text/plain; charset=utf-8");
  EXPECT_EQ(r[bhttp::field::content_disposition], "inline; filename=\"a_b.txt\"");
  EXPECT_EQ(r.body(), "just text");
  EXPECT_EQ(r["X-Content-Type-Options"], "nosniff");
  r = get("/api/v1/message/a/part/2");
  EXPECT_EQ(r[bhttp::field::content_type], "image/png");
  EXPECT_EQ(r[bhttp::field::content_disposition],
            "inline; filename=\"pixel __.png\"; filename*=UTF-8''pixel%20%C3%A9.png");
  EXPECT_EQ(get("/api/v1/message/a/part/9").result(), bhttp::status::not_found);

  r = get("/api/v1/message/a/part/2/thumb");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "image/jpeg");
  EXPECT_EQ(r["X-Sluice-Thumbnail"], "ok");
  EXPECT_EQ(jpeg_size(r.body()), (std::pair<int, int>{180, 120}));
  EXPECT_EQ(r[bhttp::field::content_disposition],
            "inline; filename=\"pixel __.png\"; filename*=UTF-8''pixel%20%C3%A9.png");
  r = get("/api/v1/message/a/part/9/thumb");  // no such part: 400, as Mailpit
  EXPECT_EQ(r.result(), bhttp::status::bad_request);
  EXPECT_EQ(r.body(), "attachment not found");

  r = get("/api/v1/message/a/part/3/thumb");
  EXPECT_EQ(r["X-Sluice-Thumbnail"], "not-image");
  EXPECT_EQ(jpeg_size(r.body()), (std::pair<int, int>{180, 120}));

  r = get("/api/v1/message/a/part/4/thumb");
  EXPECT_EQ(r["X-Sluice-Thumbnail"], "refused");
  EXPECT_EQ(jpeg_size(r.body()), (std::pair<int, int>{180, 120}));
}

std::string make_jpeg(int w, int h) {
  GdkPixbuf* pb = gdk_pixbuf_new(GDK_COLORSPACE_RGB, FALSE, 8, w, h);
  gdk_pixbuf_fill(pb, 0x2060a0ffu);
  gchar* buf = nullptr;
  gsize n = 0;
  gdk_pixbuf_save_to_buffer(pb, &buf, &n, "jpeg", nullptr, nullptr);
  std::string out(buf, n);
  g_free(buf);
  g_object_unref(pb);
  return out;
}

TEST(Thumbnail, JpegAndGifAreDecoded) {
  // A large JPEG is decoded at a reduced size and still comes out 180×120.
  auto t = http::make_thumbnail(make_jpeg(3000, 1000));
  EXPECT_EQ(t.status, http::thumb_status::ok) << t.reason;
  EXPECT_EQ(jpeg_size(t.jpeg), (std::pair<int, int>{180, 120}));
  // The smallest GIF (1×1).
  const std::string gif(
      "GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00"
      "\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
      43);
  t = http::make_thumbnail(gif);
  EXPECT_EQ(t.status, http::thumb_status::ok) << t.reason;
  EXPECT_EQ(jpeg_size(t.jpeg), (std::pair<int, int>{180, 120}));
  // SVG is never decoded, whatever its content.
  t = http::make_thumbnail(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>");
  EXPECT_EQ(t.status, http::thumb_status::not_image);
}

TEST(Thumbnail, BoundsAndPadding) {
  auto t = http::make_thumbnail(declared_png(20000, 10));
  EXPECT_EQ(t.status, http::thumb_status::refused);
  t = http::make_thumbnail(declared_png(6000, 6000));  // 36 MP > 25 MP
  EXPECT_EQ(t.status, http::thumb_status::refused);
  t = http::make_thumbnail(make_png(20, 20));  // small: padded, not scaled up
  EXPECT_EQ(t.status, http::thumb_status::ok);
  EXPECT_EQ(jpeg_size(t.jpeg), (std::pair<int, int>{180, 120}));
  t = http::make_thumbnail(std::string("\x89PNG\r\n\x1a\n garbage", 17));
  EXPECT_EQ(t.status, http::thumb_status::failed);
  EXPECT_EQ(jpeg_size(t.jpeg), (std::pair<int, int>{180, 120}));
}

TEST_F(ApiTest, Tags) {
  store_->add(entry("a", "one", 1000));
  store_->add(entry("b", "two", 2000));
  EXPECT_EQ(get("/api/v1/tags").body(), "[]");
  EXPECT_EQ(
      call(bhttp::verb::put, "/api/v1/tags", R"({"IDs":["a","b"],"Tags":["Red","Blue"]})").body(),
      "ok");
  EXPECT_EQ(get("/api/v1/tags").body(), R"(["Blue","Red"])");
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/tags/Red%20Hot", R"({"Name":"x"})").body(), "ok");
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/tags/Red", R"({"Name":"Green Tea"})").body(), "ok");
  EXPECT_EQ(get("/api/v1/tags").body(), R"(["Blue","Green Tea"])");
  EXPECT_EQ(call(bhttp::verb::delete_, "/api/v1/tags/Green%20Tea").body(), "ok");
  EXPECT_EQ(get("/api/v1/tags").body(), R"(["Blue"])");
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/tags/Blue", R"({"Name":""})").result(),
            bhttp::status::bad_request);
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/tags", R"({"IDs":["a"],"Tags":[1]})").result(),
            bhttp::status::bad_request);
  EXPECT_EQ(call(bhttp::verb::put, "/api/v1/tags", R"({"IDs":["a"],"Tags":[]})").body(), "ok");
  auto v = body_json(get("/api/v1/messages"));
  EXPECT_EQ(v.at("messages").as_array()[1].at("Tags").as_array().size(), 0u);
  EXPECT_EQ(v.at("messages").as_array()[0].at("Tags").as_array().size(), 1u);
}

TEST_F(ApiTest, Chaos) {
  auto r = get("/api/v1/chaos");
  EXPECT_EQ(r.result(), bhttp::status::bad_request);
  EXPECT_EQ(r.body(), "Chaos is not enabled");
  EXPECT_EQ(body_json(get("/api/v1/webui")).at("ChaosEnabled").as_bool(), false);
  env_.chaos = std::make_shared<fake_chaos>();
  auto v = body_json(get("/api/v1/chaos"));
  EXPECT_EQ(keys(v), (std::set<std::string>{"Sender", "Recipient", "Authentication"}));
  EXPECT_EQ(v.at("Authentication").at("ErrorCode").as_int64(), 535);  // Mailpit's defaults
  EXPECT_EQ(v.at("Sender").at("ErrorCode").as_int64(), 451);
  EXPECT_EQ(keys(v.at("Sender")), (std::set<std::string>{"ErrorCode", "Probability"}));
  v = body_json(
      call(bhttp::verb::put, "/api/v1/chaos",
           R"({"Sender":{"ErrorCode":452,"Probability":50},"Recipient":{"Probability":10}})"));
  EXPECT_EQ(v.at("Sender").at("ErrorCode").as_int64(), 452);
  EXPECT_EQ(v.at("Sender").at("Probability").as_int64(), 50);
  EXPECT_EQ(v.at("Recipient").at("ErrorCode").as_int64(), 451);
  EXPECT_EQ(v.at("Authentication").at("Probability").as_int64(), 0);
  // Omitted triggers reset.
  v = body_json(call(bhttp::verb::put, "/api/v1/chaos", R"({"Recipient":{"Probability":5}})"));
  EXPECT_EQ(v.at("Sender").at("Probability").as_int64(), 0);
  v = body_json(call(bhttp::verb::put, "/api/v1/chaos", "{}"));
  EXPECT_EQ(v.at("Recipient").at("Probability").as_int64(), 0);
  EXPECT_EQ(v.at("Authentication").at("ErrorCode").as_int64(), 535);
  v = body_json(call(bhttp::verb::put, "/api/v1/chaos",
                     R"({"Authentication":{"ErrorCode":0,"Probability":7}})"));
  EXPECT_EQ(v.at("Authentication").at("ErrorCode").as_int64(), 535);
  EXPECT_EQ(v.at("Authentication").at("Probability").as_int64(), 7);
  for (auto bad :
       {R"({"Sender":{"ErrorCode":250,"Probability":5}})",
        R"({"Sender":{"ErrorCode":451,"Probability":101}})", R"({"Sender":{"Probability":"5"}})",
        R"({"Sender":{"Probability":5.5}})", R"({"Sender":7})", "[]"}) {
    r = call(bhttp::verb::put, "/api/v1/chaos", bad);
    EXPECT_EQ(r.result(), bhttp::status::bad_request) << bad;
  }
  EXPECT_EQ(body_json(get("/api/v1/webui")).at("ChaosEnabled").as_bool(), true);
}

TEST_F(ApiTest, InfoWebuiMailboxesSwagger) {
  auto e = entry("a", "one", 1000);
  e.m.tags = {"Red"};
  store_->add(e);
  store_->add(entry("b", "two", 1000, "other"));
  metrics_->text =
      "# TYPE sluice_smtp_messages_total counter\n"
      "sluice_smtp_messages_total{listener=\"smtp\",result=\"accepted\"} 3\n"
      "sluice_smtp_messages_total{listener=\"lmtp\",result=\"accepted\"} 2\n"
      "sluice_smtp_messages_total{listener=\"smtp\",result=\"rejected\"} 1\n"
      "sluice_smtp_messages_total_other{result=\"accepted\"} 100\n";
  auto v = body_json(get("/api/v1/info"));
  EXPECT_EQ(keys(v), (std::set<std::string>{"Version", "LatestVersion", "Database", "DatabaseSize",
                                            "Messages", "Unread", "Tags", "RuntimeStats"}));
  EXPECT_EQ(keys(v.at("RuntimeStats")),
            (std::set<std::string>{"Uptime", "Memory", "MessagesDeleted", "SMTPAccepted",
                                   "SMTPAcceptedSize", "SMTPRejected", "SMTPIgnored"}));
  EXPECT_EQ(v.at("RuntimeStats").at("SMTPAccepted").to_number<std::uint64_t>(), 5u);
  EXPECT_EQ(v.at("RuntimeStats").at("SMTPRejected").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(v.at("RuntimeStats").at("MessagesDeleted").to_number<std::uint64_t>(), 7u);
  EXPECT_GE(v.at("RuntimeStats").at("Uptime").as_int64(), 4);
  EXPECT_GT(v.at("RuntimeStats").at("Memory").to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(v.at("Tags").at("Red").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(v.at("Messages").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(v.at("Version").as_string(), "0.1.0-test");

  v = body_json(get("/api/v1/webui"));
  EXPECT_EQ(keys(v), (std::set<std::string>{"Label", "MessageRelay", "SpamAssassin", "ChaosEnabled",
                                            "DuplicatesIgnored", "HideDeleteAllButton"}));
  EXPECT_EQ(keys(v.at("MessageRelay")),
            (std::set<std::string>{"Enabled", "SMTPServer", "ReturnPath", "AllowedRecipients",
                                   "BlockedRecipients", "OverrideFrom", "PreserveMessageIDs",
                                   "RecipientAllowlist"}));
  EXPECT_EQ(v.at("Label").as_string(), "Test");

  v = body_json(get("/api/v1/mailboxes"));
  ASSERT_EQ(v.as_array().size(), 2u);
  EXPECT_EQ(v.as_array()[0].at("Name").as_string(), "default");
  EXPECT_TRUE(v.as_array()[0].at("Default").as_bool());
  EXPECT_EQ(v.as_array()[1].at("Total").to_number<std::uint64_t>(), 1u);

  v = body_json(get("/api/v1/swagger.json", "other", "/mail/mailbox/other/"));
  EXPECT_EQ(v.at("openapi").as_string(), "3.0.3");
  EXPECT_EQ(v.at("servers").as_array()[0].at("url").as_string(), "/mail/mailbox/other");
  for (auto p : {"/api/v1/messages", "/api/v1/search", "/api/v1/message/{ID}",
                 "/api/v1/message/{ID}/part/{PartID}/thumb", "/api/v1/send", "/api/v1/tags/{Tag}",
                 "/api/v1/chaos", "/api/v1/info", "/api/v1/webui", "/api/v1/wait",
                 "/api/v1/mailboxes", "/view/{ID}.html", "/view/latest"})
    EXPECT_TRUE(v.at("paths").as_object().contains(p)) << p;
  EXPECT_EQ(keys(v.at("components").at("schemas").at("MessageSummary").at("properties")),
            kSummaryKeys);
}

// The "type/subtype" of a GMime object (g_mime_content_type_get_mime_type allocates).
std::string mime_type(GMimeObject* o) {
  char* t = g_mime_content_type_get_mime_type(g_mime_object_get_content_type(o));
  std::string out = t ? t : "";
  g_free(t);
  return out;
}

// Parses MIME text back with GMime.
struct parsed {
  GMimeMessage* msg = nullptr;
  explicit parsed(const std::string& s) {
    GMimeStream* st = g_mime_stream_mem_new_with_buffer(s.data(), s.size());
    GMimeParser* p = g_mime_parser_new_with_stream(st);
    msg = g_mime_parser_construct_message(p, nullptr);
    g_object_unref(p);
    g_object_unref(st);
  }
  ~parsed() {
    if (msg) g_object_unref(msg);
  }
  std::string header(const char* name) {
    const char* v = g_mime_object_get_header(GMIME_OBJECT(msg), name);
    return v ? v : "";
  }
};

TEST_F(ApiTest, SendBuildsMimeAndSubmits) {
  const std::string png = make_png(4, 4);
  std::string b64;
  {
    gchar* enc = g_base64_encode(reinterpret_cast<const guchar*>(png.data()), png.size());
    b64 = enc;
    g_free(enc);
  }
  json::object req{{"From", {{"Email", "sender@example.org"}, {"Name", "Jörg Sender"}}},
                   {"To", json::array{json::object{{"Email", "to@example.org"}, {"Name", "To"}}}},
                   {"Cc", json::array{json::object{{"Email", "cc@example.org"}}}},
                   {"Bcc", json::array{"bcc@example.org"}},
                   {"ReplyTo", json::array{json::object{{"Email", "reply@example.org"}}}},
                   {"Subject", "Grüße"},
                   {"Text", "Hello\nworld"},
                   {"HTML", "<p>Hello <img src=\"cid:logo\"></p>"},
                   {"Headers", {{"X-Custom", "yes"}}},
                   {"Tags", json::array{"one", "two"}},
                   {"Attachments",
                    json::array{json::object{{"Content", "data:image/png;base64," + b64},
                                             {"Filename", "logo.png"},
                                             {"ContentID", "logo"}},
                                json::object{{"Content", "SGVsbG8="}, {"Filename", "hello.txt"}}}}};
  auto r = call(bhttp::verb::post, "/api/v1/send", json::serialize(req));
  ASSERT_EQ(r.result(), bhttp::status::ok) << r.body();
  auto v = body_json(r);
  EXPECT_EQ(keys(v), (std::set<std::string>{"ID"}));
  ASSERT_EQ(listener_.submitted.size(), 1u);
  auto& msg = *listener_.submitted[0];
  EXPECT_EQ(v.at("ID").as_string(), msg.id);
  EXPECT_EQ(msg.envelope.protocol, "HTTP");
  EXPECT_EQ(msg.envelope.listener, "web");
  EXPECT_EQ(msg.envelope.mail_from, "sender@example.org");
  EXPECT_EQ(msg.envelope.auth_user, "alice");
  ASSERT_EQ(msg.envelope.recipients.size(), 3u);
  EXPECT_EQ(msg.envelope.recipients[2].address, "bcc@example.org");

  const std::string out = msg.output();
  EXPECT_EQ(out.find("Received:"), std::string::npos);
  EXPECT_EQ(out.rfind("Return-Path: <sender@example.org>\r\n", 0), 0u);
  // Every line ends in CRLF.
  for (std::size_t i = out.find('\n'); i != std::string::npos; i = out.find('\n', i + 1))
    ASSERT_EQ(out[i - 1], '\r') << "bare LF at " << i;
  EXPECT_NE(out.find("Subject: =?"), std::string::npos);  // RFC 2047
  parsed p(out);
  ASSERT_NE(p.msg, nullptr);
  EXPECT_STREQ(g_mime_message_get_subject(p.msg), "Grüße");
  EXPECT_EQ(p.header("X-Custom"), "yes");
  EXPECT_EQ(p.header("X-Tags"), "one, two");
  EXPECT_EQ(p.header("Message-Id"),
            "<" + msg.id + "@" + p.header("Message-Id").substr(msg.id.size() + 2));
  EXPECT_NE(p.header("Date"), "");
  EXPECT_NE(p.header("Bcc").find("bcc@example.org"), std::string::npos);
  InternetAddressList* from = g_mime_message_get_from(p.msg);
  ASSERT_EQ(internet_address_list_length(from), 1);
  EXPECT_STREQ(internet_address_get_name(internet_address_list_get_address(from, 0)),
               "Jörg Sender");
  // mixed(alternative(text, related(html, png)), hello.txt)
  GMimeObject* root = g_mime_message_get_mime_part(p.msg);
  ASSERT_TRUE(GMIME_IS_MULTIPART(root));
  EXPECT_STREQ(g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(root)),
               "mixed");
  GMimeMultipart* mixed = GMIME_MULTIPART(root);
  ASSERT_EQ(g_mime_multipart_get_count(mixed), 2);
  GMimeObject* alt = g_mime_multipart_get_part(mixed, 0);
  EXPECT_STREQ(g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(alt)),
               "alternative");
  GMimeObject* rel = g_mime_multipart_get_part(GMIME_MULTIPART(alt), 1);
  EXPECT_STREQ(g_mime_content_type_get_media_subtype(g_mime_object_get_content_type(rel)),
               "related");
  GMimeObject* img = g_mime_multipart_get_part(GMIME_MULTIPART(rel), 1);
  EXPECT_STREQ(g_mime_object_get_content_id(img), "logo");
  EXPECT_EQ(mime_type(img), "image/png");
  GMimeObject* att = g_mime_multipart_get_part(mixed, 1);
  EXPECT_STREQ(g_mime_part_get_filename(GMIME_PART(att)), "hello.txt");
  EXPECT_EQ(mime_type(att), "text/plain");  // sniffed
  EXPECT_EQ(g_mime_part_get_content_encoding(GMIME_PART(att)), GMIME_CONTENT_ENCODING_BASE64);
}

TEST_F(ApiTest, SendRefusals) {
  auto err = [&](const std::string& body) {
    auto r = call(bhttp::verb::post, "/api/v1/send", body);
    EXPECT_EQ(r[bhttp::field::content_type], "application/json");
    auto v = body_json(r);
    EXPECT_EQ(keys(v), (std::set<std::string>{"Error"}));
    return std::make_pair(r.result(), std::string(v.at("Error").as_string()));
  };
  const std::string from = R"("From":{"Email":"a@example.org"},)";
  auto [s, t] = err(
      R"({"From":{"Email":"a@example.org"},"To":[{"Email":"b@example.org"}],"Headers":{"Subject":"x"}})");
  EXPECT_EQ(s, bhttp::status::bad_request);
  EXPECT_EQ(t, "cannot overwrite header: \"Subject\"");
  std::tie(s, t) =
      err("{" + from + R"("To":[{"Email":"b@example.org"}],"Headers":{"content-type":"x"}})");
  EXPECT_EQ(t, "cannot overwrite header: \"content-type\"");
  std::tie(s, t) = err(
      "{" + from + R"("To":[{"Email":"b@example.org"}],"Headers":{"X-A":"a\r\nBcc: evil@x.y"}})");
  EXPECT_EQ(s, bhttp::status::bad_request);
  std::tie(s, t) = err(
      "{" + from + R"("To":[{"Email":"b@example.org"}],"Tags":["t"],"Headers":{"X-Tags":"a"}})");
  EXPECT_EQ(t, "cannot overwrite header: \"X-Tags\"");
  std::tie(s, t) = err("{" + from + R"("To":[{"Email":"not an address"}]})");
  EXPECT_EQ(t, "invalid To address: not an address");
  std::tie(s, t) = err("{" + from + R"("Subject":"x"})");
  EXPECT_EQ(t, "error building message: no recipients (to, cc, bcc) set");
  std::tie(s, t) = err(R"({"To":[{"Email":"b@example.org"}]})");
  EXPECT_EQ(t, "From is required");
  std::tie(s, t) =
      err("{" + from +
          R"("To":[{"Email":"b@example.org"}],"Attachments":[{"Content":"!!!","Filename":"x"}]})");
  EXPECT_EQ(t, "error decoding base64 attachment \"x\": illegal base64 data at input byte 0");
  std::tie(s, t) = err("{oops");
  EXPECT_EQ(s, bhttp::status::bad_request);
  env_.max_send_bytes = 100;
  std::tie(s, t) = err("{" + from + R"("To":[{"Email":"b@example.org"}],"Text":")" +
                       std::string(200, 'x') + "\"}");
  EXPECT_EQ(s, bhttp::status::payload_too_large);
  env_.max_send_bytes = 50u << 20;
  EXPECT_TRUE(listener_.submitted.empty());

  const std::string ok = "{" + from + R"("To":[{"Email":"b@example.org"}]})";
  listener_.next = submit_result{verdict_kind::reject, {550, "5.7.1", "no thanks"}, ""};
  std::tie(s, t) = err(ok);
  EXPECT_EQ(s, bhttp::status::bad_request);
  EXPECT_EQ(t, "no thanks");
  listener_.next = submit_result{verdict_kind::tempfail, {451, "4.3.0", "later"}, ""};
  std::tie(s, t) = err(ok);
  EXPECT_EQ(s, bhttp::status::service_unavailable);
  EXPECT_EQ(t, "later");
}

TEST(Send, SniffAndBase64AndEmail) {
  EXPECT_EQ(http::sniff_content_type("\x89PNG\r\n\x1a\nIHDR"), "image/png");
  EXPECT_EQ(http::sniff_content_type("  <html><body>"), "text/html; charset=utf-8");
  EXPECT_EQ(http::sniff_content_type("%PDF-1.7"), "application/pdf");
  EXPECT_EQ(http::sniff_content_type(std::string("\x01\x02\x03", 3)), "application/octet-stream");
  EXPECT_EQ(http::sniff_content_type("plain words"), "text/plain; charset=utf-8");
  std::string out, err;
  EXPECT_TRUE(http::decode_base64("SGVs\r\nbG8=", out, err));
  EXPECT_EQ(out, "Hello");
  EXPECT_TRUE(http::decode_base64("SGVsbG8", out, err));
  EXPECT_EQ(out, "Hello");
  EXPECT_FALSE(http::decode_base64("SGV=sbG8", out, err));
  EXPECT_TRUE(http::valid_email("a.b+c@example.org"));
  EXPECT_TRUE(http::valid_email("üser@exämple.org"));
  for (auto bad : {"", "a", "@b", "a@", "a b@c", "<a@b>", "a@b,c@d", "a..b@c", "a@b..c"})
    EXPECT_FALSE(http::valid_email(bad)) << bad;
}

TEST_F(ApiTest, ViewHtmlTextLatestAndPrefixedMailbox) {
  auto e = entry("m1", "html", 1000, "other");
  e.m.view->html =
      "<p><img src=\"cid:logo@x\"><img src='CID:logo%40x'><a href=\"https://x.example\" "
      "target=\"_self\">x</a><div style=\"background:url(cid:bg)\"></div>cid:logo@x "
      "<img src=\"cid:unknown\"></p><script>alert(1)</script>";
  mime_part logo{.part_id = "1.2", .content_type = "image/png", .content_id = "logo@x"};
  mime_part bg{.part_id = "3", .content_type = "image/png", .content_id = "bg"};
  e.m.view->inline_parts = {logo};
  e.m.view->attachments = {bg};
  store_->add(entry("m0", "text only", 500, "other"));
  store_->add(e);

  auto r = get("/view/m1.html", "other", "/mailbox/other/");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r[bhttp::field::content_type], "text/html; charset=utf-8");
  const std::string csp(r["Content-Security-Policy"]);
  EXPECT_NE(csp.find("script-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'self'"), std::string::npos) << csp;  // clickjacking
  const std::string& html = r.body();
  EXPECT_NE(html.find("src=\"/mailbox/other/api/v1/message/m1/part/1.2\""), std::string::npos);
  EXPECT_NE(html.find("src='/mailbox/other/api/v1/message/m1/part/1.2'"), std::string::npos);
  EXPECT_NE(html.find("url(/mailbox/other/api/v1/message/m1/part/3)"), std::string::npos);
  EXPECT_NE(html.find("</div>cid:logo@x "), std::string::npos);  // text, not a URL
  EXPECT_NE(html.find("src=\"cid:unknown\""), std::string::npos);
  EXPECT_NE(html.find("target=\"_self\""), std::string::npos);  // only embed rewrites links
  // Marked read.
  EXPECT_EQ(body_json(get("/api/v1/messages", "other")).at("unread").to_number<std::uint64_t>(),
            1u);

  r = get("/view/m1.html?embed=1", "other", "/mailbox/other/");
  const std::string& em = r.body();
  EXPECT_EQ(em.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(em.find("<a href=\"https://x.example\" target=\"_blank\" rel=\"noreferrer noopener\">"),
            std::string::npos);
  EXPECT_EQ(em.find("_self"), std::string::npos);
  EXPECT_NE(em.find("messageHeight"), std::string::npos);
  EXPECT_LT(em.find("messageHeight"), em.find("</body>"));
  const std::string ecsp(r["Content-Security-Policy"]);
  EXPECT_NE(ecsp.find("script-src 'sha256-"), std::string::npos);
  EXPECT_EQ(ecsp.find("unsafe-inline'; script"), std::string::npos);
  // Remote style sheets and fonts load unless blocked (Mailpit's --block-remote-css-and-fonts);
  // remote images load either way.
  EXPECT_NE(csp.find("style-src * 'unsafe-inline' data:"), std::string::npos) << csp;
  EXPECT_NE(csp.find("font-src * data:"), std::string::npos) << csp;
  env_.block_remote_css_and_fonts = true;
  const std::string blocked(
      get("/view/m1.html", "other", "/mailbox/other/")["Content-Security-Policy"]);
  EXPECT_NE(blocked.find("style-src 'self' 'unsafe-inline' data:;"), std::string::npos) << blocked;
  EXPECT_NE(blocked.find("font-src 'self' data:;"), std::string::npos) << blocked;
  EXPECT_NE(blocked.find("img-src * data: blob:;"), std::string::npos) << blocked;
  EXPECT_EQ(blocked.find("style-src *"), std::string::npos) << blocked;
  env_.block_remote_css_and_fonts = false;

  EXPECT_EQ(get("/view/m0.html", "other").result(), bhttp::status::not_found);
  r = get("/view/m0.txt", "other");
  EXPECT_EQ(r.result(), bhttp::status::ok);
  EXPECT_EQ(r.body(), "hello text only");
  EXPECT_EQ(get("/view/m1.html").result(), bhttp::status::not_found);  // not in default

  r = get("/view/latest", "other", "/mailbox/other/");
  EXPECT_EQ(r.result(), bhttp::status::found);
  EXPECT_EQ(r[bhttp::field::location], "/mailbox/other/view/m1");
  r = get("/view/latest?query=only", "other", "/mailbox/other/");
  EXPECT_EQ(r[bhttp::field::location], "/mailbox/other/view/m0");
  EXPECT_EQ(get("/view/latest").body(), "Message not found");
  EXPECT_EQ(body_json(get("/api/v1/messages", "other")).at("total").to_number<std::uint64_t>(), 2u);
  EXPECT_EQ(body_json(get("/api/v1/messages")).at("total").to_number<std::uint64_t>(), 0u);
}

TEST(View, EmbedWrapsFragmentsAndKeepsDocuments) {
  auto doc = http::embed_html("<html><body><A HREF=x REL=nofollow>y</A><a/></body></html>");
  EXPECT_EQ(doc.find("<!DOCTYPE"), std::string::npos);
  EXPECT_NE(doc.find("<a HREF=x target=\"_blank\" rel=\"noreferrer noopener\">"),
            std::string::npos);
  EXPECT_NE(doc.find("<a target=\"_blank\" rel=\"noreferrer noopener\"/>"), std::string::npos);
  EXPECT_NE(doc.find("</script></body></html>"), std::string::npos);
  // "<a" inside a comment or a style block is not a link.
  doc = http::embed_html("<!-- <a href=1> --><style>a<b{}</style><abbr>t</abbr>");
  EXPECT_NE(doc.find("<!-- <a href=1> -->"), std::string::npos);
  EXPECT_NE(doc.find("<abbr>t</abbr>"), std::string::npos);
}

TEST_F(ApiTest, WaitReturnsNewArrivalOrTimesOut) {
  store_->add(entry("old", "report", 1000));
  // A message that arrives after the wait began is returned.
  std::thread sender([&] {
    for (int i = 0; i < 200 && events_->subscribers() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    store_->add(entry("unrelated", "nope", 2000));
    store_->add(entry("new", "report 2", 3000));
  });
  auto r = get("/api/v1/wait?query=report&timeout=10");
  sender.join();
  ASSERT_EQ(r.result(), bhttp::status::ok) << r.body();
  auto v = body_json(r);
  EXPECT_EQ(keys(v), kSummaryKeys);
  EXPECT_EQ(v.at("ID").as_string(), "new");
  EXPECT_TRUE(v.at("Cc").is_array());
  EXPECT_EQ(events_->subscribers(), 0u);  // unsubscribed

  // Already there since `since`: at once, the oldest such.
  v = body_json(get("/api/v1/wait?query=report&since=500&timeout=1"));
  EXPECT_EQ(v.at("ID").as_string(), "old");
  v = body_json(get("/api/v1/wait?query=report&since=1970-01-01T00:00:02Z&timeout=1"));
  EXPECT_EQ(v.at("ID").as_string(), "new");

  const auto t0 = std::chrono::steady_clock::now();
  r = get("/api/v1/wait?query=absent&timeout=300ms");
  EXPECT_EQ(r.result(), bhttp::status::request_timeout);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(290));
  EXPECT_EQ(get("/api/v1/wait?timeout=301").result(), bhttp::status::bad_request);
  EXPECT_EQ(get("/api/v1/wait?timeout=abc").result(), bhttp::status::bad_request);
  EXPECT_EQ(get("/api/v1/wait?since=never").result(), bhttp::status::bad_request);
  EXPECT_EQ(get("/api/v1/wait?query=%28bad&timeout=1").result(), bhttp::status::bad_request);

  // Draining ends a wait with 503.
  std::thread closer([&] {
    for (int i = 0; i < 200 && events_->subscribers() == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    listener_.gate_->close();
  });
  r = get("/api/v1/wait?query=absent&timeout=20");
  closer.join();
  EXPECT_EQ(r.result(), bhttp::status::service_unavailable);
}

// Sluice's /auth: the checks of the "auth" attribute, one entry each; 404 without checks.
TEST_F(ApiTest, AuthResults) {
  auto e = entry("a", "signed", 1000);
  e.m.attributes["auth"] = json::parse(R"({
    "spf": {"result": "pass", "reason": "ip4:192.0.2.0/24", "identity": "mailfrom",
            "mailfrom": "alice@example.org", "domain": "example.org"},
    "dkim": [{"result": "pass", "reason": "", "domain": "example.org", "selector": "s1"},
             {"result": "fail", "reason": "body hash", "domain": "other.example", "selector": "x"}],
    "dmarc": {"result": "pass", "reason": "", "from_domain": "example.org"}})");
  store_->add(e);
  store_->add(entry("b", "plain", 2000));
  auto r = get("/api/v1/message/a/auth");
  ASSERT_EQ(r.result(), bhttp::status::ok) << r.body();
  auto v = body_json(r);
  EXPECT_EQ(keys(v), (std::set<std::string>{"ID", "Checks", "Raw"}));
  const auto& checks = v.at("Checks").as_array();
  ASSERT_EQ(checks.size(), 4u);
  EXPECT_EQ(keys(checks[0]),
            (std::set<std::string>{"Method", "Result", "Reason", "Properties", "Details"}));
  EXPECT_EQ(checks[0].at("Method").as_string(), "spf");
  EXPECT_EQ(checks[0].at("Properties").at("smtp.mailfrom").as_string(), "alice@example.org");
  EXPECT_EQ(checks[2].at("Result").as_string(), "fail");
  EXPECT_EQ(checks[2].at("Properties").at("header.d").as_string(), "other.example");
  EXPECT_EQ(checks[3].at("Method").as_string(), "dmarc");
  EXPECT_EQ(checks[3].at("Properties").at("header.from").as_string(), "example.org");
  EXPECT_EQ(get("/api/v1/message/b/auth").result(), bhttp::status::not_found);
  EXPECT_EQ(get("/api/v1/message/zzz/auth").result(), bhttp::status::not_found);
}

// Sluice's /deliveries: the store's delivery log in API shape; 404 for an unknown message.
TEST_F(ApiTest, DeliveryLog) {
  store_->add(entry("a", "relayed", 1000));
  store_->delivery_log["a"] = json::parse(R"([
    {"ID": "a", "Stage": "relay", "Pipeline": "gw", "Attempt": 1, "Status": "retry",
     "Last": "451 4.7.1 try later", "At": 1000, "NextAttempt": 31000,
     "Details": {"server": "mx.example:25"}},
    {"ID": "a", "Stage": "relay", "Pipeline": "gw", "Attempt": 2, "Status": "done",
     "Last": "0  ", "At": 32000, "Details": null}])")
                                  .as_array();
  auto r = get("/api/v1/message/a/deliveries");
  ASSERT_EQ(r.result(), bhttp::status::ok) << r.body();
  auto v = body_json(r);
  EXPECT_EQ(v.at("ID").as_string(), "a");
  const auto& d = v.at("Deliveries").as_array();
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(keys(d[0]), (std::set<std::string>{"Time", "Stage", "Pipeline", "Attempt", "Status",
                                               "Reply", "NextAttempt", "Details"}));
  EXPECT_EQ(d[0].at("Time").as_string(), "1970-01-01T00:00:01Z");
  EXPECT_EQ(d[0].at("Status").as_string(), "retry");
  EXPECT_EQ(d[0].at("Reply").as_string(), "451 4.7.1 try later");
  EXPECT_EQ(d[0].at("NextAttempt").as_string(), "1970-01-01T00:00:31Z");
  EXPECT_EQ(d[0].at("Details").at("server").as_string(), "mx.example:25");
  EXPECT_TRUE(d[1].at("NextAttempt").is_null());
  EXPECT_EQ(d[1].at("Attempt").as_int64(), 2);
  store_->add(entry("b", "never deferred", 2000));
  r = get("/api/v1/message/b/deliveries");
  ASSERT_EQ(r.result(), bhttp::status::ok);
  EXPECT_TRUE(body_json(r).at("Deliveries").as_array().empty());
  EXPECT_EQ(get("/api/v1/message/zzz/deliveries").result(), bhttp::status::not_found);
}

// sa-check: the spam stage's attribute in Mailpit's SpamAssassin shape; 404 without it.
TEST_F(ApiTest, SaCheckFromSpamAttribute) {
  auto e = entry("s", "offer", 1000);
  e.m.attributes["spam"] = json::parse(R"({"engine": "native", "score": 7.5, "threshold": 5,
    "is_spam": true, "action": "tag",
    "rules": [{"name": "GTUBE_LIKE", "score": 6, "description": "a test"},
              {"name": "OTHER", "score": 1.5, "description": "another"}]})");
  store_->add(e);
  auto r = get("/api/v1/message/s/sa-check");
  ASSERT_EQ(r.result(), bhttp::status::ok) << r.body();
  auto v = body_json(r);
  EXPECT_EQ(keys(v), (std::set<std::string>{"Error", "IsSpam", "Score", "Rules"}));
  EXPECT_TRUE(v.at("IsSpam").as_bool());
  EXPECT_DOUBLE_EQ(v.at("Score").as_double(), 7.5);
  EXPECT_EQ(v.at("Error").as_string(), "");
  const auto& rules = v.at("Rules").as_array();
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(keys(rules[0]), (std::set<std::string>{"Name", "Score", "Description"}));
  EXPECT_EQ(rules[0].at("Name").as_string(), "GTUBE_LIKE");
  EXPECT_DOUBLE_EQ(rules[1].at("Score").as_double(), 1.5);
  EXPECT_EQ(get("/api/v1/message/latest/sa-check").result(), bhttp::status::ok);
  // Training is tested with the real binary (tests/plugins/spam/spam_binary_test.cpp).
}

}  // namespace
}  // namespace sluice::test
