#!/usr/bin/python3
"""An upstream SMTP server for the relay tests, built on aiosmtpd (an independent
implementation). Listens on 127.0.0.1, port 0; writes the bound port to --port-file.

Every accepted message is saved as <outdir>/<n>.json: envelope, content, whether the
session was under TLS and which AUTH identity it used. Behaviour is scripted by options:
  --starttls CERT KEY      offer STARTTLS with this certificate
  --require-starttls       refuse MAIL before STARTTLS (aiosmtpd's require_starttls)
  --implicit-tls           TLS from the first byte (RFC 8314) with the --starttls cert
  --auth USER:PASS         offer AUTH PLAIN, LOGIN, CRAM-MD5, XOAUTH2 (token = PASS)
  --auth-require-tls       offer AUTH only after STARTTLS (Postfix smtpd_tls_auth_only)
  --temp-fail N            answer the first N DATA with 451 4.3.0, then accept
  --reject-rcpt REGEX      answer RCPT for matching addresses with --reject-text
  --temp-rcpt REGEX        answer RCPT for matching addresses 450 4.2.1 the first time each
  --reject-text TEXT       default "550 5.1.1 <addr>: Recipient address rejected: User unknown"
  --size N                 advertise SIZE N
  --no-smtputf8            do not offer SMTPUTF8
  --port N                 listen on port N instead of 0 (an "upstream comes back" test)
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--outdir", required=True)
    ap.add_argument("--starttls", nargs=2)
    ap.add_argument("--require-starttls", action="store_true")
    ap.add_argument("--implicit-tls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--auth-require-tls", action="store_true")
    ap.add_argument("--temp-fail", type=int, default=0)
    ap.add_argument("--reject-rcpt")
    ap.add_argument("--reject-text")
    ap.add_argument("--temp-rcpt")
    ap.add_argument("--size", type=int, default=0)
    ap.add_argument("--no-smtputf8", action="store_true")
    ap.add_argument("--no-8bitmime", action="store_true")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()

    user, password = (args.auth.split(":", 1) if args.auth else (None, None))
    counter = {"data": 0, "saved": 0, "connections": 0}
    deferred_once = set()

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            if args.no_8bitmime:
                responses = [r for r in responses if "8BITMIME" not in r.upper()]
            return responses

        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if args.reject_rcpt and re.search(args.reject_rcpt, address):
                return args.reject_text or (
                    "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address)
            if args.temp_rcpt and re.search(args.temp_rcpt, address) and address not in deferred_once:
                deferred_once.add(address)
                return "450 4.2.1 <%s>: mailbox busy, try again later" % address
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"

        async def handle_DATA(self, server, session, envelope):
            counter["data"] += 1
            if counter["data"] <= args.temp_fail:
                return "451 4.3.0 Try again later (attempt %d)" % counter["data"]
            counter["saved"] += 1
            rec = {
                "mail_from": envelope.mail_from,
                "mail_options": envelope.mail_options,
                "rcpt_tos": envelope.rcpt_tos,
                "content": envelope.content.decode("utf-8", "surrogateescape"),
                "tls": session.ssl is not None,
                "auth": (session.auth_data.login.decode()
                         if isinstance(session.auth_data, LoginPassword)
                         else (session.auth_data.decode() if isinstance(session.auth_data, bytes)
                               else session.auth_data)),
                "helo": session.host_name,
                "connection": server.connection_number,
            }
            path = os.path.join(args.outdir, "%d.json" % counter["saved"])
            with open(path + ".tmp", "w") as f:
                json.dump(rec, f)
            os.rename(path + ".tmp", path)
            return "250 2.0.0 Ok: queued as test%d" % counter["saved"]

    def authenticator(server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok, handled=False, auth_data=auth_data.login)
        return AuthResult(success=False, handled=False)

    class Server(SMTP):
        async def auth_CRAM__MD5(self, _, args_):
            challenge = b"<%d.relaytest@localhost>" % os.getpid()
            resp = await self.challenge_auth(challenge)
            if resp is None or not isinstance(resp, bytes) or b" " not in resp:
                return AuthResult(success=False, handled=False)
            name, digest = resp.split(b" ", 1)
            want = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest().encode()
            ok = name.decode() == user and hmac.compare_digest(digest, want)
            return AuthResult(success=ok, handled=False, auth_data=name)

        async def auth_XOAUTH2(self, _, args_):
            if len(args_) < 2:
                return AuthResult(success=False, handled=False)
            raw = base64.b64decode(args_[1])
            ok = raw == b"user=%s\x01auth=Bearer %s\x01\x01" % (user.encode(), password.encode())
            return AuthResult(success=ok, handled=False, auth_data=user.encode())

        async def smtp_EHLO(self, hostname):
            await super().smtp_EHLO(hostname)

    tls_ctx = None
    if args.starttls:
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_ctx.load_cert_chain(args.starttls[0], args.starttls[1])

    def factory():
        counter["connections"] += 1
        kw = dict(
            hostname="upstream.test",
            decode_data=False,
            enable_SMTPUTF8=not args.no_smtputf8,
            data_size_limit=args.size or 33554432,
        )
        if args.auth:
            kw.update(authenticator=authenticator, auth_require_tls=args.auth_require_tls,
                      auth_required=False)
        if tls_ctx is not None and not args.implicit_tls:
            kw.update(tls_context=tls_ctx, require_starttls=args.require_starttls)
        smtp = Server(Handler(), **kw)
        smtp.connection_number = counter["connections"]
        return smtp

    async def run():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, host="127.0.0.1", port=args.port,
            ssl=tls_ctx if args.implicit_tls else None)
        port = server.sockets[0].getsockname()[1]
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.port_file + ".tmp", args.port_file)
        # Bounded: a test that forgets to stop this server does not leave it forever.
        await asyncio.sleep(600)

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
