// plugins/pop3/src/maildrop.hpp — what a logged-in POP3 session works on: the maildrop
// snapshot (message ids, UIDs and exact sizes, numbered 1..N oldest first, fixed at login),
// the process-wide exclusive maildrop locks (RFC 1939 §8), and the cache of exact sizes.
//
// Threading: maildrop_locks and size_cache are process-wide and thread-safe (one mutex
// each, held only for map operations). A maildrop (the snapshot) belongs to one session
// and is used on its strand only.
// Failure: take_snapshot and the size helpers let the mailbox service's exceptions
// (std::runtime_error) through to the session, which answers -ERR [SYS/TEMP].
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "sluice/mailbox.hpp"

namespace sluice::pop3 {

// Exclusive locks on (mailbox service, mailbox) within the process: a second session that
// logs in to a locked maildrop gets -ERR [IN-USE]. Several POP3 listeners of one process
// share the locks (the plugin is loaded once).
class maildrop_locks {
 public:
  class lock {
   public:
    lock() = default;
    lock(lock&& o) noexcept : owner_(o.owner_), key_(std::move(o.key_)) { o.owner_ = nullptr; }
    lock& operator=(lock&& o) noexcept;
    ~lock() { release(); }
    void release();
    explicit operator bool() const { return owner_ != nullptr; }

   private:
    friend class maildrop_locks;
    maildrop_locks* owner_ = nullptr;
    std::string key_;
  };

  static maildrop_locks& instance();
  // An empty lock when the maildrop is already locked.
  lock try_lock(const void* service, const std::string& mailbox);
  bool locked(const void* service, const std::string& mailbox) const;

 private:
  static std::string key(const void* service, const std::string& mailbox);
  mutable std::mutex mu_;
  std::set<std::string, std::less<>> held_;
};

// Exact POP3 sizes (normalized_size of the raw output) by (service, mailbox, id). Stored
// messages never change, so an entry stays true until the message is deleted; the cache
// holds at most `capacity` entries and is cleared when full (simple and bounded).
class size_cache {
 public:
  static size_cache& instance();
  std::optional<std::uint64_t> find(const void* service, const std::string& mailbox,
                                    const std::string& id) const;
  void put(const void* service, const std::string& mailbox, const std::string& id,
           std::uint64_t size);
  void erase(const void* service, const std::string& mailbox, const std::string& id);

 private:
  static std::string key(const void* service, const std::string& mailbox, const std::string& id);
  static constexpr std::size_t capacity = 200'000;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::uint64_t> sizes_;
};

struct maildrop_entry {
  std::string id;                     // the store's message id
  std::string uid;                    // uid_for(id)
  std::optional<std::uint64_t> size;  // exact POP3 size, once known
  bool deleted = false;               // marked by DELE, cleared by RSET
};

class maildrop {
 public:
  maildrop(std::shared_ptr<mailbox_service> svc, std::string mailbox)
      : svc_(std::move(svc)), mailbox_(std::move(mailbox)) {}

  // Lists the mailbox (the newest max_messages if not 0), numbered oldest first.
  boost::asio::awaitable<void> load(std::uint64_t max_messages);

  std::size_t count() const { return entries_.size(); }
  // 1-based; nullptr when n is out of range.
  maildrop_entry* at(std::uint64_t n);
  std::vector<maildrop_entry>& entries() { return entries_; }
  const std::string& mailbox() const { return mailbox_; }
  mailbox_service& service() { return *svc_; }

  // The exact size of entry n (fetches the message once if the cache does not know it);
  // nullopt when the message is no longer in the store.
  boost::asio::awaitable<std::optional<std::uint64_t>> size_of(std::uint64_t n);
  // Sizes of every entry not deleted, fetching what is unknown.
  boost::asio::awaitable<void> fill_sizes();
  // The message as RETR/TOP send it (raw output with header edits); nullopt when gone.
  // Records its exact size.
  boost::asio::awaitable<std::optional<std::string>> fetch(std::uint64_t n);

  // Removes the messages marked deleted (UPDATE state). Returns how many the store removed
  // (a marked message deleted through the API meanwhile is not counted).
  boost::asio::awaitable<std::size_t> expunge();

 private:
  std::shared_ptr<mailbox_service> svc_;
  std::string mailbox_;
  std::vector<maildrop_entry> entries_;
};

}  // namespace sluice::pop3
