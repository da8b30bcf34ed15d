#!/usr/bin/env python3
"""Feeds messages into Sluice through its SMTP listener (Python's smtplib).

usage: send_mail.py HOST PORT [--lf] FILE...

Each file is sent as one message from alice@example.com to bob@example.com, in order,
each acknowledged (250) before the next. Files are sent with CRLF line ends unless --lf is
given, in which case the bytes go out as they are (bare LF lines reach the store).
Exit status 0 when every message was accepted.
"""
import smtplib
import sys


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    files = sys.argv[3:]
    raw_lf = False
    if files and files[0] == "--lf":
        raw_lf = True
        files = files[1:]
    with smtplib.SMTP(host, port, timeout=20) as s:
        for name in files:
            with open(name, "rb") as f:
                data = f.read()
            if not raw_lf:
                data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            refused = s.sendmail("alice@example.com", ["bob@example.com"], data)
            if refused:
                print("refused:", refused, file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
