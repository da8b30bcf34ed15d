// plugins/http/src/session.hpp — one HTTP/1.1 connection (RFC 9112): a coroutine on the
// connection's strand that reads requests, answers them in order (keep-alive, no
// pipelining of answers out of order) and hands a WebSocket upgrade to websocket.cpp.
//
// For each request the core, in this order: redirects a non-canonical path (301, as Go's
// ServeMux), strips the web root and a /mailbox/{name} prefix (unknown mailbox: 404),
// answers the health probes, checks the Origin (403), answers CORS preflights, checks the
// credentials (401), reads the body under its limit (413), then dispatches through the
// router, the core routes or the static web UI; it adds the security headers, gzip and
// the HEAD rule to whatever the handler returned.
//
// Limits: header size, body size, idle (keep-alive), read and write timeouts (a request
// that is too slow is dropped). Drain: when the gate closes, a connection waiting for the
// next request is closed at once; a busy one finishes its response with
// "Connection: close". A handler's exception is logged and answered 500.
#pragma once

#include <memory>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "server.hpp"

namespace sluice::http {

struct peer_info {
  std::string address;  // "127.0.0.1:5555", "unix"
};

// Each takes a socket whose executor is the connection's strand.
void start_session(std::shared_ptr<server_state> st, boost::asio::ip::tcp::socket sock,
                   peer_info peer);
void start_session(std::shared_ptr<server_state> st,
                   boost::asio::local::stream_protocol::socket sock, peer_info peer);

}  // namespace sluice::http
