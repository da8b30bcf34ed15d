// config.cpp — config_node over yaml-cpp with locations, key paths, ${ENV} substitution
// and "unknown key" detection (see sluice/config.hpp).
//
// Every node of one document shares a set of key paths that were read; check_unknown_keys
// walks the document and reports the first key not in that set. Duplicate keys are
// refused at parse time (yaml-cpp keeps both silently).
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "sluice/config.hpp"

namespace sluice {

struct config_node::impl {
  YAML::Node node;
  std::string file;
  std::string path;
  YAML::Mark mark;  // of the node, or of its parent when the node is missing
  std::shared_ptr<std::set<std::string>> read_paths;
};

namespace {

std::string location(const std::string& file, const YAML::Mark& m) {
  if (m.is_null()) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string child_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

std::string item_path(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

[[noreturn]] void throw_at(const std::string& file, const YAML::Mark& m, const std::string& path,
                           std::string_view what) {
  std::string msg = location(file, m);
  msg += ": ";
  if (!path.empty()) {
    msg += path;
    msg += ": ";
  }
  msg += what;
  throw config_error(msg);
}

// Configuration is shallow; anything deeper is a mistake or an alias that contains itself
// (`a: &x {b: *x}` makes the node graph cyclic), which must not recurse without end.
constexpr int max_depth = 64;
// Aliases are expanded wherever they are read: ten aliases of ten aliases of … make a few
// lines mean a billion nodes. No configuration comes near this many.
constexpr std::size_t max_nodes = 100'000;

void check_duplicates(const YAML::Node& n, const std::string& file, const std::string& path,
                      std::size_t& nodes, int depth = 0) {
  if (depth > max_depth) {
    throw_at(file, n.Mark(), path,
             "nested more than 64 levels deep (or an alias that refers to itself)");
  }
  if (++nodes > max_nodes) {
    throw_at(file, n.Mark(), path,
             "more than 100000 values once aliases are expanded (an alias bomb?)");
  }
  if (n.IsMap()) {
    std::set<std::string> seen;
    for (auto it = n.begin(); it != n.end(); ++it) {
      if (!it->first.IsScalar()) {
        throw_at(file, it->first.Mark(), path, "map keys must be plain strings");
      }
      auto key = it->first.Scalar();
      if (key == "<<" && it->first.Tag() == "?") {  // plain, not "<<" quoted
        throw_at(file, it->first.Mark(), child_path(path, key),
                 "YAML merge keys (<<) are not supported: write the keys out, or use an alias "
                 "for the whole value");
      }
      if (!seen.insert(key).second) {
        throw_at(file, it->first.Mark(), child_path(path, key), "duplicate key");
      }
      check_duplicates(it->second, file, child_path(path, key), nodes, depth + 1);
    }
  } else if (n.IsSequence()) {
    std::size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      check_duplicates(*it, file, item_path(path, i), nodes, depth + 1);
    }
  }
}

// Where the second document's content starts, if it has any. Not YAML::LoadAll: after a
// leading ',' (found by fuzz_config) yaml-cpp 0.7's parser reports documents without end
// that replay the first one's position, so only the next document is looked at, and only
// content that comes after everything of the first counts.
std::optional<YAML::Mark> second_document(const std::string& text) {
  struct first_mark final : YAML::EventHandler {
    std::optional<YAML::Mark> mark;  // of the first content (an empty document has none)
    int last_pos = -1;               // the furthest event
    void at(const YAML::Mark& m, bool content = true) {
      if (content && !mark) mark = m;
      last_pos = std::max(last_pos, m.pos);
    }
    void OnDocumentStart(const YAML::Mark&) override {}
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark& m, YAML::anchor_t) override { at(m, false); }
    void OnAlias(const YAML::Mark& m, YAML::anchor_t) override { at(m); }
    void OnScalar(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                  const std::string&) override {
      at(m);
    }
    void OnSequenceStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {
      at(m);
    }
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {
      at(m);
    }
    void OnMapEnd() override {}
  };
  std::istringstream in(text);
  YAML::Parser parser(in);
  first_mark skip, next;
  if (!parser.HandleNextDocument(skip)) return std::nullopt;
  if (!parser.HandleNextDocument(next) || !next.mark) return std::nullopt;
  if (next.mark->pos <= skip.last_pos) return std::nullopt;
  return next.mark;
}

std::string describe(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "nothing";
  if (n.IsMap()) return "a map";
  if (n.IsSequence()) return "a list";
  return "\"" + n.Scalar() + "\"";
}

}  // namespace

config_node::config_node() = default;
config_node::config_node(std::shared_ptr<impl> p) : impl_(std::move(p)) {}
config_node::~config_node() = default;
config_node::config_node(const config_node&) = default;
config_node& config_node::operator=(const config_node&) = default;

std::string config_node::where() const {
  return impl_ ? location(impl_->file, impl_->mark) : "?";
}
std::string config_node::path() const {
  return impl_ ? impl_->path : std::string();
}

bool config_node::is_map() const {
  return impl_ && impl_->node.IsMap();
}
bool config_node::is_sequence() const {
  return impl_ && impl_->node.IsSequence();
}
bool config_node::is_scalar() const {
  return impl_ && impl_->node.IsScalar();
}
bool config_node::is_null() const {
  return !impl_ || !impl_->node.IsDefined() || impl_->node.IsNull();
}

void config_node::fail(std::string_view what) const {
  if (!impl_) throw config_error(std::string(what));
  throw_at(impl_->file, impl_->mark, impl_->path, what);
}

bool config_node::has(std::string_view key) const {
  if (!is_map()) return false;
  for (auto it = impl_->node.begin(); it != impl_->node.end(); ++it) {
    if (it->first.Scalar() == key) return true;
  }
  return false;
}

std::optional<config_node> config_node::find(std::string_view key) const {
  if (is_null()) return std::nullopt;
  if (!is_map()) fail("expected a map, got " + describe(impl_->node));
  for (auto it = impl_->node.begin(); it != impl_->node.end(); ++it) {
    if (it->first.Scalar() == key) {
      auto p = std::make_shared<impl>();
      p->node = it->second;
      p->file = impl_->file;
      p->path = child_path(impl_->path, key);
      p->mark = it->second.Mark().is_null() ? it->first.Mark() : it->second.Mark();
      p->read_paths = impl_->read_paths;
      impl_->read_paths->insert(p->path);
      return config_node(std::move(p));
    }
  }
  return std::nullopt;
}

config_node config_node::at(std::string_view key) const {
  auto n = find(key);
  if (!n) {
    if (!impl_) throw config_error("missing required key \"" + std::string(key) + "\"");
    throw_at(impl_->file, impl_->mark, child_path(impl_->path, key), "missing required key");
  }
  return *n;
}

std::vector<config_node> config_node::items() const {
  std::vector<config_node> out;
  if (is_null()) return out;
  if (!is_sequence()) fail("expected a list, got " + describe(impl_->node));
  std::size_t i = 0;
  for (auto it = impl_->node.begin(); it != impl_->node.end(); ++it, ++i) {
    auto p = std::make_shared<impl>();
    p->node = static_cast<const YAML::Node&>(*it);
    p->file = impl_->file;
    p->path = item_path(impl_->path, i);
    p->mark = it->Mark().is_null() ? impl_->mark : it->Mark();
    p->read_paths = impl_->read_paths;
    impl_->read_paths->insert(p->path);
    out.emplace_back(std::move(p));
  }
  return out;
}

std::vector<std::pair<std::string, config_node>> config_node::entries() const {
  std::vector<std::pair<std::string, config_node>> out;
  if (is_null()) return out;
  if (!is_map()) fail("expected a map, got " + describe(impl_->node));
  for (auto it = impl_->node.begin(); it != impl_->node.end(); ++it) {
    auto key = it->first.Scalar();
    auto p = std::make_shared<impl>();
    p->node = it->second;
    p->file = impl_->file;
    p->path = child_path(impl_->path, key);
    p->mark = it->second.Mark().is_null() ? it->first.Mark() : it->second.Mark();
    p->read_paths = impl_->read_paths;
    impl_->read_paths->insert(p->path);
    out.emplace_back(key, config_node(std::move(p)));
  }
  return out;
}

std::string config_node::as_string() const {
  if (!is_scalar()) fail("expected a string, got " + (impl_ ? describe(impl_->node) : "nothing"));
  const std::string& raw = impl_->node.Scalar();
  if (raw.find('$') == std::string::npos) return raw;
  std::string out;
  out.reserve(raw.size());
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '$' && i + 1 < raw.size() && raw[i + 1] == '$') {
      out.push_back('$');
      ++i;
      continue;
    }
    if (raw[i] == '$' && i + 1 < raw.size() && raw[i + 1] == '{') {
      std::size_t close = raw.find('}', i + 2);
      if (close == std::string::npos) fail("unterminated ${ in \"" + raw + "\"");
      std::string expr = raw.substr(i + 2, close - i - 2);
      std::string name = expr;
      std::optional<std::string> fallback;
      if (auto d = expr.find(":-"); d != std::string::npos) {
        name = expr.substr(0, d);
        fallback = expr.substr(d + 2);
        // "${A:-${B}}" would end at the first '}' and leave "}" behind: say so instead.
        if (fallback->find("${") != std::string::npos)
          fail("a default may not contain ${...} (nested variables are not supported): \"" + raw +
               "\"");
      }
      bool valid = !name.empty();
      for (char c : name) {
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) valid = false;
      }
      if (!valid) fail("bad variable name in ${" + expr + "}");
      const char* v = std::getenv(name.c_str());
      if (v && *v) {
        out += v;
      } else if (fallback) {
        out += *fallback;
      } else {
        fail("environment variable " + name + " is not set (use ${" + name + ":-default})");
      }
      i = close;
      continue;
    }
    out.push_back(raw[i]);
  }
  return out;
}

