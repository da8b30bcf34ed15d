// plugin.cpp — the store plugin's descriptor and factories.
//
// Service "store": opens (creating and migrating) the SQLite database, registers it as a
// `mailbox` service under the instance name, and returns it. Stage "store" (commits):
// stores each message into a mailbox of a store service.
//
// Factories run at startup and throw config_error for bad configuration, storage_error (at
// the section's location) for a database the system cannot open, read or write; nothing
// throws across the boundary at run time.
#include <memory>
#include <stdexcept>

#include <sqlite3.h>

#include "options.hpp"
#include "sluice/events.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/metrics.hpp"
#include "sluice/plugin.hpp"
#include "sqlite.hpp"
#include "stage.hpp"
#include "store.hpp"

namespace sluice::store {
namespace {

std::shared_ptr<service> make_store_service(instance_context& ctx) {
  store_options opts = parse_store_options(ctx.config, ctx.host);
  // check-config and reload only validate: opening the database here would migrate it
  // (check-config) or start a second writer on a file the running store owns (reload).
  // It declares the mailbox service it would register, for the consumers' checks.
  if (ctx.check_only) {
    ctx.host.services().declare(mailbox_service::kind, ctx.name);
    return nullptr;
  }
  auto& services = ctx.host.services();
  std::shared_ptr<sqlite_store> store;
  try {
    store = std::make_shared<sqlite_store>(opts, ctx.name, ctx.log, services.get<events>(),
                                           services.get<metrics>());
  } catch (const sqlite_error& e) {
    // A database the system cannot read or write is a storage failure, not a configuration
    // error: it is reported at the section, and the kernel exits with EX_IOERR.
    if (e.storage_failure()) {
      // SQLite's open errors name the file already ("open /x/mail.db: …").
      const std::string what = e.what();
      const bool named = what.find(opts.path.string()) != std::string::npos;
      throw storage_error(ctx.config.where() + ": " + ctx.config.path() +
                          ": cannot open the store database" +
                          (named ? std::string() : " " + opts.path.string()) + ": " + what);
    }
    ctx.config.fail(std::string("cannot open the store database: ") + e.what());
  } catch (const std::exception& e) {
    ctx.config.fail(std::string("cannot open the store database: ") + e.what());
  }
  services.add(mailbox_service::kind, ctx.name, store);
  ctx.log.info("store opened", {{"path", opts.path.string()},
                                {"compression", opts.compression_level},
                                {"durability", opts.durability_full ? "full" : "normal"}});
  return store;
}

std::shared_ptr<stage> make_store_stage(instance_context& ctx) {
  stage_options opts = parse_stage_options(ctx.config);
  try {
    mailbox_template check(opts.mailbox);
    if (check.fixed() && !valid_mailbox_name(opts.mailbox)) {
      throw std::invalid_argument("expected a mailbox name of 1 to 200 printable characters");
    }
  } catch (const std::invalid_argument& e) {
    ctx.config.at("mailbox").fail(e.what());
  }
  const std::string service_name = ctx.config.get_string("service", "");
  std::shared_ptr<service> found = ctx.host.services().find(mailbox_service::kind, service_name);
  // dynamic_cast is reliable here: a store object is always created by this library.
  auto store = std::dynamic_pointer_cast<sqlite_store>(found);
  // check-config builds no services: the store service has only been declared.
  const bool check_passes =
      ctx.check_only && ctx.host.services().declared(mailbox_service::kind, service_name);
  if (!found && check_passes) return nullptr;
  if (!store) {
    const std::string shown = service_name.empty() ? "default" : service_name;
    auto where = ctx.config.find("service");
    const config_node& at = where ? *where : ctx.config;
    if (found) at.fail("service \"" + shown + "\" is not a store service");
    at.fail("no store service named \"" + shown +
            "\" (add one under services: with plugin: store)");
  }
  return std::make_shared<store_stage>(ctx.host, std::move(store), std::move(opts));
}

void register_store(registrar& r) {
  r.add_service("store", make_store_service);
  r.add_stage("store", make_store_stage, stage_traits{.commits = true});
}

}  // namespace
}  // namespace sluice::store

SLUICE_PLUGIN("store", "0.1.0", "SQLite message store: the mailbox service and the store stage",
              ::sluice::store::register_store);
