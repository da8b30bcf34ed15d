#!/usr/bin/python3
"""slow_dns_server.py -- a slow authoritative DNS server on loopback for bench/auth_dns_bench.py.

tests/data/auth/zone_dns_server.py's resolver and server (same JSON zone format: TXT/A/AAAA
records, SERVFAIL/REFUSED/TIMEOUT names, NXDOMAIN/NODATA otherwise) with, for the benchmark:

  --delay SECONDS   every query is answered after this delay (default 0.2). dnslib's servers
                    are socketserver.ThreadingMixIn: one thread per query, so concurrent
                    queries wait concurrently (the server itself is never the bottleneck).
  --ttl SECONDS     TTL of every answer (default 0: a resolver that honours TTLs caches nothing).
  --stats FILE      on SIGUSR1, write {"queries": N, "by_type": {...}, "max_in_flight": M} to
                    FILE (tmp + rename) and reset the counters.

UDP and TCP on one port; writes the port to --ready once both sockets listen; runs until killed.
Needs python3-dnslib.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time

from dnslib import QTYPE, DNSLabel

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "data", "auth"))
from zone_dns_server import ZoneResolver, serve  # noqa: E402


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.reset()

    def reset(self):
        self.queries = 0
        self.by_type = {}
        self.in_flight = 0
        self.max_in_flight = 0

    def begin(self, kind):
        with self.lock:
            self.queries += 1
            self.by_type[kind] = self.by_type.get(kind, 0) + 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def end(self):
        with self.lock:
            self.in_flight -= 1

    def snapshot_and_reset(self):
        with self.lock:
            s = {"queries": self.queries, "by_type": dict(self.by_type),
                 "max_in_flight": self.max_in_flight}
            in_flight = self.in_flight
            self.reset()
            self.in_flight = in_flight
            return s


def kind_of(qname, qtype):
    labels = [bytes(l).lower() for l in DNSLabel(str(qname).rstrip(".")).label]
    if b"_domainkey" in labels:
        return qtype + " dkim key"
    if labels and labels[0] == b"_dmarc":
        return qtype + " _dmarc"
    if labels and labels[0] == b"client":
        return qtype + " helo spf"
    return qtype + " mailfrom spf"


class SlowZoneResolver(ZoneResolver):
    def __init__(self, zone, delay, ttl, stats):
        super().__init__(zone, ttl)
        self.delay = delay
        self.stats = stats

    def resolve(self, request, handler):
        self.stats.begin(kind_of(request.q.qname, QTYPE[request.q.qtype]))
        try:
            time.sleep(self.delay)
            return super().resolve(request, handler)
        finally:
            self.stats.end()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--zone", required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--stats", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--delay", type=float, default=0.2)
    p.add_argument("--ttl", type=int, default=0)
    a = p.parse_args()
    if not 0 <= a.delay <= 10:
        sys.exit("--delay must be 0-10 seconds")
    stats = Stats()
    resolver = SlowZoneResolver(json.load(open(a.zone, encoding="utf-8")), a.delay, a.ttl, stats)

    def dump(signum, frame):
        with open(a.stats + ".tmp", "w") as f:
            json.dump(stats.snapshot_and_reset(), f)
        os.rename(a.stats + ".tmp", a.stats)

    signal.signal(signal.SIGUSR1, dump)
    serve(resolver, a.port, a.address, a.ready)

if __name__ == "__main__":
    main()
