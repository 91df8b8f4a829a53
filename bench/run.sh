#!/usr/bin/env bash
# bench/run.sh — Sluice against nginx and HAProxy on this machine, one table at the end.
#
# Usage:  bench/run.sh [--quick] [--rounds N] [--only LIST]
#   (default)    3 interleaved rounds of 10 s per run, callgrind with 2,000 and 12,000 requests
#   --quick      1 round of 3 s per run, callgrind with 1,000 and 4,000 requests (a smoke run)
#   --rounds N   N interleaved rounds instead (the same-round ratios' median steadies with more)
#   --only LIST  only these parts, comma-separated: s1 ... s11 (s5: idle connections) and instr
#                (callgrind); scenarios 2 and 3 are compared with scenario 1 of their round, so
#                they take s1 along. `--only s1 --rounds 15` takes ~11 minutes.
# Environment (optional):
#   SLUICE_BIN=/path/to/sluice   benchmark this binary instead of building one
#
# What it does
#   0. Installs missing tools with apt-get (nginx, haproxy, wrk, nghttp2-client, valgrind,
#      procps) and builds Sluice in release mode into .build-bench/ (gitignored):
#        swift build -c release --static-swift-stdlib -Xswiftc -enforce-exclusivity=unchecked \
#          --experimental-lto-mode=full \
#          --product sluice --scratch-path .build-bench
#      (the production build the README recommends: the Swift runtime and Foundation linked in,
#      so retain/release are direct calls and fewer library pages are resident; Package.swift
#      adds the lean release link: lld, hot functions grouped, no exported symbols, DT_RELR)
#   1. Starts ONE fixed origin: nginx (bench/nginx-backend.conf, 1 worker) answering `200 ok`
#      on 127.0.0.1:19001 and :19002 (HTTP/1.1) and :19004 (h2c), pinned to core 1.
#   2. Runs each reverse proxy pinned to core 0, one at a time, with wrk pinned to core 1
#      (`wrk -t1 -c50 -dDs --latency`, the same for all, every request carrying
#      `Cookie: uid=bench-user-42; beta=0`), in interleaved rounds (after one unrecorded
#      scenario-1 run through each proxy; within a scenario the proxies' order rotates, so each
#      runs first once):
#        s1 plain proxying:   Sluice (--threads 1, bench/sluice-plain.yaml) :18080,
#                             nginx (bench/nginx-proxy.conf) :18081, HAProxy (bench/haproxy.cfg) :18082
#        s2 Sluice 90/10 sticky canary + two A/B rules (bench/sluice-canary.yaml)
#        s3 Sluice with a 100% shadow to `sluice backend --latency 1s --plain` on :19003
#           (core 1; `--plain` answers `ok` without the JSON echo, whose ~70 us per request would
#           land on the load generator's core in bursts of 64 once a second and show up in p99)
#        s4 Sluice (bench/sluice-reload.yaml) receiving SIGHUP every 100 ms during the run;
#           non-2xx and socket errors must be 0. A proxy that dies on SIGHUP (no handler yet)
#           is reported as "SIGHUP unsupported", not as a bench failure.
#        s6 HTTP/2 with prior knowledge: Sluice (bench/sluice-h2c.yaml) :18083 and nginx
#           (`listen ... http2`) :18084, `h2load -c 10 -m 10 -D D` on core 1
#        s7 a new connection per request (wrk adds `Connection: close`): Sluice, nginx and
#           HAProxy as in s1 — what accepting, setting up and closing a connection costs
#        s8 s1 over TLS 1.3 (keep-alive): bench/sluice-tls.yaml :18085, bench/nginx-proxy-tls.conf
#           :18086, bench/haproxy-tls.cfg :18087, with an ECDSA P-256 certificate made at the start
#           (openssl, into bench/out/tls/)
#        s9 s8 with a TLS handshake per request (`Connection: close`; wrk resumes its session)
#        s10 HTTP/2 over TLS 1.3 (h2 by ALPN, what browsers speak to an ingress): s6's h2load
#           load against the three proxies' TLS listeners of s8
#        s11 HTTP/2 on both sides, as for a gRPC service: s6's h2load load (h2c) to Sluice
#           (bench/sluice-h2.yaml, `protocol: h2`) :18088, nginx (`grpc_pass`) :18089 and HAProxy
#           (`proto h2`) :18090, each proxying to the origin's h2c port 19004
#      Every run's note gives how busy each core was and the proxy's CPU time (user + system,
#      from /proc) per request: when the load core is the bottleneck (s7, s9), the proxy's CPU
#      per request compares the proxies where requests/s cannot.
#   3. s5: 10,000 idle keep-alive connections (bench/idle_conns.py, one request each) held
#      against each proxy; VmRSS of the proxy (plus its children: nginx's worker) before/after,
#      and RssAnon (heap and stacks only: VmRSS also counts the binary's mapped pages).
#   4. Instructions per request: each proxy under `valgrind --tool=callgrind`, driven by
#      bench/seq_client.py with N1 and then N2 sequential keep-alive requests (two runs);
#      instr/req = (I(N2) - I(N1)) / (N2 - N1) from the callgrind totals (startup cancels out).
#   5. Prints one markdown table and writes it to bench/out/results.md with the date, nproc,
#      CPU model, load average and the exact command. Raw data and logs stay in bench/out/.
#
# Limits respected: loopback only; `ulimit -n 20000` (the machine's per-process file limit:
# the idle client holds 10k, the proxy 10k + upstreams; HAProxy's maxconn is 9,990 because it
# reserves two fds per connection); every process started here is stopped by its PID on exit.
# Exit status: 0 done; 1 setup failure (build, tool, port in use, a proxy that will not start);
# 3 the table was written but scenario 4 saw errors.
set -euo pipefail

