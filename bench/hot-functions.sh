#!/usr/bin/env bash
# bench/hot-functions.sh — regenerates Sources/sluice/HotFunctions.order.
#
# Usage:  bench/hot-functions.sh        (needs valgrind: apt-get install valgrind; ~3 minutes)
#
# The order file lists the functions a static release build of Sluice runs while it starts,
# loads its config, proxies (plain, sticky canary with A/B rules, 100% shadow), holds idle
# keep-alive connections and reloads on SIGHUP — hottest first, by callgrind's self cost. Release
# builds on Linux hand it to lld (`--symbol-ordering-file`, see Package.swift), which lays those
# functions out next to each other instead of scattered over the 21 MiB of code the Swift
# runtime, Foundation, NIO and Sluice link into the binary. The kernel maps executable pages in
# 64 KiB groups around each one touched, so scattered hot code kept ~3 MiB more of the binary
# resident (README "Performance", scenario 5). Names missing from a later build (renamed or
# inlined functions) are skipped by the linker, so a stale file costs only some of that gain;
# regenerate it after large changes to the hot path or a new toolchain (it churns: the order
# follows measured cost, so commit a new one when the layout measurably helps, not every time).
#
# Backends are `sluice backend --plain` on 127.0.0.1:19001-19003; nothing leaves loopback.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The load tests' helpers: processes started with lt_start are stopped by PID on exit.
source "$ROOT/loadtest/lib.sh"
OUT=$ROOT/bench/out/hot-functions
ORDER=$ROOT/Sources/sluice/HotFunctions.order

command -v valgrind >/dev/null || lt_setup_error "valgrind is missing (apt-get install valgrind)"
mkdir -p "$OUT"
cd "$ROOT"
SLUICE=$(bench/build-release.sh 2>"$OUT/build.log") || { tail -n 20 "$OUT/build.log" >&2; exit 1; }
# Valgrind cannot read the binary's DWARF 5 and needs the sigsuspend shim (see bench/run.sh).
objcopy --strip-debug "$SLUICE" "$OUT/sluice-nodebug"
cc -O2 -shared -fPIC -o "$OUT/shim.so" "$ROOT/bench/valgrind-sigsuspend-shim.c"

for port in 19001 19002 19003; do
  lt_start "backend-$port" "$SLUICE" backend --listen "127.0.0.1:$port" --version "v$port" --plain
  lt_wait_port "$port" "$LT_PID" "backend-$port"
done

profiles=()
for config in sluice-plain sluice-canary sluice-shadow; do
  profile=$OUT/$config.callgrind; rm -f "$profile"
  lt_start "$config" env LD_PRELOAD="$OUT/shim.so" valgrind --tool=callgrind --demangle=no --dump-instr=no \
    --callgrind-out-file="$profile" "$OUT/sluice-nodebug" run --config "bench/$config.yaml" --threads 1
  proxy=$LT_PID
  lt_wait_port 18080 "$proxy" "$config" 60
  python3 bench/seq_client.py --port 18080 --requests 2000 >/dev/null
  python3 bench/idle_conns.py --port 18080 --count 500 --hold 1 --deadline 60 --status "$OUT/idle.status" >/dev/null
  kill -HUP "$proxy"; sleep 1
  python3 bench/seq_client.py --port 18080 --requests 200 >/dev/null
  lt_stop "$proxy"   # TERM: callgrind writes the profile as the proxy exits
  profiles+=("$profile")
  echo "hot-functions: profiled $config"
done

nm --defined-only "$SLUICE" | awk '$2 ~ /^[tTwW]$/ {print $3}' >"$OUT/defined.txt"
python3 - "$ORDER" "$OUT/defined.txt" "${profiles[@]}" <<'EOF'
# Sums each function's self cost over the profiles (a cost line right after `calls=` is the
# callee's inclusive cost and is not the caller's own), then writes the names the binary defines,
# hottest first.
import collections, re, sys
order_path, defined_path, profiles = sys.argv[1], sys.argv[2], sys.argv[3:]
defined = set(open(defined_path).read().split())
cost = collections.Counter()
for path in profiles:
    names, current, after_calls = {}, None, False
    for line in open(path):
        m = re.match(r'^(c?fn)=\((\d+)\)(?: (.*))?', line)
        if m:
            if m.group(3): names[m.group(2)] = m.group(3).strip()
            if m.group(1) == 'fn': current = names.get(m.group(2))
            continue
        if line.startswith('calls='):
            after_calls = True
            continue
        if line[:1] and line[:1] in '0123456789+-*':
            fields = line.split()
            if current and not after_calls and len(fields) >= 2: cost[current] += int(fields[1])
            after_calls = False
hot = [name for name, _ in cost.most_common() if name in defined]
with open(order_path, 'w') as f:
    f.write(''.join(name + '\n' for name in hot))
print(f"hot-functions: {len(hot)} functions -> {order_path}")
EOF
# SwiftPM does not know the link reads this file: a build directory that already holds a linked
# sluice keeps the old layout until something relinks it.
rm -f "$SLUICE"
echo "hot-functions: removed .build-bench's binary so the next build relinks; elsewhere, delete the"
echo "  linked sluice (or touch a file in Sources/sluice) before building"
