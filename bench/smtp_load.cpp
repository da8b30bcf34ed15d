// smtp_load: a standalone SMTP load generator for the Sluice benchmark (bench/run.sh).
//
// Opens C concurrent connections to one server and sends N messages of a fixed shape (1k text,
// 10k multipart/alternative + attachment, 1m or 10m with a binary attachment), K transactions per
// connection (no RSET between them), with PIPELINING when asked for and advertised. It measures
// per-message latency from MAIL FROM sent to the 250 after the end of DATA and prints one JSON
// object on stdout. It is bounded: it stops after N messages or --max-seconds, and every reply
// wait is cut by --timeout (the socket is closed, the message counted as failed, the worker
// reconnects; a worker gives up after 5 failed connects in a row). Exit code: 0 when every
// message was accepted, 1 when some failed or were not sent, 2 on bad arguments.
//
// Build: g++ -O2 -std=c++20 -pthread -o smtp_load smtp_load.cpp  (Boost.Asio, header-only)

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <sys/resource.h>

#include <boost/asio.hpp>

namespace asio = boost::asio;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

struct options {
  std::string host = "127.0.0.1";
  uint16_t port = 2525;
  uint64_t messages = 1000;
  unsigned connections = 16;
  std::string size = "10k";
  unsigned per_connection = 100;
  bool pipelining = false;
  double timeout_s = 30;
  double max_seconds = 60;
  std::string from = "sender@bench.example";
  std::string to = "rcpt@bench.example";
};

struct stats {
  uint64_t next_index = 0;         // next message number to claim
  std::vector<uint64_t> returned;  // claimed by a worker whose connect failed
  uint64_t sent = 0;               // transactions started (MAIL FROM written)
  uint64_t ok = 0;                 // 250 after end of DATA
  uint64_t failed = 0;             // rejected or broken transactions
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t bytes = 0;  // message bytes accepted
  bool pipelining_used = false;
  std::vector<double> latencies_ms;
  std::string first_error;
};

// ---- message bodies -------------------------------------------------------------------------

const char* const k_words[] = {"lorem",      "ipsum", "dolor",  "sit",    "amet",    "consectetur",
                               "adipiscing", "elit",  "sed",    "do",     "eiusmod", "tempor",
                               "incididunt", "ut",    "labore", "et",     "dolore",  "magna",
                               "aliqua",     "enim",  "minim",  "veniam", "quis",    "nostrud"};

uint64_t next_rand(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

// CRLF lines of words, about `bytes` long, none starting with '.'.
std::string text_lines(size_t bytes, uint64_t seed, const char* prefix = "",
                       const char* suffix = "") {
  std::string out;
  std::string line = prefix;
  while (out.size() < bytes) {
    const char* w = k_words[next_rand(seed) % std::size(k_words)];
    if (line.size() + std::string_view(w).size() + 1 > 70) {
      out += line + suffix + "\r\n";
      line = prefix;
    }
    if (!line.empty() && line.back() != '>') line += ' ';
    line += w;
  }
  return out;
}

std::string base64_lines(size_t raw_bytes, uint64_t seed) {
  static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve(raw_bytes * 4 / 3 + raw_bytes / 38 + 8);
  size_t col = 0;
  for (size_t i = 0; i < raw_bytes; i += 3) {
    uint32_t v = static_cast<uint32_t>(next_rand(seed) & 0xffffff);
    size_t n = std::min<size_t>(3, raw_bytes - i);
    char q[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63], n > 1 ? tbl[(v >> 6) & 63] : '=',
                 n > 2 ? tbl[v & 63] : '='};
    out.append(q, 4);
    col += 4;
    if (col == 76) {
      out += "\r\n";
      col = 0;
    }
  }
  if (col) out += "\r\n";
  return out;
}

