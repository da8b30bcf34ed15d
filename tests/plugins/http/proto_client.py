#!/usr/bin/python3
"""Raw-socket and WebSocket clients for http_protocol_test (python3-websocket for the
well-behaved WebSocket peer, plain sockets for the misbehaving ones). Prints one JSON
object with what it saw; every wait is bounded.

  proto_client.py keepalive HOST PORT SECONDS
      open two event streams: a raw one that completes the handshake and then never answers
      a ping, and a websocket-client one that answers pings (it pongs on receipt). Watch
      both for SECONDS; report the frames the raw peer got before the server closed it, how
      long that took, and whether the answering peer was pinged and is still open.
  proto_client.py slowreader HOST PORT PATH COUNT SECONDS
      connect with a tiny receive buffer, pipeline COUNT GETs of PATH and read nothing;
      meanwhile fetch /livez on other connections (they must not wait for the stuck one).
      After SECONDS, drain the stuck socket and report whether the server closed it and how
      many bytes came.
"""
import base64
import json
import os
import socket
import struct
import sys
import time

import websocket


def handshake(host, port):
    s = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /api/events HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n" % (host, port, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("closed during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0].decode()
    return s, status, head.split(b"\r\n\r\n", 1)[1]


def read_frames(buf):
    """Parses complete unmasked server frames from buf; returns (frames, rest)."""
    frames = []
    while len(buf) >= 2:
        op = buf[0] & 0x0F
        n = buf[1] & 0x7F
        pos = 2
        if n == 126:
            if len(buf) < 4:
                break
            n = struct.unpack("!H", buf[2:4])[0]
            pos = 4
        elif n == 127:
            if len(buf) < 10:
                break
            n = struct.unpack("!Q", buf[2:10])[0]
            pos = 10
        if len(buf) < pos + n:
            break
        frames.append((op, buf[pos:pos + n]))
        buf = buf[pos + n:]
    return frames, buf


def keepalive(host, port, seconds):
    seconds = float(seconds)
    raw, status, buf = handshake(host, port)
    good = websocket.create_connection("ws://%s:%s/api/events" % (host, port), timeout=10)
    t0 = time.time()
    ops = []
    closed_after = None
    good_pings = 0
    good_open = True
    deadline = t0 + seconds
    raw.settimeout(0.05)
    good.settimeout(0.05)
    while time.time() < deadline:
        if closed_after is None:
            try:
                chunk = raw.recv(65536)
                if not chunk:
                    closed_after = time.time() - t0
                else:
                    buf += chunk
                    frames, buf = read_frames(buf)
                    ops.extend(op for op, _ in frames)
            except socket.timeout:
                pass
            except (ConnectionResetError, BrokenPipeError):
                closed_after = time.time() - t0
        if good_open:
            try:
                op, _ = good.recv_data(control_frame=True)  # answers a ping with a pong
                if op == websocket.ABNF.OPCODE_PING:
                    good_pings += 1
                elif op == websocket.ABNF.OPCODE_CLOSE:
                    good_open = False
            except websocket.WebSocketTimeoutException:
                pass
            except Exception:
                good_open = False
    print(json.dumps({"status": status, "raw_ops": ops, "raw_closed_after": closed_after,
                      "good_pings": good_pings, "good_open": good_open}))


def slowreader(host, port, path, count, seconds):
    count = int(count)
    seconds = float(seconds)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((host, int(port)))
    req = ("GET %s HTTP/1.1\r\nHost: %s:%s\r\n\r\n" % (path, host, port)).encode()
    s.sendall(req * count)
    # The stuck connection must not hold anyone else up.
    others = []
    t_end = time.time() + seconds
    while time.time() < t_end:
        t = time.time()
        o = socket.create_connection((host, int(port)), timeout=10)
        o.sendall(("GET /livez HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n"
                   % (host, port)).encode())
        data = b""
        while True:
            chunk = o.recv(4096)
            if not chunk:
                break
            data += chunk
        o.close()
        others.append({"status": data.split(b"\r\n", 1)[0].decode(errors="replace"),
                       "seconds": round(time.time() - t, 3)})
        time.sleep(0.25)
    # Now read what is there: the server has given up on us, so this ends in EOF or RST
    # long before everything that was asked for.
    got = 0
    closed = False
    s.settimeout(10)
    stop_at = time.time() + 20
    while time.time() < stop_at:
        try:
            chunk = s.recv(1 << 20)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        except socket.timeout:
            break
        if not chunk:
            closed = True
            break
        got += len(chunk)
    print(json.dumps({"closed": closed, "bytes": got, "others": others}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "keepalive":
        keepalive(*sys.argv[2:])
    elif mode == "slowreader":
        slowreader(*sys.argv[2:])
    else:
        sys.exit("unknown mode " + mode)
