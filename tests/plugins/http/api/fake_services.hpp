// fake_services.hpp — in-memory fakes of the services the API handlers use (mailbox,
// events, chaos, metrics, listener_context) and a minimal host, for the handler tests.
//
// fake_mailbox implements mailbox_service over a vector per mailbox with a small search
// language (words in subject/from/to/text, is:read, is:unread, tag:, subject:; a term
// starting with "(" throws search_error) — enough to check that the handlers pass
// queries, pages, selectors and time zones through and shape the answers. Thread-safe
// (one mutex); every coroutine completes at once on the caller's executor.
#pragma once

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "sluice/chaos.hpp"
#include "sluice/events.hpp"
#include "sluice/host.hpp"
#include "sluice/listener.hpp"
#include "sluice/mailbox.hpp"
#include "sluice/mailpit_json.hpp"
#include "sluice/metrics.hpp"
#include "sluice/text.hpp"

namespace sluice::test {

using boost::asio::awaitable;

class fake_events final : public events {
 public:
  void publish(event e) override {
    std::vector<std::function<void(const event&)>> subs;
    {
      std::lock_guard l(mu_);
      for (auto& [t, f] : subs_)
        subs.push_back(f);
    }
    for (auto& f : subs)
      f(e);
  }
  std::uint64_t subscribe(std::function<void(const event&)> fn) override {
    std::lock_guard l(mu_);
    subs_[++next_] = std::move(fn);
    return next_;
  }
  void unsubscribe(std::uint64_t t) override {
    std::lock_guard l(mu_);
    subs_.erase(t);
  }
  std::size_t subscribers() {
    std::lock_guard l(mu_);
    return subs_.size();
  }

 private:
  std::mutex mu_;
  std::map<std::uint64_t, std::function<void(const event&)>> subs_;
  std::uint64_t next_ = 0;
};

class fake_chaos final : public chaos_service {
 public:
  chaos_triggers get() const override {
    std::lock_guard l(mu_);
    return t_;
  }
  void set(const chaos_triggers& t) override {
    for (auto* x : {&t.sender, &t.recipient, &t.authentication}) {
      if (x->error_code < 400 || x->error_code > 599 || x->probability < 0 || x->probability > 100)
        throw std::invalid_argument("bad trigger");
    }
    std::lock_guard l(mu_);
    t_ = t;
  }
  int roll(point) override { return 0; }

 private:
  mutable std::mutex mu_;
  chaos_triggers t_;
};

class fake_metrics final : public metrics {
 public:
  std::string text;
  counter& get_counter(std::string_view, std::string_view, const metric_labels&) override {
    throw std::logic_error("unused");
  }
  gauge& get_gauge(std::string_view, std::string_view, const metric_labels&) override {
    throw std::logic_error("unused");
  }
  histogram& get_histogram(std::string_view, std::string_view, const metric_labels&,
                           std::vector<double>) override {
    throw std::logic_error("unused");
  }
  std::string render_prometheus() const override { return text; }
};

// Captures what POST /api/v1/send submits and answers with a configurable verdict.
class fake_listener final : public listener_context {
 public:
  std::vector<std::shared_ptr<message>> submitted;
  submit_result next;
  std::mutex mu;
  awaitable<submit_result> submit(std::shared_ptr<message> msg) override {
    std::lock_guard l(mu);
    submitted.push_back(msg);
    submit_result r = next;
    if (r.kind == verdict_kind::accept) r.id = msg->id;
    co_return r;
  }
  const std::string& pipeline() const override { return name_; }
  std::shared_ptr<gate> drain_gate() const override { return gate_; }
  std::shared_ptr<gate> gate_ = gate::make();

 private:
  std::string name_ = "capture";
};

struct fake_entry {
  stored_message m;  // with view and headers
  std::string raw;
  std::map<std::string, part_content> parts;
  std::string text;  // searchable text
};

class fake_mailbox final : public mailbox_service {
 public:
  explicit fake_mailbox(std::shared_ptr<fake_events> ev = nullptr) : events_(std::move(ev)) {}