QUICK=0
ROUNDS_ARG=''
ONLY='s1,s2,s3,s4,s5,s6,s7,s8,s9,s10,s11,instr'
COMMAND="bench/run.sh${*:+ $*}"
usage_error() { echo "bench/run.sh: $*" >&2; exit 1; }
while (($#)); do
  case "$1" in
    --quick) QUICK=1; shift ;;
    --rounds)
      [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || usage_error "--rounds wants a positive whole number, got '${2:-}'"
      ROUNDS_ARG=$2; shift 2 ;;
    --only)
      [[ -n ${2:-} ]] || usage_error "--only wants a list such as s1,s7,instr"
      for part in ${2//,/ }; do
        [[ $part =~ ^(s([1-9]|1[01])|instr)$ ]] || usage_error "--only: unknown part '$part' (s1 ... s11, instr)"
      done
      ONLY=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage_error "unknown argument '$1' (--quick, --rounds N, --only LIST)" ;;
  esac
done
# Scenarios 2 and 3 are reported against scenario 1 of the same round.
if [[ ,$ONLY, =~ ,s[23], && ,$ONLY, != *,s1,* ]]; then ONLY="$ONLY,s1"; fi
wanted() { [[ ,$ONLY, == *",$1,"* ]]; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/bench
OUT=$BENCH/out
LOGS=$OUT/logs

if (( QUICK )); then
  ROUNDS=1; DURATION=3; WARMUP=1; CG_N1=1000; CG_N2=4000
else
  ROUNDS=3; DURATION=10; WARMUP=2; CG_N1=2000; CG_N2=12000
fi
ROUNDS=${ROUNDS_ARG:-$ROUNDS}
WRK_CONNS=50
WRK_THREADS=1
IDLE_CONNS=10000
COOKIE='Cookie: uid=bench-user-42; beta=0'
WRK_HEADER=''   # one more request header for wrk (s7: `Connection: close`)
PORT_SLUICE=18080; PORT_NGINX=18081; PORT_HAPROXY=18082
PORT_SLUICE_H2=18083; PORT_NGINX_H2=18084   # s6: HTTP/2 with prior knowledge (h2c)
PORT_SLUICE_H2H2=18088; PORT_NGINX_H2H2=18089; PORT_HAPROXY_H2H2=18090   # s11: h2c to an h2c origin
PORT_SLUICE_TLS=18085; PORT_NGINX_TLS=18086; PORT_HAPROXY_TLS=18087   # s8, s9: HTTP/1.1 over TLS
TLS_PORT=''     # set while a TLS scenario runs: the port the load goes to
PORT_ORIGIN1=19001; PORT_ORIGIN2=19002; PORT_SHADOW=19003; PORT_ORIGIN_H2=19004
PROXY_CORE=0; LOAD_CORE=1

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'bench/run.sh: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- process bookkeeping
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_bg LOGNAME CMD...: start CMD in the background, remember its PID in $BG_PID.
start_bg() {
  local name=$1; shift
  "$@" >"$LOGS/$name.log" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# stop_pid PID [SIGNAL] [TIMEOUT_S]: signal one process we started and wait for it to exit.
stop_pid() {
  local pid=$1 sig=${2:-TERM} timeout=${3:-15} i
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for (( i = 0; i < timeout * 10; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      log "PID $pid did not exit after SIG$sig in ${timeout}s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_port PORT PID TIMEOUT_S LOGNAME
wait_port() {
  local port=$1 pid=$2 timeout=$3 name=$4 i
  for (( i = 0; i < timeout * 10; i++ )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$LOGS/$name.log" >&2 || true
      die "$name exited before listening on 127.0.0.1:$port (log: $LOGS/$name.log)"
    fi
    port_open "$port" && return 0
    sleep 0.1
  done
  die "$name is not listening on 127.0.0.1:$port after ${timeout}s (log: $LOGS/$name.log)"
}

# rss_kib PID [FIELD]: VmRSS (or another /proc/PID/status field, e.g. RssAnon) of PID plus that
# of its direct children (nginx master + worker).
rss_kib() {
  local total=0 p v field=${2:-VmRSS}
  for p in "$1" $(pgrep -P "$1" || true); do
    v=$(awk -v f="$field:" '$1 == f {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

# cpu_jiffies PID: user + system clock ticks used so far by PID and its direct children (nginx's
# worker runs under its master).
cpu_jiffies() {
  local total=0 p v
  for p in "$1" $(pgrep -P "$1" || true); do
    v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$(( total + ${v:-0} ))
  done
  echo "$total"
}

# ---------------------------------------------------------------- setup
ensure_tools() {
  local missing=() pkgs=() spec cmd pkg
  for spec in nginx:nginx haproxy:haproxy wrk:wrk h2load:nghttp2-client valgrind:valgrind \
              callgrind_control:valgrind pgrep:procps taskset:util-linux python3:python3 \
              cc:gcc objcopy:binutils openssl:openssl; do
    cmd=${spec%%:*}; pkg=${spec#*:}
    command -v "$cmd" >/dev/null 2>&1 || { missing+=("$cmd"); pkgs+=("$pkg"); }
  done
  (( ${#missing[@]} == 0 )) && return 0
  log "installing with apt-get: ${pkgs[*]} (missing: ${missing[*]})"
  [[ $(id -u) == 0 ]] || die "need root to apt-get install ${pkgs[*]}"
  # Keep package scripts from starting system services (nginx, haproxy) on install.
  local policy_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"; } \
    >"$LOGS/apt.log" 2>&1 || rc=$?
  (( policy_created )) && rm -f /usr/sbin/policy-rc.d
  (( rc == 0 )) || { tail -n 20 "$LOGS/apt.log" >&2; die "apt-get install ${pkgs[*]} failed"; }
  for cmd in "${missing[@]}"; do command -v "$cmd" >/dev/null || die "'$cmd' still missing after apt-get"; done
}

build_sluice() {
  if [[ -n ${SLUICE_BIN:-} ]]; then
    [[ -x $SLUICE_BIN ]] || die "SLUICE_BIN=$SLUICE_BIN is not an executable"
    SLUICE=$SLUICE_BIN
    log "using SLUICE_BIN=$SLUICE (not building)"
    return
  fi
  log "building Sluice (release, bench/build-release.sh) into .build-bench/ — log: $LOGS/build.log"
  if ! SLUICE=$("$BENCH/build-release.sh" 2>"$LOGS/build.log"); then
    grep -m 10 'error:' "$LOGS/build.log" >&2 || tail -n 20 "$LOGS/build.log" >&2
    die "swift build failed (log: $LOGS/build.log)"
  fi
  [[ -x $SLUICE ]] || die "no binary at $SLUICE after the build"
}

# ---------------------------------------------------------------- the processes
ORIGIN_PID=""; SHADOW_PID=""

start_origin() {
  mkdir -p "$OUT/nginx-backend/logs" "$OUT/nginx-backend/tmp"
  start_bg origin taskset -c "$LOAD_CORE" nginx -p "$OUT/nginx-backend/" -c "$BENCH/nginx-backend.conf" \
    -e "$OUT/nginx-backend/logs/error.log" -g 'daemon off;'
  ORIGIN_PID=$BG_PID
  wait_port "$PORT_ORIGIN1" "$ORIGIN_PID" 10 origin
  wait_port "$PORT_ORIGIN2" "$ORIGIN_PID" 10 origin
  wait_port "$PORT_ORIGIN_H2" "$ORIGIN_PID" 10 origin
}

start_shadow() {
  start_bg shadow taskset -c "$LOAD_CORE" "$SLUICE" backend --listen "127.0.0.1:$PORT_SHADOW" --version shadow --latency 1s --plain
  SHADOW_PID=$BG_PID
  wait_port "$PORT_SHADOW" "$SHADOW_PID" 10 shadow
}

# start_proxy KIND [SLUICE_CONFIG] [VALGRIND_OUT]: sets PROXY_PID and PROXY_PORT.
start_proxy() {
  local kind=$1 cfg=${2:-} cg=${3:-} name timeout=15
  local pre=(taskset -c "$PROXY_CORE")
  local bin=$SLUICE
  if [[ -n $cg ]]; then
    pre+=(valgrind --tool=callgrind --callgrind-out-file="$cg" --dump-instr=no)
    timeout=180
    if [[ $kind == sluice ]]; then
      # Valgrind 3.19 workarounds (see prepare_valgrind): no DWARF 5, sigsuspend shim.
      bin=$SLUICE_VG
      pre=(env LD_PRELOAD="$OUT/valgrind-sigsuspend-shim.so" "${pre[@]}")
    fi
  fi
  case $kind in
    sluice)
      PROXY_PORT=$PORT_SLUICE; name=sluice-$(basename "$cfg" .yaml)
      start_bg "$name" "${pre[@]}" "$bin" run --config "$cfg" --threads 1 ;;
    nginx)
      PROXY_PORT=$PORT_NGINX; name=nginx-proxy
      mkdir -p "$OUT/nginx-proxy/logs" "$OUT/nginx-proxy/tmp"
      local g='daemon off;'
      [[ -n $cg ]] && g='daemon off; master_process off;'
      start_bg "$name" "${pre[@]}" nginx -p "$OUT/nginx-proxy/" -c "${cfg:-$BENCH/nginx-proxy.conf}" \
        -e "$OUT/nginx-proxy/logs/error.log" -g "$g" ;;
    haproxy)
      PROXY_PORT=$PORT_HAPROXY; name=haproxy
      # Valgrind keeps a few fds for itself, so under callgrind the fd budget is a little
      # smaller: -n lowers the global maxconn (only 1 connection is used there).
      local n=()
      [[ -n $cg ]] && n=(-n 9000)
      start_bg "$name" "${pre[@]}" haproxy -db "${n[@]}" -f "${cfg:-$BENCH/haproxy.cfg}" ;;
  esac
  PROXY_PID=$BG_PID
  PROXY_LOG=$name
  wait_port "${TLS_PORT:-$PROXY_PORT}" "$PROXY_PID" "$timeout" "$name"
}

# TLS_PORT set (s8, s9): the load goes to the proxy's TLS listener instead.
proxy_url() { if [[ -n $TLS_PORT ]]; then echo "https://127.0.0.1:$TLS_PORT/"; else echo "http://127.0.0.1:$PROXY_PORT/"; fi; }

# cpu_ticks CORE: busy and idle jiffies of one core so far (/proc/stat; iowait counts as idle).
cpu_ticks() { awk -v c="cpu$1" '$1 == c {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }

# measure_start / measure_end REQUESTS: around a measured run, set CORES_BUSY to how busy both
# cores were and the proxy's CPU time (user + system, itself and its children) per request.
measure_start() {
  read -r PB0 PI0 < <(cpu_ticks "$PROXY_CORE"); read -r LB0 LI0 < <(cpu_ticks "$LOAD_CORE")
  CPU0=$(cpu_jiffies "$PROXY_PID")
}
measure_end() {
  local pb1 pi1 lb1 li1 cpu1
  cpu1=$(cpu_jiffies "$PROXY_PID")
  read -r pb1 pi1 < <(cpu_ticks "$PROXY_CORE"); read -r lb1 li1 < <(cpu_ticks "$LOAD_CORE")
  CORES_BUSY=$(awk -v pb=$((pb1 - PB0)) -v pi=$((pi1 - PI0)) -v lb=$((lb1 - LB0)) -v li=$((li1 - LI0)) \
    -v cpu=$((cpu1 - CPU0)) -v hz="$(getconf CLK_TCK)" -v n="${1:-0}" \
    'BEGIN {printf "cores busy: proxy %.0f%%, load %.0f%%", 100 * pb / (pb + pi + 1e-9), 100 * lb / (lb + li + 1e-9)
            if (n > 0) printf ", proxy CPU %.1f us/req", cpu / hz * 1e6 / n}')
}

# run_wrk OUTFILE: warm-up, then the measured run; leaves wrk's output in OUTFILE, and
# CORES_BUSY (measure_end). The load core runs wrk and the
# origin together and is usually near 100% too: it bounds every proxy's figure, so ratios
# between proxies come out smaller than the proxies' own costs differ.
run_wrk() {
  taskset -c "$LOAD_CORE" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WARMUP}s" -H "$COOKIE" ${WRK_HEADER:+-H "$WRK_HEADER"} \
    "$(proxy_url)" >/dev/null 2>&1 || true
  measure_start
  taskset -c "$LOAD_CORE" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency \
    -s "$BENCH/wrk-report.lua" -H "$COOKIE" ${WRK_HEADER:+-H "$WRK_HEADER"} "$(proxy_url)" >"$1" 2>&1 || true
  measure_end "$(sed -n 's/^WRK requests=\([0-9]*\).*/\1/p' "$1")"
}

# record SCENARIO PROXY ROUND WRKFILE NOTE: append one row to raw.tsv from wrk's WRK line.
record() {
  local line
  line=$(grep '^WRK ' "$4" || true)
  if [[ -z $line ]]; then
    printf '%s\t%s\t%s\t\t\t\t\t\t\t\t\t%s\n' "$1" "$2" "$3" "${5:+$5; }wrk printed no result (see $4)" >>"$OUT/raw.tsv"
    return
  fi
  # shellcheck disable=SC2086
  local $(echo "${line#WRK }")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$rps" "$p50_us" "$p99_us" \
    "$connect" "$read" "$write" "$status" "$timeout" "${5:-}" >>"$OUT/raw.tsv"
  log "  $1 $2 round $3: ${rps} req/s, p50 ${p50_us} us, p99 ${p99_us} us, errors connect=$connect read=$read write=$write status=$status timeout=$timeout"
}

# ---------------------------------------------------------------- scenarios
scenario_load() { # SCENARIO KIND [CONFIG] ROUND
  local sc=$1 kind=$2 cfg=$3 round=$4 f note=""
  start_proxy "$kind" "$cfg"
  f="$OUT/wrk-$sc-$kind-r$round.txt"
  run_wrk "$f"
  note=$CORES_BUSY
  kill -0 "$PROXY_PID" 2>/dev/null || note+="; proxy exited during the run (log: $LOGS/$PROXY_LOG.log)"
  stop_pid "$PROXY_PID"
  record "$sc" "$kind" "$round" "$f" "$note"
}

# s6: HTTP/2 with prior knowledge, h2load with 10 connections x 10 streams, on the load core.
# nginx serves it from the same config (a second server block with `listen ... http2`).
# s10: the same load over TLS (h2 by ALPN) to the three proxies' TLS listeners of s8.
# s11: the same load (h2c) to proxies that speak HTTP/2 to the origin too (its h2c port).
scenario_h2() { # SCENARIO KIND ROUND
  local sc=$1 kind=$2 round=$3 f port url rps mean failed succeeded
  case $sc/$kind in
    s6/sluice) start_proxy sluice "$BENCH/sluice-h2c.yaml"; port=$PORT_SLUICE_H2 ;;
    s6/nginx) start_proxy nginx; port=$PORT_NGINX_H2 ;;
    s11/sluice) start_proxy sluice "$BENCH/sluice-h2.yaml"; port=$PORT_SLUICE_H2H2 ;;
    s11/nginx) start_proxy nginx; port=$PORT_NGINX_H2H2 ;;
    s11/haproxy) start_proxy haproxy; port=$PORT_HAPROXY_H2H2 ;;
    s10/sluice) TLS_PORT=$PORT_SLUICE_TLS; start_proxy sluice "$BENCH/sluice-tls.yaml" ;;
    s10/nginx) TLS_PORT=$PORT_NGINX_TLS; start_proxy nginx "$BENCH/nginx-proxy-tls.conf" ;;
    s10/haproxy) TLS_PORT=$PORT_HAPROXY_TLS; start_proxy haproxy "$BENCH/haproxy-tls.cfg" ;;
  esac
  if [[ $sc == s10 ]]; then port=$TLS_PORT; url="https://127.0.0.1:$port/"; TLS_PORT=''
  else url="http://127.0.0.1:$port/"; fi
  wait_port "$port" "$PROXY_PID" 15 "$kind-h2"
  f="$OUT/h2load-$sc-$kind-r$round.txt"
  taskset -c "$LOAD_CORE" h2load -D "$WARMUP" -c 10 -m 10 -t 1 "$url" >/dev/null 2>&1 || true
  measure_start
  taskset -c "$LOAD_CORE" h2load -D "$DURATION" -c 10 -m 10 -t 1 "$url" >"$f" 2>&1 || true
  succeeded=$(awk '/^requests:/ {print $8}' "$f")
  measure_end "${succeeded:-0}"
  stop_pid "$PROXY_PID"
  rps=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' "$f")
  mean=$(awk '/^time for request:/ {print $6}' "$f")
  failed=$(awk '/^requests:/ {print $10}' "$f")
  case $mean in *ms) mean=$(awk -v v="${mean%ms}" 'BEGIN {print v * 1000}') ;; *us) mean=${mean%us} ;; *s) mean=$(awk -v v="${mean%s}" 'BEGIN {print v * 1000000}') ;; esac
  # h2load's protocol line: a TLS run that fell back to HTTP/1.1 would not measure HTTP/2.
  grep -q '^Application protocol: h2' "$f" || CORES_BUSY+="; NOT HTTP/2 (see $f)"
  printf '%s\t%s\t%s\t%s\t%s\t\t0\t0\t0\t%s\t0\t%s\n' "$sc" "$kind" "$round" "$rps" "$mean" "${failed:-0}" \
    "$CORES_BUSY; h2load -c 10 -m 10" >>"$OUT/raw.tsv"
  log "  $sc $kind round $round: ${rps} req/s, mean ${mean} us, failed ${failed:-?}"
}

