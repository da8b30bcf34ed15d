// config_test.cpp — malformed configurations are refused with file:line:col and the key.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "kernel_config.hpp"
#include "sluice_test.hpp"

namespace {

using sluice::kernel::parse_kernel_config;

struct bad_case {
  const char* name;
  const char* yaml;
  const char* expected;  // substring of the error, including the location
};

// Errors the kernel finds on its own.
const bad_case kernel_cases[] = {
    {"syntax", "listeners: [\n  {name: a\n", "t.yaml:3:1: YAML syntax error"},
    {"not_a_map", "- a\n- b\n", "t.yaml:1:1: the configuration must be a map"},
    {"bad_log_format", "log:\n  format: xml\n", "t.yaml:2:11: log.format: expected text or json"},
    {"bad_log_level", "log:\n  level: loud\n", "t.yaml:2:10: log.level: expected trace"},
    {"bad_durability", "spool:\n  durability: maybe\n",
     "t.yaml:2:15: spool.durability: expected normal or full"},
    {"bad_size", "spool:\n  spill_threshold: big\n",
     "t.yaml:2:20: spool.spill_threshold: expected a size"},
    {"bad_duration", "shutdown_timeout: soon\n",
     "t.yaml:1:19: shutdown_timeout: expected a duration"},
    {"duplicate_key", "log:\n  level: info\n  level: warn\n",
     "t.yaml:3:3: log.level: duplicate key"},
    {"listener_without_plugin", "listeners:\n  - name: smtp\n",
     "t.yaml:2:5: listeners[0].plugin: missing required key"},
    {"listeners_not_list", "listeners:\n  name: smtp\n", "t.yaml:2:3: listeners: expected a list"},
    {"unknown_pipeline", "listeners:\n  - {plugin: smtp, pipeline: nowhere}\n",
     "t.yaml:2:30: listeners[0].pipeline: no pipeline named \"nowhere\""},
    {"duplicate_listener", "listeners:\n  - {plugin: smtp}\n  - {plugin: smtp}\n",
     "t.yaml:3:5: listeners[1]: duplicate listener name \"smtp\""},
    {"bad_name", "services:\n  - {name: \"a b\", plugin: store}\n",
     "t.yaml:2:12: services[0].name: names are 1-64 characters"},
    {"pipeline_without_stages", "pipelines:\n  - name: p\n",
     "t.yaml:2:5: pipelines[0].stages: missing required key"},
    {"empty_stages", "pipelines:\n  - name: p\n    stages: []\n",
     "t.yaml:3:13: pipelines[0].stages: a pipeline needs at least one stage"},
    {"bad_phase", "pipelines:\n  - name: p\n    stages:\n      - {plugin: x, phase: later}\n",
     "t.yaml:4:28: pipelines[0].stages[0].phase: expected inline or deferred"},
    {"bad_on_error",
     "pipelines:\n  - name: p\n    stages:\n      - {plugin: x, on_error: explode}\n",
     "t.yaml:4:31: pipelines[0].stages[0].on_error: expected one of tempfail"},
    {"duplicate_stage",
     "pipelines:\n  - name: p\n    stages:\n      - {plugin: x}\n      - {plugin: x}\n",
     "t.yaml:5:9: pipelines[0].stages[1]: duplicate stage name \"x\""},
    {"bad_retry",
     "pipelines:\n  - name: p\n    stages:\n      - plugin: x\n        retry: {initial: 10m, max: "
     "1m}\n",
     "t.yaml:5:16: pipelines[0].stages[0].retry: max must not be less than initial"},
    {"unset_env", "spool:\n  path: ${SLUICE_TEST_SURELY_UNSET}/x\n",
     "t.yaml:2:9: spool.path: environment variable SLUICE_TEST_SURELY_UNSET is not set"},
    {"missing_include", "include: nothere.yaml\n", "t.yaml:1:10: include: included file"},
    {"device_include", "include: /dev/zero\n",
     "t.yaml:1:10: include: included file \"/dev/zero\" is not a regular file"},
    {"second_document", "log: {level: info}\n---\nlog: {level: debug}\n",
     "t.yaml:3:1: a second YAML document (after ---): a configuration file holds one"},
    // Ten aliases of ten aliases, six levels: a million values from seven lines.
    {"alias_bomb",
     "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, "
     "*c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, "
     "*e, *e]\n",
     "more than 100000 values once aliases are expanded"},
    {"merge_key", "x: &base {level: info}\nlog:\n  <<: *base\n",
     "t.yaml:3:3: log.<<: YAML merge keys (<<) are not supported"},
    {"nested_default", "spool:\n  path: ${SLUICE_TEST_SURELY_UNSET:-${HOME}}/x\n",
     "t.yaml:2:9: spool.path: a default may not contain ${...}"},
};

class kernel_config_errors : public ::testing::TestWithParam<bad_case> {};

TEST_P(kernel_config_errors, names_location_and_key) {
  const auto& c = GetParam();
  try {
    parse_kernel_config(c.yaml, "t.yaml", "/nonexistent-dir-for-tests");
    FAIL() << "accepted:\n" << c.yaml;
  } catch (const sluice::config_error& e) {
    EXPECT_NE(std::string(e.what()).find(c.expected), std::string::npos)
        << "error was: " << e.what() << "\nexpected to contain: " << c.expected;
  }
}

INSTANTIATE_TEST_SUITE_P(all, kernel_config_errors, ::testing::ValuesIn(kernel_cases),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(kernel_config, env_substitution_and_defaults) {
  ::setenv("SLUICE_TEST_SPOOL", "/tmp/x", 1);
  auto cfg = parse_kernel_config("spool:\n  path: ${SLUICE_TEST_SPOOL}/s\n  durability: full\n",
                                 "t.yaml", "/base");
  EXPECT_EQ(cfg.spool_dir, "/tmp/x/s");
  EXPECT_TRUE(cfg.durability_full);
  auto cfg2 =
      parse_kernel_config("spool:\n  path: ${SLUICE_TEST_NOPE:-rel}/s\n", "t.yaml", "/base");
  EXPECT_EQ(cfg2.spool_dir, "/base/rel/s");
}

TEST(kernel_config, include_merges_pipelines) {
  sluice::test::temp_dir d;
  sluice::test::write_file(d.path() / "p.yaml",
                           "pipelines:\n  - name: inc\n    stages:\n      - plugin: x\n");
  auto cfg = parse_kernel_config("include: p.yaml\nlisteners:\n  - {plugin: l, pipeline: inc}\n",
                                 "t.yaml", d.path());
  ASSERT_EQ(cfg.pipelines.size(), 1u);
  EXPECT_EQ(cfg.pipelines[0].name, "inc");
}

// The main file gets the checks an included one gets: a FIFO would block (with SIGTERM and
// SIGINT blocked, so nothing could stop it), a directory or a huge file is no configuration.
TEST(kernel_config, main_file_must_be_a_regular_file_of_a_sane_size) {
  sluice::test::temp_dir d;
  auto error_of = [](const std::filesystem::path& p) {
    try {
      sluice::kernel::load_kernel_config(p);
    } catch (const sluice::config_error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  const auto fifo = d.path() / "fifo.yaml";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  EXPECT_NE(error_of(fifo).find("fifo.yaml: is not a regular file"), std::string::npos);
  EXPECT_NE(error_of(d.path()).find(": is a directory, not a file"), std::string::npos);
  EXPECT_NE(error_of(d.path() / "none.yaml").find("cannot read the configuration file: No such"),
            std::string::npos)
      << error_of(d.path() / "none.yaml");
  sluice::test::write_file(d.path() / "big.yaml", "# " + std::string(5 << 20, 'x') + "\n");
  EXPECT_NE(error_of(d.path() / "big.yaml").find("larger than 4MB"), std::string::npos);
}

// An error in an included file names it by a clean path: "./p.yaml" is <dir>/p.yaml.
TEST(kernel_config, included_file_errors_name_a_clean_path) {
  sluice::test::temp_dir d;
  sluice::test::write_file(d.path() / "p.yaml", "pipelines: 3\n");
  try {
    parse_kernel_config("include: ./p.yaml\n", "t.yaml", d.path());
    FAIL();
  } catch (const sluice::config_error& e) {
    const std::string what = e.what();
    EXPECT_EQ(what.rfind((d.path() / "p.yaml").string() + ":1:", 0), 0u) << what;
    EXPECT_EQ(what.find("/./"), std::string::npos) << what;
  }
}

TEST(kernel_config, include_cannot_set_kernel_keys) {
  sluice::test::temp_dir d;
  sluice::test::write_file(d.path() / "p.yaml", "log:\n  level: debug\n");
  try {
    parse_kernel_config("include: p.yaml\n", "t.yaml", d.path());
    FAIL();
  } catch (const sluice::config_error& e) {
    EXPECT_NE(std::string(e.what()).find("p.yaml:2:3: log: may only be set in the main"),
              std::string::npos)
        << e.what();
  }
}

// Errors found once plugins are involved, through `sluice check-config`.
struct plugin_case {
  const char* name;
  const char* yaml;
  const char* expected;
};

const plugin_case plugin_cases[] = {
    {"unknown_stage_plugin", "pipelines:\n  - name: p\n    stages:\n      - plugin: nosuch\n",
     "sluice.yaml:4:17: pipelines[0].stages[0].plugin: unknown stage plugin \"nosuch\""},
    {"unknown_key_in_stage",
     "pipelines:\n  - name: p\n    stages:\n      - plugin: test_sink\n        dir: out\n"
     "        colour: blue\n",
     "sluice.yaml:6:9: pipelines[0].stages[0].colour: unknown key"},
    {"missing_plugin_key", "pipelines:\n  - name: p\n    stages:\n      - plugin: test_sink\n",
     "sluice.yaml:4:9: pipelines[0].stages[0].dir: missing required key"},
    {"plugin_value_error",
     "pipelines:\n  - name: p\n    stages:\n      - {plugin: test_sink, dir: o}\n"
     "      - {plugin: test_verdict, verdict: maybe}\n",
     "sluice.yaml:5:41: pipelines[0].stages[1].verdict: unknown verdict \"maybe\""},
    {"never_durable", "pipelines:\n  - name: p\n    stages:\n      - plugin: test_verdict\n",
     "sluice.yaml:2:5: pipelines[0]: pipeline \"p\" never makes a message durable"},
    {"committing_stage_continue_on_error",
     "pipelines:\n  - name: p\n    stages:\n      - {plugin: test_sink, dir: o, on_error: "
     "continue}\n",
     "sluice.yaml:4:47: pipelines[0].stages[0].on_error: a stage that makes messages durable"},
    {"unknown_top_level_key", "listners: []\n", "sluice.yaml:1:1: listners: unknown key"},
    {"unknown_listener_plugin", "listeners:\n  - plugin: nosuch\n",
     "sluice.yaml:2:13: listeners[0].plugin: unknown listener plugin \"nosuch\""},
};

// The same through the real plugins (the default plugin directory of the build).
const plugin_case real_plugin_cases[] = {
    {"smtp_hostname_with_crlf",
     "listeners:\n  - plugin: smtp\n    listen: [\"127.0.0.1:0\"]\n"
     "    hostname: \"mx.example\\r\\n250 injected\"\n",
     "sluice.yaml:4:15: listeners[0].hostname: not a host name"},
    {"smtp_hostname_two_words",
     "listeners:\n  - plugin: smtp\n    listen: [\"127.0.0.1:0\"]\n    hostname: two words\n",
     "sluice.yaml:4:15: listeners[0].hostname: not a host name"},
    {"unix_mode_not_octal",
     "listeners:\n  - plugin: smtp\n    listen: [\"unix:/tmp/sluice-test.sock:999\"]\n",
     "bad unix socket mode \"999\": expected octal 0 to 777"},
    {"smtp_idle_timeout_zero",
     "listeners:\n  - plugin: smtp\n    listen: [\"127.0.0.1:0\"]\n    idle_timeout: 0s\n",
     "sluice.yaml:4:19: listeners[0].idle_timeout: must be positive"},
    {"unix_mode_special_bits",
     "listeners:\n  - plugin: smtp\n    listen: [\"unix:/tmp/sluice-test.sock:7777\"]\n",
     "bad unix socket mode \"7777\""},
    // TLS files and CA files are loaded by check-config as serve loads them, errors at
    // their key (http, pop3 and the webhook passed check-config and failed at serve).
    {"http_tls_cert_missing",
     "listeners:\n  - plugin: http\n    listen: [\"127.0.0.1:0\"]\n"
     "    tls: {cert: nosuch.pem, key: nosuch.pem}\n",
     "sluice.yaml:4:17: listeners[0].tls.cert: cannot load "},
    {"pop3_tls_cert_missing",
     "listeners:\n  - plugin: pop3\n    listen: [\"127.0.0.1:0\"]\n    users: \"a:b\"\n"
     "    tls: {mode: implicit, cert: nosuch.pem, key: nosuch.pem}\n",
     "sluice.yaml:5:33: listeners[0].tls.cert: cannot load "},
    {"http_html_check_data_missing",
     "services:\n  - {name: default, plugin: store, path: m.db}\nlisteners:\n"
     "  - plugin: http\n    listen: [\"127.0.0.1:0\"]\n    html_check_data: nosuch.json\n",
     "sluice.yaml:6:22: listeners[0].html_check_data: "},
    {"http_html_check_data_not_caniemail",
     "services:\n  - {name: default, plugin: store, path: m.db}\nlisteners:\n"
     "  - plugin: http\n    listen: [\"127.0.0.1:0\"]\n    html_check_data: sluice.yaml\n",
     "sluice.yaml: not JSON"},
    {"webhook_ca_file_missing",
     "pipelines:\n  - name: p\n    stages:\n"
     "      - {plugin: webhook, url: \"https://example.org/h\", ca_file: nosuch.pem}\n",
     "sluice.yaml:4:66: pipelines[0].stages[0].ca_file: cannot load CA file "},
    // References to services: check-config builds none, the service plugins declare
    // theirs, so a typo is refused here as serve refuses it.
    {"store_stage_unknown_service",
     "services:\n  - {name: main, plugin: store, path: m.db}\npipelines:\n  - name: p\n"
     "    stages:\n      - {plugin: store, service: mian}\n",
     "sluice.yaml:6:34: pipelines[0].stages[0].service: no store service named \"mian\""},
    {"http_unknown_store",
     "services:\n  - {name: main, plugin: store, path: m.db}\nlisteners:\n"
     "  - {plugin: http, listen: [\"127.0.0.1:0\"], store: mian}\n",
     "sluice.yaml:4:52: listeners[0].store: no mailbox service named \"mian\""},
    {"pop3_unknown_service",
     "services:\n  - {name: main, plugin: store, path: m.db}\nlisteners:\n"
     "  - {plugin: pop3, listen: [\"127.0.0.1:0\"], users: \"a:b\", service: mian}\n",
     "sluice.yaml:4:68: listeners[0].service: no mailbox service named \"mian\""},
    {"spf_without_resolver",
     "services:\n  - {name: main, plugin: store, path: m.db}\npipelines:\n  - name: p\n"
     "    stages:\n      - {plugin: spf}\n      - {plugin: store}\n",
     "sluice.yaml:6:9: pipelines[0].stages[0]: spf: no resolver service"},
    {"dkim_unknown_resolver",
     "services:\n  - {name: dns, plugin: resolver}\n  - {name: main, plugin: store, path: m.db}\n"
     "pipelines:\n  - name: p\n    stages:\n      - {plugin: dkim, resolver: dsn}\n"
     "      - {plugin: store}\n",
     "sluice.yaml:7:34: pipelines[0].stages[0].resolver: dkim: no resolver service named \"dsn\""},
    {"relay_host_name_without_resolver",
     "services:\n  - {name: main, plugin: store, path: m.db}\npipelines:\n  - name: p\n"
     "    stages:\n      - {plugin: store}\n"
     "      - {plugin: relay, smarthost: \"mail.example.org:25\"}\n",
     "sluice.yaml:7:9: pipelines[0].stages[1]: smarthost mail.example.org is a host name"},
    {"webhook_mailbox_unknown_store",
     "services:\n  - {name: main, plugin: store, path: m.db}\npipelines:\n  - name: p\n"
     "    stages:\n      - {plugin: store}\n"
     "      - {plugin: webhook, url: \"http://127.0.0.1:9/\", mailbox: default, store: mian}\n",
     "sluice.yaml:7:80: pipelines[0].stages[1].store: no store service named \"mian\""},
    // Two sockets on one address: serve would fail at the second bind.
    {"two_listeners_one_address",
     "listeners:\n  - {plugin: smtp, listen: [\"127.0.0.1:2525\"]}\n"
     "  - {name: b, plugin: smtp, listen: [\"127.0.0.1:2525\"]}\n",
     "sluice.yaml:3:38: listeners[1].listen[0]: \"127.0.0.1:2525\" overlaps \"127.0.0.1:2525\" "
     "of listener \"smtp\""},
    {"wildcard_overlaps_loopback",
     "listeners:\n  - plugin: smtp\n    listen: [\"0.0.0.0:2525\", \"127.0.0.1:2525\"]\n",
     "sluice.yaml:3:30: listeners[0].listen[1]: \"127.0.0.1:2525\" overlaps \"0.0.0.0:2525\""},
    {"ipv6_wildcard_overlaps_loopback",
     "listeners:\n  - plugin: smtp\n    listen: [\"[::]:2525\", \"[::1]:2525\"]\n",
     "listeners[0].listen[1]: \"[::1]:2525\" overlaps \"[::]:2525\""},
    {"two_spellings_of_one_ipv6_address",
     "listeners:\n  - {plugin: smtp, listen: [\"[::1]:2525\"]}\n"
     "  - {name: b, plugin: smtp, listen: [\"[0:0::1]:2525\"]}\n",
     "listeners[1].listen[0]: \"[0:0::1]:2525\" overlaps \"[::1]:2525\" of listener \"smtp\""},
    {"release_pipeline_unknown",
     "services:\n  - {name: default, plugin: store, path: m.db}\n"
     "listeners:\n  - {plugin: http, listen: [\"127.0.0.1:0\"], release_pipeline: relase}\n"
     "pipelines:\n  - {name: release, stages: [{plugin: store}]}\n",
     "sluice.yaml:4:63: listeners[0].release_pipeline: no pipeline named \"relase\" (configured: "
     "release)"},
    {"two_listeners_one_unix_socket",
     "listeners:\n  - {plugin: smtp, listen: [\"unix:s.sock\"]}\n"
     "  - {name: b, plugin: smtp, listen: [\"unix:./s.sock\"]}\n",
     "overlaps \"unix:s.sock\" of listener \"smtp\""},
    {"spam_unknown_bayes",
     "services:\n  - {name: main, plugin: store, path: m.db}\npipelines:\n  - name: p\n"
     "    stages:\n      - {plugin: spam, bayes: nosuch}\n      - {plugin: store}\n",
     "sluice.yaml:6:31: pipelines[0].stages[0].bayes: no service of plugin spam named \"nosuch\""},
};

// `sluice check-config` on c.yaml exits 78 naming c.expected; `args` follow the file.
void expect_check_config_error(const plugin_case& c, const std::string& args) {
  sluice::test::temp_dir d;
  sluice::test::write_file(d.path() / "sluice.yaml", c.yaml);
  std::string out;
  int rc = sluice::test::run_command(sluice::test::sluice_binary() + " check-config -c " +
                                         (d.path() / "sluice.yaml").string() + args,
                                     &out);
  EXPECT_EQ(rc, 78) << out;
  EXPECT_NE(out.find(c.expected), std::string::npos)
      << "output was: " << out << "\nexpected to contain: " << c.expected;
}

class real_plugin_config_errors : public ::testing::TestWithParam<plugin_case> {};

TEST_P(real_plugin_config_errors, check_config_reports_location) {
  expect_check_config_error(GetParam(), "");
}

INSTANTIATE_TEST_SUITE_P(all, real_plugin_config_errors, ::testing::ValuesIn(real_plugin_cases),
                         [](const auto& info) { return std::string(info.param.name); });

class plugin_config_errors : public ::testing::TestWithParam<plugin_case> {};

TEST_P(plugin_config_errors, check_config_reports_location) {
  expect_check_config_error(GetParam(), " --plugin-dir " + sluice::test::test_plugin_dir());
}

INSTANTIATE_TEST_SUITE_P(all, plugin_config_errors, ::testing::ValuesIn(plugin_cases),
                         [](const auto& info) { return std::string(info.param.name); });

// Every kind of service reference, each to a declared service: valid, and nothing opened.
TEST(check_config, references_to_declared_services_pass) {
  sluice::test::temp_dir d;
  sluice::test::write_file(
      d.path() / "sluice.yaml",
      "services:\n  - {name: dns, plugin: resolver}\n  - {name: main, plugin: store, path: m.db}\n"
      "  - {name: b, plugin: spam, path: b.db}\nlisteners:\n"
      "  - {plugin: http, listen: [\"127.0.0.1:0\"], store: main}\n"
      "  - {plugin: pop3, listen: [\"127.0.0.1:0\"], users: \"a:b\", allow_insecure: true}\n"
      "pipelines:\n  - name: p\n    stages:\n      - {plugin: spf}\n"
      "      - {plugin: dkim, resolver: dns}\n      - {plugin: spam, bayes: b}\n"
      "      - {plugin: store, service: main}\n"
      "      - {plugin: webhook, url: \"http://127.0.0.1:9/\", mailbox: default}\n"
      "      - {plugin: relay, smarthost: \"mail.example.org:25\", resolver: dns}\n");
  std::string out;
  int rc = sluice::test::run_command(
      sluice::test::sluice_binary() + " check-config -c " + (d.path() / "sluice.yaml").string(),
      &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_FALSE(std::filesystem::exists(d.path() / "m.db")) << "check-config opened the store";
  EXPECT_FALSE(std::filesystem::exists(d.path() / "b.db")) << "check-config opened the spam db";
}

TEST(check_config, valid_config_passes_without_side_effects) {
  sluice::test::temp_dir d;
  sluice::test::write_file(
      d.path() / "sluice.yaml",
      "pipelines:\n  - name: p\n    stages:\n      - {plugin: test_sink, dir: out}\n");
  std::string out;
  int rc = sluice::test::run_command(sluice::test::sluice_binary() + " check-config -c " +
                                         (d.path() / "sluice.yaml").string() + " --plugin-dir " +
                                         sluice::test::test_plugin_dir(),
                                     &out);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("configuration is valid"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(d.path() / "out")) << "check-config created files";
  EXPECT_FALSE(std::filesystem::exists(d.path() / "spool")) << "check-config created the spool";
}

}  // namespace
