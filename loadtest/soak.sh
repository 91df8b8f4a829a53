#!/usr/bin/env bash
# soak.sh — sustained mixed traffic for N minutes; prints the proxy's memory as a CSV curve.
#
# Usage: loadtest/soak.sh [--minutes 10] [--connections 16] [--rate 0] [--max-growth-mib 64]
#
# Starts `sluice backend`s v1 and v2 and a shadow (v3, 50 ms latency) and `sluice run` with a
# 90/10 sticky canary, an A/B header rule and a 10% mirror, on free loopback ports. Runs
# loadtest/load_client.py for the whole time (keep-alive, --connections threads, as fast as it
# can or --rate req/s in total; every request with its own `uid` cookie, so the sticky split
# hashes a new key each time and sends ~10% to v2) and every 10 s prints one CSV line to stdout:
#     elapsed_s,rss_kib,fds,threads
# (VmRSS, open fds and threads of the proxy, from /proc/PID). The CSV starts with its header
# line; log lines start with '[' so the curve can be cut out with `grep -v '^\['`.
#
# Asserts: zero non-2xx and zero socket errors over the soak; both versions answered; the proxy
# is alive at the end; its RSS at the end is at most --max-growth-mib above the sample at
# 1 minute (or the first sample of a shorter soak), i.e. no steady leak. Exit 0 pass, 1 fail, 2 setup error.
# Note: `sluice backend` keeps a record of every request it served, so the BACKENDS grow over a
# long soak; only the proxy is measured.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MINUTES=10
CONNS=16
RATE=0
MAX_GROWTH_MIB=64
while (( $# )); do
  case $1 in
    --minutes) MINUTES=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --max-growth-mib) MAX_GROWTH_MIB=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) lt_setup_error "unknown argument '$1'" ;;
  esac
done
TOTAL_S=$(python3 -c "print(max(10, int(float('$MINUTES') * 60)))")

SLUICE_BIN=$(lt_sluice)
lt_backend v1; V1=$LT_PORT
lt_backend v2; V2=$LT_PORT
lt_backend v3 --latency 50ms; V3=$LT_PORT
PORT=$(lt_free_port)
CFG=$LT_TMP/sluice.yaml
cat >"$CFG" <<EOF
listen: ["127.0.0.1:$PORT"]
backends:
  app-v1: { version: v1, endpoints: ["127.0.0.1:$V1"] }
  app-v2: { version: v2, endpoints: ["127.0.0.1:$V2"] }
  app-v3: { version: v3, endpoints: ["127.0.0.1:$V3"] }
routes:
  - name: web
    rules:
      - when: { headers: { x-experiment: b } }
        backend: app-v2
    split: { app-v1: 90, app-v2: 10 }
    sticky: { cookie: uid }
    mirror: { backend: app-v3, percent: 10 }
EOF
lt_start sluice "$SLUICE_BIN" run --config "$CFG"
PROXY=$LT_PID
lt_wait_port "$PORT" "$PROXY" sluice

lt_log "soak: ${TOTAL_S}s, $CONNS connections, rate ${RATE:-0} (0 = max), proxy PID $PROXY on 127.0.0.1:$PORT"
lt_start load python3 "$LT_DIR/load_client.py" --port "$PORT" --connections "$CONNS" \
  --seconds "$TOTAL_S" --rate "$RATE" --header "Cookie: uid=soak-{n}; beta=0"
LOAD=$LT_PID

echo "elapsed_s,rss_kib,fds,threads"
start=$(date +%s)
base_rss="" last_rss=0
sample() {
  local el=$1 rss fds thr
  rss=$(lt_rss_kib "$PROXY"); fds=$(lt_fds "$PROXY")
  thr=$(awk '/^Threads:/ {print $2}' "/proc/$PROXY/status" 2>/dev/null || echo 0)
  echo "$el,$rss,$fds,$thr"
  last_rss=$rss
  if [[ -z $base_rss ]] && (( el >= 60 || TOTAL_S < 60 )); then base_rss=$rss; fi
}
sample 0
next=10
while kill -0 "$LOAD" 2>/dev/null && kill -0 "$PROXY" 2>/dev/null; do
  now=$(( $(date +%s) - start ))
  if (( now >= next )); then sample "$now"; next=$(( next + 10 )); fi
  sleep 1
done
kill -0 "$PROXY" 2>/dev/null && sample "$(( $(date +%s) - start ))"
LOAD_RC=0; wait "$LOAD" || LOAD_RC=$?
RESULT=$(grep '^LOAD ' "$LT_TMP/load.log" || echo "LOAD (no result)")
lt_log "$RESULT"
grep '^  error:' "$LT_TMP/load.log" || true

problems=()
kill -0 "$PROXY" 2>/dev/null || problems+=("the proxy exited during the soak (log: $LT_TMP/sluice.log)")
(( LOAD_RC == 0 )) || problems+=("requests failed: $RESULT")
# Every request carries its own uid, so the sticky 90/10 split must send some to each version.
[[ $RESULT == *v1:* && $RESULT == *v2:* ]] || problems+=("not both versions answered: $RESULT")
if [[ -n $base_rss ]]; then
  growth=$(( (last_rss - base_rss) / 1024 ))
  lt_log "RSS ${base_rss} KiB (baseline) -> ${last_rss} KiB (end): ${growth} MiB growth (limit ${MAX_GROWTH_MIB} MiB)"
  (( growth <= MAX_GROWTH_MIB )) || problems+=("RSS grew ${growth} MiB (> ${MAX_GROWTH_MIB} MiB)")
fi
(( ${#problems[@]} == 0 )) || lt_fail "$(IFS='; '; echo "${problems[*]}")"
echo "PASS: soak"
