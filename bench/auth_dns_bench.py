#!/usr/bin/python3
"""auth_dns_bench.py -- SPF + DKIM + DMARC through sluice against a slow loopback DNS server.

Shows that no I/O thread waits for DNS (issue 4): every DNS answer takes --delay (200 ms), so
a message costs several round trips of waiting; if a lookup blocked the thread, throughput
would stay at the one-connection rate whatever the concurrency. Sluice runs with ONE I/O
thread (`threads: {io: 1}`), so the figures scale with connections only if that thread keeps
serving other connections while lookups are outstanding.

What it runs (all on 127.0.0.1):
  * bench/slow_dns_server.py: answers every query after --delay with TTL --ttl (default 0:
    the resolver never caches a TTL 0 answer, plugins/resolver/README.md), thread per query.
    With --ttl N > 0, use --domains at least --messages so that no domain repeats within a
    round (rounds are more than N seconds apart for a small N): then each message still pays
    for its own lookups, but an answer fetched early (the pipeline's prefetch) is cached for
    the later stages of that message.
    Zone: for each of --domains sender domains dN.bench.example: SPF "v=spf1 ip4:127.0.0.1
    -all", DKIM key s1._domainkey.dN.bench.example (RSA 2048), "_dmarc" "v=DMARC1; p=reject";
    the HELO name client.bench.example has its own SPF record.
  * sluice (a copy of --sluice and its plugins in a temp dir): pipeline
    spf -> dkim -> dmarc -> auth_results -> store, one I/O thread.
  * the load generator (here, Python threads + smtplib: bench/build/smtp_load cannot send
    DKIM-signed mail): C connections, each sends messages one after another on its
    connection until --messages are sent or --seconds have passed. Messages are signed
    beforehand with dkimpy (rsa-sha256, relaxed/relaxed), --domains distinct messages cycled.

Per round it prints and records: msgs/s (messages accepted / wall time from the first
connection to the last reply), p50/p99 of the latency of one whole MAIL-RCPT-DATA
transaction, the CPU % of sluice, the DNS server and the load generator (utime+stime over wall,
100% = one core), and the DNS queries the round caused (per type, per message, most in flight at once).
At the end it reads the Authentication-Results of a few stored messages through the HTTP API
and fails if any is not spf=pass dkim=pass dmarc=pass.

  bench/auth_dns_bench.py [--sluice PATH] [--connections 1,4,16,64] [--delay 0.2]
                          [--messages 2000] [--seconds 20] [--domains 256] [--io-threads 1]
                          [--ttl 0] [--prefetch-max N]
                          [--json OUT]   (KEEP_WORK=1: keep the temp dir)
"""
import argparse
import json
import os
import shutil
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import dkim

HERE = os.path.dirname(os.path.abspath(__file__))
HELO = "client.bench.example"


