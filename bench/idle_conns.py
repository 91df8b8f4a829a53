#!/usr/bin/env python3
"""Open many keep-alive connections to a proxy, send one request on each, then hold them idle.

Used by bench/run.sh (scenario 5) to measure a proxy's resident memory with N idle clients.
Python 3 standard library only. Loopback only.

    idle_conns.py --port 18080 --count 10000 --hold 6 --status FILE

Connections are opened in batches (connect, send `GET /`, wait for the whole response), so that
the proxy's accept queue is never flooded. When all are open it writes
    ready held=H pending=P failed=F
to the status file (held: answered, pending: connected but not answered within the batch
deadline, e.g. beyond HAProxy's maxconn; failed: refused/reset/timeout), holds every socket idle
for --hold seconds, then checks how many the proxy closed meanwhile and writes
    done held=H pending=P failed=F closed_by_peer=C
and exits (closing everything). It never runs longer than --deadline seconds in total.
"""
import argparse
import os
import resource
import selectors
import socket
import sys
import time


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(need, soft)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        sys.exit(f"idle_conns.py: need {need} open files, the limit is {soft} (ulimit -n)")


def response_complete(buf):
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return False
    head = buf[:head_end].decode("latin-1").lower()
    body = len(buf) - head_end - 4
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip() == "content-length":
            return body >= int(value.strip())
        if name.strip() == "transfer-encoding" and "chunked" in value:
            return buf.endswith(b"0\r\n\r\n")
    return True


def write_status(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--hold", type=float, default=6.0, help="seconds to hold the idle connections")
    ap.add_argument("--deadline", type=float, default=180.0, help="hard bound on the whole run")
    ap.add_argument("--status", required=True, help="file to write ready/done lines to")
    args = ap.parse_args()
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        sys.exit("idle_conns.py: loopback addresses only")
    raise_fd_limit(args.count + 64)

    started = time.monotonic()
    request = (f"GET / HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
               "Cookie: uid=bench-user-42; beta=0\r\nUser-Agent: sluice-bench-idle\r\n\r\n").encode()
    sel = selectors.DefaultSelector()
    held, pending, failed = [], [], 0
    opened = 0
    while opened < args.count and time.monotonic() - started < args.deadline:
        batch = []
        for _ in range(min(args.batch, args.count - opened)):
            opened += 1
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(5.0)
            try:
                s.connect((args.host, args.port))
                s.sendall(request)
            except OSError:
                failed += 1
                s.close()
                continue
            s.setblocking(False)
            batch.append(s)
            sel.register(s, selectors.EVENT_READ, bytearray())
        batch_deadline = time.monotonic() + 5.0
        waiting = set(batch)
        while waiting and time.monotonic() < batch_deadline:
            for key, _ in sel.select(timeout=max(0.0, batch_deadline - time.monotonic())):
                s, buf = key.fileobj, key.data
                try:
                    chunk = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if not chunk:
                    sel.unregister(s)
                    s.close()
                    waiting.discard(s)
                    failed += 1
                    continue
                buf += chunk
                if response_complete(bytes(buf)) and s in waiting:
                    if not buf.startswith(b"HTTP/1.1 200") and not buf.startswith(b"HTTP/1.0 200"):
                        sel.unregister(s)
                        s.close()
                        failed += 1
                    else:
                        held.append(s)
                    waiting.discard(s)
        for s in waiting:
            pending.append(s)  # connected (kernel accept queue) but not answered in time
        # Stop watching the answered sockets until the final check.
        for s in batch:
            if s in held:
                sel.unregister(s)
                sel.register(s, selectors.EVENT_READ, None)
    counts = f"held={len(held)} pending={len(pending)} failed={failed}"
    write_status(args.status, f"ready {counts} seconds={time.monotonic() - started:.1f}")
    print(f"idle_conns: ready {counts}", flush=True)

    time.sleep(max(0.0, min(args.hold, args.deadline - (time.monotonic() - started))))
    closed = 0
    for key, _ in sel.select(timeout=0):
        s = key.fileobj
        if s in held or key.data is None:
            try:
                if s.recv(1, socket.MSG_PEEK) == b"":
                    closed += 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                closed += 1
    write_status(args.status, f"done {counts} closed_by_peer={closed}")
    print(f"idle_conns: done {counts} closed_by_peer={closed}", flush=True)
    for s in held + pending:
        s.close()


if __name__ == "__main__":
    main()