std::int64_t config_node::as_int() const {
  auto s = as_string();
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) fail("expected an integer, got \"" + s + "\"");
  return v;
}

double config_node::as_double() const {
  auto s = as_string();
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) fail("expected a number, got \"" + s + "\"");
  return v;
}

bool config_node::as_bool() const {
  auto s = as_string();
  if (s == "true" || s == "yes" || s == "on") return true;
  if (s == "false" || s == "no" || s == "off") return false;
  fail("expected true or false, got \"" + s + "\"");
}

namespace {
bool split_number_unit(const std::string& s, double& num, std::string& unit) {
  std::size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.'))
    ++i;
  if (i == 0) return false;
  char* end = nullptr;
  std::string n = s.substr(0, i);
  num = std::strtod(n.c_str(), &end);
  if (end != n.c_str() + n.size()) return false;
  std::size_t j = i;
  while (j < s.size() && s[j] == ' ')
    ++j;
  unit = s.substr(j);
  return true;
}
}  // namespace

std::chrono::milliseconds config_node::as_duration() const {
  auto s = as_string();
  double num = 0;
  std::string unit;
  if (split_number_unit(s, num, unit)) {
    double ms = -1;
    if (unit.empty() || unit == "s")
      ms = num * 1000;
    else if (unit == "ms")
      ms = num;
    else if (unit == "m" || unit == "min")
      ms = num * 60'000;
    else if (unit == "h")
      ms = num * 3'600'000;
    else if (unit == "d")
      ms = num * 86'400'000;
    if (ms >= 0 && ms < 1e15) return std::chrono::milliseconds(static_cast<std::int64_t>(ms));
  }
  fail("expected a duration like 250ms, 30s, 5m, 2h or 1d, got \"" + s + "\"");
}

