#!/usr/bin/env python3
"""load_client.py — steady HTTP/1.1 keep-alive load for a bounded time (used by the .sh scenarios).

    load_client.py --port P [--connections 8] [--seconds 20] [--rate 0] [--header 'K: V']...

Each connection is one thread sending GET / back to back (or, with --rate R, R req/s in total).
`{n}` in a header value becomes a number unique to each request (connection and count), e.g.
`--header 'Cookie: uid=u{n}'` gives every request its own sticky key.
Every response must be a 2xx; anything else (status, reset, close mid-response, timeout) is an
error. At the end prints one line
    LOAD requests=N ok=N non2xx=N errors=N seconds=S rps=R versions=v1:N,v2:N
(versions from the x-backend-version header) and the first errors. Exit 0 if errors=non2xx=0.
Loopback only; stops by itself after --seconds.
"""
import argparse
import os
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import HTTPConn  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--rate", type=float, default=0, help="total requests per second; 0 = as fast as possible")
    ap.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    ap.add_argument("--path", default="/")
    args = ap.parse_args()
    headers = dict((h.split(":", 1)[0].strip(), h.split(":", 1)[1].strip()) for h in args.header)

    lock = threading.Lock()
    stats = {"requests": 0, "ok": 0, "non2xx": 0, "errors": 0}
    versions, first_errors = {}, []
    deadline = time.monotonic() + args.seconds
    interval = args.connections / args.rate if args.rate > 0 else 0.0

    templated = any("{n}" in v for v in headers.values())

    def work(index):
        conn = HTTPConn(args.port, timeout=10.0)
        nxt = time.monotonic()
        sent = 0
        while time.monotonic() < deadline:
            sent += 1
            if templated:
                n = f"{index}-{sent}"
                request_headers = {k: v.replace("{n}", n) for k, v in headers.items()}
            else:
                request_headers = headers
            if interval:
                nxt += interval
                delay = nxt - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                status, hdrs, _ = conn.get(args.path, request_headers)
                with lock:
                    stats["requests"] += 1
                    if 200 <= status < 300:
                        stats["ok"] += 1
                        v = hdrs.get("x-backend-version", "?")
                        versions[v] = versions.get(v, 0) + 1
                    else:
                        stats["non2xx"] += 1
                        if len(first_errors) < 5:
                            first_errors.append(f"status {status}")
            except Exception as e:  # noqa: BLE001 - every failure is counted
                with lock:
                    stats["requests"] += 1
                    stats["errors"] += 1
                    if len(first_errors) < 5:
                        first_errors.append(repr(e))
        conn.close()

    t0 = time.monotonic()
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + 30)
    secs = time.monotonic() - t0
    vs = ",".join(f"{k}:{v}" for k, v in sorted(versions.items()))
    print(f"LOAD requests={stats['requests']} ok={stats['ok']} non2xx={stats['non2xx']} errors={stats['errors']} "
          f"seconds={secs:.1f} rps={stats['requests'] / secs:.0f} versions={vs}", flush=True)
    for e in first_errors:
        print(f"  error: {e}", flush=True)
    sys.exit(0 if stats["errors"] == 0 and stats["non2xx"] == 0 else 1)


if __name__ == "__main__":
    main()
