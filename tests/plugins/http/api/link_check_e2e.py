#!/usr/bin/env python3
"""GET /api/v1/message/{ID}/link-check against the real sluice binary.

Usage: link_check_e2e.py HTTP_OPEN HTTP_GUARDED SMTP

HTTP_OPEN is an HTTP listener with link_check.allow_private set (so it may request this
script's loopback web server), HTTP_GUARDED one with the defaults (the SSRF guard on).
The message is sent with smtplib; the links point at a Python http.server on 127.0.0.1
that answers each path in its own way. Prints "all checks passed" and exits 0 on success.
"""
import http.server
import json
import smtplib
import sys
import threading
import time
import urllib.request
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

HTTP_OPEN, HTTP_GUARDED, SMTP = sys.argv[1], sys.argv[2], sys.argv[3]
failures = []
requests_seen = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        requests_seen.append((self.command, self.path, self.headers.get("User-Agent", "")))
        p = self.path
        if p == "/ok" or p.startswith("/ok?"):
            self.send_response(200)
        elif p == "/missing":
            self.send_response(404)
        elif p == "/gone":
            self.send_response(410)
        elif p == "/moved":
            self.send_response(301)
            self.send_header("Location", "/ok")
        elif p == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
        elif p == "/nohead":
            if self.command == "HEAD":
                self.send_response(405)
            else:
                self.send_response(200)
                body = b"x" * 200000  # longer than the client reads
        elif p == "/style.css" or p == "/img.png":
            self.send_response(200)
        else:
            self.send_response(500)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def do_HEAD(self):
        self.answer(b"hello")

    def do_GET(self):
        self.answer(b"hello")


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % server.server_address[1]
tls_base = "https://127.0.0.1:%d" % server.server_address[1]  # TLS to a plain server
closed = "http://127.0.0.1:1/x"  # nothing listens there

html = f"""<html><head><link rel="stylesheet" href="{base}/style.css">
<link rel="icon" href="{base}/icon-not-checked"></head><body>
<!-- <a href="{base}/in-a-comment">no</a> -->
<a href='{base}/ok?a=1&amp;b=2'>ok</a> <a HREF={base}/missing>missing</a>
<a href="{base}/moved">moved</a> <a href="mailto:someone@example.com">mail</a>
<img src="{base}/img.png"> <a href="  {base}/ok  ">same link, spaces</a>
<script>var s = '<a href="{base}/in-a-script">';</script>
<a href="{base}/nohead">no HEAD</a> <a href="{base}/loop">loop</a>
</body></html>"""
text = f"""Plain text part. Visit {base}/gone. Or <{base}/
ok?wrapped=1> wrapped over a line, and {base}/missing again, and
{closed} and {tls_base}/tls"""

msg = MIMEMultipart("alternative")
msg["From"] = "links@example.com"
msg["To"] = "dev@example.com"
msg["Subject"] = "link check " + str(time.time())
msg.attach(MIMEText(text, "plain"))
msg.attach(MIMEText(html, "html"))
host, port = SMTP.rsplit(":", 1)
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.sendmail("links@example.com", ["dev@example.com"], msg.as_string())


def get(http_ep, path, timeout=60):
    with urllib.request.urlopen("http://" + http_ep + path, timeout=timeout) as r:
        return r.status, json.loads(r.read())


status, listing = get(HTTP_OPEN, "/api/v1/messages")
check(status == 200 and listing["messages"], "the message is listed")
mid = listing["messages"][0]["ID"]
check(listing["messages"][0]["Read"] is False, "unread before the check")

# Without following redirects.
status, res = get(HTTP_OPEN, f"/api/v1/message/{mid}/link-check")
check(status == 200, "link-check answers 200")
links = {l["URL"]: (l["StatusCode"], l["Status"]) for l in res["Links"]}
print(json.dumps(res, indent=1))
expected_urls = [
    f"{base}/style.css",
    f"{base}/ok?a=1&b=2",
    f"{base}/missing",
    f"{base}/moved",
    f"{base}/img.png",
    f"{base}/ok",
    f"{base}/nohead",
    f"{base}/loop",
    f"{base}/gone",
    f"{base}/ok?wrapped=1",
    closed,
    f"{tls_base}/tls",
]
check([l["URL"] for l in res["Links"]] == expected_urls,
      "links in order of appearance, unique, HTML first: %r" % [l["URL"] for l in res["Links"]])