// The part of the message after the per-message headers: MIME headers and body, ending in CRLF.
// `target` is the whole message size the body is padded towards (headers take ~400 bytes).
std::string make_body(const std::string& size, size_t& target) {
  const std::string b1 = "=_sluice_bench_mixed_4f2a";
  const std::string b2 = "=_sluice_bench_alt_9c1e";
  if (size == "1k") {
    target = 1024;
    return "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" +
           text_lines(target - 487, 1);
  }
  std::string out = "Content-Type: multipart/mixed; boundary=\"" + b1 + "\"\r\n\r\n";
  out += "This is a multi-part message in MIME format.\r\n\r\n--" + b1 + "\r\n";
  if (size == "10k") {
    target = 10 * 1024;
    out += "Content-Type: multipart/alternative; boundary=\"" + b2 + "\"\r\n\r\n--" + b2 + "\r\n";
    out += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n";
    out += text_lines(2400, 2);
    out += "\r\n--" + b2 + "\r\n";
    out += "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n";
    out += "<!DOCTYPE html>\r\n<html><head><title>Bench</title></head><body>\r\n";
    out += text_lines(3400, 3, "<p>", "</p>");
    out += "</body></html>\r\n\r\n--" + b2 + "--\r\n\r\n--" + b1 + "\r\n";
    out +=
        "Content-Type: application/pdf; name=\"invoice.pdf\"\r\n"
        "Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n";
    size_t used = out.size() + 400 + b1.size() + 8;
    size_t left = target > used ? target - used : 300;
    out += base64_lines(left * 76 / 78 * 3 / 4, 4);
  } else if (size == "1m" || size == "10m") {
    target = (size == "1m" ? 1 : 10) * 1024 * 1024;
    out += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n";
    out += text_lines(1500, 5);
    out += "\r\n--" + b1 + "\r\n";
    out +=
        "Content-Type: application/octet-stream; name=\"data.bin\"\r\n"
        "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n";
    size_t used = out.size() + 400 + b1.size() + 8;
    out += base64_lines((target - used) * 76 / 78 * 3 / 4, 6);
  } else {
    throw std::invalid_argument("--size must be 1k, 10k, 1m or 10m");
  }
  out += "\r\n--" + b1 + "--\r\n";
  return out;
}

std::string make_headers(const options& o, uint64_t index, uint64_t run_id) {
  char date[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
  std::string h;
  h.reserve(512);
  h +=
      "Received: from bench-client (localhost [127.0.0.1]) by bench; " + std::string(date) + "\r\n";
  h += "Date: " + std::string(date) + "\r\n";
  h += "From: \"Bench Sender\" <" + o.from + ">\r\n";
  h += "To: \"Bench Recipient\" <" + o.to + ">\r\n";
  h += "Subject: Sluice bench " + o.size + " message " + std::to_string(index) + " of run " +
       std::to_string(run_id) + "\r\n";
  h += "Message-ID: <" + std::to_string(run_id) + "." + std::to_string(index) +
       "@smtp-load.bench.example>\r\n";
  h += "MIME-Version: 1.0\r\nX-Mailer: sluice-smtp-load/1\r\n";
  return h;
}

// what() of a boost::system::system_error carries a source location: keep the message only.
std::string describe(const std::exception& e) {
  if (auto* se = dynamic_cast<const boost::system::system_error*>(&e)) return se->code().message();
  return e.what();
}

// ---- SMTP client ----------------------------------------------------------------------------

struct smtp_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct connection {
  explicit connection(asio::any_io_executor ex) : sock(ex), timer(ex) {}
  tcp::socket sock;
  asio::steady_timer timer;
  std::string rbuf;
  std::string last_reply;
};

// Closes the socket when the timer expires without having been pushed forward.
awaitable<void> watchdog(std::shared_ptr<connection> c) {
  while (c->sock.is_open()) {
    if (c->timer.expiry() <= steady::now()) {
      boost::system::error_code ec;
      c->sock.close(ec);
      co_return;
    }
    boost::system::error_code ec;
    co_await c->timer.async_wait(asio::redirect_error(use_awaitable, ec));
  }
}

void arm(connection& c, const options& o) {
  c.timer.expires_after(std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000)));
}

