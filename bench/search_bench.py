#!/usr/bin/env python3
"""Search benchmark (issue 3): list, search and message-fetch latency of the real sluice
binary over HTTP with N stored messages, against the same predicates as LIKE '%...%' scans
(Python sqlite3 on a copy of the same database), and sluice's peak RSS.

  bench/search_bench.py --sluice build/bin/sluice [--messages 100000] [--queries 200]
  bench/search_bench.py --sluice build/bin/sluice --reuse DIR   # query a --keep DIR again

Starts sluice in a fresh temp dir (smtp -> mime -> store, an http listener, both on
127.0.0.1 port 0), loads the messages over SMTP with PIPELINING on --connections connections
(asyncio), then times each query kind with one keep-alive http.client connection, one
thread. Bounded: the load stops at --load-seconds, every socket read has a timeout, every
query kind runs --queries times. Prints a Markdown table and writes JSON to --json.
"""
import argparse
import asyncio
import http.client
import json
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SEED = 20261202
DOMAINS = [f"corp{i}.example" for i in range(40)]
SENDERS = 2000          # distinct sender addresses -> ~N/2000 messages each
CAMPAIGNS = 1000        # X-Campaign values -> ~N/1000 messages each
PHRASES = 500           # planted two-word phrases -> ~N/500 messages each


