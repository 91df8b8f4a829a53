#!/usr/bin/env python3
"""Send N sequential keep-alive GET requests to a proxy (one connection, reopened only if the
server closes it). Used by bench/run.sh to warm a proxy and to drive the callgrind runs.
Python 3 standard library only; loopback only. Exits 1 if any response is not 200.

    seq_client.py --port 18080 --requests 2000
"""
import argparse
import http.client
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request")
    args = ap.parse_args()
    if not args.host.startswith("127."):
        sys.exit("seq_client.py: loopback addresses only")
    headers = {"Cookie": "uid=bench-user-42; beta=0", "User-Agent": "sluice-bench-seq"}
    conn = http.client.HTTPConnection(args.host, args.port, timeout=args.timeout)
    bad = consecutive = 0
    started = time.monotonic()
    for i in range(args.requests):
        if consecutive >= 20:
            print(f"seq_client: giving up after 20 failures in a row ({i} of {args.requests} sent)", file=sys.stderr)
            bad += args.requests - i
            break
        try:
            conn.request("GET", "/", headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                bad += 1
                consecutive += 1
            else:
                consecutive = 0
        except (OSError, http.client.HTTPException) as e:
            bad += 1
            consecutive += 1
            conn.close()
            if bad <= 5:
                print(f"seq_client: request {i}: {e}", file=sys.stderr)
    conn.close()
    elapsed = time.monotonic() - started
    print(f"seq_client: requests={args.requests} bad={bad} seconds={elapsed:.2f}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
