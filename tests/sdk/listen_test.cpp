// listen_test.cpp — parse_tls_block: a listener's tls block (mode among the protocol's
// modes, cert/key through parse_tls_files).
#include <gtest/gtest.h>

#include <string>

#include "sluice/config.hpp"
#include "sluice/listen.hpp"

namespace {

using sluice::config_error;
using sluice::config_node;

std::size_t parse(const std::string& yaml, std::filesystem::path& cert,
                  std::filesystem::path& key) {
  auto n = config_node::parse(yaml, "t.yaml");
  return sluice::parse_tls_block(n.at("tls"), {"off", "starttls", "implicit"}, "/etc/sluice", cert,
                                 key);
}

TEST(parse_tls_block, returns_the_index_of_the_mode_and_resolves_the_files) {
  std::filesystem::path cert, key;
  EXPECT_EQ(parse("tls: {mode: implicit, cert: c.pem, key: /k.pem}\n", cert, key), 2u);
  EXPECT_EQ(cert, "/etc/sluice/c.pem");
  EXPECT_EQ(key, "/k.pem");
  EXPECT_EQ(parse("tls: {mode: starttls, cert: c.pem, key: k.pem}\n", cert, key), 1u);
}

TEST(parse_tls_block, the_first_mode_is_the_default_and_needs_no_files) {
  std::filesystem::path cert, key;
  EXPECT_EQ(parse("tls: {cert: c.pem}\n", cert, key), 0u);
  EXPECT_EQ(parse("tls: {mode: off}\n", cert, key), 0u);
  EXPECT_TRUE(cert.empty());
  EXPECT_TRUE(key.empty());
}

TEST(parse_tls_block, an_unknown_mode_lists_the_modes) {
  std::filesystem::path cert, key;
  try {
    parse("tls: {mode: always}\n", cert, key);
    FAIL();
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("tls.mode: expected off, starttls or implicit"),
              std::string::npos)
        << e.what();
  }
  auto n = config_node::parse("tls: {mode: x}\n", "t.yaml");
  try {
    sluice::parse_tls_block(n.at("tls"), {"off", "on"}, "/", cert, key);
    FAIL();
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("expected off or on"), std::string::npos) << e.what();
  }
}

TEST(parse_tls_block, a_mode_that_turns_tls_on_needs_cert_and_key) {
  std::filesystem::path cert, key;
  try {
    parse("tls: {mode: implicit, key: k.pem}\n", cert, key);
    FAIL();
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("tls.mode implicit needs tls.cert"), std::string::npos)
        << e.what();
  }
}

}  // namespace

TEST(resolve_config_path, drops_dot_elements_and_keeps_dot_dot) {
  using sluice::resolve_config_path;
  EXPECT_EQ(resolve_config_path("/etc/sluice/.", "./s/smtp.sock").string(),
            "/etc/sluice/s/smtp.sock");
  EXPECT_EQ(resolve_config_path("/etc/sluice", "../x.pem").string(), "/etc/sluice/../x.pem");
  EXPECT_EQ(resolve_config_path("/etc/sluice", "/var/./lib/m.db").string(), "/var/lib/m.db");
  EXPECT_EQ(resolve_config_path("/etc/sluice", "spool/").string(), "/etc/sluice/spool/");
}
