#!/usr/bin/python3
"""Counts test results from meson's testlog.json files.

TAP tests (the GTest binaries) count one per TAP line ("ok" / "not ok",
"# SKIP" as skipped); a TAP binary that failed without a "not ok" line
(a crash) counts one failure more. A pytest run counts what its summary
line says. Other tests count one each by their result. Prints
"N passed, N failed, N skipped".
"""
import json
import re
import sys

passed = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
    except FileNotFoundError:
        print(f"count-results: {path} is missing: counting it as one failure", file=sys.stderr)
        failed += 1
        continue
    for line in lines:
        if not line.strip():
            continue
        t = json.loads(line)
        result = t.get("result", "")
        out = t.get("stdout", "") or ""
        tap = [l for l in out.splitlines() if re.match(r"^(not )?ok\b", l)]
        pytest = re.findall(r"^=+ (.*\d+ (?:passed|failed|errors?).*) in [\d.]+s(?: \(.*\))? =+$", out, re.M)
        if pytest:
            counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (passed|failed|errors?|skipped)", pytest[-1]))
            p, f = counts.get("passed", 0), counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
            passed += p
            failed += f
            skipped += counts.get("skipped", 0)
            if result not in ("OK", "EXPECTEDFAIL") and f == 0:
                failed += 1
        elif tap:
            bad = 0
            for l in tap:
                if re.search(r"#\s*SKIP", l, re.I):
                    skipped += 1
                elif l.startswith("not ok") and not re.search(r"#\s*TODO", l, re.I):
                    failed += 1
                    bad += 1
                else:
                    passed += 1
            if result not in ("OK", "EXPECTEDFAIL", "SKIP") and bad == 0:
                failed += 1
                print(f"count-results: {t.get('name')} ended {result} after its TAP lines", file=sys.stderr)
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
