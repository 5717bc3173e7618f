#!/usr/bin/env bash
# Builds engineio-glib and runs the whole test suite:
#   1. a normal build (GIR, typelib, API docs) and every meson test suite
#      (unit, integration, reliability, interop with real clients, python,
#      browser), then the soak script on that build (tests/soak/soak.sh,
#      SOAK_SECONDS, default 240);
#   2. an ASan+UBSan build and the unit, integration, reliability and interop
#      suites again (the reliability tests that run alone, and the Engine.IO
#      interop cases, in one threading mode each), and the Python suites
#      against that build's library, two at a time;
#   3. a TSan build against an instrumented GLib, the unit and integration
#      suites again;
#   4. the nine libFuzzer targets (codec, request handler, WebSocket sessions,
#      WebSocket frame codec, Socket.IO packet codec, session state machine)
#      under ASan+UBSan (clang), two at a time: 9 x FUZZ_SECONDS CPU-seconds
#      (4.5 CPU-minutes by default) in about 5 x FUZZ_SECONDS of wall time.
# The ASan and TSan builds also have the lock-order check (-Dlock_checks=true,
# src/runtime/engineio-lock-private.h): a lock taken out of order aborts.
# Every sanitizer stage runs with G_SLICE=always-malloc and G_DEBUG=gc-friendly,
# so that ASan/LSan/TSan see GLib's slice allocations (GObjects, lists, hash
# tables...) as ordinary heap memory.
# Dependencies come from .ci/install-deps.sh. Ends with the counts of
# .ci/count-results.py (one line per log, the number of distinct checks), the
# stages that ran and those skipped, and last one line:
#   N passed, N failed, N skipped
# Environment: FUZZ_SECONDS (per target, default 30), SOAK_SECONDS (default 240),
# SKIP_ASAN=1, SKIP_SOAK=1, SKIP_TSAN=1, SKIP_FUZZ=1.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-30}
# ThreadSanitizer runs the code several times slower: meson's timeouts and
# the tests' own upper time bounds (ENGINE_IO_TEST_TIME_SCALE, read by
# tests/testutil.c; lower bounds never scale) are multiplied by this.
TSAN_SCALE=3
# AddressSanitizer runs it about twice as slowly: the same scaling, for the
# tests' own upper bounds (meson's timeouts leave room already).
ASAN_SCALE=2
status=0
logs=()
ran=()
skipped=()

step () { printf '\n=== %s\n' "$*"; }

# result_log FILE NAME OK|FAIL: one result in the format of meson's
# testlog.json, for what meson does not run (the soak, the fuzzers).
result_log () {
  mkdir -p "$(dirname "$1")"
  printf '{"name": "%s", "result": "%s", "stdout": ""}\n' "$2" "$3" >>"$1"
}

setup () {  # setup BUILDDIR ARGS...: a clean configure
  local dir=$1; shift
  rm -rf "$dir"
  meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || { cat "$dir.setup.log"; return 1; }
}

step "build (GIR, docs) and run every suite"
ran+=("build+suites")
if setup build-ci -Ddocumentation=true && meson compile -C build-ci; then
  meson test -C build-ci --print-errorlogs --num-processes 2 || status=1
  logs+=(build-ci/meson-logs/testlog.json)
else
  echo "build failed"; status=1; logs+=(build-ci/meson-logs/testlog.json)
fi

if [ "${SKIP_SOAK:-0}" != 1 ]; then
  step "soak: 2000 churning sessions of mixed transports for ${SOAK_SECONDS:-240} s"
  ran+=(soak)
  soak_log=build-ci/meson-logs/soak-results.json
  rm -f "$soak_log"
  if [ -x build-ci/src/tools/engineio-echo ]; then
    if SOAK_SECONDS=${SOAK_SECONDS:-240} bash tests/soak/soak.sh build-ci; then
      result_log "$soak_log" soak OK
    else
      result_log "$soak_log" soak FAIL; status=1
    fi
  else
    echo "soak: FAILED (no build)"; result_log "$soak_log" soak FAIL; status=1
  fi
  logs+=("$soak_log")
else
  skipped+=("soak (SKIP_SOAK=1)")
fi

