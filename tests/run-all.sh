#!/usr/bin/env bash
# Builds engineio-glib and runs the whole test suite:
#   1. a normal build (GIR, typelib, API docs) and every meson test suite
#      (unit, integration, interop with real clients, python, browser);
#   2. an ASan+UBSan build and the unit, integration and interop suites again;
#   3. each libFuzzer target briefly, under ASan+UBSan (clang).
# Dependencies come from .ci/install-deps.sh. Ends with one line:
#   N passed, N failed, N skipped
# Environment: FUZZ_SECONDS (per target, default 30), SKIP_ASAN=1, SKIP_FUZZ=1.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
status=0
logs=()
fuzz_passed=0
fuzz_failed=0

step () { printf '\n=== %s\n' "$*"; }

setup () {  # setup BUILDDIR ARGS...: a clean configure
  local dir=$1; shift
  rm -rf "$dir"
  meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
}

step "build (GIR, docs) and run every suite"
if setup build-ci -Ddocumentation=true && meson compile -C build-ci; then
  meson test -C build-ci --print-errorlogs --num-processes 2 || status=1
  logs+=(build-ci/meson-logs/testlog.json)
else
  echo "build failed"; status=1; logs+=(build-ci/meson-logs/testlog.json)
fi

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "ASan+UBSan build, unit + integration + interop suites"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
  if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dintrospection=disabled \
       -Ddemo=false && meson compile -C build-asan; then
    meson test -C build-asan --print-errorlogs --num-processes 2 \
      --suite unit --suite integration --suite interop || status=1
    logs+=(build-asan/meson-logs/testlog.json)
  else
    echo "ASan build failed"; status=1; logs+=(build-asan/meson-logs/testlog.json)
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzzers (${FUZZ_SECONDS} s each, ASan+UBSan)"
  if CC=clang setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
       -Dintrospection=disabled -Ddemo=false && meson compile -C build-fuzz; then
    if out=$(bash tests/fuzz/run-fuzzers.sh build-fuzz "$FUZZ_SECONDS" 2>&1); then :; else status=1; fi
    echo "$out"
    fuzz_passed=$(grep -c ': OK (' <<<"$out" || true)
    fuzz_failed=$(grep -cE ': (FAILED|MISSING)' <<<"$out" || true)
    if [ "$fuzz_passed" = 0 ] && [ "$fuzz_failed" = 0 ]; then fuzz_failed=1; fi
  else
    echo "fuzzer build failed"; status=1; fuzz_failed=1
  fi
fi

step "results"
summary=$(/usr/bin/python3 .ci/count-results.py "${logs[@]}")
read -r p _ f _ s _ <<<"$summary"
p=$((p + fuzz_passed)); f=$((f + fuzz_failed))
[ "$f" = 0 ] || status=1
echo "$p passed, $f failed, $s skipped"
exit $status
