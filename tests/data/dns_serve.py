"""dns_serve.py -- what the tests' loopback DNS servers share (tests/data/auth/spf_dns_server.py,
tests/data/auth/zone_dns_server.py, tests/data/resolver/dns_server.py; bench/slow_dns_server.py
through zone_dns_server): dnslib's UDP and TCP servers on one port, the ready file the C++
tests wait for (sluice::test::ready_server), and a query log. Needs python3-dnslib (Debian).
"""
import os
import sys
import threading
import time

from dnslib import QTYPE
from dnslib.server import DNSServer


class QueryLog:
    """dnslib logger interface: only the received requests are written, one line each,
    "<udp|tcp> <qname> <qtype>", line-buffered so a test can count them at once. With no
    path nothing is written."""

    def __init__(self, path=None):
        self.out = open(path, "a", buffering=1) if path else None
        self.lock = threading.Lock()

    def log_request(self, handler, request):
        if self.out:
            with self.lock:
                self.out.write("%s %s %s\n" % (handler.protocol, request.q.qname,
                                               QTYPE[request.q.qtype]))

    def __getattr__(self, name):  # log_recv, log_send, log_reply, log_error, ...
        return lambda *args, **kwargs: None


def serve(resolver, port, address, ready, logger=None):
    """Serves `resolver` on UDP and TCP on one port (0: any free one; a UDP port whose TCP
    twin is taken is given up and another tried), writes the port to the file `ready`
    (atomically, by rename) once both listen, and runs until killed."""
    logger = logger or QueryLog()
    for _ in range(50):
        udp = DNSServer(resolver, port=port, address=address, logger=logger)
        bound = udp.server.server_address[1]
        try:
            tcp = DNSServer(resolver, port=bound, address=address, tcp=True, logger=logger)
        except OSError:
            udp.server.server_close()
            if port:
                sys.exit("port in use")
            continue
        break
    else:
        sys.exit("no free port")
    udp.server.daemon_threads = True
    tcp.server.daemon_threads = True
    udp.start_thread()
    tcp.start_thread()
    with open(ready + ".tmp", "w") as f:
        f.write(str(bound))
    os.rename(ready + ".tmp", ready)
    while True:
        time.sleep(3600)
