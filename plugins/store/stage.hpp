// stage.hpp — the `store` pipeline stage: the commit point of an inline pipeline.
//
// process() chooses the mailboxes (a fixed name or a template expanded per message or per
// recipient), prepares the row once (on the I/O thread for small in-memory bodies,
// otherwise on the host's workers), queues it to the store's writer and awaits the group
// commit: every copy commits in one transaction, and the stage returns continue only once
// they are durable. Expected failures (disk full, I/O error, shutdown) become a tempfail
// with a client-safe text, never an exception.
//
// Threading: process() may run concurrently on any I/O thread; the stage is immutable
// after construction. Ownership: the stage and each process() frame share the store.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sluice/config.hpp"
#include "sluice/stage.hpp"
#include "store.hpp"

namespace sluice::store {

// `mailbox:` as configured: literal text and {auth_user}, {rcpt_domain}, {rcpt_local},
// {listener} placeholders.
class mailbox_template {
 public:
  // Throws std::invalid_argument naming an unknown placeholder or an unclosed brace.
  explicit mailbox_template(std::string_view text);
  // Whether it varies per envelope recipient ({rcpt_domain}, {rcpt_local}).
  bool per_recipient() const noexcept { return per_recipient_; }
  bool fixed() const noexcept { return parts_.size() <= 1 && !has_fields_; }
  // The distinct mailboxes of a message, in recipient order; an expansion that is empty
  // or not a valid mailbox name becomes `fallback`.
  std::vector<std::string> expand(const message& msg, const std::string& fallback) const;

 private:
  enum class piece : std::uint8_t { text, auth_user, rcpt_domain, rcpt_local, listener };
  std::vector<std::pair<piece, std::string>> parts_;
  bool per_recipient_ = false;
  bool has_fields_ = false;
};

struct stage_options {
  std::string mailbox = "default";
  std::string fallback_mailbox = "default";
  // Honour the "mailbox" attribute (the mailbox a submitter addressed) over `mailbox`.
  bool requested_mailbox = true;
  tag_sources tags;
  std::vector<tag_rule> rules;
  // `duplicates: drop`: a copy whose mailbox holds the Message-ID already is not stored;
  // when no copy is new the stage returns discard (250, later stages skipped).
  bool drop_duplicate_ids = false;
  // `dates: message`: the message is dated (created, sorted, pruned) by its Date header as
  // the mime stage parsed it, instead of its arrival; arrival when there is none.
  bool message_dates = false;
};

// Reads the stage keys (mailbox, fallback_mailbox, requested_mailbox, duplicates, dates,
// tags{…}); throws config_error.
stage_options parse_stage_options(const config_node& cfg);

class store_stage final : public sluice::stage {
 public:
  store_stage(sluice::host& host, std::shared_ptr<sqlite_store> store, stage_options opts);

  boost::asio::awaitable<verdict> process(std::shared_ptr<message> msg,
                                          const stage_call& call) override;

  // The mailboxes a message goes to (distinct, valid names, at least one).
  std::vector<std::string> choose_mailboxes(const message& msg) const;

 private:
  sluice::host& host_;
  std::shared_ptr<sqlite_store> store_;
  const stage_options opts_;
  const mailbox_template template_;
};

// The reply for a failed write: 452 for a full disk, 552 for an oversized message, 451
// otherwise. Texts are safe to show a client (no paths, no SQLite messages).
verdict verdict_for_failure(int sqlite_rc);

// Validates a mailbox name (non-empty, printable, at most 200 bytes).
bool valid_mailbox_name(std::string_view name);

}  // namespace sluice::store
