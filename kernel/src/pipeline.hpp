// pipeline.hpp — built pipelines and the runner of their inline phase.
//
// A pipeline is an ordered list of stage instances split into the inline phase (run
// while the client waits) and the deferred phase (run from the spool after the reply).
// run_inline() applies each stage's timeout and on_error policy, then reaches the commit
// point: the message is durable once every committing stage succeeded and, when the
// pipeline has deferred stages, once it is in the spool. Only then is "accept" returned.
//
// A pipeline_set is immutable once built; reload builds a new set and swaps it in, and
// messages in flight finish on the set they started with (shared ownership).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <boost/asio/awaitable.hpp>

#include "kernel_config.hpp"
#include "sluice/listener.hpp"
#include "sluice/metrics.hpp"
#include "sluice/stage.hpp"

namespace sluice::kernel {

class spool;

struct stage_instance {
  std::string name;
  std::string plugin;
  std::shared_ptr<sluice::stage> impl;
  stage_traits traits;
  sluice::phase phase = phase::inline_;
  std::chrono::milliseconds timeout{30000};
  on_error_policy on_error = on_error_policy::tempfail;
  retry_policy retry;
  std::string after;             // deferred: wait for this deferred stage to settle
  std::string when = "settled";  // its outcome that lets this stage run
  histogram* duration = nullptr;
};

struct pipeline {
  std::string name;
  std::vector<stage_instance> inline_stages;
  std::vector<stage_instance> deferred_stages;
  const stage_instance* find_deferred(const std::string& stage) const;
};

struct pipeline_set {
  std::map<std::string, std::shared_ptr<const pipeline>> pipelines;
};

class pipeline_runner {
 public:
  pipeline_runner(boost::asio::io_context& io, sluice::metrics& m, sluice::logger log);

  void set_spool(spool* s) { spool_ = s; }
  void swap(std::shared_ptr<const pipeline_set> set);
  std::shared_ptr<const pipeline_set> current() const;

  // Runs the inline phase of pipeline `name` and reaches the commit point. Never throws.
  boost::asio::awaitable<submit_result> submit(std::string name, std::shared_ptr<message> msg);

  // Calls one stage with its timeout and on_error policy applied. Never throws.
  boost::asio::awaitable<verdict> call_stage(const stage_instance& s, std::shared_ptr<message> msg,
                                             stage_call call);

 private:
  boost::asio::io_context& io_;
  sluice::metrics& metrics_;
  sluice::logger log_;
  spool* spool_ = nullptr;
  mutable std::mutex mu_;
  std::shared_ptr<const pipeline_set> current_;
};

verdict apply_on_error(on_error_policy p);

}  // namespace sluice::kernel
