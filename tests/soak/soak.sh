#!/bin/bash
# Soak: engineio-echo under 2,000 churning real-client sessions for SOAK_SECONDS, checking that
# its memory stays flat and that nothing goes wrong.
#
#   tests/soak/soak.sh [BUILD_DIR]            (or BUILD_DIR=… tests/soak/soak.sh)
#
# Environment (defaults):
#   BUILD_DIR          build directory with src/tools/engineio-echo (build)
#   SOAK_SECONDS       length of the run (300). For a longer soak, e.g. an hour:
#                      SOAK_SECONDS=3600 tests/soak/soak.sh build
#   SOAK_SESSIONS      concurrent client sessions (2000)
#   SOAK_LOOP_THREADS  engineio-echo --loop-threads (0: a thread per session)
#   SOAK_MESSAGE_MS    mean ms between messages of one session (5000: ~400 echoes/s in all)
#   SOAK_SEED          seed of the client's choices (random)
#   NODE               node executable (node)
#
# The server: engineio-echo --port 0 --eio3 --ping-interval 2500 --ping-timeout 20000
# --metrics-path /metrics --verbose (one line per open, upgrade and close). The clients
# (soak-client.mjs, npm engine.io-client 6 and 3 from tests/interop/node_modules): v4 and v3,
# polling, WebSocket and polling upgrading to WebSocket; each session lives 1-20 s with echo round
# trips (content and order checked), then closes cleanly or (30 %) abruptly, and is replaced.
# Pass: zero errors (client-observed errors and unexpected closes, echo mismatches or losses,
# server close reasons that do not match how the client ended, sessions left open on the
# server, any server output on stderr, a server that dies or does not exit cleanly) and server
# RSS after the warm-up at most 10 % over its post-warm-up baseline (defined in soak-client.mjs:
# the highest sample in the minute after the warm-up).
# Last line: `soak: OK (…)` or `soak: FAILED (…)`; exit status 0 only on OK.
set -u

here=$(cd "$(dirname "$0")" && pwd)
BUILD_DIR=${1:-${BUILD_DIR:-build}}
SOAK_SECONDS=${SOAK_SECONDS:-300}
SOAK_SESSIONS=${SOAK_SESSIONS:-2000}
SOAK_LOOP_THREADS=${SOAK_LOOP_THREADS:-0}
SOAK_MESSAGE_MS=${SOAK_MESSAGE_MS:-5000}
NODE=${NODE:-node}
PING_INTERVAL=2500
PING_TIMEOUT=20000

fail() {
  echo "soak: FAILED ($*)"
  exit 1
}

echo_bin=$BUILD_DIR/src/tools/engineio-echo
[ -x "$echo_bin" ] || fail "no $echo_bin: build first (meson compile -C $BUILD_DIR)"
command -v "$NODE" > /dev/null || fail "node not found (NODE=$NODE)"
[ -d "$here/../interop/node_modules/engine.io-client" ] || fail "run npm ci --prefix tests/interop first"

work=$(mktemp -d "${TMPDIR:-/tmp}/engineio-soak.XXXXXX")
server_pid=
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2> /dev/null; then
    kill -KILL "$server_pid" 2> /dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# A file descriptor limit that fits 2,000 sessions on both sides (polling keeps a few
# connections per session).
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)" 2> /dev/null || true

"$echo_bin" --port 0 --eio3 --ping-interval "$PING_INTERVAL" --ping-timeout "$PING_TIMEOUT" \
  --metrics-path /metrics --loop-threads "$SOAK_LOOP_THREADS" --verbose \
  > "$work/server.out" 2> "$work/server.err" &
server_pid=$!

port=
for _ in $(seq 100); do
  port=$(sed -n '1s|^listening on http://127\.0\.0\.1:\([0-9]*\)/engine\.io/$|\1|p' "$work/server.out")
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2> /dev/null || break
  sleep 0.1
done
[ -n "$port" ] || fail "engineio-echo did not start: $(head -c 500 "$work/server.err")"
echo "soak: engineio-echo pid $server_pid on port $port, loop-threads $SOAK_LOOP_THREADS," \
  "$SOAK_SESSIONS sessions for $SOAK_SECONDS s"

seed_args=()
[ -n "${SOAK_SEED:-}" ] && seed_args=(--seed "$SOAK_SEED")
"$NODE" "$here/soak-client.mjs" \
  --url "http://127.0.0.1:$port/engine.io/" \
  --metrics-url "http://127.0.0.1:$port/metrics" \
  --server-pid "$server_pid" --server-log "$work/server.out" \
  --sessions "$SOAK_SESSIONS" --seconds "$SOAK_SECONDS" --message-interval "$SOAK_MESSAGE_MS" \
  --ping-interval "$PING_INTERVAL" --ping-timeout "$PING_TIMEOUT" "${seed_args[@]}" \
  | tee "$work/client.out"
client_status=${PIPESTATUS[0]}

problems=()
[ "$client_status" -eq 0 ] || problems+=("client exit status $client_status")
if ! kill -0 "$server_pid" 2> /dev/null; then
  problems+=("engineio-echo died during the run")
else
  kill -TERM "$server_pid"
  for _ in $(seq 200); do
    kill -0 "$server_pid" 2> /dev/null || break
    sleep 0.1
  done
  if kill -0 "$server_pid" 2> /dev/null; then
    problems+=("engineio-echo did not exit within 20 s of SIGTERM")
  else
    wait "$server_pid"
    server_status=$?
    [ "$server_status" -eq 0 ] || problems+=("engineio-echo exit status $server_status")
  fi
fi
server_pid=
if [ -s "$work/server.err" ]; then
  echo "soak: engineio-echo stderr (first 20 lines):"
  head -n 20 "$work/server.err"
  problems+=("engineio-echo wrote $(wc -l < "$work/server.err") line(s) to stderr")
fi

summary=$(sed -n 's/^client: [A-Z]* (\(.*\))$/\1/p' "$work/client.out" | tail -n 1)
[ -n "$summary" ] || summary="no client summary"
if [ ${#problems[@]} -eq 0 ]; then
  echo "soak: OK ($summary)"
  exit 0
fi
echo "soak: FAILED ($(IFS=';'; echo "${problems[*]}"); $summary)"
exit 1
