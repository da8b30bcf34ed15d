// spool.cpp — see spool.hpp.
#include "spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include <boost/json.hpp>
#include "sluice/host.hpp"
#include "sluice/listen.hpp"

#include "sluice/message_json.hpp"

namespace sluice::kernel {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::error_code errno_code() {
  return {errno, std::generic_category()};
}

std::error_code write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_code();
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::error_code write_file(const std::filesystem::path& path, std::string_view data, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return errno_code();
  if (auto ec = write_all(fd, data)) {
    ::close(fd);
    return ec;
  }
  if (sync && ::fsync(fd) != 0) {
    auto ec = errno_code();
    ::close(fd);
    return ec;
  }
  if (::close(fd) != 0) return errno_code();
  return {};
}

// Streams a body that is not in memory (a spilled file that could not be linked) to `path`,
// chunk by chunk; a read error fails the copy instead of leaving a short file.
std::error_code copy_body(const message_body& body, const std::filesystem::path& path, bool sync) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0) return errno_code();
  std::error_code write_ec;
  std::uint64_t written = 0;
  auto read_ec = body.for_each_chunk([&](std::string_view chunk) {
    written += chunk.size();
    write_ec = write_all(fd, chunk);
    return !write_ec;
  });
  std::error_code ec = write_ec ? write_ec : read_ec;
  // A source that ends early (the spilled file shrank) is an error, not a shorter message.
  if (!ec && written != body.size()) ec = std::make_error_code(std::errc::io_error);
  if (!ec && sync && ::fsync(fd) != 0) ec = errno_code();
  if (::close(fd) != 0 && !ec) ec = errno_code();
  return ec;
}

std::error_code sync_path(const std::filesystem::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_code();
  std::error_code ec;
  if (::fsync(fd) != 0) ec = errno_code();
  ::close(fd);
  return ec;
}

std::chrono::milliseconds backoff(const retry_policy& r, unsigned attempts) {
  thread_local std::mt19937 rng{std::random_device{}()};
  double base = static_cast<double>(r.initial.count());
  for (unsigned i = 1; i < attempts && base < static_cast<double>(r.max.count()); ++i)
    base *= 2;
  base = std::min(base, static_cast<double>(r.max.count()));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<std::int64_t>(base * jitter(rng)));
}

}  // namespace

spool::spool(asio::io_context& io, asio::thread_pool& workers, std::filesystem::path dir,
             bool durability_full, std::uint64_t min_free_space, pipeline_runner& runner,
             sluice::metrics& m, sluice::events* ev, sluice::logger log)
    : workers_(workers),
      dir_(std::move(dir)),
      incoming_(dir_ / "incoming"),
      queue_(dir_ / "queue"),
      full_(durability_full),
      min_free_(min_free_space),
      runner_(runner),
      metrics_(m),
      events_(ev),
      log_(std::move(log)),
      strand_(asio::make_strand(io)),
      timer_(strand_) {}

spool::~spool() {
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

void spool::prepare() {
  sluice::ensure_data_directory(dir_);
  // One process per spool: a second one would delete the first one's spilled bodies and
  // held records below and run its queue twice. The lock goes with the process.
  const auto lock_path = dir_ / "lock";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) {
    throw std::system_error(errno, std::generic_category(), "open " + lock_path.string());
  }
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EWOULDBLOCK) {
      throw std::system_error(err, std::generic_category(),
                              "the spool " + dir_.string() +
                                  " is in use by another running sluice (spool.path must differ)");
    }
    throw std::system_error(err, std::generic_category(), "flock " + lock_path.string());
  }
  std::filesystem::create_directories(incoming_);
  std::filesystem::create_directories(queue_);
  // Bodies of messages that were never acknowledged: the client will send them again.
  for (auto& e : std::filesystem::directory_iterator(incoming_))
    std::filesystem::remove(e.path());
}

std::size_t spool::queued() const {
  return queued_;
}

