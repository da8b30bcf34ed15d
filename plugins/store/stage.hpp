// stage.hpp — the `store` pipeline stage: the commit point of an inline pipeline.
//
// process() prepares the row (on the I/O thread for small in-memory bodies, otherwise on
// the host's workers), queues it to the store's writer and awaits the group commit; it
// returns continue only once the message is durable. Expected failures (disk full, I/O
// error, shutdown) become a tempfail with a client-safe text, never an exception.
//
// Threading: process() may run concurrently on any I/O thread; the stage is immutable
// after construction. Ownership: the stage and each process() frame share the store.
#pragma once

#include <memory>
#include <string>

#include "sluice/stage.hpp"
#include "store.hpp"

namespace sluice::store {

class store_stage final : public sluice::stage {
 public:
  store_stage(sluice::host& host, std::shared_ptr<sqlite_store> store, std::string mailbox);

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override;

  // The mailbox a message goes to. One place, so mailbox templates can replace it.
  std::string choose_mailbox(const message& msg) const;

 private:
  sluice::host& host_;
  std::shared_ptr<sqlite_store> store_;
  std::string mailbox_;
};

// The reply for a failed write: 452 for a full disk, 552 for an oversized message, 451
// otherwise. Texts are safe to show a client (no paths, no SQLite messages).
verdict verdict_for_failure(int sqlite_rc);

// Validates a configured mailbox name (non-empty, printable, at most 200 bytes).
bool valid_mailbox_name(std::string_view name);

}  // namespace sluice::store
