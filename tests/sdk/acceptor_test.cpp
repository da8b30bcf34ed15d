// acceptor_test.cpp — sluice::acceptor_set: binding TCP and unix addresses, what a handler
// gets for each accepted connection, and stop(). Everything on 127.0.0.1 and in a temp dir.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "sluice/acceptor.hpp"
#include "sluice/config.hpp"
#include "sluice_test.hpp"

namespace {
namespace asio = boost::asio;
namespace fs = std::filesystem;
using sluice::acceptor_set;
using sluice::connection_peer;
using sluice::listen_address;
using sluice::test::temp_dir;

listen_address parse(const std::string& text, const fs::path& base = {}) {
  listen_address a;
  std::string why;
  EXPECT_TRUE(sluice::parse_listen_address(text, base, a, why)) << why;
  return a;
}

// Runs io until `done` or 5 s, whichever comes first.
template <class Pred>
bool run_until(asio::io_context& io, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(std::chrono::milliseconds(10));
  }
  return done();
}

TEST(acceptor_set, format_endpoint_brackets_v6) {
  EXPECT_EQ(sluice::format_endpoint(asio::ip::make_address("127.0.0.1"), 25), "127.0.0.1:25");
  EXPECT_EQ(sluice::format_endpoint(asio::ip::make_address("::1"), 2525), "[::1]:2525");
}

TEST(acceptor_set, tcp_port_zero_reports_the_bound_port_and_the_peer) {
  asio::io_context io;
  acceptor_set set(io, sluice::logger("test"));
  set.bind({parse("127.0.0.1:0"), parse("127.0.0.1:0")});
  ASSERT_EQ(set.endpoints().size(), 2u);
  EXPECT_NE(set.endpoints()[0], set.endpoints()[1]);
  EXPECT_EQ(set.endpoints_text(), set.endpoints()[0] + " " + set.endpoints()[1]);
  const std::string ep = set.endpoints()[1];
  ASSERT_TRUE(ep.starts_with("127.0.0.1:"));
  const auto port = static_cast<std::uint16_t>(std::stoi(ep.substr(10)));
  ASSERT_NE(port, 0);

  std::optional<connection_peer> got;
  bool nodelay = false, own_strand = false;
  set.start({.tcp =
                 [&](acceptor_set::tcp_socket s, connection_peer p) {
                   asio::ip::tcp::no_delay nd;
                   s.get_option(nd);
                   nodelay = nd.value();
                   own_strand = s.get_executor() != asio::any_io_executor(io.get_executor());
                   got = std::move(p);
                 },
             .unix_socket = {}});
  asio::ip::tcp::socket client(io);
  client.connect({asio::ip::make_address("127.0.0.1"), port});
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_FALSE(got->unix_socket);
  EXPECT_EQ(got->address.to_string(), "127.0.0.1");
  EXPECT_EQ(got->port, client.local_endpoint().port());
  EXPECT_EQ(got->local_address, ep);
  EXPECT_TRUE(nodelay);
  EXPECT_TRUE(own_strand);

  set.stop();
  io.restart();
  io.run_for(std::chrono::milliseconds(50));
  asio::ip::tcp::socket late(io);
  boost::system::error_code ec;
  late.connect({asio::ip::make_address("127.0.0.1"), port}, ec);
  EXPECT_TRUE(ec) << "still accepting after stop()";
}

TEST(acceptor_set, unix_socket_gets_its_mode_and_is_removed_by_stop) {
  temp_dir dir;
  asio::io_context io;
  const fs::path sock = dir.path() / "s.sock";
  {
    // A stale socket file (nobody listening) is replaced.
    asio::local::stream_protocol::acceptor stale(io, sock.string());
    stale.close();
    ASSERT_TRUE(fs::exists(sock));
  }
  acceptor_set set(io, sluice::logger("test"));
  set.bind({parse("unix:" + sock.string() + ":600")});
  ASSERT_EQ(set.endpoints(), std::vector<std::string>{"unix:" + sock.string()});
  struct stat st {};
  ASSERT_EQ(::stat(sock.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // A second set on the same live path is refused, naming the address.
  acceptor_set other(io, sluice::logger("test"));
  try {
    other.bind({parse("unix:" + sock.string())});
    ADD_FAILURE() << "bound a live socket twice";
  } catch (const sluice::config_error& e) {
    EXPECT_NE(std::string(e.what()).find("another server is listening"), std::string::npos)
        << e.what();
  }

  std::optional<connection_peer> got;
  set.start({.tcp = {}, .unix_socket = [&](acceptor_set::unix_stream, connection_peer p) {
               got = std::move(p);
             }});
  asio::local::stream_protocol::socket client(io);
  client.connect(sock.string());
  ASSERT_TRUE(run_until(io, [&] { return got.has_value(); }));
  EXPECT_TRUE(got->unix_socket);
  EXPECT_EQ(got->local_address, "unix:" + sock.string());
  set.stop();
  EXPECT_FALSE(fs::exists(sock));
}

TEST(acceptor_set, a_busy_port_is_an_error_naming_the_address) {
  asio::io_context io;
  acceptor_set first(io, sluice::logger("test"));
  first.bind({parse("127.0.0.1:0")});
  const std::string taken = first.endpoints()[0];
  acceptor_set second(io, sluice::logger("test"));
  try {
    second.bind({parse(taken)});
    ADD_FAILURE() << "bound " << taken << " twice";
  } catch (const std::system_error& e) {
    EXPECT_NE(std::string(e.what()).find("listen " + taken), std::string::npos) << e.what();
  }
}

TEST(acceptor_set, destructor_removes_the_socket_file_without_stop) {
  temp_dir dir;
  asio::io_context io;
  const fs::path sock = dir.path() / "d.sock";
  {
    acceptor_set set(io, sluice::logger("test"));
    set.bind({parse("unix:" + sock.string())});
    EXPECT_TRUE(fs::exists(sock));
  }
  EXPECT_FALSE(fs::exists(sock));
}

}  // namespace
