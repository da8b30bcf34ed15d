#!/usr/bin/env python3
"""TLS checks for the SMTP listener, run by smtp_integration_test.

usage: tls_client.py MODE HOST PORT
  injection  STARTTLS with pipelined plaintext after it: the plaintext must be discarded
             and the session reset (RFC 3207 §4.2, the CVE-2011-0411 class).
  smtplib    smtplib: EHLO, STARTTLS, AUTH PLAIN alice/secret, send one message.
  implicit   smtplib.SMTP_SSL (implicit TLS): send one message, print the TLS version.
Prints "OK ..." and exits 0 on success; prints the problem and exits 1 otherwise.
Every socket operation has a 10 s timeout.
"""
import smtplib
import socket
import ssl
import sys


def ctx():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


def read_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise SystemExit("FAIL: connection closed while reading a reply")
        lines.append(line.decode().rstrip("\r\n"))
        if len(line) < 4 or line[3:4] != b"-":
            return lines


def injection(host, port):
    s = socket.create_connection((host, port), timeout=10)
    f = s.makefile("rb")
    read_reply(f)
    s.sendall(b"EHLO client.test\r\n")
    ehlo = read_reply(f)
    if not any("STARTTLS" in l for l in ehlo):
        raise SystemExit("FAIL: STARTTLS not advertised: %r" % ehlo)
    # The injected commands ride in the same packet as STARTTLS.
    s.sendall(b"STARTTLS\r\nEHLO injected.test\r\nMAIL FROM:<evil@example.com>\r\n")
    r = read_reply(f)
    if not r[0].startswith("220"):
        raise SystemExit("FAIL: STARTTLS reply %r" % r)
    t = ctx().wrap_socket(s, server_hostname=None)
    tf = t.makefile("rb")
    # If the injected MAIL had been kept, the session would have a sender (or an EHLO).
    t.sendall(b"MAIL FROM:<alice@example.com>\r\n")
    r = read_reply(tf)
    if not r[0].startswith("503"):
        raise SystemExit("FAIL: after STARTTLS, MAIL got %r (injected commands were run?)" % r)
    t.sendall(b"EHLO client.test\r\n")
    ehlo = read_reply(tf)
    if any("STARTTLS" in l for l in ehlo):
        raise SystemExit("FAIL: STARTTLS advertised again inside TLS: %r" % ehlo)
    t.sendall(b"MAIL FROM:<alice@example.com>\r\n")
    r = read_reply(tf)
    if not r[0].startswith("250"):
        raise SystemExit("FAIL: MAIL inside TLS got %r" % r)
    t.sendall(b"QUIT\r\n")
    read_reply(tf)
    print("OK injection discarded;", t.version())


def send_with_smtplib(host, port, implicit):
    msg = "From: alice@example.com\r\nTo: bob@example.com\r\nSubject: via smtplib\r\n\r\nhello\r\n"
    if implicit:
        with smtplib.SMTP_SSL(host, port, timeout=10, context=ctx()) as c:
            c.ehlo("client.test")
            c.sendmail("alice@example.com", ["bob@example.com"], msg)
            print("OK implicit", c.sock.version())
        return
    with smtplib.SMTP(host, port, timeout=10) as c:
        c.ehlo("client.test")
        c.starttls(context=ctx())
        c.ehlo("client.test")
        c.login("alice", "secret")
        c.sendmail("alice@example.com", ["bob@example.com"], msg)
        print("OK starttls+auth", c.sock.version())


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if mode == "injection":
        injection(host, port)
    elif mode == "smtplib":
        send_with_smtplib(host, port, False)
    elif mode == "implicit":
        send_with_smtplib(host, port, True)
    else:
        raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except Exception as e:  # noqa: BLE001 - report any failure as a test failure
        print("FAIL:", type(e).__name__, e)
        sys.exit(1)
