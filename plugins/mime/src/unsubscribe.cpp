// unsubscribe.cpp — see unsubscribe.hpp.
//
// RFC 2369 §2: the field is a comma-separated list of URIs, each in angle brackets, in
// order of preference; white space (and folding) may surround them. §3.2: mailto and
// http(s) are the schemes a client acts on. RFC 8058 §3.1: one-click needs a
// List-Unsubscribe-Post of exactly "List-Unsubscribe=One-Click" and an https URI in
// List-Unsubscribe; §3.2 asks that URI not to be a mailto.
#include "unsubscribe.hpp"

#include <boost/url/parse.hpp>

#include <string>
#include <vector>

namespace sluice::mime {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
    s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Shown in an error: at most 80 bytes, no control characters.
std::string shown(std::string_view s) {
  std::string out;
  for (char c : s.substr(0, 80)) {
    out += static_cast<unsigned char>(c) < 0x20 ? '?' : c;
  }
  if (s.size() > 80) out += "...";
  return out;
}

}  // namespace

list_unsubscribe check_list_unsubscribe(std::string_view header, std::string_view post) {
  list_unsubscribe r;
  r.header = std::string(trim(header));
  r.header_post = std::string(trim(post));
  std::vector<std::string> errors;
  bool https = false;
  if (!r.header.empty()) {
    std::string_view s = r.header;
    bool expect_uri = true;  // at the start or after a comma
    while (!s.empty()) {
      s = trim(s);
      if (s.empty()) break;
      if (s.front() == ',') {
        if (expect_uri) errors.push_back("empty entry in the list (two commas)");
        expect_uri = true;
        s.remove_prefix(1);
        continue;
      }
      if (s.front() != '<') {
        const std::size_t stop = s.find_first_of("<,");
        errors.push_back("text outside angle brackets: \"" + shown(trim(s.substr(0, stop))) + "\"");
        s.remove_prefix(stop == std::string_view::npos ? s.size() : stop);
        expect_uri = false;  // the junk stands where an entry was
        continue;
      }
      const std::size_t close = s.find('>');
      if (close == std::string_view::npos) {
        errors.push_back("unterminated <: \"" + shown(s) + "\"");
        break;
      }
      if (!expect_uri)
        errors.push_back("missing comma before <" + shown(s.substr(1, close - 1)) + ">");
      expect_uri = false;
      // RFC 2369 §2: white space inside the brackets is to be ignored.
      std::string uri;
      for (char c : s.substr(1, close - 1)) {
        if (c != ' ' && c != '\t') uri += c;
      }
      s.remove_prefix(close + 1);
      r.links.push_back(uri);
      auto parsed = boost::urls::parse_uri(uri);
      if (!parsed) {
        errors.push_back("not a valid URI: <" + shown(uri) + ">");
        continue;
      }
      const std::string scheme = lower(parsed->scheme());
      if (scheme == "mailto") {
        if (parsed->path().empty())
          errors.push_back("mailto URI without an address: <" + shown(uri) + ">");
      } else if (scheme == "http" || scheme == "https") {
        if (!parsed->has_authority() || parsed->host().empty()) {
          errors.push_back("http URI without a host: <" + shown(uri) + ">");
        } else if (scheme == "https") {
          https = true;
        }
      } else {
        errors.push_back("unsupported scheme \"" + shown(scheme) +
                         "\" (expected mailto, http or https): <" + shown(uri) + ">");
      }
    }
    if (r.links.empty()) errors.push_back("no <URI> found");
  }
  if (!r.header_post.empty()) {
    if (r.header.empty()) {
      errors.push_back("List-Unsubscribe-Post without a List-Unsubscribe header");
    } else {
      if (r.header_post != "List-Unsubscribe=One-Click") {
        errors.push_back(
            "List-Unsubscribe-Post must be \"List-Unsubscribe=One-Click\" (RFC 8058), got \"" +
            shown(r.header_post) + "\"");
      }
      if (!https)
        errors.push_back("one-click unsubscribe (RFC 8058) needs an https URI in List-Unsubscribe");
    }
  }
  for (std::size_t i = 0; i < errors.size(); ++i) {
    if (i) r.errors += "; ";
    r.errors += errors[i];
  }
  return r;
}

}  // namespace sluice::mime
