#!/usr/bin/env python3
"""A webhook receiver for the webhook stage's integration tests (Python stdlib only).

Listens on 127.0.0.1 (HTTP, or HTTPS with --cert/--key), answers each request with the
next status of --statuses (the last one repeats), and appends one JSON line per request
to --log: method, path, headers (lower-case names), body, the status it answered, and
the verdict of its own signature check ("ok", "missing", "malformed", "mismatch",
"stale"; "unchecked" without --secret). The signature check is independent of Sluice's
code: HMAC-SHA256(secret, t + "." + body) compared with hmac.compare_digest.

Writes the bound port to --port-file once it is listening. Stops on SIGTERM.
"""
import argparse
import hashlib
import hmac
import json
import signal
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def check_signature(secret, header, body, tolerance=300):
    if header is None:
        return "missing"
    t, v1 = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            t = value
        elif key == "v1":
            v1.append(value)
    if t is None or not t.isdigit() or not v1:
        return "malformed"
    expected = hmac.new(secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not any(hmac.compare_digest(expected, candidate) for candidate in v1):
        return "mismatch"
    if abs(time.time() - int(t)) > tolerance:
        return "stale"
    return "ok"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--statuses", default="200")
    ap.add_argument("--retry-after", default=None, help="Retry-After sent with non-2xx answers")
    ap.add_argument("--secret", default=None)
    ap.add_argument("--signature-header", default="X-Sluice-Signature")
    ap.add_argument("--cert", default=None)
    ap.add_argument("--key", default=None)
    ap.add_argument("--response-bytes", type=int, default=0, help="2xx body of this many bytes")
    args = ap.parse_args()

    statuses = [int(s) for s in args.statuses.split(",")]
    lock = threading.Lock()
    counter = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("receiver: " + (fmt % a) + "\n")

        def handle_any(self):
            length = int(self.headers.get("Content-Length", "0"))
            if length > 16 * 1024 * 1024:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            with lock:
                i = counter["n"]
                counter["n"] += 1
                status = statuses[min(i, len(statuses) - 1)]
                sig = "unchecked"
                if args.secret is not None:
                    sig = check_signature(args.secret, self.headers.get(args.signature_header), body)
                record = {
                    "n": i,
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", errors="replace"),
                    "status": status,
                    "signature": sig,
                    "time": time.time(),
                }
                with open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                    f.flush()
            reply = json.dumps({"received": i, "status": status}).encode()
            if args.response_bytes:
                reply = b"x" * args.response_bytes
            if status >= 400:
                reply = ("receiver says no (%d)\r\nsecond line" % status).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if status >= 400 else "application/json")
            self.send_header("Content-Length", str(len(reply)))
            if status >= 300 and args.retry_after is not None:
                self.send_header("Retry-After", args.retry_after)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply)

        do_POST = handle_any
        do_PUT = handle_any

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(args.cert, args.key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
