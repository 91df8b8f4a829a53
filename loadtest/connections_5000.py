#!/usr/bin/env python3
"""connections_5000.py — 5,000 concurrent client connections, a few requests each, zero errors.

    loadtest/connections_5000.py [--connections 5000] [--requests-per-conn 3] [--threads N]

Starts one `sluice backend` and `sluice run` (one route, keep-alive both sides) on free loopback
ports. Opens all the connections first and holds them open together (a barrier: no connection
sends anything until every one is connected), then each connection sends its requests one
after the other on the same socket, all connections at once.

Asserts: all connections were open at the same time, every request got a 200 on its own
connection (no reset, no close, no timeout), the proxy is still running, and it does not keep
clearly more file descriptors afterwards (over half the client count more than before: the
client sockets were not released).
Limits: the client holds 5,000 fds, the proxy 5,000 + upstreams (the machine allows 20,000 per
process). Bounded: 60 s to connect, 60 s for the requests. Exit 0 pass, 1 fail, 2 setup error.
"""
import argparse
import asyncio
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import passed, Procs, fail, log, raise_fd_limit, sluice_binary, start_backend, start_proxy  # noqa: E402


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, chunked, close = 0, False, False
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k, v = k.strip().lower(), v.strip().lower()
        if k == "content-length":
            length = int(v)
        elif k == "transfer-encoding" and "chunked" in v:
            chunked = True
        elif k == "connection" and v == "close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status, close


async def run(port, n, per_conn):
    connected = 0
    all_connected = asyncio.Event()
    peak = 0
    errors = []
    ok = 0

    async def client(i):
        nonlocal connected, peak, ok
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 60)
        except Exception as e:  # noqa: BLE001
            errors.append(f"conn {i}: connect: {e!r}")
            connected += 1  # count it so the barrier still opens
            if connected == n:
                all_connected.set()
            return
        connected += 1
        peak = max(peak, connected)
        if connected == n:
            all_connected.set()
        try:
            await asyncio.wait_for(all_connected.wait(), 60)
            for r in range(per_conn):
                writer.write(f"GET /c{i}/r{r} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
                await writer.drain()
                status, close = await asyncio.wait_for(read_response(reader), 60)
                if status != 200:
                    errors.append(f"conn {i} request {r}: status {status}")
                    break
                ok += 1
                if close and r + 1 < per_conn:
                    errors.append(f"conn {i} request {r}: proxy closed the keep-alive connection")
                    break
        except Exception as e:  # noqa: BLE001
            errors.append(f"conn {i}: {e!r}")
        finally:
            writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(n)))
    return peak, ok, errors, time.monotonic() - t0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--connections", type=int, default=5000)
    ap.add_argument("--requests-per-conn", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="sluice --threads (default: its own)")
    ap.add_argument("--connect-timeout", default=None,
                    help="the backend's connectTimeout, e.g. 5s (default: Sluice's own, 1s)")
    args = ap.parse_args()
    limit = raise_fd_limit(20000)
    if limit < args.connections + 100:
        fail(f"the open-file limit is {limit}; {args.connections} connections need more")

    sluice = sluice_binary()
    procs = Procs()
    backend = start_backend(procs, sluice, "v1")
    ct = f", connectTimeout: {args.connect_timeout}" if args.connect_timeout else ""
    proxy, port, _ = start_proxy(procs, sluice, f"""listen: ["LISTEN"]
backends:
  app-v1: {{ version: v1, endpoints: ["127.0.0.1:{backend}"]{ct} }}
routes:
  - name: web
    backend: app-v1
""", threads=args.threads)
    fds_before = fd_count(proxy.pid)
    log(f"proxy PID {proxy.pid} on 127.0.0.1:{port}: {fds_before} fds; opening {args.connections} connections")
    peak, ok, errors, secs = asyncio.run(run(port, args.connections, args.requests_per_conn))
    want = args.connections * args.requests_per_conn
    log(f"{peak} connections open at once, {ok}/{want} responses 200 in {secs:.1f}s, {len(errors)} errors")
    kinds = {}
    for e in errors:
        k = e.split(": ", 1)[-1]
        kinds[k] = kinds.get(k, 0) + 1
    for k, c in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]:
        log(f"  {c} x {k}")
    time.sleep(2)
    alive = proxy.poll() is None
    fds_after = fd_count(proxy.pid) if alive else -1
    log(f"proxy fds after the clients closed: {fds_after} (before: {fds_before})")

    problems = []
    if peak < args.connections:
        problems.append(f"only {peak} of {args.connections} connections were open at once")
    if errors or ok != want:
        problems.append(f"{len(errors)} errors, {ok}/{want} responses 200")
    if not alive:
        problems.append(f"the proxy exited ({proxy.returncode})")
    elif fds_after > fds_before + args.connections // 2:
        # Idle pooled upstream connections may stay; client sockets must not.
        problems.append(f"the proxy holds {fds_after} fds after the clients left (before: {fds_before})")
    if problems:
        fail("; ".join(problems))
    passed("connections_5000")


if __name__ == "__main__":
    main()