def wait_file(path, proc, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return open(path, encoding="utf-8").read()
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        time.sleep(0.05)
    sys.exit(f"{what} not ready after {seconds}s")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_messages(n, key_pem):
    msgs = []
    for i in range(n):
        dom = f"d{i}.bench.example"
        body = "".join(f"Line {j} of message {i}: the quick brown fox jumps over the lazy dog.\r\n"
                       for j in range(12))
        raw = (f"From: Sender {i} <sender@{dom}>\r\n"
               f"To: rcpt@receiver.example\r\n"
               f"Subject: auth bench {i}\r\n"
               f"Date: Wed, 02 Dec 2026 00:00:00 +0000\r\n"
               f"Message-ID: <{i}.{time.time_ns()}@{dom}>\r\n"
               f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
               + body).encode("ascii")
        sig = dkim.sign(raw, b"s1", dom.encode(), key_pem,
                        canonicalize=(b"relaxed", b"relaxed"),
                        include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
        msgs.append((f"sender@{dom}", sig + raw))
    return msgs


def run_round(port, conns, msgs, max_messages, seconds):
    lock = threading.Lock()
    state = {"next": 0, "ok": 0, "failed": 0, "errors": []}
    lat = []
    start = time.monotonic()
    deadline = start + seconds

    def take():
        with lock:
            if state["next"] >= max_messages or time.monotonic() >= deadline:
                return None
            i = state["next"]
            state["next"] += 1
            return i

    def worker():
        try:
            s = smtplib.SMTP("127.0.0.1", port, local_hostname=HELO, timeout=30)
            s.ehlo(HELO)
        except (OSError, smtplib.SMTPException) as e:
            with lock:
                state["errors"].append(f"connect: {e}")
            return
        while (i := take()) is not None:
            sender, data = msgs[i % len(msgs)]
            t0 = time.monotonic()
            try:
                s.sendmail(sender, ["rcpt@receiver.example"], data)
                ms = (time.monotonic() - t0) * 1000
                with lock:
                    state["ok"] += 1
                    lat.append(ms)
            except (OSError, smtplib.SMTPException) as e:
                with lock:
                    state["failed"] += 1
                    if len(state["errors"]) < 5:
                        state["errors"].append(repr(e))
                try:
                    s.rset()
                except (OSError, smtplib.SMTPException):
                    return
        try:
            s.quit()
        except (OSError, smtplib.SMTPException):
            pass

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.monotonic() - start
    lat.sort()
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None
    return {"connections": conns, "accepted": state["ok"], "failed": state["failed"],
            "errors": state["errors"], "wall_s": round(wall, 2),
            "msgs_per_s": round(state["ok"] / wall, 2) if wall > 0 else 0,
            "p50_ms": round(pct(0.50), 1) if lat else None,
            "p99_ms": round(pct(0.99), 1) if lat else None,
            "mean_ms": round(statistics.fmean(lat), 1) if lat else None}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sluice", default="/work/main/build/bin/sluice")
    p.add_argument("--connections", default="1,4,16,64")
    p.add_argument("--delay", type=float, default=0.2)
    p.add_argument("--messages", type=int, default=2000, help="per round, at most")
    p.add_argument("--seconds", type=float, default=20, help="per round, at most")
    p.add_argument("--domains", type=int, default=256)
    p.add_argument("--io-threads", type=int, default=1)
    p.add_argument("--ttl", type=int, default=0, help="TTL of every DNS answer (0-3600)")
    p.add_argument("--prefetch-max", type=int,
                   help="the resolver's prefetch_max_in_flight (0: no prefetch); "
                        "omitted: the key is not written (older binaries do not know it)")
    p.add_argument("--json")
    a = p.parse_args()
    conns = [int(c) for c in a.connections.split(",")]
    if any(c < 1 or c > 512 for c in conns) or not 1 <= a.domains <= 10000:
        sys.exit("connections must be 1-512, domains 1-10000")
    if not 0 <= a.ttl <= 3600:
        sys.exit("ttl must be 0-3600")

    work = tempfile.mkdtemp(prefix="auth-dns-bench-")
    procs = []
    try:
        # A private copy of sluice and its plugins: a rebuild of the source tree during the run
        # does not change the binary under test.
        src = os.path.dirname(os.path.dirname(os.path.realpath(a.sluice)))
        os.makedirs(f"{work}/inst/bin")
        shutil.copy2(a.sluice, f"{work}/inst/bin/sluice")
        shutil.copytree(f"{src}/lib", f"{work}/inst/lib", symlinks=True,
                        ignore=shutil.ignore_patterns("*.a", "test-plugins", "smtp-test-plugins"))

        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                        "rsa_keygen_bits:2048", "-out", f"{work}/dkim.pem"],
                       check=True, capture_output=True)
        pub = subprocess.run(["openssl", "pkey", "-in", f"{work}/dkim.pem", "-pubout",
                              "-outform", "DER"], check=True, capture_output=True).stdout
        import base64
        p_tag = base64.b64encode(pub).decode()
        zone = {HELO: {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}}
        for i in range(a.domains):
            d = f"d{i}.bench.example"
            zone[d] = {"TXT": ["v=spf1 ip4:127.0.0.1 -all"]}
            zone[f"s1._domainkey.{d}"] = {"TXT": [f"v=DKIM1; k=rsa; p={p_tag}"]}
            zone[f"_dmarc.{d}"] = {"TXT": ["v=DMARC1; p=reject"]}
        with open(f"{work}/zone.json", "w") as f:
            json.dump(zone, f)
        t0 = time.monotonic()
        msgs = make_messages(a.domains, open(f"{work}/dkim.pem", "rb").read())
        print(f"signed {len(msgs)} messages in {time.monotonic() - t0:.1f}s", file=sys.stderr)

        dns = subprocess.Popen(["/usr/bin/python3", f"{HERE}/slow_dns_server.py", "--zone",
                                f"{work}/zone.json", "--ready", f"{work}/dns.port", "--stats",
                                f"{work}/dns.stats", "--delay", str(a.delay), "--ttl", str(a.ttl)])
        procs.append(dns)
        dns_port = int(wait_file(f"{work}/dns.port", dns, 20, "DNS server"))

        prefetch = "" if a.prefetch_max is None else f", prefetch_max_in_flight: {a.prefetch_max}"
        cfg = f"""log: {{format: text, level: warn}}
threads: {{io: {a.io_threads}}}
spool: {{path: ./spool}}
services:
  - {{name: default, plugin: resolver, servers: ["127.0.0.1:{dns_port}"], timeout: 5s, tries: 2{prefetch}}}
  - {{name: store, plugin: store, path: ./bench.db, max_messages: 0}}
listeners:
  - {{name: smtp, plugin: smtp, pipeline: in, listen: ["127.0.0.1:0"], max_connections: 1000}}
  - {{name: web, plugin: http, pipeline: in, listen: ["127.0.0.1:0"]}}
pipelines:
  - name: in
    stages:
      - {{plugin: spf, receiver: mx.receiver.example}}
      - {{plugin: dkim}}
      - {{plugin: dmarc, on_fail: policy}}
      - {{plugin: auth_results, authserv_id: mx.receiver.example}}
      - {{plugin: store}}
"""
        with open(f"{work}/sluice.yaml", "w") as f:
            f.write(cfg)
        log = open(f"{work}/sluice.log", "w")
        sl = subprocess.Popen([f"{work}/inst/bin/sluice", "serve", "-c", f"{work}/sluice.yaml",
                               "--plugin-dir", f"{work}/inst/lib/sluice/plugins",
                               "--ready-file", f"{work}/ready.json"],
                              cwd=work, stdout=log, stderr=subprocess.STDOUT)
        procs.append(sl)
        ready = json.loads(wait_file(f"{work}/ready.json", sl, 30, "sluice"))
        # ready.json: {"pid": N, "listeners": {"smtp": ["127.0.0.1:PORT"], ...}}
        def port_of(name):
            return int(ready["listeners"][name][0].rsplit(":", 1)[1])
        smtp_port, http_port = port_of("smtp"), port_of("web")

        load1 = os.getloadavg()[0]
        results = []
        for c in conns:
            os.kill(dns.pid, signal.SIGUSR1)  # reset the DNS counters
            time.sleep(0.3)
            cpu0, t0 = cpu_seconds(sl.pid), time.monotonic()
            dns0, me0 = cpu_seconds(dns.pid), sum(os.times()[:2])
            load = os.getloadavg()[0]
            r = run_round(smtp_port, c, msgs, a.messages, a.seconds)
            r["sluice_cpu_pct"] = round(100 * (cpu_seconds(sl.pid) - cpu0) /
                                        (time.monotonic() - t0), 1)
            el = time.monotonic() - t0
            r["dns_server_cpu_pct"] = round(100 * (cpu_seconds(dns.pid) - dns0) / el, 1)
            r["loadgen_cpu_pct"] = round(100 * (sum(os.times()[:2]) - me0) / el, 1)
            r["load_before"] = round(load, 2)
            os.remove(f"{work}/dns.stats") if os.path.exists(f"{work}/dns.stats") else None
            os.kill(dns.pid, signal.SIGUSR1)
            st = json.loads(wait_file(f"{work}/dns.stats", dns, 10, "DNS stats"))
            r["dns_queries"] = st["queries"]
            r["dns_by_type"] = st["by_type"]
            r["dns_max_in_flight"] = st["max_in_flight"]
            r["dns_queries_per_msg"] = round(st["queries"] / max(1, r["accepted"]), 2)
            results.append(r)
            print(json.dumps(r), flush=True)

        # The checks really ran and passed: read a few stored messages' auth results.
        listing = json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{http_port}/api/v1/messages?limit=5", timeout=10))
        checked = []
        for m in listing["messages"][:5]:
            raw = urllib.request.urlopen(
                f"http://127.0.0.1:{http_port}/api/v1/message/{m['ID']}/raw", timeout=10).read()
            ar = [l for l in raw.decode("ascii", "replace").replace("\r\n\t", " ")
                  .replace("\r\n ", " ").split("\r\n") if l.startswith("Authentication-Results:")]
            checked.append(ar[0] if ar else "(no Authentication-Results)")
        print("\n".join(checked), file=sys.stderr)
        bad = [c for c in checked if not all(k in c for k in ("spf=pass", "dkim=pass", "dmarc=pass"))]

        out = {"delay_s": a.delay, "ttl_s": a.ttl, "prefetch_max": a.prefetch_max,
               "io_threads": a.io_threads, "domains": a.domains,
               "load_at_start": round(load1, 2), "cpus": os.cpu_count(),
               "sluice": os.path.realpath(a.sluice), "rounds": results,
               "auth_results_sample": checked}
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=2)
        print("\n| connections | msgs/s | p50 ms | p99 ms | sluice CPU | DNS queries/msg | "
              "DNS max in flight | accepted / failed | load |")
        print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
        for r in results:
            print(f"| {r['connections']} | {r['msgs_per_s']} | {r['p50_ms']} | {r['p99_ms']} | "
                  f"{r['sluice_cpu_pct']}% | {r['dns_queries_per_msg']} | "
                  f"{r['dns_max_in_flight']} | {r['accepted']} / {r['failed']} | "
                  f"{r['load_before']} |")
        if bad or any(r["failed"] or r["errors"] for r in results):
            sys.exit(f"FAILED: {bad or [r['errors'] for r in results]}")
    finally:
        for pr in reversed(procs):
            pr.terminate()
            try:
                pr.wait(10)
            except subprocess.TimeoutExpired:
                pr.kill()
        if os.environ.get("KEEP_WORK"):
            print(f"work dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