# The Python suites (tests/test-gi.py and tests/socketio/test-sio-python.py,
# pytest) against the ASan libraries, the ASan runtime preloaded into
# /usr/bin/python3 (and so into the clients it starts). The ASan build has no
# typelib of its own (g-ir-scanner's dump program deadlocks at exit under
# ASan, in p11-kit's destructor): build-ci's name the same libraries. Leak
# detection is off in this process only (the interpreter leaks by design);
# memory errors and UBSan stay fatal.
python_asan_one () {  # python_asan_one NAME DIR TESTFILE
  local name=$1 dir=$2 file=$3
  local log=build-asan/meson-logs/python-asan-$name.json
  local xml=$PWD/build-asan/meson-logs/python-asan-$name.junit.xml
  local started result=FAIL
  rm -f "$log" "$xml"
  started=$(date +%s)
  if [ -f build-ci/src/EngineIO-1.0.typelib ] && [ -f build-asan/src/libengineio-1.0.so.0 ] &&
     (cd "$dir" &&
      GI_TYPELIB_PATH=$ROOT/build-ci/src:$ROOT/build-ci/src/socketio \
      LD_LIBRARY_PATH=$ROOT/build-asan/src:$ROOT/build-asan/src/socketio \
      LD_PRELOAD="$(${CC:-cc} -print-file-name=libasan.so) $(${CC:-cc} -print-file-name=libubsan.so)" \
      ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 ENGINEIO_SOURCE_ROOT=$ROOT \
      SOCKETIO_OVERRIDES_DIR=$ROOT/src/socketio/python \
      NODE=$(command -v node) PYTHONDONTWRITEBYTECODE=1 \
        timeout 600 /usr/bin/python3 -m pytest -p no:cacheprovider -o faulthandler_timeout=60 \
          -q -rfE --junitxml="$xml" "$file"); then
    result=OK
  fi
  printf '{"name": "python-asan / %s", "result": "%s", "starttime": %s, "stdout": "", "command": ["pytest", "--junitxml=%s"]}\n' \
    "$name" "$result" "$started" "$xml" >"$log"
  [ "$result" = OK ]
}

# Two suites at a time, as meson runs them in the normal build (suite
# python, --num-processes 2): test-gi.py beside test-sio-python.py then
# test-host.py. They wait on their clients more than they run: measured
# under ASan on 2026-12-05, gi 75 s alone (61 s of CPU), host 47 s (19 s
# of CPU), sio-python 58 s (8 s of CPU); one after the other about 180 s,
# two at a time 108 s, all passed.
python_asan () {
  local ok=0 ROOT=$PWD gi_pid name
  # gi's output waits in a file: the two suites' lines would interleave.
  python_asan_one gi tests test-gi.py >build-asan/meson-logs/python-asan-gi.out 2>&1 &
  gi_pid=$!
  python_asan_one sio-python tests/socketio test-sio-python.py || ok=1
  python_asan_one host tests test-host.py || ok=1
  wait "$gi_pid" || ok=1
  cat build-asan/meson-logs/python-asan-gi.out
  for name in gi host sio-python; do
    logs+=("build-asan/meson-logs/python-asan-$name.json")
  done
  return $ok
}

if [ "${SKIP_ASAN:-0}" != 1 ]; then
  step "ASan+UBSan build, unit + integration + reliability + interop suites; Python suite with the ASan runtime preloaded"
  ran+=(asan)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  export LSAN_OPTIONS=suppressions=$PWD/.ci/lsan.supp:print_suppressions=0
  # Slice memory as plain malloc: LeakSanitizer sees leaked GObjects, lists
  # and hash tables, ASan their use after free.
  export G_SLICE=always-malloc G_DEBUG=gc-friendly
  export ENGINE_IO_TEST_TIME_SCALE=$ASAN_SCALE
  if setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dintrospection=disabled -Dlock_checks=true \
       -Ddemo=false && meson compile -C build-asan; then
    # The tests that load the machine alone, and the Engine.IO interop
    # cases, run in one threading mode each here (suite not-under-asan:
    # tests/reliability/meson.build, tests/meson.build), and the no-loss
    # test for 30 s instead of 60: memory errors show in either.
    NOLOSS_SECONDS=30 meson test -C build-asan --print-errorlogs --num-processes 2 \
      --suite unit --suite integration --suite reliability --suite interop \
      --no-suite not-under-asan || status=1
    logs+=(build-asan/meson-logs/testlog.json)
    python_asan || status=1
  else
    echo "ASan build failed"; status=1; logs+=(build-asan/meson-logs/testlog.json)
  fi
  unset ASAN_OPTIONS UBSAN_OPTIONS LSAN_OPTIONS G_SLICE G_DEBUG ENGINE_IO_TEST_TIME_SCALE
else
  skipped+=("asan (SKIP_ASAN=1)")
fi

