// query.cpp — search query → SQL (see query.hpp).
#include "query.hpp"

namespace sluice::store {

sql_filter compile_filter(const search_query& q, const std::string& mailbox, const std::string&,
                          std::chrono::system_clock::time_point) {
  if (!q.empty()) throw search_error("search terms are not supported by this build yet");
  sql_filter f;
  f.where = "m.mailbox = ?";
  f.binds.emplace_back(mailbox);
  return f;
}

int bind_filter(statement& s, const sql_filter& f, int first) {
  int i = first;
  for (const auto& b : f.binds) {
    if (const auto* n = std::get_if<std::int64_t>(&b)) {
      s.bind(i++, *n);
    } else {
      s.bind(i++, std::get<std::string>(b));
    }
  }
  return i;
}

void register_functions(database&) {}

}  // namespace sluice::store
