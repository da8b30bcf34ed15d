// log.cpp — the process-wide log sink: text or JSON lines, one write(2) per line so
// lines from different threads never interleave.
#include "sluice/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace sluice {
namespace {

std::atomic<int> g_fd{2};
std::atomic<log_level> g_level{log_level::info};
std::atomic<log_format> g_format{log_format::text};

const char* level_name(log_level l) {
  switch (l) {
    case log_level::trace:
      return "trace";
    case log_level::debug:
      return "debug";
    case log_level::info:
      return "info";
    case log_level::warn:
      return "warn";
    case log_level::error:
      return "error";
  }
  return "info";
}

void append_json_string(std::string& out, std::string_view s) {
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// Text values are quoted when they contain spaces, quotes or control characters, so a
// line stays one line and splits unambiguously into key=value pairs.
void append_text_value(std::string& out, std::string_view v) {
  bool plain = !v.empty();
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == 0x7f) {
      plain = false;
      break;
    }
  }
  if (plain) {
    out.append(v);
  } else {
    append_json_string(out, v);
  }
}

std::string timestamp() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto t = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

}  // namespace

void configure_logging(log_format format, log_level level, int fd) {
  g_format = format;
  g_level = level;
  g_fd = fd;
}

bool parse_log_level(std::string_view s, log_level& out) {
  static constexpr std::pair<std::string_view, log_level> names[] = {{"trace", log_level::trace},
                                                                     {"debug", log_level::debug},
                                                                     {"info", log_level::info},
                                                                     {"warn", log_level::warn},
                                                                     {"error", log_level::error}};
  for (auto& [n, l] : names) {
    if (n == s) {
      out = l;
      return true;
    }
  }
  return false;
}

logger logger::with(log_field f) const {
  logger copy = *this;
  copy.context_.push_back(std::move(f));
  return copy;
}

bool logger::enabled(log_level l) const noexcept {
  return l >= g_level.load(std::memory_order_relaxed);
}

void logger::log(log_level l, std::string_view msg, std::vector<log_field> fields) const {
  if (!enabled(l)) return;
  std::string line;
  line.reserve(160);
  if (g_format.load(std::memory_order_relaxed) == log_format::json) {
    line += "{\"ts\":\"" + timestamp() + "\",\"level\":\"" + level_name(l) + "\"";
    if (!component_.empty()) {
      line += ",\"component\":";
      append_json_string(line, component_);
    }
    line += ",\"msg\":";
    append_json_string(line, msg);
    auto emit = [&](const log_field& f) {
      line.push_back(',');
      append_json_string(line, f.key);
      line.push_back(':');
      if (f.quoted) {
        append_json_string(line, f.value);
      } else {
        line += f.value;
      }
    };
    for (auto& f : context_)
      emit(f);
    for (auto& f : fields)
      emit(f);
    line += "}\n";
  } else {
    line += timestamp();
    line += ' ';
    line += level_name(l);
    if (!component_.empty()) {
      line += ' ';
      line += component_;
    }
    line += ": ";
    for (char c : msg)
      line.push_back(c == '\n' || c == '\r' ? ' ' : c);
    auto emit = [&](const log_field& f) {
      line.push_back(' ');
      line += f.key;
      line.push_back('=');
      append_text_value(line, f.value);
    };
    for (auto& f : context_)
      emit(f);
    for (auto& f : fields)
      emit(f);
    line.push_back('\n');
  }
  const int fd = g_fd.load(std::memory_order_relaxed);
  const char* p = line.data();
  std::size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n <= 0) break;  // a log sink that fails must not take the process down
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace sluice
