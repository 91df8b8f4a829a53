# Shared bash helpers of the Sluice load tests (sourced, not run).
# Every process is started through lt_start and stopped by its PID on exit; loopback only.
# Exit codes of the scenarios: 0 pass, 1 fail, 2 setup error, 77 feature not available yet.

export LT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LT_ROOT=$(cd "$LT_DIR/.." && pwd)
LT_TMP=$(mktemp -d /tmp/sluice-loadtest.XXXXXX)
LT_PIDS=()
export PYTHONDONTWRITEBYTECODE=1

lt_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
lt_fail() { printf 'FAIL: %s\n' "$*"; exit 1; }
lt_setup_error() { printf 'ERROR: %s\n' "$*" >&2; exit 2; }
lt_skip() { printf 'UNSUPPORTED: %s\n' "$*"; exit 77; }

lt_cleanup() {
  local pid i
  for pid in "${LT_PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid" 2>/dev/null || true; }; done
  for pid in "${LT_PIDS[@]}"; do
    for (( i = 0; i < 100; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null || true; }
    wait "$pid" 2>/dev/null || true
  done
  return 0
}
lt_on_exit() {
  local rc=$?
  lt_cleanup
  if (( rc == 0 || rc == 77 )); then rm -rf "$LT_TMP"; else echo "logs kept in $LT_TMP"; fi
}
trap lt_on_exit EXIT
trap 'exit 130' INT TERM

# $SLUICE, else an existing build (release first), else a release build into .build-bench.
lt_sluice() {
  if [[ -n ${SLUICE:-} ]]; then
    [[ -x $SLUICE ]] || lt_setup_error "SLUICE=$SLUICE is not an executable"
    echo "$SLUICE"; return
  fi
  local rel
  for rel in .build-bench/release/sluice .build/release/sluice .build/debug/sluice; do
    [[ -x $LT_ROOT/$rel ]] && { echo "$LT_ROOT/$rel"; return; }
  done
  # The bench's build, so both share one build in .build-bench.
  lt_log "no sluice binary: building (bench/build-release.sh)" >&2
  "$LT_ROOT/bench/build-release.sh" || lt_setup_error "swift build failed; set SLUICE=/path/to/sluice"
}

lt_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

lt_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# lt_start NAME CMD...: background CMD (log in $LT_TMP/NAME.log); its PID in $LT_PID.
lt_start() {
  local name=$1; shift
  "$@" >"$LT_TMP/$name.log" 2>&1 &
  LT_PID=$!
  LT_PIDS+=("$LT_PID")
}

# lt_wait_port PORT PID NAME [TIMEOUT_S]
lt_wait_port() {
  local port=$1 pid=$2 name=$3 timeout=${4:-30} i
  for (( i = 0; i < timeout * 10; i++ )); do
    kill -0 "$pid" 2>/dev/null || { tail -n 15 "$LT_TMP/$name.log"; lt_setup_error "$name exited before listening on 127.0.0.1:$port"; }
    lt_port_open "$port" && return 0
    sleep 0.1
  done
  lt_setup_error "$name not listening on 127.0.0.1:$port after ${timeout}s"
}

# lt_stop PID: TERM one process we started, wait for it (KILL after 15 s).
lt_stop() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid" 2>/dev/null || true; }
  for (( i = 0; i < 150; i++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
  return 0
}

# lt_backend VERSION [--latency D]: start `sluice backend` on a free port; port in $LT_PORT.
lt_backend() {
  local version=$1; shift
  LT_PORT=$(lt_free_port)
  lt_start "backend-$version" "$SLUICE_BIN" backend --listen "127.0.0.1:$LT_PORT" --version "$version" "$@"
  lt_wait_port "$LT_PORT" "$LT_PID" "backend-$version"
}

# lt_has_ctl [SUBCOMMAND]: does this binary have `sluice ctl` (and the subcommand)?
# (ArgumentParser answers `--help` of an unknown subcommand with the root help and exit 0, so
# the check reads the USAGE line instead of the exit status.)
lt_has_ctl() {
  local help
  help=$("$SLUICE_BIN" ctl --help 2>&1) || return 1
  grep -q 'USAGE: sluice ctl' <<<"$help" || return 1
  [[ -z ${1:-} ]] && return 0
  grep -qw -- "$1" <<<"$help" || "$SLUICE_BIN" ctl "$1" --help 2>&1 | grep -q "USAGE: sluice ctl.* $1"
}

# lt_ctl SOCK SUB ARGS...: `sluice ctl --socket SOCK SUB ARGS` (the SPEC form); when the CLI
# rejects that form as a usage error (exit 64), retries as `sluice ctl SUB --socket SOCK ARGS`.
lt_ctl() {
  local sock=$1 rc=0; shift
  "$SLUICE_BIN" ctl --socket "$sock" "$@" 2>"$LT_TMP/ctl.err" || rc=$?
  if (( rc == 64 )); then
    rc=0; "$SLUICE_BIN" ctl "$1" --socket "$sock" "${@:2}" || rc=$?
  else
    cat "$LT_TMP/ctl.err" >&2
  fi
  return "$rc"
}

# lt_generation SOCK: the config generation from GET /status on the admin socket ("?" if none).
lt_generation() {
  python3 "$LT_DIR/common.py" admin "$1" GET /status 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["generation"])' 2>/dev/null || echo "?"
}

lt_rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
lt_fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