# BEGIN tsan
# ThreadSanitizer: the unit and integration suites (both threading modes)
# against Debian's GLib rebuilt with -fsanitize=thread (.ci/build-tsan-glib.sh,
# reused while its stamp matches). Any report fails its test: halt_on_error
# makes TSan exit 66 at the first one. .ci/tsan.supp: third-party code only.
if [ "${SKIP_TSAN:-0}" != 1 ]; then
  step "TSan build against an instrumented GLib, unit + integration suites"
  ran+=(tsan)
  tsan_t0=$SECONDS
  rm -rf build-tsan  # no stale testlog.json when the GLib build fails
  if tsan_glib=$(CC=gcc bash .ci/build-tsan-glib.sh "$PWD/build-tsan-glib"); then
    echo "instrumented GLib: $tsan_glib ($((SECONDS - tsan_t0)) s)"
    tsan_t1=$SECONDS
    if CC=gcc PKG_CONFIG_PATH=$tsan_glib/lib/pkgconfig \
         setup build-tsan -Db_sanitize=thread -Db_lundef=false -Dintrospection=disabled -Dlock_checks=true \
         -Ddemo=false && meson compile -C build-tsan &&
       tsan_lib=$(ldd build-tsan/tests/test-server | awk '$1 == "libglib-2.0.so.0" { print $3 }') &&
       [ "$(realpath "$tsan_lib")" = "$(realpath "$tsan_glib/lib/libglib-2.0.so.0")" ]; then
      # The instrumented GLib looks for GIO modules in its own prefix: the
      # TLS tests need the system's glib-networking (GTlsCertificate).
      TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/.ci/tsan.supp \
      GIO_EXTRA_MODULES=$(pkg-config --variable=giomoduledir gio-2.0) \
      LD_LIBRARY_PATH=$tsan_glib/lib G_SLICE=always-malloc G_DEBUG=gc-friendly \
      ENGINE_IO_TEST_TIME_SCALE=$TSAN_SCALE \
        meson test -C build-tsan --print-errorlogs --num-processes 2 --timeout-multiplier $TSAN_SCALE \
          --suite unit --suite integration || status=1
    else
      echo "TSan build failed (or does not load the instrumented GLib)"; status=1
    fi
    echo "TSan build and tests: $((SECONDS - tsan_t1)) s"
  else
    echo "instrumented GLib build failed"; status=1
  fi
  logs+=(build-tsan/meson-logs/testlog.json)
else
  skipped+=("tsan (SKIP_TSAN=1)")
fi
# END tsan

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzzers (${FUZZ_SECONDS} s each, ASan+UBSan)"
  ran+=(fuzz)
  fuzz_log=build-fuzz.results.json  # outside build-fuzz, which setup removes
  rm -f "$fuzz_log"
  if CC=clang setup build-fuzz -Dfuzzing=true -Db_sanitize=address,undefined -Db_lundef=false \
       -Dintrospection=disabled -Ddemo=false && meson compile -C build-fuzz; then
    # run-fuzzers.sh sets G_SLICE=always-malloc itself.
    if out=$(G_DEBUG=gc-friendly bash tests/fuzz/run-fuzzers.sh build-fuzz "$FUZZ_SECONDS" 2>&1); then :; else status=1; fi
    echo "$out"
    while IFS= read -r line; do
      case $line in
        *': OK ('*) result_log "$fuzz_log" "fuzz / ${line%%: *}" OK ;;
        *': FAILED'* | *': MISSING'*) result_log "$fuzz_log" "fuzz / ${line%%: *}" FAIL ;;
      esac
    done <<<"$out"
    [ -s "$fuzz_log" ] || result_log "$fuzz_log" "fuzz (no result)" FAIL
  else
    echo "fuzzer build failed"; status=1; result_log "$fuzz_log" "fuzz (build)" FAIL
  fi
  logs+=("$fuzz_log")
else
  skipped+=("fuzz (SKIP_FUZZ=1)")
fi

step "results"
# count-results.py prints a line per log and the distinct checks, then
# "N passed, N failed, N skipped"; it exits non-zero when it could not count
# everything, and then the run fails too.
counted=$(/usr/bin/python3 .ci/count-results.py "${logs[@]}")
count_status=$?
summary=$(tail -n 1 <<<"$counted")
head -n -1 <<<"$counted"
if [[ $summary =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed,\ ([0-9]+)\ skipped$ ]]; then
  p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
else
  echo "count-results.py ended with “$summary”"
  p=0 f=0 s=0 count_status=1
fi
if [ "$count_status" != 0 ]; then
  # What could not be counted counts as failed (count-results.py counts each
  # unreadable log as one failure; a crash of the script leaves none).
  echo "counting the results failed (count-results.py exit $count_status)"
  status=1
  [ "$f" != 0 ] || f=1
fi
[ "$f" = 0 ] || status=1
echo "stages run: ${ran[*]}"
echo "stages skipped: ${skipped[*]:-none}"
echo "$p passed, $f failed, $s skipped"
exit $status