check(links.get(f"{base}/ok?a=1&b=2") == (200, "OK"), "entity-decoded href is requested")
check(links.get(f"{base}/missing") == (404, "Not Found"), "404 reported")
check(links.get(f"{base}/moved") == (301, "Moved Permanently"), "redirect not followed by default")
check(links.get(f"{base}/nohead") == (200, "OK"), "GET after a 405 to HEAD")
check(links.get(f"{base}/gone") == (410, "Gone"), "text link with its sentence's period dropped")
check(links.get(f"{base}/loop") == (302, "Found"), "loop not followed by default")
bad = links.get(closed, (None, ""))
check(bad[0] == 0 and "connect" in bad[1], "closed port: status 0 with a reason: %r" % (bad,))
bad = links.get(f"{tls_base}/tls", (None, ""))
check(bad[0] == 0 and "TLS" in bad[1], "TLS to a plain server: status 0, TLS failure: %r" % (bad,))
check(res["Errors"] == 4, "errors: 404, 410 and two without a response (a link twice counts "
      "once): %r" % res["Errors"])
check(not any(p.startswith("/in-a-") or p == "/icon-not-checked" for _, p, _ in requests_seen),
      "links in comments, scripts and non-stylesheet <link> are not requested")
check(all(ua.startswith("Sluice/") for _, _, ua in requests_seen), "User-Agent Sluice/<version>")

status, after = get(HTTP_OPEN, f"/api/v1/messages")
check(after["messages"][0]["Read"] is True, "the check marks the message read")

# Following redirects; results of the first call are cached, the follow=true ones are not.
seen_before = len(requests_seen)
status, res = get(HTTP_OPEN, f"/api/v1/message/{mid}/link-check?follow=true")
links = {l["URL"]: (l["StatusCode"], l["Status"]) for l in res["Links"]}
check(links.get(f"{base}/moved") == (200, "OK"), "follow=true follows 301 to /ok")
check(links.get(f"{base}/loop", (None, ""))[0] == 0 and "redirects" in links[f"{base}/loop"][1],
      "a redirect loop stops: %r" % (links.get(f"{base}/loop"),))
check(res["Errors"] == 5, "errors with follow (the loop too): %r" % res["Errors"])
seen_after_follow = len(requests_seen)
status, res2 = get(HTTP_OPEN, f"/api/v1/message/{mid}/link-check?follow=1")
check(len(requests_seen) == seen_after_follow, "a repeated check within 60 s is answered from the cache")
check(res2 == res, "the cached answer is the same")

# The guarded listener: loopback addresses are refused, nothing is requested.
seen_before = len(requests_seen)
status, res = get(HTTP_GUARDED, f"/api/v1/message/{mid}/link-check")
loop = [l for l in res["Links"] if l["URL"].startswith(base)]
check(loop and all(l["StatusCode"] == 451 and l["Status"].startswith("Blocked private/reserved address")
                   for l in loop), "loopback links blocked with 451: %r" % loop[:2])
check(len(requests_seen) == seen_before, "the guarded listener made no request to loopback")

# A message without links, and an unknown message.
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.sendmail("a@example.com", ["b@example.com"],
               "From: a@example.com\r\nTo: b@example.com\r\nSubject: no links\r\n\r\nnothing\r\n")
status, res = get(HTTP_OPEN, "/api/v1/message/latest/link-check")
check(res == {"Errors": 0, "Links": []}, "no links: %r" % res)
try:
    urllib.request.urlopen("http://" + HTTP_OPEN + "/api/v1/message/nope/link-check", timeout=30)
    check(False, "unknown message answers 404")
except urllib.error.HTTPError as e:
    check(e.code == 404, "unknown message answers 404")

server.shutdown()
if failures:
    print("%d check(s) failed" % len(failures))
    sys.exit(1)
print("all checks passed")
