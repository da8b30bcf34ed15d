#!/usr/bin/env python3
"""api_e2e.py — the HTTP API of a running sluice, driven with Python's stdlib only.

Usage: api_e2e.py <http host:port> <smtp host:port> <smtp host:port for mailbox "other">

Mail goes in over SMTP (smtplib) and POST /api/v1/send, and is read back through the
Mailpit-compatible API: key sets, texts and status codes as Mailpit's, parts and
thumbnails, views, tags, search, wait, mailbox-prefixed paths. Exits non-zero with a
message on the first failed check. Every network call has a timeout.
"""
import json
import smtplib
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from email.message import EmailMessage

HTTP, SMTP, SMTP_OTHER = sys.argv[1], sys.argv[2], sys.argv[3]
BASE = "http://" + HTTP

SUMMARY = {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject",
           "Created", "Username", "Tags", "Size", "Attachments", "Snippet"}
LIST = {"total", "unread", "count", "messages_count", "messages_unread", "start", "tags",
        "messages"}
MESSAGE = {"ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "ReturnPath", "Subject",
           "ListUnsubscribe", "Date", "Tags", "Username", "Text", "HTML", "Size", "Inline",
           "Attachments"}
ATTACHMENT = {"PartID", "FileName", "ContentType", "ContentID", "Size", "Checksums"}


def check(cond, what):
    if not cond:
        raise SystemExit("FAILED: " + what)


def call(method, path, body=None, timeout=30, base=BASE):
    data = None
    headers = {}
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def get_json(path, status=200, **kw):
    s, h, b = call("GET", path, **kw)
    check(s == status, f"GET {path}: status {s} != {status}: {b[:300]!r}")
    return json.loads(b)


def png(width, height):
    """A real RGB PNG (zlib-compressed red pixels)."""
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xffffffff)
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_size(data):
    """Width and height from a JPEG's SOF marker."""
    check(data[:2] == b"\xff\xd8", "not a JPEG")
    i = 2
    while i + 9 < len(data):
        check(data[i] == 0xFF, "bad JPEG marker")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    raise SystemExit("FAILED: no SOF in JPEG")


def smtp_send(endpoint, msg):
    host, port = endpoint.rsplit(":", 1)
    with smtplib.SMTP(host, int(port), timeout=30) as s:
        s.send_message(msg)


IMAGE = png(360, 120)

# ---- mail over SMTP, read back ----
m = EmailMessage()
m["From"] = "Alice <alice@example.org>"
m["To"] = "Bob <bob@example.org>"
m["Subject"] = "Quarterly report"
m.set_content("See the report.")
m.add_alternative('<p>See <b>the report</b> <img src="cid:chart@x"> '
                  '<a href="https://example.org/r">link</a></p>', subtype="html")
m.get_payload()[1].add_related(IMAGE, "image", "png", cid="<chart@x>", filename="chart.png")
m.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="data.csv")
smtp_send(SMTP, m)

lst = get_json("/api/v1/messages")
check(set(lst) == LIST, f"list keys {set(lst)}")
check(lst["total"] == 1 and lst["unread"] == 1 and len(lst["messages"]) == 1, f"list {lst}")
summ = lst["messages"][0]
check(set(summ) == SUMMARY, f"summary keys {set(summ)}")
mid = summ["ID"]
check(summ["Subject"] == "Quarterly report" and summ["Attachments"] == 1, f"summary {summ}")

msg = get_json("/api/v1/message/" + mid)
check(set(msg) == MESSAGE, f"message keys {set(msg)}")
check(msg["Text"].strip() == "See the report.", "text body")
check(len(msg["Inline"]) == 1 and len(msg["Attachments"]) == 1, f"parts {msg['Inline']} {msg['Attachments']}")
inline, att = msg["Inline"][0], msg["Attachments"][0]
check(set(inline) == ATTACHMENT and set(att) == ATTACHMENT, "attachment keys")
check(inline["ContentID"] == "chart@x" and inline["ContentType"] == "image/png", f"inline {inline}")
check(att["FileName"] == "data.csv", f"attachment {att}")
check(get_json("/api/v1/messages")["unread"] == 0, "GET message marks it read")
check(get_json("/api/v1/message/latest")["ID"] == mid, "latest")

hdrs = get_json(f"/api/v1/message/{mid}/headers")
check("Message-Id" in hdrs and "Mime-Version" in hdrs and "Content-Type" in hdrs, f"header keys {list(hdrs)}")
check(all(isinstance(v, list) for v in hdrs.values()), "header values are arrays")

s, h, raw = call("GET", f"/api/v1/message/{mid}/raw?dl=1")
check(s == 200 and h.get("Content-Disposition") == f'attachment; filename="{mid}.eml"', f"raw {s} {h}")
check(b"Subject: Quarterly report" in raw, "raw source")