std::uint64_t config_node::as_size() const {
  auto s = as_string();
  double num = 0;
  std::string unit;
  if (split_number_unit(s, num, unit)) {
    for (auto& c : unit)
      c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    double mult = -1;
    if (unit.empty() || unit == "B")
      mult = 1;
    else if (unit == "K" || unit == "KB" || unit == "KIB")
      mult = 1024.0;
    else if (unit == "M" || unit == "MB" || unit == "MIB")
      mult = 1024.0 * 1024;
    else if (unit == "G" || unit == "GB" || unit == "GIB")
      mult = 1024.0 * 1024 * 1024;
    if (mult > 0 && num * mult < 1.8e19) return static_cast<std::uint64_t>(num * mult);
  }
  fail("expected a size like 512, 64KB, 25MB or 1GB, got \"" + s + "\"");
}

std::vector<std::string> config_node::as_string_list() const {
  std::vector<std::string> out;
  if (is_null()) return out;
  if (is_scalar()) {
    out.push_back(as_string());
    return out;
  }
  for (auto& item : items())
    out.push_back(item.as_string());
  return out;
}

std::string config_node::get_string(std::string_view key, std::string_view fallback) const {
  auto n = find(key);
  return n && !n->is_null() ? n->as_string() : std::string(fallback);
}
std::int64_t config_node::get_int(std::string_view key, std::int64_t fallback) const {
  auto n = find(key);
  return n && !n->is_null() ? n->as_int() : fallback;
}
bool config_node::get_bool(std::string_view key, bool fallback) const {
  auto n = find(key);
  return n && !n->is_null() ? n->as_bool() : fallback;
}
std::chrono::milliseconds config_node::get_duration(std::string_view key,
                                                    std::chrono::milliseconds fallback) const {
  auto n = find(key);
  return n && !n->is_null() ? n->as_duration() : fallback;
}
std::uint64_t config_node::get_size(std::string_view key, std::uint64_t fallback) const {
  auto n = find(key);
  return n && !n->is_null() ? n->as_size() : fallback;
}
std::vector<std::string> config_node::get_string_list(std::string_view key,
                                                      std::vector<std::string> fallback) const {
  auto n = find(key);
  return n && !n->is_null() ? n->as_string_list() : fallback;
}

