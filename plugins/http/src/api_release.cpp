// api_release.cpp — POST /api/v1/message/{ID}/release (Mailpit-compatible): relays a stored
// message to the addresses in {"To": [...]} through the listener's `release_pipeline`.
//
// The message goes out as the client sees it (stored bytes with the recorded header
// edits), without Bcc and Return-Path (the receiving MTA adds its own), with a new
// Message-ID and Date as Mailpit does. The envelope sender is `release_sender`, else the
// original envelope sender, else Sender, else From. The pipeline's verdict is the answer:
// 200 "ok" once the message was handed over (inline relay) or queued (deferred relay);
// a reject is 400 and a tempfail 503, both with the upstream's reply as the body.
//
// Threading: a handler like the others (routing.hpp); the store and the pipeline run
// their work asynchronously and complete on the connection's strand.
#include <unistd.h>

#include <chrono>

#include "api.hpp"
#include "api_util.hpp"
#include "send.hpp"
#include "sluice/message.hpp"
#include "sluice/text.hpp"

namespace sluice::http::api {

namespace {

std::string local_host() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "localhost";
  return buf;
}

std::string header_value(const stored_message& m, std::string_view name) {
  for (const auto& [k, v] : m.headers)
    if (iequals(k, name)) return v;
  return {};
}

// The addr-spec of a header like "Name <a@b>" or "a@b" (the first address only).
std::string first_address(std::string v) {
  auto lt = v.find('<');
  if (lt != std::string::npos) {
    auto gt = v.find('>', lt);
    if (gt != std::string::npos)
      return std::string(trim(std::string_view(v).substr(lt + 1, gt - lt - 1)));
  }
  auto comma = v.find(',');
  if (comma != std::string::npos) v.resize(comma);
  return std::string(trim(v));
}

std::string reply_text(const submit_result& r, std::string_view fallback) {
  if (r.reply.text.empty()) return std::string(fallback);
  std::string s = std::to_string(r.reply.code);
  if (!r.reply.enhanced.empty()) s += " " + r.reply.enhanced;
  return s + " " + r.reply.text;
}

}  // namespace

boost::asio::awaitable<response> release_stored(request_context& ctx, std::string id) {
  const auto& env = ctx.env;
  auto stored = co_await env.store->get(ctx.mailbox, id);
  if (!stored) co_return not_found(ctx.req);
  if (!env.pipelines || env.release_pipeline.empty()) {
    co_return bad_request(ctx.req, "message relay is not configured");
  }
  auto body = parse_json_body(ctx.req);
  if (!body) co_return bad_request(ctx.req, body.error);
  if (!body.value.is_object()) co_return bad_request(ctx.req, "expected a JSON object");
  std::vector<std::string> to;
  std::string error;
  if (!read_string_array(body.value.get_object(), "To", to, error))
    co_return bad_request(ctx.req, error);
  if (to.empty()) co_return bad_request(ctx.req, "No valid addresses found");
  if (to.size() > 1000) co_return bad_request(ctx.req, "too many addresses (at most 1000)");
  for (auto& a : to) {
    a = std::string(trim(a));
    const std::string as_sent = a;
    // Mailpit parses each entry as an RFC 5322 address: "Name <a@b>" and "<a@b>" name a@b.
    // The display name is a phrase or a quoted string: no control character, no '<', '>'
    // and no unquoted '@' (so "x\r\nRCPT TO:<y@b>" stays an invalid address).
    if (a.ends_with('>')) {
      if (auto lt = a.rfind('<'); lt != std::string::npos) {
        std::string_view name = trim(std::string_view(a).substr(0, lt));
        const bool quoted = name.size() >= 2 && name.front() == '"' && name.back() == '"';
        bool ok = true;
        for (unsigned char c : name) {
          if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || (c == '@' && !quoted)) ok = false;
        }
        if (ok) a = std::string(trim(std::string_view(a).substr(lt + 1, a.size() - lt - 2)));
      }
    }
    if (!valid_email(a)) {
      std::string shown;  // the answer echoes no control characters
      for (unsigned char c : as_sent)
        shown += c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c);
      co_return bad_request(ctx.req, "Invalid email address: " + shown);
    }
  }
  auto raw = co_await env.store->raw(ctx.mailbox, id, true);
  if (!raw) co_return not_found(ctx.req);

  std::string sender = env.release_sender;
  if (sender.empty()) sender = stored->envelope_from;
  if (sender.empty()) sender = first_address(header_value(*stored, "Sender"));
  if (sender.empty() && stored->from) sender = stored->from->address;
  if (!sender.empty() && !valid_email(sender)) {
    co_return bad_request(
        ctx.req, "the message has no usable sender address (" + sender + "); set release_sender");
  }

  auto msg = std::make_shared<message>();
  msg->id = make_message_id();
  const std::int64_t now = now_ms();
  auto& e = msg->envelope;
  e.protocol = "HTTP";
  e.listener = "release";
  e.mail_from = sender;
  for (auto& a : to)
    e.recipients.push_back(recipient{a, {}});
  e.auth_user = ctx.user;
  e.received_at = std::chrono::system_clock::time_point(std::chrono::milliseconds(now));
  msg->raw = message_body::from_string(std::move(*raw));
  msg->remove_header("Bcc");
  msg->remove_header("Return-Path");
  if (!env.release_preserve_message_ids) {
    msg->set_header("Message-ID", "<" + msg->id + "@" + local_host() + ">");
    msg->set_header("Date", rfc5322_date(e.received_at));
  }
  msg->attributes["release"] = boost::json::object{
      {"mailbox", ctx.mailbox}, {"id", id}, {"to", boost::json::array(to.begin(), to.end())}};

  submit_result res = co_await env.pipelines->submit(env.release_pipeline, msg);
  env.log.info("release", {{"id", id},
                           {"release_id", msg->id},
                           {"pipeline", env.release_pipeline},
                           {"result", std::string(to_string(res.kind))},
                           {"code", res.reply.code}});
  switch (res.kind) {
    case verdict_kind::reject:
      co_return text_response(ctx.req, bhttp::status::bad_request,
                              reply_text(res, "message rejected"));
    case verdict_kind::tempfail:
      co_return text_response(ctx.req, bhttp::status::service_unavailable,
                              reply_text(res, "temporary failure, try again later"));
    default:
      co_return ok_response(ctx.req);
  }
}

}  // namespace sluice::http::api