s, h, part = call("GET", f"/api/v1/message/{mid}/part/{inline['PartID']}")
check(s == 200 and part == IMAGE and h.get("Content-Type") == "image/png", f"part {s} {h}")
check(h.get("Content-Disposition", "").startswith("inline; filename="), f"part disposition {h}")
s, h, thumb = call("GET", f"/api/v1/message/{mid}/part/{inline['PartID']}/thumb")
check(s == 200 and h.get("Content-Type") == "image/jpeg", f"thumb {s} {h}")
check(jpeg_size(thumb) == (180, 120), f"thumb size {jpeg_size(thumb)}")
s, h, thumb = call("GET", f"/api/v1/message/{mid}/part/{att['PartID']}/thumb")
check(s == 200 and jpeg_size(thumb) == (180, 120) and h.get("X-Sluice-Thumbnail") == "not-image", "blank thumb")
s, _, b = call("GET", f"/api/v1/message/{mid}/part/99")
check(s == 404 and b == b"404 page not found\n", f"unknown part {s} {b!r}")

s, h, html = call("GET", f"/view/{mid}.html")
check(s == 200 and f'/api/v1/message/{mid}/part/{inline["PartID"]}'.encode() in html, f"view cid {html[:300]!r}")
check("script-src 'none'" in h.get("Content-Security-Policy", ""), f"view CSP {h.get('Content-Security-Policy')}")
s, h, html = call("GET", f"/view/{mid}.html?embed=1")
check(b'target="_blank" rel="noreferrer noopener"' in html and b"messageHeight" in html, "embed")
check("'sha256-" in h.get("Content-Security-Policy", ""), "embed CSP admits the height script by hash")
s, _, txt = call("GET", f"/view/{mid}.txt")
check(s == 200 and txt.strip() == b"See the report.", f"view txt {txt!r}")
opener = urllib.request.build_opener(NoRedirect)
try:
    opener.open(BASE + "/view/latest", timeout=10)
    raise SystemExit("FAILED: /view/latest did not redirect")
except urllib.error.HTTPError as e:
    check(e.code == 302 and e.headers["Location"] == f"/view/{mid}", f"view latest {e.code} {e.headers['Location']}")

# ---- tags and search ----
s, _, b = call("PUT", "/api/v1/tags", {"IDs": [mid], "Tags": ["Finance", "Q3"]})
check(s == 200 and b == b"ok", f"set tags {s} {b!r}")
check(get_json("/api/v1/tags") == ["Finance", "Q3"], "tags")
check(get_json("/api/v1/search?query=tag:Finance")["messages_count"] == 1, "search by tag")
s, _, b = call("PUT", "/api/v1/tags/Q3", {"Name": "Q4"})
check(s == 200 and get_json("/api/v1/tags") == ["Finance", "Q4"], "rename tag")
check(call("DELETE", "/api/v1/tags/Q4")[0] == 200 and get_json("/api/v1/tags") == ["Finance"], "delete tag")
s, _, b = call("GET", "/api/v1/search")
check(s == 400 and b == b"Error: no search query", f"search without query {s} {b!r}")
check(get_json("/api/v1/search?query=report")["messages_count"] == 1, "search word")
check(get_json("/api/v1/search?query=nomatchatall")["messages_count"] == 0, "search miss")

# ---- POST /api/v1/send ----
s, _, b = call("POST", "/api/v1/send", {
    "From": {"Email": "api@example.org", "Name": "Jörg"},
    "To": [{"Email": "to@example.org", "Name": "To Person"}],
    "Bcc": ["hidden@example.org"],
    "Subject": "Grüße über HTTP",
    "Text": "plain", "HTML": "<p>html</p>", "Tags": ["sent"],
    "Attachments": [{"Content": "data:text/plain;base64,aGVsbG8=", "Filename": "hello.txt"}]})
check(s == 200, f"send {s} {b!r}")
sent = json.loads(b)
check(set(sent) == {"ID"}, f"send keys {sent}")
got = get_json("/api/v1/message/" + sent["ID"])
check(got["Subject"] == "Grüße über HTTP" and got["From"]["Name"] == "Jörg", f"sent message {got['Subject']} {got['From']}")
check([a["Address"] for a in got["Bcc"]] == ["hidden@example.org"], f"Bcc {got['Bcc']}")
check(got["Tags"] == ["sent"] and got["Text"].strip() == "plain" and got["HTML"] == "<p>html</p>", "sent bodies and tags")
check(len(got["Attachments"]) == 1 and got["Attachments"][0]["FileName"] == "hello.txt", "sent attachment")
raw = call("GET", f"/api/v1/message/{sent['ID']}/raw")[2]
check(b"\nReceived:" not in raw and not raw.startswith(b"Received:"), "no Received header")
s, _, b = call("POST", "/api/v1/send", {"From": {"Email": "a@example.org"}, "To": [{"Email": "b@example.org"}],
                                       "Headers": {"Subject": "x"}})
