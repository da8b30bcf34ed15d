// plugins/pop3/src/plugin.cpp — the pop3 plugin's descriptor: registers the "pop3" listener
// factory. Factories run at startup and may throw config_error; nothing else here runs later.
#include "sluice/plugin.hpp"
#include "server.hpp"

namespace {

void register_pop3(sluice::registrar& reg) {
  reg.add_listener("pop3", [](sluice::instance_context& ctx, sluice::listener_context& lctx) {
    return sluice::pop3::make_listener(ctx, lctx);
  });
}

}  // namespace

SLUICE_PLUGIN("pop3", "0.1.0",
              "POP3 listener over the mailbox service (RFC 1939, 2449, 2595, 3206, 5034)",
              register_pop3);
