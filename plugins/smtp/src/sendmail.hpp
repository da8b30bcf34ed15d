// plugins/smtp/src/sendmail.hpp — `sluice sendmail`, a sendmail-compatible submission client.
//
// The smtp plugin registers sendmail_main as the `sendmail` command: the kernel runs it for
// `sluice sendmail ...` and when the binary is invoked through a symlink named sendmail
// (args exclude the program name). It reads one message on stdin and submits it over SMTP
// to -S host:port, -S [v6addr]:port or -S unix:/path (default SLUICE_SENDMAIL_SERVER, else
// 127.0.0.1:1025). What programs use is supported: -t (recipients from To/Cc/Bcc, plus any
// given as arguments, as Postfix does; Bcc is removed), -f/-r sender, -F full name, -i/-oi,
// -bs (relay an SMTP session between stdin/stdout and the server), -bm, -v, "--"; other
// sendmail options (-oem, -odi, -B, -N, -R, -V, -O, -X, -C, -h, -L, -G, -U, -n, -m, -Am…)
// are accepted and ignored. It adds From: and Date: when missing (the server adds
// Message-ID), converts line ends to CRLF and dot-stuffs.
//
// Blocking, single-threaded, for a process of its own: every socket read and write has a
// timeout (SO_RCVTIMEO/SO_SNDTIMEO, 60 s; -bs idles up to 300 s), SIGPIPE is ignored.
// Failure: a "sendmail: ..." line on stderr and a sysexits(3) status: 64 usage, 65 bad
// message, 67 recipient refused (5xx), 68 unknown host, 69 other 5xx, 70 internal error,
// 74 stdin error, 75 connection failure / timeout / 4xx, 76 malformed server reply.
#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::smtp {

int sendmail_main(std::span<const std::string> args);

// sysexits(3), spelled out so this file needs no BSD header.
namespace sysexits {
inline constexpr int ok = 0;
inline constexpr int usage = 64;
inline constexpr int dataerr = 65;
inline constexpr int nouser = 67;
inline constexpr int nohost = 68;
inline constexpr int unavailable = 69;
inline constexpr int software = 70;
inline constexpr int ioerr = 74;
inline constexpr int tempfail = 75;
inline constexpr int protocol = 76;
}  // namespace sysexits

struct sendmail_options {
  std::string server;                    // "host:port", "[v6]:port", "unix:/path"
  std::optional<std::string> sender;     // -f/-r; "" is the null sender <>
  std::optional<std::string> full_name;  // -F
  bool recipients_from_headers = false;  // -t
  bool ignore_dots = false;              // -i, -oi: a lone "." does not end input
  bool smtp_mode = false;                // -bs
  bool verbose = false;                  // -v: SMTP transcript on stderr
  bool help = false;                     // --help
  bool version = false;                  // --version
  std::vector<std::string> recipients;   // from the arguments
  std::chrono::seconds timeout{60};
};

// Parses the command line (without the program name). `default_server` applies when no
// -S is given. False with `error` set on misuse (unknown option, missing argument,
// unsupported mode such as -bp or -q).
bool parse_sendmail_args(std::span<const std::string> args, std::string_view default_server,
                         sendmail_options& out, std::string& error);

// Addresses of an RFC 5322 address list ("A <a@x>, \"B, C\" <b@x>, c@x (c), grp: d@x;"),
// comments removed and angle brackets stripped, in order. Never throws on odd input: what
// cannot be understood is returned as trimmed text for the server to judge.
std::vector<std::string> parse_address_list(std::string_view value);

// The header section after sendmail's edits, and the recipients found in it.
struct prepared_headers {
  std::string text;                     // CRLF-terminated fields, without the blank line
  std::vector<std::string> recipients;  // To/Cc/Bcc addresses when extract_recipients
};

// `lines`: the header fields as read (one element per physical line, no line ends,
// continuation lines included). Removes Bcc (its addresses are recipients when
// extract_recipients); adds "From:" (from envelope_sender and full_name, which a null sender
// ignores), "Date:" (date_value) and "Message-ID:" (message_id_value, when not empty) when
// absent.
prepared_headers prepare_headers(const std::vector<std::string>& lines, bool extract_recipients,
                                 std::string_view envelope_sender,
                                 const std::optional<std::string>& full_name,
                                 std::string_view date_value,
                                 std::string_view message_id_value = {});

// Runs one submission (or, with smtp_mode, the -bs relay) reading the message from in_fd
// and (for -bs) writing to out_fd; diagnostics go to stderr. Returns a sysexits status.
int run_sendmail(const sendmail_options& opts, int in_fd, int out_fd);

}  // namespace sluice::smtp
