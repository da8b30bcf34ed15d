// api_misc.cpp — tags, chaos, application information, web UI configuration, the mailbox
// list and the OpenAPI document.
//
// Tags and counts come from the mailbox service; chaos triggers from the chaos service
// (absent: chaos disabled, as Mailpit without --enable-chaos); runtime counters from the
// metrics service's Prometheus exposition (summed over listeners). The OpenAPI document
// is embedded at build time (openapi/openapi.json, see openapi/openapi.cmake) and parsed
// once. Handlers never throw for bad input.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>

#include "api.hpp"
#include "api_util.hpp"
#include "sluice/text.hpp"

#if __has_include("sluice_http_openapi.hpp")
#include "sluice_http_openapi.hpp"
#define SLUICE_HTTP_HAVE_OPENAPI 1
#endif

namespace sluice::http::api {
namespace {

using bhttp::verb;
using boost::asio::awaitable;

// ---- tags ----

// GET /api/v1/tags
awaitable<response> get_tags(request_context& ctx) {
  auto tags = co_await ctx.env.store->tags(ctx.mailbox);
  json::array a;
  for (auto& t : tags)
    a.emplace_back(t);
  co_return json_response(ctx.req, a);
}

// PUT /api/v1/tags: {"IDs": [...], "Tags": [...]} replaces the tags of those messages.
awaitable<response> set_tags(request_context& ctx) {
  auto body = parse_json_body(ctx.req);
  if (body.too_large) {
    co_return text_response(ctx.req, bhttp::status::payload_too_large, body.error);
  }
  if (!body) co_return bad_request(ctx.req, body.error);
  std::vector<std::string> ids, tags;
  std::string error;
  const auto& o = body.value.get_object();
  if (!read_string_array(o, "IDs", ids, error) || !read_string_array(o, "Tags", tags, error)) {
    co_return bad_request(ctx.req, error);
  }
  if (tags.size() > 1000) co_return bad_request(ctx.req, "too many tags (at most 1000)");
  // Mailpit: no IDs is not an error, nothing changes.
  if (!ids.empty()) co_await ctx.env.store->set_tags(ctx.mailbox, std::move(ids), std::move(tags));
  co_return ok_response(ctx.req);
}

// PUT /api/v1/tags/{Tag}: {"Name": "new name"} renames a tag.
awaitable<response> rename_tag(request_context& ctx) {
  if (ctx.params.empty() || trim(ctx.params[0]).empty()) {
    co_return bad_request(ctx.req, "Tag name is required");
  }
  auto body = parse_json_body(ctx.req);
  if (body.too_large) {
    co_return text_response(ctx.req, bhttp::status::payload_too_large, body.error);
  }
  if (!body) co_return bad_request(ctx.req, body.error);
  std::string name, error;
  if (!read_string(body.value.get_object(), "Name", name, error)) {
    co_return bad_request(ctx.req, error);
  }
  if (trim(name).empty()) co_return bad_request(ctx.req, "Invalid tag name");
  co_await ctx.env.store->rename_tag(ctx.mailbox, ctx.params[0], name);
  co_return ok_response(ctx.req);
}

// DELETE /api/v1/tags/{Tag}: removes the tag from every message (messages are kept).
awaitable<response> delete_tag(request_context& ctx) {
  if (ctx.params.empty() || trim(ctx.params[0]).empty()) {
    co_return bad_request(ctx.req, "Tag name is required");
  }
  co_await ctx.env.store->delete_tag(ctx.mailbox, ctx.params[0]);
  co_return ok_response(ctx.req);
}

// ---- chaos ----

json::object trigger_json(const chaos_trigger& t) {
  return json::object{{"ErrorCode", t.error_code}, {"Probability", t.probability}};
}

json::object triggers_json(const chaos_triggers& t) {
  return json::object{{"Sender", trigger_json(t.sender)},
                      {"Recipient", trigger_json(t.recipient)},
                      {"Authentication", trigger_json(t.authentication)}};
}

// An integer JSON member (Go decodes into int: a fraction or a string is an error).
bool read_int(const json::object& o, std::string_view name, std::string_view where, int& out,
              std::string& error) {
  const json::value* v = go_field(o, name);
  if (!v || v->is_null()) return true;
  if (v->is_int64() || v->is_uint64()) {
    const double d = v->to_number<double>();
    if (d < -1e9 || d > 1e9) {
      error = std::string(where) + " " + std::string(name) + " is out of range";
      return false;
    }
    out = static_cast<int>(v->to_number<std::int64_t>());
    return true;
  }
  if (v->is_double() && std::floor(v->get_double()) == v->get_double() &&
      std::fabs(v->get_double()) < 1e9) {
    out = static_cast<int>(v->get_double());
    return true;
  }
  error = std::string(where) + " " + std::string(name) + " must be an integer";
  return false;
}

// One trigger from the PUT body into `out`, which holds the trigger's default (451, or 535
// for Authentication). Omitted: 0 % with the default code (Mailpit resets triggers that
// are not sent), as is an ErrorCode of 0.
bool read_trigger(const json::object& o, std::string_view name, chaos_trigger& out,
                  std::string& error) {
  const int default_code = out.error_code;
  const json::value* v = go_field(o, name);
  if (!v || v->is_null()) return true;
  if (!v->is_object()) {
    error = std::string(name) + " must be an object with ErrorCode and Probability";
    return false;
  }
  const auto& t = v->get_object();
  if (!read_int(t, "ErrorCode", name, out.error_code, error) ||
      !read_int(t, "Probability", name, out.probability, error)) {
    return false;
  }
  if (out.error_code == 0) out.error_code = default_code;
  if (out.error_code < 400 || out.error_code > 599) {
    error = std::string(name) + " error code must be between 400 and 599";
    return false;
  }
  if (out.probability < 0 || out.probability > 100) {
    error = std::string(name) + " probability must be between 0 and 100";
    return false;
  }
  return true;
}

// GET /api/v1/chaos
awaitable<response> get_chaos(request_context& ctx) {
  if (!ctx.env.chaos) co_return bad_request(ctx.req, "Chaos is not enabled");
  co_return json_response(ctx.req, triggers_json(ctx.env.chaos->get()));
}

// PUT /api/v1/chaos: ChaosTriggers; answers the triggers now in force.
awaitable<response> set_chaos(request_context& ctx) {
  if (!ctx.env.chaos) co_return bad_request(ctx.req, "Chaos is not enabled");
  auto body = parse_json_body(ctx.req);
  if (body.too_large) {
    co_return text_response(ctx.req, bhttp::status::payload_too_large, body.error);
  }
  if (!body) co_return bad_request(ctx.req, body.error);
  const auto& o = body.value.get_object();
  chaos_triggers t;
  std::string error;
  if (!read_trigger(o, "Sender", t.sender, error) ||
      !read_trigger(o, "Recipient", t.recipient, error) ||
      !read_trigger(o, "Authentication", t.authentication, error)) {
    co_return bad_request(ctx.req, error);
  }
  try {
    ctx.env.chaos->set(t);
  } catch (const std::invalid_argument& e) {
    co_return bad_request(ctx.req, e.what());
  }
  co_return json_response(ctx.req, triggers_json(ctx.env.chaos->get()));
}

// ---- info, webui, mailboxes ----

// Resident set size of this process in bytes (Linux /proc), 0 when unknown.
std::uint64_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  std::uint64_t size = 0, resident = 0;
  if (!(f >> size >> resident)) return 0;
  const long page = sysconf(_SC_PAGESIZE);
  return resident * static_cast<std::uint64_t>(page > 0 ? page : 4096);
}

std::uint64_t counter_total(const std::string& text, std::string_view name,
                            std::string_view label = {}, std::string_view value = {}) {
  const double v = sum_prometheus(text, name, label, value);
  return v > 0 ? static_cast<std::uint64_t>(v + 0.5) : 0;
}

// GET /api/v1/info: AppInformation.
awaitable<response> get_info(request_context& ctx) {
  auto stats = co_await ctx.env.store->stats(ctx.mailbox);
  auto info = co_await ctx.env.store->info();
  const std::string prom = ctx.env.metrics ? ctx.env.metrics->render_prometheus() : std::string();
  json::object tags;
  for (auto& [name, n] : stats.tags)
    tags[name] = n;
  const std::int64_t uptime = ctx.env.started_ms > 0 ? (now_ms() - ctx.env.started_ms) / 1000 : 0;
  json::object rs;
  rs["Uptime"] = uptime > 0 ? uptime : 0;
  rs["Memory"] = resident_bytes();
  rs["MessagesDeleted"] = info.deleted_total;
  rs["SMTPAccepted"] = counter_total(prom, "sluice_smtp_messages_total", "result", "accepted");
  rs["SMTPAcceptedSize"] = counter_total(prom, "sluice_smtp_accepted_bytes_total");
  rs["SMTPRejected"] = counter_total(prom, "sluice_smtp_messages_total", "result", "rejected") +
                       counter_total(prom, "sluice_smtp_messages_total", "result", "tempfail") +
                       counter_total(prom, "sluice_smtp_messages_total", "result", "too_big");
  rs["SMTPIgnored"] = counter_total(prom, "sluice_smtp_messages_total", "result", "discarded");
  json::object o;
  o["Version"] = ctx.env.version;
  // Sluice does not look for releases (Mailpit's --disable-version-check wording).
  o["LatestVersion"] = "disabled";
  o["Database"] = info.location;
  o["DatabaseSize"] = info.size_bytes;
  o["Messages"] = stats.total;
  o["Unread"] = stats.unread;
  o["Tags"] = std::move(tags);
  o["RuntimeStats"] = std::move(rs);
  co_return json_response(ctx.req, o);
}

// GET /api/v1/webui: WebUIConfiguration.
awaitable<response> get_webui(request_context& ctx) {
  json::object relay;
  // Release goes through a pipeline (api_release.cpp); its name stands where Mailpit shows
  // the relay's SMTP server, and the sender override where it shows the return path.
  relay["Enabled"] = ctx.env.pipelines != nullptr;
  relay["SMTPServer"] = ctx.env.pipelines ? "pipeline " + ctx.env.release_pipeline : "";
  relay["ReturnPath"] = ctx.env.release_sender;
  relay["AllowedRecipients"] = "";
  relay["BlockedRecipients"] = "";
  relay["OverrideFrom"] = "";
  relay["PreserveMessageIDs"] = false;
  relay["RecipientAllowlist"] = "";  // deprecated in Mailpit, still sent
  json::object o;
  o["Label"] = ctx.env.label;
  o["MessageRelay"] = std::move(relay);
  o["SpamAssassin"] = false;
  o["ChaosEnabled"] = ctx.env.chaos != nullptr;
  o["DuplicatesIgnored"] = false;
  o["HideDeleteAllButton"] = false;
  co_return json_response(ctx.req, o);
}

// GET /api/v1/mailboxes (Sluice): [{"Name", "Total", "Unread", "Default"}…], sorted.
awaitable<response> get_mailboxes(request_context& ctx) {
  auto names = ctx.env.store->mailboxes();
  json::array a;
  for (auto& name : names) {
    auto s = co_await ctx.env.store->stats(name);
    a.push_back(json::object{{"Name", name},
                             {"Total", s.total},
                             {"Unread", s.unread},
                             {"Default", name == ctx.env.default_mailbox}});
  }
  co_return json_response(ctx.req, a);
}

// GET /api/v1/swagger.json
awaitable<response> get_swagger(request_context& ctx) {
  co_return json_response(ctx.req, openapi_document(ctx.base));
}

}  // namespace

