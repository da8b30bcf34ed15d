// verdict.cpp — names of verdicts, for logs and metrics labels.
#include "sluice/verdict.hpp"

namespace sluice {

std::string_view to_string(verdict_kind k) noexcept {
  switch (k) {
    case verdict_kind::continue_:
      return "continue";
    case verdict_kind::accept:
      return "accept";
    case verdict_kind::reject:
      return "reject";
    case verdict_kind::tempfail:
      return "tempfail";
    case verdict_kind::discard:
      return "discard";
    case verdict_kind::quarantine:
      return "quarantine";
  }
  return "unknown";
}

}  // namespace sluice
