#!/usr/bin/env bash
# bluegreen_switch.sh — an atomic blue-green switch under load (`sluice ctl switch`).
#
# Usage: loadtest/bluegreen_switch.sh [--seconds-each 3] [--connections 8]
#
# PLACEHOLDER until the admin API lands: the script first checks that this sluice binary has
# `sluice ctl switch`; if not, it explains and exits 77 (UNSUPPORTED) without starting anything.
#
# When `ctl switch` exists: starts `sluice backend`s blue (v1) and green (v2) and `sluice run`
# with `blueGreen: {active: app-blue, preview: app-green, previewHeader: x-preview}` and an admin
# socket, all on free loopback ports. Keep-alive clients send requests continuously and record
# (start, end, version, status) on one monotonic clock; after --seconds-each the test runs
# `sluice ctl switch web`, records when it returned, waits --seconds-each, switches back with
# `--to app-blue`, waits again. A slow request (`?delay_ms=1500`) is started just before each
# switch.
#
# Asserts (SPEC "Blue-green"): every response 200; every request that started after a switch
# returned went to the new active; every request that ended before the switch was called went
# to the old active; the slow in-flight request finished, 200, on the backend it started on;
# requests with x-preview went to the preview (the other colour) at all times; /status shows
# the switch as a live change (read from GET /status on the admin socket). Exit 0 pass, 1 fail, 2 setup error, 77 unsupported.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=3
CONNS=8
while (( $# )); do
  case $1 in
    --seconds-each) SECS=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) lt_setup_error "unknown argument '$1'" ;;
  esac
done

SLUICE_BIN=$(lt_sluice)
if ! lt_has_ctl switch; then
  lt_skip "$SLUICE_BIN has no 'sluice ctl switch' yet (the admin socket API is being built).
This scenario needs it: it flips a blue-green route with 'sluice ctl --socket S switch ROUTE'
under load and checks that the flip is atomic. Re-run once 'sluice ctl' exists."
fi

lt_backend v1; BLUE=$LT_PORT
lt_backend v2; GREEN=$LT_PORT
PORT=$(lt_free_port)
CFG=$LT_TMP/sluice.yaml
SOCK=$LT_TMP/admin.sock
cat >"$CFG" <<EOF
listen: ["127.0.0.1:$PORT"]
admin: { socket: $SOCK }
state: $LT_TMP/state.json
backends:
  app-blue: { version: v1, endpoints: ["127.0.0.1:$BLUE"] }
  app-green: { version: v2, endpoints: ["127.0.0.1:$GREEN"] }
routes:
  - name: web
    blueGreen: { active: app-blue, preview: app-green, previewHeader: x-preview }
EOF
lt_start sluice "$SLUICE_BIN" run --config "$CFG"
lt_wait_port "$PORT" "$LT_PID" sluice
for (( i = 0; i < 50; i++ )); do [[ -S $SOCK ]] && break; sleep 0.1; done
[[ -S $SOCK ]] || lt_setup_error "no admin socket at $SOCK"

python3 - "$PORT" "$SLUICE_BIN" "$SOCK" "$SECS" "$CONNS" <<'PY'
import json, os, subprocess, sys, threading, time
sys.path.insert(0, os.environ.get("LT_DIR", "."))
from common import HTTPConn, admin_request, ctl as run_ctl
port, sluice, sock, secs, conns = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
records, errors, lock, stop = [], [], threading.Lock(), threading.Event()

def client(preview):
    c = HTTPConn(port)
    hdrs = {"x-preview": "1"} if preview else None
    while not stop.is_set():
        t0 = time.monotonic()
        try:
            status, h, _ = c.get("/", hdrs)
            with lock:
                records.append((t0, time.monotonic(), h.get("x-backend-version"), status, preview))
        except Exception as e:
            with lock:
                errors.append(repr(e))
    c.close()

def slow(out):
    c = HTTPConn(port, timeout=10)
    try:
        status, h, _ = c.get("/?delay_ms=1500")
        out.append((status, h.get("x-backend-version")))
    except Exception as e:
        out.append((repr(e), None))

def ctl(*args):
    r = run_ctl(sluice, sock, *args)
    if r.returncode != 0:
        print(f"FAIL: sluice ctl {' '.join(args)}: exit {r.returncode}: {r.stderr.strip()}"); sys.exit(1)
    return r.stdout

threads = [threading.Thread(target=client, args=(i == 0,)) for i in range(conns)]
for t in threads: t.start()
time.sleep(secs)
problems, switches = [], []
for new, old, args in (("v2", "v1", ("switch", "web")), ("v1", "v2", ("switch", "web", "--to", "app-blue"))):
    slow_out = []
    st = threading.Thread(target=slow, args=(slow_out,)); st.start(); time.sleep(0.2)
    called = time.monotonic(); ctl(*args); returned = time.monotonic()
    switches.append((called, returned, new, old))
    st.join(15)
    if not slow_out or slow_out[0] != (200, old):
        problems.append(f"in-flight slow request across the switch to {new}: {slow_out} (want 200 from {old})")
    if new == "v2":
        status = json.loads(admin_request(sock, "GET", "/status")[1])
        route = next((r for r in status.get("routes", []) if r.get("name") == "web"), {})
        if route.get("active") != "app-green" or not route.get("live"):
            problems.append(f"/status after the switch: active={route.get('active')} live={route.get('live')}")
    time.sleep(secs)
stop.set()
for t in threads: t.join(15)

(c1, r1, _, _), (c2, r2, _, _) = switches
def expected_active(t0, t1):
    if t1 < c1: return "v1"
    if r1 < t0 and t1 < c2: return "v2"
    if r2 < t0: return "v1"
    return None  # overlaps a switch call: either is allowed
bad = 0
for t0, t1, v, status, preview in records:
    if status != 200:
        bad += 1; continue
    want = expected_active(t0, t1)
    if want and preview: want = "v1" if want == "v2" else "v2"
    if want and v != want: bad += 1
n = len(records)
print(f"{n} requests, {len(errors)} socket errors, {bad} on the wrong colour or not 200; "
      f"switch calls took {1000 * (r1 - c1):.1f} ms and {1000 * (r2 - c2):.1f} ms")
if errors: problems.append(f"{len(errors)} socket errors, first: {errors[0]}")
if bad: problems.append(f"{bad} of {n} requests on the wrong colour or not 200")
if n < 100: problems.append(f"only {n} requests were made")
if problems:
    print("FAIL: " + "; ".join(problems)); sys.exit(1)
print("PASS: bluegreen_switch")
PY