double sum_prometheus(std::string_view text, std::string_view name, std::string_view label,
                      std::string_view value) {
  double sum = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#' || !line.starts_with(name)) continue;
    std::string_view rest = line.substr(name.size());
    std::string_view labels;
    if (!rest.empty() && rest[0] == '{') {
      // Label values are escaped (\" and \\), so the set ends at the first '}' that is
      // outside a quoted value.
      bool quoted = false;
      std::size_t i = 1;
      for (; i < rest.size(); ++i) {
        if (quoted && rest[i] == '\\') {
          ++i;
        } else if (rest[i] == '"') {
          quoted = !quoted;
        } else if (!quoted && rest[i] == '}') {
          break;
        }
      }
      if (i >= rest.size()) continue;
      labels = rest.substr(1, i - 1);
      rest = rest.substr(i + 1);
    }
    if (rest.empty() || rest[0] != ' ') continue;  // another metric with this prefix
    if (!label.empty()) {
      const std::string want = std::string(label) + "=\"" + std::string(value) + "\"";
      // Match whole label pairs: at the start or after a comma.
      bool found = false;
      for (std::size_t at = labels.find(want); at != std::string_view::npos;
           at = labels.find(want, at + 1)) {
        if (at == 0 || labels[at - 1] == ',') {
          found = true;
          break;
        }
      }
      if (!found) continue;
    }
    const std::string num(trim(rest));
    char* end = nullptr;
    const double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() && std::isfinite(v)) sum += v;
  }
  return sum;
}

