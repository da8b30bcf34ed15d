// sluice/metrics.hpp — counters, gauges and histograms, rendered in the Prometheus text
// format by whoever serves /metrics.
//
// Handles returned by the registry live as long as the process; hold them and update
// them on the hot path (lock-free atomics). Registering the same name and labels twice
// returns the same handle. Thread-safe.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/services.hpp"

namespace sluice {

using metric_labels = std::vector<std::pair<std::string, std::string>>;

class counter {
 public:
  virtual ~counter() = default;
  virtual void inc(double v = 1) = 0;
  virtual double value() const = 0;
};

class gauge {
 public:
  virtual ~gauge() = default;
  virtual void set(double v) = 0;
  virtual void add(double v) = 0;
  virtual double value() const = 0;
};

class histogram {
 public:
  virtual ~histogram() = default;
  virtual void observe(double v) = 0;
};

class metrics : public service {
 public:
  static constexpr std::string_view kind = "metrics";
  virtual counter& get_counter(std::string_view name, std::string_view help,
                               const metric_labels& labels = {}) = 0;
  virtual gauge& get_gauge(std::string_view name, std::string_view help,
                           const metric_labels& labels = {}) = 0;
  // Buckets are upper bounds in the metric's unit (seconds for latencies).
  virtual histogram& get_histogram(std::string_view name, std::string_view help,
                                   const metric_labels& labels = {},
                                   std::vector<double> buckets = {}) = 0;
  virtual std::string render_prometheus() const = 0;
};

}  // namespace sluice
