#!/usr/bin/env bash
# reload_storm.sh — reload the config 10 times a second under load; no request may fail.
#
# Usage: loadtest/reload_storm.sh [--seconds 20] [--connections 8]
#
# Starts two `sluice backend`s (v1, v2) and `sluice run` with a canary route on free loopback
# ports and an admin socket, then, while loadtest/load_client.py sends keep-alive traffic, every
# 100 ms rewrites the config file (atomically: write + rename) flipping the split between 90/10
# and 50/50 and sends SIGHUP. Every 10th step writes an INVALID file instead (the running table
# must keep serving) and then restores a valid one. When `sluice ctl` exists, every 5th step
# also runs `sluice ctl reload`.
#
# Asserts: zero non-2xx responses and zero socket errors; the proxy is alive at the end; both
# versions answered. Through the admin socket: the generation rose, and the invalid files were
# counted (sluice_config_reloads_total{result="error"} > 0 in /metrics).
# A proxy that exits on the first SIGHUP (no handler yet) gives exit 77 (UNSUPPORTED).
# Exit 0 pass, 1 fail, 2 setup error, 77 unsupported. Bounded by --seconds (+ ~15 s setup).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECONDS_RUN=20
CONNS=8
while (( $# )); do
  case $1 in
    --seconds) SECONDS_RUN=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) lt_setup_error "unknown argument '$1'" ;;
  esac
done

SLUICE_BIN=$(lt_sluice)
lt_backend v1; V1=$LT_PORT
lt_backend v2; V2=$LT_PORT
PORT=$(lt_free_port)
CFG=$LT_TMP/sluice.yaml
SOCK=$LT_TMP/admin.sock

write_config() { # W1 W2 | invalid
  local tmp=$CFG.tmp
  if [[ $1 == invalid ]]; then
    cat >"$tmp" <<EOF
listen: ["127.0.0.1:$PORT"]
admin: { socket: $SOCK }
backends:
  app-v1: { version: v1, endpoints: ["127.0.0.1:$V1"] }
routes:
  - name: web
    split: { app-v1: 90, nosuch: 10 }
EOF
  else
    cat >"$tmp" <<EOF
listen: ["127.0.0.1:$PORT"]
admin: { socket: $SOCK }
state: $LT_TMP/state.json
backends:
  app-v1: { version: v1, endpoints: ["127.0.0.1:$V1"] }
  app-v2: { version: v2, endpoints: ["127.0.0.1:$V2"] }
routes:
  - name: web
    rules:
      - when: { headers: { x-experiment: b } }
        backend: app-v2
    split: { app-v1: $1, app-v2: $2 }
EOF
  fi
  mv -f "$tmp" "$CFG"
}

write_config 90 10
lt_start sluice "$SLUICE_BIN" run --config "$CFG"
PROXY=$LT_PID
lt_wait_port "$PORT" "$PROXY" sluice

# Probe: without a handler, SIGHUP's default action terminates the process.
kill -HUP "$PROXY"; sleep 0.5
if ! kill -0 "$PROXY" 2>/dev/null; then
  lt_skip "the proxy exited on SIGHUP: config reload on SIGHUP is not implemented in $SLUICE_BIN yet"
fi

CTL=0
if lt_has_ctl reload; then CTL=1; else lt_log "sluice ctl not available: only SIGHUP is used"; fi
GEN0=$(lt_generation "$SOCK")

lt_log "load: $CONNS connections for ${SECONDS_RUN}s against 127.0.0.1:$PORT; SIGHUP every 100 ms"
lt_start load python3 "$LT_DIR/load_client.py" --port "$PORT" --connections "$CONNS" --seconds "$SECONDS_RUN"
LOAD=$LT_PID
step=0 hups=0 ctls=0 invalid=0
while kill -0 "$LOAD" 2>/dev/null; do
  kill -0 "$PROXY" 2>/dev/null || break
  step=$(( step + 1 ))
  if (( step % 10 == 0 )); then
    write_config invalid; invalid=$(( invalid + 1 ))
    kill -HUP "$PROXY" 2>/dev/null && hups=$(( hups + 1 ))
    sleep 0.1
    write_config 90 10
  elif (( step % 2 )); then
    write_config 50 50
  else
    write_config 90 10
  fi
  kill -HUP "$PROXY" 2>/dev/null && hups=$(( hups + 1 ))
  if (( CTL && step % 5 == 0 )); then
    lt_ctl "$SOCK" reload >/dev/null 2>&1 && ctls=$(( ctls + 1 ))
  fi
  sleep 0.1
done
LOAD_RC=0; wait "$LOAD" || LOAD_RC=$?
RESULT=$(grep '^LOAD ' "$LT_TMP/load.log" || echo "LOAD (no result)")
lt_log "$hups SIGHUPs ($invalid with an invalid file), $ctls ctl reloads"
lt_log "$RESULT"
grep '^  error:' "$LT_TMP/load.log" || true

problems=()
kill -0 "$PROXY" 2>/dev/null || problems+=("the proxy exited during the storm (log: $LT_TMP/sluice.log)")
(( LOAD_RC == 0 )) || problems+=("requests failed: $RESULT")
[[ $RESULT == *v1:* && $RESULT == *v2:* ]] || problems+=("not both versions answered: $RESULT")
if [[ $GEN0 != "?" ]] && kill -0 "$PROXY" 2>/dev/null; then
  GEN1=$(lt_generation "$SOCK")
  lt_log "generation $GEN0 -> $GEN1"
  if [[ $GEN0 == "?" || $GEN1 == "?" ]] || (( GEN1 <= GEN0 )); then
    problems+=("the generation did not rise ($GEN0 -> $GEN1)")
  fi
  ERRS=$(python3 "$LT_DIR/common.py" admin "$SOCK" GET /metrics 2>/dev/null \
    | awk '/^sluice_config_reloads_total\{.*result="error"/ {print $NF}' | head -n 1)
  lt_log "sluice_config_reloads_total{result=\"error\"} = ${ERRS:-absent}"
  if (( invalid > 0 )) && ! python3 -c "import sys; sys.exit(0 if float('${ERRS:-0}') > 0 else 1)"; then
    problems+=("$invalid invalid files were sent but no reload error was counted")
  fi
fi
(( ${#problems[@]} == 0 )) || lt_fail "$(IFS='; '; echo "${problems[*]}")"
echo "PASS: reload_storm"
