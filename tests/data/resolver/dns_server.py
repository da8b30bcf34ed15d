#!/usr/bin/python3
"""dns_server.py -- a tiny authoritative DNS server for the resolver plugin's tests.

Serves the records of a zone file (dnslib's zone syntax: $ORIGIN, $TTL, one RR per line) on
UDP and TCP on the same loopback port, and logs every query it receives, one line each:
"<udp|tcp> <qname> <qtype>", flushed at once so the test can count them.

  --servfail NAME   answer SERVFAIL for NAME (any type)
  --refused NAME    answer REFUSED for NAME (any type)
  --truncate NAME   answer NAME over UDP with TC=1 and no records, so clients retry over TCP
  --slow NAME       answer NAME (any type, whatever the answer) after --delay seconds
  --delay SECONDS   the delay of the --slow names (default 0.3, at most 10)

Names that are absent get NXDOMAIN, names without the asked type NOERROR/empty (NODATA);
both carry the zone's SOA in the authority section (RFC 2308). Writes the bound port to
--ready once both sockets listen. Runs until killed. Needs python3-dnslib (Debian).
"""
import argparse
import os
import sys
import time

from dnslib import QTYPE, RCODE, RR, DNSLabel
from dnslib.server import BaseResolver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dns_serve import QueryLog, serve  # noqa: E402  (tests/data/dns_serve.py)


class ZoneResolver(BaseResolver):
    def __init__(self, records, servfail, refused, truncate, slow, delay):
        self.records = records
        self.slow = {DNSLabel(n) for n in slow}
        self.delay = delay
        self.servfail = {DNSLabel(n) for n in servfail}
        self.refused = {DNSLabel(n) for n in refused}
        self.truncate = {DNSLabel(n) for n in truncate}
        self.soa = next((r for r in records if r.rtype == QTYPE.SOA), None)

    def resolve(self, request, handler):
        reply = request.reply()
        qname, qtype = request.q.qname, request.q.qtype
        if qname in self.slow:
            time.sleep(self.delay)  # dnslib runs a thread per query: others are not held up
        if qname in self.servfail:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if qname in self.refused:
            reply.header.rcode = RCODE.REFUSED
            return reply
        if qname in self.truncate and handler.protocol == "udp":
            reply.header.tc = 1
            return reply
        names = [r for r in self.records if r.rname == qname]
        if not names:
            reply.header.rcode = RCODE.NXDOMAIN
        for r in names:
            if r.rtype == qtype:
                reply.add_answer(r)
        if not reply.rr and self.soa is not None:
            reply.add_auth(self.soa)
        return reply


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--zone", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--servfail", action="append", default=[])
    p.add_argument("--refused", action="append", default=[])
    p.add_argument("--truncate", action="append", default=[])
    p.add_argument("--slow", action="append", default=[])
    p.add_argument("--delay", type=float, default=0.3)
    a = p.parse_args()
    if not 0 <= a.delay <= 10:
        sys.exit("--delay must be 0-10 seconds")
    with open(a.zone) as f:
        records = RR.fromZone(f.read())
    resolver = ZoneResolver(records, a.servfail, a.refused, a.truncate, a.slow, a.delay)
    serve(resolver, 0, "127.0.0.1", a.ready, QueryLog(a.log))


if __name__ == "__main__":
    main()
