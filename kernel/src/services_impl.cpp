// services_impl.cpp — registry, Prometheus metrics and the event bus.
#include "services_impl.hpp"

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace sluice::kernel {

void registry_impl::add(std::string_view kind, std::string_view name, std::shared_ptr<service> s) {
  std::unique_lock lock(mu_);
  auto key = std::make_pair(std::string(kind), std::string(name));
  if (items_.count(key)) {
    throw std::invalid_argument("a " + key.first + " service named \"" + key.second +
                                "\" is already registered");
  }
  items_.emplace(std::move(key), std::move(s));
}

std::shared_ptr<service> registry_impl::find(std::string_view kind, std::string_view name) const {
  std::shared_lock lock(mu_);
  if (!name.empty()) {
    auto it = items_.find({std::string(kind), std::string(name)});
    return it == items_.end() ? nullptr : it->second;
  }
  auto def = items_.find({std::string(kind), "default"});
  if (def != items_.end()) return def->second;
  std::shared_ptr<service> only;
  for (auto& [key, s] : items_) {
    if (key.first != kind) continue;
    if (only) return nullptr;  // ambiguous: several and none is "default"
    only = s;
  }
  return only;
}

std::vector<std::string> registry_impl::names(std::string_view kind) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  for (auto& [key, s] : items_) {
    if (key.first == kind) out.push_back(key.second);
  }
  return out;
}

void registry_impl::declare(std::string_view kind, std::string_view name) {
  std::unique_lock lock(mu_);
  declared_.emplace(std::string(kind), std::string(name));
}

bool registry_impl::declared(std::string_view kind, std::string_view name) const {
  std::shared_lock lock(mu_);
  std::set<std::string> of_kind;  // registered or declared, as find() would see them
  for (const auto& [key, s] : items_)
    if (key.first == kind) of_kind.insert(key.second);
  for (const auto& key : declared_)
    if (key.first == kind) of_kind.insert(key.second);
  if (!name.empty()) return of_kind.count(std::string(name)) > 0;
  return of_kind.count("default") > 0 || of_kind.size() == 1;
}

void registry_impl::clear() {
  std::unique_lock lock(mu_);
  items_.clear();
  declared_.clear();
}

void registry_impl::clear_declarations() {
  std::unique_lock lock(mu_);
  declared_.clear();
}

namespace {

// Doubles as atomics via compare-exchange: counters and gauges are updated on hot paths
// from many threads without a lock.
void atomic_add(std::atomic<double>& a, double v) {
  double cur = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(cur, cur + v, std::memory_order_relaxed)) {
  }
}

