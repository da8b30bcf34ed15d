// spf_zone.hpp — the OpenSPF RFC 7208 test suite (tests/data/auth/rfc7208-tests.yml) as
// data, and an in-memory sluice::resolver that answers from one scenario's zone data.
//
// Zone semantics follow the suite's own driver (pyspf's testspf.py): a name's SPF (type
// 99) records are also served as TXT unless the name has TXT records of its own; "TXT:
// NONE" means no TXT; TIMEOUT makes lookups of the name time out for every type it has no
// records of (as the driver does: "spftimeout" has TXT and a TIMEOUT); CNAMEs are followed.
// Test-only; single-threaded use per instance (answers are immediate).
#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>
#include <boost/asio/ip/address.hpp>

#include "sluice/resolver.hpp"

namespace sluice::test::spf_suite {

struct rr {
  std::string type;   // A AAAA MX PTR CNAME TXT SPF
  std::string value;  // TXT/SPF: the strings concatenated
  std::uint16_t pref = 0;
};

struct zone_name {
  bool timeout = false;
  std::vector<rr> records;
};

using zone = std::map<std::string, zone_name>;

struct test_case {
  std::string scenario, name, helo, host, mailfrom, explanation;
  std::vector<std::string> results;  // any of them is acceptable
};

struct scenario {
  std::string description;
  zone data;
  std::vector<test_case> tests;
};

inline std::string lower_name(std::string s) {
  for (char& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

inline std::vector<scenario> load(const std::string& path) {
  std::vector<scenario> out;
  for (const YAML::Node& doc : YAML::LoadAllFromFile(path)) {
    scenario sc;
    sc.description = doc["description"].as<std::string>();
    for (const auto& kv : doc["zonedata"]) {
      zone_name& zn = sc.data[lower_name(kv.first.as<std::string>())];
      bool has_txt = false;
      std::vector<rr> spf;
      for (const auto& entry : kv.second) {
        if (entry.IsScalar()) {
          if (entry.as<std::string>() == "TIMEOUT") zn.timeout = true;
          continue;
        }
        for (const auto& tv : entry) {
          rr r;
          r.type = tv.first.as<std::string>();
          const YAML::Node& v = tv.second;
          if (r.type == "MX") {
            r.pref = v[0].as<std::uint16_t>();
            r.value = v[1].as<std::string>();
          } else if (v.IsSequence()) {
            for (const auto& s : v)
              r.value += s.as<std::string>();
          } else {
            r.value = v.as<std::string>();
          }
          if (r.type == "TXT") {
            has_txt = true;
            if (r.value == "NONE") continue;
          }
          if (r.type == "SPF") {
            if (r.value != "NONE") spf.push_back(r);
            continue;  // RFC 7208 clients never ask for type SPF
          }
          zn.records.push_back(std::move(r));
        }
      }
      if (!has_txt) {
        for (auto r : spf) {
          r.type = "TXT";
          zn.records.push_back(std::move(r));
        }
      }
    }
    for (const auto& kv : doc["tests"]) {
      test_case t;
      t.scenario = sc.description;
      t.name = kv.first.as<std::string>();
      const YAML::Node& n = kv.second;
      t.helo = n["helo"].as<std::string>();
      t.host = n["host"].as<std::string>();
      t.mailfrom = n["mailfrom"].as<std::string>();
      if (n["result"].IsSequence()) {
        for (const auto& r : n["result"])
          t.results.push_back(r.as<std::string>());
      } else {
        t.results.push_back(n["result"].as<std::string>());
      }
      if (n["explanation"]) t.explanation = n["explanation"].as<std::string>();
      sc.tests.push_back(std::move(t));
    }
    out.push_back(std::move(sc));
  }
  return out;
}

inline std::string reverse_name(const std::string& ip) {
  boost::system::error_code ec;
  auto a = boost::asio::ip::make_address(ip, ec);
  if (ec) return {};
  std::string r;
  if (a.is_v4()) {
    auto b = a.to_v4().to_bytes();
    for (int i = 3; i >= 0; --i)
      r += std::to_string(b[static_cast<std::size_t>(i)]) + ".";
    return r + "in-addr.arpa";
  }
  static const char* hex = "0123456789abcdef";
  auto b = a.to_v6().to_bytes();
  for (int i = 15; i >= 0; --i) {
    r += hex[b[static_cast<std::size_t>(i)] & 15];
    r += '.';
    r += hex[b[static_cast<std::size_t>(i)] >> 4];
    r += '.';
  }
  return r + "ip6.arpa";
}

// Answers from a zone; counts the queries it was asked.
class zone_resolver final : public resolver {
 public:
  explicit zone_resolver(const zone& z) : zone_(z) {}
  unsigned queries = 0;

  dns_answer lookup(std::string name, const std::string& type, int depth = 0) {
    ++queries;
    dns_answer a;
    name = lower_name(name);
    auto it = zone_.find(name);
    if (it == zone_.end()) {
      a.status = dns_status::nxdomain;
      return a;
    }
    for (const auto& r : it->second.records) {
      if (r.type == "CNAME" && type != "CNAME" && depth < 8)
        return lookup(r.value, type, depth + 1);
    }
    std::vector<const rr*> hits;
    for (const auto& r : it->second.records)
      if (r.type == type) hits.push_back(&r);
    if (hits.empty() && it->second.timeout) {
      a.status = dns_status::timeout;
      a.error = "timeout";
      return a;
    }
    std::stable_sort(hits.begin(), hits.end(),
                     [](const rr* x, const rr* y) { return x->pref < y->pref; });
    for (const rr* r : hits)
      a.records.push_back(type == "TXT" ? r->value : lower_name(r->value));
    a.status = a.records.empty() ? dns_status::nodata : dns_status::ok;
    if (a.status == dns_status::ok) a.ttl = 300;
    last_prefs_.clear();
    for (const rr* r : hits)
      last_prefs_.push_back(r->pref);
    return a;
  }

  boost::asio::awaitable<dns_answer> txt(std::string name) override {
    co_return lookup(std::move(name), "TXT");
  }
  boost::asio::awaitable<dns_answer> a(std::string name) override {
    co_return lookup(std::move(name), "A");
  }
  boost::asio::awaitable<dns_answer> aaaa(std::string name) override {
    dns_answer ans = lookup(std::move(name), "AAAA");
    for (auto& r : ans.records) {  // the real resolver returns canonical literals
      boost::system::error_code ec;
      auto ad = boost::asio::ip::make_address_v6(r, ec);
      if (!ec) r = ad.to_string();
    }
    co_return ans;
  }
  boost::asio::awaitable<dns_answer> ptr(std::string address) override {
    std::string rev = reverse_name(address);
    if (rev.empty()) {
      dns_answer bad;
      bad.status = dns_status::error;
      bad.error = "not an address";
      co_return bad;
    }
    co_return lookup(rev, "PTR");
  }
  boost::asio::awaitable<std::pair<dns_answer, std::vector<mx_record>>> mx(
      std::string name) override {
    dns_answer ans = lookup(std::move(name), "MX");
    std::vector<mx_record> mxs;
    for (std::size_t i = 0; i < ans.records.size(); ++i)
      mxs.push_back({last_prefs_[i], ans.records[i]});
    co_return std::make_pair(std::move(ans), std::move(mxs));
  }

 private:
  const zone& zone_;
  std::vector<std::uint16_t> last_prefs_;
};

}  // namespace sluice::test::spf_suite
