#!/usr/bin/env python3
"""summary.py TESTLOG [NAME=RC ...]: count every test case and print the
closing line "N passed, N failed, N skipped".

TESTLOG is meson's testlog.json.  TAP tests count each "ok" / "not ok"
line (an "ok ... # SKIP" is a skip); other tests count once by result.
Each NAME=RC adds one more case that passed when RC is 0.  Exits 1 when
anything failed."""
import json
import re
import sys

passed = failed = skipped = 0
failures = []
tap = re.compile(r"^(not ok|ok)\b(.*)$")

with open(sys.argv[1]) as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        t = json.loads(line)
        cases = 0
        for out in (t.get("stdout") or "").splitlines():
            m = tap.match(out.strip())
            if not m:
                continue
            cases += 1
            if m.group(1) == "not ok":
                failed += 1
                failures.append(f"{t['name']}: {out.strip()}")
            elif "# SKIP" in m.group(2).upper():
                skipped += 1
            else:
                passed += 1
        ok = t["result"] in ("OK", "EXPECTEDFAIL")
        if cases == 0 or not ok:
            # a test that printed no case, or whose program failed as a
            # whole (crash, bad plan, time-out), counts as one case
            if t["result"] == "SKIP":
                skipped += 1
            elif ok:
                passed += 1
            else:
                failed += 1
                failures.append(f"{t['name']}: {t['result']}")

for arg in sys.argv[2:]:
    name, rc = arg.split("=", 1)
    if rc == "0":
        passed += 1
    else:
        failed += 1
        failures.append(f"{name}: exit status {rc}")

for f in failures:
    print(f"FAILED {f}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