# The certificate for s8 and s9, made afresh each run: ECDSA P-256 (of the two common key
# types the cheaper one to sign handshakes with), self-signed for 127.0.0.1; HAProxy reads certificate and key from one
# PEM. The three proxies' TLS configs name these files.
make_tls_cert() {
  mkdir -p "$OUT/tls"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1" -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" \
    >"$LOGS/openssl.log" 2>&1 || die "openssl could not make the bench's certificate (log: $LOGS/openssl.log)"
  cat "$OUT/tls/cert.pem" "$OUT/tls/key.pem" >"$OUT/tls/haproxy.pem"
  export SLUICE_BENCH_TLS=$OUT/tls
}

# s8, s9: scenario 1 with the client side over TLS (TLS 1.3 with every proxy): keep-alive (s8),
# and a TLS handshake for every request (s9, wrk adds `Connection: close`; wrk keeps its TLS
# session across reconnects, so these are resumed handshakes, with a fresh X25519 exchange each).
scenario_tls() { # SCENARIO KIND ROUND
  local sc=$1 kind=$2 round=$3 cfg
  case $kind in
    sluice) cfg=$BENCH/sluice-tls.yaml; TLS_PORT=$PORT_SLUICE_TLS ;;
    nginx) cfg=$BENCH/nginx-proxy-tls.conf; TLS_PORT=$PORT_NGINX_TLS ;;
    haproxy) cfg=$BENCH/haproxy-tls.cfg; TLS_PORT=$PORT_HAPROXY_TLS ;;
  esac
  scenario_load "$sc" "$kind" "$cfg" "$round"
  TLS_PORT=''
}

