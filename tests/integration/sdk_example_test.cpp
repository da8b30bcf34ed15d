// sdk_example_test.cpp — the SDK as a third party sees it: installs this build into a
// staging prefix, builds sdk/examples/header_guard out of tree against it with
// find_package(SluiceSDK) + sluice_add_plugin, loads the result into a running sluice with
// --plugin-dir, and checks the stage over SMTP (header added; listed recipient refused).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "sluice_test.hpp"

namespace {

using sluice::test::shell_quote;

namespace fs = std::filesystem;
using sluice::test::run_command;
using sluice::test::sluice_process;
using sluice::test::temp_dir;

constexpr const char* config_yaml = R"(log: {format: text, level: info}
spool: {path: ./spool}
listeners:
  - name: smtp
    plugin: smtp
    pipeline: guarded
    listen: ["127.0.0.1:0"]
pipelines:
  - name: guarded
    stages:
      - plugin: header_guard
        reject: [blocked@example.com]
      - plugin: test_sink
        dir: out
)";

constexpr const char* message_text =
    "From: sender@example.org\r\n"
    "To: someone@example.com\r\n"
    "Subject: sdk example\r\n"
    "\r\n"
    "hello from the sdk example test\r\n";

bool has_file_starting_with(const fs::path& dir, const std::string& prefix) {
  if (!fs::exists(dir)) return false;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().filename().string().starts_with(prefix)) return true;
  }
  return false;
}

TEST(SdkExample, HeaderGuardBuiltOutOfTreeAgainstTheInstalledSdk) {
  temp_dir tmp;
  const fs::path stage = tmp.path() / "stage";
  const fs::path build = tmp.path() / "b";
  const std::string source = sluice::test::source_dir() + "/sdk/examples/header_guard";
  constexpr auto slow = std::chrono::seconds(300);

  // 1. Install the SDK (and the rest of this build) into a staging prefix.
  std::string out;
  int rc = run_command("cmake --install " + shell_quote(sluice::test::build_dir()) + " --prefix " +
                           shell_quote(stage.string()),
                       &out, true, slow);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_TRUE(fs::exists(stage / "include/sluice/sdk.hpp")) << out;
  EXPECT_TRUE(has_file_starting_with(stage / "lib", "libsluice_sdk.so")) << out;
  ASSERT_TRUE(fs::exists(stage / "lib/cmake/SluiceSDK/SluiceSDKConfig.cmake")) << out;

  // 2. Build the example the way a third party would.
  out.clear();
  rc = run_command("cmake -S " + shell_quote(source) + " -B " + shell_quote(build.string()) +
                       " -G Ninja -DCMAKE_PREFIX_PATH=" + shell_quote(stage.string()) +
                       // A plugin must be built by the compiler family that built sluice.
                       " -DCMAKE_CXX_COMPILER=" + shell_quote(SLUICE_CXX_COMPILER) +
                       " && cmake --build " + shell_quote(build.string()),
                   &out, true, slow);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_TRUE(fs::exists(build / "header_guard.so")) << out;

  // 3. Load it next to the test plugins and drive it over SMTP.
  std::vector<std::string> args = {"--plugin-dir", build.string()};
  sluice_process proc(config_yaml, args);
  ASSERT_TRUE(proc.running()) << proc.log();
  const std::string endpoint = proc.endpoints("smtp").at(0);

  std::string accepted =
      sluice::test::smtp_send(endpoint, "sender@example.org", {"ok@example.com"}, message_text);
  EXPECT_TRUE(accepted.starts_with("250")) << accepted << "\n" << proc.log();
  auto msgs = sluice::test::read_eml_files(proc.dir() / "out");
  ASSERT_EQ(msgs.size(), 1u) << proc.log();
  EXPECT_NE(msgs[0].find("X-Header-Guard: checked\r\n"), std::string::npos) << msgs[0];
  EXPECT_NE(msgs[0].find("Subject: sdk example"), std::string::npos) << msgs[0];

  std::string refused = sluice::test::smtp_send(endpoint, "sender@example.org",
                                                {"blocked@example.com"}, message_text);
  EXPECT_TRUE(refused.starts_with("550")) << refused << "\n" << proc.log();
  EXPECT_NE(refused.find("5.7.1"), std::string::npos) << refused;
  EXPECT_NE(refused.find("Recipient refused by policy"), std::string::npos) << refused;
  EXPECT_EQ(sluice::test::read_eml_files(proc.dir() / "out").size(), 1u)
      << "a refused message was stored";
}

}  // namespace
