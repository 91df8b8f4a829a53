#!/usr/bin/env bash
# bench/nio-edge-triggered.sh [--rounds N] [--duration S]
#
# An experiment, not a build option: Sluice built against a copy of its SwiftNIO checkout
# patched to register sockets with epoll edge-triggered (bench/nio-edge-triggered.patch),
# against the same Sluice on stock NIO, interleaved, scenario 1's way (the proxy pinned to
# core 0 with --threads 1; the origin nginx and `wrk -t1 -c50` on core 1).
#
# Why: NIO registers level-triggered, so the kernel re-checks every socket it reported at the
# next epoll_wait and keeps those sockets at the front of its ready list, ahead of sockets that
# became ready before them; nginx registers EPOLLET. The patch adds EPOLLET to every
# registration, and where NIO stops reading, accepting or writing at its budget
# (maxMessagesPerRead, the write spin count) with the socket possibly still ready, it re-arms the
# registration (EPOLL_CTL_MOD with the same interest: epoll reports the socket again if it is
# still ready), since no new edge would come. NIO has no option for this, and the patch is a
# proposal, not part of Sluice's build (dependencies come from Package.swift by version): it
# shows what the registration costs, for a change in NIO itself or a read path of Sluice's own
# below NIO's Channel. Sluice's test suite passes on it.
#
# Prints, per run: requests/s, latency percentiles (wrk), and the proxy's user and system CPU
# time per request (/proc). Needs nginx and wrk (bench/run.sh installs them) and the bench's
# ports free. Builds into .build-bench (stock: the working tree) and .build-et (patched: the
# committed HEAD, through `git archive`; 5-7 minutes on 2 cores, each run, as the tree is fresh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
ROUNDS=3
DURATION=10
while [[ $# -gt 0 ]]; do
  case $1 in
    --rounds) ROUNDS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration S]" >&2; exit 2 ;;
  esac
done
ET="$ROOT/.build-et"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

log "stock build (bench/build-release.sh)"
STOCK=$(bash "$BENCH/build-release.sh")
NIO_CHECKOUT="$ROOT/.build-bench/checkouts/swift-nio"
[[ -d $NIO_CHECKOUT ]] || { echo "no SwiftNIO checkout at $NIO_CHECKOUT" >&2; exit 1; }

log "patched build in $ET"
mkdir -p "$ET"
rm -rf "$ET/swift-nio" "$ET/src"
cp -r "$NIO_CHECKOUT" "$ET/swift-nio"
patch -s -d "$ET/swift-nio" -p1 <"$BENCH/nio-edge-triggered.patch"
mkdir "$ET/src"
git -C "$ROOT" archive HEAD | tar -x -C "$ET/src"
(
  cd "$ET/src"
  # A run before left the scratch path's workspace with swift-nio in edit mode: start it afresh.
  rm -f "$ET/build/workspace-state.json"
  swift package --scratch-path "$ET/build" edit swift-nio --path "$ET/swift-nio" >/dev/null
  swift build -c release --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked \
    --experimental-lto-mode=full --product sluice --scratch-path "$ET/build" >&2
)
PATCHED="$ET/build/x86_64-unknown-linux-gnu/release/sluice"

# The origin: nginx answering `200 ok` on core 1, as in bench/run.sh.
mkdir -p "$ET/origin/logs" "$ET/origin/tmp"
taskset -c 1 nginx -p "$ET/origin/" -c "$BENCH/nginx-backend.conf" -g 'daemon off;' >/dev/null 2>&1 &
ORIGIN=$!
LUA="$ET/percentiles.lua"
cat >"$LUA" <<'EOF'
done = function(summary, latency, requests)
  local s = string.format("rps=%.0f", summary.requests / (summary.duration / 1e6))
  for _, p in ipairs({50, 90, 99, 99.9}) do s = s .. string.format(" p%s=%d", p, latency:percentile(p)) end
  io.write("PCT requests=" .. summary.requests .. " " .. s .. "\n")
end
EOF
PROXY=""
cleanup() {
  [[ -n $PROXY ]] && kill "$PROXY" 2>/dev/null || true
  kill -QUIT "$ORIGIN" 2>/dev/null || true
}
trap cleanup EXIT
sleep 1

# run LABEL BINARY: one measured run of wrk against BINARY; prints one line.
run() {
  taskset -c 0 "$2" run --config "$BENCH/sluice-plain.yaml" --threads 1 >"$ET/proxy.log" 2>&1 &
  PROXY=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/18080) 2>/dev/null && break; sleep 0.1; done
  taskset -c 1 wrk -t1 -c50 -d2s http://127.0.0.1:18080/ >/dev/null
  local u0 s0 u1 s1 line n
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$PROXY/stat")
  line=$(taskset -c 1 wrk -t1 -c50 -d"${DURATION}s" -s "$LUA" http://127.0.0.1:18080/ | grep '^PCT ')
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$PROXY/stat")
  kill "$PROXY"; wait "$PROXY" 2>/dev/null || true; PROXY=""
  n=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
  awk -v l="$1" -v line="${line#PCT }" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%-16s %s user_us=%.2f sys_us=%.2f\n", l, line, u * 1e6 / hz / n, s * 1e6 / hz / n}'
}

log "$ROUNDS rounds of ${DURATION}s, stock and patched alternated (load average $(cut -d' ' -f1 /proc/loadavg))"
for (( r = 1; r <= ROUNDS; r++ )); do
  run "stock r$r" "$STOCK"
  run "edge-triggered r$r" "$PATCHED"
done