SIGHUP_STATE=unknown   # unknown | supported | unsupported
# The config generation from GET /status on the admin socket ("?" when there is none).
admin_generation() {
  python3 - "$OUT/sluice-admin.sock" <<'PY' 2>/dev/null || echo "?"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(sys.argv[1])
s.sendall(b"GET /status HTTP/1.1\r\nHost: sluice\r\nConnection: close\r\n\r\n")
buf = b""
while chunk := s.recv(65536): buf += chunk
body = buf.partition(b"\r\n\r\n")[2]
if b"chunked" in buf.partition(b"\r\n\r\n")[0].lower():
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n"); n = int(size_line.split(b";")[0], 16)
        if n == 0: break
        out, body = out + body[:n], body[n + 2:]
    body = out
print(json.loads(body)["generation"])
PY
}

scenario_reload() { # ROUND
  local round=$1 f note gen0 gen1 hups=0 wrk_pid
  if [[ $SIGHUP_STATE == unsupported ]]; then
    printf 's4\tsluice\t%s\t\t\t\t\t\t\t\t\t%s\n' "$round" "$SIGHUP_NOTE" >>"$OUT/raw.tsv"; return
  fi
  rm -f "$OUT/sluice-admin.sock" "$OUT/sluice-state.json"
  start_proxy sluice "$BENCH/sluice-reload.yaml"
  if [[ $SIGHUP_STATE == unknown ]]; then
    # Probe: a proxy without a SIGHUP handler is terminated by the default action.
    kill -HUP "$PROXY_PID"; sleep 0.5
    if ! kill -0 "$PROXY_PID" 2>/dev/null; then
      SIGHUP_STATE=unsupported
      SIGHUP_NOTE="SIGHUP unsupported: the proxy exited on SIGHUP (no reload handler yet)"
      log "  s4: $SIGHUP_NOTE"
      stop_pid "$PROXY_PID"
      printf 's4\tsluice\t%s\t\t\t\t\t\t\t\t\t%s\n' "$round" "$SIGHUP_NOTE" >>"$OUT/raw.tsv"
      return
    fi
    SIGHUP_STATE=supported
  fi
  gen0=$(admin_generation)
  taskset -c "$LOAD_CORE" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${WARMUP}s" -H "$COOKIE" "$(proxy_url)" >/dev/null 2>&1 || true
  f="$OUT/wrk-s4-sluice-r$round.txt"
  taskset -c "$LOAD_CORE" wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"${DURATION}s" --latency \
    -s "$BENCH/wrk-report.lua" -H "$COOKIE" "$(proxy_url)" >"$f" 2>&1 &
  wrk_pid=$!; PIDS+=("$wrk_pid")
  while kill -0 "$wrk_pid" 2>/dev/null; do
    kill -0 "$PROXY_PID" 2>/dev/null || break
    kill -HUP "$PROXY_PID" 2>/dev/null && hups=$(( hups + 1 ))
    sleep 0.1
  done
  wait "$wrk_pid" 2>/dev/null || true
  note="$hups SIGHUPs"
  if kill -0 "$PROXY_PID" 2>/dev/null; then
    gen1=$(admin_generation)
    if [[ $gen0 != "?" && $gen1 != "?" ]]; then
      note+=", generation $gen0 -> $gen1"
      (( gen1 > gen0 )) || note+=" (NO RELOAD HAPPENED)"
    fi
  else
    note+=", proxy DIED during the SIGHUP storm (log: $LOGS/$PROXY_LOG.log)"
  fi
  stop_pid "$PROXY_PID"
  record s4 sluice "$round" "$f" "$note"
}

