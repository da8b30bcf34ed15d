// stage.cpp — the `store` stage (see stage.hpp).
#include "stage.hpp"

#include <exception>

#include "async.hpp"
#include "sluice/host.hpp"

namespace sluice::store {

store_stage::store_stage(sluice::host& host, std::shared_ptr<sqlite_store> store,
                         std::string mailbox)
    : host_(host), store_(std::move(store)), mailbox_(std::move(mailbox)) {
  store_->declare_mailbox(mailbox_);
}

std::string store_stage::choose_mailbox(const message& /*msg*/) const {
  return mailbox_;
}

verdict verdict_for_failure(int rc) {
  switch (rc & 0xff) {
    case SQLITE_FULL:
      return verdict::tempfail(452, "4.3.1", "Insufficient system storage");
    case SQLITE_TOOBIG:
      return verdict::reject(552, "5.3.4", "Message too big for the mail store");
    default:
      return verdict::local_error();
  }
}

bool valid_mailbox_name(std::string_view name) {
  if (name.empty() || name.size() > 200) return false;
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return false;
  }
  return true;
}

boost::asio::awaitable<verdict> store_stage::process(std::shared_ptr<message> msg,
                                                     const stage_call& call) {
  // Copies: this frame may outlive the call (timeout), and must keep what it touches.
  std::shared_ptr<sqlite_store> store = store_;
  const int level = store->options().compression_level;
  const std::string mailbox = choose_mailbox(*msg);
  prepared_message row;
  try {
    if (prepare_inline_ok(*msg)) {
      row = prepare_message(*msg, mailbox, level);
    } else {
      // Reading a spooled body and compressing megabytes is blocking work.
      // A large zstd frame is spilled next to the spooled bodies (same file system).
      auto prepare = [msg, mailbox, level, scratch = host_.spool_dir()] {
        return prepare_message(*msg, mailbox, level, scratch);
      };
      row = co_await run_blocking(host_.workers().get_executor(), std::move(prepare));
    }
  } catch (const std::exception& e) {
    call.log.warn("store could not read the message", {{"error", e.what()}});
    co_return verdict_for_failure(SQLITE_IOERR);
  }
  const write_result r = co_await store->insert(std::move(row));
  if (!r.ok()) {
    call.log.warn("store failed to commit the message",
                  {{"rc", r.rc}, {"error", r.error}, {"store", store->name()}});
    co_return verdict_for_failure(r.rc);
  }
  call.log.debug("message stored", {{"store", store->name()}, {"mailbox", mailbox}});
  co_return verdict::next();
}

}  // namespace sluice::store
