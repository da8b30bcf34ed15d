// api_util.hpp — helpers shared by the API handlers (api_*.cpp, view.cpp, send.cpp, …).
//
// Request-body JSON decoding with Go's rules (Mailpit is written in Go: object keys match
// struct fields case-insensitively, an exact match preferred), Mailpit's error responses,
// parameter parsing, and the `latest` message id. Everything here is pure or awaits the
// mailbox service; nothing throws for bad input (it returns an error text instead).
//
// Threading: free functions, safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "routing.hpp"

namespace sluice::http::api {

namespace json = boost::json;

// JSON request bodies other than POST /api/v1/send are capped like Mailpit's (5 MB).
inline constexpr std::size_t kMaxJsonBody = 5u << 20;
// Longest message or part id accepted in a path; anything longer cannot exist.
inline constexpr std::size_t kMaxIdLength = 256;
// Upper bound of `limit` for list and search pages.
inline constexpr std::uint64_t kMaxPageLimit = 10000;

// The outcome of decoding a request body: the value, or why it is not acceptable.
struct body_result {
  json::value value;
  std::string error;       // empty when value is usable
  bool too_large = false;  // the body exceeded the limit (answer 413)
  bool empty = false;      // the body was empty or only whitespace
  explicit operator bool() const { return error.empty(); }
};

// Parses req.body() as JSON (at most `limit` bytes, nesting depth 64).
body_result parse_json_body(const request& req, std::size_t limit = kMaxJsonBody);

// The member `name` of o, matched as Go's encoding/json does: an exact key first, else a
// case-insensitive one. nullptr when absent.
const json::value* go_field(const json::object& o, std::string_view name);

// Reads an optional array-of-strings member ("IDs", "Tags"): null or absent gives an
// empty list; anything else than strings sets error.
bool read_string_array(const json::object& o, std::string_view name, std::vector<std::string>& out,
                       std::string& error);
bool read_string(const json::object& o, std::string_view name, std::string& out,
                 std::string& error);
bool read_bool(const json::object& o, std::string_view name, bool& out, std::string& error);

// 400 text/plain with Mailpit's conventions.
response bad_request(const request& req, std::string text);
// 404 "Message not found" (Mailpit's text for an unknown `latest`).
response message_not_found(const request& req);
// Go's textproto.CanonicalMIMEHeaderKey: "content-type" → "Content-Type"; a key with a
// byte that is not a token character is returned unchanged.
std::string go_canonical_header_key(std::string_view key);

// A non-negative decimal integer without sign or spaces; nullopt otherwise (or overflow).
std::optional<std::uint64_t> parse_uint(std::string_view s);

// A point in time from a query parameter: RFC 3339 ("2026-12-01T19:50:00.123Z",
// "…+01:00"), a date "YYYY-MM-DD" (midnight UTC) or an integer of milliseconds since the
// epoch. nullopt when unreadable.
std::optional<std::int64_t> parse_time_ms(std::string_view s);

// Milliseconds since the epoch, now.
std::int64_t now_ms();

// start/limit of a list or search (Mailpit's defaults 0 and 50; a zero limit means 50).
// Returns an error text for a value that is not a number.
struct page {
  std::uint64_t start = 0;
  std::uint64_t limit = 50;
};
std::optional<std::string> read_page(const request_context& ctx, page& out);

// The message id a path addresses: the id itself, or for "latest" the newest message
// matching ?query= (in ?tz=). nullopt when there is none.
boost::asio::awaitable<std::optional<std::string>> resolve_id(request_context& ctx,
                                                              const std::string& id);

// The id of a route's first path parameter, resolved; on failure *fail holds the 404.
// Use: auto id = co_await message_id(ctx, fail); if (!id) co_return std::move(*fail);
boost::asio::awaitable<std::optional<std::string>> message_id(request_context& ctx,
                                                              std::optional<response>& fail);

// Wraps a handler so that a search_error or std::invalid_argument from the store (a bad
// query, a bad tag name) is answered 400 with its text instead of escaping as a 500.
using handler_fn = boost::asio::awaitable<response> (*)(request_context&);
handler guarded(handler_fn fn);

// Sets Content-Type and returns the response (for bodies that are not JSON or text).
response bytes_response(const request& req, std::string content_type, std::string body,
                        bhttp::status s = bhttp::status::ok);

}  // namespace sluice::http::api