scenario_idle() { # KIND [CONFIG]
  local kind=$1 cfg=${2:-} before after anon_before anon_after status client_pid i st
  start_proxy "$kind" "$cfg"
  taskset -c "$LOAD_CORE" python3 "$BENCH/seq_client.py" --port "$PROXY_PORT" --requests 200 >/dev/null
  sleep 1
  before=$(rss_kib "$PROXY_PID")
  anon_before=$(rss_kib "$PROXY_PID" RssAnon)
  status="$OUT/idle-$kind.status"; rm -f "$status"
  start_bg "idle-$kind" taskset -c "$LOAD_CORE" python3 "$BENCH/idle_conns.py" --port "$PROXY_PORT" \
    --count "$IDLE_CONNS" --hold 6 --status "$status"
  client_pid=$BG_PID
  for (( i = 0; i < 1800; i++ )); do
    [[ -s $status ]] && grep -q '^ready' "$status" && break
    kill -0 "$client_pid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 2
  after=$(rss_kib "$PROXY_PID")
  anon_after=$(rss_kib "$PROXY_PID" RssAnon)
  # It exits by itself after --hold (and a check of how many the proxy closed); TERM if it hangs.
  for (( i = 0; i < 300; i++ )); do kill -0 "$client_pid" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$client_pid" TERM 10
  st=$(tail -n 1 "$status" 2>/dev/null || echo "no status")
  kill -0 "$PROXY_PID" 2>/dev/null || st+=" proxy-exited"
  stop_pid "$PROXY_PID"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$before" "$after" "$st" "$anon_before" "$anon_after" >>"$OUT/rss.tsv"
  log "  s5 $kind: VmRSS ${before} KiB -> ${after} KiB, anonymous ${anon_before} -> ${anon_after} KiB ($st)"
}

