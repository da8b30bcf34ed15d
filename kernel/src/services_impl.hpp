// services_impl.hpp — the kernel's service registry, metrics and event bus.
//
// All three are thread-safe. Metric handles are never freed while the process runs.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "sluice/events.hpp"
#include "sluice/metrics.hpp"
#include "sluice/services.hpp"

namespace sluice::kernel {

class registry_impl final : public service_registry {
 public:
  void add(std::string_view kind, std::string_view name, std::shared_ptr<service> s) override;
  std::shared_ptr<service> find(std::string_view kind, std::string_view name = {}) const override;
  std::vector<std::string> names(std::string_view kind) const override;
  void declare(std::string_view kind, std::string_view name) override;
  bool declared(std::string_view kind, std::string_view name = {}) const override;
  void clear();
  // Before each validation (check-config, reload): forget the previous one's declarations.
  void clear_declarations();

 private:
  mutable std::shared_mutex mu_;
  std::map<std::pair<std::string, std::string>, std::shared_ptr<service>> items_;
  std::set<std::pair<std::string, std::string>> declared_;
};

class metrics_impl final : public metrics {
 public:
  metrics_impl();
  ~metrics_impl() override;
  counter& get_counter(std::string_view name, std::string_view help,
                       const metric_labels& labels) override;
  gauge& get_gauge(std::string_view name, std::string_view help,
                   const metric_labels& labels) override;
  histogram& get_histogram(std::string_view name, std::string_view help,
                           const metric_labels& labels, std::vector<double> buckets) override;
  std::string render_prometheus() const override;

  struct family;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<family>> families_;
};

class events_impl final : public events {
 public:
  void publish(event e) override;
  std::uint64_t subscribe(std::function<void(const event&)> fn) override;
  void unsubscribe(std::uint64_t token) override;

 private:
  mutable std::shared_mutex mu_;
  std::uint64_t next_ = 1;
  std::map<std::uint64_t, std::shared_ptr<std::function<void(const event&)>>> subs_;
};

}  // namespace sluice::kernel
