#!/usr/bin/python3
"""zone_dns_server.py -- a small authoritative DNS server on loopback (UDP and TCP, one port)
for the DKIM/DMARC tests. Serves TXT records from a JSON zone file:

  {"s1._domainkey.example.com": ["v=DKIM1; k=rsa; p=..."],   # TXT records (split at 255)
   "_dmarc.broken.example": "SERVFAIL",                        # or SERVFAIL / REFUSED / TIMEOUT
   "example.com": {"A": ["127.0.0.1"], "TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}

Absent names get NXDOMAIN, absent types NODATA; TIMEOUT names are never answered. Writes the
port to --ready once both sockets listen and runs until killed. Needs python3-dnslib.

  --zone FILE --ready FILE [--port N] [--address 127.0.0.1]
  [--delay SECONDS]   answer every query after this delay (0-10 s; default 0). The server
                      starts a thread per query, so concurrent queries wait concurrently.
  [--ttl SECONDS]     TTL of every record (default 60)
  [--log FILE]        append "<qname> <qtype>" for every query received, flushed at once
"""
import argparse
import json
import os
import sys
import threading
import time

from dnslib import AAAA, QTYPE, RCODE, RR, TXT, A, DNSError, DNSLabel
from dnslib.server import BaseResolver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dns_serve import serve  # noqa: E402  (tests/data/dns_serve.py)


class Drop(DNSError):
    pass


def key(name):
    return tuple(bytes(l).lower() for l in DNSLabel(str(name).rstrip(".")).label)


def txt(value):
    b = value.encode("utf-8")
    return TXT([b[i:i + 255] for i in range(0, len(b), 255)] or [b""])


class ZoneResolver(BaseResolver):
    def __init__(self, zone, ttl=60):
        self.ttl = ttl
        self.zone = {}
        for name, v in zone.items():
            if isinstance(v, str):
                self.zone[key(name)] = v
            elif isinstance(v, list):
                self.zone[key(name)] = {"TXT": v}
            else:
                self.zone[key(name)] = v

    def resolve(self, request, handler):
        reply = request.reply()
        qname = request.q.qname
        qtype = QTYPE[request.q.qtype]
        entry = self.zone.get(key(qname))
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if entry == "SERVFAIL":
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if entry == "REFUSED":
            reply.header.rcode = RCODE.REFUSED
            return reply
        if entry == "TIMEOUT":
            raise Drop("timeout")
        for v in entry.get(qtype, []):
            rd = txt(v) if qtype == "TXT" else A(v) if qtype == "A" else AAAA(v)
            reply.add_answer(RR(qname, getattr(QTYPE, qtype), rdata=rd, ttl=self.ttl))
        return reply


class DelayedLoggingResolver(ZoneResolver):
    """Logs each query as it arrives, then answers it after `delay` seconds."""

    def __init__(self, zone, ttl, delay, log):
        super().__init__(zone, ttl)
        self.delay = delay
        self.log = open(log, "a", buffering=1) if log else None
        self.lock = threading.Lock()

    def resolve(self, request, handler):
        if self.log:
            with self.lock:
                self.log.write("%s %s\n" % (str(request.q.qname).rstrip(".").lower(),
                                            QTYPE[request.q.qtype]))
                self.log.flush()
        if self.delay:
            time.sleep(self.delay)
        return super().resolve(request, handler)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--zone", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--ttl", type=int, default=60)
    p.add_argument("--log")
    a = p.parse_args()
    if not 0 <= a.delay <= 10:
        sys.exit("--delay must be 0-10 seconds")
    if not 0 <= a.ttl <= 86400:
        sys.exit("--ttl must be 0-86400 seconds")
    zone = json.load(open(a.zone, encoding="utf-8"))
    serve(DelayedLoggingResolver(zone, a.ttl, a.delay, a.log), a.port, a.address, a.ready)


if __name__ == "__main__":
    main()