std::string spool::serialize(const record& r) {
  json::object o;
  o["id"] = r.id;
  o["pipeline"] = r.pipeline;
  o["created_ms"] = r.created_ms;
  json::array stages;
  for (auto& s : r.stages) {
    json::object so{{"name", s.name},
                    {"status", s.status},
                    {"attempts", s.attempts},
                    {"next_ms", s.next_ms},
                    {"last", s.last}};
    if (!s.after.empty()) {
      so["after"] = s.after;
      so["when"] = s.when;
    }
    stages.push_back(std::move(so));
  }
  o["stages"] = std::move(stages);
  o["message"] = r.message;
  return json::serialize(o);
}

std::error_code spool::write_json(const std::string& id, const std::string& json) const {
  auto tmp = queue_ / (id + ".json.tmp");
  auto ec = write_file(tmp, json, full_);
  // The rename is the moment the message (or its new state) exists in the spool.
  if (!ec && ::rename(tmp.c_str(), meta(id).c_str()) != 0) ec = errno_code();
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    return ec;
  }
  if (full_) return sync_path(queue_);
  return {};
}

std::error_code spool::write_record(const record& r) const {
  return write_json(r.id, serialize(r));
}

bool spool::read_record(const std::string& id, record& r) const {
  std::ifstream in(meta(id), std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  boost::system::error_code ec;
  auto v = sluice::parse_stored_json(ss.str(), ec);
  if (ec || !v.is_object()) return false;
  auto& o = v.as_object();
  auto str = [&](const json::object& obj, std::string_view k) {
    auto* x = obj.if_contains(k);
    return x && x->is_string() ? std::string(x->as_string()) : std::string();
  };
  auto num = [&](const json::object& obj, std::string_view k) -> std::int64_t {
    auto* x = obj.if_contains(k);
    if (!x) return 0;
    if (x->is_int64()) return x->as_int64();
    if (x->is_uint64()) return static_cast<std::int64_t>(x->as_uint64());
    return 0;
  };
  r.id = str(o, "id");
  r.pipeline = str(o, "pipeline");
  r.created_ms = num(o, "created_ms");
  r.stages.clear();
  if (auto* st = o.if_contains("stages"); st && st->is_array()) {
    for (auto& s : st->as_array()) {
      if (!s.is_object()) continue;
      auto& so = s.as_object();
      r.stages.push_back({str(so, "name"), str(so, "status"),
                          static_cast<unsigned>(num(so, "attempts")), num(so, "next_ms"),
                          str(so, "last"), str(so, "after"), str(so, "when")});
    }
  }
  if (auto* m = o.if_contains("message"); m && m->is_object()) r.message = m->as_object();
  return r.id == id;
}

void spool::remove_files(const std::string& id) const {
  std::error_code ec;
  std::filesystem::remove(meta(id), ec);
  std::filesystem::remove(eml(id), ec);
}

spool::record spool::make_record(const pipeline& p, const message& msg,
                                 std::int64_t created_ms) const {
  record r;
  r.id = msg.id;
  r.pipeline = p.name;
  r.created_ms = created_ms;
  for (auto& s : p.deferred_stages) {
    r.stages.push_back({s.name,
                        s.after.empty() ? "pending" : "waiting",
                        0,
                        r.created_ms,
                        {},
                        s.after,
                        s.after.empty() ? std::string() : s.when});
  }
  r.message["envelope"] = envelope_to_json(msg.envelope);
  r.message["edits"] = edits_to_json(msg.edits);
  r.message["attributes"] = msg.attributes;
  r.message["quarantined"] = msg.quarantined;
  return r;
}

std::error_code spool::write_message(const std::string& id, const std::string& json,
                                     const message& msg, bool held) const {
  if (min_free_ > 0) {
    struct statvfs fs {};
    if (::statvfs(queue_.c_str(), &fs) == 0) {
      const auto avail = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      if (avail < min_free_ + msg.raw->size() + json.size()) {
        return std::make_error_code(std::errc::no_space_on_device);
      }
    }
  }
  auto target = eml(id);
  std::error_code ec;
  const auto& file = msg.raw->file();
  // A spilled body is already on this file system: a hard link costs no copy.
  if (!file.empty() && ::link(file.c_str(), target.c_str()) == 0) {
    if (full_) ec = sync_path(target);
  } else if (auto mem = msg.raw->memory()) {
    ec = write_file(target, *mem, full_);
  } else {
    ec = copy_body(*msg.raw, target, full_);
  }
  if (!ec) {
    // A held record is written in place and needs no directory fsync: a crash before the
    // release discards it whole or torn, and the release's rename is synced. Otherwise the
    // record's rename is the moment the message exists in the spool.
    ec = held ? write_file(held_meta(id), json, full_) : write_json(id, json);
  }
  if (ec) drop_now(id);
  return ec;
}

asio::awaitable<std::error_code> spool::put(std::shared_ptr<const pipeline> p,
                                            std::shared_ptr<message> msg) {
  // No committing stage to hold the message around: body and record in one go.
  auto r = make_record(*p, *msg, now_ms());
  auto self = shared_from_this();
  auto job = [self, json = serialize(r), msg]() {
    return self->write_message(msg->id, json, *msg, false);
  };
  if (auto ec = co_await offload(workers_, std::move(job))) co_return ec;
  schedule_new(r);
  co_return std::error_code{};
}

asio::awaitable<std::error_code> spool::hold(std::shared_ptr<const pipeline> p,
                                             std::shared_ptr<message> msg, held& out) {
  out.id = msg->id;
  out.created_ms = now_ms();
  auto r = make_record(*p, *msg, out.created_ms);
  auto json = serialize(r);
  out.message = std::move(r.message);
  auto self = shared_from_this();
  // The job is a named local, not a temporary inside the co_await expression: GCC 12
  // destroys such temporaries twice.
  auto job = [self, json = std::move(json), msg]() {
    return self->write_message(msg->id, json, *msg, true);
  };
  co_return co_await offload(workers_, std::move(job));
}

asio::awaitable<std::error_code> spool::release(std::shared_ptr<const pipeline> p,
                                                std::shared_ptr<message> msg, const held& h) {
  auto r = make_record(*p, *msg, h.created_ms);
  // Only the message part can differ from the held record; serialized only if it does.
  const bool same = r.message == h.message;
  auto self = shared_from_this();
  auto job = [self, id = h.id, same, json = same ? std::string() : serialize(r)]() {
    std::error_code ec;
    if (same) {
      // What was held is what the deferred stages need: the rename puts it in the spool.
      if (::rename(self->held_meta(id).c_str(), self->meta(id).c_str()) != 0) ec = errno_code();
      if (!ec && self->full_) ec = sync_path(self->queue_);
    } else {
      // A committing stage (or one after it) changed the message: write the new record.
      ec = self->write_json(id, json);
      std::error_code ignored;
      if (!ec) std::filesystem::remove(self->held_meta(id), ignored);
    }
    if (ec) {
      std::error_code ignored;
      std::filesystem::remove(self->held_meta(id), ignored);
      self->remove_files(id);
    }
    return ec;
  };
  auto ec = co_await offload(workers_, std::move(job));
  if (ec) co_return ec;
  schedule_new(r);
  co_return std::error_code{};
}

asio::awaitable<void> spool::drop(const held& h) {
  auto self = shared_from_this();
  auto job = [self, id = h.id]() {
    self->drop_now(id);
    return 0;
  };
  co_await offload(workers_, std::move(job));
}

void spool::drop_now(const std::string& id) const {
  for (const auto& path : {held_meta(id), eml(id)}) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    // Left behind, it is removed at the next start (a held record was never acknowledged).
    if (ec)
      log_.warn("could not remove a held spool file",
                {{"file", path.string()}, {"error", ec.message()}});
  }
}