# Valgrind 3.19 (Debian 12) cannot run the Swift binary as built: it gives up reading its
# DWARF 5 debug info, and it crashes when libdispatch parks the main thread in sigsuspend() on a
# read-only mask. So callgrind runs a copy without debug info (objcopy --strip-debug: the code is
# byte for byte the same) with bench/valgrind-sigsuspend-shim.c preloaded.
prepare_valgrind() {
  SLUICE_VG=$OUT/sluice-nodebug
  objcopy --strip-debug "$SLUICE" "$SLUICE_VG"
  cc -O2 -shared -fPIC -o "$OUT/valgrind-sigsuspend-shim.so" "$BENCH/valgrind-sigsuspend-shim.c"
}

callgrind_total() { # FILE -> total Ir
  awk '/^(summary|totals):/ {print $2; exit}' "$1"
}

scenario_callgrind() { # KIND [CONFIG]
  local kind=$1 cfg=${2:-} n total totals=() out
  for n in "$CG_N1" "$CG_N2"; do
    out="$OUT/callgrind-$kind-$n.out"; rm -f "$out"
    start_proxy "$kind" "$cfg" "$out"
    if ! taskset -c "$LOAD_CORE" python3 "$BENCH/seq_client.py" --port "$PROXY_PORT" --requests "$n" \
         >>"$LOGS/callgrind-client.log" 2>&1; then
      log "  callgrind $kind: some of $n requests failed (see $LOGS/callgrind-client.log)"
    fi
    stop_pid "$PROXY_PID" TERM 120
    total=$(callgrind_total "$out" 2>/dev/null || true)
    if [[ -z $total ]]; then
      log "  callgrind $kind N=$n: no totals in $out (log: $LOGS/$PROXY_LOG.log)"
      printf '%s\t\t\t\t\tno callgrind totals\n' "$kind" >>"$OUT/callgrind.tsv"; return
    fi
    totals+=("$total")
    log "  callgrind $kind N=$n: $total instructions"
  done
  printf '%s\t%s\t%s\t%s\t%s\t\n' "$kind" "$CG_N1" "${totals[0]}" "$CG_N2" "${totals[1]}" >>"$OUT/callgrind.tsv"
}

