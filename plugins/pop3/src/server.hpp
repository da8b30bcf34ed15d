// plugins/pop3/src/server.hpp — the POP3 listener: binds the configured addresses (TCP and
// unix sockets), accepts connections on the host's io_context and runs one session
// coroutine per connection, each on its own strand. It has no pipeline: it reads mail
// through the store's mailbox service.
//
// Ownership: the listener owns the acceptors; everything sessions share (settings, TLS
// context, users, the mailbox service, metrics) lives in a shared server_state that every
// session holds, so a session may outlive stop(). The kernel keeps the listener_context
// alive until the drain gate, which sessions hold, is idle.
// Failure: the factory and start() throw config_error / std::system_error when the
// configuration or an address cannot be used; after that nothing throws.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "settings.hpp"
#include "sluice/htpasswd.hpp"
#include "sluice/listener.hpp"
#include "sluice/log.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/metrics.hpp"
#include "sluice/plugin.hpp"
#include "sluice/session.hpp"

namespace sluice::pop3 {

// Metric handles; null when no metrics service is registered. The connection ones
// (connections, connections_refused, sessions_active, timeouts) come from the SDK's
// connection_metrics.
struct pop3_metrics : connection_metrics {
  counter* auth_success = nullptr;
  counter* auth_failure = nullptr;
  counter* in_use = nullptr;              // logins refused with [IN-USE]
  counter* messages_retrieved = nullptr;  // RETR
  counter* messages_deleted = nullptr;    // removed at UPDATE
  counter* bytes_sent = nullptr;
};

// host, lctx, name, log, tls (null when tls.mode is off) and the open-connection count
// come from the SDK's listener_state.
struct server_state : listener_state {
  using listener_state::listener_state;
  pop3::settings cfg;
  std::shared_ptr<const sluice::htpasswd> users;
  bool apop_offered = false;  // apop on and at least one user has a plain-text secret
  std::shared_ptr<mailbox_service> mailboxes;  // null only in check-config
  pop3_metrics metrics;

  // The mailbox `user` logs in to.
  std::string mailbox_for(const std::string& user) const;
};

std::shared_ptr<listener> make_listener(instance_context& ctx, listener_context& lctx);

}  // namespace sluice::pop3
