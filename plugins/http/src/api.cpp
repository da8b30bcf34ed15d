// api.cpp — add_api_routes(): every route of the Mailpit-compatible REST API, the message
// views and the wait endpoint. Called once at startup on the thread that builds the
// listener; it also initialises GMime (used by POST /api/v1/send) there, before any I/O
// thread could race on it.
#include <mutex>

#include <gmime/gmime.h>

#include "api.hpp"

namespace sluice::http {

void add_api_routes(router& r) {
  // GMime keeps a global init counter that is not atomic; initialise it once here, at
  // startup, so that no two I/O threads race on it. Another plugin's g_mime_init() only
  // increments the counter.
  static std::once_flag gmime_once;
  std::call_once(gmime_once, [] { g_mime_init(); });

  api::add_message_routes(r);
  api::add_misc_routes(r);
  api::add_send_routes(r);
  api::add_view_routes(r);
  api::add_wait_routes(r);
}

}  // namespace sluice::http
