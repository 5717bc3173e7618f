#!/bin/sh
# run-fuzzers.sh BUILD_DIR SECONDS_EACH
#
# Runs every fuzz target of BUILD_DIR (configured with -Dfuzzing=true) for
# SECONDS_EACH seconds, FUZZ_JOBS (default 2) targets at a time, so the
# wall time is about SECONDS_EACH * ceil(9 / FUZZ_JOBS). Each target starts from
# its seed corpus (tests/fuzz/corpus/TARGET) copied to a temporary
# directory, so the source tree stays clean; with FUZZ_CORPUS_DIR set, the
# corpus lives in FUZZ_CORPUS_DIR/TARGET instead and grows from run to run.
#
# Prints one line per target, in a fixed order:
#   TARGET: OK (RUNS runs in SECONDS_EACHs, corpus N inputs, cov C)
#   TARGET: FAILED (...)   or   TARGET: MISSING (...)
# and exits non-zero if any target crashed, leaked, timed out or is
# missing. Crash inputs and logs are kept in BUILD_DIR/fuzz-artifacts/TARGET/.
# SECONDS_EACH 0 only replays the seed corpus. FUZZ_TARGETS (space-separated)
# runs only some targets.
#
# SPDX-License-Identifier: MIT
set -u

if [ $# -ne 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS_EACH" >&2
  exit 2
fi
build_dir=$1
seconds=$2
case $seconds in
  ''|*[!0-9]*) echo "$0: SECONDS_EACH must be a whole number" >&2; exit 2 ;;
esac
jobs=${FUZZ_JOBS:-2}
case $jobs in
  ''|*[!0-9]*|0) echo "$0: FUZZ_JOBS must be a positive number" >&2; exit 2 ;;
esac

targets=${FUZZ_TARGETS:-fuzz-request fuzz-websocket fuzz-packet fuzz-payload-v4 fuzz-payload-v3-text fuzz-payload-v3-binary fuzz-sio-packet fuzz-ws-codec fuzz-session}

src_dir=$(cd "$(dirname "$0")" && pwd)
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/engineio-fuzz.XXXXXX") || exit 2
pids=""
cleanup () {
  for pid in $pids; do kill "$pid" 2>/dev/null; done
  rm -rf "$work_dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
# GLib's slice allocator would hide use-after-free from ASan (the targets
# re-execute themselves with this set otherwise).
export G_SLICE=always-malloc

if [ "$seconds" -eq 0 ]; then
  duration="-runs=0"
else
  duration="-max_total_time=$seconds"
fi

# run_one TARGET: fuzzes TARGET, writes its result line to $work_dir/TARGET/result.
run_one () {
  target=$1
  exe=$build_dir/tests/fuzz/$target
  dir=$work_dir/$target
  mkdir -p "$dir/artifacts"
  if [ ! -x "$exe" ]; then
    echo "$target: MISSING ($exe: configure with CC=clang -Dfuzzing=true)" >"$dir/result"
    return
  fi

  if [ -n "${FUZZ_CORPUS_DIR:-}" ]; then
    corpus=$FUZZ_CORPUS_DIR/$target
  else
    corpus=$dir/corpus
  fi
  mkdir -p "$corpus"
  cp "$src_dir/corpus/$target/"* "$corpus/"

  dict=$src_dir/$target.dict
  [ -f "$dict" ] || dict=$src_dir/engineio.dict

  if "$exe" "$duration" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -dict="$dict" -artifact_prefix="$dir/artifacts/" \
       "$corpus" >"$dir/log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n 1)
    cov=$(sed -n 's/^#[0-9]*[[:space:]]*DONE[[:space:]]*cov: \([0-9]*\).*/\1/p' "$dir/log" | tail -n 1)
    echo "$target: OK (${runs:-?} runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs, cov ${cov:-?})" >"$dir/result"
  else
    rc=$?
    keep=$build_dir/fuzz-artifacts/$target
    mkdir -p "$keep"
    cp "$dir/log" "$keep/log"
    cp "$dir/artifacts/"* "$keep/" 2>/dev/null
    {
      echo "$target: FAILED (exit $rc; log and crash inputs in $keep)"
      grep -m 1 -E 'ERROR: |check failed|runtime error' "$dir/log" | sed 's/^/  /'
    } >"$dir/result"
  fi
}

# FUZZ_JOBS targets at a time, in batches.
status=0
set -- $targets
while [ $# -gt 0 ]; do
  batch=""
  pids=""
  n=0
  while [ $# -gt 0 ] && [ "$n" -lt "$jobs" ]; do
    run_one "$1" &
    pids="$pids $!"
    batch="$batch $1"
    n=$((n + 1))
    shift
  done
  wait
  pids=""
  for target in $batch; do
    cat "$work_dir/$target/result"
    case $(head -n 1 "$work_dir/$target/result") in
      *": OK ("*) ;;
      *) status=1 ;;
    esac
  done
done

exit $status
