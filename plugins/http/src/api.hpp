// api.hpp — how the API handler files register their routes with the router.
//
// add_api_routes() (routing.hpp, defined in api.cpp) calls each group below once at
// startup. Each group lives in its own file; the handlers only see a request_context.
#pragma once

#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "routing.hpp"
#include "sluice/mailbox.hpp"

namespace sluice::http::api {

void add_message_routes(router& r);  // api_messages.cpp: /messages, /search, /message/{ID}…
void add_misc_routes(router& r);     // api_misc.cpp: tags, chaos, info, webui, mailboxes, swagger
void add_send_routes(router& r);     // send.cpp: POST /api/v1/send
void add_view_routes(router& r);     // view.cpp: /view/…
void add_wait_routes(router& r);     // wait.cpp: GET /api/v1/wait

// MessagesSummary for one page of a search (Mailpit key order: total, unread, count,
// messages_count, messages_unread, start, tags, messages).
boost::json::object messages_summary_json(const search_result& r, std::uint64_t start);

// Sum of every sample of the counter `name` in a Prometheus text exposition whose labels
// include label=value (any value when label is empty).
double sum_prometheus(std::string_view text, std::string_view name, std::string_view label = {},
                      std::string_view value = {});

// POST /api/v1/message/{ID}/release for a resolved id (api_release.cpp): loads the stored
// message, addresses it to the request's "To" and submits it into the release pipeline.
boost::asio::awaitable<response> release_stored(request_context& ctx, std::string id);

// The OpenAPI document with its server URL set to the mailbox base.
boost::json::value openapi_document(const std::string& base);

}  // namespace sluice::http::api
