// plugins/http/src/cors.hpp — the Origin check (Fetch standard CORS, Mailpit's --api-cors).
//
// A request with an Origin header is allowed when the Origin's host[:port] equals the
// request's Host (same host, ASCII case-insensitive), when "*" is configured, or when the
// host[:port] is in the configured list (ports must match: "example.com" does not admit
// "example.com:8080"). Anything else is refused with 403 — also for the WebSocket upgrade,
// which browsers do not protect with CORS (cross-site WebSocket hijacking, CVE-2026-22689).
// A request without Origin (curl, same-origin navigation) is allowed.
//
// Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sluice::http {

// The host[:port] of an Origin value ("https://a.example:8080" -> "a.example:8080"), lower
// case; empty for an opaque origin ("null") or something that is not a URL.
std::string origin_host(std::string_view origin);

// `allowed` is the sorted list from settings::api_cors.
bool origin_allowed(std::string_view origin, std::string_view host,
                    const std::vector<std::string>& allowed);

}  // namespace sluice::http