def syllable_words(rng, n):
    cons = "bcdfghjklmnprstvz"
    vow = "aeiou"
    seen, out = set(), []
    while len(out) < n:
        w = "".join(rng.choice(cons) + rng.choice(vow) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


class Corpus:
    """Deterministic, varied messages: Zipf-distributed body words from a 5000-word
    vocabulary (common words hit many messages, rare ones few), distinct subjects,
    2000 senders, planted phrases and an X-Campaign header."""

    def __init__(self, n):
        rng = random.Random(SEED)
        self.n = n
        self.vocab = syllable_words(rng, 5000)
        self.weights = [1.0 / (i + 1) for i in range(len(self.vocab))]
        self.cum = []
        acc = 0.0
        for w in self.weights:
            acc += w
            self.cum.append(acc)
        firsts = syllable_words(rng, 200)
        self.senders = [f"{firsts[i % 200]}.{self.vocab[4000 + i % 1000]}@{DOMAINS[i % 40]}"
                        for i in range(SENDERS)]
        self.phrases = [f"{self.vocab[3000 + i]} {self.vocab[3500 + i]}" for i in range(PHRASES)]

    def message(self, i):
        rng = random.Random(SEED * 31 + i)
        words = rng.choices(self.vocab, cum_weights=self.cum, k=rng.randint(60, 200))
        pos = rng.randrange(len(words))
        words.insert(pos, self.phrases[i % PHRASES])
        body = []
        for k in range(0, len(words), 12):
            body.append(" ".join(words[k:k + 12]))
        sender = self.senders[i % SENDERS]
        subj = " ".join(rng.choices(self.vocab[:2000], k=5)) + f" #{i}"
        prio = ("high", "normal", "low")[i % 3]
        hdr = (f"From: Sender {i % SENDERS} <{sender}>\r\n"
               f"To: user{i % 300}@inbox.example\r\n"
               f"Subject: {subj}\r\n"
               f"Date: Tue, 01 Dec 2026 12:00:00 +0000\r\n"
               f"Message-ID: <bench-{i}@search.example>\r\n"
               f"X-Campaign: camp-{i % CAMPAIGNS}\r\n"
               f"X-Priority-Class: {prio}\r\n"
               f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
        return sender, (hdr + "\r\n".join(body) + "\r\n").encode()


async def read_reply(reader, timeout):
    lines = []
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            raise ConnectionError("connection closed")
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), lines


async def smtp_conn(host, port, corpus, ids, deadline, stats):
    reader, writer = await asyncio.open_connection(host, port)
    code, _ = await read_reply(reader, 30)
    assert code == 220, code
    writer.write(b"EHLO bench.example\r\n")
    code, lines = await read_reply(reader, 30)
    assert code == 250 and any(b"PIPELINING" in l for l in lines), lines
    for i in ids:
        if time.monotonic() > deadline:
            break
        sender, data = corpus.message(i)
        writer.write(f"MAIL FROM:<{sender}>\r\nRCPT TO:<user{i % 300}@inbox.example>\r\nDATA\r\n"
                     .encode())
        codes = [(await read_reply(reader, 30))[0] for _ in range(3)]
        if codes != [250, 250, 354]:
            stats["failed"] += 1
            writer.write(b"RSET\r\n")
            await read_reply(reader, 30)
            continue
        writer.write(data.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        code, _ = await read_reply(reader, 60)
        stats["ok" if code == 250 else "failed"] += 1
    writer.write(b"QUIT\r\n")
    try:
        await read_reply(reader, 5)
    except Exception:
        pass
    writer.close()


async def load(host, port, corpus, connections, seconds):
    deadline = time.monotonic() + seconds
    stats = {"ok": 0, "failed": 0}
    chunks = [range(c, corpus.n, connections) for c in range(connections)]
    await asyncio.gather(*(smtp_conn(host, port, corpus, ch, deadline, stats) for ch in chunks))
    return stats


class RssSampler(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.hwm_kb, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            self.sample()

    def sample(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        self.hwm_kb = max(self.hwm_kb, int(line.split()[1]))
        except OSError:
            pass


def pct(xs, p):
    s = sorted(xs)
    k = min(len(s) - 1, max(0, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def time_http(conn, paths, seconds):
    lat, hits = [], []
    end = time.monotonic() + seconds
    for p in paths:
        if lat and time.monotonic() > end:
            break
        t0 = time.perf_counter()
        conn.request("GET", p)
        r = conn.getresponse()
        body = r.read()
        lat.append((time.perf_counter() - t0) * 1000)
        if r.status != 200:
            raise RuntimeError(f"{p}: HTTP {r.status} {body[:200]!r}")
        j = json.loads(body)
        hits.append(j.get("messages_count", 1) if isinstance(j, dict) else 1)
    return lat, hits


def time_sql(db, sqls, seconds):
    lat, hits = [], []
    end = time.monotonic() + seconds
    for sql, args in sqls:
        if lat and time.monotonic() > end:
            break
        t0 = time.perf_counter()
        rows = db.execute(sql + " ORDER BY m.created DESC LIMIT 50", args).fetchall()
        total = db.execute(sql.replace("SELECT m.id", "SELECT count(*)", 1), args).fetchone()[0]
        lat.append((time.perf_counter() - t0) * 1000)
        hits.append(total)
        assert len(rows) == min(50, total)
    return lat, hits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--like-queries", type=int, default=20,
                    help="LIKE scans per kind (each is a full scan; bounded separately)")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--load-seconds", type=float, default=900)
    ap.add_argument("--kind-seconds", type=float, default=60,
                    help="time bound per query kind (sluice and LIKE each); the count run is reported")
    ap.add_argument("--reuse", help="a --keep dir of an earlier run: skip loading, query its store")
    ap.add_argument("--keep", help="keep the work dir here instead of a temp dir")
    ap.add_argument("--json", default="")
    a = ap.parse_args()

    work = a.reuse or a.keep or tempfile.mkdtemp(prefix="sluice-search-bench-")
    os.makedirs(work, exist_ok=True)
    cfg = os.path.join(work, "sluice.yaml")
    with open(cfg, "w") as f:
        f.write("""log: {format: text, level: warn}
spool: {path: ./spool}
services:
  - {name: default, plugin: store, path: ./store.db, max_messages: 0}
listeners:
  - {name: smtp, plugin: smtp, pipeline: capture, listen: ["127.0.0.1:0"], max_connections: 1000}
  - {name: http, plugin: http, pipeline: capture, listen: ["127.0.0.1:0"]}
pipelines:
  - name: capture
    stages:
      - {plugin: mime}
      - {plugin: store, mailbox: default}
""")
    ready = os.path.join(work, "ready.json")
    if os.path.exists(ready):
        os.remove(ready)
    log = open(os.path.join(work, "sluice.log"), "w")
    proc = subprocess.Popen([os.path.abspath(a.sluice), "serve", "-c", cfg, "--ready-file", ready],
                            cwd=work, stdout=log, stderr=subprocess.STDOUT)
    result = {"messages": a.messages, "queries": a.queries, "sluice": a.sluice,
              "load_before": os.getloadavg()}
    try:
        for _ in range(200):
            if os.path.exists(ready) and os.path.getsize(ready) > 0:
                break
            if proc.poll() is not None:
                sys.exit("sluice exited; see " + log.name)
            time.sleep(0.1)
        else:
            sys.exit("sluice did not become ready")
        eps = json.load(open(ready))["listeners"]
        shost, sport = eps["smtp"][0].rsplit(":", 1)
        hhost, hport = eps["http"][0].rsplit(":", 1)
        rss = RssSampler(proc.pid)
        rss.start()

        corpus = Corpus(a.messages)
        if a.reuse:
            result["load"] = "reused " + a.reuse
        else:
            t0 = time.monotonic()
            st = asyncio.run(load(shost, int(sport), corpus, a.connections, a.load_seconds))
            load_s = time.monotonic() - t0
            result["load"] = {**st, "seconds": round(load_s, 1),
                              "msgs_per_s": round(st["ok"] / load_s, 1)}
            print(f"loaded {st} in {load_s:.1f} s ({st['ok'] / load_s:.0f} msgs/s)", file=sys.stderr)
        load_hwm = rss.hwm_kb

        conn = http.client.HTTPConnection(hhost, int(hport), timeout=30)
        info = json.loads((conn.request("GET", "/api/v1/messages?limit=1"),
                           conn.getresponse().read())[1])
        result["stored"] = info["total"]
        rng = random.Random(SEED + 7)
        n = a.queries
        q = lambda s: "/api/v1/search?query=" + urllib.parse.quote(s)
        vocab = corpus.vocab
        # (kind, [api paths], [(LIKE sql, args)]) -- the same values for both.
        common = [vocab[rng.randrange(0, 5)] for _ in range(n)]        # in most messages
        rare = [vocab[rng.randrange(2500, 3000)] for _ in range(n)]    # in few messages
        phrases = [corpus.phrases[rng.randrange(PHRASES)] for _ in range(n)]
        senders = [corpus.senders[rng.randrange(SENDERS)] for _ in range(n)]
        domains = [DOMAINS[rng.randrange(40)] for _ in range(n)]
        camps = [f"camp-{rng.randrange(CAMPAIGNS)}" for _ in range(n)]
        prios = [("high", "normal", "low")[k % 3] for k in range(n)]
        base = ("SELECT m.id FROM messages m JOIN body_fts b ON b.rowid = m.data_id"
                " LEFT JOIN message_fields f ON f.data_id = m.data_id WHERE ")
        word_like = base + "(m.subject LIKE ?1 OR m.from_addr LIKE ?1 OR m.to_addr LIKE ?1 OR b.body LIKE ?1)"
        kinds = [
            ("word, rare (~0.5% of messages)", [q(w) for w in rare], [(word_like, (f"%{w}%",)) for w in rare]),
            ("word, common (most messages)", [q(w) for w in common], [(word_like, (f"%{w}%",)) for w in common]),
            ('phrase "w1 w2" (~0.2%)', [q(f'"{p}"') for p in phrases], [(word_like, (f"%{p}%",)) for p in phrases]),
            ("from:address (~0.1%)", [q(f"from:{s}") for s in senders], [(base + "m.from_addr LIKE ?1", (f"%{s}%",)) for s in senders]),
            ("from:domain", [q(f"from:{d}") for d in domains], [(base + "m.from_addr LIKE ?1", (f"%{d}%",)) for d in domains]),
            ("header:X-Campaign:value (0.1%)", [q(f"header:X-Campaign:{c}") for c in camps],
             [(base + "CAST(f.fields AS TEXT) LIKE ?1", (f"%X-Campaign_{c}%",)) for c in camps]),
            ("header:X-Priority-Class:value (1/3)", [q(f"header:X-Priority-Class:{p}") for p in prios],
             [(base + "CAST(f.fields AS TEXT) LIKE ?1", (f"%X-Priority-Class_{p}%",)) for p in prios]),
        ]
        rows = []
        ks = a.kind_seconds
        lat, _ = time_http(conn, ["/api/v1/messages"] * n, ks)
        rows.append({"kind": "list (GET /api/v1/messages, 50 newest)", "n": len(lat),
                     "p50": pct(lat, 50), "p99": pct(lat, 99)})
        print(f"list: p50 {rows[-1]['p50']:.2f} p99 {rows[-1]['p99']:.2f} n {len(lat)}", file=sys.stderr)
        ro = sqlite3.connect(f"file:{os.path.join(work, 'store.db')}?mode=ro", uri=True)
        rnd = random.Random(SEED + 11)
        all_ids = [r[0] for r in ro.execute("SELECT id FROM messages")]
        ro.close()
        fetch_ids = [rnd.choice(all_ids) for _ in range(n)]
        lat, _ = time_http(conn, [f"/api/v1/message/{i}" for i in fetch_ids], ks)
        rows.append({"kind": "message (GET /api/v1/message/{ID}, random of all)", "n": len(lat),
                     "p50": pct(lat, 50), "p99": pct(lat, 99)})
        print(f"message: p50 {rows[-1]['p50']:.2f} p99 {rows[-1]['p99']:.2f}", file=sys.stderr)
        for kind, paths, sqls in kinds:
            lat, hits = time_http(conn, paths, ks)
            rows.append({"kind": kind, "search": True, "n": len(lat), "p50": pct(lat, 50), "p99": pct(lat, 99),
                         "hits_median": statistics.median(hits), "sqls": sqls})
            print(f"{kind}: p50 {rows[-1]['p50']:.2f} p99 {rows[-1]['p99']:.2f} n {len(lat)}", file=sys.stderr)
        conn.close()
        rss.sample()
        result["peak_rss_mb_load"] = round(load_hwm / 1024, 1)
        result["peak_rss_mb"] = round(rss.hwm_kb / 1024, 1)
        rss.stop.set()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    # The LIKE baseline on a copy (sluice stopped, WAL checkpointed on close).
    copy = os.path.join(work, "copy.db")
    src = sqlite3.connect(os.path.join(work, "store.db"))
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.execute("PRAGMA cache_size=-262144")  # 256 MiB: warm scans, the baseline's best case
    for r in rows:
        if not r.get("search"):
            continue
        sqls = r.pop("sqls")
        sel = sqls[:a.like_queries]
        time_sql(dst, sel[:1], ks)  # warm the page cache once
        lat, hits = time_sql(dst, sel, ks)
        r["like_p50"], r["like_p99"] = pct(lat, 50), pct(lat, 99)
        r["like_n"] = len(lat)
        r["like_hits_median"] = statistics.median(hits)
        print(f"LIKE {r['kind']}: p50 {r['like_p50']:.1f}", file=sys.stderr)
    dst.close()
    result["rows"] = rows
    result["load_after"] = os.getloadavg()

    print(f"\n{result['stored']} messages stored; load {result['load']}; peak RSS (VmHWM) "
          f"{result['peak_rss_mb_load']} MB after loading, {result['peak_rss_mb']} MB at the end\n")
    print("| query | n | sluice p50 ms | sluice p99 ms | matches (median) | LIKE p50 ms | LIKE p99 ms | LIKE matches | vs LIKE (p50) | < 50 ms p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if r.get("search"):
            print(f"| {r['kind']} | {r['n']} / {r['like_n']} | {r['p50']:.2f} | {r['p99']:.2f} | {r['hits_median']:,.0f} | "
                  f"{r['like_p50']:.1f} | {r['like_p99']:.1f} | {r['like_hits_median']:,.0f} | {r['like_p50'] / r['p50']:.1f}x | "
                  f"{'met' if r['p99'] < 50 else '**missed**'} |")
        else:
            print(f"| {r['kind']} | {r['n']} | {r['p50']:.2f} | {r['p99']:.2f} | | | | | | |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    os.remove(copy)
    if not a.keep and not a.reuse:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
