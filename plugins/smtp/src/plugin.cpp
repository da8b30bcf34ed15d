// plugins/smtp/src/plugin.cpp — the smtp plugin's descriptor: registers the "smtp" listener
// factory (SMTP and, with mode: lmtp, LMTP) and the `sluice sendmail` command.
// Factories run at startup and may throw config_error; nothing else here runs later.
#include "sluice/plugin.hpp"
#include "chaos.hpp"
#include "sendmail.hpp"
#include "server.hpp"

namespace {

void register_smtp(sluice::registrar& reg) {
  reg.add_listener("smtp", [](sluice::instance_context& ctx, sluice::listener_context& lctx) {
    return sluice::smtp::make_listener(ctx, lctx);
  });
  reg.add_service("chaos", sluice::smtp::make_chaos_service);
  reg.add_command(
      "sendmail", "read a message on stdin and submit it over SMTP (sendmail -t ...)",
      [](std::span<const std::string> args) { return sluice::smtp::sendmail_main(args); });
}

}  // namespace

SLUICE_PLUGIN("smtp", "0.1.0", "SMTP/LMTP listener (RFC 5321, ESMTP extensions, LMTP)",
              register_smtp);
