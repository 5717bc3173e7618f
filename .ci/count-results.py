#!/usr/bin/python3
"""Counts the results of tests/run-all.sh.

    count-results.py LOG...

Each LOG is a meson testlog.json (one JSON object per line and test), or a
file in the same format that run-all.sh writes for the soak and the
fuzzers ({"name": ..., "result": "OK" | "FAIL"}).

What counts as one:
- TAP tests (the GTest binaries, the browser test): each "ok" / "not ok"
  line. "# SKIP" counts as skipped. "not ok ... # TODO" counts as FAILED:
  TAP calls it an expected failure that does not fail the run, but a check
  that does not pass is not a pass, counted as skipped it would leave the
  run green, and this project has no expected failures ("ok ... # TODO",
  a TODO that passes, counts as passed). A TAP test that meson did not see
  end well (a crash, "Bail out!", a timeout, LeakSanitizer at exit) counts
  one failure more unless one of its lines failed already.
- pytest (a test whose command has --junitxml=PATH): each <testcase> of
  that file: failed with <failure> or <error>, skipped with <skipped>
  (xfail included), passed otherwise; one failure more when meson saw the
  test fail and the XML shows none. The file must exist, be written by
  this run (not older than the test's start) and parse.
- Any other test: one, by meson's result.

Distinct checks: the same check runs in several builds (normal, ASan,
TSan) and threading modes (server / server-pooled, limits-threads0 /
limits-threads2, ...). A check is named by its test's name without the
threading-mode suffix and, for TAP and pytest, the test case's name; the
script prints how many distinct checks stand behind the counts.

Output (stdout): one line per LOG, each followed by its failures (the check
and the last output lines before it failed), the distinct-check line, then the last
line "N passed, N failed, N skipped". Problems go to stderr.
Exit status: 0 when every LOG was counted; 1 when one is missing, empty,
unreadable or malformed (each counts one failure), or when this script
itself failed (the last line then still reads "... N failed ..." with at
least one failure).
"""
import json
import os
import re
import sys
import traceback
import xml.etree.ElementTree as ET

WHY_LINES = 12  # output lines shown with each failure
TAP_LINE = re.compile(r"^(not )?ok(?=\s|$)(?:\s+\d+)?\s*(?:-\s*)?(.*)$")
MODE_SUFFIX = re.compile(r"-(?:pooled|threads\d+)$")


class CountError(Exception):
    """A log that cannot be counted."""


class Counts:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0
        self.checks = {}  # distinct check -> whether it failed anywhere
        self.failures = []  # (check, the output lines that tell why)

    def add(self, key, outcome, why=()):
        if outcome == "failed":
            self.failures.append((key, list(why)))
        if outcome == "passed":
            self.passed += 1
        elif outcome == "failed":
            self.failed += 1
        elif outcome == "skipped":
            self.skipped += 1
        else:
            raise ValueError(outcome)
        if key is not None:
            self.checks[key] = self.checks.get(key, False) or outcome == "failed"

    def merge(self, other):
        self.passed += other.passed
        self.failed += other.failed
        self.skipped += other.skipped
        self.failures += other.failures
        for key, bad in other.checks.items():
            self.checks[key] = self.checks.get(key, False) or bad


def warn(message):
    print(f"count-results: {message}", file=sys.stderr)


def family(name):
    """The test's name without project, suite and threading mode:
    "engineio-glib:integration / server-pooled" -> "server"."""
    return MODE_SUFFIX.sub("", name.split(" / ", 1)[-1].strip())


def tap_case(description):
    """The name of a TAP test case: the GTest path (GTest appends " - why"
    to a failure), or the description without its directive."""
    description = re.sub(r"\s+#\s*(?:SKIP|TODO)\b.*$", "", description, flags=re.I).strip()
    if description.startswith("/"):
        return description.split()[0]
    return description


def tail(t):
    """The last lines of a test's output (stdout, then stderr)."""
    text = (t.get("stdout") or "") + "\n" + (t.get("stderr") or "")
    return [line for line in text.splitlines() if line.strip()][-WHY_LINES:]


def meson_ok(result):
    return result in ("OK", "EXPECTEDFAIL")


def count_tap(t, name, out, counts):
    bad = 0
    lines = out.splitlines()
    for number, line in enumerate(lines):
        m = TAP_LINE.match(line)
        if not m:
            continue
        failed_line, rest = m.group(1) is not None, m.group(2)
        key = f"{family(name)} {tap_case(rest)}"
        if re.search(r"#\s*SKIP\b", rest, re.I):
            counts.add(key, "skipped")
        elif failed_line:
            if re.search(r"#\s*TODO\b", rest, re.I):
                warn(f"{name}: “{line.strip()}”: a TODO that fails counts as failed")
            counts.add(key, "failed", lines[max(0, number - WHY_LINES):number + 1])
            bad += 1
        else:
            counts.add(key, "passed")
    result = t.get("result", "")
    if result not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
        warn(f"{name} ended {result} after its TAP lines: one failure more")
        counts.add(f"{family(name)} (exit)", "failed", tail(t))


