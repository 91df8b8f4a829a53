#!/usr/bin/env bash
# bench/arc-census.sh — who retains and releases what, per request, under load.
#
#   bash bench/arc-census.sh [--config FILE] [--seconds N] [--binary PATH] [--top N] [--keep]
#
# --binary: a release build to count (default: bench/build-release.sh builds one); --keep: leave
# the raw events (~1.5 GiB for 2 s) in the work directory instead of removing it.
#
# Reference counting is a large share of a Swift proxy's user time, and an atomic count
# (any object that is not immortal) costs several times a plain one. This counts the calls of
# the runtime's swift_retain and swift_release while Sluice proxies `wrk -t1 -c50` to a fixed
# nginx origin, and prints them per request by the counted object's type and by the calling
# function, so a change can be checked for what it did to the counts (the optimizer's answer
# to a source change is often not the one expected).
#
# How: a uprobe on each of the two runtime entry points records the object's address, its
# type (`isa`, the object's first word) and its reference count (the second word: all ones in
# its low half for an immortal object, which the runtime does not count) with the call chain
# (`perf record -g`); the report splits the calls into atomic ones, calls on immortal objects
# and calls on nil. A type is named from the binary's symbol table; metadata the runtime
# allocated at run time (generic types, most arrays) lies in the runtime's allocation pool and
# is named through `swift_getTypeName` in gdb while the proxy still runs.
#
# Needs root (uprobes), perf, gdb, wrk, nginx, python3; 2 cores (Sluice on core 0, wrk and the
# origin on core 1). Loopback only. Uses a copy of the binary without debug info (perf probe
# reads DWARF otherwise, which takes minutes on a release build with LTO). Not part of the bench
# table: the probes slow the proxy several times over, so the figures are counts, not speed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH="$ROOT/bench"
CONFIG="$BENCH/sluice-plain.yaml"
SECONDS_=2
BINARY=""
TOP=40
KEEP=0
while (($#)); do
  case $1 in
    --config) CONFIG=$2; shift 2;;
    --seconds) SECONDS_=$2; shift 2;;
    --binary) BINARY=$2; shift 2;;
    --top) TOP=$2; shift 2;;
    --keep) KEEP=1; shift;;
    -h|--help) sed -n '2,28p' "$0"; exit 0;;
    *) echo "arc-census.sh: unknown argument $1" >&2; exit 2;;
  esac
done
for tool in perf gdb wrk nginx python3 objcopy taskset; do
  command -v "$tool" >/dev/null || { echo "arc-census.sh: needs $tool" >&2; exit 1; }
done
[[ $(id -u) == 0 ]] || { echo "arc-census.sh: uprobes need root" >&2; exit 1; }
[[ -n $BINARY ]] || BINARY=$("$BENCH/build-release.sh")

WORK=$(mktemp -d /tmp/sluice-arc-census.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  perf probe -q -d 'probe_sluice*:*' 2>/dev/null || true
  if ((KEEP)); then echo "raw events kept in $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

BIN="$WORK/sluice"
objcopy --strip-debug "$BINARY" "$BIN"

# The origin: the bench's fixed nginx backend, on core 1.
mkdir -p "$WORK/origin/logs" "$WORK/origin/tmp"
taskset -c 1 nginx -p "$WORK/origin/" -c "$BENCH/nginx-backend.conf" -g 'daemon off;' >/dev/null 2>&1 &
PIDS+=($!)

perf probe -q -d 'probe_sluice*:*' 2>/dev/null || true
perf probe -q -x "$BIN" --add 'swift_retain obj=%di:u64 isa=+0(%di):u64 rc=+8(%di):u64'
perf probe -q -x "$BIN" --add 'swift_release obj=%di:u64 isa=+0(%di):u64 rc=+8(%di):u64'
GROUP=$(perf probe -l 2>/dev/null | awk '/swift_retain/ { split($1, a, ":"); print a[1]; exit }')

taskset -c 0 "$BIN" run --config "$CONFIG" --threads 1 >"$WORK/sluice.log" 2>&1 &
SLUICE=$!
PIDS+=("$SLUICE")
PORT=$(awk -F'"' '/^listen:/ { split($2, a, ":"); print a[2]; exit }' "$CONFIG")
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
COOKIE='Cookie: uid=bench-user-42; beta=0'
# Warm up (pools, buffers, first-use metadata), then record.
taskset -c 1 wrk -t1 -c50 -d1s -H "$COOKIE" "http://127.0.0.1:$PORT/" >/dev/null
perf record -q -g -e "$GROUP:swift_retain" -e "$GROUP:swift_release" -p "$SLUICE" -o "$WORK/perf.data" \
  -- sleep "$((SECONDS_ + 1))" >/dev/null 2>&1 &
RECORD=$!
sleep 0.3
taskset -c 1 wrk -t1 -c50 -d"${SECONDS_}s" -H "$COOKIE" "http://127.0.0.1:$PORT/" >"$WORK/wrk.out"
wait "$RECORD"
BASE=$(awk -v bin="$BIN" '$6 == bin { print $1; exit }' "/proc/$SLUICE/maps" | cut -d- -f1)
perf script -i "$WORK/perf.data" -F event,trace,ip,sym 2>/dev/null >"$WORK/events.txt"
REQUESTS=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")

# Name the runtime-allocated metadata while the proxy still runs, then aggregate.
python3 "$BENCH/arc_census.py" pool-offsets "$BIN" "$BASE" "$WORK/events.txt" >"$WORK/pool.txt"
if [[ -s "$WORK/pool.txt" ]]; then
  { echo 'set pagination off'
    while read -r off; do echo "p (char*)swift_getTypeName(0x$BASE + 0x$off, 1)"; done <"$WORK/pool.txt"
    echo detach; echo quit; } >"$WORK/gdb.cmd"
  timeout 120 gdb -q -batch -p "$SLUICE" -x "$WORK/gdb.cmd" 2>/dev/null | grep '^\$' >"$WORK/pool-names.txt" || true
fi
python3 "$BENCH/arc_census.py" report "$BIN" "$BASE" "$WORK/events.txt" "$REQUESTS" "$TOP" \
  "$WORK/pool.txt" "$WORK/pool-names.txt"
echo "(config $CONFIG; $REQUESTS requests recorded)"
