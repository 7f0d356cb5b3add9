"""tally.py - the pass/fail count the check scripts of tests/tools share: check() prints
each result, summary() prints the totals CTest's log shows and returns the exit code."""

counts = {"passed": 0, "failed": 0}


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    counts["passed" if ok else "failed"] += 1
    return ok


def failed():
    return counts["failed"]


def summary():
    print("%d passed, %d failed" % (counts["passed"], counts["failed"]))
    return 1 if counts["failed"] else 0