void spool::schedule_new(const record& r) {
  auto self = shared_from_this();
  asio::post(strand_, [self, r]() {
    ++self->queued_;
    self->metrics_.get_gauge("sluice_spool_messages", "Messages in the spool")
        .set(static_cast<double>(self->queued_));
    for (auto& s : r.stages) {
      if (s.status == "pending") self->schedule(r.id, s.name, s.next_ms);
    }
  });
}

void spool::recover() {
  std::size_t found = 0;
  std::set<std::string> ids;
  for (auto& e : std::filesystem::directory_iterator(queue_)) {
    auto name = e.path().filename().string();
    if (name.ends_with(".json.tmp") || name.ends_with(".json.held")) {
      // A held record's message was never acknowledged: the client sends it again.
      std::filesystem::remove(e.path());
    } else if (name.ends_with(".json")) {
      ids.insert(name.substr(0, name.size() - 5));
    }
  }
  for (auto& e : std::filesystem::directory_iterator(queue_)) {
    auto name = e.path().filename().string();
    // A body without its record was never acknowledged.
    if (name.ends_with(".eml") && !ids.count(name.substr(0, name.size() - 4))) {
      std::filesystem::remove(e.path());
    }
  }
  for (auto& id : ids) {
    record r;
    if (!read_record(id, r)) {
      log_.error("unreadable spool record, left in place", {{"file", meta(id).string()}});
      continue;
    }
    ++found;
    // A record written by a version without `after` has no waiting stages; one whose
    // dependency settled is released here as it would have been then.
    if (!release_waiting(r, now_ms()).empty()) write_record(r);
    auto self = shared_from_this();
    asio::post(strand_, [self, r]() {
      ++self->queued_;
      for (auto& s : r.stages) {
        if (s.status == "pending") self->schedule(r.id, s.name, s.next_ms);
      }
    });
  }
  if (found) log_.info("spool recovered", {{"messages", found}});
}

