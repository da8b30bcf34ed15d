// view.hpp — GET /view/{ID}.html, /view/{ID}.txt and /view/latest: a message's bodies
// served as documents (for iframes, screenshots, PDF printers; Mailpit #157, #320).
//
// The HTML is the sender's: it is served with a Content-Security-Policy that allows no
// script from the message (inline or remote, including event-handler attributes). With
// embed=1 the only script allowed is ours, the height reporter, admitted by its SHA-256
// hash; it posts {"messageHeight": <px>} to the parent window on load and on resize.
//
// The rewriting functions are pure and thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "sluice/mailbox.hpp"

namespace sluice::http {

// Rewrites cid: references (in attribute values and CSS url()) that name a part of m to
// "<base>api/v1/message/<ID>/part/<PartID>". References to unknown Content-IDs are kept.
std::string rewrite_cid_references(std::string_view html, const stored_message& m,
                                   const std::string& base);

// For embed=1: every <a> gets target="_blank" rel="noreferrer noopener" (replacing any
// target or rel it had), the height script is added before </body>, and a fragment is
// wrapped into a full document.
std::string embed_html(std::string_view html);

// The Content-Security-Policy of a view (embed adds the height script's hash).
std::string view_csp(bool embed, bool block_remote_css_and_fonts = false);

}  // namespace sluice::http
