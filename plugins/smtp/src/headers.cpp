// plugins/smtp/src/headers.cpp — see headers.hpp.
#include "headers.hpp"

#include "command.hpp"
#include "sluice/message.hpp"

namespace sluice::smtp {

std::string ascii_lower(std::string_view s) {
  return to_lower_ascii(s);
}

bool has_bare_cr(std::string_view block) noexcept {
  for (std::size_t i = block.find('\r'); i != std::string_view::npos; i = block.find('\r', i + 1)) {
    if (i + 1 == block.size() || block[i + 1] != '\n') return true;
  }
  return false;
}

std::vector<std::string> header_values(std::string_view block, std::string_view name) {
  std::vector<std::string> out;
  std::string* current = nullptr;  // the field being unfolded, when it is one we want
  while (!block.empty()) {
    std::size_t nl = block.find('\n');
    std::string_view line = block.substr(0, nl);
    block.remove_prefix(nl == std::string_view::npos ? block.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) break;  // end of the header block
    if (line.front() == ' ' || line.front() == '\t') {
      if (current) {
        *current += ' ';
        *current += trim(line);
      }
      continue;
    }
    current = nullptr;
    std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view field = line.substr(0, colon);
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t'))
      field.remove_suffix(1);
    if (iequals(field, name)) {
      out.emplace_back(trim(line.substr(colon + 1)));
      current = &out.back();
    }
  }
  return out;
}

std::vector<std::string> header_address_list(std::string_view value) {
  std::vector<std::string> out;
  std::string token;  // text of the current element outside comments/quotes
  std::string angle;  // content of <...> if the element has one
  bool have_angle = false;
  bool in_angle = false;
  bool in_quote = false;
  int comment = 0;
  auto finish = [&] {
    std::string addr = have_angle ? angle : std::string(trim(token));
    addr = std::string(trim(addr));
    if (!addr.empty() && addr.find('@') != std::string::npos) out.push_back(std::move(addr));
    token.clear();
    angle.clear();
    have_angle = false;
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (in_quote) {
      std::string& dst = in_angle ? angle : token;
      dst += c;
      if (c == '\\' && i + 1 < value.size()) {
        dst += value[++i];
      } else if (c == '"') {
        in_quote = false;
      }
      continue;
    }
    if (comment > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++comment;
      else if (c == ')')
        --comment;
      continue;
    }
    if (in_angle) {
      if (c == '>')
        in_angle = false;
      else {
        if (c == '"') in_quote = true;
        angle += c;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_quote = true;
        token += c;
        break;
      case '(':
        comment = 1;
        break;
      case '<':
        in_angle = true;
        have_angle = true;
        angle.clear();
        break;
      case ',':
      case ';':
        finish();
        break;
      case ':':  // "group:" — what came before is the group's name
        token.clear();
        break;
      default:
        token += c;
    }
  }
  finish();
  return out;
}

std::string received_value(const received_info& r) {
  std::string v = "from ";
  v += r.helo.empty() ? "unknown" : r.helo;
  if (!r.client_address.empty() || !r.client_name.empty()) {
    v += " (";
    v += r.client_name.empty() ? "unknown" : r.client_name;
    if (!r.client_address.empty()) {
      // An address literal (RFC 5321 §4.4 TCP-info, §4.1.3): IPv6 carries its tag.
      v += r.client_address.find(':') != std::string::npos ? " [IPv6:" : " [";
      v += r.client_address;
      v += "]";
    }
    v += ")";
  } else {
    v += " (local socket)";
  }
  v += " by ";
  v += r.hostname;
  v += " (Sluice) with ";
  v += r.protocol;
  if (!r.tls_version.empty()) {
    v += " (";
    v += r.tls_version;
    if (!r.tls_cipher.empty()) {
      v += " with cipher ";
      v += r.tls_cipher;
    }
    v += ")";
  }
  v += " id ";
  v += r.id;
  if (!r.for_recipient.empty()) {
    v += " for <";
    v += r.for_recipient;
    v += ">";
  }
  v += "; ";
  v += rfc5322_date(r.when);
  return v;
}

}  // namespace sluice::smtp
