// kernel_config.cpp — loading and checking the kernel's part of the configuration.
#include "kernel_config.hpp"

#include "sluice/listen.hpp"

#include <boost/asio/ip/address.hpp>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace sluice::kernel {
namespace {

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

std::string read_name(const config_node& n, std::string_view key) {
  auto v = n.at(key);
  auto s = v.as_string();
  if (!valid_name(s)) v.fail("names are 1-64 characters of letters, digits, '_', '-', '.'");
  return s;
}

on_error_policy parse_on_error(const config_node& n) {
  auto s = n.as_string();
  if (s == "tempfail") return on_error_policy::tempfail;
  if (s == "reject") return on_error_policy::reject;
  if (s == "continue") return on_error_policy::continue_;
  if (s == "accept") return on_error_policy::accept;
  n.fail("expected one of tempfail, reject, continue, accept; got \"" + s + "\"");
}

instance_config read_instance(const config_node& n, bool listener) {
  if (!n.is_map()) n.fail("expected a map with at least name and plugin");
  instance_config c;
  c.plugin = read_name(n, "plugin");
  c.name = n.has("name") ? read_name(n, "name") : c.plugin;
  if (listener) {
    if (auto p = n.find("pipeline")) c.pipeline = p->as_string();
  }
  c.node = n;
  return c;
}

stage_config read_stage(const config_node& n) {
  if (!n.is_map()) n.fail("expected a map with at least plugin");
  stage_config s;
  s.plugin = read_name(n, "plugin");
  s.name = n.has("name") ? read_name(n, "name") : s.plugin;
  if (auto p = n.find("phase")) {
    auto v = p->as_string();
    if (v == "inline")
      s.phase = phase::inline_;
    else if (v == "deferred")
      s.phase = phase::deferred;
    else
      p->fail("expected inline or deferred, got \"" + v + "\"");
  }
  s.timeout = n.get_duration("timeout", s.timeout);
  if (s.timeout.count() <= 0) n.at("timeout").fail("must be positive");
  if (auto e = n.find("on_error")) s.on_error = parse_on_error(*e);
  if (auto r = n.find("retry")) {
    s.retry.initial = r->get_duration("initial", s.retry.initial);
    s.retry.max = r->get_duration("max", s.retry.max);
    s.retry.lifetime = r->get_duration("lifetime", s.retry.lifetime);
    auto conc = r->get_int("concurrency", s.retry.concurrency);
    if (conc < 1 || conc > 10000) r->at("concurrency").fail("must be between 1 and 10000");
    s.retry.concurrency = static_cast<unsigned>(conc);
    if (s.retry.initial.count() <= 0) r->at("initial").fail("must be positive");
    if (s.retry.max < s.retry.initial) r->fail("max must not be less than initial");
  }
  if (auto a = n.find("after")) {
    s.after = read_name(n, "after");
    if (auto w = n.find("when")) {
      s.when = w->as_string();
      if (s.when != "done" && s.when != "failed" && s.when != "settled")
        w->fail("expected done, failed or settled, got \"" + s.when + "\"");
    }
  } else if (auto w = n.find("when")) {
    w->fail("when needs after: the deferred stage whose outcome it names");
  }
  s.node = n;
  return s;
}

void read_document(kernel_config& cfg, const config_node& root, const std::filesystem::path& dir,
                   bool main, std::set<std::filesystem::path>& seen, int depth);

void include_file(kernel_config& cfg, const config_node& at, const std::filesystem::path& path,
                  std::set<std::filesystem::path>& seen, int depth) {
  std::error_code ec;
  auto canonical = std::filesystem::weakly_canonical(path, ec);
  if (depth > 8) at.fail("includes nested too deeply (more than 8 levels)");
  if (!seen.insert(canonical).second) at.fail("\"" + path.string() + "\" is included twice");
  if (!std::filesystem::exists(path))
    at.fail("included file \"" + path.string() + "\" does not exist");
  // Only regular files of a sane size: never a device or FIFO that would block or never end.
  if (!std::filesystem::is_regular_file(path, ec)) {
    at.fail("included file \"" + path.string() + "\" is not a regular file");
  }
  if (std::filesystem::file_size(path, ec) > 4 * 1024 * 1024) {
    at.fail("included file \"" + path.string() + "\" is larger than 4MB");
  }
  auto doc = config_node::load_file(path.string());
  if (!doc.is_map()) doc.fail("an included file must be a map");
  read_document(cfg, doc, path.parent_path(), false, seen, depth + 1);
}

void read_document(kernel_config& cfg, const config_node& root, const std::filesystem::path& dir,
                   bool main, std::set<std::filesystem::path>& seen, int depth) {
  cfg.documents.push_back(root);
  if (main) {
    if (auto log = root.find("log")) {
      if (auto f = log->find("format")) {
        auto v = f->as_string();
        if (v == "text")
          cfg.log_format = log_format::text;
        else if (v == "json")
          cfg.log_format = log_format::json;
        else
          f->fail("expected text or json, got \"" + v + "\"");
      }
      if (auto l = log->find("level")) {
        if (!parse_log_level(l->as_string(), cfg.log_level)) {
          l->fail("expected trace, debug, info, warn or error");
        }
      }
      if (auto f = log->find("file")) {
        auto v = f->as_string();
        if (v.empty() || v.size() > 4096 || v.find('\0') != std::string::npos)
          f->fail("expected a file path (1 to 4096 bytes)");
        cfg.log_file = (dir / v).lexically_normal();
      }
    }
    cfg.spool_dir = dir / "spool";
    if (auto sp = root.find("spool")) {
      if (auto p = sp->find("path")) cfg.spool_dir = (dir / p->as_string()).lexically_normal();
      if (auto d = sp->find("durability")) {
        auto v = d->as_string();
        if (v == "full")
          cfg.durability_full = true;
        else if (v != "normal")
          d->fail("expected normal or full, got \"" + v + "\"");
      }
      cfg.spill_threshold = sp->get_size("spill_threshold", cfg.spill_threshold);
      if (cfg.spill_threshold > (1ull << 30)) sp->at("spill_threshold").fail("must be at most 1GB");
      cfg.spool_min_free_space = sp->get_size("min_free_space", cfg.spool_min_free_space);
    }
    cfg.shutdown_timeout = root.get_duration("shutdown_timeout", cfg.shutdown_timeout);
    if (auto t = root.find("threads")) {
      auto count = [&](std::string_view key) {
        const std::int64_t n = t->get_int(key, 0);
        if (n < 0 || n > 256) t->at(key).fail("0 (the default for the cores) to 256 threads");
        return static_cast<unsigned>(n);
      };
      cfg.io_threads = count("io");
      cfg.worker_threads = count("workers");
    }
    for (auto& p : root.get_string_list("plugin_path"))
      cfg.plugin_path.push_back(dir / p);
  } else {
    for (std::string_view k : {"log", "spool", "plugin_path", "shutdown_timeout", "threads"}) {
      if (root.has(k)) root.at(k).fail("may only be set in the main configuration file");
    }
  }
  if (auto inc = root.find("include")) {
    if (inc->is_scalar()) {
      include_file(cfg, *inc, resolve_config_path(dir, inc->as_string()), seen, depth);
    } else {
      for (auto& item : inc->items())
        include_file(cfg, item, resolve_config_path(dir, item.as_string()), seen, depth);
    }
  }
  if (auto s = root.find("services")) {
    for (auto& item : s->items())
      cfg.services.push_back(read_instance(item, false));
  }
  if (auto l = root.find("listeners")) {
    for (auto& item : l->items())
      cfg.listeners.push_back(read_instance(item, true));
  }
  if (auto p = root.find("pipelines")) {
    for (auto& item : p->items()) {
      if (!item.is_map()) item.fail("expected a map with name and stages");
      pipeline_config pc;
      pc.name = read_name(item, "name");
      pc.node = item;
      auto stages = item.at("stages");
      if (!stages.is_sequence()) stages.fail("expected a list of stages");
      std::set<std::string> names;
      for (auto& st : stages.items()) {
        auto sc = read_stage(st);
        if (!names.insert(sc.name).second) {
          st.fail("duplicate stage name \"" + sc.name + "\" in pipeline \"" + pc.name +
                  "\" (give one of them a name:)");
        }
        pc.stages.push_back(std::move(sc));
      }
      if (pc.stages.empty()) stages.fail("a pipeline needs at least one stage");
      cfg.pipelines.push_back(std::move(pc));
    }
  }
}

template <class T>
void check_unique(const std::vector<T>& v, std::string_view what) {
  std::set<std::string> names;
  for (auto& i : v) {
    if (!names.insert(i.name).second) {
      i.node.fail("duplicate " + std::string(what) + " name \"" + i.name + "\"");
    }
  }
}

void finish(kernel_config& cfg) {
  check_unique(cfg.services, "service");
  check_unique(cfg.listeners, "listener");
  check_unique(cfg.pipelines, "pipeline");
  std::set<std::string> pipelines;
  for (auto& p : cfg.pipelines)
    pipelines.insert(p.name);
  for (auto& l : cfg.listeners) {
    if (!l.pipeline.empty() && !pipelines.count(l.pipeline)) {
      l.node.at("pipeline").fail("no pipeline named \"" + l.pipeline + "\"");
    }
  }
}

}  // namespace

