#!/usr/bin/env bash
# Requests through `sluice run` started as an unprivileged user (nobody), the way a proxy is
# deployed, to an HTTP/1.1 and an HTTP/2 (h2c) backend. The test suite runs as root, here and
# on CI, which once hid a socket option only root may set: as any other user, every client
# connection was reset and every upstream connect failed. CI runs this after the test suite.
#
# usage: loadtest/unprivileged.sh        (as root, to switch to nobody; skipped otherwise)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

if [[ $(id -u) != 0 ]] || ! command -v setpriv >/dev/null; then
  echo "SKIPPED: needs root and setpriv to start the proxy as nobody"; exit 0
fi
SLUICE_BIN=$(lt_sluice)
# nobody must be able to run the binary and read the config, wherever the build lives.
cp "$SLUICE_BIN" "$LT_TMP/sluice"
chmod 755 "$LT_TMP" "$LT_TMP/sluice"
SLUICE_BIN=$LT_TMP/sluice
# setpriv execs the command, so each PID the helpers keep is the process itself.
as_nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups)

app=$(lt_free_port); grpc=$(lt_free_port); proxy=$(lt_free_port)
lt_start app "${as_nobody[@]}" "$SLUICE_BIN" backend --listen "127.0.0.1:$app" --version v1
lt_wait_port "$app" "$LT_PID" app
lt_start grpc "${as_nobody[@]}" "$SLUICE_BIN" backend --listen "127.0.0.1:$grpc" --version v2 --h2c
lt_wait_port "$grpc" "$LT_PID" grpc
cat >"$LT_TMP/sluice.yaml" <<YAML
listen: ["127.0.0.1:$proxy"]
backends:
  app: { version: v1, endpoints: ["127.0.0.1:$app"] }
  grpc: { version: v2, endpoints: ["127.0.0.1:$grpc"], protocol: h2 }
routes:
  - name: grpc
    match: { pathPrefix: /h2 }
    backend: grpc
  - name: web
    backend: app
YAML
chmod 644 "$LT_TMP/sluice.yaml"
lt_start proxy "${as_nobody[@]}" "$SLUICE_BIN" run --config "$LT_TMP/sluice.yaml"
lt_wait_port "$proxy" "$LT_PID" proxy
[[ $(ps -o user= -p "$LT_PID") == nobody ]] || lt_setup_error "the proxy does not run as nobody"

# check PATH VERSION: a 200 from VERSION through the proxy.
check() {
  local body
  body=$(curl -s -m 5 -w ' %{http_code}' "http://127.0.0.1:$proxy$1") || true
  [[ $body == *"\"version\":\"$2\""*" 200" ]] || {
    tail -n 5 "$LT_TMP"/*.log
    lt_fail "GET $1 as nobody: expected 200 from $2, got: ${body:-no answer}"
  }
  lt_log "GET $1 -> 200 from $2"
}
check /hello v1
check /h2/hello v2
echo "PASS: unprivileged"