void spool::stop() {
  auto self = shared_from_this();
  asio::post(strand_, [self]() {
    self->stopped_ = true;
    self->timer_.cancel();
  });
  gate_->close();
}

std::vector<std::string> spool::release_waiting(record& r, std::int64_t now) {
  std::vector<std::string> released;
  for (bool changed = true; changed;) {
    changed = false;
    for (auto& st : r.stages) {
      if (st.status != "waiting") continue;
      auto dep = std::find_if(r.stages.begin(), r.stages.end(),
                              [&](const stage_state& d) { return d.name == st.after; });
      std::string outcome = dep == r.stages.end() ? "skipped" : dep->status;
      if (outcome == "pending" || outcome == "waiting") continue;
      const bool run =
          (outcome == "done" && st.when != "failed") || (outcome == "failed" && st.when != "done");
      if (run) {
        st.status = "pending";
        st.next_ms = now;
        released.push_back(st.name);
      } else {
        st.status = "skipped";
        st.last = "skipped: " + st.after + " " + outcome + ", this stage runs when " + st.when;
      }
      changed = true;
    }
  }
  return released;
}

void spool::schedule(const std::string& id, const std::string& stage, std::int64_t due_ms) {
  due_.emplace(due_ms, std::make_pair(id, stage));
  arm_timer();
}

void spool::arm_timer() {
  if (stopped_ || due_.empty()) return;
  const std::int64_t first = due_.begin()->first;
  if (armed_ms_ && *armed_ms_ <= first) return;  // a wake-up at or before it is pending
  armed_ms_ = first;
  const std::uint64_t gen = ++arm_gen_;
  auto self = shared_from_this();
  auto wake = [self, gen](boost::system::error_code ec) {
    if (gen != self->arm_gen_) return;  // superseded by an earlier wake-up
    self->armed_ms_.reset();
    if (!ec) self->run_due();
  };
  const auto delay = std::chrono::milliseconds(first - now_ms());
  if (delay.count() <= 0) {
    // Due already (a new message's stages): no timer round trip, and one run for all the
    // messages that arrive before it.
    asio::post(strand_, [wake]() mutable { wake({}); });
    return;
  }
  timer_.expires_after(delay);
  timer_.async_wait(asio::bind_executor(strand_, std::move(wake)));
}

unsigned spool::stage_limit(const std::string& stage) const {
  unsigned limit = 16;
  if (auto set = runner_.current()) {
    for (auto& [name, p] : set->pipelines) {
      if (auto* s = p->find_deferred(stage)) limit = s->retry.concurrency;
    }
  }
  return limit;
}

bool spool::busy(const std::string& id) const {
  auto it = running_.lower_bound({id, std::string()});
  return it != running_.end() && it->first == id;
}

void spool::start(const std::string& id, const std::string& stage) {
  running_.insert({id, stage});
  ++running_per_stage_[stage];
  asio::co_spawn(strand_, attempt(id, stage), asio::detached);
}