kernel_config parse_kernel_config(std::string_view text, const std::string& file_name,
                                  const std::filesystem::path& dir) {
  kernel_config cfg;
  cfg.file = file_name;
  cfg.dir = dir;
  auto root = config_node::parse(text, file_name);
  if (root.is_null()) root.fail("the configuration is empty");
  if (!root.is_map()) root.fail("the configuration must be a map");
  std::set<std::filesystem::path> seen;
  read_document(cfg, root, dir, true, seen, 0);
  finish(cfg);
  return cfg;
}

kernel_config load_kernel_config(const std::filesystem::path& file) {
  auto dir = file.parent_path();
  if (dir.empty()) dir = ".";
  return parse_kernel_config(config_node::read_file(file.string()), file.string(),
                             std::filesystem::absolute(dir));
}

void check_listen_conflicts(const kernel_config& cfg) {
  struct seen_address {
    listen_address addr;
    std::string owner;  // listener name
  };
  std::vector<seen_address> seen;
  auto overlap = [](const listen_address& a, const listen_address& b) {
    if (a.unix_socket || b.unix_socket) {
      return a.unix_socket && b.unix_socket &&
             a.path.lexically_normal() == b.path.lexically_normal();
    }
    if (a.port == 0 || a.port != b.port) return false;
    if (a.host == b.host) return true;
    // IP literals compare as addresses ("::1" and "0:0::1" are one). The unspecified address
    // takes the port on every address of its family (IPv6 sockets are v6-only).
    boost::system::error_code ea, eb;
    const auto x = boost::asio::ip::make_address(a.host, ea);
    const auto y = boost::asio::ip::make_address(b.host, eb);
    if (ea || eb || x.is_v4() != y.is_v4()) return false;
    return x == y || x.is_unspecified() || y.is_unspecified();
  };
  for (const auto& l : cfg.listeners) {
    if (!l.node.is_map() || !l.node.has("listen")) continue;
    const config_node listen = *l.node.find("listen");
    std::vector<config_node> items;
    if (listen.is_sequence()) {
      items = listen.items();
    } else if (listen.is_scalar()) {
      items.push_back(listen);
    }
    for (const auto& item : items) {
      if (!item.is_scalar()) continue;
      listen_address a;
      std::string why;
      if (!parse_listen_address(item.as_string(), cfg.dir, a, why)) continue;  // the plugin says
      for (const auto& s : seen) {
        if (overlap(a, s.addr)) {
          item.fail("\"" + a.text + "\" overlaps \"" + s.addr.text + "\" of listener \"" + s.owner +
                    "\": two sockets cannot bind the same address");
        }
      }
      seen.push_back({std::move(a), l.name});
    }
  }
}

}  // namespace sluice::kernel
