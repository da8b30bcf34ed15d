// plugins/http/src/api_placeholder.cpp — TEMPORARY: an empty add_api_routes() so the core
// links before the API handlers (branch httpapi) are merged. Deleted in the merge commit.
#include "routing.hpp"

namespace sluice::http {
void add_api_routes(router&) {}
}  // namespace sluice::http
