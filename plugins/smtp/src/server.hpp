// plugins/smtp/src/server.hpp — the SMTP/LMTP listener: binds the configured addresses,
// accepts connections on the host's io_context and runs one session coroutine per
// connection, each on its own strand.
//
// Ownership: the listener owns the acceptors; everything sessions share (settings, TLS
// context, credentials, metrics, the listener_context reference) lives in a shared
// server_state that every session holds, so a session may outlive stop(). The kernel keeps
// the listener_context alive until the drain gate is idle, which sessions hold.
// Failure: start() throws config_error / std::system_error when an address cannot be used;
// after that nothing throws.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "settings.hpp"
#include "sluice/chaos.hpp"
#include "sluice/events.hpp"
#include "sluice/htpasswd.hpp"
#include "sluice/listener.hpp"
#include "sluice/log.hpp"
#include "sluice/metrics.hpp"
#include "sluice/plugin.hpp"

namespace sluice::smtp {

// Metric handles; any of them may be null when no metrics service is registered.
struct smtp_metrics {
  counter* connections = nullptr;
  counter* connections_refused = nullptr;  // over max_connections or drain
  gauge* sessions_active = nullptr;
  counter* messages_accepted = nullptr;
  counter* messages_rejected = nullptr;
  counter* messages_tempfail = nullptr;
  counter* messages_too_big = nullptr;
  counter* messages_discarded = nullptr;  // accepted (250) and dropped by a discard verdict
  counter* accepted_bytes = nullptr;      // sizes of accepted messages (Mailpit's SMTPAcceptedSize)
  counter* auth_success = nullptr;
  counter* auth_failure = nullptr;
  counter* bytes_received = nullptr;
  counter* timeouts = nullptr;
};

struct server_state {
  server_state(sluice::host& h, listener_context& l) : host(h), lctx(l) {}
  sluice::host& host;
  listener_context& lctx;
  std::string name;  // listener instance name
  sluice::logger log;
  smtp::settings cfg;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null when tls.mode is off
  std::shared_ptr<const sluice::htpasswd> users;   // null without auth.htpasswd
  smtp_metrics metrics;
  std::shared_ptr<chaos_service> chaos;    // null: no chaos
  std::shared_ptr<sluice::events> events;  // null: no event bus (error events)
  std::atomic<std::size_t> connections{0};
};

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx);

}  // namespace sluice::smtp
