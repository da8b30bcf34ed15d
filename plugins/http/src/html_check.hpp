// html_check.hpp — GET /api/v1/message/{ID}/html-check: Mailpit's HTML check.
//
// Which HTML and CSS features a message's HTML uses, and how well email clients support
// each, from the caniemail.com data set (the npm package `caniemail`, installed by
// scripts/install-deps.sh as <prefix>/share/sluice/caniemail.json). The answer is Mailpit's
// HTMLCheckResponse: {"Platforms": {platform: [client families]}, "Total": {"Nodes",
// "Tests", "Supported", "Partial", "Unsupported"}, "Warnings": [{"Slug", "Title",
// "Description", "URL", "Category", "Tags", "Keywords", "Results": [{"Name", "Platform",
// "Family", "Version", "Support", "NoteNumber"}], "NotesByNumber", "Score": {"Found",
// "Supported", "Partial", "Unsupported"}}]}, warnings worst first.
//
// How features are found (the same tests as Mailpit's, their evident intent where Mailpit's
// selector cannot match; README "HTML check" lists the differences):
// - HTML: elements and attributes (<svg>, <form>, input types, [srcset], …), <script>, and
//   the image formats of <img src> by extension (query and fragment ignored) or data: URL;
// - CSS properties and values: each element's own style attribute merged with the rules of
//   the <style> elements whose selectors match it (as Mailpit merges them with premailer:
//   type, universal, #id, .class, [attr] and [attr=value] compounds joined by descendant or
//   child combinators; other selectors, and rules in at-rules, stay in the style sheet),
//   counted per element, plus the HTML attributes that do the same (bgcolor, width, …);
// - CSS units and keywords in those merged declarations (rem, vw, initial, …);
// - at-rules, media features, pseudo-classes and pseudo-elements in the <style> text.
// Linked style sheets are not downloaded (Mailpit does, unless --block-remote-css-and-fonts).
// The score of a feature counts the clients' results: "y…" supported, "n…" not, "a…"
// partially; "u" (unknown) results are left out (Mailpit counts them as partial).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

namespace sluice::http {

class html_check_data;

// The caniemail data, indexed for checks. Throws std::runtime_error saying what is wrong.
std::shared_ptr<const html_check_data> parse_html_check_data(std::string_view json);
std::shared_ptr<const html_check_data> load_html_check_data(const std::filesystem::path& file);

// The HTMLCheckResponse for `html` (UTF-8). Linear in the size of the HTML, except the
// merging of style rules, which stops after kMaxStyleMatches selector tests and merged
// declarations (each declaration's value is examined once, however many elements it styles).
boost::json::object run_html_check(const html_check_data& data, std::string_view html);
inline constexpr std::size_t kMaxStyleMatches = 4'000'000;

// caniemail's descriptions and notes are Markdown; the response carries HTML, as Mailpit's
// does: `code`, **strong**, *em* / _em_ and [text](url) (target="_blank"); the rest escaped.
std::string markdown_to_html(std::string_view md);

}  // namespace sluice::http
