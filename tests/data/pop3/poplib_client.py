#!/usr/bin/env python3
"""Drives Sluice's POP3 listener with Python's poplib, an independent client.

usage:
  poplib_client.py stls   HOST PORT CAFILE USER PASS   STLS, USER/PASS and every command
  poplib_client.py apop   HOST PORT USER SECRET        APOP login (no TLS needed)
  poplib_client.py pop3s  HOST PORT CAFILE USER PASS   implicit TLS (POP3S)
  poplib_client.py plain  HOST PORT CAFILE USER PASS   STLS then SASL PLAIN (AUTH)

Every check is an assert; the exit status is 0 only when all passed. Prints what it saw.
"""
import base64
import poplib
import ssl
import sys


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def expect_error(fn, *args, contains=b""):
    try:
        r = fn(*args)
    except poplib.error_proto as e:
        msg = e.args[0]
        assert msg.startswith(b"-ERR"), msg
        assert contains in msg, (contains, msg)
        return msg
    raise AssertionError("expected -ERR, got %r" % (r,))


def check_every_command(p):
    count, octets = p.stat()
    resp, listing, _ = p.list()
    assert resp.startswith(b"+OK"), resp
    sizes = {}
    for entry in listing:
        n, size = entry.split()
        sizes[int(n)] = int(size)
    assert len(sizes) == count, (sizes, count)
    assert sum(sizes.values()) == octets, (sizes, octets)
    resp, uids, _ = p.uidl()
    uid_of = {int(a): b for a, b in (u.split() for u in uids)}
    assert len(set(uid_of.values())) == count
    for n, uid in uid_of.items():
        assert 1 <= len(uid) <= 70 and all(0x21 <= c <= 0x7E for c in uid), uid
        assert p.uidl(n) == b"+OK %d %s" % (n, uid)
        assert p.list(n) == b"+OK %d %d" % (n, sizes[n])
    for n in sizes:
        resp, lines, _ = p.retr(n)
        # poplib undoes dot-stuffing and strips the CRLFs: what is left plus 2 per line
        # is the message as RFC 1939 counts it, and must equal LIST's and RETR's count.
        got = sum(len(line) + 2 for line in lines)
        assert got == sizes[n], (n, got, sizes[n])
        assert resp == b"+OK %d octets" % sizes[n], resp
        blank = lines.index(b"")
        resp, head, _ = p.top(n, 0)
        assert head == lines[: blank + 1], (head, lines[: blank + 1])
        resp, head1, _ = p.top(n, 1)
        assert head1 == lines[: blank + 2], head1
    # Dot-stuffed lines arrive intact.
    first = p.retr(1)[1]
    if b"Subject: First message" in first:
        assert b".a line starting with a dot" in first
        assert b"." in first
        assert b"..two dots" in first
    assert p.noop().startswith(b"+OK")
    assert p.dele(1).startswith(b"+OK")
    expect_error(p.retr, 1, contains=b"already deleted")
    expect_error(p.list, 1, contains=b"already deleted")
    expect_error(p.dele, 1, contains=b"already deleted")
    expect_error(p.retr, count + 1, contains=b"no such message")
    assert p.stat() == (count - 1, octets - sizes[1])
    assert p.rset().startswith(b"+OK")
    assert p.stat() == (count, octets)
    assert p.dele(1).startswith(b"+OK")
    expect_error(p.user, "alice", contains=b"not valid in this state")
    caps = p.capa()
    assert "TOP" in caps and "UIDL" in caps
    deleted_uid = uid_of[1]
    resp = p.quit()
    assert resp.startswith(b"+OK"), resp
    print("quit:", resp.decode())
    return count, deleted_uid


def main():
    mode = sys.argv[1]
    host, port = sys.argv[2], int(sys.argv[3])
    if mode == "stls":
        cafile, user, password = sys.argv[4:7]
        p = poplib.POP3(host, port, timeout=20)
        print("welcome:", p.getwelcome().decode())
        caps = p.capa()
        print("capa before TLS:", sorted(caps))
        assert "STLS" in caps and "USER" not in caps and "SASL" not in caps, caps
        expect_error(p.user, user, contains=b"[AUTH]")
        p.stls(context=tls_context(cafile))
        caps = p.capa()
        print("capa after TLS:", sorted(caps))
        assert "STLS" not in caps and "USER" in caps and caps.get("SASL") == ["PLAIN"], caps
        # poplib refuses a second STLS by itself; ask the server directly.
        expect_error(p._shortcmd, "STLS", contains=b"TLS already active")
        p.user(user)
        expect_error(p.pass_, "wrong", contains=b"[AUTH]")
        p.user(user)
        print("pass:", p.pass_(password).decode())
        count, deleted_uid = check_every_command(p)
        # The UPDATE state removed exactly message 1.
        p = poplib.POP3(host, port, timeout=20)
        p.stls(context=tls_context(cafile))
        p.user(user)
        p.pass_(password)
        assert p.stat()[0] == count - 1
        uids = [u.split()[1] for u in p.uidl()[1]]
        assert deleted_uid not in uids, (deleted_uid, uids)
        assert p.quit().startswith(b"+OK")
    elif mode == "apop":
        user, secret = sys.argv[4:6]
        p = poplib.POP3(host, port, timeout=20)
        print("welcome:", p.getwelcome().decode())
        expect_error(p.apop, user, "not the secret", contains=b"[AUTH]")
        print("apop:", p.apop(user, secret).decode())
        print("stat:", p.stat())
        assert p.quit().startswith(b"+OK")
    elif mode == "pop3s":
        cafile, user, password = sys.argv[4:7]
        p = poplib.POP3_SSL(host, port, context=tls_context(cafile), timeout=20)
        caps = p.capa()
        assert "STLS" not in caps and "USER" in caps, caps
        p.user(user)
        p.pass_(password)
        count, _ = p.stat()
        assert count >= 1
        lines = p.retr(1)[1]
        assert any(l.startswith(b"Subject: ") for l in lines)
        assert p.quit().startswith(b"+OK")
    elif mode == "plain":
        cafile, user, password = sys.argv[4:7]
        p = poplib.POP3(host, port, timeout=20)
        p.stls(context=tls_context(cafile))
        token = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
        expect_error(p._shortcmd, "AUTH PLAIN " + base64.b64encode(b"\0" + user.encode() + b"\0x").decode(),
                     contains=b"[AUTH]")
        resp = p._shortcmd("AUTH PLAIN " + token)
        print("auth:", resp.decode())
        assert resp.startswith(b"+OK")
        print("stat:", p.stat())
        assert p.quit().startswith(b"+OK")
    else:
        print("unknown mode", mode, file=sys.stderr)
        return 2
    print("poplib: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