// Reads one (possibly multi-line) reply; returns its code. Full text is left in c.last_reply.
awaitable<int> read_reply(connection& c, const options& o) {
  c.last_reply.clear();
  for (;;) {
    arm(c, o);
    size_t n = co_await asio::async_read_until(c.sock, asio::dynamic_buffer(c.rbuf), "\r\n",
                                               use_awaitable);
    std::string line = c.rbuf.substr(0, n);
    c.rbuf.erase(0, n);
    c.last_reply += line;
    if (line.size() < 5) throw smtp_error("short reply: " + line);
    if (line[3] == ' ') co_return std::atoi(line.substr(0, 3).c_str());
    if (line[3] != '-') throw smtp_error("bad reply: " + line);
  }
}

awaitable<void> write_all(connection& c, const options& o, std::string_view a,
                          std::string_view b = {}, std::string_view d = {}) {
  arm(c, o);
  std::array<asio::const_buffer, 3> bufs{asio::buffer(a), asio::buffer(b), asio::buffer(d)};
  co_await asio::async_write(c.sock, bufs, use_awaitable);
}

void expect(connection& c, int got, int want_class, const char* what) {
  if (got / 100 != want_class) {
    std::string r = c.last_reply;
    while (!r.empty() && (r.back() == '\n' || r.back() == '\r'))
      r.pop_back();
    throw smtp_error(std::string(what) + ": " + r);
  }
}

struct run_context {
  options o;
  stats st;
  std::string body;
  uint64_t run_id = 0;
  steady::time_point stop_at;
};

// Claims the next message number; false when all are claimed or time is up.
bool claim(run_context& rc, uint64_t& index) {
  if (steady::now() >= rc.stop_at) return false;
  if (!rc.st.returned.empty()) {
    index = rc.st.returned.back();
    rc.st.returned.pop_back();
    return true;
  }
  if (rc.st.next_index >= rc.o.messages) return false;
  index = rc.st.next_index++;
  return true;
}

