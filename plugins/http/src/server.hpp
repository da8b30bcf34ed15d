// plugins/http/src/server.hpp — the http listener: binds TCP and unix-socket addresses,
// accepts connections on the host's io_context and runs one connection coroutine per
// socket, each on its own strand (session.cpp); serves the API through the router, the
// web UI from a directory and the event stream over WebSocket.
//
// Ownership: the listener owns its acceptors; everything connections share (settings, TLS
// context, credentials, the router, the API environment, the WebSocket hub, metrics) lives
// in a server_state that every connection holds by shared_ptr, so a connection may outlive
// stop(). The kernel keeps the listener_context alive until the drain gate is idle, and
// every connection holds the gate.
// Failure: make_listener()/start() throw config_error or std::system_error at startup;
// after that nothing throws out of the listener.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "auth.hpp"
#include "routing.hpp"
#include "settings.hpp"
#include "sluice/listener.hpp"
#include "sluice/plugin.hpp"
#include "sluice/session.hpp"
#include "static_files.hpp"

namespace sluice::http {

class ws_hub;

// Metric handles; null when no metrics service is registered.
struct http_metrics {
  counter* connections = nullptr;
  counter* connections_refused = nullptr;
  gauge* connections_active = nullptr;
  counter* requests[6] = {};  // by status class: 1xx … 5xx, [0] for anything else
  histogram* duration = nullptr;
  counter* auth_failures = nullptr;
  counter* cors_refused = nullptr;
  counter* timeouts = nullptr;
  gauge* websockets_active = nullptr;
  counter* websocket_frames = nullptr;
  counter* websocket_slow_disconnects = nullptr;
};

// host, lctx, name, log, tls (null: plain HTTP) and the open-connection count come from
// the SDK's listener_state.
struct server_state : listener_state {
  using listener_state::listener_state;
  http::settings cfg;
  std::shared_ptr<credential_set> ui_auth;    // null: no authentication
  std::shared_ptr<credential_set> send_auth;  // null: the UI rules apply to send
  std::shared_ptr<static_files> ui;
  http::router routes;
  api_env env;
  std::shared_ptr<ws_hub> hub;
  http_metrics metrics;
  std::atomic<bool> ready{false};
  std::atomic<bool> stopping{false};
};

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx);

// The Prometheus page: the kernel's metrics plus Mailpit's names for `mailbox`.
boost::asio::awaitable<std::string> render_metrics(const server_state& st, std::string mailbox);

// The core's own routes (livez, readyz, metrics, api/events), added after the API's.
void add_core_routes(std::shared_ptr<server_state> st);

// The directory the web UI is installed in, relative to this plugin's own file
// (<prefix>/lib/sluice/plugins/http.so -> <prefix>/share/sluice/webui).
std::filesystem::path default_ui_dir();
// <prefix>/share/sluice/caniemail.json, beside the web UI.
std::filesystem::path default_html_check_data();

}  // namespace sluice::http
