#!/usr/bin/env python3
"""split_accuracy.py — does a 90/10 split send 10% of the requests to the canary?

    loadtest/split_accuracy.py [--requests 100000] [--mode random|sticky|both] [--workers 8]

Starts two `sluice backend`s (v1, v2) and `sluice run` with `split: {v1: 90, v2: 10}` on free
loopback ports, sends the requests over a few keep-alive connections and counts the version of
each answer (x-backend-version).

- random: requests carry no sticky key, so each one is an independent draw: the count of v2 is
  Binomial(n, 0.1). The acceptance interval [lo, hi] is computed from the exact binomial
  distribution so that each tail holds at most 5e-7: a correct proxy fails with probability
  < 1e-6. The interval is printed.
- sticky: the route has `sticky: {cookie: uid}` and every request carries a different uid. A key
  hashes to a bucket in [0, 10000), so a well-mixed hash over distinct keys behaves like the
  random draw and the same interval applies. Then 2,000 of those uids are sent again: each must
  land on the same version as the first time.

Asserts: every response 200, v2 share inside the interval (per mode), stickiness holds.
Exit 0 pass, 1 fail, 2 setup error. Bounded: stops by itself (per-request timeout 10 s).
"""
import argparse
import math
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import passed, HTTPConn, Procs, fail, log, sluice_binary, start_backend, start_proxy  # noqa: E402

P_CANARY = 0.10
ALPHA = 1e-6


def binomial_interval(n, p, alpha):
    """Smallest lo and largest hi with P(X < lo) <= alpha/2 and P(X > hi) <= alpha/2."""
    logpmf = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
              + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(n + 1)]
    pmf = [math.exp(v) for v in logpmf]
    lo, acc = 0, 0.0
    while acc + pmf[lo] <= alpha / 2:
        acc += pmf[lo]
        lo += 1
    low_tail = acc
    hi, acc = n, 0.0
    while acc + pmf[hi] <= alpha / 2:
        acc += pmf[hi]
        hi -= 1
    return lo, hi, low_tail + acc


def drive(port, n, workers, header_for):
    """Sends n GETs over `workers` connections; returns ({version: count}, errors, [versions])."""
    versions = [None] * n
    errors = []
    lock = threading.Lock()

    def work(w):
        conn = HTTPConn(port)
        for i in range(w, n, workers):
            try:
                status, hdrs, _ = conn.get("/", header_for(i))
                if status != 200:
                    raise RuntimeError(f"status {status}")
                versions[i] = hdrs.get("x-backend-version", "?")
            except Exception as e:  # noqa: BLE001 - any failure is a test failure, recorded
                with lock:
                    errors.append(f"request {i}: {e}")
        conn.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counts = {}
    for v in versions:
        if v is not None:
            counts[v] = counts.get(v, 0) + 1
    return counts, errors, versions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--mode", choices=["random", "sticky", "both"], default="both")
    ap.add_argument("--workers", type=int, default=8, help="keep-alive connections")
    args = ap.parse_args()
    n = args.requests

    lo, hi, tails = binomial_interval(n, P_CANARY, ALPHA)
    log(f"acceptance interval for v2 out of {n} at p={P_CANARY}: [{lo}, {hi}] "
        f"(share {lo / n:.4%} .. {hi / n:.4%}; P(correct proxy outside) = {tails:.2e} < {ALPHA:g})")

    sluice = sluice_binary()
    procs = Procs()
    v1 = start_backend(procs, sluice, "v1")
    v2 = start_backend(procs, sluice, "v2")
    failures = []
    modes = ["random", "sticky"] if args.mode == "both" else [args.mode]
    for mode in modes:
        sticky = "    sticky: { cookie: uid }\n" if mode == "sticky" else ""
        proxy, port, _ = start_proxy(procs, sluice, f"""listen: ["LISTEN"]
backends:
  app-v1: {{ version: v1, endpoints: ["127.0.0.1:{v1}"] }}
  app-v2: {{ version: v2, endpoints: ["127.0.0.1:{v2}"] }}
routes:
  - name: web
    split: {{ app-v1: 90, app-v2: 10 }}
{sticky}""", name=f"sluice-{mode}")
        header_for = (lambda i: {"Cookie": f"uid=user-{i:07d}"}) if mode == "sticky" else (lambda i: None)
        started = time.monotonic()
        counts, errors, versions = drive(port, n, args.workers, header_for)
        secs = time.monotonic() - started
        got = counts.get("v2", 0)
        ok = not errors and lo <= got <= hi and sum(counts.values()) == n
        log(f"{mode}: {n} requests in {secs:.1f}s ({n / secs:,.0f} req/s): {counts}; "
            f"v2 {got} = {got / n:.4%}, interval [{lo}, {hi}] -> {'ok' if ok else 'OUT'}; errors {len(errors)}")
        for e in errors[:5]:
            log(f"  {e}")
        if errors:
            failures.append(f"{mode}: {len(errors)} failed requests")
        elif not lo <= got <= hi:
            failures.append(f"{mode}: v2 got {got} of {n}, outside [{lo}, {hi}]")
        if mode == "sticky" and not errors:
            again = list(range(0, n, max(1, n // 2000)))[:2000]
            counts2, errors2, versions2 = drive(port, len(again), args.workers,
                                                lambda j: {"Cookie": f"uid=user-{again[j]:07d}"})
            moved = sum(1 for j, i in enumerate(again) if versions2[j] != versions[i])
            log(f"sticky: {len(again)} uids sent again: {moved} changed version, {len(errors2)} errors")
            if moved or errors2:
                failures.append(f"sticky: {moved} of {len(again)} uids changed version, {len(errors2)} errors")
        if proxy.poll() is not None:
            failures.append(f"{mode}: the proxy exited ({proxy.returncode})")
        procs.stop(proxy)

    if failures:
        fail("; ".join(failures))
    passed("split_accuracy")


if __name__ == "__main__":
    main()