json::value openapi_document(const std::string& base) {
#ifdef SLUICE_HTTP_HAVE_OPENAPI
  // Parsed once; the embedded document is checked by the build (a JSON parse error here
  // is a build defect, reported as a 500 by the core through the exception).
  static const json::value doc = json::parse(std::string_view(
      reinterpret_cast<const char*>(embedded::openapi_json), embedded::openapi_json_size));
  json::value copy = doc;
  std::string url = base;
  if (url.size() > 1 && url.back() == '/') url.pop_back();
  if (url.empty()) url = "/";
  copy.as_object()["servers"] =
      json::array{json::object{{"url", url}, {"description", "This Sluice mailbox"}}};
  return copy;
#else
  throw std::runtime_error(
      "the OpenAPI document was not embedded at build time (see plugins/http/openapi/README)");
#endif
}

void add_misc_routes(router& r) {
  r.add(verb::get, "/api/v1/tags", guarded(get_tags));
  r.add(verb::put, "/api/v1/tags", guarded(set_tags));
  r.add(verb::put, "/api/v1/tags/{Tag}", guarded(rename_tag));
  r.add(verb::delete_, "/api/v1/tags/{Tag}", guarded(delete_tag));
  r.add(verb::get, "/api/v1/chaos", guarded(get_chaos));
  r.add(verb::put, "/api/v1/chaos", guarded(set_chaos));
  r.add(verb::get, "/api/v1/info", guarded(get_info));
  r.add(verb::get, "/api/v1/webui", guarded(get_webui));
  r.add(verb::get, "/api/v1/mailboxes", guarded(get_mailboxes));
  r.add(verb::get, "/api/v1/swagger.json", guarded(get_swagger));
}

}  // namespace sluice::http::api