  // Adds a message (newest last) and publishes "new".
  void add(fake_entry e) {
    {
      std::lock_guard l(mu_);
      auto& box = boxes_[e.m.mailbox];
      box.push_back(e);
      names_.insert(e.m.mailbox);
    }
    if (events_) events_->publish(event{"new", e.m.mailbox, mailpit::summary_json(e.m)});
  }
  void declare(const std::string& name) {
    std::lock_guard l(mu_);
    names_.insert(name);
  }
  std::vector<std::string> set_read_calls;  // "mailbox|ids|query|tz|read"

  std::vector<std::string> mailboxes() const override {
    std::lock_guard l(mu_);
    return {names_.begin(), names_.end()};
  }

  awaitable<search_result> search(search_request r) override {
    std::lock_guard l(mu_);
    search_result out;
    auto& box = boxes_[r.mailbox];
    std::vector<const fake_entry*> hits;
    for (auto it = box.rbegin(); it != box.rend(); ++it) {
      out.total++;
      out.unread += !it->m.read;
      if (r.before_ms && it->m.created_ms >= *r.before_ms) continue;
      if (!match(*it, r.query)) continue;
      hits.push_back(&*it);
    }
    std::set<std::string> tags;
    for (auto& e : box)
      for (auto& t : e.m.tags)
        tags.insert(t);
    out.tags.assign(tags.begin(), tags.end());
    out.matched = hits.size();
    for (auto* h : hits)
      out.matched_unread += !h->m.read;
    for (std::size_t i = r.offset; i < hits.size() && (r.limit == 0 || i < r.offset + r.limit);
         ++i) {
      stored_message m = hits[i]->m;
      m.view.reset();
      m.headers.clear();
      out.messages.push_back(std::move(m));
    }
    co_return out;
  }
  awaitable<std::optional<std::string>> latest(std::string mailbox, std::string query,
                                               std::string tz) override {
    last_tz = tz;
    std::lock_guard l(mu_);
    auto& box = boxes_[mailbox];
    for (auto it = box.rbegin(); it != box.rend(); ++it)
      if (match(*it, query)) co_return it->m.id;
    co_return std::nullopt;
  }
  awaitable<bool> matches(std::string mailbox, std::string id, std::string query,
                          std::string) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox])
      if (e.m.id == id) co_return match(e, query);
    co_return false;
  }
  awaitable<std::optional<stored_message>> get(std::string mailbox, std::string id) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox])
      if (e.m.id == id) co_return e.m;
    co_return std::nullopt;
  }
  awaitable<std::optional<std::string>> raw(std::string mailbox, std::string id, bool) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox])
      if (e.m.id == id) co_return e.raw;
    co_return std::nullopt;
  }
  awaitable<std::optional<part_content>> part(std::string mailbox, std::string id,
                                              std::string part_id) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox]) {
      if (e.m.id != id) continue;
      auto it = e.parts.find(part_id);
      if (it != e.parts.end()) co_return it->second;
    }
    co_return std::nullopt;
  }
  awaitable<std::uint64_t> set_read(std::string mailbox, message_selector which,
                                    bool read) override {
    std::lock_guard l(mu_);
    std::string ids;
    for (auto& i : which.ids)
      ids += i + ",";
    set_read_calls.push_back(mailbox + "|" + ids + "|" + which.query.value_or("-") + "|" +
                             which.tz + "|" + (read ? "1" : "0"));
    std::uint64_t n = 0;
    for (auto& e : boxes_[mailbox]) {
      if (selected(e, which) && e.m.read != read) {
        e.m.read = read;
        ++n;
      }
    }
    co_return n;
  }
  awaitable<std::uint64_t> remove(std::string mailbox, message_selector which) override {
    std::lock_guard l(mu_);
    auto& box = boxes_[mailbox];
    const auto before = box.size();
    std::erase_if(box, [&](const fake_entry& e) { return selected(e, which); });
    co_return before - box.size();
  }
  awaitable<std::vector<std::string>> tags(std::string mailbox) override {
    std::lock_guard l(mu_);
    std::set<std::string> t;
    for (auto& e : boxes_[mailbox])
      for (auto& x : e.m.tags)
        t.insert(x);
    co_return std::vector<std::string>(t.begin(), t.end());
  }
  awaitable<void> set_tags(std::string mailbox, std::vector<std::string> ids,
                           std::vector<std::string> tags) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox])
      if (std::find(ids.begin(), ids.end(), e.m.id) != ids.end()) e.m.tags = tags;
    co_return;
  }
  awaitable<void> rename_tag(std::string mailbox, std::string from, std::string to) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox])
      for (auto& t : e.m.tags)
        if (iequals(t, from)) t = to;
    co_return;
  }
  awaitable<void> delete_tag(std::string mailbox, std::string tag) override {
    std::lock_guard l(mu_);
    for (auto& e : boxes_[mailbox])
      std::erase_if(e.m.tags, [&](const std::string& t) { return iequals(t, tag); });
    co_return;
  }
  awaitable<mailbox_stats> stats(std::string mailbox) override {
    std::lock_guard l(mu_);
    mailbox_stats s;
    for (auto& e : boxes_[mailbox]) {
      s.total++;
      s.unread += !e.m.read;
      for (auto& t : e.m.tags)
        s.tags[t]++;
    }
    co_return s;
  }
  awaitable<store_info> info() override { co_return store_info{"/tmp/fake.db", 12345, 7}; }
  awaitable<std::optional<boost::json::array>> deliveries(std::string mailbox,
                                                          std::string id) override {
    std::lock_guard l(mu_);
    auto& box = boxes_[mailbox];
    for (const auto& e : box) {
      if (e.m.id == id) {
        auto it = delivery_log.find(id);
        co_return it == delivery_log.end() ? boost::json::array{} : it->second;
      }
    }
    co_return std::nullopt;
  }

  std::map<std::string, boost::json::array> delivery_log;  // by message id

  std::string last_tz;

 private:
  static bool contains(std::string_view hay, std::string_view needle) {
    return to_lower_ascii(hay).find(to_lower_ascii(needle)) != std::string::npos;
  }
  static bool match(const fake_entry& e, const std::string& query) {
    std::size_t i = 0;
    while (i < query.size()) {
      while (i < query.size() && query[i] == ' ')
        ++i;
      std::size_t j = query.find(' ', i);
      if (j == std::string::npos) j = query.size();
      const std::string term = query.substr(i, j - i);
      i = j;
      if (term.empty()) continue;
      if (term[0] == '(') throw search_error("cannot read the search term " + term);
      bool ok;
      if (term == "is:read") {
        ok = e.m.read;
      } else if (term == "is:unread") {
        ok = !e.m.read;
      } else if (term.starts_with("tag:")) {
        ok = std::any_of(e.m.tags.begin(), e.m.tags.end(),
                         [&](auto& t) { return iequals(t, term.substr(4)); });
      } else if (term.starts_with("subject:")) {
        ok = contains(e.m.subject, term.substr(8));
      } else {
        ok = contains(e.text, term);
      }
      if (!ok) return false;
    }
    return true;
  }
  static bool selected(const fake_entry& e, const message_selector& w) {
    if (!w.ids.empty()) return std::find(w.ids.begin(), w.ids.end(), e.m.id) != w.ids.end();
    if (w.query) return match(e, *w.query);
    return true;
  }

  mutable std::mutex mu_;
  std::map<std::string, std::vector<fake_entry>> boxes_;
  std::set<std::string> names_;
  std::shared_ptr<fake_events> events_;
};

// The host the handlers see: an io_context on two threads and a worker pool.
class fake_host final : public host {
 public:
  fake_host() {
    for (int i = 0; i < 2; ++i)
      threads_.emplace_back([this] { io_.run(); });
  }
  ~fake_host() override {
    work_.reset();
    for (auto& t : threads_)
      t.join();
    pool_.join();
  }
  boost::asio::io_context& io() override { return io_; }
  boost::asio::thread_pool& workers() override { return pool_; }
  service_registry& services() override { throw std::logic_error("unused"); }
  const std::filesystem::path& spool_dir() const override { return dir_; }
  const std::filesystem::path& config_dir() const override { return dir_; }
  std::size_t spill_threshold() const override { return 1 << 20; }
  bool durability_full() const override { return false; }

 private:
  boost::asio::io_context io_;
  boost::asio::thread_pool pool_{2};
  std::filesystem::path dir_ = std::filesystem::temp_directory_path();
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(io_);
  std::vector<std::thread> threads_;
};

}  // namespace sluice::test
