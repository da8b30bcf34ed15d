// mailpit_flags_test.cpp — the Mailpit facade's translation: every flag and its MP_* twin,
// the flag winning over the variable, Mailpit's boolean rules, the values Mailpit refuses,
// secrets kept out of the text, and the generated YAML read by the kernel's own loader.
#include "mailpit_flags.hpp"

#include <gtest/gtest.h>

#include <functional>

#include "kernel_config.hpp"
#include "sluice_test.hpp"

namespace {

namespace mp = sluice::kernel::mailpit;
namespace fs = std::filesystem;
using sluice::config_node;
using sluice::kernel::kernel_config;

const fs::path tmp = "/tmp/sluice-test-data";

mp::facade run(std::vector<std::string> args, mp::env_map env = {}) {
  return mp::translate(args, env, tmp);
}

kernel_config parse(const mp::facade& f) {
  return sluice::kernel::parse_kernel_config(f.yaml, "mailpit-flags", fs::current_path());
}

config_node listener(const kernel_config& c, std::string_view name) {
  for (const auto& l : c.listeners) {
    if (l.name == name) return l.node;
  }
  ADD_FAILURE() << "no listener " << name;
  return c.documents.front();
}

config_node service(const kernel_config& c, std::string_view name, std::string_view plugin) {
  for (const auto& s : c.services) {
    if (s.name == name && s.plugin == plugin) return s.node;
  }
  ADD_FAILURE() << "no service " << name;
  return c.documents.front();
}

const sluice::kernel::stage_config* stage(const kernel_config& c, std::string_view pipeline,
                                          std::string_view name) {
  for (const auto& p : c.pipelines) {
    if (p.name != pipeline) continue;
    for (const auto& s : p.stages) {
      if (s.name == name) return &s;
    }
  }
  return nullptr;
}

// The stage's map, or (after a test failure) the document, so a missing stage cannot crash.
config_node snode(const kernel_config& c, std::string_view pipeline, std::string_view name) {
  if (auto* s = stage(c, pipeline, name)) return s->node;
  ADD_FAILURE() << "no stage " << name << " in pipeline " << pipeline;
  return c.documents.front();
}

// A dotted path of map keys below `n`, e.g. "tls.mode".
std::string get(const config_node& n, std::string_view path) {
  config_node cur = n;
  while (!path.empty()) {
    auto dot = path.find('.');
    cur = cur.at(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  }
  if (cur.is_sequence()) return cur.items().at(0).as_string();
  return cur.as_string();
}

std::string error_of(std::vector<std::string> args, mp::env_map env = {}) {
  try {
    run(std::move(args), std::move(env));
  } catch (const mp::flag_error& e) {
    return e.what();
  } catch (const sluice::config_error& e) {
    return std::string("config: ") + e.what();
  }
  return "(no error)";
}

TEST(mailpit_flags, defaults_are_the_capture_setup_on_loopback) {
  auto f = run({});
  EXPECT_TRUE(f.temporary_data);
  EXPECT_TRUE(f.secrets.empty());
  auto c = parse(f);
  EXPECT_EQ(get(listener(c, "smtp"), "listen"), "127.0.0.1:1025");
  EXPECT_EQ(get(listener(c, "http"), "listen"), "127.0.0.1:8025");
  EXPECT_EQ(get(listener(c, "smtp"), "pipeline"), "capture");
  EXPECT_EQ(get(listener(c, "http"), "pipeline"), "capture");
  auto store = service(c, "default", "store");
  EXPECT_EQ(get(store, "path"), (tmp / "sluice.db").string());
  EXPECT_EQ(get(store, "max_messages"), "500");
  EXPECT_EQ(c.spool_dir, tmp / "spool");
  ASSERT_EQ(c.pipelines.size(), 1u);
  ASSERT_EQ(c.pipelines[0].stages.size(), 2u);
  EXPECT_EQ(c.pipelines[0].stages[0].plugin, "mime");
  EXPECT_EQ(c.pipelines[0].stages[1].plugin, "store");
  EXPECT_EQ(c.log_level, sluice::log_level::info);
  EXPECT_EQ(c.listeners.size(), 2u);  // no POP3 without users, as Mailpit
}

// One row: the flag spellings, the MP_* twin, a value, and what the configuration says.
struct twin_case {
  std::vector<std::string> spellings;  // "--smtp", "-s"
  std::string env;
  std::string value;
  std::string other;  // another valid value, for flag-over-env
  std::function<std::string(const kernel_config&)> read;
  std::string expected;  // what read() gives for `value`
};

std::vector<twin_case> twin_cases() {
  const std::string db = fs::absolute("mail/x.db").lexically_normal().string();
  return {
      {{"--smtp", "-s"},
       "MP_SMTP_BIND_ADDR",
       "127.0.0.1:2525",
       "127.0.0.1:2626",
       [](auto& c) { return get(listener(c, "smtp"), "listen"); },
       "127.0.0.1:2525"},
      {{"--listen", "-l"},
       "MP_UI_BIND_ADDR",
       "127.0.0.2:8080",
       "127.0.0.3:8080",
       [](auto& c) { return get(listener(c, "http"), "listen"); },
       "127.0.0.2:8080"},
      {{"--database", "-d", "--db-file"},
       "MP_DATABASE",
       "mail/x.db",
       "mail/y.db",
       [](auto& c) { return get(service(c, "default", "store"), "path"); },
       db},
      {{"--max", "-m"},
       "MP_MAX_MESSAGES",
       "7",
       "8",
       [](auto& c) { return get(service(c, "default", "store"), "max_messages"); },
       "7"},
      {{"--max-age"},
       "MP_MAX_AGE",
       "48h",
       "7d",
       [](auto& c) { return get(service(c, "default", "store"), "max_age"); },
       "48h"},
      {{"--max-message-size"},
       "MP_MAX_MESSAGE_SIZE",
       "10",
       "20",
       [](auto& c) {
         return get(listener(c, "smtp"), "max_message_size") + " " +
                get(listener(c, "http"), "max_send_size");
       },
       "10MB 10MB"},
      {{"--compression"},
       "MP_COMPRESSION",
       "3",
       "0",
       [](auto& c) { return get(service(c, "default", "store"), "compression"); },
       "best"},
      {{"--label"},
       "MP_LABEL",
       "QA box",
       "Other",
       [](auto& c) { return get(listener(c, "http"), "label"); },
       "QA box"},
      {{"--webroot"},
       "MP_WEBROOT",
       "/mail/",
       "/other/",
       [](auto& c) { return get(listener(c, "http"), "webroot"); },
       "/mail/"},
      {{"--api-cors"},
       "MP_API_CORS",
       "app.test:3000",
       "*",
       [](auto& c) { return get(listener(c, "http"), "api_cors"); },
       "app.test:3000"},
      {{"--ui-auth-file"},
       "MP_UI_AUTH_FILE",
       "/etc/ui.htpasswd",
       "/etc/other",
       [](auto& c) { return get(listener(c, "http"), "auth_file"); },
       "/etc/ui.htpasswd"},
      {{"--send-api-auth-file"},
       "MP_SEND_API_AUTH_FILE",
       "/etc/send.htpasswd",
       "/etc/o",
       [](auto& c) { return get(listener(c, "http"), "send_auth_file"); },
       "/etc/send.htpasswd"},
      {{"--smtp-max-recipients"},
       "MP_SMTP_MAX_RECIPIENTS",
       "5",
       "6",
       [](auto& c) { return get(listener(c, "smtp"), "max_recipients"); },
       "5"},
      {{"--smtp-allowed-recipients"},
       "MP_SMTP_ALLOWED_RECIPIENTS",
       "@example\\.com$",
       "x",
       [](auto& c) { return get(listener(c, "smtp"), "allowed_recipients"); },
       "@example\\.com$"},
      {{"--tag", "-t"},
       "MP_TAG",
       "\"Shop,VIP\"=from:shop@example.com",
       "x=y",
       [](auto& c) {
         auto rules = snode(c, "capture", "store").at("tags").at("rules").items();
         return rules.at(0).at("match").as_string() + " -> " +
                rules.at(0).at("tags").items().at(0).as_string() + "," +
                rules.at(0).at("tags").items().at(1).as_string();
       },
       "from:shop@example.com -> Shop,VIP"},
      {{"--tags-disable"},
       "MP_TAGS_DISABLE",
       "x-tags,plus-addresses",
       "x-tags",
       [](auto& c) {
         auto t = snode(c, "capture", "store").at("tags");
         return t.at("x_tags").as_string() + " " + t.get_string("plus_addresses", "true");
       },
       "false false"},
      {{"--webhook-url"},
       "MP_WEBHOOK_URL",
       "http://127.0.0.1:9/hook",
       "http://127.0.0.1:8/",
       [](auto& c) { return get(snode(c, "capture", "webhook"), "url"); },
       "http://127.0.0.1:9/hook"},
      {{"--webhook-limit"},
       "MP_WEBHOOK_LIMIT",
       "4",
       "1",
       [](auto& c) { return get(snode(c, "capture", "webhook"), "rate"); },
       "900/h"},
      {{"--chaos-triggers"},
       "MP_CHAOS_TRIGGERS",
       "Sender:451:50",
       "Recipient:550:5",
       [](auto& c) { return get(service(c, "chaos", "chaos"), "triggers"); },
       "Sender:451:50"},
      {{"--enable-spamassassin"},
       "MP_ENABLE_SPAMASSASSIN",
       "127.0.0.1:783",
       "unix:/s",
       [](auto& c) { return get(snode(c, "capture", "spam"), "spamassassin.address"); },
       "127.0.0.1:783"},
      {{"--pop3"},
       "MP_POP3_BIND_ADDR",
       "127.0.0.1:1995",
       "127.0.0.1:1996",
       [](auto& c) { return get(listener(c, "pop3"), "listen"); },
       "127.0.0.1:1995"},
      {{"--pop3-auth-file"},
       "MP_POP3_AUTH_FILE",
       "/etc/pop3.htpasswd",
       "/etc/o",
       [](auto& c) { return get(listener(c, "pop3"), "htpasswd"); },
       "/etc/pop3.htpasswd"},
  };
}

TEST(mailpit_flags, each_flag_its_env_twin_and_the_flag_wins) {
  for (const auto& tc : twin_cases()) {
    SCOPED_TRACE(tc.spellings.front());
    // --pop3 alone does not start POP3 (Mailpit needs users for it).
    mp::env_map base;
    if (tc.spellings.front() == "--pop3") base["MP_POP3_AUTH"] = "u:p";
    if (tc.spellings.front() == "--webhook-limit") base["MP_WEBHOOK_URL"] = "http://127.0.0.1:9/";
    for (const auto& sp : tc.spellings) {
      SCOPED_TRACE(sp);
      EXPECT_EQ(tc.read(parse(run({sp, tc.value}, base))), tc.expected);
      if (sp.starts_with("--")) {
        EXPECT_EQ(tc.read(parse(run({sp + "=" + tc.value}, base))), tc.expected);
      } else {
        EXPECT_EQ(tc.read(parse(run({sp + tc.value}, base))), tc.expected);
        EXPECT_EQ(tc.read(parse(run({sp + "=" + tc.value}, base))), tc.expected);
      }
    }
    auto env = base;
    env[tc.env] = tc.value;
    EXPECT_EQ(tc.read(parse(run({}, env))), tc.expected) << "from " << tc.env;
    env[tc.env] = tc.other;
    EXPECT_EQ(tc.read(parse(run({tc.spellings.front(), tc.value}, env))), tc.expected)
        << "the flag must override " << tc.env;
  }
}

struct bool_case {
  std::string flag;
  std::string env;
  std::function<bool(const kernel_config&)> is_on;
};

std::vector<bool_case> bool_cases() {
  auto store_tag = [](std::string key) {
    return [key](const kernel_config& c) {
      auto* s = stage(c, "capture", "store");
      auto t = s->node.find("tags");
      return t && t->get_bool(key, false);
    };
  };
  return {
      {"--disable-http-compression", "MP_DISABLE_HTTP_COMPRESSION",
       [](auto& c) { return listener(c, "http").get_bool("disable_compression", false); }},
      {"--send-api-auth-accept-any", "MP_SEND_API_AUTH_ACCEPT_ANY",
       [](auto& c) { return listener(c, "http").get_bool("send_auth_accept_any", false); }},
      {"--smtp-strict-rfc-headers", "MP_SMTP_STRICT_RFC_HEADERS",
       [](auto& c) { return listener(c, "smtp").get_bool("reject_bare_cr_in_headers", false); }},
      {"--block-remote-css-and-fonts", "MP_BLOCK_REMOTE_CSS_AND_FONTS",
       [](auto& c) { return listener(c, "http").get_bool("block_remote_css_and_fonts", false); }},
      {"--allow-internal-http-requests", "MP_ALLOW_INTERNAL_HTTP_REQUESTS",
       [](auto& c) {
         auto l = listener(c, "http").find("link_check");
         return l && l->get_bool("allow_private", false);
       }},
      {"--allow-untrusted-tls", "MP_ALLOW_UNTRUSTED_TLS",
       [](auto& c) {
         auto l = listener(c, "http").find("link_check");
         return l && !l->get_bool("tls_verify", true);
       }},
      {"--disable-link-check-rate-limit", "MP_DISABLE_LINK_CHECK_RATE_LIMIT",
       [](auto& c) {
         auto l = listener(c, "http").find("link_check");
         return l && !l->get_bool("cache", true);
       }},
      {"--tags-username", "MP_TAGS_USERNAME", store_tag("username")},
      {"--tags-title-case", "MP_TAGS_TITLE_CASE", store_tag("title_case")},
      {"--ignore-duplicate-ids", "MP_IGNORE_DUPLICATE_IDS",
       [](auto& c) {
         return stage(c, "capture", "store")->node.get_string("duplicates", "keep") == "drop";
       }},
      {"--use-message-dates", "MP_USE_MESSAGE_DATES",
       [](auto& c) {
         return stage(c, "capture", "store")->node.get_string("dates", "arrival") == "message";
       }},
      {"--enable-chaos", "MP_ENABLE_CHAOS",
       [](auto& c) {
         for (auto& s : c.services)
           if (s.plugin == "chaos") return true;
         return false;
       }},
      {"--verbose", "MP_VERBOSE", [](auto& c) { return c.log_level == sluice::log_level::debug; }},
      {"--quiet", "MP_QUIET", [](auto& c) { return c.log_level == sluice::log_level::error; }},
  };
}

TEST(mailpit_flags, booleans_from_flags_and_env) {
  for (const auto& bc : bool_cases()) {
    SCOPED_TRACE(bc.flag);
    EXPECT_FALSE(bc.is_on(parse(run({}))));
    EXPECT_TRUE(bc.is_on(parse(run({bc.flag}))));
    EXPECT_TRUE(bc.is_on(parse(run({bc.flag + "=true"}))));
    EXPECT_TRUE(bc.is_on(parse(run({bc.flag + "=1"}))));
    EXPECT_FALSE(bc.is_on(parse(run({bc.flag + "=false"}))));
    // Mailpit: an env boolean is true only for 1, true or yes, in any case.
    for (std::string t : {"1", "true", "TRUE", "yes", "Yes"})
      EXPECT_TRUE(bc.is_on(parse(run({}, {{bc.env, t}})))) << bc.env << "=" << t;
    for (std::string f : {"0", "false", "no", "on", "y", "2"})
      EXPECT_FALSE(bc.is_on(parse(run({}, {{bc.env, f}})))) << bc.env << "=" << f;
    // The flag overrides the variable both ways.
    EXPECT_FALSE(bc.is_on(parse(run({bc.flag + "=false"}, {{bc.env, "true"}}))));
    EXPECT_TRUE(bc.is_on(parse(run({bc.flag}, {{bc.env, "false"}}))));
  }
  EXPECT_NE(error_of({"--enable-chaos=maybe"}).find("--enable-chaos: expected true or false"),
            std::string::npos);
}

TEST(mailpit_flags, smtp_tls_and_auth_as_mailpit_combines_them) {
  auto smtp = [](std::vector<std::string> args, mp::env_map env = {}) {
    return listener(parse(run(std::move(args), std::move(env))), "smtp");
  };
  std::vector<std::string> cert = {"--smtp-tls-cert", "c.pem", "--smtp-tls-key", "k.pem"};
  auto with = [&](std::vector<std::string> more) {
    auto a = cert;
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  EXPECT_EQ(get(smtp(cert), "tls.mode"), "starttls");
  EXPECT_EQ(get(smtp(cert), "tls.cert"), fs::absolute("c.pem").string());
  EXPECT_EQ(get(smtp(with({"--smtp-require-starttls"})), "tls.mode"), "starttls-required");
  EXPECT_EQ(get(smtp(with({"--smtp-tls-required"})), "tls.mode"), "starttls-required");
  EXPECT_EQ(get(smtp(with({"--smtp-require-tls"})), "tls.mode"), "implicit");
  EXPECT_EQ(
      get(smtp({},
               {{"MP_SMTP_TLS_CERT", "c"}, {"MP_SMTP_TLS_KEY", "k"}, {"MP_SMTP_REQUIRE_TLS", "1"}}),
          "tls.mode"),
      "implicit");
  // An auth file without allow-insecure forces STARTTLS first (RFC 4954), as in Mailpit.
  auto a = smtp(with({"--smtp-auth-file", "users.htpasswd"}));
  EXPECT_EQ(get(a, "tls.mode"), "starttls-required");
  EXPECT_EQ(get(a, "auth.mode"), "required");
  EXPECT_EQ(get(a, "auth.htpasswd"), fs::absolute("users.htpasswd").string());
  EXPECT_EQ(get(a, "auth.mechanisms"), "PLAIN");
  EXPECT_EQ(a.at("auth").at("mechanisms").items().size(), 2u);  // no CRAM-MD5, as Mailpit
  auto b = smtp({"--smtp-auth-file", "u", "--smtp-auth-allow-insecure"});
  EXPECT_FALSE(b.has("tls"));
  EXPECT_EQ(get(b, "auth.allow_insecure"), "true");
  auto any = smtp({"--smtp-auth-accept-any", "--smtp-auth-allow-insecure"});
  EXPECT_EQ(get(any, "auth.mode"), "accept-any");
  EXPECT_EQ(get(smtp(with({"--smtp-auth-accept-any"})), "tls.mode"), "starttls");
  // MP_SMTP_AUTH is referred to, never copied.
  auto f = run({"--smtp-auth-allow-insecure"}, {{"MP_SMTP_AUTH", "joe:hunter2"}});
  EXPECT_EQ(f.yaml.find("hunter2"), std::string::npos);
  EXPECT_NE(f.yaml.find("users: \"${MP_SMTP_AUTH}\""), std::string::npos);
  EXPECT_EQ(get(listener(parse(f), "smtp"), "auth.mode"), "required");
}

TEST(mailpit_flags, refused_and_malformed_values_name_the_flag) {
  struct bad {
    std::vector<std::string> args;
    mp::env_map env;
    std::string expected;
  };
  const std::vector<std::string> cert = {"--smtp-tls-cert", "c", "--smtp-tls-key", "k"};
  auto with_cert = [&](std::vector<std::string> more) {
    auto a = cert;
    a.insert(a.end(), more.begin(), more.end());
    return a;
  };
  const std::vector<bad> cases = {
      {{"--max", "lots"}, {}, "--max: expected a whole number"},
      {{"-m", "-1"}, {}, "-m: expected a whole number"},
      {{}, {{"MP_MAX_MESSAGES", "1e3"}}, "MP_MAX_MESSAGES: expected a whole number"},
      {{"--max-age", "3w"}, {}, "--max-age: expected <n>h or <n>d"},
      {{"--max-age", "h"}, {}, "--max-age: expected <n>h or <n>d"},
      {{"--max-age", "0d"}, {}, "--max-age: expected <n>h or <n>d"},
      {{}, {{"MP_MAX_AGE", "10"}}, "MP_MAX_AGE: expected <n>h or <n>d"},
      {{"--compression", "4"}, {}, "--compression: expected a whole number from 0 to 3"},
      {{"--no-such-flag"}, {}, "--no-such-flag: unknown flag"},
      {{"--smtp"}, {}, "--smtp: needs a value"},
      {{"--smtp", "1025"}, {}, "--smtp: expected <ip>:<port>"},
      {{"--listen", "127.0.0.1:99999"}, {}, "--listen: bad port"},
      // Found by fuzz_mailpit_flags: a NUL matched the table's "no short form" marker.
      {{std::string("-\0x", 3)}, {}, "unknown flag"},
      // Found by fuzz_mailpit_flags: std::stoul threw out_of_range on this.
      {{"--smtp", "11:1055555555555555555555555555555555555555525"}, {}, "--smtp: bad port"},
      {with_cert({"--smtp-require-tls", "--smtp-require-starttls"}),
       {},
       "--smtp-require-tls: conflicts with --smtp-require-starttls"},
      {{"--smtp-require-starttls"}, {}, "--smtp-require-starttls: needs --smtp-tls-cert"},
      {{"--smtp-require-tls"}, {}, "--smtp-require-tls: needs --smtp-tls-cert"},
      {{"--smtp-tls-cert", "c"}, {}, "--smtp-tls-cert: needs --smtp-tls-key"},
      {{"--smtp-auth-accept-any"}, {}, "--smtp-auth-accept-any: SMTP authentication needs TLS"},
      {{"--smtp-auth-file", "u"}, {}, "--smtp-auth-file: SMTP authentication needs TLS"},
      {{}, {{"MP_SMTP_AUTH", "a:b"}}, "MP_SMTP_AUTH: SMTP authentication needs TLS"},
      {{"--smtp-auth-accept-any", "--smtp-auth-file", "u", "--smtp-auth-allow-insecure"},
       {},
       "--smtp-auth-accept-any: conflicts with --smtp-auth-file"},
      {with_cert({"--smtp-require-starttls", "--smtp-auth-allow-insecure"}),
       {},
       "--smtp-auth-allow-insecure: conflicts with --smtp-require-starttls"},
      {{"--send-api-auth-accept-any", "--send-api-auth-file", "f"},
       {},
       "--send-api-auth-accept-any: conflicts with --send-api-auth-file"},
      {{"--ui-tls-key", "k"}, {}, "--ui-tls-key: needs --ui-tls-cert"},
      {{"--smtp-tls-cert", "sans:localhost", "--smtp-tls-key", "sans:localhost"},
       {},
       "--smtp-tls-cert: sluice does not generate self-signed certificates"},
      {{"--webroot", "/a b/"}, {}, "--webroot: only letters"},
      {{"-q", "-v"}, {}, "-v: conflicts with --quiet"},
      {{"--tag", "novalue"}, {}, "--tag: expected tag1,tag2=search"},
      {{"--tags-disable", "everything"}, {}, "--tags-disable: expected x-tags or plus-addresses"},
      {{"--smtp-relay-all"}, {}, "--smtp-relay-all: needs a relay"},
      {{"--smtp-relay-matching", "x"}, {}, "--smtp-relay-matching: needs a relay"},
      {{"--smtp-relay-all", "--smtp-relay-matching", "x"},
       {{"MP_SMTP_RELAY_HOST", "127.0.0.1"}},
       "--smtp-relay-matching: conflicts with --smtp-relay-all"},
      {{}, {{"MP_SMTP_RELAY_HOST", "h"}, {"MP_SMTP_RELAY_PORT", "x"}}, "MP_SMTP_RELAY_PORT"},
      {{},
       {{"MP_SMTP_RELAY_HOST", "smtp.example.com"},
        {"MP_SMTP_RELAY_AUTH", "plain"},
        {"MP_SMTP_RELAY_USERNAME", "u"},
        {"MP_SMTP_RELAY_PASSWORD", "p"}},
       "AUTH to smtp.example.com over an unencrypted connection is refused"},
      {{},
       {{"MP_SMTP_RELAY_HOST", "h"}, {"MP_SMTP_RELAY_AUTH", "plain"}},
       "MP_SMTP_RELAY_AUTH: plain needs MP_SMTP_RELAY_USERNAME"},
      {{"--database", "http://127.0.0.1:4001"}, {}, "--database: rqlite"},
      {{"--enable-prometheus", "0.0.0.0:9090"}, {}, "--enable-prometheus: a separate"},
      {{"--enable-spamassassin", "postmark"}, {}, "--enable-spamassassin: Postmark"},
      // Mailpit features Sluice cannot honour are refused, not ignored.
      {{"--disable-wal"}, {}, "--disable-wal: not supported by sluice"},
      {{}, {{"MP_DISABLE_WAL", "true"}}, "MP_DISABLE_WAL: not supported"},
      {{"--tenant-id", "t1"}, {}, "--tenant-id: not supported"},
      {{"--smtp-forward-config", "f.yaml"}, {}, "--smtp-forward-config: not supported"},
      {{"--label", "a\r\nb"}, {}, "--label: control characters"},
      {{}, {{"MP_LABEL", std::string(1025, 'x')}}, "MP_LABEL: at most 1024 bytes"},
  };
  for (const auto& c : cases) {
    std::string err = error_of(c.args, c.env);
    EXPECT_NE(err.find(c.expected), std::string::npos)
        << "expected \"" << c.expected << "\", got \"" << err << "\"";
  }
  // Harmless flags are accepted and change nothing.
  auto plain = run({}).yaml;
  for (std::string f :
       {"--disable-version-check", "--smtp-disable-rdns", "--disable-auto-vacuum",
        "--hide-delete-all-button", "--disable-html-check", "--enable-prometheus=true"}) {
    EXPECT_EQ(run({f}).yaml, plain) << f;
  }
  EXPECT_EQ(run({"--webhook-delay", "5"}).yaml, plain);
  EXPECT_EQ(run({}, {{"MP_DISABLE_WAL", "false"}}).yaml, plain);
}

TEST(mailpit_flags, label_reaches_the_smtp_and_pop3_greetings) {
  auto c = parse(run({"--label", "QA box", "--pop3-auth-file", "/dev/null"}));
  EXPECT_EQ(get(listener(c, "smtp"), "label"), "QA box");
  EXPECT_EQ(get(listener(c, "pop3"), "label"), "QA box");
  EXPECT_EQ(get(listener(c, "http"), "label"), "QA box");
  // A label that does not fit a protocol line stays in the UI only (never a refusal: it is
  // valid for Mailpit's web UI).
  for (std::string label :
       {std::string("Caf\xc3\xa9"), std::string("<qa>"), std::string(129, 'x')}) {
    auto d = parse(run({"--label", label, "--pop3-auth-file", "/dev/null"}));
    EXPECT_EQ(get(listener(d, "http"), "label"), label);
    EXPECT_FALSE(listener(d, "smtp").has("label")) << label;
    EXPECT_FALSE(listener(d, "pop3").has("label")) << label;
  }
  EXPECT_FALSE(listener(parse(run({})), "smtp").has("label"));
}

TEST(mailpit_flags, ignore_rejected_recipients_goes_with_allowed_recipients) {
  auto c = parse(run({"--smtp-allowed-recipients", "@example\\.org$"},
                     {{"MP_SMTP_IGNORE_REJECTED_RECIPIENTS", "true"}}));
  EXPECT_EQ(get(listener(c, "smtp"), "ignore_rejected_recipients"), "true");
  // The flag over the variable.
  auto off =
      parse(run({"--smtp-allowed-recipients", "x", "--smtp-ignore-rejected-recipients=false"},
                {{"MP_SMTP_IGNORE_REJECTED_RECIPIENTS", "1"}}));
  EXPECT_FALSE(listener(off, "smtp").has("ignore_rejected_recipients"));
  // Nothing is rejected without allowed recipients: no effect, as in Mailpit.
  EXPECT_FALSE(listener(parse(run({"--smtp-ignore-rejected-recipients"})), "smtp")
                   .has("ignore_rejected_recipients"));
}

TEST(mailpit_flags, log_file_becomes_log_file_with_an_absolute_path) {
  auto c = parse(run({}, {{"MP_LOG_FILE", "logs/mailpit.log"}}));
  EXPECT_EQ(c.log_file, fs::current_path() / "logs/mailpit.log");
  EXPECT_EQ(parse(run({"--log-file", "/var/log/a.log"}, {{"MP_LOG_FILE", "b.log"}})).log_file,
            fs::path("/var/log/a.log"));
  EXPECT_TRUE(parse(run({})).log_file.empty());
}

TEST(mailpit_flags, database_directory_and_values_with_dollars) {
  sluice::test::temp_dir dir;
  auto f = run({"-d", dir.path().string()});
  EXPECT_FALSE(f.temporary_data);
  auto c = parse(f);
  EXPECT_EQ(get(service(c, "default", "store"), "path"), (dir.path() / "sluice.db").string());
  EXPECT_EQ(c.spool_dir, dir.path() / "sluice.db-spool");
  // `$` survives the loader's ${ENV} substitution; quotes and backslashes survive YAML.
  auto g = parse(run({"--smtp-allowed-recipients", "^a\"b\\.c$", "--label", "${HOME}"}));
  EXPECT_EQ(get(listener(g, "smtp"), "allowed_recipients"), "^a\"b\\.c$");
  EXPECT_EQ(get(listener(g, "http"), "label"), "${HOME}");
  EXPECT_EQ(get(listener(parse(run({"-s", ":2525"})), "smtp"), "listen"), "[::]:2525");
  EXPECT_EQ(get(listener(parse(run({"-s", "unix:/run/mp.sock:666"})), "smtp"), "listen"),
            "unix:/run/mp.sock:666");
}

// Found by fuzz_mailpit_flags: a name longer than PATH_MAX made is_directory() throw.
TEST(mailpit_flags, an_overlong_database_path_is_no_exception) {
  const std::string name(5000, 'a');
  mp::facade f;
  EXPECT_NO_THROW(f = run({"-d", name}));
  EXPECT_EQ(get(service(parse(f), "default", "store"), "path"),
            (fs::current_path() / name).string());
}

TEST(mailpit_flags, credentials_stay_out_of_the_text) {
  sluice::test::temp_dir dir;
  auto f = run({"--smtp-auth-allow-insecure", "--pop3-auth-file", "p"},
               {{"MP_UI_AUTH", "ui:uipass"},
                {"MP_SEND_API_AUTH", "send:sendpass"},
                {"MP_SMTP_AUTH", "smtp:smtppass"},
                {"MP_POP3_AUTH", "pop:poppass"}});
  for (std::string secret : {"uipass", "sendpass", "smtppass", "poppass"})
    EXPECT_EQ(f.yaml.find(secret), std::string::npos) << secret;
  // The loader substitutes the variables from the process environment when it reads them.
  ::setenv("MP_UI_AUTH", "ui:uipass", 1);
  ::setenv("MP_SEND_API_AUTH", "send:sendpass", 1);
  ::setenv("MP_POP3_AUTH", "pop:poppass", 1);
  auto c = parse(f);
  EXPECT_EQ(listener(c, "http").at("auth").as_string(), "ui:uipass");
  EXPECT_EQ(listener(c, "http").at("send_auth").as_string(), "send:sendpass");
  EXPECT_EQ(listener(c, "pop3").at("users").as_string(), "pop:poppass");
  // A webhook URL with user:pass@ goes through the environment too.
  auto w = run({"--webhook-url", "https://hook:hookpass@example.com/x"});
  EXPECT_EQ(w.yaml.find("hookpass"), std::string::npos);
  EXPECT_EQ(w.secrets.at("MP_WEBHOOK_URL"), "https://hook:hookpass@example.com/x");
}

TEST(mailpit_flags, relay_config_file_becomes_release_and_auto_relay) {
  sluice::test::temp_dir dir;
  auto file = dir.path() / "relay.yaml";
  sluice::test::write_file(file,
                           "host: smtp.example.com\n"
                           "port: 587\n"
                           "starttls: true\n"
                           "auth: login\n"
                           "username: mailer\n"
                           "password: relaypass\n"
                           "return-path: bounces@example.com\n"
                           "override-from: noreply@example.com\n"
                           "allowed-recipients: '@example\\.com$'\n"
                           "blocked-recipients: '^ceo@'\n"
                           "preserve-message-ids: true\n");
  auto f = run({"--smtp-relay-config", file.string(), "--smtp-relay-matching", "@test\\.example$"});
  EXPECT_EQ(f.yaml.find("relaypass"), std::string::npos);
  EXPECT_EQ(f.secrets.at("MP_SMTP_RELAY_PASSWORD"), "relaypass");
  auto c = parse(f);
  auto http = listener(c, "http");
  EXPECT_EQ(get(http, "release_pipeline"), "release");
  EXPECT_EQ(get(http, "release_sender"), "bounces@example.com");
  EXPECT_EQ(get(http, "release_preserve_message_ids"), "true");
  auto* rel = stage(c, "release", "release_relay");
  ASSERT_TRUE(rel);
  EXPECT_EQ(rel->phase, sluice::phase::inline_);
  EXPECT_EQ(get(rel->node, "smarthost"), "smtp.example.com:587");
  EXPECT_EQ(get(rel->node, "security"), "starttls-required");
  EXPECT_EQ(get(rel->node, "auth.mechanism"), "LOGIN");
  EXPECT_EQ(get(rel->node, "auth.username"), "mailer");
  EXPECT_EQ(get(rel->node, "allowed_recipients"), "@example\\.com$");
  EXPECT_EQ(get(rel->node, "blocked_recipients"), "^ceo@");
  EXPECT_FALSE(rel->node.has("allow_plaintext_auth"));
  auto* rw = stage(c, "release", "release_rewrite");
  ASSERT_TRUE(rw);
  EXPECT_EQ(get(rw->node, "override_from.address"), "noreply@example.com");
  EXPECT_EQ(get(rw->node, "override_from.envelope"), "false");  // return-path names it
  ASSERT_TRUE(stage(c, "release", "release_store"));
  // The auto relay: deferred (spool retries), only matching recipients, no return-path or
  // allowed-recipients (Mailpit applies those to manual release only).
  auto* au = stage(c, "capture", "auto_relay");
  ASSERT_TRUE(au);
  EXPECT_EQ(au->phase, sluice::phase::deferred);
  EXPECT_EQ(get(au->node, "allowed_recipients"), "@test\\.example$");
  EXPECT_EQ(get(au->node, "blocked_recipients"), "^ceo@");
  // A smarthost given by name needs the resolver service.
  service(c, "resolver", "resolver");

  // forward-smtp-errors: the auto relay runs inline, so its failure is the client's reply.
  sluice::test::write_file(file, "host: 127.0.0.1\nport: 2525\nforward-smtp-errors: true\n");
  auto g = parse(run({"--smtp-relay-config", file.string(), "--smtp-relay-all"}));
  auto* inl = stage(g, "capture", "auto_relay");
  ASSERT_TRUE(inl);
  EXPECT_EQ(inl->phase, sluice::phase::inline_);
  EXPECT_EQ(get(inl->node, "security"), "none");
  EXPECT_FALSE(inl->node.has("allowed_recipients"));
  for (auto& s : g.services)
    EXPECT_NE(s.plugin, "resolver");  // an IP needs no DNS

  // Errors in the file carry file:line:col.
  sluice::test::write_file(file, "host: h\nport: 25\nstarttls: maybe\n");
  EXPECT_NE(error_of({"--smtp-relay-config", file.string()}).find(file.string() + ":3:11"),
            std::string::npos)
      << error_of({"--smtp-relay-config", file.string()});
  sluice::test::write_file(file, "host: h\nhots: x\n");
  EXPECT_NE(error_of({"--smtp-relay-config", file.string()}).find(file.string() + ":2:1: hots"),
            std::string::npos);
  sluice::test::write_file(file, "host: h\nstarttls: true\ntls: true\n");
  EXPECT_NE(error_of({"--smtp-relay-config", file.string()}).find("exclude each other"),
            std::string::npos);
  sluice::test::write_file(file, "host: h\nauth: cram-md5\nusername: u\n");
  EXPECT_NE(error_of({"--smtp-relay-config", file.string()}).find(file.string() + ":2:7"),
            std::string::npos);
  EXPECT_NE(error_of({"--smtp-relay-config", (dir.path() / "none.yaml").string()})
                .find("--smtp-relay-config: cannot read"),
            std::string::npos);
}

TEST(mailpit_flags, relay_from_env_only_variables) {
  auto f = run({"--smtp-relay-all"}, {{"MP_SMTP_RELAY_HOST", "127.0.0.1"},
                                      {"MP_SMTP_RELAY_PORT", "2525"},
                                      {"MP_SMTP_RELAY_TLS", "true"},
                                      {"MP_SMTP_RELAY_ALLOW_INSECURE", "yes"},
                                      {"MP_SMTP_RELAY_AUTH", "cram-md5"},
                                      {"MP_SMTP_RELAY_USERNAME", "u"},
                                      {"MP_SMTP_RELAY_SECRET", "crampass"},
                                      {"MP_SMTP_RELAY_OVERRIDE_FROM", "x@example.com"}});
  EXPECT_EQ(f.yaml.find("crampass"), std::string::npos);
  EXPECT_TRUE(f.secrets.empty());  // already in the environment
  auto c = parse(f);
  auto* au = stage(c, "capture", "auto_relay");
  ASSERT_TRUE(au);
  EXPECT_EQ(get(au->node, "smarthost"), "127.0.0.1:2525");
  EXPECT_EQ(get(au->node, "security"), "tls");
  EXPECT_EQ(get(au->node, "allow_insecure"), "true");
  EXPECT_EQ(get(au->node, "auth.mechanism"), "CRAM-MD5");
  ::setenv("MP_SMTP_RELAY_SECRET", "crampass", 1);
  EXPECT_EQ(au->node.at("auth").at("password").as_string(), "crampass");  // via ${...}
  ASSERT_TRUE(stage(c, "release", "release_rewrite"));
}

// The flags whose effect needs others beside them, each set once by flag and once by its
// variable: both give the same configuration.
TEST(mailpit_flags, the_remaining_twins_give_the_same_configuration) {
  sluice::test::temp_dir dir;
  auto relay = dir.path() / "relay.yaml";
  sluice::test::write_file(relay, "host: 127.0.0.1\nport: 2525\n");
  auto tags = dir.path() / "tags.yaml";
  sluice::test::write_file(tags, "filters:\n  - {match: x, tags: X}\n");
  struct twin {
    std::vector<std::string> flag;
    mp::env_map env;
    mp::env_map common;  // what both need
    std::string expect;  // a line the YAML must have
  };
  const mp::env_map cert = {{"MP_SMTP_TLS_CERT", "c.pem"}, {"MP_SMTP_TLS_KEY", "k.pem"}};
  const mp::env_map relay_env = {{"MP_SMTP_RELAY_CONFIG", relay.string()}};
  const std::vector<twin> cases = {
      {{"--smtp-tls-cert", "c.pem", "--smtp-tls-key", "k.pem"}, cert, {}, "mode: starttls\n"},
      {{"--smtp-require-starttls"},
       {{"MP_SMTP_REQUIRE_STARTTLS", "true"}},
       cert,
       "mode: starttls-required"},
      {{"--smtp-require-tls"}, {{"MP_SMTP_REQUIRE_TLS", "yes"}}, cert, "mode: implicit"},
      {{"--smtp-auth-file", "a.htpasswd"},
       {{"MP_SMTP_AUTH_FILE", "a.htpasswd"}},
       cert,
       "mode: required"},
      {{"--smtp-auth-accept-any"}, {{"MP_SMTP_AUTH_ACCEPT_ANY", "1"}}, cert, "mode: accept-any"},
      {{"--smtp-auth-allow-insecure"},
       {{"MP_SMTP_AUTH_ALLOW_INSECURE", "TRUE"}},
       {{"MP_SMTP_AUTH_ACCEPT_ANY", "1"}},
       "allow_insecure: true"},
      {{"--ui-tls-cert", "c.pem", "--ui-tls-key", "k.pem"},
       {{"MP_UI_TLS_CERT", "c.pem"}, {"MP_UI_TLS_KEY", "k.pem"}},
       {},
       "key: \"" + fs::absolute("k.pem").string() + "\""},
      {{"--pop3-tls-cert", "c.pem", "--pop3-tls-key", "k.pem"},
       {{"MP_POP3_TLS_CERT", "c.pem"}, {"MP_POP3_TLS_KEY", "k.pem"}},
       {{"MP_POP3_AUTH", "a:b"}},
       "mode: implicit"},
      {{"--smtp-relay-config", relay.string()}, relay_env, {}, "release_pipeline: release"},
      {{"--smtp-relay-all"}, {{"MP_SMTP_RELAY_ALL", "true"}}, relay_env, "name: auto_relay"},
      {{"--smtp-relay-matching", "@x$"},
       {{"MP_SMTP_RELAY_MATCHING", "@x$"}},
       relay_env,
       "allowed_recipients: [\"@x$$\"]"},
      {{"--tags-config", tags.string()}, {{"MP_TAGS_CONFIG", tags.string()}}, {}, "- match: \"x\""},
      {{"--chaos-triggers", "Sender:451:10"},
       {{"MP_CHAOS_TRIGGERS", "Sender:451:10"}},
       {},
       "triggers: \"Sender:451:10\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.flag.front());
    auto by_flag = run(c.flag, c.common);
    auto env = c.common;
    env.insert(c.env.begin(), c.env.end());
    auto by_env = run({}, env);
    EXPECT_EQ(by_flag.yaml, by_env.yaml);
    EXPECT_NE(by_flag.yaml.find(c.expect), std::string::npos) << by_flag.yaml;
    parse(by_flag);
  }
}

TEST(mailpit_flags, tags_config_file) {
  sluice::test::temp_dir dir;
  auto file = dir.path() / "tags.yaml";
  sluice::test::write_file(file,
                           "filters:\n"
                           "  - match: from:billing@example.com\n"
                           "    tags: \"Billing, Finance\"\n"
                           "  - match: has:attachment\n"
                           "    tags: [Files]\n");
  auto c = parse(run({"--tags-config", file.string(), "-t", "Shop=shop"}));
  auto rules = snode(c, "capture", "store").at("tags").at("rules").items();
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].at("match").as_string(), "shop");
  EXPECT_EQ(rules[1].at("match").as_string(), "from:billing@example.com");
  EXPECT_EQ(rules[1].at("tags").as_string_list(), (std::vector<std::string>{"Billing", "Finance"}));
  EXPECT_EQ(rules[2].at("tags").as_string_list(), (std::vector<std::string>{"Files"}));
  sluice::test::write_file(file, "filters:\n  - match: x\n    tag: y\n");
  EXPECT_NE(error_of({"--tags-config", file.string()}).find(file.string() + ":2:5"),
            std::string::npos)
      << error_of({"--tags-config", file.string()});
}

TEST(mailpit_flags, everything_at_once_parses) {
  sluice::test::temp_dir dir;
  sluice::test::write_file(dir.path() / "relay.yaml", "host: 127.0.0.1\nport: 2525\n");
  auto f = run({"-s",
                "127.0.0.1:0",
                "-l",
                "127.0.0.1:0",
                "-d",
                (dir.path() / "m.db").string(),
                "-m",
                "50",
                "--max-age",
                "2d",
                "--smtp-tls-cert",
                "c",
                "--smtp-tls-key",
                "k",
                "--smtp-auth-file",
                "a",
                "--ui-auth-file",
                "u",
                "--webroot",
                "/mp/",
                "--pop3",
                "127.0.0.1:0",
                "--pop3-auth-file",
                "p",
                "--pop3-tls-cert",
                "c",
                "--pop3-tls-key",
                "k",
                "--webhook-url",
                "http://127.0.0.1:1/",
                "--smtp-relay-config",
                (dir.path() / "relay.yaml").string(),
                "--smtp-relay-all",
                "-t",
                "a=b",
                "--enable-chaos",
                "--ui-tls-cert",
                "c",
                "--ui-tls-key",
                "k",
                "-v"},
               {{"MP_UI_AUTH", "a:b"}});
  auto c = parse(f);
  EXPECT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.pipelines.size(), 2u);
  EXPECT_EQ(get(listener(c, "pop3"), "tls.mode"), "implicit");
  EXPECT_EQ(get(listener(c, "http"), "tls.cert"), fs::absolute("c").string());
}

TEST(mailpit_flags, arity_and_env_selection) {
  EXPECT_EQ(mp::flag_arity("--smtp"), 1);
  EXPECT_EQ(mp::flag_arity("--smtp=x"), 0);
  EXPECT_EQ(mp::flag_arity("-s"), 1);
  EXPECT_EQ(mp::flag_arity("-s127.0.0.1:25"), 0);
  EXPECT_EQ(mp::flag_arity("--enable-chaos"), 0);
  EXPECT_EQ(mp::flag_arity("-q"), 0);
  EXPECT_EQ(mp::flag_arity("--disable-wal"), 0);
  EXPECT_EQ(mp::flag_arity("--tenant-id"), 1);
  EXPECT_EQ(mp::flag_arity("--config"), -1);
  EXPECT_EQ(mp::flag_arity("-c"), -1);
  EXPECT_EQ(mp::flag_arity("--nonsense"), -1);
  EXPECT_FALSE(mp::env_selects_facade({}));
  EXPECT_FALSE(mp::env_selects_facade({{"MP_SOMETHING_ELSE", "1"}}));
  EXPECT_FALSE(mp::env_selects_facade({{"MP_MAX_MESSAGES", ""}}));
  EXPECT_TRUE(mp::env_selects_facade({{"MP_MAX_MESSAGES", "5"}}));
  EXPECT_TRUE(mp::env_selects_facade({{"MP_UI_AUTH", "a:b"}}));
  EXPECT_TRUE(mp::env_selects_facade({{"MP_SMTP_RELAY_HOST", "h"}}));
  auto help = mp::help_text();
  for (std::string f : {"--smtp", "--listen", "--database", "--max-age", "--smtp-relay-config",
                        "--enable-chaos", "--tag", "--pop3-auth-file"})
    EXPECT_NE(help.find(f + " "), std::string::npos) << f;
}

}  // namespace