check(s == 400 and json.loads(b) == {"Error": 'cannot overwrite header: "Subject"'}, f"forbidden header {s} {b!r}")

# ---- wait ----
since = int(time.time() * 1000)
result = {}


def waiter():
    result["r"] = call("GET", f"/api/v1/wait?query=subject:%22late%20arrival%22&since={since}&timeout=20", timeout=40)


t = threading.Thread(target=waiter)
t.start()
late = EmailMessage()
late["From"] = "x@example.org"
late["To"] = "y@example.org"
late["Subject"] = "late arrival"
late.set_content("hi")
smtp_send(SMTP, late)
t.join(45)
check("r" in result, "wait did not return")
s, _, b = result["r"]
check(s == 200, f"wait {s} {b!r}")
w = json.loads(b)
check(set(w) == SUMMARY and w["Subject"] == "late arrival", f"wait result {w}")
t0 = time.time()
s, _, b = call("GET", "/api/v1/wait?query=subject:neverever&timeout=1")
check(s == 408 and time.time() - t0 >= 0.9, f"wait timeout {s} {b!r}")

# ---- other mailbox ----
o = EmailMessage()
o["From"] = "o@example.org"
o["To"] = "p@example.org"
o["Subject"] = "for the other box"
o.set_content("other")
smtp_send(SMTP_OTHER, o)
other = get_json("/mailbox/other/api/v1/messages")
check(other["total"] == 1 and other["messages"][0]["Subject"] == "for the other box", f"other mailbox {other}")
oid = other["messages"][0]["ID"]
check(get_json("/api/v1/search?query=%22other%20box%22")["messages_count"] == 0, "default mailbox does not see it")
check(get_json(f"/mailbox/other/api/v1/message/{oid}")["ID"] == oid, "prefixed message")
# A send through the mailbox's base URL lands in that mailbox (the web's pipeline stores into
# "default" otherwise), so a Mailpit client pointed at /mailbox/other/ reads back its mail.
s, _, b = call("POST", "/mailbox/other/api/v1/send", {"From": {"Email": "a@example.org"},
               "To": [{"Email": "b@example.org"}], "Subject": "sent to other", "Text": "x"})
check(s == 200, f"send to other {s} {b}")
sid = json.loads(b)["ID"]
check(get_json(f"/mailbox/other/api/v1/message/{sid}")["Subject"] == "sent to other", "send lands in other")
check(get_json("/api/v1/search?query=subject:%22sent%20to%20other%22")["messages_count"] == 0,
      "not in default")
boxes = get_json("/api/v1/mailboxes")
check([b["Name"] for b in boxes] == ["default", "other"], f"mailboxes {boxes}")
sw = get_json("/mailbox/other/api/v1/swagger.json")
check(sw["servers"][0]["url"] == "/mailbox/other" and "/api/v1/wait" in sw["paths"], "swagger servers")

# ---- info, webui, chaos, release ----
info = get_json("/api/v1/info")
check(set(info) == {"Version", "LatestVersion", "Database", "DatabaseSize", "Messages", "Unread", "Tags", "RuntimeStats"}, f"info {info}")
check(info["RuntimeStats"]["SMTPAccepted"] >= 2, f"SMTPAccepted {info['RuntimeStats']}")
check(info["RuntimeStats"]["SMTPAcceptedSize"] > 0, f"SMTPAcceptedSize {info['RuntimeStats']}")
webui = get_json("/api/v1/webui")
check(webui["ChaosEnabled"] is False and webui["MessageRelay"]["Enabled"] is False, f"webui {webui}")
s, _, b = call("GET", "/api/v1/chaos")
check(s == 400 and b == b"Chaos is not enabled", f"chaos {s} {b!r}")
s, _, b = call("POST", f"/api/v1/message/{mid}/release", {"To": ["z@example.org"]})
check(s == 400 and b"relay" in b, f"release {s} {b!r}")

# ---- read state and deletion ----
check(call("PUT", "/api/v1/messages", {"Read": False})[0] == 200, "mark all unread")
check(get_json("/api/v1/messages")["unread"] == get_json("/api/v1/messages")["total"], "all unread")
check(call("DELETE", "/api/v1/search?query=report")[2] == b"ok", "delete by search")
check(get_json("/api/v1/search?query=report")["messages_count"] == 0, "deleted by search")
check(call("DELETE", "/api/v1/messages", {"IDs": [sent["ID"]]})[2] == b"ok", "delete by id")
check(call("GET", "/api/v1/message/" + sent["ID"])[0] == 404, "deleted by id")
check(call("DELETE", "/api/v1/messages")[2] == b"ok" and get_json("/api/v1/messages")["total"] == 0, "delete all")
print("api_e2e: all checks passed")
