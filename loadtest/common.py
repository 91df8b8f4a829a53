"""Shared pieces of the Sluice load tests: find the binary, start and stop processes (by PID,
always), pick free loopback ports, a small keep-alive HTTP/1.1 client, and VmRSS.

Python 3 standard library only. Every address is on 127.0.0.0/8.
Exit codes used by the scenarios: 0 pass, 1 fail, 2 setup error, 77 feature not available yet.
"""
import atexit
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = 77
_passed = False


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def passed(name):
    """Report a pass; the scenario's temporary files (configs, logs) are then removed at exit."""
    global _passed
    _passed = True
    print(f"PASS: {name}", flush=True)


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def setup_error(msg):
    print(f"ERROR: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def raise_fd_limit(need=20000):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(need, hard) if hard != resource.RLIM_INFINITY else need
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def sluice_binary():
    """$SLUICE, else an existing build (release first), else a release build into .build-bench."""
    env = os.environ.get("SLUICE")
    if env:
        if not os.access(env, os.X_OK):
            setup_error(f"SLUICE={env} is not an executable")
        return env
    for rel in (".build-bench/release/sluice", ".build/release/sluice", ".build/debug/sluice"):
        p = ROOT / rel
        if p.exists() and os.access(p, os.X_OK):
            return str(p)
    # The bench's build, so both share one build in .build-bench.
    log("no sluice binary found: building (bench/build-release.sh)")
    r = subprocess.run([str(ROOT / "bench/build-release.sh")], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    p = r.stdout.strip()
    if r.returncode != 0 or not os.access(p, os.X_OK):
        setup_error("swift build failed; set SLUICE=/path/to/sluice to use another binary")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class Procs:
    """Processes this test started; all are stopped by PID at exit."""

    def __init__(self):
        self.procs = []
        self.tmp = Path(tempfile.mkdtemp(prefix="sluice-loadtest-"))
        atexit.register(self.stop_all)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(130))

    def start(self, name, argv, port=None, timeout=30.0, cwd=None):
        logf = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd)
        p.name, p.logpath = name, self.tmp / f"{name}.log"
        self.procs.append(p)
        if port is not None:
            deadline = time.monotonic() + timeout
            while not port_open(port):
                if p.poll() is not None:
                    setup_error(f"{name} exited ({p.returncode}) before listening on 127.0.0.1:{port}:\n"
                                + self.tail(p))
                if time.monotonic() > deadline:
                    setup_error(f"{name} not listening on 127.0.0.1:{port} after {timeout}s:\n" + self.tail(p))
                time.sleep(0.05)
        return p

    @staticmethod
    def tail(p, lines=15):
        try:
            return "\n".join(Path(p.logpath).read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, p, timeout=15.0):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        if _passed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print(f"logs kept in {self.tmp}", flush=True)


def start_backend(procs, sluice, version, latency=None):
    port = free_port()
    argv = [sluice, "backend", "--listen", f"127.0.0.1:{port}", "--version", version]
    if latency:
        argv += ["--latency", latency]
    procs.start(f"backend-{version}-{port}", argv, port=port)
    return port


def start_proxy(procs, sluice, config_text, threads=None, name="sluice"):
    """Writes the config (with LISTEN replaced by a free port) and starts `sluice run`."""
    port = free_port()
    cfg = procs.tmp / f"{name}.yaml"
    cfg.write_text(config_text.replace("LISTEN", f"127.0.0.1:{port}"))
    argv = [sluice, "run", "--config", str(cfg)]
    if threads:
        argv += ["--threads", str(threads)]
    p = procs.start(name, argv, port=port)
    return p, port, cfg


def admin_request(sock_path, method, path, body=None, timeout=10.0):
    """One HTTP/1.1 request to the admin API on its unix socket; returns (status, text)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(sock_path)
        data = (body or "").encode()
        s.sendall((f"{method} {path} HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n"
                   f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode() + data)
        buf = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        body_out = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body_out, rest = body_out + rest[:size], rest[size + 2:]
        rest = body_out
    return status, rest.decode("utf-8", "replace")


def ctl(sluice, sock_path, *args, timeout=15.0):
    """Runs `sluice ctl --socket S ARGS` (the SPEC form); if the CLI rejects that form as a usage
    error (exit 64), retries as `sluice ctl SUB --socket S REST`. Returns CompletedProcess."""
    r = subprocess.run([sluice, "ctl", "--socket", sock_path, *args], capture_output=True, text=True, timeout=timeout)
    if r.returncode == 64:
        r = subprocess.run([sluice, "ctl", args[0], "--socket", sock_path, *args[1:]],
                           capture_output=True, text=True, timeout=timeout)
    return r


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class HTTPConn:
    """A minimal keep-alive HTTP/1.1 client over one socket (reconnects when the server closes)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        assert host.startswith("127."), "loopback only"
        self.addr, self.timeout, self.sock, self.buf = (host, port), timeout, None, b""

    def connect(self):
        self.sock = socket.create_connection(self.addr, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the server")
        self.buf += chunk

    def get(self, path="/", headers=None):
        """Returns (status, {lowercase header: value}, body)."""
        if self.sock is None:
            self.connect()
        lines = [f"GET {path} HTTP/1.1", f"Host: {self.addr[0]}:{self.addr[1]}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            while b"\r\n\r\n" not in self.buf:
                self._fill()
            head, _, self.buf = self.buf.partition(b"\r\n\r\n")
            status_line, *hdr_lines = head.decode("latin-1").split("\r\n")
            status = int(status_line.split()[1])
            hdrs = {}
            for h in hdr_lines:
                k, _, v = h.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            if "content-length" in hdrs:
                n = int(hdrs["content-length"])
                while len(self.buf) < n:
                    self._fill()
                body, self.buf = self.buf[:n], self.buf[n:]
            elif "chunked" in hdrs.get("transfer-encoding", ""):
                body = b""
                while True:
                    while b"\r\n" not in self.buf:
                        self._fill()
                    size_line, _, self.buf = self.buf.partition(b"\r\n")
                    size = int(size_line.split(b";")[0], 16)
                    while len(self.buf) < size + 2:
                        self._fill()
                    body += self.buf[:size]
                    self.buf = self.buf[size + 2:]
                    if size == 0:
                        break
            else:
                body = b""
            if hdrs.get("connection", "").lower() == "close":
                self.close()
            return status, hdrs, body
        except Exception:
            self.close()
            raise


if __name__ == "__main__":
    # `python3 common.py admin SOCK METHOD PATH [BODY]`: print the admin API's answer (for lib.sh).
    if len(sys.argv) >= 5 and sys.argv[1] == "admin":
        st, text = admin_request(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] if len(sys.argv) > 5 else None)
        print(text)
        sys.exit(0 if 200 <= st < 300 else 1)
    sys.exit("usage: common.py admin SOCK METHOD PATH [BODY]")
