// routing.hpp — the contract between the HTTP server core and the API handlers.
//
// The core (server.cpp, session.cpp, …) owns sockets, TLS, authentication, CORS, gzip,
// limits, the WebSocket and static files. For every request it has authenticated and
// whose path it has stripped of the web root and of a `/mailbox/{name}` prefix, it asks
// the router for a handler and awaits it. Handlers (api_*.cpp, view.cpp, send.cpp, …)
// only see a request_context and return a response; they never touch sockets.
//
// Threading: handlers run on an I/O thread (a connection's strand); blocking work goes to
// the store's own threads or sluice::offload. A handler may run concurrently with any
// other. Handlers do not throw for bad input: they answer 4xx (Mailpit's texts); an
// exception that escapes is answered 500 by the core and logged.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/json/value.hpp>

#include "html_check.hpp"
#include "link_check.hpp"
#include "sluice/chaos.hpp"
#include "sluice/events.hpp"
#include "sluice/host.hpp"
#include "sluice/listener.hpp"
#include "sluice/log.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/metrics.hpp"
#include "sluice/submit.hpp"

namespace sluice::http {

namespace bhttp = boost::beast::http;
using request = bhttp::request<bhttp::string_body>;
using response = bhttp::response<bhttp::string_body>;

// What the API handlers may use; built once by the listener, shared by all requests.
struct api_env {
  sluice::host* host = nullptr;
  sluice::logger log;
  std::shared_ptr<mailbox_service> store;             // never null
  std::shared_ptr<sluice::events> events;             // may be null
  std::shared_ptr<sluice::metrics> metrics;           // may be null
  std::shared_ptr<chaos_service> chaos;               // null: chaos disabled
  listener_context* submit = nullptr;                 // for POST /api/v1/send; null: no pipeline
  std::string default_mailbox = "default";            // the mailbox served at the web root
  std::string label;                                  // Mailpit's --label
  std::uint64_t max_send_bytes = 50ull << 20;         // POST /api/v1/send body limit
  std::string version;                                // sluice version, for /api/v1/info
  std::int64_t started_ms = 0;                        // for uptime
  bool block_remote_css_and_fonts = false;            // the HTML view's CSP (view_csp)
  std::shared_ptr<const link_checker> links;          // GET …/link-check; never null once serving
  std::shared_ptr<const html_check_data> html_check;  // GET …/html-check; null: 404

  // POST /api/v1/message/{ID}/release (api_release.cpp): null pipelines = release is off.
  std::shared_ptr<pipeline_service> pipelines;
  std::string release_pipeline;               // the pipeline release submits into
  std::string release_sender;                 // envelope sender override; empty: the original's
  bool release_preserve_message_ids = false;  // keep the released copy's Message-ID and Date
};

struct request_context {
  const request& req;
  const api_env& env;
  // The path after the web root and any /mailbox/{name} prefix, always starting with '/'
  // ("/api/v1/messages"), percent-decoding not applied.
  std::string path;
  // Query parameters, percent-decoded; a repeated key keeps the last value.
  std::unordered_map<std::string, std::string> query;
  // Path parameters captured by the route pattern ({ID}, {PartID}, {Tag}), decoded.
  std::vector<std::string> params;
  // The mailbox this request addresses (the default one at the web root).
  std::string mailbox;
  // The URL prefix of this mailbox: web root plus "mailbox/<name>/" when addressed so,
  // always ending in '/'; handlers build links with it ("<base>api/v1/message/…").
  std::string base;
  std::string user;  // the authenticated Basic-auth user, empty if none

  const std::string* param(std::string_view key) const {
    auto it = query.find(std::string(key));
    return it == query.end() ? nullptr : &it->second;
  }
};

using handler = std::function<boost::asio::awaitable<response>(request_context&)>;

// Routes by method and path pattern. A pattern is a path whose segments may be "{name}"
// (one segment, captured in order into request_context::params); an optional suffix like
// "{ID}.html" captures the part before it. Routes are added at startup only.
class router {
 public:
  void add(bhttp::verb method, std::string pattern, handler h);
  // The handler for method and path, filling params; nullptr when no route matches.
  // `path_known` is set when some route matches the path with another method (405).
  const handler* match(bhttp::verb method, std::string_view path, std::vector<std::string>& params,
                       bool& path_known) const;

 private:
  struct route {
    bhttp::verb method;
    std::vector<std::string> segments;
    handler h;
  };
  std::vector<route> routes_;
};

// Response helpers with Mailpit's conventions (mailpit-compat.md §2).
response json_response(const request& req, const boost::json::value& v,
                       bhttp::status s = bhttp::status::ok);
// text/plain; charset=utf-8
response text_response(const request& req, bhttp::status s, std::string body);
// 200 "ok"
response ok_response(const request& req);
// 404 "404 page not found\n" (Go's ServeMux text)
response not_found(const request& req);

// The API routes: /api/v1/*, /view/*, and the wait endpoint (api.cpp and friends).
void add_api_routes(router& r);

}  // namespace sluice::http
