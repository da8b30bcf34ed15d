// config_node_test.cpp — typed access, units, and strictness of config_node.
#include <gtest/gtest.h>

#include "sluice/config.hpp"

namespace {

using sluice::config_error;
using sluice::config_node;

TEST(config_node, units) {
  auto n = config_node::parse(
      "a: 250ms\nb: 30s\nc: 5m\nd: 2h\ne: 1d\nf: 64KB\ng: 25MB\nh: 1GiB\ni: 512\nj: 7\n", "t");
  EXPECT_EQ(n.at("a").as_duration().count(), 250);
  EXPECT_EQ(n.at("b").as_duration().count(), 30000);
  EXPECT_EQ(n.at("c").as_duration().count(), 300000);
  EXPECT_EQ(n.at("d").as_duration().count(), 7200000);
  EXPECT_EQ(n.at("e").as_duration().count(), 86400000);
  EXPECT_EQ(n.at("f").as_size(), 65536u);
  EXPECT_EQ(n.at("g").as_size(), 25u * 1024 * 1024);
  EXPECT_EQ(n.at("h").as_size(), 1024ull * 1024 * 1024);
  EXPECT_EQ(n.at("i").as_size(), 512u);
  EXPECT_EQ(n.at("j").as_duration().count(), 7000);
}

TEST(config_node, wrong_types_name_expected_form) {
  auto n = config_node::parse("port: abc\nflag: maybe\nlist: {a: 1}\n", "f.yaml");
  try {
    n.at("port").as_int();
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "f.yaml:1:7: port: expected an integer, got \"abc\"");
  }
  EXPECT_THROW(n.at("flag").as_bool(), config_error);
  EXPECT_THROW(n.at("list").items(), config_error);
}

TEST(config_node, unknown_keys_are_found_recursively) {
  auto n = config_node::parse("a: 1\nb:\n  c: 2\n  typo: 3\n", "f.yaml");
  n.at("a").as_int();
  n.at("b").at("c").as_int();
  try {
    n.check_unknown_keys();
    FAIL();
  } catch (const config_error& e) {
    EXPECT_STREQ(e.what(), "f.yaml:4:3: b.typo: unknown key");
  }
}

TEST(config_node, items_in_lists_are_checked) {
  auto n = config_node::parse("l:\n  - {x: 1}\n  - {x: 2, y: 3}\n", "f.yaml");
  for (auto& i : n.at("l").items())
    i.at("x").as_int();
  EXPECT_THROW(n.check_unknown_keys(), config_error);
}

// Found by fuzz_config (tests/fuzz/regressions/fuzz_config/): an alias inside its own
// anchor makes the node graph cyclic; parsing must fail cleanly, not recurse without end.
TEST(config_node, self_referencing_alias_is_an_error_not_a_stack_overflow) {
  try {
    config_node::parse("x: &a {k: [1, y: *a]}\n", "f.yaml");
    FAIL() << "accepted a cyclic document";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("an alias that refers to itself"), std::string::npos)
        << e.what();
  }
  std::string deep = "a: ";
  for (int i = 0; i < 100; ++i)
    deep += "[";
  for (int i = 0; i < 100; ++i)
    deep += "]";
  EXPECT_THROW(config_node::parse(deep + "\n", "f.yaml"), config_error);
}

// Found by fuzz_config (tests/fuzz/regressions/fuzz_config/loadall-endless-documents): after
// a leading ',' yaml-cpp 0.7 reports empty documents without end, so YAML::LoadAll never
// returned. Only the second document is looked at, and only for content.
TEST(config_node, a_second_document_is_refused_and_the_search_for_it_ends) {
  EXPECT_TRUE(config_node::parse(",og: 1\n", "f.yaml").is_null());  // returns at all
  try {
    config_node::parse("a: 1\n---\nb: 2\n", "f.yaml");
    FAIL() << "accepted two documents";
  } catch (const config_error& e) {
    EXPECT_NE(std::string(e.what()).find("f.yaml:3:1: a second YAML document"), std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(config_node::parse("a: 1\n---\n", "f.yaml"));  // an empty one is no content
  EXPECT_NO_THROW(config_node::parse("---\na: 1\n...\n", "f.yaml"));
  EXPECT_THROW(config_node::parse("---\n---\nb: 2\n", "f.yaml"), config_error);
}

TEST(config_node, env_escape) {
  auto n = config_node::parse("a: $${NOT_SUBSTITUTED}\n", "f");
  EXPECT_EQ(n.at("a").as_string(), "${NOT_SUBSTITUTED}");
}

TEST(config_node, string_lists) {
  auto n = config_node::parse("one: a\nmany: [a, b]\n", "f");
  EXPECT_EQ(n.at("one").as_string_list(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(n.at("many").as_string_list(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(n.get_string_list("none", {"d"}), (std::vector<std::string>{"d"}));
}

}  // namespace