// One worker: connect, EHLO, up to K transactions, QUIT; repeat while messages remain.
awaitable<void> worker(run_context& rc, unsigned id) {
  auto ex = co_await asio::this_coro::executor;
  const options& o = rc.o;
  stats& st = rc.st;
  unsigned connect_failures_in_row = 0;
  const std::string mail = "MAIL FROM:<" + o.from + ">\r\n";
  const std::string rcpt = "RCPT TO:<" + o.to + ">\r\n";
  const std::string pipelined = mail + rcpt + "DATA\r\n";
  const std::string end = ".\r\n";
  uint64_t first = 0;
  while (claim(rc, first)) {  // a message is claimed before connecting: no idle connects
    auto c = std::make_shared<connection>(ex);
    bool ready = false;
    bool pipelining = false;
    try {
      arm(*c, o);
      asio::co_spawn(ex, watchdog(c), asio::detached);
      ++st.connects;
      co_await c->sock.async_connect(tcp::endpoint(asio::ip::make_address(o.host), o.port),
                                     use_awaitable);
      c->sock.set_option(tcp::no_delay(true));
      expect(*c, co_await read_reply(*c, o), 2, "greeting");
      co_await write_all(*c, o, "EHLO smtp-load.bench.example\r\n");
      expect(*c, co_await read_reply(*c, o), 2, "EHLO");
      pipelining = o.pipelining && c->last_reply.find("PIPELINING") != std::string::npos;
      if (pipelining) st.pipelining_used = true;
      ready = true;
      connect_failures_in_row = 0;
    } catch (const std::exception& e) {
      ++st.connect_failures;
      if (st.first_error.empty()) st.first_error = "connect: " + describe(e);
    }
    if (!ready) {
      st.returned.push_back(first);
      boost::system::error_code ec;
      c->sock.close(ec);
      c->timer.cancel();
      if (++connect_failures_in_row >= 5) co_return;
      asio::steady_timer pause(ex, std::chrono::milliseconds(100));
      co_await pause.async_wait(use_awaitable);
      continue;
    }
    bool healthy = true;
    for (unsigned k = 0; k < o.per_connection && healthy; ++k) {
      uint64_t index = first;
      if (k > 0 && !claim(rc, index)) break;
      std::string headers = make_headers(o, index, rc.run_id);
      ++st.sent;
      auto t0 = steady::now();
      bool in_transaction = false;
      bool need_rset = false;
      try {
        if (pipelining) {
          co_await write_all(*c, o, pipelined);
          in_transaction = true;
          int r1 = co_await read_reply(*c, o);
          int r2 = co_await read_reply(*c, o);
          int r3 = co_await read_reply(*c, o);
          if (r3 / 100 == 3 && (r1 / 100 != 2 || r2 / 100 != 2)) {
            co_await write_all(*c, o, end);  // DATA was accepted after all: close it empty
            co_await read_reply(*c, o);
          }
          expect(*c, r1, 2, "MAIL");
          expect(*c, r2, 2, "RCPT");
          expect(*c, r3, 3, "DATA");
        } else {
          co_await write_all(*c, o, mail);
          in_transaction = true;
          expect(*c, co_await read_reply(*c, o), 2, "MAIL");
          co_await write_all(*c, o, rcpt);
          expect(*c, co_await read_reply(*c, o), 2, "RCPT");
          co_await write_all(*c, o, "DATA\r\n");
          expect(*c, co_await read_reply(*c, o), 3, "DATA");
        }
        co_await write_all(*c, o, headers, rc.body, end);
        expect(*c, co_await read_reply(*c, o), 2, "end of DATA");
        in_transaction = false;
        double ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
        st.latencies_ms.push_back(ms);
        ++st.ok;
        st.bytes += headers.size() + rc.body.size();
      } catch (const smtp_error& e) {
        ++st.failed;
        if (st.first_error.empty()) st.first_error = e.what();
        // A clean rejection: reset the transaction and go on; anything odd: reconnect.
        need_rset = true;
        if (!in_transaction) healthy = false;
      } catch (const std::exception& e) {
        ++st.failed;
        if (st.first_error.empty()) st.first_error = "transaction: " + describe(e);
        healthy = false;
      }
      if (need_rset && healthy) {
        try {
          co_await write_all(*c, o, "RSET\r\n");
          if ((co_await read_reply(*c, o)) / 100 != 2) healthy = false;
        } catch (const std::exception&) {
          healthy = false;
        }
      }
    }
    if (healthy) {
      try {
        co_await write_all(*c, o, "QUIT\r\n");
        co_await read_reply(*c, o);
      } catch (const std::exception&) {
      }
    }
    boost::system::error_code ec;
    c->sock.close(ec);
    c->timer.cancel();
  }
  (void)id;
}

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "error: %s\nusage: smtp_load --server host:port [--messages N] [--connections C]\n"
               "       [--size 1k|10k|1m|10m] [--messages-per-connection K] [--pipelining]\n"
               "       [--timeout SECONDS] [--max-seconds SECONDS] [--from ADDR] [--to ADDR]\n",
               msg);
  std::exit(2);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) usage(("missing value for " + a).c_str());
      return argv[++i];
    };
    try {
      if (a == "--server") {
        std::string s = val();
        auto p = s.rfind(':');
        if (p == std::string::npos) usage("--server wants host:port");
        o.host = s.substr(0, p);
        if (o.host == "localhost") o.host = "127.0.0.1";
        o.port = static_cast<uint16_t>(std::stoul(s.substr(p + 1)));
      } else if (a == "--messages") {
        o.messages = std::stoull(val());
      } else if (a == "--connections") {
        o.connections = static_cast<unsigned>(std::stoul(val()));
      } else if (a == "--size") {
        o.size = val();
      } else if (a == "--messages-per-connection") {
        o.per_connection = static_cast<unsigned>(std::stoul(val()));
      } else if (a == "--pipelining") {
        o.pipelining = true;
      } else if (a == "--timeout") {
        o.timeout_s = std::stod(val());
      } else if (a == "--max-seconds") {
        o.max_seconds = std::stod(val());
      } else if (a == "--from") {
        o.from = val();
      } else if (a == "--to") {
        o.to = val();
      } else if (a == "-h" || a == "--help") {
        usage("help");
      } else {
        usage(("unknown option " + a).c_str());
      }
    } catch (const std::logic_error&) {
      usage(("bad value for " + a).c_str());
    }
  }
  if (o.connections == 0 || o.per_connection == 0 || o.timeout_s <= 0 || o.max_seconds <= 0)
    usage("counts and times must be positive");
  return o;
}