void spool::start_parked(const std::string& stage) {
  auto it = parked_.find(stage);
  if (it == parked_.end()) return;
  const unsigned limit = stage_limit(stage);
  auto& ids = it->second;
  while (!stopped_ && !ids.empty() && running_per_stage_[stage] < limit) {
    std::string id = std::move(ids.front());
    ids.pop_front();
    if (busy(id)) {
      schedule(id, stage, now_ms() + 50);
    } else {
      start(id, stage);
    }
  }
  if (ids.empty()) parked_.erase(it);
}

void spool::run_due() {
  if (stopped_) return;
  // Parked attempts came due first; a reload may have raised their stage's concurrency.
  std::vector<std::string> stages;
  for (auto& [stage, ids] : parked_)
    stages.push_back(stage);
  for (auto& stage : stages)
    start_parked(stage);
  const auto now = now_ms();
  std::map<std::string, unsigned> limits;  // looked up once per run
  std::vector<std::tuple<std::int64_t, std::string, std::string>> later;
  while (!due_.empty() && due_.begin()->first <= now) {
    auto [id, stage] = std::move(due_.begin()->second);
    due_.erase(due_.begin());
    auto [lim, fresh] = limits.try_emplace(stage, 0u);
    if (fresh) lim->second = stage_limit(stage);
    if (busy(id)) {
      // One attempt per message at a time keeps its record's updates ordered.
      later.emplace_back(now + 50, std::move(id), std::move(stage));
    } else if (running_per_stage_[stage] >= lim->second || parked_.count(stage)) {
      parked_[stage].push_back(std::move(id));
    } else {
      start(id, stage);
    }
  }
  for (auto& [t, id, stage] : later)
    due_.emplace(t, std::make_pair(std::move(id), std::move(stage)));
  arm_timer();
}

