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
#include "sluice/session.hpp"

namespace sluice::smtp {

// Metric handles; any of them may be null when no metrics service is registered. The
// connection ones (connections, connections_refused, sessions_active, timeouts) come from
// the SDK's connection_metrics.
struct smtp_metrics : connection_metrics {
  counter* messages_accepted = nullptr;
  counter* messages_rejected = nullptr;
  counter* messages_tempfail = nullptr;
  counter* messages_too_big = nullptr;
  counter* messages_discarded = nullptr;  // accepted (250) and dropped by a discard verdict
  counter* accepted_bytes = nullptr;      // sizes of accepted messages (Mailpit's SMTPAcceptedSize)
  counter* auth_success = nullptr;
  counter* auth_failure = nullptr;
  counter* bytes_received = nullptr;
};

// host, lctx, name, log, tls (null when tls.mode is off) and the open-connection count
// come from the SDK's listener_state.
struct server_state : listener_state {
  using listener_state::listener_state;
  smtp::settings cfg;
  std::shared_ptr<const sluice::htpasswd> users;  // null without auth.htpasswd
  smtp_metrics metrics;
  std::shared_ptr<chaos_service> chaos;    // null: no chaos
  std::shared_ptr<sluice::events> events;  // null: no event bus (error events)
};

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx);

}  // namespace sluice::smtp