double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  run_context rc;
  rc.o = parse(argc, argv);
  size_t target = 0;
  try {
    rc.body = make_body(rc.o.size, target);
  } catch (const std::exception& e) {
    usage(e.what());
  }
  rc.run_id = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  rc.st.latencies_ms.reserve(std::min<uint64_t>(rc.o.messages, 10'000'000));

  asio::io_context io(1);
  auto t0 = steady::now();
  rc.stop_at = t0 + std::chrono::milliseconds(static_cast<int64_t>(rc.o.max_seconds * 1000));
  unsigned workers = static_cast<unsigned>(std::min<uint64_t>(rc.o.connections, rc.o.messages));
  for (unsigned i = 0; i < workers; ++i) {
    asio::co_spawn(io, worker(rc, i), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
  }
  try {
    io.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "smtp_load: fatal: %s\n", describe(e).c_str());
    return 1;
  }
  double secs = std::chrono::duration<double>(steady::now() - t0).count();
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  double cpu = static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;

  auto& st = rc.st;
  std::sort(st.latencies_ms.begin(), st.latencies_ms.end());
  double mean = 0;
  for (double v : st.latencies_ms)
    mean += v;
  if (!st.latencies_ms.empty()) mean /= static_cast<double>(st.latencies_ms.size());
  std::string err;
  for (char ch : st.first_error) {
    if (ch == '"' || ch == '\\') err += '\\';
    if (static_cast<unsigned char>(ch) >= 0x20) err += ch;
  }
  size_t msg_bytes = make_headers(rc.o, 0, rc.run_id).size() + rc.body.size();
  std::printf(
      "{\"server\": \"%s:%u\", \"size\": \"%s\", \"message_bytes\": %zu, \"connections\": %u, "
      "\"messages_per_connection\": %u, \"pipelining\": %s, \"requested\": %llu, \"sent\": %llu, "
      "\"ok\": %llu, \"failed\": %llu, \"connects\": %llu, \"connect_failures\": %llu, "
      "\"seconds\": %.3f, \"msgs_per_s\": %.1f, \"mb_per_s\": %.2f, \"p50_ms\": %.3f, "
      "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"mean_ms\": %.3f, \"client_cpu_s\": %.3f, "
      "\"first_error\": \"%s\"}\n",
      rc.o.host.c_str(), rc.o.port, rc.o.size.c_str(), msg_bytes, rc.o.connections,
      rc.o.per_connection, st.pipelining_used ? "true" : "false",
      static_cast<unsigned long long>(rc.o.messages), static_cast<unsigned long long>(st.sent),
      static_cast<unsigned long long>(st.ok), static_cast<unsigned long long>(st.failed),
      static_cast<unsigned long long>(st.connects),
      static_cast<unsigned long long>(st.connect_failures), secs,
      secs > 0 ? static_cast<double>(st.ok) / secs : 0.0,
      secs > 0 ? static_cast<double>(st.bytes) / secs / 1e6 : 0.0,
      percentile(st.latencies_ms, 0.50), percentile(st.latencies_ms, 0.99),
      st.latencies_ms.empty() ? 0.0 : st.latencies_ms.back(), mean, cpu, err.c_str());
  (void)target;
  return (st.ok == rc.o.messages) ? 0 : 1;
}