void config_node::check_unknown_keys() const {
  if (!impl_) return;
  const auto& n = impl_->node;
  if (n.IsMap()) {
    for (auto it = n.begin(); it != n.end(); ++it) {
      auto key = it->first.Scalar();
      auto p = child_path(impl_->path, key);
      if (!impl_->read_paths->count(p)) throw_at(impl_->file, it->first.Mark(), p, "unknown key");
      if (it->second.IsMap() || it->second.IsSequence()) {
        auto c = std::make_shared<impl>();
        c->node = it->second;
        c->file = impl_->file;
        c->path = p;
        c->mark = it->second.Mark();
        c->read_paths = impl_->read_paths;
        config_node(std::move(c)).check_unknown_keys();
      }
    }
  } else if (n.IsSequence()) {
    std::size_t i = 0;
    for (auto it = n.begin(); it != n.end(); ++it, ++i) {
      auto p = item_path(impl_->path, i);
      // Items that nobody read at all were not consumed as configuration; leave lists of
      // scalars alone, report unread maps.
      if (!(it->IsMap() || it->IsSequence())) continue;
      if (!impl_->read_paths->count(p)) continue;
      auto c = std::make_shared<impl>();
      c->node = static_cast<const YAML::Node&>(*it);
      c->file = impl_->file;
      c->path = p;
      c->mark = it->Mark();
      c->read_paths = impl_->read_paths;
      config_node(std::move(c)).check_unknown_keys();
    }
  }
}

config_node config_node::parse(std::string_view text, std::string file) {
  auto p = std::make_shared<impl>();
  try {
    const std::string s(text);
    p->node = YAML::Load(s);
    // A second document ("---") would be ignored without a word: refuse it.
    if (auto second = second_document(s)) {
      throw_at(file, *second, "",
               "a second YAML document (after ---): a configuration file holds one");
    }
  } catch (const YAML::Exception& e) {
    throw_at(file, e.mark, "", "YAML syntax error: " + e.msg);
  }
  std::size_t nodes = 0;
  check_duplicates(p->node, file, "", nodes);
  p->file = std::move(file);
  p->mark = p->node.Mark();
  if (p->mark.is_null()) p->mark = YAML::Mark();
  p->read_paths = std::make_shared<std::set<std::string>>();
  return config_node(std::move(p));
}

std::string config_node::read_file(const std::string& path) {
  // Only regular files of a sane size: a FIFO or a device would block or never end (and
  // the kernel reads its configuration with SIGTERM and SIGINT blocked).
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec) throw config_error(path + ": cannot read the configuration file: " + ec.message());
  if (std::filesystem::is_directory(st)) throw config_error(path + ": is a directory, not a file");
  if (!std::filesystem::is_regular_file(st)) throw config_error(path + ": is not a regular file");
  if (std::filesystem::file_size(path, ec) > max_file_bytes)
    throw config_error(path + ": larger than 4MB: not a configuration file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw config_error(
        path + ": cannot read the configuration file: " + std::generic_category().message(errno));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

config_node config_node::load_file(const std::string& path) {
  return parse(read_file(path), path);
}

}  // namespace sluice