class counter_impl final : public counter {
 public:
  void inc(double v) override { atomic_add(v_, v); }
  double value() const override { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class gauge_impl final : public gauge {
 public:
  void set(double v) override { v_.store(v, std::memory_order_relaxed); }
  void add(double v) override { atomic_add(v_, v); }
  double value() const override { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

class histogram_impl final : public histogram {
 public:
  explicit histogram_impl(std::vector<double> bounds)
      : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}
  void observe(double v) override {
    std::size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i])
      ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    atomic_add(sum_, v);
  }
  const std::vector<double>& bounds() const { return bounds_; }
  std::uint64_t bucket(std::size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<std::uint64_t>> buckets_;
  std::atomic<double> sum_{0};
};

std::string label_text(const metric_labels& labels, const std::string& extra = {}) {
  if (labels.empty() && extra.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (auto& [k, v] : labels) {
    if (!first) out += ",";
    first = false;
    out += k + "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += "\"";
  }
  if (!extra.empty()) {
    if (!first) out += ",";
    out += extra;
  }
  return out + "}";
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  std::ostringstream ss;
  ss.precision(17);
  ss << v;
  return ss.str();
}

}  // namespace

struct metrics_impl::family {
  std::string name, help, type;
  std::map<metric_labels, std::unique_ptr<counter_impl>> counters;
  std::map<metric_labels, std::unique_ptr<gauge_impl>> gauges;
  std::map<metric_labels, std::unique_ptr<histogram_impl>> histograms;
};

metrics_impl::metrics_impl() = default;
metrics_impl::~metrics_impl() = default;

counter& metrics_impl::get_counter(std::string_view name, std::string_view help,
                                   const metric_labels& labels) {
  std::lock_guard lock(mu_);
  auto& f = families_[std::string(name)];
  if (!f) f.reset(new family{std::string(name), std::string(help), "counter", {}, {}, {}});
  if (f->type != "counter") throw std::invalid_argument(std::string(name) + " is not a counter");
  auto& c = f->counters[labels];
  if (!c) c = std::make_unique<counter_impl>();
  return *c;
}

gauge& metrics_impl::get_gauge(std::string_view name, std::string_view help,
                               const metric_labels& labels) {
  std::lock_guard lock(mu_);
  auto& f = families_[std::string(name)];
  if (!f) f.reset(new family{std::string(name), std::string(help), "gauge", {}, {}, {}});
  if (f->type != "gauge") throw std::invalid_argument(std::string(name) + " is not a gauge");
  auto& g = f->gauges[labels];
  if (!g) g = std::make_unique<gauge_impl>();
  return *g;
}

histogram& metrics_impl::get_histogram(std::string_view name, std::string_view help,
                                       const metric_labels& labels, std::vector<double> buckets) {
  std::lock_guard lock(mu_);
  auto& f = families_[std::string(name)];
  if (!f) f.reset(new family{std::string(name), std::string(help), "histogram", {}, {}, {}});
  if (f->type != "histogram")
    throw std::invalid_argument(std::string(name) + " is not a histogram");
  auto& h = f->histograms[labels];
  if (!h) {
    if (buckets.empty()) {
      buckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    }
    std::sort(buckets.begin(), buckets.end());
    h = std::make_unique<histogram_impl>(std::move(buckets));
  }
  return *h;
}

std::string metrics_impl::render_prometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (auto& [name, f] : families_) {
    out += "# HELP " + name + " " + f->help + "\n# TYPE " + name + " " + f->type + "\n";
    for (auto& [labels, c] : f->counters)
      out += name + label_text(labels) + " " + number(c->value()) + "\n";
    for (auto& [labels, g] : f->gauges)
      out += name + label_text(labels) + " " + number(g->value()) + "\n";
    for (auto& [labels, h] : f->histograms) {
      std::uint64_t cumulative = 0;
      for (std::size_t i = 0; i <= h->bounds().size(); ++i) {
        cumulative += h->bucket(i);
        std::string le = i < h->bounds().size() ? number(h->bounds()[i]) : "+Inf";
        out += name + "_bucket" + label_text(labels, "le=\"" + le + "\"") + " " +
               std::to_string(cumulative) + "\n";
      }
      out += name + "_sum" + label_text(labels) + " " + number(h->sum()) + "\n";
      out += name + "_count" + label_text(labels) + " " + std::to_string(cumulative) + "\n";
    }
  }
  return out;
}

void events_impl::publish(event e) {
  std::vector<std::shared_ptr<std::function<void(const event&)>>> subs;
  {
    std::shared_lock lock(mu_);
    subs.reserve(subs_.size());
    for (auto& [t, fn] : subs_)
      subs.push_back(fn);
  }
  // Subscribers run without the lock so they may subscribe or unsubscribe from within.
  for (auto& fn : subs)
    (*fn)(e);
}

std::uint64_t events_impl::subscribe(std::function<void(const event&)> fn) {
  std::unique_lock lock(mu_);
  auto t = next_++;
  subs_.emplace(t, std::make_shared<std::function<void(const event&)>>(std::move(fn)));
  return t;
}

void events_impl::unsubscribe(std::uint64_t token) {
  std::unique_lock lock(mu_);
  subs_.erase(token);
}

}  // namespace sluice::kernel
