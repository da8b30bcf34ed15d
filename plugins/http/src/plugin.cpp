// plugins/http/src/plugin.cpp — the http plugin's descriptor: registers the "http" listener
// factory (web UI, Mailpit-compatible REST API, WebSocket events, probes and metrics).
// The factory runs at startup and may throw config_error; nothing else here runs later.
#include "sluice/plugin.hpp"
#include "server.hpp"

namespace {

void register_http(sluice::registrar& reg) {
  reg.add_listener("http", [](sluice::instance_context& ctx, sluice::listener_context& lctx) {
    return sluice::http::make_listener(ctx, lctx);
  });
}

}  // namespace

SLUICE_PLUGIN(
    "http", "0.1.0",
    "HTTP listener: Mailpit-compatible API, web UI, WebSocket events (RFC 9112, RFC 6455)",
    register_http);
