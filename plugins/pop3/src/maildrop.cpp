// plugins/pop3/src/maildrop.cpp — see maildrop.hpp.
#include "maildrop.hpp"

#include <algorithm>
#include <cstdio>
#include <unordered_set>

#include "protocol.hpp"

namespace sluice::pop3 {
namespace {
// Messages per search call while listing; the store caps a page at 100 000.
constexpr std::uint64_t list_page = 10'000;
}  // namespace

// ------------------------------------------------------------------------ maildrop_locks

maildrop_locks::lock& maildrop_locks::lock::operator=(lock&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    key_ = std::move(o.key_);
    o.owner_ = nullptr;
  }
  return *this;
}

void maildrop_locks::lock::release() {
  if (!owner_) return;
  std::lock_guard lk(owner_->mu_);
  owner_->held_.erase(key_);
  owner_ = nullptr;
}

maildrop_locks& maildrop_locks::instance() {
  // Never destroyed: sessions may release locks while the process exits.
  static auto* locks = new maildrop_locks();
  return *locks;
}

std::string maildrop_locks::key(const void* service, const std::string& mailbox) {
  char p[32];
  std::snprintf(p, sizeof p, "%p", service);
  return std::string(p) + '\n' + mailbox;
}

maildrop_locks::lock maildrop_locks::try_lock(const void* service, const std::string& mailbox) {
  lock l;
  std::string k = key(service, mailbox);
  std::lock_guard lk(mu_);
  if (!held_.insert(k).second) return l;
  l.owner_ = this;
  l.key_ = std::move(k);
  return l;
}

bool maildrop_locks::locked(const void* service, const std::string& mailbox) const {
  std::lock_guard lk(mu_);
  return held_.contains(key(service, mailbox));
}

// ---------------------------------------------------------------------------- size_cache

size_cache& size_cache::instance() {
  static auto* cache = new size_cache();
  return *cache;
}

std::string size_cache::key(const void* service, const std::string& mailbox,
                            const std::string& id) {
  char p[32];
  std::snprintf(p, sizeof p, "%p", service);
  return std::string(p) + '\n' + mailbox + '\n' + id;
}

std::optional<std::uint64_t> size_cache::find(const void* service, const std::string& mailbox,
                                              const std::string& id) const {
  std::string k = key(service, mailbox, id);
  std::lock_guard lk(mu_);
  auto it = sizes_.find(k);
  if (it == sizes_.end()) return std::nullopt;
  return it->second;
}

void size_cache::put(const void* service, const std::string& mailbox, const std::string& id,
                     std::uint64_t size) {
  std::string k = key(service, mailbox, id);
  std::lock_guard lk(mu_);
  if (sizes_.size() >= capacity) sizes_.clear();
  sizes_[std::move(k)] = size;
}

void size_cache::erase(const void* service, const std::string& mailbox, const std::string& id) {
  std::string k = key(service, mailbox, id);
  std::lock_guard lk(mu_);
  sizes_.erase(k);
}

// ------------------------------------------------------------------------------ maildrop

boost::asio::awaitable<void> maildrop::load(std::uint64_t max_messages) {
  entries_.clear();
  std::vector<std::string> newest_first;
  std::unordered_set<std::string> seen;
  search_request q;
  q.mailbox = mailbox_;
  q.limit = list_page;
  // Pages are read newest first by offset. A message arriving meanwhile shifts the rest
  // towards later offsets, so a page may repeat ids (dropped by `seen`) but never skips
  // one; the loop is bounded by the total the first page reported.
  std::uint64_t pages_left = 1;
  for (std::uint64_t page = 0; page < pages_left; ++page) {
    search_result r = co_await svc_->search(q);
    if (page == 0) pages_left = r.total / list_page + 2;
    for (auto& m : r.messages) {
      if (max_messages != 0 && newest_first.size() >= max_messages) break;
      if (seen.insert(m.id).second) newest_first.push_back(std::move(m.id));
    }
    if (r.messages.size() < list_page) break;
    if (max_messages != 0 && newest_first.size() >= max_messages) break;
    q.offset += list_page;
  }
  entries_.reserve(newest_first.size());
  const void* key = svc_.get();
  for (auto it = newest_first.rbegin(); it != newest_first.rend(); ++it) {
    maildrop_entry e;
    e.uid = uid_for(*it);
    e.size = size_cache::instance().find(key, mailbox_, *it);
    e.id = std::move(*it);
    entries_.push_back(std::move(e));
  }
}

maildrop_entry* maildrop::at(std::uint64_t n) {
  if (n == 0 || n > entries_.size()) return nullptr;
  return &entries_[n - 1];
}

boost::asio::awaitable<std::optional<std::string>> maildrop::fetch(std::uint64_t n) {
  maildrop_entry* e = at(n);
  if (!e) co_return std::nullopt;
  std::string id = e->id;
  std::optional<std::string> raw = co_await svc_->raw(mailbox_, id, true);
  e = at(n);  // entries_ does not change size while a session runs; re-read for clarity
  if (raw) {
    e->size = normalized_size(*raw);
    size_cache::instance().put(svc_.get(), mailbox_, id, *e->size);
  }
  co_return raw;
}

boost::asio::awaitable<std::optional<std::uint64_t>> maildrop::size_of(std::uint64_t n) {
  maildrop_entry* e = at(n);
  if (!e) co_return std::nullopt;
  if (e->size) co_return e->size;
  auto raw = co_await fetch(n);
  if (!raw) co_return std::nullopt;
  co_return at(n)->size;
}

boost::asio::awaitable<void> maildrop::fill_sizes() {
  for (std::uint64_t n = 1; n <= entries_.size(); ++n) {
    maildrop_entry& e = entries_[n - 1];
    if (e.deleted || e.size) continue;
    if (!co_await size_of(n)) {
      // Gone from the store (deleted through the API meanwhile): it keeps its number and
      // is listed with size 0; RETR answers that it is no longer available.
      entries_[n - 1].size = 0;
    }
  }
}

boost::asio::awaitable<std::size_t> maildrop::expunge() {
  std::vector<std::string> ids;
  for (const auto& e : entries_) {
    if (e.deleted) ids.push_back(e.id);
  }
  // Bulk calls are bounded by the store; remove in slices. What the store removed is
  // counted: a marked message already deleted through the API meanwhile is not.
  std::size_t removed = 0;
  for (std::size_t i = 0; i < ids.size(); i += list_page) {
    message_selector which;
    const std::size_t end = std::min<std::size_t>(ids.size(), i + list_page);
    which.ids.assign(ids.begin() + static_cast<std::ptrdiff_t>(i),
                     ids.begin() + static_cast<std::ptrdiff_t>(end));
    // INVARIANT: never call remove() with an empty selector — that means "every message
    // of the mailbox", including mail that arrived after the snapshot. which.ids is not
    // empty here (i < ids.size()).
    removed += co_await svc_->remove(mailbox_, std::move(which));
  }
  for (const auto& id : ids)
    size_cache::instance().erase(svc_.get(), mailbox_, id);
  co_return removed;
}

}  // namespace sluice::pop3
