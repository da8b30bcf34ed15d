#!/usr/bin/python3
"""spf_dns_server.py -- serves one scenario's zone data of the OpenSPF RFC 7208 test suite
(rfc7208-tests.yml) as an authoritative DNS server on loopback (UDP and TCP, one port).

Zone semantics are those of the suite's own driver (pyspf's testspf.py): SPF (type 99)
records are also served as TXT unless the name has TXT records ("TXT: NONE" means none);
TIMEOUT makes queries of the name for types it has no records of go unanswered (the client
times out); CNAMEs are followed within the zone. Absent names get NXDOMAIN, absent types
NODATA. Writes the port to --ready once both sockets listen; runs until killed.
Needs python3-dnslib and python3-yaml (Debian).

  --suite FILE --scenario N (0-based document index) --ready FILE [--log FILE]
"""
import argparse
import os
import sys

import yaml
from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TXT, A, DNSError, DNSLabel
from dnslib.server import BaseResolver

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from dns_serve import QueryLog, serve  # noqa: E402  (tests/data/dns_serve.py)


def raw_bytes(s):
    # YAML \xNN escapes are code points; the suite means the byte NN.
    try:
        return s.encode("latin-1")
    except UnicodeEncodeError:
        return s.encode("utf-8")


def txt_strings(v):
    parts = v if isinstance(v, list) else [v]
    out = []
    for p in parts:
        b = raw_bytes(str(p))
        out.extend([b[i:i + 255] for i in range(0, len(b), 255)] or [b""])
    return out


def load(path, index):
    docs = list(yaml.safe_load_all(open(path, encoding="utf-8")))
    zone = {}
    for name, entries in docs[index]["zonedata"].items():
        key = label_key(name)
        recs, spf, has_txt, timeout = [], [], False, False
        for e in entries or []:
            if e == "TIMEOUT":
                timeout = True
                continue
            (t, v), = e.items()
            if t == "TXT":
                has_txt = True
                if v != "NONE":
                    recs.append(("TXT", TXT(txt_strings(v))))
            elif t == "SPF":
                if v != "NONE":
                    spf.append(("TXT", TXT(txt_strings(v))))
            elif t == "A":
                recs.append(("A", A(v)))
            elif t == "AAAA":
                recs.append(("AAAA", AAAA(v)))
            elif t == "MX":
                recs.append(("MX", MX(v[1] if v[1] else ".", v[0])))
            elif t == "PTR":
                recs.append(("PTR", PTR(v)))
            elif t == "CNAME":
                recs.append(("CNAME", CNAME(v)))
        if not has_txt:
            recs.extend(spf)
        zone[key] = (recs, timeout)
    return zone


def label_key(name):
    # Labels compared as bytes, case-insensitively (names may hold spaces or '%').
    return tuple(bytes(l).lower() for l in DNSLabel(str(name).rstrip(".")).label)


class Drop(DNSError):
    pass


class SuiteResolver(BaseResolver):
    def __init__(self, zone):
        self.zone = zone

    def answer(self, reply, name, qtype, depth=0):
        entry = self.zone.get(tuple(bytes(l).lower() for l in DNSLabel(name).label))
        if entry is None:
            return "nxdomain"
        recs, timeout = entry
        for t, rd in recs:
            if t == "CNAME" and qtype != "CNAME" and depth < 8:
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=rd, ttl=300))
                return self.answer(reply, rd.label, qtype, depth + 1)
        hits = [rd for t, rd in recs if t == qtype]
        if not hits and timeout:
            raise Drop("timeout")
        for rd in hits:
            reply.add_answer(RR(name, getattr(QTYPE, qtype), rdata=rd, ttl=300))
        return "ok"

    def resolve(self, request, handler):
        reply = request.reply()
        qtype = QTYPE[request.q.qtype]
        if self.answer(reply, request.q.qname, qtype) == "nxdomain" and not reply.rr:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--suite", required=True)
    p.add_argument("--scenario", type=int, required=True)
    p.add_argument("--ready", required=True)
    p.add_argument("--log", default="")
    a = p.parse_args()
    serve(SuiteResolver(load(a.suite, a.scenario)), 0, "127.0.0.1", a.ready, QueryLog(a.log))


if __name__ == "__main__":
    main()
