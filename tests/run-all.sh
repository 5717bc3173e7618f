#!/usr/bin/env bash
# Builds engineio-glib and runs the whole test suite:
#   1. a normal build (GIR, typelib, API docs) and every meson test suite
#      (unit, integration, reliability, interop with real clients, python,
#      browser), then the soak script on that build (tests/soak/soak.sh,
#      SOAK_SECONDS, default 300);
#   2. an ASan+UBSan build and the unit, integration, reliability and interop
#      suites again;
#   3. a TSan build against an instrumented GLib, the unit and integration
#      suites again;
#   4. the six libFuzzer targets (codec, request handler, WebSocket sessions)
#      under ASan+UBSan (clang), two at a time: 6 x FUZZ_SECONDS CPU-seconds
#      (12 CPU-minutes by default) in about 3 x FUZZ_SECONDS of wall time.
# Dependencies come from .ci/install-deps.sh. Ends with one line:
#   N passed, N failed, N skipped
# Environment: FUZZ_SECONDS (per target, default 120), SOAK_SECONDS (default 300),
# SKIP_ASAN=1, SKIP_SOAK=1, SKIP_TSAN=1, SKIP_FUZZ=1.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-120}
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

soak_passed=0
soak_failed=0
if [ "${SKIP_SOAK:-0}" != 1 ]; then
  step "soak: 2000 churning sessions of mixed transports for ${SOAK_SECONDS:-300} s"
  if [ -x build-ci/src/tools/engineio-echo ]; then
    if SOAK_SECONDS=${SOAK_SECONDS:-300} bash tests/soak/soak.sh build-ci; then
      soak_passed=1
    else
      soak_failed=1; status=1
    fi
  else
    echo "soak: FAILED (no build)"; soak_failed=1; status=1
  fi
fi

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "ASan+UBSan build, unit + integration + reliability + interop suites"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
  if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dintrospection=disabled \
       -Ddemo=false && meson compile -C build-asan; then
    meson test -C build-asan --print-errorlogs --num-processes 2 \
      --suite unit --suite integration --suite reliability --suite interop || status=1
    logs+=(build-asan/meson-logs/testlog.json)
  else
    echo "ASan build failed"; status=1; logs+=(build-asan/meson-logs/testlog.json)
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS
fi

# BEGIN tsan
# ThreadSanitizer: the unit and integration suites (both threading modes)
# against Debian's GLib rebuilt with -fsanitize=thread (.ci/build-tsan-glib.sh,
# reused while its stamp matches). Any report fails its test: halt_on_error
# makes TSan exit 66 at the first one. .ci/tsan.supp: third-party code only.
if [ "${SKIP_TSAN:-0}" != 1 ]; then
  step "TSan build against an instrumented GLib, unit + integration suites"
  tsan_t0=$SECONDS
  rm -rf build-tsan  # no stale testlog.json when the GLib build fails
  if tsan_glib=$(CC=gcc bash .ci/build-tsan-glib.sh "$PWD/build-tsan-glib"); then
    echo "instrumented GLib: $tsan_glib ($((SECONDS - tsan_t0)) s)"
    tsan_t1=$SECONDS
    if CC=gcc PKG_CONFIG_PATH=$tsan_glib/lib/pkgconfig \
         setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dintrospection=disabled \
         -Ddemo=false && meson compile -C build-tsan &&
       tsan_lib=$(ldd build-tsan/tests/test-server | awk '$1 == "libglib-2.0.so.0" { print $3 }') &&
       [ "$(realpath "$tsan_lib")" = "$(realpath "$tsan_glib/lib/libglib-2.0.so.0")" ]; then
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/.ci/tsan.supp \
      LD_LIBRARY_PATH=$tsan_glib/lib G_SLICE=always-malloc \
        meson test -C build-tsan --print-errorlogs --num-processes 2 --timeout-multiplier 2 \
          --suite unit --suite integration || status=1
    else
      echo "TSan build failed (or does not load the instrumented GLib)"; status=1
    fi
    echo "TSan build and tests: $((SECONDS - tsan_t1)) s"
  else
    echo "instrumented GLib build failed"; status=1
  fi
  logs+=(build-tsan/meson-logs/testlog.json)
fi
# END tsan

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
p=$((p + fuzz_passed + soak_passed)); f=$((f + fuzz_failed + soak_failed))
[ "$f" = 0 ] || status=1
echo "$p passed, $f failed, $s skipped"
exit $status
