#!/bin/sh
# run-fuzzers.sh BUILD_DIR SECONDS_EACH
#
# Runs every codec fuzz target of BUILD_DIR (configured with -Dfuzzing=true)
# for SECONDS_EACH seconds, each on a temporary copy of its seed corpus so
# the source tree stays clean. Prints one line per target and exits non-zero
# if any target crashed, leaked, timed out or is missing. Crash inputs and
# logs are kept in BUILD_DIR/fuzz-artifacts/TARGET/. SECONDS_EACH 0 only
# replays the seed corpus.
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

src_dir=$(cd "$(dirname "$0")" && pwd)
work_dir=$(mktemp -d "${TMPDIR:-/tmp}/engineio-fuzz.XXXXXX") || exit 2
trap 'rm -rf "$work_dir"' EXIT INT TERM

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"

if [ "$seconds" -eq 0 ]; then
  duration="-runs=0"
else
  duration="-max_total_time=$seconds"
fi

status=0
for target in fuzz-packet fuzz-payload-v4 fuzz-payload-v3-text fuzz-payload-v3-binary; do
  exe=$build_dir/tests/fuzz/$target
  if [ ! -x "$exe" ]; then
    echo "$target: MISSING ($exe: configure with CC=clang -Dfuzzing=true)"
    status=1
    continue
  fi

  corpus=$work_dir/$target/corpus
  artifacts=$work_dir/$target/artifacts
  log=$work_dir/$target/log
  mkdir -p "$corpus" "$artifacts"
  cp "$src_dir/corpus/$target/"* "$corpus/"

  if "$exe" "$duration" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -dict="$src_dir/engineio.dict" -artifact_prefix="$artifacts/" \
       "$corpus" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "$target: OK (${runs:-?} runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs)"
  else
    rc=$?
    keep=$build_dir/fuzz-artifacts/$target
    mkdir -p "$keep"
    cp "$log" "$keep/log"
    cp "$artifacts/"* "$keep/" 2>/dev/null
    echo "$target: FAILED (exit $rc; log and crash inputs in $keep)"
    grep -m 1 -E 'ERROR: |check failed|runtime error|ERROR:' "$log" | sed 's/^/  /'
    status=1
  fi
done

exit $status
