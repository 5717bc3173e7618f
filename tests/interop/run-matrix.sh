#!/bin/sh
# Runs every client x transport combination of run-interop.py against one server command, e.g.
#   tests/interop/run-matrix.sh node tests/interop/reference-echo.js
#   tests/interop/run-matrix.sh build/src/tools/engineio-echo
# Extra harness options can go in RUN_INTEROP_OPTS (e.g. "--loop-threads 4 --big").
# Prints one PASS/FAIL line per run and "N passed, N failed" at the end; exit 1 if any failed.
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 SERVER-CMD [ARG...]" >&2; exit 2; }
pass=0; fail=0
run() {
  log=$(mktemp)
  if /usr/bin/python3 "$here/run-interop.py" --server "$@" $RUN_INTEROP_OPTS >"$log" 2>&1; then
    pass=$((pass + 1)); tail -n 1 "$log"
  else
    fail=$((fail + 1)); echo "FAIL: $*"; sed 's/^/    /' "$log" | head -n 60
  fi
  rm -f "$log"
}
for c in node python; do
  run "$@" --client $c --transports polling --expect-transport polling
  run "$@" --client $c --transports websocket --expect-transport websocket
  run "$@" --client $c --transports polling,websocket --expect-transport websocket
done
run "$@" --client node --transports polling --expect-transport polling --client-arg=--polling-impl=fetch
for t in polling websocket polling,websocket; do
  e=websocket; [ $t = polling ] && e=polling
  run "$@" --client node-v3 --eio3 --transports $t --expect-transport $e
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
