#!/usr/bin/env python3
"""Checks that a server ends a TLS session with close_notify (RFC 8446 §6.1).

usage: close_notify.py MODE HOST PORT
  smtps     implicit TLS SMTP: greeting, QUIT, 221
  starttls  SMTP: EHLO, STARTTLS, then inside TLS QUIT, 221
  pop3s     implicit TLS POP3: greeting, QUIT, +OK
  stls      POP3: STLS, then inside TLS QUIT, +OK
After the last reply the server closes; reading on must end with its close_notify
(SSLZeroReturnError, or b"" from recv) and not with an EOF that TLS never announced
(SSLEOFError: a truncation a client cannot tell from an attack). Prints "OK ..." and
exits 0, or prints the problem and exits 1. Every socket operation has a 10 s timeout.
"""
import socket
import ssl
import sys


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def line(sock):
    out = b""
    while not out.endswith(b"\n"):
        b = sock.recv(1)
        if not b:
            raise SystemExit("FAIL: connection closed in a reply: %r" % out)
        out += b
    return out.decode(errors="replace").rstrip("\r\n")


def smtp_reply(sock):
    while True:
        l = line(sock)
        if len(l) < 4 or l[3] != "-":
            return l


def wrap(sock):
    return ctx().wrap_socket(sock, server_hostname=None, suppress_ragged_eofs=False)


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = socket.create_connection((host, port), timeout=10)
    if mode == "smtps":
        t = wrap(s)
        smtp_reply(t)
        t.sendall(b"QUIT\r\n")
        last = smtp_reply(t)
    elif mode == "starttls":
        smtp_reply(s)
        s.sendall(b"EHLO client.test\r\n")
        smtp_reply(s)
        s.sendall(b"STARTTLS\r\n")
        smtp_reply(s)
        t = wrap(s)
        t.sendall(b"QUIT\r\n")
        last = smtp_reply(t)
    elif mode == "pop3s":
        t = wrap(s)
        line(t)
        t.sendall(b"QUIT\r\n")
        last = line(t)
    elif mode == "stls":
        line(s)
        s.sendall(b"STLS\r\n")
        line(s)
        t = wrap(s)
        t.sendall(b"QUIT\r\n")
        last = line(t)
    else:
        raise SystemExit("unknown mode " + mode)
    try:
        rest = t.recv(100)
    except ssl.SSLZeroReturnError:
        rest = b""
    except ssl.SSLEOFError as e:
        raise SystemExit("FAIL: the server closed without close_notify after %r: %s" % (last, e))
    if rest:
        raise SystemExit("FAIL: unexpected data after %r: %r" % (last, rest))
    print("OK close_notify after", repr(last), t.version())


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - report any failure as a test failure
        print("FAIL:", type(e).__name__, e)
        sys.exit(1)