# rotated ROUND WORD...: the words, one per line, rotated left by ROUND - 1, so that over the
# rounds each proxy of a scenario runs first once. (With a fixed order Sluice ran first in every
# round, and in the bench's first round right after the start: its p99 there was 2.2 ms against
# ~0.8 in later rounds, and nginx's run after it was raised too.)
rotated() {
  local r=$1 i
  shift
  local words=("$@")
  for (( i = 0; i < ${#words[@]}; i++ )); do printf '%s\n' "${words[$(( (i + r - 1) % ${#words[@]} ))]}"; done
}

# sluice_config KIND CONFIG: CONFIG for Sluice, nothing for the others (their default config).
sluice_config() {
  if [[ $1 == sluice ]]; then echo "$2"; fi
}

# warm_up: one unrecorded s1 run through each proxy before the first round, so that no proxy's
# first measured run is also its first run of the bench (in three tables Sluice's first s1 run,
# recorded, had a p99 of 1.2-2.2 ms against 0.8-0.9 in its later rounds, also after a warm-up
# run through nginx alone).
warm_up() {
  local kind
  log "warm-up: one unrecorded s1 run through each proxy"
  for kind in sluice nginx haproxy; do
    start_proxy "$kind" "$(sluice_config "$kind" "$BENCH/sluice-plain.yaml")"
    run_wrk "$OUT/wrk-warm-up-$kind.txt"
    log "  warm-up $kind: $(sed -n 's/^WRK .*rps=\([0-9.]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\).*/\1 req\/s, p50 \2 us, p99 \3 us/p' "$OUT/wrk-warm-up-$kind.txt")"
    stop_pid "$PROXY_PID"
  done
}

# ---------------------------------------------------------------- main
mkdir -p "$OUT" "$LOGS"
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)   # before our own build and load: other users of the CPU
ulimit -n 20000 2>/dev/null || die "cannot set ulimit -n 20000 (hard limit: $(ulimit -Hn))"
ensure_tools
build_sluice
for p in $PORT_SLUICE $PORT_NGINX $PORT_HAPROXY $PORT_SLUICE_H2 $PORT_NGINX_H2 $PORT_SLUICE_TLS $PORT_NGINX_TLS \
         $PORT_HAPROXY_TLS $PORT_ORIGIN1 $PORT_ORIGIN2 $PORT_SHADOW; do
  port_open "$p" && die "port 127.0.0.1:$p is already in use; stop whatever listens there"
done

rm -f "$OUT"/raw.tsv "$OUT"/rss.tsv "$OUT"/callgrind.tsv "$OUT"/wrk-*.txt "$OUT"/callgrind-*.out "$LOGS"/callgrind-client.log
START_TIME=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "Sluice binary: $SLUICE"
log "rounds=$ROUNDS duration=${DURATION}s warmup=${WARMUP}s wrk -t$WRK_THREADS -c$WRK_CONNS; loadavg $LOADAVG_START"

make_tls_cert
start_origin
start_shadow

warm_up
for (( round = 1; round <= ROUNDS; round++ )); do
  log "round $round/$ROUNDS"
  if wanted s1; then
    for kind in $(rotated "$round" sluice nginx haproxy); do
      scenario_load s1 "$kind" "$(sluice_config "$kind" "$BENCH/sluice-plain.yaml")" "$round"
    done
  fi
  if wanted s2; then scenario_load s2 sluice "$BENCH/sluice-canary.yaml" "$round"; fi
  if wanted s3; then scenario_load s3 sluice "$BENCH/sluice-shadow.yaml" "$round"; fi
  if wanted s4; then scenario_reload "$round"; fi
  if wanted s6; then
    for kind in $(rotated "$round" sluice nginx); do scenario_h2 s6 "$kind" "$round"; done
  fi
  # s7: every request on a connection of its own (clients without keep-alive): what
  # accepting, setting up and closing a connection costs each proxy.
  if wanted s7; then
    WRK_HEADER="Connection: close"
    for kind in $(rotated "$round" sluice nginx haproxy); do
      scenario_load s7 "$kind" "$(sluice_config "$kind" "$BENCH/sluice-plain.yaml")" "$round"
    done
    WRK_HEADER=""
  fi
  if wanted s8; then
    for kind in $(rotated "$round" sluice nginx haproxy); do scenario_tls s8 "$kind" "$round"; done
  fi
  if wanted s9; then
    WRK_HEADER="Connection: close"
    for kind in $(rotated "$round" sluice nginx haproxy); do scenario_tls s9 "$kind" "$round"; done
    WRK_HEADER=""
  fi
  if wanted s10; then
    for kind in $(rotated "$round" sluice nginx haproxy); do scenario_h2 s10 "$kind" "$round"; done
  fi
  if wanted s11; then
    for kind in $(rotated "$round" sluice nginx haproxy); do scenario_h2 s11 "$kind" "$round"; done
  fi
done

if wanted s5; then
  log "s5: $IDLE_CONNS idle keep-alive connections per proxy"
  scenario_idle sluice "$BENCH/sluice-plain.yaml"
  scenario_idle nginx
  scenario_idle haproxy
fi

if wanted instr; then
  log "instructions per request under callgrind (N1=$CG_N1, N2=$CG_N2)"
  prepare_valgrind
  scenario_callgrind sluice "$BENCH/sluice-plain.yaml"
  scenario_callgrind nginx
  scenario_callgrind haproxy
fi

stop_pid "$SHADOW_PID"
stop_pid "$ORIGIN_PID" QUIT

{
  echo "date=$START_TIME"
  echo "command=$COMMAND"
  echo "nproc=$(nproc)"
  echo "cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "loadavg_start=$LOADAVG_START"
  echo "loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)')"
  echo "sluice=$SLUICE"
  echo "versions=$(nginx -v 2>&1 | sed 's/.*version: //'), $(haproxy -v | head -n1 | awk '{print "HAProxy " $3}'), $(wrk -v 2>&1 | head -n1 | awk '{print $1, $2}'), $(valgrind --version)"
  echo "settings=wrk -t$WRK_THREADS -c$WRK_CONNS -d${DURATION}s --latency (+${WARMUP}s warm-up), $ROUNDS round(s), parts $ONLY; proxies on core $PROXY_CORE, origin nginx + wrk on core $LOAD_CORE; idle conns $IDLE_CONNS; callgrind N1=$CG_N1 N2=$CG_N2"
} >"$OUT/meta.txt"

python3 "$BENCH/report.py" "$OUT"
if grep -q '^s4' "$OUT/raw.tsv" && awk -F'\t' '$1=="s4" && $4!="" && ($7+$8+$9+$10+$11)>0 {bad=1} END {exit !bad}' "$OUT/raw.tsv"; then
  echo "bench/run.sh: scenario 4 (SIGHUP every 100 ms) saw errors; it must see none" >&2
  exit 3
fi
