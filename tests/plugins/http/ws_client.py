#!/usr/bin/python3
"""WebSocket client for the http integration tests (python3-websocket, an independent
client). Prints one JSON object with what it saw; every wait is bounded.

  ws_client.py events URL SMTP_HOST SMTP_PORT [OTHER_URL]
      connect, expect a "stats" frame first, send one message over SMTP (smtplib), then
      collect frames until a "new" and a later "stats" arrive. With OTHER_URL (another
      mailbox's stream) also report which frames that one got.
  ws_client.py drain URL HTTP_HOST HTTP_PORT PID
      connect, open an idle keep-alive HTTP connection, SIGTERM the server, report the
      WebSocket close code and whether the idle connection was closed.
  ws_client.py changes URL HTTP_BASE SMTP_HOST SMTP_PORT
      after a message arrives ("new"), mark it read and delete it over the REST API
      (urllib), then send two more and delete everything: report the update, delete and
      truncate frames.
  ws_client.py origin URL ORIGIN
      try the upgrade with that Origin; report the handshake status.
"""
import json
import os
import signal
import smtplib
import socket
import struct
import sys
import time
from email.message import EmailMessage

import websocket


def frames_until(ws, want, deadline):
    got = []
    while time.time() < deadline and not want(got):
        ws.settimeout(max(0.1, deadline - time.time()))
        try:
            raw = ws.recv()
        except websocket.WebSocketTimeoutException:
            break
        if not raw:
            break
        got.append(json.loads(raw))
    return got


def events(url, smtp_host, smtp_port, other=None):
    ws = websocket.create_connection(url, timeout=10)
    other_ws = websocket.create_connection(other, timeout=10) if other else None
    first = json.loads(ws.recv())
    if other_ws:
        json.loads(other_ws.recv())  # its own stats on connect
    m = EmailMessage()
    m["From"] = "ws@example.org"
    m["To"] = "rcpt@example.org"
    m["Subject"] = "websocket hello"
    m.set_content("body\n")
    with smtplib.SMTP(smtp_host, int(smtp_port), timeout=10) as s:
        s.send_message(m)

    def done(got):
        types = [f["Type"] for f in got]
        return "new" in types and "stats" in types[types.index("new"):]

    got = frames_until(ws, done, time.time() + 10)
    out = {"first": first, "frames": got}
    if other_ws:
        out["other"] = frames_until(other_ws, lambda g: False, time.time() + 1.0)
    print(json.dumps(out))


def send_one(smtp_host, smtp_port, subject, count=1):
    with smtplib.SMTP(smtp_host, int(smtp_port), timeout=10) as s:
        for i in range(count):
            m = EmailMessage()
            m["From"] = "ws@example.org"
            m["To"] = "rcpt@example.org"
            m["Subject"] = subject if count == 1 else "%s %d" % (subject, i)
            m.set_content("body\n")
            s.send_message(m)


def api(base, method, path, body):
    import urllib.request
    req = urllib.request.Request(base + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read().decode()


def changes(url, base, smtp_host, smtp_port):
    ws = websocket.create_connection(url, timeout=10)
    ws.recv()  # stats
    send_one(smtp_host, smtp_port, "first")
    got = frames_until(ws, lambda g: any(f["Type"] == "new" for f in g), time.time() + 10)
    new = [f for f in got if f["Type"] == "new"][0]["Data"]
    out = {"id": new["ID"]}
    out["put"] = api(base, "PUT", "api/v1/messages", {"IDs": [new["ID"]], "Read": True})
    got = frames_until(ws, lambda g: any(f["Type"] == "update" for f in g), time.time() + 10)
    out["update"] = [f for f in got if f["Type"] == "update"]
    out["delete_call"] = api(base, "DELETE", "api/v1/messages", {"IDs": [new["ID"]]})
    got = frames_until(ws, lambda g: any(f["Type"] == "delete" for f in g), time.time() + 10)
    out["delete"] = [f for f in got if f["Type"] == "delete"]
    send_one(smtp_host, smtp_port, "second")
    send_one(smtp_host, smtp_port, "third")
    frames_until(ws, lambda g: sum(f["Type"] == "new" for f in g) >= 2, time.time() + 10)
    out["truncate_call"] = api(base, "DELETE", "api/v1/messages", None)
    got = frames_until(ws, lambda g: any(f["Type"] == "truncate" for f in g), time.time() + 10)
    out["truncate"] = [f for f in got if f["Type"] == "truncate"]
    got = frames_until(ws, lambda g: any(f["Type"] == "stats" for f in g), time.time() + 10)
    out["last_stats"] = [f for f in got if f["Type"] == "stats"]
    # A bulk change of many messages is one "changed" frame, and the client stays connected
    # (one frame per message would overrun its 256-frame queue).
    send_one(smtp_host, smtp_port, "bulk", 300)
    frames_until(ws, lambda g: sum(f["Type"] == "new" for f in g) >= 300, time.time() + 30)
    out["read_all_call"] = api(base, "PUT", "api/v1/messages", {"Read": True})
    # Stats are debounced (250 ms) and computed after the delay: a frame of the 300 new
    # messages may be on its way, or its query may have started before the change and
    # arrive after the "changed" frame. The hub sends a fresh one after every change, so
    # wait for stats after "changed" that count no unread message.
    def after_changed(g):
        types = [f["Type"] for f in g]
        if "changed" not in types:
            return False
        return any(f["Type"] == "stats" and f["Data"].get("Unread") == 0
                   for f in g[types.index("changed"):])
    got = frames_until(ws, after_changed, time.time() + 10)
    out["bulk_types"] = sorted(set(f["Type"] for f in got))
    out["bulk_updates"] = sum(f["Type"] == "update" for f in got)
    out["changed"] = [f for f in got if f["Type"] == "changed"]
    first = next((i for i, f in enumerate(got) if f["Type"] == "changed"), len(got))
    out["bulk_stats"] = [f for f in got[first:] if f["Type"] == "stats"]
    send_one(smtp_host, smtp_port, "after bulk")
    got = frames_until(ws, lambda g: any(f["Type"] == "new" for f in g), time.time() + 10)
    out["after_bulk"] = [f["Data"]["Subject"] for f in got if f["Type"] == "new"]
    print(json.dumps(out))


def drain(url, host, port, pid):
    ws = websocket.create_connection(url, timeout=10)
    ws.recv()  # stats
    idle = socket.create_connection((host, int(port)), timeout=10)
    idle.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
    first = idle.recv(4096)
    os.kill(int(pid), signal.SIGTERM)
    code = None
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            op, data = ws.recv_data(control_frame=True)
        except Exception as e:  # the connection ended without a close frame
            code = "error: " + type(e).__name__
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
            break
    idle.settimeout(10)
    try:
        rest = idle.recv(4096)
        idle_closed = rest == b""
    except socket.timeout:
        idle_closed = False
    print(json.dumps({"close_code": code, "idle_closed": idle_closed,
                      "first": first.decode(errors="replace").split("\r\n")[0]}))


def origin(url, value):
    try:
        ws = websocket.create_connection(url, timeout=10, origin=value)
        ws.close()
        print(json.dumps({"status": 101}))
    except websocket.WebSocketBadStatusException as e:
        print(json.dumps({"status": e.status_code}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "events":
        events(*sys.argv[2:])
    elif mode == "changes":
        changes(*sys.argv[2:])
    elif mode == "drain":
        drain(*sys.argv[2:])
    elif mode == "origin":
        origin(*sys.argv[2:])
    else:
        sys.exit("unknown mode " + mode)
