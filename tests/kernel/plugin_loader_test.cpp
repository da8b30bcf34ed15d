// plugin_loader_test.cpp — loading, refusing, and one Asio shared with plugins.
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <thread>

#include "plugin_host.hpp"
#include "plugin_loader.hpp"
#include "services_impl.hpp"
#include "sluice/version.hpp"
#include "sluice_test.hpp"

namespace {

using namespace sluice;
using namespace sluice::kernel;
namespace asio = boost::asio;

TEST(plugin_loader, loads_testkit_and_lists_what_it_provides) {
  plugin_loader l;
  l.load_dirs({sluice::test::test_plugin_dir()});
  ASSERT_FALSE(l.plugins().empty());
  const auto& p = l.plugins().front();
  EXPECT_TRUE(p.loaded) << p.refusal;
  EXPECT_EQ(p.name, "testkit");
  EXPECT_EQ(p.build_key, SLUICE_BUILD_KEY);
  EXPECT_NE(l.find_stage("test_sink"), nullptr);
  EXPECT_TRUE(l.find_stage("test_sink")->traits.commits);
  EXPECT_EQ(l.find_stage("test_deferred")->traits.default_phase, phase::deferred);
}

TEST(plugin_loader, refuses_a_foreign_build_key_naming_both) {
  plugin_loader l;
  l.load_dirs({BAD_PLUGIN_DIR});
  ASSERT_EQ(l.plugins().size(), 1u);
  const auto& p = l.plugins().front();
  EXPECT_FALSE(p.loaded);
  EXPECT_NE(p.refusal.find("build key mismatch"), std::string::npos) << p.refusal;
  EXPECT_NE(p.refusal.find("clang-99;libc++-1;boost-107000;sdk-abi-1"), std::string::npos)
      << p.refusal;
  EXPECT_NE(p.refusal.find(SLUICE_BUILD_KEY), std::string::npos) << p.refusal;
  EXPECT_EQ(l.find_stage("bad_key"), nullptr);
}

TEST(plugin_loader, refuses_a_library_that_is_not_a_plugin) {
  plugin_loader l;
  EXPECT_FALSE(l.load(sluice::test::build_dir() + "/lib/libsluice_sdk.so"));
  EXPECT_NE(l.plugins().back().refusal.find("not a Sluice plugin"), std::string::npos);
  EXPECT_FALSE(l.load("/nonexistent/x.so"));
  EXPECT_NE(l.plugins().back().refusal.find("cannot load"), std::string::npos);
}

TEST(plugin_loader, sluice_plugins_command_reports_refusals) {
  std::string out;
  int rc = sluice::test::run_command(sluice::test::sluice_binary() + " plugins --plugin-dir " +
                                         BAD_PLUGIN_DIR + " --plugin-dir " +
                                         sluice::test::test_plugin_dir(),
                                     &out);
  EXPECT_EQ(rc, 1) << out;  // something was refused
  EXPECT_NE(out.find("REFUSED"), std::string::npos) << out;
  EXPECT_NE(out.find("testkit 0.1.0"), std::string::npos) << out;
  EXPECT_NE(out.find("provides stage test_sink"), std::string::npos) << out;
}

// Every command answers --help with its own usage and --version with 0, built-in or
// from a plugin (the plugins of the build: auth's dkim, spam's spam, smtp's sendmail).
TEST(plugin_loader, every_command_answers_help_and_version) {
  const std::string sluice = sluice::test::sluice_binary();
  const std::pair<const char*, const char*> helps[] = {
      {"serve", "Usage: sluice [serve]"},   {"check-config", "Usage: sluice check-config"},
      {"plugins", "Usage: sluice plugins"}, {"dkim", "usage: sluice dkim keygen"},
      {"spam", "usage: sluice spam train"}, {"sendmail", "usage: sendmail"},
  };
  for (const auto& [command, usage] : helps) {
    std::string out;
    EXPECT_EQ(sluice::test::run_command(sluice + " " + command + " --help", &out), 0)
        << command << ": " << out;
    EXPECT_NE(out.find(usage), std::string::npos) << command << ": " << out;
    out.clear();
    EXPECT_EQ(sluice::test::run_command(sluice + " " + command + " --version", &out), 0)
        << command << ": " << out;
    EXPECT_NE(out.find("sluice"), std::string::npos) << command << ": " << out;
    EXPECT_NE(out.find(sluice::build_key), std::string::npos) << command << ": " << out;
  }
  std::string out;
  EXPECT_EQ(sluice::test::run_command(sluice + " dkim --version", &out), 0) << out;
  EXPECT_NE(out.find("sluice dkim 0.1.0 (plugin auth;"), std::string::npos) << out;
}

// DESIGN.md §3: a plugin's timers, strands and sockets run on the kernel's io_context.
TEST(plugin_loader, plugin_shares_the_kernels_asio) {
  sluice::test::plugin_host h({sluice::test::test_plugin_dir()});
  ASSERT_NE(h.loader().find_stage("test_asio"), nullptr);
  auto s = h.make_stage("test_asio", "{}");
  auto msg = std::make_shared<message>();
  msg->raw = message_body::from_string("Subject: x\r\n\r\n");
  auto v = h.run(s->process(msg, stage_call{}));
  EXPECT_EQ(v.kind, verdict_kind::continue_) << v.reply.text;
  EXPECT_NE(msg->output().find("X-Test-Asio: ok"), std::string::npos);
}

}  // namespace
