// spf_suite_test.cpp — the whole OpenSPF RFC 7208 test suite (tests/data/auth/
// rfc7208-tests.yml) against the SPF evaluator in-process, each scenario's zone data served
// by an in-memory resolver (spf_zone.hpp): one GoogleTest case per suite case, so a failure
// names it. Explanations are compared when the suite gives one other than DEFAULT (case-
// insensitively: the suite writes one %{ir} expansion of an IPv6 address with upper-case
// nibbles although RFC 7208 §7.4's example and our output are lower-case).
// Also: unit tests of the Authentication-Results value (auth_results.hpp).
#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <boost/json/parse.hpp>
#include "sluice_test.hpp"

#include "auth_results.hpp"
#include "spf.hpp"
#include "spf_zone.hpp"

namespace {

using namespace sluice;
using namespace sluice::test::spf_suite;
namespace asio = boost::asio;

const std::vector<scenario>& suite() {
  static const std::vector<scenario> s =
      load(sluice::test::test_data_dir() + "/auth/rfc7208-tests.yml");
  return s;
}

struct param {
  std::size_t scenario, test;
};

std::vector<param> all_cases() {
  std::vector<param> out;
  for (std::size_t i = 0; i < suite().size(); ++i)
    for (std::size_t j = 0; j < suite()[i].tests.size(); ++j)
      out.push_back({i, j});
  return out;
}

std::string lower(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class rfc7208 : public ::testing::TestWithParam<param> {};

TEST_P(rfc7208, case_passes) {
  const scenario& sc = suite()[GetParam().scenario];
  const test_case& t = sc.tests[GetParam().test];
  auto dns = std::make_shared<zone_resolver>(sc.data);
  asio::io_context io;
  auto f = asio::co_spawn(io,
                          auth::spf::check_mail_from(dns, t.host, t.mailfrom, t.helo,
                                                     "receiver.example.net", 1700000000),
                          asio::use_future);
  io.run();
  auth::spf::outcome o = f.get();
  std::string got(auth::spf::to_string(o.res));
  EXPECT_NE(std::find(t.results.begin(), t.results.end(), got), t.results.end())
      << sc.description << " / " << t.name << ": got " << got << " (" << o.reason
      << "), expected one of " << ::testing::PrintToString(t.results);
  if (!t.explanation.empty() && t.explanation != "DEFAULT" && got == "fail") {
    EXPECT_EQ(lower(o.explanation), lower(t.explanation)) << t.name;
  }
}

TEST(rfc7208_suite, is_complete) {
  // The 2014.04 release: 16 scenarios. Guards against a YAML change silently dropping cases.
  EXPECT_EQ(suite().size(), 16u);
  EXPECT_GE(all_cases().size(), 200u);
}

INSTANTIATE_TEST_SUITE_P(openspf, rfc7208, ::testing::ValuesIn(all_cases()),
                         [](const ::testing::TestParamInfo<param>& info) {
                           const auto& t = suite()[info.param.scenario].tests[info.param.test];
                           std::string n = std::to_string(info.param.scenario) + "_" + t.name;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace

// ------------------------------------------------------------ Authentication-Results

namespace {

TEST(auth_results, none_when_no_method_ran) {
  EXPECT_EQ(sluice::auth::authentication_results("mx.example", {}), "mx.example; none");
}

TEST(auth_results, spf_dkim_dmarc_entries_in_order) {
  auto a = boost::json::parse(R"j({
    "spf": {"result": "fail", "reason": "-all (x)", "mailfrom": "a b@example.com"},
    "dkim": [{"result": "pass", "domain": "example.com", "selector": "s1"},
             {"result": "fail", "reason": "body hash", "domain": "other.example", "selector": "k"}],
    "dmarc": {"result": "pass", "from_domain": "example.com"}})j")
               .as_object();
  EXPECT_EQ(sluice::auth::authentication_results("mx.example", a),
            "mx.example; spf=fail (-all \\(x\\)) smtp.mailfrom=\"a b@example.com\"; dkim=pass "
            "header.d=example.com header.s=s1; dkim=fail (body hash) header.d=other.example "
            "header.s=k; dmarc=pass header.from=example.com");
}

TEST(auth_results, malformed_entries_are_skipped) {
  auto a = boost::json::parse(R"j({"spf": {"result": "PASS; evil=1"}, "dkim": [1, "x"],
                                  "dmarc": []})j")
               .as_object();
  EXPECT_EQ(sluice::auth::authentication_results("mx.example", a), "mx.example; none");
}

}  // namespace