asio::awaitable<void> spool::attempt(std::string id, std::string stage_name) {
  auto self = shared_from_this();
  auto holder = gate_->try_enter();
  auto finish = [&]() {
    running_.erase({id, stage_name});
    --running_per_stage_[stage_name];
    start_parked(stage_name);
  };
  if (!holder) {
    finish();
    co_return;
  }
  record r;
  // The record and the body are opened on the worker pool, not on the I/O strand.
  std::shared_ptr<const message_body> body;
  std::error_code body_ec;
  auto read_job = [self, id, &r, &body, &body_ec]() {
    if (!self->read_record(id, r)) return false;
    body = message_body::from_file(self->eml(id), body_ec);
    return true;
  };
  bool ok = co_await offload(workers_, std::move(read_job));
  if (!ok) {
    log_.error("spool record vanished", {{"msg", id}});
    finish();
    co_return;
  }
  auto it = std::find_if(r.stages.begin(), r.stages.end(),
                         [&](const stage_state& s) { return s.name == stage_name; });
  if (it == r.stages.end() || it->status != "pending") {
    finish();
    co_return;
  }
  auto log = log_.with({"msg", id}).with({"pipeline", r.pipeline}).with({"stage", stage_name});
  std::shared_ptr<const pipeline> p;
  if (auto set = runner_.current()) {
    if (auto pit = set->pipelines.find(r.pipeline); pit != set->pipelines.end()) p = pit->second;
  }
  const stage_instance* s = p ? p->find_deferred(stage_name) : nullptr;
  std::string outcome;
  json::value details;  // the stage's "delivery_report" for this attempt, if any
  ++it->attempts;
  if (!s) {
    it->status = "failed";
    it->last = "the stage is no longer configured (removed by a reload)";
    outcome = "failed";
  } else {
    auto msg = std::make_shared<message>();
    msg->id = id;
    if (auto* e = r.message.if_contains("envelope"); e && e->is_object()) {
      msg->envelope = envelope_from_json(e->as_object());
    }
    if (auto* e = r.message.if_contains("edits"); e && e->is_array()) {
      msg->edits = edits_from_json(e->as_array());
    }
    if (auto* a = r.message.if_contains("attributes"); a && a->is_object()) {
      msg->attributes = a->as_object();
    }
    msg->raw = std::move(body);
    verdict v;
    if (body_ec) {
      log.error("spooled body unreadable", {{"error", body_ec.message()}});
      v = verdict::local_error();
    } else {
      // A named argument, never a prvalue: GCC 12 destroys prvalues passed to by-value
      // coroutine parameters twice (PR 99576).
      stage_call call{phase::deferred, it->attempts, r.pipeline, log};
      v = co_await runner_.call_stage(*s, msg, std::move(call));
    }
    // What the stage reported about this attempt goes into the delivery event, not into
    // the message: every attempt has its own.
    if (auto* rep = msg->attributes.if_contains("delivery_report")) {
      details = std::move(*rep);
      msg->attributes.erase("delivery_report");
    }
    // Attributes and edits made by a deferred stage are kept for the next stages.
    r.message["edits"] = edits_to_json(msg->edits);
    r.message["attributes"] = msg->attributes;
    it->last = v.reply.code == 0
                   ? std::string()
                   : std::to_string(v.reply.code) + " " + v.reply.enhanced + " " + v.reply.text;
    switch (v.kind) {
      case verdict_kind::tempfail: {
        auto delay = backoff(s->retry, it->attempts);
        auto next = now_ms() + delay.count();
        if (next > r.created_ms + s->retry.lifetime.count()) {
          it->status = "failed";
          it->last =
              "expired after " + std::to_string(it->attempts) + " attempts; last: " + it->last;
          outcome = "expired";
        } else {
          it->next_ms = next;
          outcome = "retry";
        }
        break;
      }
      case verdict_kind::reject:
        it->status = "failed";
        outcome = "failed";
        break;
      default:
        it->status = "done";
        outcome = "done";
        break;
    }
  }
  metrics_
      .get_counter("sluice_deferred_attempts_total", "Attempts of deferred stages",
                   {{"stage", stage_name}, {"result", outcome}})
      .inc();
  std::vector<std::string> released;
  if (outcome != "retry") {
    // Stages waiting for this one learn how it ended from the attribute "deferred" (e.g. a
    // webhook announcing a relay's permanent failure), then run or are skipped.
    if (std::any_of(r.stages.begin(), r.stages.end(),
                    [&](const stage_state& st) { return st.after == stage_name; })) {
      json::value& attrs = r.message["attributes"];
      if (!attrs.is_object()) attrs = json::object();
      json::value& d = attrs.as_object()["deferred"];
      if (!d.is_object()) d = json::object();
      d.as_object()[stage_name] = json::object{{"status", outcome},
                                               {"reply", it->last},
                                               {"attempts", it->attempts},
                                               {"report", details}};
    }
    released = release_waiting(r, now_ms());
  }
  bool finished = std::all_of(r.stages.begin(), r.stages.end(), [](const stage_state& st) {
    return st.status != "pending" && st.status != "waiting";
  });
  auto write_job = [self, r, finished]() {
    if (finished) {
      self->remove_files(r.id);
      return std::error_code{};
    }
    return self->write_record(r);
  };
  auto wec = co_await offload(workers_, std::move(write_job));
  if (wec) log.error("spool update failed", {{"error", wec.message()}});
  if (outcome == "retry") {
    log.info("deferred stage will retry", {{"attempt", it->attempts}, {"reply", it->last}});
    schedule(id, stage_name, it->next_ms);
  } else {
    (outcome == "done"
         ? log.info("deferred stage done", {{"attempts", it->attempts}})
         : log.warn("deferred stage failed", {{"attempts", it->attempts}, {"reply", it->last}}));
  }
  for (const auto& name : released) {
    log.info("deferred stage released", {{"released", name}, {"after", outcome}});
    schedule(id, name, now_ms());
  }
  if (events_) {
    // One event per attempt: the store keeps them as the message's delivery log.
    json::object e{{"ID", id},
                   {"Stage", stage_name},
                   {"Pipeline", r.pipeline},
                   {"Attempt", it->attempts},
                   {"Status", outcome},
                   {"Last", it->last},
                   {"At", now_ms()},
                   {"Details", std::move(details)}};
    if (outcome == "retry") e["NextAttempt"] = it->next_ms;
    events_->publish(event{"delivery", "", std::move(e)});
  }
  if (finished) {
    --queued_;
    metrics_.get_gauge("sluice_spool_messages", "Messages in the spool")
        .set(static_cast<double>(queued_));
  }
  finish();
}

}  // namespace sluice::kernel