def junit_path(command):
    for i, arg in enumerate(command):
        if arg.startswith("--junitxml="):
            return arg.split("=", 1)[1]
        if arg in ("--junitxml", "--junit-xml") and i + 1 < len(command):
            return command[i + 1]
        if arg.startswith("--junit-xml="):
            return arg.split("=", 1)[1]
    return None


def count_junit(t, name, path, counts):
    try:
        mtime = os.stat(path).st_mtime
    except OSError as error:
        raise CountError(f"{name}: its JUnit XML {path} is missing ({error.strerror})")
    start = t.get("starttime")
    if isinstance(start, (int, float)) and mtime < start - 1:
        raise CountError(f"{name}: its JUnit XML {path} is older than the test run (stale)")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as error:
        raise CountError(f"{name}: its JUnit XML {path} does not parse: {error}")
    cases = list(root.iter("testcase"))
    if not cases and meson_ok(t.get("result", "")):
        raise CountError(f"{name}: its JUnit XML {path} has no test cases")
    bad = 0
    for case in cases:
        key = f"{family(name)} {case.get('classname', '')}::{case.get('name', '')}"
        bad_element = case.find("failure")
        if bad_element is None:
            bad_element = case.find("error")
        if bad_element is not None:
            text = (bad_element.get("message") or "") + "\n" + (bad_element.text or "")
            counts.add(key, "failed", [l for l in text.splitlines() if l.strip()][-WHY_LINES:])
            bad += 1
        elif case.find("skipped") is not None:
            counts.add(key, "skipped")
        else:
            counts.add(key, "passed")
    if not meson_ok(t.get("result", "")) and bad == 0:
        warn(f"{name} ended {t.get('result')} with no failed case in {path}: one failure more")
        counts.add(f"{family(name)} (exit)", "failed",
                   [f"(see the XML {path})"])


def count_test(t, counts):
    if not isinstance(t, dict) or not isinstance(t.get("name"), str) or "result" not in t:
        raise CountError(f"not a test result: {str(t)[:200]}")
    name = t["name"]
    result = t["result"]
    out = t.get("stdout") or ""
    command = t.get("command") or []
    junit = junit_path(command) if isinstance(command, list) else None
    if junit is not None:
        count_junit(t, name, junit, counts)
    elif any(TAP_LINE.match(line) for line in out.splitlines()):
        count_tap(t, name, out, counts)
    elif meson_ok(result):
        counts.add(family(name), "passed")
    elif result == "SKIP":
        counts.add(family(name), "skipped")
    else:
        counts.add(family(name), "failed", tail(t))


def count_log(path, total):
    """Counts one log into @total; returns False when it could not be
    counted whole (each problem is one failure)."""
    counts = Counts()
    ok = True
    try:
        with open(path, encoding="utf-8", errors="replace") as log:
            lines = log.read().splitlines()
    except OSError as error:
        warn(f"{path}: cannot read it ({error.strerror}): one failure")
        total.add(f"{path} (log)", "failed")
        print(f"{path}: not counted")
        return False
    n_tests = 0
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            count_test(json.loads(line), counts)
            n_tests += 1
        except (json.JSONDecodeError, CountError) as error:
            warn(f"{path}:{number}: {error}: one failure")
            counts.add(f"{path}:{number} (log)", "failed")
            ok = False
    if n_tests == 0 and ok:
        warn(f"{path}: no test results in it: one failure")
        counts.add(f"{path} (log)", "failed")
        ok = False
    print(f"{path}: {counts.passed} passed, {counts.failed} failed, {counts.skipped} skipped")
    for key, why in counts.failures:
        print(f"  FAILED {key}")
        for line in why:
            print(f"    | {line[:300]}")
    total.merge(counts)
    return ok


def main(paths, total):
    ok = True
    for path in paths:
        ok = count_log(path, total) and ok
    failed_checks = sum(1 for bad in total.checks.values() if bad)
    print(f"{len(total.checks)} distinct checks ({failed_checks} failed somewhere): "
          "each test case counts once here, whichever builds and threading modes ran it")
    return ok


if __name__ == "__main__":
    total = Counts()
    try:
        status = 0 if main(sys.argv[1:], total) else 1
    except Exception:  # the count must never look better than it is
        traceback.print_exc()
        warn("counting failed: one failure more")
        total.failed += 1
        status = 1
    print(f"{total.passed} passed, {total.failed} failed, {total.skipped} skipped")
    sys.exit(status)
