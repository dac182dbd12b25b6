#!/usr/bin/env python3
"""How big a gzip /metrics answer gets when it is assembled from pre-compressed segments
(issue "Scale", pre-compressed scrapes): splits a text exposition into one chunk per
(family, target) -- the unit the store renders -- and compresses each as a raw deflate
segment ending on a full flush, (a) independently and (b) with the previous chunk as a
preset dictionary (what a segment may reference when the one before it is known), next to
one deflate stream of the whole text.

    # an exposition of the 2,000 x 5 fleet (see benches/fleet.sh for the simulator flags):
    backup-simulator --listen 127.0.0.1:18555 --fleet 2000x5 --token bench &
    T=bench backup-exporter --config fleet.yaml --once > expo.txt
    python3 benches/gzip-segments.py expo.txt
"""
import re
import sys
import time
import zlib


def chunks(text):
    """(family, target, bytes) in exposition order."""
    out, cur, buf, family = [], None, [], None
    for line in text.split(b"\n"):
        if not line:
            continue
        if line.startswith(b"# HELP "):
            family = line.split()[2]
        if line.startswith(b"#"):
            key = (family, b"#")
        else:
            m = re.search(rb'(server|target)="([^"]*)"', line)
            key = (family, m.group(2) if m else b"-")
        if key != cur:
            if cur is not None:
                out.append((cur[0], cur[1], b"".join(l + b"\n" for l in buf)))
            cur, buf = key, []
        buf.append(line)
    if cur is not None:
        out.append((cur[0], cur[1], b"".join(l + b"\n" for l in buf)))
    return out


def main(path):
    text = open(path, "rb").read()
    parts = chunks(text)
    mib = 2 ** 20
    print(f"plain: {len(text) / mib:.2f} MiB, {len(parts)} (family, target) chunks")
    for level in (1, 6):
        print(f"level {level}: one stream {len(zlib.compress(text, level)) / mib:.2f} MiB")
        for label, use_dict in (("independent segments", False), ("previous chunk as dictionary", True)):
            started, total, prev = time.time(), 0, b""
            for _, _, data in parts:
                if use_dict and prev:
                    c = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=prev[-32768:])
                else:
                    c = zlib.compressobj(level, zlib.DEFLATED, -15)
                total += len(c.compress(data) + c.flush(zlib.Z_FULL_FLUSH))
                prev = data
            print(f"level {level}: {label}: {total / mib:.2f} MiB ({time.time() - started:.2f} s in Python)")


if __name__ == "__main__":
    main(sys.argv[1])
