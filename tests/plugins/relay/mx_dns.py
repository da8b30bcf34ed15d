#!/usr/bin/python3
"""mx_dns.py -- a tiny authoritative DNS server on 127.0.0.1 (UDP and TCP, one port) for
the relay's MX tests. The zone is JSON: {"name": {"MX": [[pref, "host"]], "A": ["ip"],
"AAAA": ["ip"]}}; an MX host "." is a null MX (RFC 7505). Absent names are NXDOMAIN,
absent types NODATA. Writes the port to --ready; exits after 10 minutes at the latest.
Needs python3-dnslib (Debian).

  --zone JSON --ready FILE
"""
import argparse
import json
import os
import time

from dnslib import AAAA, MX, QTYPE, RCODE, RR, A, DNSLabel
from dnslib.server import BaseResolver, DNSServer


class ZoneResolver(BaseResolver):
    def __init__(self, zone):
        self.zone = {k.lower().rstrip("."): v for k, v in zone.items()}

    def resolve(self, request, handler):
        reply = request.reply()
        reply.header.aa = 1
        name = str(request.q.qname).lower().rstrip(".")
        qtype = QTYPE[request.q.qtype]
        entry = self.zone.get(name)
        if entry is None:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in entry.get(qtype, []):
            if qtype == "MX":
                reply.add_answer(RR(request.q.qname, QTYPE.MX, ttl=60,
                                    rdata=MX(DNSLabel(value[1]), value[0])))
            elif qtype == "A":
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=60, rdata=A(value)))
            elif qtype == "AAAA":
                reply.add_answer(RR(request.q.qname, QTYPE.AAAA, ttl=60, rdata=AAAA(value)))
        return reply


class Quiet:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--zone", required=True)
    p.add_argument("--ready", required=True)
    a = p.parse_args()
    resolver = ZoneResolver(json.loads(a.zone))
    for _ in range(50):
        udp = DNSServer(resolver, port=0, address="127.0.0.1", logger=Quiet())
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, port=port, address="127.0.0.1", tcp=True, logger=Quiet())
        except OSError:
            udp.server.server_close()
            continue
        break
    else:
        raise SystemExit("no free port")
    udp.start_thread()
    tcp.start_thread()
    with open(a.ready + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(a.ready + ".tmp", a.ready)
    time.sleep(600)


if __name__ == "__main__":
    main()
